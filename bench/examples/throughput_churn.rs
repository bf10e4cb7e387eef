//! The report's throughput workload on one thread, on a seeded cache of memokit's default
//! policy: the time of the timed rounds, and how many of their gets hit and how many entries
//! they evicted. `cargo run -p memokit-bench --release --example throughput_churn [SEED]`.
//!
//! The seed fixes the cache's hashing, so two builds replay the same operations into the same
//! shards: a change to the policy that moves the time shows here whether it moved the hits or
//! the evictions too (the workload inserts its keys whether or not they are resident, so a
//! policy that keeps fewer of them evicts more).

use std::hint::black_box;
use std::time::Instant;

use memokit::Cache;
use memokit_bench::report::Sizes;
use memokit_bench::throughput::streams;
use memokit_bench::workloads::Op;

/// Timed rounds over the same operations, after one untimed warm-up like the report's.
const ROUNDS: usize = 2;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seed: u64 = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .map_err(|_| format!("SEED: a number, not {arg:?}"))?,
        None => 1,
    };
    let sizes = Sizes::full().throughput;
    let ops = &streams(&sizes, 1)[0];
    let cache: Cache<u64, u64> = Cache::builder()
        .max_capacity(sizes.capacity as u64)
        .seed(seed)
        .build();
    for &op in ops {
        let (Op::Get(key) | Op::Insert(key)) = op;
        if cache.get(&key).is_none() {
            cache.insert(key, key);
        }
    }
    let before = cache.stats();
    let started = Instant::now();
    for _ in 0..ROUNDS {
        for &op in ops {
            match op {
                Op::Get(key) => {
                    black_box(cache.get(&key));
                }
                Op::Insert(key) => cache.insert(key, key),
            }
        }
    }
    let elapsed = started.elapsed();
    let after = cache.stats();
    println!(
        "{ROUNDS} rounds of {} operations (seed {seed}): {:.1} ms, {} gets hit, {} missed, {} evictions",
        ops.len(),
        elapsed.as_secs_f64() * 1e3,
        after.hits - before.hits,
        after.misses - before.misses,
        after.evictions - before.evictions,
    );
    Ok(())
}
