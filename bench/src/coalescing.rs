//! Coalescing: many callers of one missing key whose load takes 20 ms. How many loads run (it
//! must be 1), and how long until every caller has its value.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio::sync::{Notify, Semaphore};

/// How long a load takes.
pub const LOAD_TIME: Duration = Duration::from_millis(20);

/// Counts loads and remembers when the last one ended. One for the whole process: scenarios
/// run one after another, and `#[cached]` bodies can only reach a static.
#[derive(Debug)]
pub struct LoadProbe {
    loads: AtomicUsize,
    ended: Mutex<Option<Instant>>,
}

/// The probe every load of this module reports to.
pub static PROBE: LoadProbe = LoadProbe {
    loads: AtomicUsize::new(0),
    ended: Mutex::new(None),
};

impl LoadProbe {
    fn reset(&self) {
        self.loads.store(0, Ordering::SeqCst);
        *self.ended.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn loads(&self) -> usize {
        self.loads.load(Ordering::SeqCst)
    }

    fn ended(&self) -> Option<Instant> {
        *self.ended.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn finish(&self) {
        *self.ended.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// An async load of `key`: sleeps [`LOAD_TIME`] on the tokio timer, returns `key + 1`.
    pub async fn load_async(&self, key: u64) -> u64 {
        self.loads.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(LOAD_TIME).await;
        self.finish();
        key + 1
    }

    /// A blocking load of `key`: sleeps [`LOAD_TIME`], returns `key + 1`.
    pub fn load_blocking(&self, key: u64) -> u64 {
        self.loads.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(LOAD_TIME);
        self.finish();
        key + 1
    }
}

/// `#[cached]` on an async function, coalesced by default.
#[memokit::cached(size = 10_000)]
pub async fn cached_async_load(key: u64) -> u64 {
    PROBE.load_async(key).await
}

/// `#[cached]` on a blocking function, coalesced by default.
#[memokit::cached(size = 10_000)]
pub fn cached_blocking_load(key: u64) -> u64 {
    PROBE.load_blocking(key)
}

/// A key no scenario has asked for yet in this process.
fn fresh_key() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1_000_000);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// One run of one scenario.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunResult {
    /// Loads that ran.
    pub loads: usize,
    /// From the first call until every caller had its value.
    pub total: Duration,
    /// From the end of the (last) load until every caller had its value.
    pub after_load: Duration,
}

/// Every run of one scenario.
#[derive(Debug, Clone)]
pub struct ScenarioResult {
    /// What was measured, e.g. "memokit get_or_insert_with_async".
    pub name: &'static str,
    /// The callers, e.g. "1000 tokio tasks".
    pub callers: String,
    /// One result per run.
    pub runs: Vec<RunResult>,
}

impl ScenarioResult {
    /// The most loads any run saw.
    pub fn max_loads(&self) -> usize {
        self.runs.iter().map(|r| r.loads).max().unwrap_or(0)
    }

    /// The median of `field` over the runs.
    pub fn median(&self, field: impl Fn(&RunResult) -> Duration) -> Duration {
        let mut values: Vec<Duration> = self.runs.iter().map(field).collect();
        values.sort();
        values.get(values.len() / 2).copied().unwrap_or_default()
    }

    /// The largest `field` over the runs.
    pub fn max(&self, field: impl Fn(&RunResult) -> Duration) -> Duration {
        self.runs.iter().map(field).max().unwrap_or_default()
    }
}

/// `tasks` tokio tasks call `call(key)` for one fresh key; each checks its value.
///
/// The harness keeps out of the way of what it measures: every task is spawned before any
/// calls (they wait at a gate, opened once all are spawned, as threads wait at a barrier), so
/// that spawning 1000 tasks — allocating and copying futures of a few KiB each — does not
/// overlap the load's end; each task takes two `Instant`s and returns them in its own output (no
/// shared collection to lock); and the driving thread sleeps until the last task is served (one
/// wake-up, not one per finished task competing with the workers for the cores) before it
/// collects the outputs.
pub fn run_tasks<F, Fut>(runtime: &Runtime, tasks: usize, call: F) -> RunResult
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = u64> + Send + 'static,
{
    PROBE.reset();
    let key = fresh_key();
    let remaining = Arc::new(AtomicUsize::new(tasks));
    let all_served = Arc::new(Notify::new());
    let gate = Arc::new(Semaphore::new(0));
    runtime.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let value = call(key);
                let (remaining, all_served) = (remaining.clone(), all_served.clone());
                let gate = gate.clone();
                tokio::spawn(async move {
                    gate.acquire().await.expect("the gate stays open").forget();
                    let called = Instant::now();
                    let value = value.await;
                    let served = Instant::now();
                    if remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                        // A permit if the driver is not waiting yet.
                        all_served.notify_one();
                    }
                    (value, called, served)
                })
            })
            .collect();
        gate.add_permits(tasks);
        all_served.notified().await;
        let mut calls = Vec::with_capacity(tasks);
        for handle in handles {
            calls.push(handle.await.expect("a caller task panicked"));
        }
        finish(key, &calls)
    })
}

/// `threads` threads, released together, call `call(key)` for one fresh key.
pub fn run_threads(threads: usize, call: impl Fn(u64) -> u64 + Sync) -> RunResult {
    PROBE.reset();
    let key = fresh_key();
    let start = Barrier::new(threads);
    std::thread::scope(|scope| {
        let callers: Vec<_> = (0..threads)
            .map(|_| {
                let (start, call) = (&start, &call);
                scope.spawn(move || {
                    start.wait();
                    let called = Instant::now();
                    (call(key), called, Instant::now())
                })
            })
            .collect();
        let calls: Vec<(u64, Instant, Instant)> = callers
            .into_iter()
            .map(|caller| caller.join().expect("a caller thread panicked"))
            .collect();
        finish(key, &calls)
    })
}

/// Checks every caller's value and times the run from `(value, called, served)` per caller.
fn finish(key: u64, calls: &[(u64, Instant, Instant)]) -> RunResult {
    assert!(
        calls.iter().all(|&(value, _, _)| value == key + 1),
        "a caller got another key's value"
    );
    let first_call = calls
        .iter()
        .map(|c| c.1)
        .min()
        .expect("at least one caller");
    let last_served = calls
        .iter()
        .map(|c| c.2)
        .max()
        .expect("at least one caller");
    let load_end = PROBE.ended().unwrap_or(last_served);
    RunResult {
        loads: PROBE.loads(),
        total: last_served - first_call,
        after_load: last_served.saturating_duration_since(load_end),
    }
}

/// Callers per scenario and runs per scenario.
#[derive(Debug, Clone, Copy)]
pub struct CoalescingSizes {
    /// Concurrent tokio tasks.
    pub tasks: usize,
    /// Concurrent threads.
    pub threads: usize,
    /// Runs of each scenario.
    pub runs: usize,
}

/// The floor under any single flight, measured as reference rows: the first caller loads, the
/// others wait for a bare wake-up (one `tokio::sync::Notify::notify_waiters` for tasks, one
/// `Thread::unpark` per thread for threads) and read the value from a `OnceLock`, with no
/// cache, table or counters. What remains after the load is the scheduler's cost of waking and
/// running every caller.
#[derive(Debug, Default)]
pub struct BareFlight {
    started: AtomicBool,
    value: OnceLock<u64>,
    ended: Notify,
    sleepers: Mutex<Vec<Thread>>,
}

impl BareFlight {
    /// An async caller.
    pub async fn call_async(&self, key: u64) -> u64 {
        if !self.started.swap(true, Ordering::AcqRel) {
            let value = PROBE.load_async(key).await;
            let _ = self.value.set(value);
            self.ended.notify_waiters();
            return value;
        }
        let mut ended = std::pin::pin!(self.ended.notified());
        ended.as_mut().enable();
        if let Some(&value) = self.value.get() {
            return value;
        }
        ended.await;
        *self.value.get().expect("set before the wake-up")
    }

    /// A blocking caller.
    pub fn call_blocking(&self, key: u64) -> u64 {
        let sleepers = || self.sleepers.lock().unwrap_or_else(|e| e.into_inner());
        if !self.started.swap(true, Ordering::AcqRel) {
            let value = PROBE.load_blocking(key);
            let _ = self.value.set(value);
            for sleeper in std::mem::take(&mut *sleepers()) {
                sleeper.unpark();
            }
            return value;
        }
        // Registered before the value is read: a leader that sets it later unparks this thread.
        sleepers().push(std::thread::current());
        loop {
            if let Some(&value) = self.value.get() {
                return value;
            }
            std::thread::park();
        }
    }
}

/// The size in bytes of the future each task of the async scenarios awaits (tokio copies a
/// task's whole future when the task completes, so after a flight ends every waiter pays for
/// its size), and of the load itself, which `get_or_insert_with_async` and moka's `get_with`
/// carry inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FutureSizes {
    /// `PROBE.load_async(key)`, the load the callers pass.
    pub load: usize,
    /// `cache.get_or_insert_with_async(key, PROBE.load_async(key))`.
    pub get_or_insert_with_async: usize,
    /// `cached_async_load(key)`, a `#[cached]` async fn.
    pub cached_async_fn: usize,
    /// moka's `cache.get_with(key, PROBE.load_async(key))`.
    pub moka_get_with: usize,
    /// The bare `Notify` caller of the reference row.
    pub bare_notify: usize,
}

impl FutureSizes {
    /// Measured on futures built and dropped unpolled.
    pub fn measure() -> Self {
        let memokit: memokit::Cache<u64, u64> = memokit::Cache::new(10);
        let moka: moka::future::Cache<u64, u64> = moka::future::Cache::new(10);
        let bare = BareFlight::default();
        let get_or_insert_with_async =
            std::mem::size_of_val(&memokit.get_or_insert_with_async(0, PROBE.load_async(0)));
        let moka_get_with = std::mem::size_of_val(&moka.get_with(0, PROBE.load_async(0)));
        let bare_notify = std::mem::size_of_val(&bare.call_async(0));
        FutureSizes {
            load: std::mem::size_of_val(&PROBE.load_async(0)),
            get_or_insert_with_async,
            cached_async_fn: std::mem::size_of_val(&cached_async_load(0)),
            moka_get_with,
            bare_notify,
        }
    }
}

impl std::fmt::Display for FutureSizes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "futures, bytes: memokit get_or_insert_with_async {}, memokit #[cached] async fn {}, \
             moka get_with {}, bare Notify {}; the load alone {}",
            self.get_or_insert_with_async,
            self.cached_async_fn,
            self.moka_get_with,
            self.bare_notify,
            self.load
        )
    }
}

/// One scenario: its name, its callers, one run.
type Scenario<'a> = (&'static str, String, Box<dyn Fn() -> RunResult + 'a>);

/// Every scenario: memokit's async and blocking loaders and `#[cached]` functions, moka's
/// `get_with` for comparison, and the bare wake-ups as the floor. The runs are interleaved
/// (run 1 of every scenario, then run 2, …) so that a burst of load from elsewhere on the
/// machine does not land on one scenario only.
pub fn run_all(sizes: CoalescingSizes) -> Vec<ScenarioResult> {
    run_matching(sizes, "")
}

/// The scenarios whose name contains `filter` (all of them for ""), as [`run_all`] runs them.
pub fn run_matching(sizes: CoalescingSizes, filter: &str) -> Vec<ScenarioResult> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime");
    let tasks = format!("{} tokio tasks", sizes.tasks);
    let threads = format!("{} threads", sizes.threads);
    let memokit_cache: memokit::Cache<u64, u64> = memokit::Cache::new(10_000);
    let moka_future: moka::future::Cache<u64, u64> = moka::future::Cache::new(10_000);
    let moka_sync: moka::sync::Cache<u64, u64> = moka::sync::Cache::new(10_000);
    let runtime = &runtime;
    let scenarios: Vec<Scenario<'_>> = vec![
        (
            "memokit Cache::get_or_insert_with_async",
            tasks.clone(),
            Box::new(|| {
                run_tasks(runtime, sizes.tasks, |key| {
                    let cache = memokit_cache.clone();
                    async move {
                        cache
                            .get_or_insert_with_async(key, PROBE.load_async(key))
                            .await
                    }
                })
            }),
        ),
        (
            "memokit #[cached] async fn",
            tasks.clone(),
            Box::new(|| run_tasks(runtime, sizes.tasks, cached_async_load)),
        ),
        (
            "moka future::Cache::get_with",
            tasks.clone(),
            Box::new(|| {
                run_tasks(runtime, sizes.tasks, |key| {
                    let cache = moka_future.clone();
                    async move { cache.get_with(key, PROBE.load_async(key)).await }
                })
            }),
        ),
        (
            "reference: bare tokio Notify wake-up",
            tasks,
            Box::new(|| {
                let bare = Arc::new(BareFlight::default());
                run_tasks(runtime, sizes.tasks, |key| {
                    let bare = bare.clone();
                    async move { bare.call_async(key).await }
                })
            }),
        ),
        (
            "memokit Cache::get_or_insert_with",
            threads.clone(),
            Box::new(|| {
                run_threads(sizes.threads, |key| {
                    memokit_cache.get_or_insert_with(key, || PROBE.load_blocking(key))
                })
            }),
        ),
        (
            "memokit #[cached] fn",
            threads.clone(),
            Box::new(|| run_threads(sizes.threads, cached_blocking_load)),
        ),
        (
            "moka sync::Cache::get_with",
            threads.clone(),
            Box::new(|| {
                run_threads(sizes.threads, |key| {
                    moka_sync.get_with(key, || PROBE.load_blocking(key))
                })
            }),
        ),
        (
            "reference: bare thread unpark",
            threads,
            Box::new(|| {
                let bare = BareFlight::default();
                run_threads(sizes.threads, |key| bare.call_blocking(key))
            }),
        ),
    ];
    let scenarios: Vec<Scenario<'_>> = scenarios
        .into_iter()
        .filter(|(name, _, _)| name.contains(filter))
        .collect();
    let mut results: Vec<ScenarioResult> = scenarios
        .iter()
        .map(|(name, callers, _)| ScenarioResult {
            name,
            callers: callers.clone(),
            runs: Vec::new(),
        })
        .collect();
    for _ in 0..sizes.runs.max(1) {
        for ((_, _, run), result) in scenarios.iter().zip(&mut results) {
            result.runs.push(run());
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scenarios share one probe, so they are tested in one test.
    #[test]
    fn every_scenario_loads_once_and_serves_everyone() {
        let results = run_all(CoalescingSizes {
            tasks: 100,
            threads: 8,
            runs: 1,
        });
        assert_eq!(results.len(), 8);
        for result in results {
            assert_eq!(result.max_loads(), 1, "{}", result.name);
            let total = result.median(|r| r.total);
            assert!(total >= LOAD_TIME, "{}: {total:?}", result.name);
            assert!(result.max(|r| r.after_load) <= total);
        }
    }

    #[test]
    fn median_and_max_over_runs() {
        let run = |ms| RunResult {
            loads: 1,
            total: Duration::from_millis(ms),
            after_load: Duration::from_millis(ms / 10),
        };
        let result = ScenarioResult {
            name: "x",
            callers: String::new(),
            runs: vec![run(30), run(20), run(25)],
        };
        assert_eq!(result.median(|r| r.total), Duration::from_millis(25));
        assert_eq!(result.max(|r| r.after_load), Duration::from_millis(3));
    }
}
