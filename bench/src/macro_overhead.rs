//! Macro overhead: a hit through a `#[cached]` function against `Cache::get` on the very cache
//! that function uses.

use std::hint::black_box;
use std::time::Instant;

use crate::latency::{best_latency, key_of};
use crate::workloads::SplitMix64;

/// Capacity of [`squared`]'s cache.
pub const MACRO_CAPACITY: usize = 100_000;

/// A cheap memoized function: what is measured is the way to its cache, not its body.
#[memokit::cached(size = 100_000)]
pub fn squared(key: u64) -> u64 {
    key.wrapping_mul(key)
}

/// The measurement's sizes.
#[derive(Debug, Clone, Copy)]
pub struct MacroSizes {
    /// Keys cached before timing; at most half of [`MACRO_CAPACITY`], so that no shard evicts
    /// one and every timed call is a hit.
    pub entries: usize,
    /// Timed calls per round.
    pub lookups: usize,
    /// Rounds; the best of each way is reported.
    pub rounds: usize,
}

/// Nanoseconds per hit both ways.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MacroResult {
    /// `squared(key)`.
    pub macro_ns: f64,
    /// `squared_cache().cache().get(&key)`.
    pub cache_get_ns: f64,
}

/// Fills [`squared`]'s cache with `entries` keys and returns `lookups` random ones among them.
pub fn prepare(entries: usize, lookups: usize) -> Vec<u64> {
    assert!(entries <= MACRO_CAPACITY / 2, "every key must stay cached");
    for i in 0..entries as u64 {
        squared(key_of(i));
    }
    assert_eq!(squared_cache().len(), entries as u64, "a key was evicted");
    let mut rng = SplitMix64(0x3ac0);
    (0..lookups)
        .map(|_| key_of(rng.below(entries as u64)))
        .collect()
}

/// Nanoseconds per `squared(key)` over `keys`.
pub fn time_macro(keys: &[u64]) -> f64 {
    let started = Instant::now();
    for &key in keys {
        black_box(squared(black_box(key)));
    }
    started.elapsed().as_nanos() as f64 / keys.len() as f64
}

/// Nanoseconds per `squared_cache().cache().get(&key)` over `keys`.
pub fn time_cache_get(keys: &[u64]) -> f64 {
    let cache = squared_cache().cache();
    let started = Instant::now();
    for &key in keys {
        black_box(cache.get(&black_box(key)));
    }
    started.elapsed().as_nanos() as f64 / keys.len() as f64
}

/// Times both ways in alternating rounds (so that drift hits both alike).
pub fn measure(sizes: MacroSizes) -> MacroResult {
    let keys = prepare(sizes.entries, sizes.lookups);
    time_macro(&keys);
    time_cache_get(&keys);
    let (mut macro_ns, mut cache_get_ns) = (Vec::new(), Vec::new());
    for _ in 0..sizes.rounds.max(1) {
        macro_ns.push(time_macro(&keys));
        cache_get_ns.push(time_cache_get(&keys));
    }
    let misses_before = squared_cache().stats().misses;
    time_macro(&keys);
    assert_eq!(
        squared_cache().stats().misses,
        misses_before,
        "a timed call missed"
    );
    MacroResult {
        macro_ns: best_latency(&macro_ns),
        cache_get_ns: best_latency(&cache_get_ns),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ways_reach_the_same_entries() {
        let result = measure(MacroSizes {
            entries: 1_000,
            lookups: 10_000,
            rounds: 1,
        });
        assert!(result.macro_ns > 0.0 && result.cache_get_ns > 0.0);
        assert_eq!(squared_cache().cache().get(&3), None);
        assert_eq!(squared(3), 9);
        assert_eq!(squared_cache().cache().get(&3), Some(9));
    }
}
