//! Feature `metrics`: `memokit::metrics::export()` and the background exporter, read back
//! through `metrics-util`'s `DebuggingRecorder`.
//!
//! Tests of one binary share the registry, so each test uses functions of its own and looks
//! only at their metrics.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use memokit::cached;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::MetricKind;

#[cached(name = "metrics::squares", size = 50)]
fn squares(n: u64) -> u64 {
    n * n
}

#[cached(name = "metrics::unbounded")]
fn unbounded(n: u64) -> u64 {
    n
}

#[cached(name = "metrics::background")]
fn background(n: u64) -> u64 {
    n
}

/// One function's metrics: name → (kind, description, value).
type Seen = HashMap<String, (MetricKind, Option<String>, DebugValue)>;

fn metrics_of(snapshotter: &Snapshotter, function: &str) -> Seen {
    let mut seen = Seen::new();
    for (key, _unit, description, value) in snapshotter.snapshot().into_vec() {
        let labels: Vec<(&str, &str)> = key.key().labels().map(|l| (l.key(), l.value())).collect();
        assert_eq!(labels.len(), 1, "one label, `function`: {key:?}");
        assert_eq!(labels[0].0, "function");
        if labels[0].1 == function {
            let name = key.key().name().to_string();
            let description = description.map(|d| d.to_string());
            assert!(seen
                .insert(name, (key.kind(), description, value))
                .is_none());
        }
    }
    seen
}

fn counter(seen: &Seen, name: &str) -> u64 {
    match seen.get(name) {
        Some((MetricKind::Counter, _, DebugValue::Counter(value))) => *value,
        other => panic!("{name}: not a counter: {other:?}"),
    }
}

fn gauge(seen: &Seen, name: &str) -> f64 {
    match seen.get(name) {
        Some((MetricKind::Gauge, _, DebugValue::Gauge(value))) => value.into_inner(),
        other => panic!("{name}: not a gauge: {other:?}"),
    }
}

#[test]
fn export_records_every_counter_with_a_function_label() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    for n in [1, 2, 1, 1, 3] {
        squares(n);
    }
    squares_cache().invalidate(&3);
    metrics::with_local_recorder(&recorder, memokit::metrics::export);
    let seen = metrics_of(&snapshotter, "metrics::squares");

    let stats = squares_cache().stats();
    assert_eq!(counter(&seen, "memokit_hits_total"), 2);
    assert_eq!(counter(&seen, "memokit_misses_total"), 3);
    assert_eq!(counter(&seen, "memokit_inserts_total"), 3);
    assert_eq!(counter(&seen, "memokit_invalidations_total"), 1);
    assert_eq!(counter(&seen, "memokit_loads_total"), 3);
    for zero in [
        "memokit_evictions_total",
        "memokit_expirations_total",
        "memokit_load_failures_total",
        "memokit_coalesced_waits_total",
        "memokit_refreshes_total",
        "memokit_refresh_failures_total",
        "memokit_stale_served_total",
        "memokit_l2_hits_total",
        "memokit_l2_misses_total",
        "memokit_l2_errors_total",
        "memokit_l2_decode_errors_total",
        "memokit_l2_skipped_total",
        "memokit_l2_replayed_writes_total",
    ] {
        assert_eq!(counter(&seen, zero), 0, "{zero}");
    }
    assert_eq!(gauge(&seen, "memokit_l2_pending_writes"), 0.0);
    assert_eq!(gauge(&seen, "memokit_entries"), 2.0);
    assert_eq!(gauge(&seen, "memokit_weighted_size"), 2.0);
    assert_eq!(gauge(&seen, "memokit_capacity"), 50.0);
    assert_eq!(
        gauge(&seen, "memokit_load_seconds_total"),
        stats.total_load_time.as_secs_f64()
    );
    // Described with the same help as the Prometheus text, as what it is recorded as (the
    // seconds are a gauge; described as a counter, a recorder left the gauge undescribed).
    let (_, description, _) = &seen["memokit_hits_total"];
    assert_eq!(
        description.as_deref(),
        Some("Lookups that found a live entry.")
    );
    let (_, description, _) = &seen["memokit_load_seconds_total"];
    assert!(description.is_some(), "the seconds' gauge is described");
    assert!(registry_text_has_the_same_families(&seen));

    // Later exports set the new totals (absolute values, not increments).
    squares(1);
    squares(4);
    metrics::with_local_recorder(&recorder, memokit::metrics::export);
    let seen = metrics_of(&snapshotter, "metrics::squares");
    assert_eq!(counter(&seen, "memokit_hits_total"), 3);
    assert_eq!(counter(&seen, "memokit_misses_total"), 4);
    assert_eq!(gauge(&seen, "memokit_entries"), 3.0);
}

/// Every metric exported is a family of the Prometheus text, and vice versa.
fn registry_text_has_the_same_families(seen: &Seen) -> bool {
    let text = memokit::registry().prometheus();
    let families: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' ').map(|(name, _)| name))
        .collect();
    families.len() == seen.len() && families.iter().all(|name| seen.contains_key(*name))
}

#[test]
fn an_unbounded_cache_has_no_capacity_gauge() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    unbounded(1);
    metrics::with_local_recorder(&recorder, memokit::metrics::export);
    let seen = metrics_of(&snapshotter, "metrics::unbounded");
    assert_eq!(counter(&seen, "memokit_misses_total"), 1);
    assert!(!seen.contains_key("memokit_capacity"), "{seen:?}");
}

#[test]
fn the_background_exporter_exports_until_dropped() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::set_global_recorder(recorder).expect("the only global recorder of this binary");
    background(1);
    background(1);
    let exporter = memokit::metrics::spawn_exporter(Duration::from_millis(10)).expect("a thread");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut hits = 0;
    while hits != 1 {
        assert!(Instant::now() < deadline, "not exported within 10 s");
        std::thread::sleep(Duration::from_millis(5));
        if let Some((_, _, DebugValue::Counter(value))) =
            metrics_of(&snapshotter, "metrics::background").get("memokit_hits_total")
        {
            hits = *value;
        }
    }
    // Dropping the guard joins the thread: nothing is exported afterwards.
    drop(exporter);
    let _ = snapshotter.snapshot();
    background(1);
    std::thread::sleep(Duration::from_millis(50));
    // The snapshot above set every value to zero; an export would have set the hits to 2.
    let after = metrics_of(&snapshotter, "metrics::background");
    assert_eq!(
        counter(&after, "memokit_hits_total"),
        0,
        "exported after the drop"
    );
}

/// A recorder that keeps the last value set of each gauge, as the usual exporters do
/// (`DebuggingRecorder` zeroes them when read, so it cannot show a value left behind).
#[derive(Clone, Default)]
struct LastGauges(std::sync::Arc<std::sync::Mutex<HashMap<String, f64>>>);

struct GaugeCell {
    key: String,
    values: LastGauges,
}

impl metrics::GaugeFn for GaugeCell {
    fn increment(&self, value: f64) {
        *self
            .values
            .0
            .lock()
            .unwrap()
            .entry(self.key.clone())
            .or_default() += value;
    }
    fn decrement(&self, value: f64) {
        self.increment(-value);
    }
    fn set(&self, value: f64) {
        self.values
            .0
            .lock()
            .unwrap()
            .insert(self.key.clone(), value);
    }
}

impl metrics::Recorder for LastGauges {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::noop()
    }
    fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        let labels: Vec<String> = key
            .labels()
            .map(|label| label.value().to_string())
            .collect();
        metrics::Gauge::from_arc(std::sync::Arc::new(GaugeCell {
            key: format!("{}{{{}}}", key.name(), labels.join(",")),
            values: self.clone(),
        }))
    }
    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

/// A cache that leaves the registry (listed with `register_cache`, then dropped) holds nothing
/// any more: its levels are exported as zero, not left at their last values.
#[test]
fn a_cache_that_leaves_the_registry_exports_zero_levels() {
    let recorder = LastGauges::default();
    let sessions: memokit::Cache<u64, u64> = memokit::Cache::new(10);
    memokit::registry().register_cache("metrics::sessions", sessions.clone());
    sessions.insert(1, 1);
    sessions.insert(2, 2);
    metrics::with_local_recorder(&recorder, memokit::metrics::export);
    let level = |name: &str| recorder.0.lock().unwrap()[&format!("{name}{{metrics::sessions}}")];
    assert_eq!(level("memokit_entries"), 2.0);
    assert_eq!(level("memokit_capacity"), 10.0);
    drop(sessions);
    metrics::with_local_recorder(&recorder, memokit::metrics::export);
    assert_eq!(level("memokit_entries"), 0.0);
    assert_eq!(level("memokit_capacity"), 0.0);
}
