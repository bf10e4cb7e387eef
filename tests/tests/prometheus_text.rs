//! `registry().prometheus()`: the text exposition format 0.0.4 of every memoized function.
//!
//! Tests of one binary share the registry, so each test uses functions of its own and looks
//! only at their lines.

use std::collections::HashMap;

use memokit::{cached, registry};

#[cached(name = "prom::squares", size = 100)]
fn squares(n: u64) -> u64 {
    std::thread::sleep(std::time::Duration::from_millis(2));
    n * n
}

#[cached(name = "prom::fails")]
fn fails(n: u64) -> Result<u64, String> {
    if n == 0 {
        Err("zero".into())
    } else {
        Ok(n)
    }
}

#[cached(name = "prom::\"quoted\" back\\slash\nnewline")]
fn oddly_named(n: u8) -> u8 {
    n
}

#[cached(name = "prom::shared_name")]
fn shares_a_name_one(n: u8) -> u8 {
    n
}

#[cached(name = "prom::shared_name")]
fn shares_a_name_two(n: u8) -> u8 {
    n
}

#[cached(name = "prom::well_formed", size = 5)]
fn well_formed_subject(n: u8) -> u8 {
    n
}

fn lines_for<'t>(text: &'t str, label: &str) -> Vec<&'t str> {
    let needle = format!("{{function=\"{label}\"}} ");
    text.lines().filter(|line| line.contains(&needle)).collect()
}

#[test]
fn known_activity_gives_exact_samples() {
    for n in [1, 2, 1, 1] {
        squares(n);
    }
    assert_eq!(fails(0), Err("zero".into()));
    assert_eq!(fails(3), Ok(3));
    let text = registry().prometheus();

    let squares_lines = lines_for(&text, "prom::squares");
    for expected in [
        "memokit_hits_total{function=\"prom::squares\"} 2",
        "memokit_misses_total{function=\"prom::squares\"} 2",
        "memokit_inserts_total{function=\"prom::squares\"} 2",
        "memokit_evictions_total{function=\"prom::squares\"} 0",
        "memokit_expirations_total{function=\"prom::squares\"} 0",
        "memokit_invalidations_total{function=\"prom::squares\"} 0",
        "memokit_loads_total{function=\"prom::squares\"} 2",
        "memokit_load_failures_total{function=\"prom::squares\"} 0",
        "memokit_coalesced_waits_total{function=\"prom::squares\"} 0",
        "memokit_entries{function=\"prom::squares\"} 2",
        "memokit_weighted_size{function=\"prom::squares\"} 2",
        "memokit_capacity{function=\"prom::squares\"} 100",
    ] {
        assert!(
            squares_lines.contains(&expected),
            "missing {expected:?} in:\n{text}"
        );
    }
    // Load time in seconds, as a float: two computations of at least 2 ms each.
    let load_seconds: f64 = squares_lines
        .iter()
        .find_map(|line| {
            line.strip_prefix("memokit_load_seconds_total{function=\"prom::squares\"} ")
        })
        .expect("a load time sample")
        .parse()
        .expect("a number");
    let stats = squares_cache().stats();
    assert_eq!(load_seconds, stats.total_load_time.as_secs_f64());
    assert!(load_seconds >= 0.004, "{load_seconds}");

    let fails_lines = lines_for(&text, "prom::fails");
    assert!(fails_lines.contains(&"memokit_loads_total{function=\"prom::fails\"} 2"));
    assert!(fails_lines.contains(&"memokit_load_failures_total{function=\"prom::fails\"} 1"));
    assert!(fails_lines.contains(&"memokit_entries{function=\"prom::fails\"} 1"));
    // Unbounded: no capacity sample.
    assert!(
        !fails_lines
            .iter()
            .any(|line| line.starts_with("memokit_capacity")),
        "{fails_lines:?}"
    );
}

#[test]
fn label_values_are_escaped() {
    oddly_named(1);
    let text = registry().prometheus();
    let escaped = r#"prom::\"quoted\" back\\slash\nnewline"#;
    assert!(
        text.contains(&format!(
            "memokit_misses_total{{function=\"{escaped}\"}} 1\n"
        )),
        "{text}"
    );
    // The raw newline of the name never reaches the text.
    assert!(!text.contains("back\\slash\nnewline"));
}

#[test]
fn functions_sharing_a_name_are_one_sample() {
    shares_a_name_one(1);
    shares_a_name_two(1);
    shares_a_name_two(1);
    let text = registry().prometheus();
    let misses: Vec<&str> = lines_for(&text, "prom::shared_name")
        .into_iter()
        .filter(|line| line.starts_with("memokit_misses_total"))
        .collect();
    assert_eq!(
        misses,
        ["memokit_misses_total{function=\"prom::shared_name\"} 2"]
    );
}

/// Every line is a `# HELP`, a `# TYPE` or a sample; each family has one HELP then one TYPE,
/// before its samples; every sample belongs to the family announced last and its value parses.
#[test]
fn the_text_is_well_formed() {
    well_formed_subject(7);
    let text = registry().prometheus();
    assert!(text.ends_with('\n'));
    let mut help: HashMap<&str, usize> = HashMap::new();
    let mut types: HashMap<&str, &str> = HashMap::new();
    let mut current: Option<&str> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').expect("HELP name text");
            assert!(!text.is_empty());
            *help.entry(name).or_default() += 1;
            assert!(!types.contains_key(name), "HELP after TYPE for {name}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(matches!(kind, "counter" | "gauge"), "{line}");
            assert_eq!(help.get(name), Some(&1), "TYPE without one HELP: {name}");
            assert!(types.insert(name, kind).is_none(), "TYPE twice: {name}");
            assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
            current = Some(name);
        } else {
            let (series, value) = line.rsplit_once(' ').expect("a sample: series value");
            let (name, labels) = series.split_once('{').expect("labels");
            assert_eq!(Some(name), current, "sample outside its family: {line}");
            assert!(
                labels.starts_with("function=\"") && labels.ends_with("\"}"),
                "{line}"
            );
            value.parse::<f64>().expect("a numeric value");
        }
    }
    assert!(help.values().all(|&count| count == 1), "{help:?}");
    assert_eq!(help.len(), types.len());
    // The documented families (more may come with new counters).
    for documented in [
        "memokit_hits_total",
        "memokit_misses_total",
        "memokit_inserts_total",
        "memokit_evictions_total",
        "memokit_expirations_total",
        "memokit_invalidations_total",
        "memokit_loads_total",
        "memokit_load_failures_total",
        "memokit_coalesced_waits_total",
        "memokit_refreshes_total",
        "memokit_refresh_failures_total",
        "memokit_stale_served_total",
        "memokit_load_seconds_total",
        "memokit_entries",
        "memokit_weighted_size",
        "memokit_capacity",
        // This crate enables memokit's `redis` feature.
        "memokit_l2_hits_total",
        "memokit_l2_misses_total",
        "memokit_l2_errors_total",
        "memokit_l2_decode_errors_total",
        "memokit_l2_skipped_total",
        "memokit_l2_replayed_writes_total",
        "memokit_l2_pending_writes",
    ] {
        assert!(types.contains_key(documented), "{documented} missing");
    }
}
