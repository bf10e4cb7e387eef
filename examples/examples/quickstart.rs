//! The README's first command: a slow function memoized with `#[cached]`, called repeatedly,
//! its stats printed (like Python's `cache_info()`), then cleared.
//!
//! Run it with `cargo run -p memokit-examples --example quickstart`.

use std::thread;
use std::time::{Duration, Instant};

use memokit::cached;

/// Stands in for a database query or an HTTP call: 50 ms per call.
#[cached(size = 1_000, ttl = "5m")]
fn slow_square(n: u64) -> u64 {
    thread::sleep(Duration::from_millis(50));
    n * n
}

fn main() {
    for round in 1..=3 {
        let started = Instant::now();
        let total: u64 = (1..=10).map(slow_square).sum();
        println!(
            "round {round}: sum of squares 1..=10 = {total} in {:?}",
            started.elapsed()
        );
    }
    println!("stats: {}", slow_square_cache().stats());

    // Eight threads ask for the same missing key at once: the body runs once.
    let loads_before = slow_square_cache().stats().loads;
    thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| slow_square(99));
        }
    });
    let stats = slow_square_cache().stats();
    println!(
        "8 concurrent callers of slow_square(99): the body ran {} time(s), {} caller(s) waited for it",
        stats.loads - loads_before,
        stats.coalesced_waits
    );

    // Every memoized function is listed in the registry, for logs and metrics endpoints.
    for function in memokit::registry().functions() {
        println!("registry: {} -> {}", function.name, function.stats);
    }

    // After a write to the source of truth, drop one key, or everything.
    slow_square_cache().invalidate(&3);
    slow_square_cache().clear();
    println!("after clear: {} entries", slow_square_cache().len());
}
