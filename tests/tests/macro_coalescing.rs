//! Request coalescing through `#[cached]`: concurrent callers of one missing key share one run
//! of the body (async tasks and threads), `coalesce = false` lets each run its own, and errors
//! reach waiters only when they can be cloned; otherwise waiters run the body themselves.
//!
//! The tests are deterministic: a body that must overlap with other callers does not finish
//! until they have arrived (it watches the `coalesced_waits` counter, or meets the others at a
//! barrier), always with a deadline, so a broken implementation fails an assertion instead of
//! hanging; every multi-caller run also sits under an overall timeout.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Condvar, Mutex, OnceLock};
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use memokit::cached;

/// How long a body waits for the other callers before giving up.
const PATIENCE: Duration = Duration::from_secs(5);
/// How long a whole multi-caller run may take before the test declares a hang.
const HANG: Duration = Duration::from_secs(30);

fn runs(counter: &AtomicUsize) -> usize {
    counter.load(SeqCst)
}

/// Polls `condition` until it holds or [`PATIENCE`] runs out; returns whether it held.
fn wait_until(condition: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        if Instant::now() > deadline {
            return false;
        }
        sleep(Duration::from_millis(1));
    }
    true
}

/// [`wait_until`] for async bodies: sleeps on the runtime instead of blocking a worker.
async fn wait_until_async(condition: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    true
}

/// Runs `work` on its own thread and fails the test if it has not ended after [`HANG`].
fn within<T: Send + 'static>(what: &str, work: impl FnOnce() -> T + Send + 'static) -> T {
    let handle = thread::spawn(work);
    let deadline = Instant::now() + HANG;
    while !handle.is_finished() {
        assert!(Instant::now() < deadline, "{what}: a caller hangs");
        sleep(Duration::from_millis(5));
    }
    match handle.join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Awaits `work`, failing the test if it has not ended after [`HANG`].
async fn within_async<T>(what: &str, work: impl Future<Output = T>) -> T {
    match tokio::time::timeout(HANG, work).await {
        Ok(value) => value,
        Err(_) => panic!("{what}: a caller hangs"),
    }
}

/// Starts `count` threads together (behind a barrier), each calling `call`; their results.
fn threads<T: Send + 'static>(
    count: usize,
    call: impl Fn() -> T + Send + Sync + 'static,
) -> Vec<thread::Result<T>> {
    let barrier = Arc::new(Barrier::new(count));
    let call = Arc::new(call);
    let handles: Vec<_> = (0..count)
        .map(|_| {
            let barrier = barrier.clone();
            let call = call.clone();
            thread::spawn(move || {
                barrier.wait();
                call()
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join()).collect()
}

/// Starts `count` tasks together (behind a barrier), each awaiting `call()`; their results.
async fn tasks<T, F>(count: usize, call: impl Fn() -> F) -> Vec<T>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(count));
    let handles: Vec<_> = (0..count)
        .map(|_| {
            let barrier = barrier.clone();
            let call = call();
            tokio::spawn(async move {
                barrier.wait().await;
                call.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(count);
    for handle in handles {
        results.push(handle.await.expect("task panicked"));
    }
    results
}

// ---------------------------------------------------------------------------------------------
// One run for many callers.

const TASKS: usize = 1000;
static TASKS_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
async fn thousand_tasks_subject(n: u64) -> u64 {
    TASKS_RUNS.fetch_add(1, SeqCst);
    // Stays running until every other caller waits on this run.
    let waits = || thousand_tasks_subject_cache().stats().coalesced_waits;
    wait_until_async(|| waits() >= TASKS as u64 - 1).await;
    n * 2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_tasks_share_one_run() {
    let results = within_async("1000 tasks", tasks(TASKS, || thousand_tasks_subject(21))).await;
    assert_eq!(results.len(), TASKS);
    assert!(results.iter().all(|&r| r == 42));
    assert_eq!(runs(&TASKS_RUNS), 1);
    let stats = thousand_tasks_subject_cache().stats();
    assert_eq!(stats.loads, 1);
    assert_eq!(stats.coalesced_waits, TASKS as u64 - 1);
    assert_eq!(stats.hits + stats.misses, TASKS as u64);
}

const THREADS: usize = 16;
static THREADS_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn sixteen_threads_subject(n: u64) -> String {
    THREADS_RUNS.fetch_add(1, SeqCst);
    let waits = || sixteen_threads_subject_cache().stats().coalesced_waits;
    wait_until(|| waits() >= THREADS as u64 - 1);
    format!("value {n}")
}

#[test]
fn sixteen_threads_share_one_run() {
    let results = within("16 threads", || {
        threads(THREADS, || sixteen_threads_subject(7))
    });
    for result in results {
        assert_eq!(result.expect("no caller panics"), "value 7");
    }
    assert_eq!(runs(&THREADS_RUNS), 1);
    let stats = sixteen_threads_subject_cache().stats();
    assert_eq!(stats.loads, 1);
    assert_eq!(stats.coalesced_waits, THREADS as u64 - 1);
}

static OTHER_KEY_DONE: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn independent_keys_subject(n: u32) -> bool {
    match n {
        // Key 1 finishes only once key 2 was computed meanwhile.
        1 => wait_until(|| OTHER_KEY_DONE.load(SeqCst) == 1),
        _ => {
            OTHER_KEY_DONE.store(1, SeqCst);
            true
        }
    }
}

#[test]
fn callers_of_other_keys_do_not_wait() {
    let first = thread::spawn(|| independent_keys_subject(1));
    // Once key 1 is running, compute key 2 on this thread.
    assert!(wait_until(|| independent_keys_subject_cache()
        .stats()
        .misses
        >= 1));
    assert!(within("key 2", || independent_keys_subject(2)));
    assert!(first.join().unwrap(), "key 2 waited for key 1's run");
}

// ---------------------------------------------------------------------------------------------
// `coalesce = false`: every concurrent caller runs the body.

/// A barrier that gives up after [`PATIENCE`]: `wait` returns whether everyone arrived.
struct TimedBarrier {
    arrived: Mutex<usize>,
    all: Condvar,
    count: usize,
}

impl TimedBarrier {
    const fn new(count: usize) -> Self {
        TimedBarrier {
            arrived: Mutex::new(0),
            all: Condvar::new(),
            count,
        }
    }

    fn wait(&self) -> bool {
        let mut arrived = self.arrived.lock().unwrap();
        *arrived += 1;
        self.all.notify_all();
        let (arrived, _) = self
            .all
            .wait_timeout_while(arrived, PATIENCE, |arrived| *arrived < self.count)
            .unwrap();
        *arrived >= self.count
    }
}

const UNCOALESCED: usize = 8;
static UNCOALESCED_GATE: TimedBarrier = TimedBarrier::new(UNCOALESCED);
static UNCOALESCED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(coalesce = false)]
fn uncoalesced_subject(n: u32) -> (u32, bool) {
    UNCOALESCED_RUNS.fetch_add(1, SeqCst);
    // Completes (with `true`) only if all eight callers run the body at the same time.
    (n, UNCOALESCED_GATE.wait())
}

#[test]
fn without_coalescing_every_concurrent_caller_runs_the_body() {
    let results = within("8 uncoalesced threads", || {
        threads(UNCOALESCED, || uncoalesced_subject(1))
    });
    for result in results {
        // Each caller returns what its own run computed: all eight met at the barrier.
        assert_eq!(result.expect("no caller panics"), (1, true));
    }
    assert_eq!(runs(&UNCOALESCED_RUNS), UNCOALESCED);
    let memo = uncoalesced_subject_cache();
    assert_eq!(memo.stats().coalesced_waits, 0);
    assert_eq!(memo.stats().loads, UNCOALESCED as u64);
    // The results are still cached.
    assert_eq!(memo.len(), 1);
    uncoalesced_subject(1);
    assert_eq!(runs(&UNCOALESCED_RUNS), UNCOALESCED);
}

static UNCOALESCED_ASYNC_RUNS: AtomicUsize = AtomicUsize::new(0);

fn uncoalesced_async_gate() -> &'static tokio::sync::Barrier {
    static GATE: OnceLock<tokio::sync::Barrier> = OnceLock::new();
    GATE.get_or_init(|| tokio::sync::Barrier::new(UNCOALESCED))
}

#[cached(coalesce = false)]
async fn uncoalesced_async_subject(n: u32) -> (u32, bool) {
    UNCOALESCED_ASYNC_RUNS.fetch_add(1, SeqCst);
    let met = tokio::time::timeout(PATIENCE, uncoalesced_async_gate().wait()).await;
    (n, met.is_ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_coalescing_every_concurrent_task_runs_the_body() {
    let results = within_async(
        "8 uncoalesced tasks",
        tasks(UNCOALESCED, || uncoalesced_async_subject(1)),
    )
    .await;
    assert!(results.iter().all(|&r| r == (1, true)), "{results:?}");
    assert_eq!(runs(&UNCOALESCED_ASYNC_RUNS), UNCOALESCED);
}

// ---------------------------------------------------------------------------------------------
// Errors: shared with waiters when `Clone`, otherwise each waiter runs the body.

#[derive(Debug, Clone, PartialEq)]
struct Unavailable(u32);

static SHARED_ERROR_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn shared_error_subject(n: u32) -> Result<u32, Unavailable> {
    SHARED_ERROR_RUNS.fetch_add(1, SeqCst);
    let waits = || shared_error_subject_cache().stats().coalesced_waits;
    wait_until(|| waits() >= THREADS as u64 - 1);
    Err(Unavailable(n))
}

#[test]
fn a_clone_error_is_shared_with_the_waiters() {
    let results = within("16 threads, shared error", || {
        threads(THREADS, || shared_error_subject(3))
    });
    for result in results {
        assert_eq!(result.expect("no caller panics"), Err(Unavailable(3)));
    }
    assert_eq!(
        runs(&SHARED_ERROR_RUNS),
        1,
        "waiters got the leader's error"
    );
    let memo = shared_error_subject_cache();
    assert_eq!(memo.len(), 0, "the error was not cached");
    assert_eq!(shared_error_subject(3), Err(Unavailable(3)));
    assert_eq!(runs(&SHARED_ERROR_RUNS), 2, "the next call runs again");
}

/// An error that cannot be cloned.
#[derive(Debug)]
struct NotClone(u32);

static UNSHARED_ERROR_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn unshared_error_subject(n: u32) -> Result<u32, NotClone> {
    let run = UNSHARED_ERROR_RUNS.fetch_add(1, SeqCst);
    if run == 0 {
        let waits = || unshared_error_subject_cache().stats().coalesced_waits;
        wait_until(|| waits() >= THREADS as u64 - 1);
    }
    Err(NotClone(n))
}

#[test]
fn with_a_non_clone_error_each_waiter_runs_the_body() {
    let results = within("16 threads, non-Clone error", || {
        threads(THREADS, || unshared_error_subject(4))
    });
    for result in results {
        let result = result.expect("no caller panics");
        assert!(matches!(result, Err(NotClone(4))), "{result:?}");
    }
    // No waiter can get the error, and no run stores a value: every caller runs the body once.
    assert_eq!(runs(&UNSHARED_ERROR_RUNS), THREADS);
    let stats = unshared_error_subject_cache().stats();
    assert_eq!(stats.load_failures, THREADS as u64);
    assert!(
        stats.coalesced_waits >= THREADS as u64 - 1,
        "they waited first"
    );
    assert_eq!(unshared_error_subject_cache().len(), 0);
}

static RETRY_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn retry_subject(n: u32) -> std::io::Result<u32> {
    let run = RETRY_RUNS.fetch_add(1, SeqCst);
    if run == 0 {
        let waits = || retry_subject_cache().stats().coalesced_waits;
        wait_until(|| waits() >= THREADS as u64 - 1);
        return Err(std::io::Error::other("first run fails"));
    }
    Ok(n)
}

#[test]
fn after_a_non_clone_error_one_waiter_runs_again_and_the_others_share_its_value() {
    let results = within("16 threads, failing then succeeding", || {
        threads(THREADS, || retry_subject(5))
    });
    let results: Vec<_> = results
        .into_iter()
        .map(|r| r.expect("no caller panics"))
        .collect();
    let failed = results.iter().filter(|r| r.is_err()).count();
    let succeeded = results.iter().filter(|r| matches!(r, Ok(5))).count();
    assert_eq!((failed, succeeded), (1, THREADS - 1));
    assert_eq!(runs(&RETRY_RUNS), 2);
    // Everyone but the first caller waited on the failed run.
    let stats = retry_subject_cache().stats();
    assert!(stats.coalesced_waits >= THREADS as u64 - 1);
    assert_eq!(retry_subject_cache().get(&5), Some(5));
}

// A source that keeps failing, 32 callers, a 100 ms body (issue #16): the failure is not run
// once per waiter, one after another.
const FAILING_CALLERS: usize = 32;
const FAILING_BODY: Duration = Duration::from_millis(100);

/// Calls `call` from [`FAILING_CALLERS`] threads; the results and the slowest caller's time.
fn failing_callers<T: Send + 'static>(
    call: impl Fn() -> T + Send + Sync + 'static,
) -> (Vec<T>, Duration) {
    let started = Instant::now();
    let results = within("32 threads on a failing source", move || {
        threads(FAILING_CALLERS, move || (call(), started.elapsed()))
    });
    let results: Vec<_> = results
        .into_iter()
        .map(|r| r.expect("no caller panics"))
        .collect();
    let slowest = results.iter().map(|(_, took)| *took).max().unwrap();
    (results.into_iter().map(|(r, _)| r).collect(), slowest)
}

type BoxedError = Box<dyn std::error::Error + Send + Sync>;
static LOAD_FAILED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn load_failed_subject(n: u32) -> Result<u32, BoxedError> {
    LOAD_FAILED_RUNS.fetch_add(1, SeqCst);
    let waits = || load_failed_subject_cache().stats().coalesced_waits;
    wait_until(|| waits() >= FAILING_CALLERS as u64 - 1);
    sleep(FAILING_BODY);
    Err(format!("db down for {n}").into())
}

/// An error that is not `Clone` but converts from `memokit::LoadFailed` (here a boxed error):
/// the waiters get a `LoadFailed` with the leader's message, and the body runs once.
#[test]
fn a_failure_that_converts_from_load_failed_runs_once_for_all_waiters() {
    let (results, slowest) = failing_callers(|| load_failed_subject(9).map_err(|e| e.to_string()));
    eprintln!(
        "{FAILING_CALLERS} callers, {FAILING_BODY:?} failing body: {} runs, slowest caller {slowest:?}",
        runs(&LOAD_FAILED_RUNS)
    );
    assert_eq!(runs(&LOAD_FAILED_RUNS), 1, "the waiters shared the failure");
    let leader = results
        .iter()
        .filter(|r| **r == Err("db down for 9".into()));
    assert_eq!(leader.count(), 1);
    let shared = Err("memokit: the coalesced computation failed: db down for 9".into());
    let waiters = results.iter().filter(|r| **r == shared);
    assert_eq!(waiters.count(), FAILING_CALLERS - 1);
    assert_eq!(load_failed_subject_cache().len(), 0);
}

static FAILING_RUNS: AtomicUsize = AtomicUsize::new(0);
static FAILING_RUNNING: AtomicUsize = AtomicUsize::new(0);
static FAILING_MOST_AT_ONCE: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn failing_subject(n: u32) -> Result<u32, NotClone> {
    if FAILING_RUNS.fetch_add(1, SeqCst) == 0 {
        let waits = || failing_subject_cache().stats().coalesced_waits;
        wait_until(|| waits() >= FAILING_CALLERS as u64 - 1);
    }
    let running = FAILING_RUNNING.fetch_add(1, SeqCst) + 1;
    FAILING_MOST_AT_ONCE.fetch_max(running, SeqCst);
    sleep(FAILING_BODY);
    FAILING_RUNNING.fetch_sub(1, SeqCst);
    Err(NotClone(n))
}

/// An error that can be neither cloned nor converted: each caller must run the body to get
/// one, but after the leader's run and one retry fail, the other waiters run theirs together,
/// not one after another.
#[test]
fn a_failure_that_cannot_be_shared_is_retried_once_then_run_by_each_waiter_at_once() {
    let (results, slowest) = failing_callers(|| failing_subject(10));
    eprintln!(
        "{FAILING_CALLERS} callers, {FAILING_BODY:?} failing body, non-Clone error: {} runs, \
         at most {} at once, slowest caller {slowest:?}",
        runs(&FAILING_RUNS),
        runs(&FAILING_MOST_AT_ONCE)
    );
    assert!(results.iter().all(|r| matches!(r, Err(NotClone(10)))));
    assert_eq!(runs(&FAILING_RUNS), FAILING_CALLERS);
    // The leader's run, one retry, then the 30 others at once (one at a time before).
    assert!(
        runs(&FAILING_MOST_AT_ONCE) >= FAILING_CALLERS / 2,
        "the waiters ran one after another: at most {} at once",
        runs(&FAILING_MOST_AT_ONCE)
    );
}

static SHARED_ERROR_ASYNC_RUNS: AtomicUsize = AtomicUsize::new(0);
const ERROR_TASKS: usize = 50;

#[cached]
async fn shared_error_async_subject(n: u32) -> Result<u32, Unavailable> {
    SHARED_ERROR_ASYNC_RUNS.fetch_add(1, SeqCst);
    let waits = || shared_error_async_subject_cache().stats().coalesced_waits;
    wait_until_async(|| waits() >= ERROR_TASKS as u64 - 1).await;
    Err(Unavailable(n))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_a_clone_error_is_shared_with_the_waiters() {
    let results = within_async(
        "tasks, shared error",
        tasks(ERROR_TASKS, || shared_error_async_subject(6)),
    )
    .await;
    assert!(results.iter().all(|r| *r == Err(Unavailable(6))));
    assert_eq!(runs(&SHARED_ERROR_ASYNC_RUNS), 1);
}

static UNSHARED_ERROR_ASYNC_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
async fn unshared_error_async_subject(n: u32) -> Result<u32, NotClone> {
    let run = UNSHARED_ERROR_ASYNC_RUNS.fetch_add(1, SeqCst);
    if run == 0 {
        let waits = || unshared_error_async_subject_cache().stats().coalesced_waits;
        wait_until_async(|| waits() >= ERROR_TASKS as u64 - 1).await;
    }
    tokio::task::yield_now().await;
    Err(NotClone(n))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_with_a_non_clone_error_each_waiter_runs_the_body() {
    let results = within_async(
        "tasks, non-Clone error",
        tasks(ERROR_TASKS, || unshared_error_async_subject(7)),
    )
    .await;
    assert!(results.iter().all(|r| matches!(r, Err(NotClone(7)))));
    assert_eq!(runs(&UNSHARED_ERROR_ASYNC_RUNS), ERROR_TASKS);
    let stats = unshared_error_async_subject_cache().stats();
    assert!(
        stats.coalesced_waits >= ERROR_TASKS as u64 - 1,
        "they waited first"
    );
}

// ---------------------------------------------------------------------------------------------
// A run that never finishes (panic, cancelled future) hands over to a waiter.

static PANIC_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn panic_subject(n: u32) -> u32 {
    let run = PANIC_RUNS.fetch_add(1, SeqCst);
    if run == 0 {
        let waits = || panic_subject_cache().stats().coalesced_waits;
        wait_until(|| waits() >= THREADS as u64 - 1);
        panic!("first run panics (expected by the test)");
    }
    n
}

#[test]
fn a_panicking_run_hands_over_to_one_waiter() {
    let results = within("16 threads, panicking leader", || {
        threads(THREADS, || panic_subject(8))
    });
    let panicked = results.iter().filter(|r| r.is_err()).count();
    let succeeded = results.iter().filter(|r| matches!(r, Ok(8))).count();
    assert_eq!((panicked, succeeded), (1, THREADS - 1));
    assert_eq!(runs(&PANIC_RUNS), 2);
    let stats = panic_subject_cache().stats();
    assert!(stats.coalesced_waits >= THREADS as u64 - 1);
    assert_eq!(stats.load_failures, 1);
}

static CANCEL_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
async fn cancel_subject(n: u32) -> u32 {
    if CANCEL_RUNS.fetch_add(1, SeqCst) == 0 {
        std::future::pending::<()>().await;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_hands_over_to_a_waiter() {
    let leader = tokio::spawn(cancel_subject(9));
    assert!(wait_until_async(|| runs(&CANCEL_RUNS) == 1).await);
    let waiter = tokio::spawn(cancel_subject(9));
    assert!(wait_until_async(|| cancel_subject_cache().stats().coalesced_waits == 1).await);
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    let value = within_async("waiter of a cancelled run", waiter).await;
    assert_eq!(value.unwrap(), 9);
    assert_eq!(runs(&CANCEL_RUNS), 2);
}

static ALONE_STARTED: AtomicUsize = AtomicUsize::new(0);
static ALONE_GATE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Computes alone (`coalesce = false`) and waits for `ALONE_GATE` before it returns.
#[cached(coalesce = false)]
fn alone(id: u64) -> u64 {
    ALONE_STARTED.fetch_add(1, SeqCst);
    while !ALONE_GATE.load(SeqCst) {
        sleep(Duration::from_millis(1));
    }
    id
}

/// A write wins over a computation running alone, as over a shared one: an `invalidate` or
/// an `insert` while it runs keeps its result out of the cache (it was stored after them).
#[test]
fn a_write_wins_over_an_uncoalesced_computation() {
    for (key, write) in [(1u64, false), (2, true)] {
        ALONE_GATE.store(false, SeqCst);
        let started = ALONE_STARTED.load(SeqCst);
        let caller = thread::spawn(move || alone(key));
        while ALONE_STARTED.load(SeqCst) == started {
            sleep(Duration::from_millis(1));
        }
        if write {
            alone_cache().insert(key, 99);
        } else {
            alone_cache().invalidate(&key);
        }
        ALONE_GATE.store(true, SeqCst);
        assert_eq!(
            caller.join().unwrap(),
            key,
            "the caller gets what it computed"
        );
        let expected = write.then_some(99);
        assert_eq!(alone_cache().get(&key), expected, "the write stands");
    }
}
