//! Coalescing: many callers of one missing key whose load takes 20 ms. How many loads run (it
//! must be 1), and how long until every caller has its value.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

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
pub fn run_tasks<F, Fut>(runtime: &Runtime, tasks: usize, call: F) -> RunResult
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = u64> + Send + 'static,
{
    PROBE.reset();
    let key = fresh_key();
    runtime.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let value = call(key);
                tokio::spawn(async move {
                    let called = Instant::now();
                    (value.await, called, Instant::now())
                })
            })
            .collect();
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

/// Every scenario: memokit's async and blocking loaders and `#[cached]` functions, and moka's
/// `get_with` for comparison.
pub fn run_all(sizes: CoalescingSizes) -> Vec<ScenarioResult> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime");
    let tasks = format!("{} tokio tasks", sizes.tasks);
    let threads = format!("{} threads", sizes.threads);
    let memokit_cache: memokit::Cache<u64, u64> = memokit::Cache::new(10_000);
    let moka_future: moka::future::Cache<u64, u64> = moka::future::Cache::new(10_000);
    let moka_sync: moka::sync::Cache<u64, u64> = moka::sync::Cache::new(10_000);
    let runs = |run: &dyn Fn() -> RunResult| (0..sizes.runs.max(1)).map(|_| run()).collect();
    vec![
        ScenarioResult {
            name: "memokit Cache::get_or_insert_with_async",
            callers: tasks.clone(),
            runs: runs(&|| {
                run_tasks(&runtime, sizes.tasks, |key| {
                    let cache = memokit_cache.clone();
                    async move {
                        cache
                            .get_or_insert_with_async(key, PROBE.load_async(key))
                            .await
                    }
                })
            }),
        },
        ScenarioResult {
            name: "memokit #[cached] async fn",
            callers: tasks.clone(),
            runs: runs(&|| run_tasks(&runtime, sizes.tasks, cached_async_load)),
        },
        ScenarioResult {
            name: "moka future::Cache::get_with",
            callers: tasks,
            runs: runs(&|| {
                run_tasks(&runtime, sizes.tasks, |key| {
                    let cache = moka_future.clone();
                    async move { cache.get_with(key, PROBE.load_async(key)).await }
                })
            }),
        },
        ScenarioResult {
            name: "memokit Cache::get_or_insert_with",
            callers: threads.clone(),
            runs: runs(&|| {
                run_threads(sizes.threads, |key| {
                    memokit_cache.get_or_insert_with(key, || PROBE.load_blocking(key))
                })
            }),
        },
        ScenarioResult {
            name: "memokit #[cached] fn",
            callers: threads.clone(),
            runs: runs(&|| run_threads(sizes.threads, cached_blocking_load)),
        },
        ScenarioResult {
            name: "moka sync::Cache::get_with",
            callers: threads,
            runs: runs(&|| {
                run_threads(sizes.threads, |key| {
                    moka_sync.get_with(key, || PROBE.load_blocking(key))
                })
            }),
        },
    ]
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
        assert_eq!(results.len(), 6);
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
