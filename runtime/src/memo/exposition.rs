//! The metric families every memoized function is exported under: one table, read by the
//! Prometheus text of [`Registry::prometheus`] and by the `metrics` feature, so both show the
//! same names. A new [`Stats`] field is one more row.

use std::fmt::Write as _;
use std::time::Duration;

use crate::cache::stats::Stats;
use crate::memo::registry::Registry;

/// Counters only go up (until `reset_stats`; a per-instance function keeps its dropped
/// instances' counts); gauges are levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// How a family reads its value from a function's [`Stats`].
#[derive(Clone, Copy)]
pub(crate) enum Read {
    Count(fn(&Stats) -> u64),
    /// Absent (no sample) when `None`, as the capacity of an unbounded cache.
    Optional(fn(&Stats) -> Option<u64>),
    Seconds(fn(&Stats) -> Duration),
}

/// One sample's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value {
    Int(u64),
    Float(f64),
}

/// One metric family: a name, its type, its help text and where its value comes from.
#[derive(Clone, Copy)]
pub(crate) struct Family {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    pub(crate) help: &'static str,
    read: Read,
}

impl Family {
    pub(crate) fn value(&self, stats: &Stats) -> Option<Value> {
        match self.read {
            Read::Count(read) => Some(Value::Int(read(stats))),
            Read::Optional(read) => read(stats).map(Value::Int),
            Read::Seconds(read) => Some(Value::Float(read(stats).as_secs_f64())),
        }
    }
}

const fn counter(name: &'static str, help: &'static str, read: fn(&Stats) -> u64) -> Family {
    Family {
        name,
        kind: Kind::Counter,
        help,
        read: Read::Count(read),
    }
}

const fn seconds(name: &'static str, help: &'static str, read: fn(&Stats) -> Duration) -> Family {
    Family {
        name,
        kind: Kind::Counter,
        help,
        read: Read::Seconds(read),
    }
}

const fn gauge(name: &'static str, help: &'static str, read: Read) -> Family {
    Family {
        name,
        kind: Kind::Gauge,
        help,
        read,
    }
}

/// Every family, in the order they are rendered. Each sample has the label `function`.
#[rustfmt::skip]
pub(crate) const FAMILIES: &[Family] = &[
    counter("memokit_hits_total", "Lookups that found a live entry.", |s| s.hits),
    counter("memokit_misses_total", "Lookups that found no live entry.", |s| s.misses),
    counter("memokit_inserts_total", "Values stored (new keys and replacements).", |s| s.inserts),
    counter("memokit_evictions_total", "Entries evicted to stay within capacity.", |s| s.evictions),
    counter("memokit_expirations_total", "Entries removed because their TTL or TTI passed.", |s| s.expirations),
    counter("memokit_invalidations_total", "Entries removed by invalidate or clear.", |s| s.invalidations),
    counter("memokit_loads_total", "Loads run: computations, and reads of a tier that found the value.", |s| s.loads),
    counter("memokit_load_failures_total", "Computations that failed, panicked or were cancelled.", |s| s.load_failures),
    counter("memokit_coalesced_waits_total", "Callers that waited for another caller's computation.", |s| s.coalesced_waits),
    counter("memokit_refreshes_total", "Refresh-ahead recomputations of values still cached.", |s| s.refreshes),
    counter("memokit_refresh_failures_total", "Refreshes that failed or panicked (the old value stays).", |s| s.refresh_failures),
    counter("memokit_stale_served_total", "Failed computations answered with the expired value (stale-if-error).", |s| s.stale_served),
    seconds("memokit_load_seconds_total", "Time spent in computations, in seconds.", |s| s.total_load_time),
    gauge("memokit_entries", "Entries resident.", Read::Count(|s| s.len)),
    gauge("memokit_weighted_size", "Total weight resident (the entry count without a weigher).", Read::Count(|s| s.weighted_size)),
    gauge("memokit_capacity", "Maximum total weight (absent when unbounded).", Read::Optional(|s| s.capacity)),
    #[cfg(feature = "redis")]
    counter("memokit_l2_hits_total", "Values found in Redis.", |s| s.l2_hits),
    #[cfg(feature = "redis")]
    counter("memokit_l2_misses_total", "Lookups in Redis that found nothing usable.", |s| s.l2_misses),
    #[cfg(feature = "redis")]
    counter("memokit_l2_errors_total", "Redis operations that failed or timed out.", |s| s.l2_errors),
    #[cfg(feature = "redis")]
    counter("memokit_l2_decode_errors_total", "Values in Redis that did not decode.", |s| s.l2_decode_errors),
    #[cfg(feature = "redis")]
    counter("memokit_l2_skipped_total", "Lookups and writes that went on without Redis, which had just failed.", |s| s.l2_skipped),
    #[cfg(feature = "redis")]
    gauge("memokit_l2_pending_writes", "Writes that could not reach Redis yet (applied before Redis is read again).", Read::Count(|s| s.l2_pending_writes)),
    #[cfg(feature = "redis")]
    counter("memokit_l2_replayed_writes_total", "Writes applied to Redis after an outage.", |s| s.l2_replayed_writes),
    #[cfg(feature = "disk")]
    counter("memokit_disk_hits_total", "Values found in the disk tier's file.", |s| s.disk_hits),
    #[cfg(feature = "disk")]
    counter("memokit_disk_misses_total", "Lookups in the disk tier's file that found nothing usable.", |s| s.disk_misses),
    #[cfg(feature = "disk")]
    counter("memokit_disk_errors_total", "Operations on the disk tier's file that failed.", |s| s.disk_errors),
    #[cfg(feature = "disk")]
    counter("memokit_disk_write_errors_total", "Writes the disk tier's file refused (a full disk), among the errors.", |s| s.disk_write_errors),
    #[cfg(feature = "disk")]
    counter("memokit_disk_decode_errors_total", "Values in the disk tier's file that did not decode.", |s| s.disk_decode_errors),
    #[cfg(feature = "disk")]
    counter("memokit_disk_evictions_total", "Entries evicted from the disk tier's file to stay within its byte bound.", |s| s.disk_evictions),
];

impl Registry {
    /// Every listed function's counters as a Prometheus text exposition (format 0.0.4), ready
    /// to serve on a `/metrics` endpoint with the content type `text/plain; version=0.0.4`.
    /// Needs no cargo feature.
    ///
    /// Each family has one `# HELP` and one `# TYPE` line, then one sample per function with
    /// the label `function` (its registry name; functions sharing a name are added up):
    /// counters `memokit_hits_total`, `memokit_misses_total`, `memokit_inserts_total`,
    /// `memokit_evictions_total`, `memokit_expirations_total`, `memokit_invalidations_total`,
    /// `memokit_loads_total`, `memokit_load_failures_total`, `memokit_coalesced_waits_total`,
    /// `memokit_refreshes_total`, `memokit_refresh_failures_total`,
    /// `memokit_stale_served_total`, `memokit_load_seconds_total` (time in computations); gauges `memokit_entries`,
    /// `memokit_weighted_size` and `memokit_capacity` (no sample for an unbounded cache); with
    /// the `redis` feature, counters `memokit_l2_hits_total`, `memokit_l2_misses_total`,
    /// `memokit_l2_errors_total`, `memokit_l2_decode_errors_total`, `memokit_l2_skipped_total`
    /// and `memokit_l2_replayed_writes_total`, and the gauge `memokit_l2_pending_writes`; with the
    /// `disk` feature, counters `memokit_disk_hits_total`, `memokit_disk_misses_total`,
    /// `memokit_disk_errors_total`, `memokit_disk_write_errors_total`,
    /// `memokit_disk_decode_errors_total` and `memokit_disk_evictions_total`.
    ///
    /// ```
    /// #[memokit::cached(name = "docs::cube", size = 10)]
    /// fn cube(n: u64) -> u64 { n * n * n }
    ///
    /// cube(2);
    /// cube(2);
    /// let text = memokit::registry().prometheus();
    /// assert!(text.contains("# TYPE memokit_hits_total counter\n"));
    /// assert!(text.contains("memokit_hits_total{function=\"docs::cube\"} 1\n"));
    /// assert!(text.contains("memokit_capacity{function=\"docs::cube\"} 10\n"));
    /// ```
    pub fn prometheus(&self) -> String {
        let functions = self.functions();
        let mut text = String::new();
        for family in FAMILIES {
            let (name, help, kind) = (family.name, family.help, family.kind.as_str());
            // `write!` to a String cannot fail.
            let _ = write!(text, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
            for function in &functions {
                let Some(value) = family.value(&function.stats) else {
                    continue;
                };
                let _ = write!(text, "{name}{{function=\"");
                escape_label_value(&mut text, function.name);
                let _ = match value {
                    Value::Int(value) => writeln!(text, "\"}} {value}"),
                    Value::Float(value) => writeln!(text, "\"}} {value}"),
                };
            }
        }
        text
    }
}

/// A label value as the text format wants it: backslash, double quote and newline escaped.
fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        escape_label_value(&mut out, "a\\b\"c\nd");
        assert_eq!(out, r#"a\\b\"c\nd"#);
    }

    #[test]
    fn family_names_follow_the_conventions() {
        let mut seen = std::collections::HashSet::new();
        for family in FAMILIES {
            assert!(seen.insert(family.name), "{} twice", family.name);
            assert!(family.name.starts_with("memokit_"), "{}", family.name);
            assert!(
                family
                    .name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()),
                "{}",
                family.name
            );
            // Counters end in `_total`, gauges do not.
            assert_eq!(
                family.name.ends_with("_total"),
                family.kind == Kind::Counter,
                "{}",
                family.name
            );
            assert!(!family.help.contains(['\\', '\n']), "{}", family.name);
        }
    }

    #[test]
    fn every_stats_counter_is_read_by_a_family() {
        // Each family reads a different field: give every field a distinct value and check that
        // each value shows up once.
        let mut stats = Stats::default();
        (stats.hits, stats.misses, stats.inserts, stats.evictions) = (1, 2, 3, 4);
        (stats.expirations, stats.invalidations, stats.loads) = (5, 6, 7);
        (stats.load_failures, stats.coalesced_waits) = (8, 9);
        (stats.refreshes, stats.refresh_failures, stats.stale_served) = (18, 19, 20);
        stats.total_load_time = Duration::from_millis(1500);
        (stats.len, stats.weighted_size, stats.capacity) = (11, 12, Some(13));
        (
            stats.l2_hits,
            stats.l2_misses,
            stats.l2_errors,
            stats.l2_decode_errors,
        ) = (14, 15, 16, 17);
        (stats.l2_pending_writes, stats.l2_replayed_writes) = (20, 21);
        stats.l2_skipped = 28;
        (stats.disk_hits, stats.disk_misses, stats.disk_errors) = (22, 23, 24);
        (stats.disk_write_errors, stats.disk_decode_errors) = (25, 26);
        stats.disk_evictions = 27;
        let values: Vec<Value> = FAMILIES.iter().filter_map(|f| f.value(&stats)).collect();
        let mut expected: Vec<Value> = (1..=9)
            .chain(18..=20)
            .chain(11..=13)
            .map(Value::Int)
            .collect();
        expected.insert(12, Value::Float(1.5));
        if cfg!(feature = "redis") {
            expected.extend((14..=17).chain([28, 20, 21]).map(Value::Int));
        }
        if cfg!(feature = "disk") {
            expected.extend((22..=27).map(Value::Int));
        }
        assert_eq!(values, expected);
    }
}
