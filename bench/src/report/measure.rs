//! Runs every measurement into [`Results`], with the progress on stderr; states where it ran.

use std::error::Error;
use std::time::{Duration, Instant};

use crate::coalescing::{self, FutureSizes};
use crate::contenders::Kind;
use crate::disk_tier;
use crate::hit_ratio;
use crate::key_shapes;
use crate::latency::{self, LatencyResult};
use crate::machine::{self, Machine};
use crate::macro_overhead;
use crate::memory;
use crate::shared_tier;
use crate::throughput::{self, best_throughput, ThroughputSizes};

use super::results::Paired;
use super::{ReportOptions, Results};

/// The crates whose versions the report states, as named in `Cargo.lock`.
const CRATES: [&str; 10] = [
    "memokit",
    "quick_cache",
    "moka",
    "mini-moka",
    "cached",
    "lru",
    "parking_lot",
    "tokio",
    "plotters",
    "criterion",
];

fn phase<T>(
    phases: &mut Vec<(&'static str, Duration)>,
    name: &'static str,
    run: impl FnOnce() -> T,
) -> T {
    eprintln!("[{name}]");
    let started = Instant::now();
    let result = run();
    let took = started.elapsed();
    eprintln!("[{name}] {took:.1?}");
    phases.push((name, took));
    result
}

/// Runs every measurement.
pub fn measure(options: &ReportOptions) -> Result<Results, Box<dyn Error>> {
    let machine = Machine::detect();
    let sizes = options.sizes.clone();
    let kinds = Kind::ALL.to_vec();
    let mut phases = Vec::new();

    let latency: Vec<LatencyResult> = phase(&mut phases, "hit latency", || {
        latency::measure_all(&kinds, sizes.latency)
    });
    for (kind, result) in kinds.iter().zip(&latency) {
        eprintln!("  {:<28} {:>7.1} ns/get", kind.name(), result.ns_per_get);
    }
    let mut paired: Vec<Paired> = Paired::against_quick_cache(
        "hit latency".to_string(),
        &kinds,
        &latency.iter().map(|r| r.rounds.clone()).collect::<Vec<_>>(),
        &latency.iter().map(|r| r.ns_per_get).collect::<Vec<_>>(),
    )
    .into_iter()
    .collect();
    let moka_future_in_tokio = latency::moka_future_in_tokio(sizes.latency);
    eprintln!("  moka future in a tokio task   {moka_future_in_tokio:>7.1} ns/get");

    let throughput = phase(&mut phases, "throughput", || {
        measure_throughput(&kinds, sizes.throughput, &sizes.thread_counts, &mut paired)
    });
    let small_throughput = phase(&mut phases, "throughput, small cache", || {
        measure_throughput(
            &kinds,
            sizes.small_throughput,
            &sizes.thread_counts,
            &mut paired,
        )
    });

    let workloads = hit_ratio::workloads(
        &sizes.hit_ratio,
        options.trace_dir.as_deref(),
        &options.user_traces,
    )?;
    let (hit_rows, overfill) = phase(&mut phases, "hit ratio", || {
        let rows = hit_ratio::run(&workloads, &kinds, &hit_ratio::SEEDS, 2, |row| {
            eprintln!("  {} @{}", row.workload, row.capacity);
        });
        (rows, hit_ratio::overfill(&workloads, &kinds))
    });

    let memory = phase(&mut phases, "memory", || {
        kinds
            .iter()
            .map(|&kind| {
                let result =
                    memory::measure_in_child(kind, sizes.memory_entries).map_err(|e| e.to_string());
                match &result {
                    Ok(m) => {
                        eprintln!("  {:<28} {:>6.1} B/entry", kind.name(), m.bytes_per_entry())
                    }
                    Err(e) => eprintln!("  {:<28} failed: {e}", kind.name()),
                }
                result
            })
            .collect()
    });

    let coalescing = phase(&mut phases, "coalescing", || {
        coalescing::run_all(sizes.coalescing)
    });
    let macro_overhead = phase(&mut phases, "macro overhead", || {
        macro_overhead::measure(sizes.macro_overhead)
    });
    let key_shapes = phase(&mut phases, "key shapes", || {
        key_shapes::measure(sizes.key_shapes)
    });
    let shared = phase(&mut phases, "shared tier", || {
        let shared = shared_tier::measure(sizes.shared);
        match &shared {
            Ok(r) => {
                for deployment in std::iter::once(&r.server).chain(r.cluster.as_ref().ok()) {
                    eprintln!(
                        "  {}: plain GET {:.1} µs, L2 hit {:.1} µs: {:.2}×",
                        deployment.name,
                        deployment.get_us,
                        deployment.l2_hit_us,
                        deployment.ratio()
                    );
                }
            }
            Err(why) => eprintln!("  skipped: {why}"),
        }
        shared
    });

    let disk = phase(&mut phases, "disk tier", || {
        let disk = disk_tier::measure(sizes.disk);
        match &disk {
            Ok(r) => eprintln!(
                "  {}",
                disk_tier::summary(r, sizes.disk).replace('\n', "\n  ")
            ),
            Err(why) => eprintln!("  failed: {why}"),
        }
        disk
    });

    Ok(Results {
        machine,
        load_at_end: machine::load_average(),
        sizes,
        kinds,
        latency,
        moka_future_in_tokio,
        throughput,
        small_throughput,
        paired,
        hit_rows,
        overfill,
        memory,
        coalescing,
        coalescing_futures: FutureSizes::measure(),
        macro_overhead,
        key_shapes,
        shared,
        disk,
        phases,
        traces: options.trace_dir.as_ref().map_or_else(
            || "none found: synthetic workloads only".to_string(),
            |d| d.display().to_string(),
        ),
        date: machine::today(),
        commit: machine::git_commit(),
        versions: machine::workspace_lock().map_or_else(
            || vec![("Cargo.lock".to_string(), "not found".to_string())],
            |lock| machine::locked_versions(&lock, &CRATES),
        ),
    })
}

/// Mops/s per contender at each of `thread_counts`, best rounds; each count's rounds of
/// memokit's default against quick_cache's go to `paired`.
fn measure_throughput(
    kinds: &[Kind],
    sizes: ThroughputSizes,
    thread_counts: &[usize],
    paired: &mut Vec<Paired>,
) -> Vec<(usize, Vec<f64>)> {
    thread_counts
        .iter()
        .map(|&threads| {
            let streams = throughput::streams(&sizes, threads);
            let rounds = throughput::measure_all(kinds, sizes, &streams);
            let mops: Vec<f64> = rounds.iter().map(|r| best_throughput(r)).collect();
            for (kind, mops) in kinds.iter().zip(&mops) {
                eprintln!(
                    "  {threads} thr {:<28} {mops:>7.2} Mops/s ({} entries)",
                    kind.name(),
                    sizes.capacity
                );
            }
            paired.extend(Paired::against_quick_cache(
                Paired::throughput_figure(threads, sizes.capacity),
                kinds,
                &rounds,
                &mops,
            ));
            (threads, mops)
        })
        .collect()
}
