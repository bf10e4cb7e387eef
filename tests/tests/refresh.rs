//! Refresh-ahead (`refresh_after`, `#[cached(refresh = …)]`) and TTL jitter (`ttl_jitter`,
//! `#[cached(jitter = …)]`). The runtime's behaviour is driven by a [`MockClock`]; the macro
//! tests use the real clock with a one-hour `ttl`, so that only "at least this old" matters.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use memokit::{cached, Cache, MockClock};

const TTL: Duration = Duration::from_secs(600);
const REFRESH: Duration = Duration::from_secs(480);
/// A quarter of `TTL - REFRESH`: how long a failed refresh waits for the next attempt.
const BACKOFF: Duration = Duration::from_secs(30);
const NS: Duration = Duration::from_nanos(1);
/// A bound that only a hang reaches.
const HANG: Duration = Duration::from_secs(20);

fn refreshing(clock: &MockClock) -> Cache<u32, u32> {
    Cache::builder()
        .time_to_live(TTL)
        .refresh_after(REFRESH)
        .clock(clock.clone())
        .build()
}

/// Waits for `done`, failing after [`HANG`].
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < HANG, "{what}: not within {HANG:?}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// A refresh the test holds open: it reports its start, then waits to be released.
struct HeldRefresh {
    started: mpsc::Receiver<()>,
    release: mpsc::Sender<()>,
    caller: thread::JoinHandle<u32>,
}

impl HeldRefresh {
    /// Calls `get_or_insert_with(key)` on a thread whose computation returns `value` once
    /// released; waits until it runs.
    fn start(cache: &Cache<u32, u32>, key: u32, value: u32) -> HeldRefresh {
        let (started_tx, started) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let cache = cache.clone();
        let caller = thread::spawn(move || {
            cache.get_or_insert_with(key, || {
                started_tx.send(()).unwrap();
                release_rx.recv_timeout(HANG).expect("released");
                value
            })
        });
        started.recv_timeout(HANG).expect("the refresh starts");
        HeldRefresh {
            started,
            release,
            caller,
        }
    }

    fn finish(self) -> u32 {
        self.release.send(()).unwrap();
        let value = self.caller.join().unwrap();
        assert!(self.started.try_recv().is_err(), "ran once");
        value
    }
}

#[test]
fn an_entry_due_for_a_refresh_is_served_at_once_while_one_caller_recomputes_it() {
    let clock = MockClock::new();
    let cache = refreshing(&clock);
    cache.insert(1, 10);
    clock.advance(REFRESH - NS);
    assert_eq!(cache.get_or_insert_with(1, || 99), 10, "not due yet");
    assert_eq!(cache.stats().refreshes, 0);
    clock.advance(NS);
    assert_eq!(
        cache.get(&1),
        Some(10),
        "`get` serves a due entry and refreshes nothing"
    );

    let refresh = HeldRefresh::start(&cache, 1, 20);
    let others_ran = Arc::new(AtomicU32::new(0));
    let others: Vec<_> = (0..8)
        .map(|_| {
            let (cache, ran) = (cache.clone(), others_ran.clone());
            thread::spawn(move || {
                cache.get_or_insert_with(1, || {
                    ran.fetch_add(1, SeqCst);
                    99
                })
            })
        })
        .collect();
    // They return while the refresh is held: nobody waits for it.
    for other in others {
        assert_eq!(other.join().unwrap(), 10, "the old value, at once");
    }
    assert_eq!(
        refresh.finish(),
        20,
        "the refreshing caller gets the new value"
    );
    assert_eq!(others_ran.load(SeqCst), 0, "one recomputation");
    assert_eq!(
        cache.get_or_insert_with(1, || 99),
        20,
        "new value afterwards"
    );
    let stats = cache.stats();
    assert_eq!((stats.refreshes, stats.refresh_failures), (1, 0));
    assert_eq!(stats.loads, 0, "a refresh is not a load");
    assert!(
        stats
            .to_string()
            .ends_with("refreshes=1 refresh_failures=0"),
        "{stats}"
    );

    // The new value starts a new lifetime: not due again before `REFRESH`.
    clock.advance(REFRESH - NS);
    assert_eq!(cache.get_or_insert_with(1, || 99), 20);
    assert_eq!(cache.stats().refreshes, 1);
}

#[test]
fn many_threads_on_a_due_key_start_exactly_one_refresh() {
    const THREADS: usize = 16;
    let clock = MockClock::new();
    let cache = refreshing(&clock);
    for round in 0..20u32 {
        cache.insert(round, 10);
        clock.advance(REFRESH);
        let (runs, returned) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicUsize::new(0)));
        let barrier = Arc::new(Barrier::new(THREADS));
        let callers: Vec<_> = (0..THREADS)
            .map(|_| {
                let (cache, runs, returned) = (cache.clone(), runs.clone(), returned.clone());
                let barrier = barrier.clone();
                thread::spawn(move || {
                    barrier.wait();
                    let value = cache.get_or_insert_with(round, || {
                        runs.fetch_add(1, SeqCst);
                        // Held until every other caller has its answer, so they all overlap it.
                        wait_until("the other callers return", || {
                            returned.load(SeqCst) == THREADS - 1
                        });
                        20
                    });
                    returned.fetch_add(1, SeqCst);
                    value
                })
            })
            .collect();
        let mut values: Vec<u32> = callers.into_iter().map(|c| c.join().unwrap()).collect();
        values.sort_unstable();
        assert_eq!(runs.load(SeqCst), 1, "round {round}: one refresh");
        assert_eq!(values[..THREADS - 1], [10; THREADS - 1], "round {round}");
        assert_eq!(values[THREADS - 1], 20, "round {round}");
        assert_eq!(cache.get(&round), Some(20));
    }
    assert_eq!(cache.stats().refreshes, 20);
}

#[test]
fn a_failed_refresh_keeps_the_old_value_is_counted_and_is_retried_after_a_pause() {
    let clock = MockClock::new();
    let cache = refreshing(&clock);
    cache.insert(1, 10);
    clock.advance(REFRESH);
    let failed: Result<u32, &str> = cache.try_get_or_insert_with(1, || Err("down"));
    assert_eq!(failed, Ok(10), "the refreshing caller gets the old value");
    assert_eq!(cache.get(&1), Some(10));
    let stats = cache.stats();
    assert_eq!((stats.refreshes, stats.refresh_failures), (1, 1));

    // No attempt on every hit: the next one waits a quarter of the refresh window.
    clock.advance(BACKOFF - NS);
    let again: Result<u32, &str> = cache.try_get_or_insert_with(1, || panic!("retried too soon"));
    assert_eq!(again, Ok(10));
    clock.advance(NS);
    let again: Result<u32, &str> = cache.try_get_or_insert_with(1, || Err("still down"));
    assert_eq!(again, Ok(10));
    assert_eq!(cache.stats().refresh_failures, 2);

    // Until its time-to-live, and not after.
    clock.advance(TTL - REFRESH - BACKOFF - NS);
    assert_eq!(cache.get(&1), Some(10));
    clock.advance(NS);
    assert_eq!(
        cache.get(&1),
        None,
        "a failed refresh does not extend the ttl"
    );
}

/// A refresh that finds nothing to store (a `None` that is not cached) says the value is gone
/// at its source: the old one is dropped, not kept. A failed one keeps it.
#[test]
fn a_refresh_finding_nothing_drops_the_old_value_and_a_failed_one_keeps_it() {
    let clock = MockClock::new();
    let cache = refreshing(&clock);
    cache.insert(1, 10);
    cache.insert(2, 20);
    clock.advance(REFRESH);
    let failed: Result<Option<u32>, &str> =
        cache.try_optionally_get_or_insert_with(2, || Err("down"));
    assert_eq!(failed, Ok(Some(20)));
    assert_eq!(cache.get(&2), Some(20), "a failed refresh keeps the value");
    assert_eq!(cache.optionally_get_or_insert_with(1, || None), None);
    assert_eq!(cache.get(&1), None, "the value is gone at its source");
    let stats = cache.stats();
    assert_eq!((stats.refreshes, stats.refresh_failures), (2, 1));
}

static DELETED: AtomicBool = AtomicBool::new(false);

#[cached(refresh = "10s", cache_none = false)]
fn find_row(id: u64) -> Option<u64> {
    (!DELETED.load(SeqCst)).then_some(id)
}

#[test]
fn a_cached_function_whose_refresh_returns_an_uncached_none_forgets_the_old_value() {
    let clock = memokit::testing::mock_clock();
    assert_eq!(find_row(1), Some(1));
    DELETED.store(true, SeqCst);
    clock.advance(Duration::from_secs(11));
    assert_eq!(find_row(1), None, "the refreshing caller");
    assert_eq!(find_row(1), None, "every later caller");
    assert!(find_row_cache().is_empty());
}

static ASYNC_DELETED: AtomicBool = AtomicBool::new(false);

#[cached(refresh = "200ms", cache_none = false)]
async fn find_row_async(id: u64) -> Option<u64> {
    (!ASYNC_DELETED.load(SeqCst)).then_some(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_refresh_on_a_task_that_returns_an_uncached_none_forgets_the_old_value() {
    assert_eq!(find_row_async(1).await, Some(1));
    ASYNC_DELETED.store(true, SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Its caller gets the old value at once; the refresh runs on a task.
    assert_eq!(find_row_async(1).await, Some(1));
    wait_until("the refresh ended", || find_row_async_cache().is_empty());
    assert_eq!(find_row_async(1).await, None);
}

#[test]
fn a_panicking_refresh_keeps_the_old_value_and_is_counted() {
    let clock = MockClock::new();
    let cache = refreshing(&clock);
    cache.insert(1, 10);
    clock.advance(REFRESH);
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        cache.get_or_insert_with(1, || panic!("refresh panics"))
    }));
    assert!(
        panicked.is_err(),
        "the panic goes to the caller that ran it"
    );
    assert_eq!(cache.get(&1), Some(10));
    let stats = cache.stats();
    assert_eq!((stats.refreshes, stats.refresh_failures), (1, 1));
    clock.advance(BACKOFF);
    assert_eq!(cache.get_or_insert_with(1, || 20), 20, "tried again");
}

#[test]
fn a_refresh_finishing_after_a_write_of_its_key_does_not_overwrite_it() {
    for write in ["insert", "invalidate", "clear"] {
        let clock = MockClock::new();
        let cache = refreshing(&clock);
        cache.insert(1, 10);
        clock.advance(REFRESH);
        let refresh = HeldRefresh::start(&cache, 1, 20);
        match write {
            "insert" => cache.insert(1, 30),
            "invalidate" => assert!(cache.invalidate(&1)),
            _ => cache.clear(),
        }
        assert_eq!(
            refresh.finish(),
            20,
            "{write}: its caller still gets its value"
        );
        let expected = (write == "insert").then_some(30);
        assert_eq!(cache.get(&1), expected, "{write}: the newer state stays");
    }
}

#[test]
fn a_key_expiring_during_its_refresh_waits_for_the_refresh() {
    let clock = MockClock::new();
    let cache = refreshing(&clock);
    cache.insert(1, 10);
    clock.advance(REFRESH);
    let refresh = HeldRefresh::start(&cache, 1, 20);
    clock.advance(TTL - REFRESH);
    let waiter = {
        let cache = cache.clone();
        thread::spawn(move || cache.get_or_insert_with(1, || 99))
    };
    wait_until("the caller waits", || cache.stats().coalesced_waits == 1);
    assert_eq!(refresh.finish(), 20);
    assert_eq!(
        waiter.join().unwrap(),
        20,
        "the expired key's caller got the refresh"
    );
}

// --- async functions ---

static SPAWNED_RUNS: AtomicU32 = AtomicU32::new(0);
static SPAWNED_GATE: AtomicBool = AtomicBool::new(true);

/// `n * 100 + the run number`, once `SPAWNED_GATE` is open.
#[cached(ttl = "1h", refresh = "200ms")]
async fn spawned(n: u32) -> u32 {
    let run = SPAWNED_RUNS.fetch_add(1, SeqCst) + 1;
    // Bounded, so that a refresh run by the caller fails the test instead of hanging it.
    let held_since = Instant::now();
    while !SPAWNED_GATE.load(SeqCst) && held_since.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    n * 100 + run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_refresh_runs_on_a_tokio_task_while_every_caller_gets_the_old_value() {
    assert_eq!(spawned(1).await, 101);
    tokio::time::sleep(Duration::from_millis(400)).await;
    SPAWNED_GATE.store(false, SeqCst);
    assert_eq!(
        spawned(1).await,
        101,
        "the old value at once, refresh still held"
    );
    wait_until("the refresh runs", || SPAWNED_RUNS.load(SeqCst) == 2);
    assert_eq!(
        spawned(1).await,
        101,
        "still the old value, no second refresh"
    );
    assert_eq!(SPAWNED_RUNS.load(SeqCst), 2);
    SPAWNED_GATE.store(true, SeqCst);
    // The value is stored before the refresh is counted, on the task's worker: both awaited.
    wait_until("the refresh stores its value and is counted", || {
        spawned_cache().get(&1) == Some(102) && spawned_cache().stats().refreshes == 1
    });
    assert_eq!(spawned(1).await, 102);
    let stats = spawned_cache().stats();
    assert_eq!(
        (stats.refreshes, stats.loads, SPAWNED_RUNS.load(SeqCst)),
        (1, 1, 2)
    );
}

static CROWD_RUNS: AtomicU32 = AtomicU32::new(0);
static CROWD_GATE: AtomicBool = AtomicBool::new(true);

#[cached(ttl = "1h", refresh = "200ms")]
async fn crowd(n: u32) -> u32 {
    let run = CROWD_RUNS.fetch_add(1, SeqCst) + 1;
    let held_since = Instant::now();
    while !CROWD_GATE.load(SeqCst) && held_since.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    n * 100 + run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_on_a_due_key_start_exactly_one_refresh() {
    assert_eq!(crowd(1).await, 101);
    tokio::time::sleep(Duration::from_millis(400)).await;
    CROWD_GATE.store(false, SeqCst);
    let tasks: Vec<_> = (0..500).map(|_| tokio::spawn(crowd(1))).collect();
    for task in tasks {
        assert_eq!(
            task.await.unwrap(),
            101,
            "the old value while the refresh is held"
        );
    }
    assert_eq!(CROWD_RUNS.load(SeqCst), 2, "one refresh for 500 tasks");
    CROWD_GATE.store(true, SeqCst);
    // The refresh is counted just after its value is stored: wait for both.
    wait_until("the refresh stores its value and is counted", || {
        crowd_cache().stats().refreshes == 1 && crowd_cache().get(&1) == Some(102)
    });
    assert_eq!(crowd_cache().stats().refreshes, 1);
}

static IN_TASK_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(ttl = "1h", refresh = "200ms")]
async fn in_task(n: u32) -> u32 {
    n * 100 + IN_TASK_RUNS.fetch_add(1, SeqCst) + 1
}

#[test]
fn without_a_tokio_runtime_the_calling_task_refreshes() {
    assert_eq!(block_on(in_task(1)), 101);
    thread::sleep(Duration::from_millis(400));
    assert_eq!(block_on(in_task(1)), 102, "the calling task recomputed");
    assert_eq!(block_on(in_task(1)), 102);
    let stats = in_task_cache().stats();
    assert_eq!((stats.refreshes, IN_TASK_RUNS.load(SeqCst)), (1, 2));
}

static BORROWING_RUNS: AtomicU32 = AtomicU32::new(0);

/// A borrowed argument cannot go to another task: the calling task refreshes, also on tokio.
#[cached(ttl = "1h", refresh = "200ms")]
async fn borrowing(name: &str) -> String {
    format!("{name} {}", BORROWING_RUNS.fetch_add(1, SeqCst) + 1)
}

#[tokio::test]
async fn an_async_function_with_borrowed_arguments_refreshes_in_the_calling_task() {
    assert_eq!(borrowing("a").await, "a 1");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(borrowing("a").await, "a 2");
    assert_eq!(borrowing_cache().stats().refreshes, 1);
}

/// A minimal executor with no tokio runtime around it.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        thread::park();
    }
}

// --- sync functions ---

static SYNC_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(ttl = "1h", refresh = "200ms")]
fn sync_version(n: u32) -> Result<u32, String> {
    Ok(n * 100 + SYNC_RUNS.fetch_add(1, SeqCst) + 1)
}

#[test]
fn a_sync_function_is_refreshed_by_its_first_caller_past_refresh() {
    assert_eq!(sync_version(1), Ok(101));
    assert_eq!(sync_version(1), Ok(101));
    thread::sleep(Duration::from_millis(400));
    assert_eq!(sync_version(1), Ok(102));
    assert_eq!(sync_version(1), Ok(102));
    let stats = sync_version_cache().stats();
    assert_eq!(
        (stats.loads, stats.refreshes, SYNC_RUNS.load(SeqCst)),
        (1, 1, 2)
    );
}

#[test]
fn without_a_ttl_entries_never_expire_and_are_refreshed_every_refresh_period() {
    let clock = MockClock::new();
    let cache: Cache<u32, u32> = Cache::builder()
        .refresh_after(REFRESH)
        .clock(clock.clone())
        .build();
    cache.insert(1, 10);
    clock.advance(REFRESH - NS);
    assert_eq!(cache.get_or_insert_with(1, || panic!("not due yet")), 10);
    clock.advance(NS);
    assert_eq!(cache.get_or_insert_with(1, || 11), 11, "due: refreshed");
    assert_eq!(cache.stats().refreshes, 1);

    // A failure keeps the old value (there is no ttl to end it) and waits a quarter of
    // `refresh` before the next attempt.
    clock.advance(REFRESH);
    let failed: Result<u32, &str> = cache.try_get_or_insert_with(1, || Err("down"));
    assert_eq!(failed, Ok(11));
    clock.advance(REFRESH / 4 - NS);
    assert_eq!(
        cache.get_or_insert_with(1, || panic!("retried too soon")),
        11
    );
    clock.advance(NS);
    assert_eq!(cache.get_or_insert_with(1, || 12), 12);

    // Never expires: a year later, the value is still there and due again.
    clock.advance(Duration::from_secs(365 * 24 * 3600));
    assert_eq!(cache.get(&1), Some(12));
    assert_eq!(cache.get_or_insert_with(1, || 13), 13);
    let stats = cache.stats();
    assert_eq!(
        (stats.refreshes, stats.refresh_failures, stats.expirations),
        (4, 1, 0)
    );
}

static UNBOUNDED_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(refresh = "200ms")]
fn refreshed_without_ttl(n: u32) -> u32 {
    n * 100 + UNBOUNDED_RUNS.fetch_add(1, SeqCst) + 1
}

#[test]
fn the_macro_accepts_refresh_without_ttl() {
    assert_eq!(refreshed_without_ttl(1), 101);
    assert_eq!(refreshed_without_ttl(1), 101);
    thread::sleep(Duration::from_millis(400));
    assert_eq!(refreshed_without_ttl(1), 102);
    assert_eq!(refreshed_without_ttl(1), 102);
    let stats = refreshed_without_ttl_cache().stats();
    assert_eq!((stats.loads, stats.refreshes), (1, 1));
}

// --- jitter ---

/// Inserts 10,000 entries at one instant, then moves the clock across `[from, to]` in 100
/// steps; returns how many entries expired in each step (and checks none before, all after).
fn expiries(cache: &Cache<u32, u32>, clock: &MockClock, from: Duration, to: Duration) -> Vec<u64> {
    const ENTRIES: u32 = 10_000;
    for i in 0..ENTRIES {
        cache.insert(i, i);
    }
    clock.advance(from - NS);
    cache.purge_expired();
    assert_eq!(
        cache.len(),
        u64::from(ENTRIES),
        "none expires before {from:?}"
    );
    let step = (to - from) / 100;
    let mut buckets = Vec::new();
    let mut left = cache.len();
    for _ in 0..100 {
        clock.advance(step);
        cache.purge_expired();
        buckets.push(left - cache.len());
        left = cache.len();
    }
    clock.advance(to - from + NS - step * 100);
    cache.purge_expired();
    *buckets.last_mut().unwrap() += left - cache.len();
    assert_eq!(cache.len(), 0, "all expired by {to:?}");
    buckets
}

#[test]
fn jitter_spreads_the_expiry_of_entries_written_together_over_its_window() {
    let ttl = Duration::from_secs(100);
    let clock = MockClock::new();
    let cache: Cache<u32, u32> = Cache::builder()
        .time_to_live(ttl)
        .ttl_jitter(0.1)
        .clock(clock.clone())
        .build();
    let buckets = expiries(&cache, &clock, ttl * 9 / 10, ttl * 11 / 10);
    let used = buckets.iter().filter(|&&n| n > 0).count();
    let fullest = *buckets.iter().max().unwrap();
    // Uniform: about 100 per step.
    assert!(used >= 95, "{used} of 100 steps saw expiries: {buckets:?}");
    assert!(
        fullest <= 250,
        "one step saw {fullest} of 10,000: {buckets:?}"
    );
    let first_half: u64 = buckets[..50].iter().sum();
    assert!(
        (4_000..=6_000).contains(&first_half),
        "{first_half} below ttl"
    );
}

#[test]
fn without_jitter_entries_written_together_expire_together() {
    let ttl = Duration::from_secs(100);
    let clock = MockClock::new();
    let cache: Cache<u32, u32> = Cache::builder()
        .time_to_live(ttl)
        .clock(clock.clone())
        .build();
    let buckets = expiries(&cache, &clock, ttl * 9 / 10, ttl * 11 / 10);
    assert_eq!(buckets.iter().filter(|&&n| n > 0).count(), 1, "{buckets:?}");
    assert_eq!(buckets[50], 10_000, "all at `ttl`: {buckets:?}");
}

#[cached(ttl = "1h", jitter = 0.1, refresh = "50m")]
fn jittered_fraction(n: u32) -> u32 {
    n
}

#[cached(ttl = "1h", jitter = "5m")]
fn jittered_duration(n: u32) -> u32 {
    n
}

#[test]
fn the_jitter_option_accepts_a_fraction_or_a_duration() {
    assert_eq!(jittered_fraction(1), 1);
    assert_eq!(jittered_duration(1), 1);
    assert_eq!(jittered_fraction_cache().get(&1), Some(1));
    assert_eq!(jittered_duration_cache().get(&1), Some(1));
}

// --- the shared tier ---

static SHARED_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(
    ttl = "1h",
    refresh = "200ms",
    redis(ttl = "10m"),
    name = "refresh::shared"
)]
fn shared_version(n: u32) -> u32 {
    n * 100 + SHARED_RUNS.fetch_add(1, SeqCst) + 1
}

static SHARED_GONE: AtomicBool = AtomicBool::new(false);

#[cached(
    refresh = "200ms",
    cache_none = false,
    redis(ttl = "10m"),
    name = "refresh::shared_row"
)]
fn shared_row(n: u32) -> Option<u32> {
    (!SHARED_GONE.load(SeqCst)).then_some(n)
}

#[test]
fn a_refresh_through_redis_recomputes_and_writes_the_new_value_through() {
    let Some(server) = memokit_tests::RedisServer::start() else {
        return;
    };
    memokit::redis::connect(&server.url()).expect("a valid URL");
    assert_eq!(shared_version(1), 101);
    thread::sleep(Duration::from_millis(400));
    assert_eq!(
        shared_version(1),
        102,
        "recomputed, not read back from Redis"
    );
    // Forget it in this process only: the next call reads what Redis holds.
    shared_version_cache().cache().invalidate(&1);
    assert_eq!(shared_version(1), 102, "Redis holds the refreshed value");
    assert_eq!(SHARED_RUNS.load(SeqCst), 2);
    assert_eq!(shared_version_cache().stats().l2_hits, 1);

    // A refresh that finds the value gone removes it from Redis too, or the next miss would
    // read it back.
    assert_eq!(shared_row(1), Some(1));
    SHARED_GONE.store(true, SeqCst);
    thread::sleep(Duration::from_millis(400));
    assert_eq!(shared_row(1), None, "the refreshing caller");
    assert_eq!(shared_row(1), None, "not read back from Redis");
    assert_eq!(shared_row_cache().stats().l2_hits, 0);
}
