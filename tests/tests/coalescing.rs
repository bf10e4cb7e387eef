//! Concurrency tests of request coalescing (single flight): concurrent callers of one missing key
//! share one computation, sync and async (with or without a tokio runtime), through errors,
//! panics, cancellation and same-key recursion, while callers of other keys run in parallel.
//!
//! A broken coalescing must make these tests fail, never hang: every wait is bounded by [`HANG`].
//! Sleeps only make waiters really wait; no timing is asserted.

use std::any::Any;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use memokit::{Cache, Policy, RemovalCause};

/// How long any wait may take before the test is declared hung.
const HANG: Duration = Duration::from_secs(10);

/// Polls `cond` until it holds; panics after [`HANG`].
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG;
    while !cond() {
        assert!(Instant::now() < deadline, "hung waiting until {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// [`wait_until`] for async code on a tokio runtime.
async fn wait_until_async(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG;
    while !cond() {
        assert!(Instant::now() < deadline, "hung waiting until {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Joins `handle`, failing the test instead of hanging when the thread does not end.
fn join<T>(handle: JoinHandle<T>) -> thread::Result<T> {
    wait_until("a thread ends", || handle.is_finished());
    handle.join()
}

/// The message of a panic payload.
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("<not a string>")
}

fn coalesced_waits<K: std::hash::Hash + Eq, V: Clone>(cache: &Cache<K, V>) -> usize {
    usize::try_from(cache.stats().coalesced_waits).unwrap()
}

/// Wakes a thread blocked in [`block_on`].
struct Unparker(Thread);

impl Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// A minimal executor: polls `future` on this thread, parking between polls.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(Unparker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        // An unpark before this park is not lost: it makes park return at once.
        thread::park();
    }
}

/// A future-based latch that needs no runtime: `wait` is pending until `open`.
struct Gate {
    /// `None` once open; otherwise the wakers of the pending `wait`s.
    wakers: Mutex<Option<Vec<Waker>>>,
}

impl Gate {
    fn new() -> Arc<Self> {
        Arc::new(Gate {
            wakers: Mutex::new(Some(Vec::new())),
        })
    }

    fn open(&self) {
        let wakers = self.wakers.lock().unwrap().take().unwrap_or_default();
        wakers.into_iter().for_each(Waker::wake);
    }

    async fn wait(&self) {
        std::future::poll_fn(|cx| match &mut *self.wakers.lock().unwrap() {
            None => Poll::Ready(()),
            Some(wakers) => {
                wakers.push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
    }
}

/// A failure with the attempt that produced it, so waiters can tell whose error they got.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LoadError {
    attempt: usize,
}

/// OS threads released together on one missing key: one computation, one value for all.
#[test]
fn threads_on_one_missing_key_share_one_computation() {
    const THREADS: usize = 32;
    let cache: Cache<u32, String> = Cache::new(100);
    let runs = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(THREADS));
    let callers: Vec<_> = (0..THREADS)
        .map(|_| {
            let (cache, runs, barrier) = (cache.clone(), runs.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                let value = cache.get_or_insert_with(7, || {
                    runs.fetch_add(1, SeqCst);
                    thread::sleep(Duration::from_millis(50));
                    // On a loaded machine 50 ms may not be enough for every thread to arrive:
                    // hold the flight until they all wait on it. Without coalescing this never
                    // happens and the computation fails.
                    wait_until("the other callers wait", || {
                        coalesced_waits(&cache) >= THREADS - 1
                    });
                    "seven".to_string()
                });
                // Whoever returns sees the load counted.
                (value, cache.stats().loads)
            })
        })
        .collect();
    for caller in callers {
        assert_eq!(join(caller).unwrap(), ("seven".to_string(), 1));
    }
    assert_eq!(runs.load(SeqCst), 1);
    let stats = cache.stats();
    assert_eq!(stats.loads, 1);
    assert_eq!(stats.coalesced_waits, THREADS as u64 - 1);
    assert_eq!((stats.hits, stats.misses), (0, THREADS as u64));
    assert_eq!(stats.load_failures, 0);
    assert_eq!(cache.get(&7).as_deref(), Some("seven"));
}

/// Tokio tasks on a multi-thread runtime: one computation for a thousand callers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokio_tasks_on_one_missing_key_share_one_computation() {
    const TASKS: usize = 1_000;
    let cache: Cache<u32, Arc<str>> = Cache::new(100);
    let runs = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (cache, runs, barrier) = (cache.clone(), runs.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let init = async {
                    runs.fetch_add(1, SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    // Hold the flight until every other task waits on it (see test 1).
                    wait_until_async("the other tasks wait", || {
                        coalesced_waits(&cache) >= TASKS - 1
                    })
                    .await;
                    Arc::from("value")
                };
                cache.get_or_insert_with_async(1, init).await
            })
        })
        .collect();
    let all = async {
        for task in tasks {
            assert_eq!(&*task.await.unwrap(), "value");
        }
    };
    tokio::time::timeout(HANG, all).await.expect("tasks hung");
    assert_eq!(runs.load(SeqCst), 1);
    let stats = cache.stats();
    assert_eq!(stats.loads, 1);
    assert_eq!(stats.coalesced_waits, TASKS as u64 - 1);
}

/// Async coalescing without any tokio runtime: leader and waiters each run on their own OS
/// thread under a hand-written executor, and are woken only through their wakers.
#[test]
fn async_coalescing_needs_no_runtime() {
    const WAITERS: usize = 8;
    let cache: Cache<u32, u64> = Cache::new(100);
    let runs = Arc::new(AtomicUsize::new(0));
    let gate = Gate::new();
    let (started, leader_started) = mpsc::channel();
    let leader = {
        let (cache, runs, gate) = (cache.clone(), runs.clone(), gate.clone());
        thread::spawn(move || {
            block_on(cache.get_or_insert_with_async(5, async {
                runs.fetch_add(1, SeqCst);
                started.send(()).unwrap();
                gate.wait().await; // pending: this thread parks
                500
            }))
        })
    };
    leader_started.recv_timeout(HANG).expect("leader started");
    let waiters: Vec<_> = (0..WAITERS)
        .map(|i| {
            let (cache, runs) = (cache.clone(), runs.clone());
            thread::spawn(move || {
                block_on(cache.get_or_insert_with_async(5, async {
                    runs.fetch_add(1, SeqCst);
                    i as u64
                }))
            })
        })
        .collect();
    wait_until("the waiters wait", || coalesced_waits(&cache) >= WAITERS);
    gate.open();
    assert_eq!(join(leader).unwrap(), 500);
    for waiter in waiters {
        assert_eq!(join(waiter).unwrap(), 500);
    }
    assert_eq!(runs.load(SeqCst), 1);
    assert_eq!(cache.stats().loads, 1);
    assert_eq!(cache.stats().coalesced_waits, WAITERS as u64);
}

/// Blocking and async callers of one key share one flight, whichever kind leads.
#[test]
fn blocking_and_async_callers_share_one_flight() {
    const WAITERS: usize = 6;
    for async_leader in [false, true] {
        let cache: Cache<u32, u64> = Cache::new(100);
        let runs = Arc::new(AtomicUsize::new(0));
        let (started, leader_started) = mpsc::channel::<()>();
        let leader = {
            let (cache, runs) = (cache.clone(), runs.clone());
            thread::spawn(move || {
                let init = || {
                    runs.fetch_add(1, SeqCst);
                    started.send(()).unwrap();
                    wait_until("the waiters wait", || coalesced_waits(&cache) >= WAITERS);
                    11
                };
                if async_leader {
                    block_on(cache.get_or_insert_with_async(2, async { init() }))
                } else {
                    cache.get_or_insert_with(2, init)
                }
            })
        };
        leader_started.recv_timeout(HANG).expect("leader started");
        let waiters: Vec<_> = (0..WAITERS)
            .map(|i| {
                let (cache, runs) = (cache.clone(), runs.clone());
                thread::spawn(move || {
                    let init = || {
                        runs.fetch_add(1, SeqCst);
                        0
                    };
                    if i % 2 == 0 {
                        cache.get_or_insert_with(2, init)
                    } else {
                        block_on(cache.get_or_insert_with_async(2, async { init() }))
                    }
                })
            })
            .collect();
        assert_eq!(join(leader).unwrap(), 11);
        for waiter in waiters {
            assert_eq!(join(waiter).unwrap(), 11, "async leader: {async_leader}");
        }
        assert_eq!(runs.load(SeqCst), 1, "async leader: {async_leader}");
    }
}

/// Computations of different keys run at the same time: each waits until all of them have
/// started, which only happens if no caller waits on another key's computation. The keys share
/// one shard (one shard lock, one flight table), the likeliest place to serialise them.
#[test]
fn callers_of_other_keys_never_wait() {
    const KEYS: usize = 8;
    let cache: Cache<usize, usize> = Cache::builder().shards(1).build();
    let running = Arc::new(AtomicUsize::new(0));
    let (done, results) = mpsc::channel();
    for key in 0..KEYS {
        let (cache, running, done) = (cache.clone(), running.clone(), done.clone());
        thread::spawn(move || {
            let value = cache.get_or_insert_with(key, || {
                running.fetch_add(1, SeqCst);
                wait_until("every key's computation runs", || {
                    running.load(SeqCst) == KEYS
                });
                key * 10
            });
            done.send((key, value)).unwrap();
        });
    }
    drop(done);
    let mut got: Vec<_> = (0..KEYS)
        .map(|_| {
            results
                .recv_timeout(HANG)
                .expect("a computation waited for another key's")
        })
        .collect();
    got.sort_unstable();
    assert_eq!(got, (0..KEYS).map(|k| (k, k * 10)).collect::<Vec<_>>());
    assert_eq!(cache.stats().coalesced_waits, 0);
}

/// The leader's computation panics while others wait on it: the panic reaches the leader's
/// caller only, exactly one waiter computes instead, every waiter gets that value.
#[test]
fn leader_panic_hands_the_key_to_one_waiter() {
    // Enough waiters that most are parked when the leader panics: all are woken by the
    // abandoned flight, one takes over, the others wait again and get its value.
    const WAITERS: usize = 24;
    let cache: Cache<u32, u64> = Cache::new(100);
    let (started, leader_started) = mpsc::channel();
    let leader = {
        let cache = cache.clone();
        thread::spawn(move || {
            cache.get_or_insert_with(9, || -> u64 {
                started.send(()).unwrap();
                wait_until("the waiters wait", || coalesced_waits(&cache) >= WAITERS);
                panic!("leader computation failed");
            })
        })
    };
    leader_started.recv_timeout(HANG).expect("leader started");
    let takeovers = Arc::new(AtomicUsize::new(0));
    let waiters: Vec<_> = (0..WAITERS)
        .map(|i| {
            let (cache, takeovers) = (cache.clone(), takeovers.clone());
            thread::spawn(move || {
                cache.get_or_insert_with(9, || {
                    takeovers.fetch_add(1, SeqCst);
                    // Long enough for the other waiters to wait on this computation in turn.
                    thread::sleep(Duration::from_millis(20));
                    100 + i as u64
                })
            })
        })
        .collect();
    let payload = join(leader).expect_err("the leader's caller sees its panic");
    assert!(panic_message(&*payload).contains("leader computation failed"));
    let values: Vec<u64> = waiters
        .into_iter()
        .map(|waiter| join(waiter).expect("no waiter sees the leader's panic"))
        .collect();
    assert_eq!(takeovers.load(SeqCst), 1);
    assert!((100..100 + WAITERS as u64).contains(&values[0]));
    assert!(values.iter().all(|&v| v == values[0]), "{values:?}");
    assert_eq!(cache.get(&9), Some(values[0]));
    let stats = cache.stats();
    assert_eq!((stats.loads, stats.load_failures), (2, 1));
    // Waiters that wait again after the hand-over are not counted twice.
    assert_eq!(stats.coalesced_waits, WAITERS as u64);
}

/// The leader's value is computed but storing it panics (a user weigher): the waiters must not
/// hang on a flight nobody will end; one of them computes instead.
#[test]
fn panic_while_storing_the_value_hands_the_key_over() {
    const WAITERS: usize = 4;
    const REJECTED: u64 = 666;
    let cache: Cache<u32, u64> = Cache::builder()
        .weigher(|_, value: &u64| {
            assert_ne!(*value, REJECTED, "weigher rejects the value");
            1
        })
        .build();
    let (started, leader_started) = mpsc::channel();
    let leader = {
        let cache = cache.clone();
        thread::spawn(move || {
            cache.get_or_insert_with(8, || {
                started.send(()).unwrap();
                wait_until("the waiters wait", || coalesced_waits(&cache) >= WAITERS);
                REJECTED
            })
        })
    };
    leader_started.recv_timeout(HANG).expect("leader started");
    let takeovers = Arc::new(AtomicUsize::new(0));
    let waiters: Vec<_> = (0..WAITERS)
        .map(|_| {
            let (cache, takeovers) = (cache.clone(), takeovers.clone());
            thread::spawn(move || {
                cache.get_or_insert_with(8, || {
                    takeovers.fetch_add(1, SeqCst);
                    80
                })
            })
        })
        .collect();
    let payload = join(leader).expect_err("the leader's caller sees the weigher's panic");
    assert!(panic_message(&*payload).contains("weigher rejects the value"));
    for waiter in waiters {
        assert_eq!(join(waiter).expect("no waiter sees that panic"), 80);
    }
    assert_eq!(takeovers.load(SeqCst), 1);
    let stats = cache.stats();
    assert_eq!((stats.loads, stats.load_failures), (2, 1));
    // No flight is left behind: the key is usable.
    assert_eq!(cache.get_or_insert_with(8, || unreachable!()), 80);
}

/// The leader's value is stored but the eviction listener panics on the entry it displaced: the
/// waiters must not hang; they find the stored value.
#[test]
fn panic_in_eviction_listener_while_storing_does_not_hang_waiters() {
    const WAITERS: usize = 4;
    let cache: Cache<u32, u64> = Cache::builder()
        .max_capacity(1)
        .shards(1)
        .policy(Policy::Fifo)
        .eviction_listener(|key, _, cause| {
            assert!(
                !(key == 0 && cause == RemovalCause::Size),
                "listener fails on key 0"
            );
        })
        .build();
    cache.insert(0, 0);
    let (started, leader_started) = mpsc::channel();
    let leader = {
        let cache = cache.clone();
        thread::spawn(move || {
            cache.get_or_insert_with(8, || {
                started.send(()).unwrap();
                wait_until("the waiters wait", || coalesced_waits(&cache) >= WAITERS);
                88 // displaces key 0
            })
        })
    };
    leader_started.recv_timeout(HANG).expect("leader started");
    let waiters: Vec<_> = (0..WAITERS)
        .map(|_| {
            let cache = cache.clone();
            thread::spawn(move || cache.get_or_insert_with(8, || 80))
        })
        .collect();
    let payload = join(leader).expect_err("the leader's caller sees the listener's panic");
    assert!(panic_message(&*payload).contains("listener fails on key 0"));
    for waiter in waiters {
        assert_eq!(join(waiter).expect("no waiter sees that panic"), 88);
    }
}

/// The leader's future is dropped (its task aborted) while others wait on it: exactly one
/// waiter computes instead, every waiter gets that value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_leader_hands_the_key_to_one_waiter() {
    const WAITERS: usize = 16;
    let cache: Cache<u32, u64> = Cache::new(100);
    let (started, leader_started) = tokio::sync::oneshot::channel();
    let leader = {
        let cache = cache.clone();
        tokio::spawn(async move {
            let init = async {
                started.send(()).unwrap();
                std::future::pending::<u64>().await
            };
            cache.get_or_insert_with_async(3, init).await
        })
    };
    tokio::time::timeout(HANG, leader_started)
        .await
        .expect("leader started")
        .unwrap();
    let takeovers = Arc::new(AtomicUsize::new(0));
    let waiters: Vec<_> = (0..WAITERS)
        .map(|i| {
            let (cache, takeovers) = (cache.clone(), takeovers.clone());
            tokio::spawn(async move {
                let init = async {
                    takeovers.fetch_add(1, SeqCst);
                    // Long enough for the other waiters to wait on this computation in turn.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    300 + i as u64
                };
                cache.get_or_insert_with_async(3, init).await
            })
        })
        .collect();
    wait_until_async("the waiters wait", || coalesced_waits(&cache) >= WAITERS).await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    let values = tokio::time::timeout(HANG, async {
        let mut values = Vec::new();
        for waiter in waiters {
            values.push(waiter.await.expect("no waiter fails"));
        }
        values
    })
    .await
    .expect("waiters hung after the leader was cancelled");
    assert_eq!(takeovers.load(SeqCst), 1);
    assert!((300..300 + WAITERS as u64).contains(&values[0]));
    assert!(values.iter().all(|&v| v == values[0]), "{values:?}");
    assert_eq!(cache.get(&3), Some(values[0]));
    let stats = cache.stats();
    assert_eq!((stats.loads, stats.load_failures), (2, 1));
}

/// Cancellation without a runtime: the leader's future, polled once, is dropped in place
/// while waiters on other threads wait; one of them computes instead.
#[test]
fn dropped_leader_future_hands_the_key_over_without_runtime() {
    const WAITERS: usize = 4;
    let cache: Cache<u32, u64> = Cache::new(100);
    {
        let mut leader = Box::pin(cache.get_or_insert_with_async(6, std::future::pending::<u64>()));
        let waker = Waker::from(Arc::new(Unparker(thread::current())));
        let polled = leader.as_mut().poll(&mut Context::from_waker(&waker));
        assert!(polled.is_pending());
        let waiters: Vec<_> = (0..WAITERS)
            .map(|i| {
                let cache = cache.clone();
                thread::spawn(move || {
                    block_on(cache.get_or_insert_with_async(6, async move { 60 + i as u64 }))
                })
            })
            .collect();
        wait_until("the waiters wait", || coalesced_waits(&cache) >= WAITERS);
        drop(leader);
        let values: Vec<u64> = waiters.into_iter().map(|w| join(w).unwrap()).collect();
        assert!(values.iter().all(|&v| v == values[0]), "{values:?}");
        assert_eq!(cache.get(&6), Some(values[0]));
    }
    assert_eq!(cache.stats().load_failures, 1);
}

/// The leader's computation fails while others wait on it: each waiter gets a clone of that
/// same error, the computation ran once, nothing is cached, and the next call computes again.
#[test]
fn leader_error_is_shared_with_its_waiters_and_not_cached() {
    const WAITERS: usize = 6;
    let cache: Cache<u32, u64> = Cache::new(100);
    let runs = Arc::new(AtomicUsize::new(0));
    let (started, leader_started) = mpsc::channel();
    let leader = {
        let (cache, runs) = (cache.clone(), runs.clone());
        thread::spawn(move || {
            cache.try_get_or_insert_with(4, || {
                let attempt = runs.fetch_add(1, SeqCst) + 1;
                started.send(()).unwrap();
                wait_until("the waiters wait", || coalesced_waits(&cache) >= WAITERS);
                Err(LoadError { attempt })
            })
        })
    };
    leader_started.recv_timeout(HANG).expect("leader started");
    let waiters: Vec<_> = (0..WAITERS)
        .map(|_| {
            let (cache, runs) = (cache.clone(), runs.clone());
            thread::spawn(move || {
                cache.try_get_or_insert_with(4, || {
                    runs.fetch_add(1, SeqCst);
                    Ok::<_, LoadError>(1)
                })
            })
        })
        .collect();
    let failed = Err(LoadError { attempt: 1 });
    assert_eq!(join(leader).unwrap(), failed);
    for waiter in waiters {
        assert_eq!(join(waiter).unwrap(), failed);
    }
    assert_eq!(runs.load(SeqCst), 1);
    assert!(!cache.contains_key(&4), "an error is not cached");
    let stats = cache.stats();
    assert_eq!((stats.loads, stats.load_failures), (1, 1));
    assert_eq!(stats.coalesced_waits, WAITERS as u64);

    let retried = cache.try_get_or_insert_with(4, || {
        runs.fetch_add(1, SeqCst);
        Ok::<_, LoadError>(44)
    });
    assert_eq!(retried, Ok(44));
    assert_eq!(runs.load(SeqCst), 2);
    assert_eq!(cache.get(&4), Some(44));
    assert_eq!(cache.stats().loads, 2);
}

/// A write made while a computation of its key runs (`invalidate`, `insert`, and
/// `invalidate_if` and `clear`, which cannot tell which computations would match) detaches it:
/// its caller gets its value, which is not stored, so the write is not undone.
#[test]
fn writes_detach_a_computation_in_flight() {
    type Write = fn(&Cache<u32, u64>);
    let writes: [(&str, Write); 4] = [
        ("invalidate", |cache| {
            cache.invalidate(&1);
        }),
        ("insert", |cache| cache.insert(1, 99)),
        ("invalidate_if", |cache| {
            cache.invalidate_if(|_, value| *value == 10);
        }),
        ("clear", |cache| cache.clear()),
    ];
    for (name, write) in writes {
        let cache: Cache<u32, u64> = Cache::new(100);
        let (started, leader_started) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let leader = {
            let cache = cache.clone();
            thread::spawn(move || {
                cache.get_or_insert_with(1, || {
                    started.send(()).unwrap();
                    released.recv_timeout(HANG).unwrap();
                    10
                })
            })
        };
        leader_started.recv_timeout(HANG).expect("leader started");
        write(&cache);
        release.send(()).unwrap();
        assert_eq!(join(leader).unwrap(), 10, "{name}: its caller gets it");
        assert_ne!(cache.get(&1), Some(10), "{name}: the older value came back");
    }
}

/// A leader's `None` goes to its waiters (one computation), is not stored, and is a load, not a
/// failed one; the next call computes again.
#[test]
fn leader_none_is_shared_with_its_waiters_and_not_a_failure() {
    const WAITERS: usize = 8;
    let cache: Cache<u32, u64> = Cache::new(100);
    let runs = Arc::new(AtomicUsize::new(0));
    let (started, leader_started) = mpsc::channel();
    let leader = {
        let (cache, runs) = (cache.clone(), runs.clone());
        thread::spawn(move || {
            cache.optionally_get_or_insert_with(4, || {
                runs.fetch_add(1, SeqCst);
                started.send(()).unwrap();
                wait_until("the waiters wait", || coalesced_waits(&cache) >= WAITERS);
                None
            })
        })
    };
    leader_started.recv_timeout(HANG).expect("leader started");
    let waiters: Vec<_> = (0..WAITERS)
        .map(|_| {
            let (cache, runs) = (cache.clone(), runs.clone());
            thread::spawn(move || {
                cache.optionally_get_or_insert_with(4, || {
                    runs.fetch_add(1, SeqCst);
                    Some(1)
                })
            })
        })
        .collect();
    assert_eq!(join(leader).unwrap(), None);
    for waiter in waiters {
        assert_eq!(join(waiter).unwrap(), None);
    }
    assert_eq!(runs.load(SeqCst), 1);
    assert!(!cache.contains_key(&4), "a None is not stored");
    let stats = cache.stats();
    assert_eq!((stats.loads, stats.load_failures), (1, 0));
    assert_eq!(
        cache.optionally_get_or_insert_with(4, || Some(44)),
        Some(44)
    );
    assert_eq!(cache.get(&4), Some(44));
}

/// Async: of a fallible optional load, `Ok(None)` and `Err` both reach the waiters, and only
/// the error counts as a failed load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_optional_none_and_error_reach_waiters_and_only_the_error_fails() {
    const WAITERS: usize = 16;
    let cache: Cache<u32, u64> = Cache::new(100);
    let runs = Arc::new(AtomicUsize::new(0));
    for (key, outcome) in [(1, Ok(None)), (2, Err(LoadError { attempt: 1 }))] {
        let (started, leader_started) = tokio::sync::oneshot::channel();
        let waits_before = coalesced_waits(&cache);
        let leader = {
            let (cache, runs, outcome) = (cache.clone(), runs.clone(), outcome.clone());
            tokio::spawn(async move {
                let init = async {
                    runs.fetch_add(1, SeqCst);
                    started.send(()).unwrap();
                    wait_until_async("the waiters wait", || {
                        coalesced_waits(&cache) >= waits_before + WAITERS
                    })
                    .await;
                    outcome
                };
                cache
                    .try_optionally_get_or_insert_with_async(key, init)
                    .await
            })
        };
        tokio::time::timeout(HANG, leader_started)
            .await
            .expect("leader started")
            .unwrap();
        let waiters: Vec<_> = (0..WAITERS)
            .map(|_| {
                let (cache, runs) = (cache.clone(), runs.clone());
                tokio::spawn(async move {
                    let init = async {
                        runs.fetch_add(1, SeqCst);
                        Ok::<_, LoadError>(Some(1))
                    };
                    cache
                        .try_optionally_get_or_insert_with_async(key, init)
                        .await
                })
            })
            .collect();
        assert_eq!(leader.await.unwrap(), outcome);
        for waiter in waiters {
            assert_eq!(waiter.await.unwrap(), outcome, "key {key}");
        }
        assert!(!cache.contains_key(&key));
    }
    assert_eq!(runs.load(SeqCst), 2);
    let stats = cache.stats();
    assert_eq!((stats.loads, stats.load_failures), (2, 1));
}

/// Async: the same error sharing between tokio tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_leader_error_is_shared_with_its_waiters_and_not_cached() {
    const WAITERS: usize = 32;
    let cache: Cache<u32, u64> = Cache::new(100);
    let runs = Arc::new(AtomicUsize::new(0));
    let (started, leader_started) = tokio::sync::oneshot::channel();
    let leader = {
        let (cache, runs) = (cache.clone(), runs.clone());
        tokio::spawn(async move {
            let init = async {
                let attempt = runs.fetch_add(1, SeqCst) + 1;
                started.send(()).unwrap();
                wait_until_async("the waiters wait", || coalesced_waits(&cache) >= WAITERS).await;
                Err(LoadError { attempt })
            };
            cache.try_get_or_insert_with_async(4, init).await
        })
    };
    tokio::time::timeout(HANG, leader_started)
        .await
        .expect("leader started")
        .unwrap();
    let waiters: Vec<_> = (0..WAITERS)
        .map(|_| {
            let (cache, runs) = (cache.clone(), runs.clone());
            tokio::spawn(async move {
                let init = async {
                    runs.fetch_add(1, SeqCst);
                    Ok::<_, LoadError>(1)
                };
                cache.try_get_or_insert_with_async(4, init).await
            })
        })
        .collect();
    let failed = Err(LoadError { attempt: 1 });
    tokio::time::timeout(HANG, async {
        assert_eq!(leader.await.unwrap(), failed);
        for waiter in waiters {
            assert_eq!(waiter.await.unwrap(), failed);
        }
    })
    .await
    .expect("hung");
    assert_eq!(runs.load(SeqCst), 1);
    assert!(!cache.contains_key(&4), "an error is not cached");
    let stats = cache.stats();
    assert_eq!((stats.loads, stats.load_failures), (1, 1));

    let retried = cache
        .try_get_or_insert_with_async(4, async { Ok::<_, LoadError>(44) })
        .await;
    assert_eq!(retried, Ok(44));
    assert_eq!(cache.get(&4), Some(44));
    assert_eq!(cache.stats().loads, 2);
}

/// A waiter whose own call cannot return the leader's error type retries instead: here an
/// infallible caller waiting on a failing computation computes its own value.
#[test]
fn waiter_with_another_error_type_retries() {
    let cache: Cache<u32, u64> = Cache::new(100);
    let (started, leader_started) = mpsc::channel();
    let leader = {
        let cache = cache.clone();
        thread::spawn(move || {
            cache.try_get_or_insert_with(4, || {
                started.send(()).unwrap();
                wait_until("the waiters wait", || coalesced_waits(&cache) >= 2);
                Err(LoadError { attempt: 1 })
            })
        })
    };
    leader_started.recv_timeout(HANG).expect("leader started");
    let same_type = {
        let cache = cache.clone();
        thread::spawn(move || cache.try_get_or_insert_with(4, || Ok::<_, LoadError>(1)))
    };
    let other_type = {
        let cache = cache.clone();
        thread::spawn(move || cache.try_get_or_insert_with(4, || Ok::<_, String>(2)))
    };
    assert_eq!(join(leader).unwrap(), Err(LoadError { attempt: 1 }));
    assert_eq!(join(same_type).unwrap(), Err(LoadError { attempt: 1 }));
    assert_eq!(join(other_type).unwrap(), Ok(2));
    assert_eq!(cache.get(&4), Some(2));
}

/// A computation asking for its own key panics with a message instead of deadlocking, and
/// leaves the key usable.
#[test]
fn same_key_recursion_panics_instead_of_deadlocking() {
    let cache: Cache<u32, u64> = Cache::new(100);
    // On a thread: a regression deadlocks, and `join` turns that into a failure.
    let recursing = {
        let cache = cache.clone();
        thread::spawn(move || {
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
                cache.get_or_insert_with(1, || cache.get_or_insert_with(1, || 2) + 1)
            }));
            let message = panic_message(&*outcome.expect_err("recursion panics")).to_owned();
            // Usable again from the same thread.
            (message, cache.get_or_insert_with(1, || 10))
        })
    };
    let (message, value) = join(recursing).unwrap();
    assert!(
        message.contains("called itself with the same key"),
        "{message}"
    );
    assert_eq!(value, 10);
    assert_eq!(cache.get_or_insert_with(1, || unreachable!()), 10);
    // Other keys may be computed from inside a computation.
    assert_eq!(
        cache.get_or_insert_with(2, || cache.get_or_insert_with(3, || 3) + 1),
        4
    );
    let stats = cache.stats();
    assert_eq!((stats.loads, stats.load_failures), (4, 1));
    // The recursive call was refused, not counted as a wait.
    assert_eq!(stats.coalesced_waits, 0);
}

/// An `async` computation awaiting its own key: boxed, as async recursion must be.
fn recursing_async(cache: &Cache<u32, u64>) -> Pin<Box<dyn Future<Output = u64> + Send + '_>> {
    Box::pin(cache.get_or_insert_with_async(1, async move { recursing_async(cache).await + 1 }))
}

/// The async twin of the test above: a computation that awaits its own key, inside the poll of
/// the leader's future, panics with the same message instead of waiting for itself forever; so
/// does a blocking call of the key from inside an async computation, and the reverse.
#[test]
fn async_same_key_recursion_panics_instead_of_hanging() {
    let cache: Cache<u32, u64> = Cache::new(100);
    let recursing = {
        let cache = cache.clone();
        thread::spawn(move || {
            let recursion = |call: &dyn Fn() -> u64| {
                let outcome = panic::catch_unwind(AssertUnwindSafe(call));
                panic_message(&*outcome.expect_err("recursion panics")).to_owned()
            };
            let messages = [
                recursion(&|| block_on(recursing_async(&cache))),
                recursion(&|| {
                    block_on(cache.get_or_insert_with_async(1, async {
                        cache.get_or_insert_with(1, || 2) + 1
                    }))
                }),
                recursion(&|| {
                    cache.get_or_insert_with(1, || {
                        block_on(cache.get_or_insert_with_async(1, async { 2 })) + 1
                    })
                }),
            ];
            // Usable again from the same thread.
            (
                messages,
                block_on(cache.get_or_insert_with_async(1, async { 10 })),
            )
        })
    };
    let (messages, value) = join(recursing).unwrap();
    for message in messages {
        assert!(
            message.contains("called itself with the same key"),
            "{message}"
        );
    }
    assert_eq!(value, 10);
    // Other keys may be awaited from inside a computation.
    let nested = cache.get_or_insert_with_async(2, async {
        cache.get_or_insert_with_async(3, async { 3 }).await + 1
    });
    assert_eq!(block_on(nested), 4);
    let stats = cache.stats();
    assert_eq!((stats.loads, stats.load_failures), (6, 3));
    assert_eq!(
        stats.coalesced_waits, 0,
        "a refused recursive call is no wait"
    );
}

/// On a tokio runtime too, across the awaits of a computation that yields before recursing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_same_key_recursion_panics_on_tokio() {
    let cache: Cache<u32, u64> = Cache::new(100);
    let task = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_or_insert_with_async(1, async {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    recursing_async(&cache).await
                })
                .await
        })
    };
    let outcome = tokio::time::timeout(HANG, task).await.expect("hung");
    let payload = outcome.expect_err("recursion panics").into_panic();
    let message = panic_message(&*payload);
    assert!(
        message.contains("called itself with the same key"),
        "{message}"
    );
    assert_eq!(cache.get_or_insert_with_async(1, async { 5 }).await, 5);
}

/// Under concurrent mixed use every call counts exactly one hit or miss, and every
/// computation run counts exactly one load.
#[test]
fn every_call_counts_one_hit_or_miss() {
    const THREADS: usize = 8;
    const CALLS: usize = 2_000;
    const KEYS: usize = 16;
    // Unbounded: each key is computed once. Bounded to 4 in one shard: evicted keys are
    // computed again, and some computations fail.
    for bounded in [false, true] {
        let cache: Cache<usize, usize> = if bounded {
            Cache::builder().max_capacity(4).shards(1).build()
        } else {
            Cache::builder().build()
        };
        let runs = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(Barrier::new(THREADS));
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (cache, runs, failures) = (cache.clone(), runs.clone(), failures.clone());
                let barrier = barrier.clone();
                thread::spawn(move || {
                    barrier.wait();
                    for i in 0..CALLS {
                        let key = (i * 7 + t) % KEYS;
                        let compute = || {
                            runs.fetch_add(1, SeqCst);
                            thread::yield_now(); // let others join the flight
                            key * 10
                        };
                        match i % 3 {
                            0 => assert_eq!(cache.get_or_insert_with(key, compute), key * 10),
                            1 if bounded => {
                                let result = cache.try_get_or_insert_with(key, || {
                                    if key % 5 == 0 {
                                        runs.fetch_add(1, SeqCst);
                                        failures.fetch_add(1, SeqCst);
                                        return Err(LoadError { attempt: 0 });
                                    }
                                    Ok(compute())
                                });
                                assert!(result.is_err() || result == Ok(key * 10));
                            }
                            1 => assert_eq!(
                                cache.try_get_or_insert_with(key, || Ok::<_, LoadError>(compute())),
                                Ok(key * 10)
                            ),
                            _ => assert!(cache.get(&key).is_none_or(|v| v == key * 10)),
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            join(thread).unwrap();
        }
        let stats = cache.stats();
        assert_eq!(
            stats.hits + stats.misses,
            (THREADS * CALLS) as u64,
            "{stats}"
        );
        assert_eq!(stats.loads, runs.load(SeqCst) as u64, "{stats}");
        assert_eq!(stats.load_failures, failures.load(SeqCst) as u64, "{stats}");
        if !bounded {
            assert_eq!(stats.loads, KEYS as u64, "{stats}");
            // Each miss leads, waits, or finds the value stored meanwhile.
            assert!(
                stats.misses >= stats.loads + stats.coalesced_waits,
                "{stats}"
            );
        }
    }
}

/// A write to a key while its computation runs wins: `invalidate`, `insert` and `clear` detach
/// the computation, whose (possibly older) result goes to its own callers but is not stored, and
/// callers arriving after the write do not join it.
#[test]
fn a_write_during_a_computation_is_not_overwritten_by_its_result() {
    for write in ["invalidate", "insert", "clear"] {
        let cache: Cache<u32, &str> = Cache::new(100);
        let (started, leader_started) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let leader = {
            let cache = cache.clone();
            thread::spawn(move || {
                cache.get_or_insert_with(1, || {
                    started.send(()).unwrap();
                    released.recv_timeout(HANG).expect("released");
                    "read before the write"
                })
            })
        };
        leader_started.recv_timeout(HANG).expect("leader started");
        match write {
            "invalidate" => assert!(!cache.invalidate(&1)),
            "insert" => cache.insert(1, "written"),
            _ => cache.clear(),
        }
        // A caller arriving after the write starts afresh instead of joining the old run.
        if write != "insert" {
            assert_eq!(
                cache.get_or_insert_with(1, || "read after the write"),
                "read after the write"
            );
        }
        release.send(()).unwrap();
        assert_eq!(join(leader).unwrap(), "read before the write", "{write}");
        let expected = if write == "insert" {
            "written"
        } else {
            "read after the write"
        };
        assert_eq!(cache.get(&1), Some(expected), "after {write}");
    }
}

/// Flights that end while their waiters are still joining: a waiter that registers just before
/// or just after the leader publishes its value must not sleep through the wake-up. Many short
/// rounds, each on a fresh key, with threads and tasks (on another thread's executor) racing a
/// leader whose computation takes almost no time: every caller gets the value, in time, from
/// one computation per key. The race window is a few instructions wide, so this is a stress
/// test: it catches a lost wake-up only with some luck, never reports one falsely.
#[test]
fn waiters_joining_as_the_flight_ends_are_never_lost() {
    const ROUNDS: u32 = 300;
    const THREADS: usize = 6;
    const TASKS: usize = 6;
    let cache: Cache<u32, u32> = Cache::new(10_000);
    let runs = Arc::new(AtomicUsize::new(0));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    for round in 0..ROUNDS {
        let barrier = Arc::new(Barrier::new(THREADS + 1));
        let threads: Vec<_> = (0..THREADS)
            .map(|i| {
                let (cache, runs, barrier) = (cache.clone(), runs.clone(), barrier.clone());
                thread::spawn(move || {
                    barrier.wait();
                    cache.get_or_insert_with(round, || {
                        runs.fetch_add(1, SeqCst);
                        // Some rounds end at once, others after a few waiters joined.
                        if i % 2 == 0 {
                            thread::sleep(Duration::from_micros(u64::from(round % 7) * 20));
                        }
                        round * 3
                    })
                })
            })
            .collect();
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let (cache, runs) = (cache.clone(), runs.clone());
                runtime.spawn(async move {
                    let init = async {
                        runs.fetch_add(1, SeqCst);
                        tokio::task::yield_now().await;
                        round * 3
                    };
                    cache.get_or_insert_with_async(round, init).await
                })
            })
            .collect();
        barrier.wait();
        for thread in threads {
            assert_eq!(join(thread).unwrap(), round * 3);
        }
        let values = runtime.block_on(async {
            tokio::time::timeout(HANG, async {
                let mut values = Vec::new();
                for task in tasks {
                    values.push(task.await.unwrap());
                }
                values
            })
            .await
            .expect("a task slept through the end of its flight")
        });
        assert!(values.iter().all(|&v| v == round * 3), "{values:?}");
    }
    assert_eq!(
        runs.load(SeqCst),
        ROUNDS as usize,
        "one computation per key"
    );
    let stats = cache.stats();
    assert_eq!(stats.loads, u64::from(ROUNDS));
    assert_eq!(
        stats.hits + stats.misses,
        u64::from(ROUNDS) * (THREADS + TASKS) as u64
    );
}
