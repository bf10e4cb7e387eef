//! Every memoized function's counters through the [`metrics`](https://docs.rs/metrics) facade
//! (feature `metrics`), to whatever recorder the application installed (a Prometheus exporter,
//! StatsD, …).
//!
//! The values are copied from the [`registry`](crate::registry()) when [`export`] runs (call it
//! before each scrape, or let [`spawn_exporter`] call it on an interval), never counted on the
//! way: the hit path runs exactly the same code with the feature on as without it.
//!
//! The names are those of [`Registry::prometheus`](crate::Registry::prometheus), each with the
//! label `function` (the registry name): counters `memokit_hits_total`, `memokit_misses_total`,
//! `memokit_inserts_total`, `memokit_evictions_total`, `memokit_expirations_total`,
//! `memokit_invalidations_total`, `memokit_loads_total`, `memokit_load_failures_total`,
//! `memokit_coalesced_waits_total`, `memokit_refreshes_total`,
//! `memokit_refresh_failures_total`, `memokit_stale_served_total` (set with `absolute`); gauges `memokit_entries`,
//! `memokit_weighted_size`, `memokit_capacity` (not set for an unbounded cache) and
//! `memokit_load_seconds_total`, the time spent in computations, a gauge here because facade
//! counters are integers; with the `redis` feature, counters `memokit_l2_hits_total`,
//! `memokit_l2_misses_total`, `memokit_l2_errors_total`, `memokit_l2_decode_errors_total`,
//! `memokit_l2_skipped_total` and `memokit_l2_replayed_writes_total`, and the gauge `memokit_l2_pending_writes`; with the
//! `disk` feature, counters `memokit_disk_hits_total`, `memokit_disk_misses_total`,
//! `memokit_disk_errors_total`, `memokit_disk_write_errors_total`,
//! `memokit_disk_decode_errors_total` and `memokit_disk_evictions_total`.
//!
//! ```
//! #[memokit::cached(name = "docs::metrics_square")]
//! fn square(n: u64) -> u64 { n * n }
//!
//! square(3);
//! // With a recorder installed (`metrics::set_global_recorder`, or an exporter crate's
//! // `install`), this sets memokit_misses_total{function="docs::metrics_square"} to 1, …
//! memokit::metrics::export();
//! ```

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;

use crate::cache::stats::Stats;
use crate::memo::exposition::{Kind, Value, FAMILIES};
use crate::memo::registry::{registry, FunctionStats};

/// Records every listed function's current counters and gauges in the `metrics` recorder of
/// the calling thread (the global one, or one set with `metrics::with_local_recorder`).
///
/// Counters are set to the registry's counts (`absolute`), and a recorder keeps its counters
/// from going down: after [`Memo::reset_stats`](crate::Memo::reset_stats) an exported counter
/// stays where it was until the new count passes it. The levels of a cache that left the
/// registry (one listed with `register_cache`, dropped) are set to zero.
///
/// ```
/// memokit::metrics::export(); // without a recorder, does nothing
/// ```
pub fn export() {
    let functions = registry().functions();
    let gone = forget_all_but(&functions);
    for family in FAMILIES {
        // Described as what it is recorded as: the seconds are a gauge (see below).
        match (family.kind, family.value(&Stats::default())) {
            (Kind::Counter, Some(Value::Int(_))) => {
                ::metrics::describe_counter!(family.name, family.help)
            }
            _ => ::metrics::describe_gauge!(family.name, family.help),
        }
        // A function no longer listed (its last instance dropped) holds nothing: its levels
        // go to zero, since the facade cannot take a series away. Its counters stay.
        if family.kind == Kind::Gauge {
            for name in &gone {
                ::metrics::gauge!(family.name, &[("function", *name)]).set(0.0);
            }
        }
        for function in &functions {
            let labels = [("function", function.name)];
            match (family.kind, family.value(&function.stats)) {
                (_, None) => {}
                (Kind::Counter, Some(Value::Int(value))) => {
                    ::metrics::counter!(family.name, &labels).absolute(value);
                }
                (Kind::Gauge, Some(Value::Int(value))) => {
                    ::metrics::gauge!(family.name, &labels).set(value as f64);
                }
                // Facade counters are integers: the seconds go out as a gauge.
                (_, Some(Value::Float(value))) => {
                    ::metrics::gauge!(family.name, &labels).set(value);
                }
            }
        }
    }
}

/// Notes the names of `functions` as exported, and returns those exported before that are not
/// among them any more.
fn forget_all_but(functions: &[FunctionStats]) -> Vec<&'static str> {
    static EXPORTED: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut exported = EXPORTED.lock();
    let listed = |name: &&'static str| functions.iter().any(|f| f.name == *name);
    let gone = exported
        .iter()
        .copied()
        .filter(|name| !listed(name))
        .collect();
    *exported = functions.iter().map(|f| f.name).collect();
    gone
}

/// Runs [`export`] every `interval` on a background thread, for the global recorder, until
/// the returned guard is dropped. Fails only if the thread cannot be started.
///
/// ```
/// use std::time::Duration;
///
/// let exporter = memokit::metrics::spawn_exporter(Duration::from_secs(10))?;
/// // … the application runs; a scrape sees values at most 10 s old …
/// drop(exporter); // stops the thread (and waits for it)
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn spawn_exporter(interval: Duration) -> std::io::Result<Exporter> {
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("memokit-metrics".into())
        .spawn(move || loop {
            export();
            // Dropping the guard drops the sender, which ends the wait at once.
            match stopped.recv_timeout(interval) {
                Err(RecvTimeoutError::Timeout) => continue,
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
        })?;
    Ok(Exporter {
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// The background exporter of [`spawn_exporter`]; dropping it stops the thread.
///
/// ```
/// let exporter = memokit::metrics::spawn_exporter(std::time::Duration::from_secs(1))?;
/// drop(exporter);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
#[must_use = "the exporter stops when this guard is dropped"]
pub struct Exporter {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // A panic of the exporter thread (a recorder's) stays there.
            let _ = thread.join();
        }
    }
}
