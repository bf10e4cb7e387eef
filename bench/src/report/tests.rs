//! The report rendered from made-up figures.

use std::fs;
use std::time::Duration;

use super::{render, write_plots, Paired, Results, Sizes};
use crate::coalescing::{FutureSizes, RunResult, ScenarioResult};
use crate::contenders::Kind;
use crate::hit_rows::{Family, Row};
use crate::key_shapes::ShapeResult;
use crate::latency::LatencyResult;
use crate::machine::Machine;
use crate::macro_overhead::MacroResult;
use crate::memory::MemoryResult;
use crate::shared_tier::{Deployment, SharedResult};

fn fake_results() -> Results {
    let kinds = Kind::ALL.to_vec();
    let n = kinds.len();
    let latency: Vec<LatencyResult> = (0..n)
        .map(|i| LatencyResult {
            ns_per_get: 10.0 + i as f64,
            rounds: vec![10.0 + i as f64, 30.0 - 2.0 * i as f64],
            resident: 1.0,
        })
        .collect();
    let paired = Paired::against_quick_cache(
        "hit latency".into(),
        &kinds,
        &latency
            .iter()
            .map(|r: &LatencyResult| r.rounds.clone())
            .collect::<Vec<_>>(),
        &latency.iter().map(|r| r.ns_per_get).collect::<Vec<_>>(),
    )
    .into_iter()
    .collect();
    let row = |workload: &str, family, runs: Vec<Vec<f64>>| {
        Row::from_runs(workload.to_string(), family, 1_000, 10_000, runs, 0.9)
    };
    // memokit's policies replayed with five seeds, the peers once, as the report does.
    let runs = |ratio: &dyn Fn(Kind) -> f64| -> Vec<Vec<f64>> {
        kinds
            .iter()
            .map(|&k| vec![ratio(k); if k.is_memokit() { 5 } else { 1 }])
            .collect()
    };
    assert_eq!(kinds[..2], [Kind::MemokitWTinyLfu, Kind::MemokitS3Fifo]);
    let mut zipf = runs(&|_| 0.5);
    // Default: mean 50.40, seeds 1.40 below and 1.60 above it. S3-FIFO: 48.00 ± 1.00.
    zipf[0] = vec![0.49, 0.50, 0.50, 0.51, 0.52];
    zipf[1] = vec![0.47, 0.48, 0.48, 0.48, 0.49];
    let mut peer_wins = runs(&|k| if k == Kind::Lru { 0.6 } else { 0.5 });
    // The default's first seed beats lru+Mutex, its mean (50.00) is 10 points below it.
    peer_wins[0] = vec![0.65, 0.45, 0.45, 0.45, 0.5];
    Results {
        machine: Machine {
            cores: 2,
            cpu: "cpu".into(),
            os: "os".into(),
            rustc: "rustc".into(),
            load_at_start: "0 0 0".into(),
        },
        load_at_end: "0 0 0".into(),
        sizes: Sizes::quick(),
        latency,
        moka_future_in_tokio: 20.0,
        throughput: vec![
            (1, (0..n).map(|i| 10.0 - i as f64 * 0.5).collect()),
            (2, (0..n).map(|i| 20.0 - i as f64).collect()),
        ],
        small_throughput: vec![
            (1, (0..n).map(|i| 5.0 + i as f64 * 0.5).collect()),
            (2, (0..n).map(|i| 8.0 + i as f64).collect()),
        ],
        paired,
        hit_rows: vec![
            row("zipf(1.0)", Family::Zipf, zipf),
            row("gli", Family::Trace, peer_wins),
        ],
        overfill: Some(("backf".into(), 38, (0..n).map(|i| 38 + i).collect())),
        memory: (0..n)
            .map(|i| {
                Ok(MemoryResult {
                    entries: 100,
                    resident: 100,
                    rss_before: 0,
                    rss_after: 100 * (40 + i as u64),
                })
            })
            .collect(),
        coalescing: vec![ScenarioResult {
            name: "memokit x",
            callers: "8 threads".into(),
            runs: vec![RunResult {
                loads: 1,
                total: Duration::from_millis(21),
                after_load: Duration::from_micros(500),
            }],
        }],
        coalescing_futures: FutureSizes {
            load: 152,
            get_or_insert_with_async: 328,
            cached_async_fn: 224,
            moka_get_with: 1696,
            bare_notify: 184,
        },
        macro_overhead: MacroResult {
            macro_ns: 12.0,
            cache_get_ns: 10.0,
        },
        key_shapes: vec![ShapeResult {
            shape: "`&str`",
            memokit_ns: 18.0,
            quick_cache_ns: 20.0,
            cached_ns: 60.0,
        }],
        shared: Ok(SharedResult {
            server: Deployment {
                name: "one server".into(),
                get_us: 40.0,
                l2_hit_us: 50.0,
                l2_miss_us: 200.0,
                invalidation_p50_us: 120.0,
                invalidation_p99_us: 400.0,
                value_bytes: 101,
                l2_hits: 600,
                calls: 600,
            },
            cluster: Err("`redis-cli` is not on PATH".into()),
        }),
        disk: Err("not run".into()),
        phases: vec![("all", Duration::from_secs(1))],
        traces: "dir".into(),
        date: "2026-01-01".into(),
        commit: "abc1234".into(),
        versions: vec![("memokit".into(), "0.1.0".into())],
        kinds,
    }
}

#[test]
fn targets_are_judged_on_the_figures() {
    let results = fake_results();
    let targets = results.targets();
    let verdict = |goal: &str| {
        targets
            .iter()
            .find(|t| t.goal.starts_with(goal))
            .map(|t| t.met)
            .unwrap_or_else(|| panic!("no target {goal}"))
    };
    // memokit 10 ns vs quick_cache 16 ns: met; vs moka 17 ns: 0.59× > 0.5×: missed.
    assert!(verdict("hit latency ≤ 1.0×"));
    assert!(!verdict("hit latency ≤ 0.5×"));
    // 20 vs 16 Mops/s: met; vs moka 15: 1.33× < 2×: missed.
    assert!(verdict("2-thread throughput ≥ 1.0×"));
    assert!(!verdict("2-thread throughput ≥ 2×"));
    // lru+Mutex is 10 points up on gli.
    assert!(!verdict("hit ratio"));
    assert!(verdict("bytes per entry"));
    assert!(verdict("coalescing: exactly 1 load"));
    assert!(verdict("coalescing: every waiter"));
    // 50 vs 40 µs: 1.25× > 1.2×: missed.
    assert!(!verdict("L2 hit"));
    let mut skipped = fake_results();
    skipped.shared = Err("`redis-server` is not on PATH".into());
    let text = render(&skipped, "cmd", Duration::from_secs(3));
    assert!(text.contains("**Skipped: `redis-server` is not on PATH.**"));
    assert!(text.contains("not measured: `redis-server` is not on PATH"));
}

#[test]
fn report_states_machine_ratios_and_targets() {
    let results = fake_results();
    let text = render(&results, "cmd", Duration::from_secs(3));
    for needle in [
        "## Machine",
        "## Crate versions (from Cargo.lock)",
        "| quick_cache | 16.0 (1.60×)",
        "### A small cache\n\nThe same at capacity 200 over 2000 keys",
        // memokit 10 and 30 ns, quick_cache 16 and 18: round by round 0.625 and 1.67, best
        // rounds 10 / 16.
        "| hit latency | 0.62× | 1.15× | 0.62× – 1.67× |",
        "| hit latency ≤ 1.0× quick_cache | 10.0 vs 16.0 ns: 0.62× (best rounds; median of \
         paired rounds 1.15×) | met |",
        "| memokit W-TinyLFU (default) | 5.00 (1.00×) | 8.00 (1.00×) | 1.60× |",
        "## Targets",
        "**missed**",
        "| gli | 1000 | 50.00 ±15.00 (1.00×) | 50.00 ±0.00 (1.00×)",
        "60.00 (1.20×) | 90.00 |",
        "Quick run",
        "| `squared(key)` (`#[cached]`) | 12.0 | 1.20× |",
        "| `&str` | 18.0 | 20.0 (0.90×) | 60.0 (0.30×) |",
        "| memokit W-TinyLFU (default) | 1 of 2 | 1 of 2 | 40.00 |",
        "| lru+Mutex | 0 of 2 | 0 of 2 | 30.00 |",
        "| one server | 40.0 | 50.0 (1.25×) | 200.0 (5.00×) | 120 | 400 |",
        "The cluster was not measured: `redis-cli` is not on PATH.",
        "memokit `get_or_insert_with_async` 328, memokit `#[cached]` async fn 224",
        "`backf` was replayed at capacity 38 without settling, as its users run it: \
         memokit W-TinyLFU (default) 38, memokit S3-FIFO 39",
        "| memokit W-TinyLFU (default) | 1 of 2 | 10.0 | gli @1000: 10.00 below lru+Mutex |",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

#[test]
fn memokit_figures_are_the_mean_of_their_seeds_with_their_spread() {
    let mut results = fake_results();
    let text = render(&results, "cmd", Duration::from_secs(3));
    let memokit = "50.40 ±1.60 (1.00×) | 48.00 ±1.00 (0.95×) | 50.00 ±0.00 (0.99×) | \
                   50.00 ±0.00 (0.99×) | 50.00 ±0.00 (0.99×) | 50.00 ±0.00 (0.99×)";
    let peers = ["50.00 (0.99×)"; 6].join(" | ");
    for needle in [
        // Each memokit cell is the mean ± the farthest seed; the peers ran once: no ±.
        format!("| zipf(1.0) | 1000 | {memokit} | {peers} | 90.00 |"),
        // The headline's figure is the mean too.
        "| memokit W-TinyLFU (default) | 10.0 (1.00×) | 20.0 (1.00×) | 40 (1.00×) | 50.40 (1.00×) |"
            .to_string(),
        "| memokit S3-FIFO | 11.0 (1.10×) | 19.0 (0.95×) | 41 (1.02×) | 48.00 (0.95×) |"
            .to_string(),
        // Per policy: the mean width (3 and 20 points), the rows above half a point, the widest.
        "| memokit W-TinyLFU (default) | 11.50 | 2 of 2 | gli @1000: 45.00–65.00 |".to_string(),
        "| memokit S3-FIFO | 1.00 | 1 of 2 | zipf(1.0) @1000: 47.00–49.00 |".to_string(),
        "lowest to highest of the 5 seeds".to_string(),
        "the seeds 1, 2, 3, 4 and 5".to_string(),
        // The shortfall is judged on the mean (50.00), not on the first seed (65.00).
        "| gli | 1000 | 50.00 | lru+Mutex 60.00 | 10.00 |".to_string(),
        "| traces | 1 | 50.00 ±15.00 (1.00×) |".to_string(),
    ] {
        assert!(text.contains(&needle), "missing {needle:?} in\n{text}");
    }
    assert!(
        !text.contains("| quick_cache | 0.00 |"),
        "a peer has no spread row"
    );

    // A family's average spreads by the average taken seed by seed: the two rows' seeds
    // partly cancel (54.50, 54.00, 54.00, 54.50, 54.00 around 54.20).
    let mut second = results.hit_rows[0].clone();
    second.workload = "zipf(0.8)".into();
    second.runs[0] = vec![0.60, 0.58, 0.58, 0.58, 0.56];
    results.hit_rows.insert(
        1,
        Row::from_runs(
            second.workload,
            second.family,
            second.capacity,
            second.requests,
            second.runs,
            second.belady,
        ),
    );
    let text = render(&results, "cmd", Duration::from_secs(3));
    let needle = "| zipf | 2 | 54.20 ±0.30 (1.00×) | 48.00 ±1.00 (0.89×) |";
    assert!(text.contains(needle), "missing {needle:?} in\n{text}");
}

#[test]
fn plots_are_written() {
    let results = fake_results();
    let dir = std::env::temp_dir().join(format!("memokit-bench-report-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    write_plots(&results, &dir).unwrap();
    for file in [
        "latency.svg",
        "memory.svg",
        "throughput.svg",
        "hit_ratio_synthetic.svg",
        "hit_ratio_traces.svg",
    ] {
        assert!(dir.join(file).is_file(), "{file}");
    }
    assert!(!dir.join("hit_ratio_your_traces.svg").exists());
    fs::remove_dir_all(&dir).unwrap();
}
