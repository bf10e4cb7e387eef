//! Criterion benchmarks: hit latency (1), throughput (2) and macro overhead (6), with the same
//! contenders, workloads and sizes as the report.
//!
//! `cargo bench -p memokit-bench`, or one group: `cargo bench -p memokit-bench -- hit_latency`.

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use memokit_bench::contenders::{Contender, Kind, Measure};
use memokit_bench::latency::fill;
use memokit_bench::macro_overhead::{self, squared, squared_cache};
use memokit_bench::report::Sizes;
use memokit_bench::throughput::{self as tp, run_ops};
use memokit_bench::workloads::Op;

/// Lookups prepared per contender (a power of two, walked cyclically).
const LOOKUPS: usize = 1 << 20;

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
}

/// Benchmark 1 for one contender: one `get` of a random resident key per iteration.
struct HitLatencyBench<'g, 'c> {
    group: &'g mut BenchmarkGroup<'c, WallTime>,
    kind: Kind,
}

impl Measure for HitLatencyBench<'_, '_> {
    type Output = ();

    fn measure<C: Contender>(self) {
        let filled = fill::<C>(Sizes::full().latency.entries, LOOKUPS);
        let (cache, keys) = (&filled.cache, &filled.lookups);
        let mut next = 0usize;
        self.group.bench_function(self.kind.name(), |b| {
            b.iter(|| {
                let key = keys[next];
                next = (next + 1) & (LOOKUPS - 1);
                black_box(cache.get(black_box(key)))
            })
        });
    }
}

fn hit_latency(c: &mut Criterion) {
    let mut group = c.benchmark_group("hit_latency");
    configure(&mut group);
    for kind in Kind::ALL {
        kind.measure(HitLatencyBench {
            group: &mut group,
            kind,
        });
    }
    group.finish();
}

/// Benchmark 2 for one contender: each iteration is one operation on each thread.
struct ThroughputBench<'g, 'c, 's> {
    group: &'g mut BenchmarkGroup<'c, WallTime>,
    kind: Kind,
    streams: &'s [Vec<Op>],
}

impl Measure for ThroughputBench<'_, '_, '_> {
    type Output = ();

    fn measure<C: Contender>(self) {
        let sizes = Sizes::full().throughput;
        let cache = C::with_capacity(sizes.capacity);
        for ops in self.streams {
            run_ops(&cache, ops);
        }
        cache.settle();
        let streams = self.streams;
        self.group.bench_function(self.kind.name(), |b| {
            b.iter_custom(|iters| {
                // Each thread runs `iters` operations of its stream, cyclically.
                let runs: Vec<Vec<Op>> = streams
                    .iter()
                    .map(|ops| ops.iter().copied().cycle().take(iters as usize).collect())
                    .collect();
                tp::timed_round(&cache, &runs)
            })
        });
    }
}

fn throughput(c: &mut Criterion) {
    let mut sizes = Sizes::full().throughput;
    sizes.ops_per_thread = 1 << 20;
    for threads in Sizes::full().thread_counts {
        let streams = tp::streams(&sizes, threads);
        let plural = if threads == 1 { "" } else { "s" };
        let mut group = c.benchmark_group(format!("throughput_{threads}_thread{plural}"));
        configure(&mut group);
        group.throughput(Throughput::Elements(threads as u64));
        for kind in Kind::ALL {
            kind.measure(ThroughputBench {
                group: &mut group,
                kind,
                streams: &streams,
            });
        }
        group.finish();
    }
}

fn macro_overhead(c: &mut Criterion) {
    let sizes = Sizes::full().macro_overhead;
    let keys = macro_overhead::prepare(sizes.entries, LOOKUPS);
    let mut group = c.benchmark_group("macro_overhead");
    configure(&mut group);
    let mut next = 0usize;
    group.bench_function("#[cached] fn hit", |b| {
        b.iter(|| {
            let key = keys[next];
            next = (next + 1) & (LOOKUPS - 1);
            black_box(squared(black_box(key)))
        })
    });
    let cache = squared_cache().cache();
    group.bench_function("Cache::get hit", |b| {
        b.iter(|| {
            let key = keys[next];
            next = (next + 1) & (LOOKUPS - 1);
            black_box(cache.get(&black_box(key)))
        })
    });
    group.finish();
}

criterion_group!(benches, hit_latency, throughput, macro_overhead);
criterion_main!(benches);
