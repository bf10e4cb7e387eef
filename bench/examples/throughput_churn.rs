//! The report's throughput workload on one thread, on a seeded cache of memokit's default
//! policy: the time of the timed rounds, and how many of their gets hit and how many entries
//! they evicted. `cargo run -p memokit-bench --release --example throughput_churn [SEED]`.
//!
//! The seed fixes the cache's hashing, so two builds replay the same operations into the same
//! shards: a change to the policy that moves the time shows here whether it moved the hits or
//! the evictions too (the workload inserts its keys whether or not they are resident, so a
//! policy that keeps fewer of them evicts more).

use std::time::Instant;

use memokit_bench::contenders::{Contender, Memokit, W_TINYLFU};
use memokit_bench::report::Sizes;
use memokit_bench::throughput::{run_ops, streams, warm_up};

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
    let streams = streams(&sizes, 1);
    let cache = Memokit::<W_TINYLFU>::seeded(sizes.capacity, seed).ok_or("memokit takes a seed")?;
    warm_up(&cache, &streams);
    let before = cache.0.stats();
    let started = Instant::now();
    for _ in 0..ROUNDS {
        run_ops(&cache, &streams[0]);
    }
    let elapsed = started.elapsed();
    let after = cache.0.stats();
    println!(
        "{ROUNDS} rounds of {} operations (seed {seed}): {:.1} ms, {} gets hit, {} missed, {} evictions",
        streams[0].len(),
        elapsed.as_secs_f64() * 1e3,
        after.hits - before.hits,
        after.misses - before.misses,
        after.evictions - before.evictions,
    );
    Ok(())
}
