//! Reproducible runs: `CacheBuilder::seed` and `#[cached(seed = …)]` fix the hashing keys, so
//! that one sequence of calls gives the same entries and stats every time; without a seed every
//! cache still gets keys of its own.

use std::collections::BTreeSet;
use std::time::Duration;

use memokit::{cached, Cache, Policy, Stats};

const POLICIES: [Policy; 6] = [
    Policy::WTinyLfu,
    Policy::S3Fifo,
    Policy::S3FifoTinyLfu,
    Policy::Lru,
    Policy::Lfu,
    Policy::Fifo,
];

/// Keys from 0..4096: half of them among 64 hot ones, the rest spread, from a fixed generator.
fn trace() -> Vec<u64> {
    let mut state = 0x5eed_u64;
    (0..40_000)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let r = state >> 33;
            if r % 2 == 0 {
                r % 64
            } else {
                r % 4096
            }
        })
        .collect()
}

fn replay(cache: &Cache<u64, u64>, trace: &[u64]) {
    for &key in trace {
        assert_eq!(cache.get_or_insert_with(key, || key * 2), key * 2);
    }
}

/// The keys resident, looked at without touching the policy.
fn contents(cache: &Cache<u64, u64>) -> BTreeSet<u64> {
    (0..4096).filter(|key| cache.peek(key).is_some()).collect()
}

/// The stats without the time the computations took, which no seed fixes.
fn counts(cache: &Cache<u64, u64>) -> Stats {
    let mut stats = cache.stats();
    stats.total_load_time = Duration::ZERO;
    stats
}

fn seeded(policy: Policy, seed: u64) -> Cache<u64, u64> {
    Cache::builder()
        .max_capacity(256)
        .shards(4)
        .policy(policy)
        .seed(seed)
        .build()
}

#[test]
fn the_same_seed_replaying_the_same_trace_ends_with_the_same_entries_and_stats() {
    let trace = trace();
    for policy in POLICIES {
        let (first, second) = (seeded(policy, 7), seeded(policy, 7));
        replay(&first, &trace);
        replay(&second, &trace);
        let stats = counts(&first);
        assert!(
            stats.evictions > 0 && stats.hits > 0,
            "{policy:?}: the trace must evict and hit: {stats:?}"
        );
        assert_eq!(stats, counts(&second), "{policy:?}");
        assert_eq!(contents(&first), contents(&second), "{policy:?}");
        assert_eq!(contents(&first).len() as u64, stats.len, "{policy:?}");
    }
}

#[test]
fn the_seed_decides_where_keys_go() {
    let trace = trace();
    // Four shards: another seed puts keys in other shards, so other keys are evicted.
    let outcomes: BTreeSet<Vec<u64>> = (1..=5)
        .map(|seed| {
            let cache = seeded(Policy::WTinyLfu, seed);
            replay(&cache, &trace);
            contents(&cache).into_iter().collect()
        })
        .collect();
    assert!(
        outcomes.len() > 1,
        "five seeds left the same entries: the seed is not used"
    );
    let (a, b, c) = (
        seeded(Policy::Lru, 1),
        seeded(Policy::Lru, 1),
        seeded(Policy::Lru, 2),
    );
    assert!((0..100u64).all(|key| a.__hash(&key) == b.__hash(&key)));
    assert!((0..100u64).any(|key| a.__hash(&key) != c.__hash(&key)));
}

#[test]
fn without_a_seed_each_cache_hashes_its_own_way_and_works() {
    let build = || -> Cache<u64, u64> { Cache::builder().max_capacity(256).shards(4).build() };
    let (first, second) = (build(), build());
    assert!(
        (0..100u64).any(|key| first.__hash(&key) != second.__hash(&key)),
        "two unseeded caches hash alike: their keys are not random"
    );
    let trace = trace();
    replay(&first, &trace);
    let stats = first.stats();
    assert_eq!(stats.hits + stats.misses, trace.len() as u64);
    assert!(stats.hits > stats.misses, "{stats:?}");
    assert_eq!(first.len(), 256);
}

const SEED: u64 = 42;

#[cached(size = 256, seed = 42)]
fn by_literal(key: u64) -> u64 {
    key * 2
}

#[cached(size = 256, seed = SEED)]
fn by_constant(key: u64) -> u64 {
    key * 2
}

#[cached(size = 256)]
fn unseeded(key: u64) -> u64 {
    key * 2
}

#[test]
fn cached_passes_its_seed_to_the_builder() {
    let builder: Cache<u64, u64> = Cache::builder().seed(42).build();
    let (literal, constant) = (by_literal_cache().cache(), by_constant_cache().cache());
    for key in 0..100u64 {
        assert_eq!(literal.__hash(&key), builder.__hash(&key));
        assert_eq!(constant.__hash(&key), builder.__hash(&key));
    }
    assert!((0..100u64).any(|key| unseeded_cache().cache().__hash(&key) != builder.__hash(&key)));
    assert_eq!((by_literal(3), by_literal(3)), (6, 6));
    assert_eq!(by_literal_cache().stats().hits, 1);
}
