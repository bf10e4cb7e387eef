//! Capacity: under every policy and shard count, `len()` (or `weighted_size()` with a weigher)
//! never exceeds `max_capacity`, not even transiently while two threads insert and a third
//! watches; the capacity is split exactly (a cache fills to exactly its capacity); a value
//! heavier than a shard's share is not stored; a zero capacity stores nothing.

use std::collections::HashSet;
use std::panic;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use memokit::{Cache, MockClock, Policy, RemovalCause};

use memokit_tests::POLICIES;
/// `None`: the default shard count (which depends on the capacity and the cores).
const SHARDS: [Option<usize>; 4] = [None, Some(1), Some(4), Some(16)];
const OPS_PER_WRITER: u64 = 2_000;

/// SplitMix64: a small, seedable source of random keys.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn build(policy: Policy, capacity: u64, shards: Option<usize>, weighted: bool) -> Cache<u64, u64> {
    let mut builder = Cache::builder().policy(policy).max_capacity(capacity);
    if let Some(shards) = shards {
        builder = builder.shards(shards);
    }
    if weighted {
        // The value is the weight.
        builder = builder.weigher(|_k, v: &u64| *v as u32);
    }
    builder.build()
}

/// Two threads insert (and read) random keys while a third checks `len()` and
/// `weighted_size()` against `capacity` at every observation. `weight` picks each value
/// (the weight, for a weighted cache). Returns how many observations the watcher made.
fn hammer(
    cache: &Cache<u64, u64>,
    capacity: u64,
    key_space: u64,
    weight: impl Fn(&mut Rng) -> u64 + Sync,
) -> u64 {
    let done = AtomicBool::new(false);
    thread::scope(|s| {
        let writers: Vec<_> = (0..2u64)
            .map(|t| {
                let weight = &weight;
                s.spawn(move || {
                    let mut rng = Rng(t * 7919 + capacity);
                    for _ in 0..OPS_PER_WRITER {
                        let key = rng.below(key_space);
                        if rng.below(5) == 0 {
                            cache.get(&key);
                        } else {
                            cache.insert(key, weight(&mut rng));
                        }
                    }
                })
            })
            .collect();
        let watcher = s.spawn(|| {
            let mut observations = 0;
            loop {
                let finished = done.load(Ordering::Acquire);
                let (len, weighted) = (cache.len(), cache.weighted_size());
                assert!(
                    len <= capacity,
                    "len {len} > capacity {capacity} ({cache:?})"
                );
                assert!(
                    weighted <= capacity,
                    "weighted_size {weighted} > capacity {capacity} ({cache:?})"
                );
                observations += 1;
                if finished {
                    return observations;
                }
                thread::yield_now();
            }
        });
        let results: Vec<_> = writers.into_iter().map(|w| w.join()).collect();
        done.store(true, Ordering::Release);
        let observations = watcher.join().unwrap_or_else(|e| panic::resume_unwind(e));
        for result in results {
            result.unwrap_or_else(|e| panic::resume_unwind(e));
        }
        observations
    })
}

/// `len()` and `weighted_size()` agree with what the cache answers for every key.
fn check_accounting(cache: &Cache<u64, u64>, key_space: u64, weighted: bool) {
    let present: Vec<u64> = (0..key_space).filter(|k| cache.contains_key(k)).collect();
    assert_eq!(cache.len(), present.len() as u64, "{cache:?}");
    let weight: u64 = if weighted {
        present.iter().map(|k| cache.get(k).expect("present")).sum()
    } else {
        present.len() as u64
    };
    assert_eq!(cache.weighted_size(), weight, "{cache:?}");
}

#[test]
fn len_never_exceeds_capacity_under_concurrent_inserts() {
    for policy in POLICIES {
        for capacity in [0, 1, 3, 64, 100, 1000] {
            for shards in SHARDS {
                let cache = build(policy, capacity, shards, false);
                let key_space = 3 * capacity + 8;
                let observations = hammer(&cache, capacity, key_space, |rng| rng.next());
                assert!(observations >= 1);
                assert!(cache.len() <= capacity, "{cache:?}: {}", cache.len());
                check_accounting(&cache, key_space, false);
            }
        }
    }
}

#[test]
fn weighted_size_never_exceeds_capacity_under_concurrent_inserts() {
    for policy in POLICIES {
        for capacity in [0, 10, 100, 1000, 5000] {
            for shards in SHARDS {
                let cache = build(policy, capacity, shards, true);
                let share = capacity / cache.shard_count() as u64;
                // Up to 1.5 shares, so some values are too heavy to be stored.
                let max_weight = share + share / 2 + 1;
                let key_space = 3 * capacity / max_weight.max(1) + 16;
                hammer(&cache, capacity, key_space, |rng| 1 + rng.below(max_weight));
                assert!(cache.weighted_size() <= capacity, "{cache:?}");
                check_accounting(&cache, key_space, true);
            }
        }
    }
}

#[test]
fn a_cache_fills_to_exactly_its_capacity() {
    // The shares add up to the capacity: a full cache holds exactly `capacity` entries, never
    // more (no slack) and not fewer (no remainder lost in the split).
    for policy in POLICIES {
        for capacity in [1, 3, 64, 100, 1000, 1001] {
            for shards in SHARDS {
                let cache = build(policy, capacity, shards, false);
                // Enough distinct keys that every shard receives more than its share.
                let keys = (20 * capacity).max(64 * cache.shard_count() as u64);
                for k in 0..keys {
                    cache.insert(k, k);
                    assert!(cache.len() <= capacity, "{cache:?}");
                }
                assert_eq!(cache.len(), capacity, "{cache:?}");
                assert_eq!(cache.weighted_size(), capacity, "{cache:?}");
                let stats = cache.stats();
                assert_eq!(stats.evictions, keys - capacity, "{cache:?}");
                if capacity >= cache.shard_count() as u64 {
                    // No shard of capacity zero, where every value is rejected uncounted.
                    assert_eq!(stats.inserts, keys, "{cache:?}");
                }
                check_accounting(&cache, keys, false);
            }
        }
    }
}

type Log = Arc<Mutex<Vec<(u64, u64, RemovalCause)>>>;

fn logged(policy: Policy, capacity: u64, shards: usize) -> (Cache<u64, u64>, Log) {
    let log = Log::default();
    let sink = log.clone();
    let cache = Cache::builder()
        .policy(policy)
        .max_capacity(capacity)
        .shards(shards)
        .weigher(|_k, v: &u64| *v as u32)
        .eviction_listener(move |k, v, cause| sink.lock().unwrap().push((k, v, cause)))
        .build();
    (cache, log)
}

#[test]
fn a_value_heavier_than_a_shard_share_is_rejected_and_drops_the_old_value() {
    for policy in POLICIES {
        // 4 shards of exactly 25.
        let (cache, log) = logged(policy, 100, 4);
        cache.insert(1, 10);
        assert_eq!(cache.weighted_size(), 10);
        cache.insert(1, 26);
        assert_eq!(
            cache.get(&1),
            None,
            "{policy:?}: the old value must not survive"
        );
        assert!(!cache.contains_key(&1));
        assert_eq!((cache.len(), cache.weighted_size()), (0, 0), "{policy:?}");
        assert_eq!(
            *log.lock().unwrap(),
            [(1, 10, RemovalCause::Replaced), (1, 26, RemovalCause::Size)],
            "{policy:?}"
        );
        // Exactly one share fits, whatever the shard.
        for k in 10..20 {
            cache.insert(k, 25);
            assert_eq!(cache.get(&k), Some(25), "{policy:?}: a full share fits");
            cache.invalidate(&k);
        }
        // Too heavy with no older value: nothing stored, nothing else disturbed.
        cache.insert(2, 5);
        log.lock().unwrap().clear();
        cache.insert(3, 26);
        assert_eq!(*log.lock().unwrap(), [(3, 26, RemovalCause::Size)]);
        assert_eq!(cache.get(&2), Some(5), "{policy:?}");
        assert_eq!(cache.weighted_size(), 5, "{policy:?}");
        // get_or_insert_with hands the value back but cannot store it.
        assert_eq!(cache.get_or_insert_with(4, || 30), 30);
        assert!(!cache.contains_key(&4));
        let stats = cache.stats();
        // Rejected: 26 (key 1), 26 (key 3), 30 (key 4); stored: 10, ten 25s and 5.
        assert_eq!((stats.evictions, stats.inserts), (3, 12), "{policy:?}");
    }
}

#[test]
fn a_too_heavy_value_over_an_expired_one_reports_it_expired() {
    let ttl = Duration::from_secs(10);
    for policy in POLICIES {
        let clock = MockClock::new();
        let log = Log::default();
        let sink = log.clone();
        let cache: Cache<u64, u64> = Cache::builder()
            .policy(policy)
            .max_capacity(100)
            .shards(4)
            .weigher(|_k, v: &u64| *v as u32)
            .time_to_live(ttl)
            .clock(clock.clone())
            .eviction_listener(move |k, v, cause| sink.lock().unwrap().push((k, v, cause)))
            .build();
        cache.insert(1, 10);
        clock.advance(ttl);
        cache.insert(1, 26);
        assert_eq!(
            *log.lock().unwrap(),
            [(1, 10, RemovalCause::Expired), (1, 26, RemovalCause::Size)],
            "{policy:?}"
        );
        let stats = cache.stats();
        assert_eq!((stats.expirations, stats.evictions), (1, 1), "{policy:?}");
        assert!(cache.is_empty());
    }
}

#[test]
fn zero_capacity_stores_nothing() {
    for policy in POLICIES {
        for shards in [None, Some(1), Some(4)] {
            let log = Log::default();
            let sink = log.clone();
            let mut builder = Cache::builder()
                .policy(policy)
                .max_capacity(0)
                .eviction_listener(move |k, v, cause| sink.lock().unwrap().push((k, v, cause)));
            if let Some(shards) = shards {
                builder = builder.shards(shards);
            }
            let cache: Cache<u64, u64> = builder.build();
            for k in 0..50 {
                cache.insert(k, k + 1);
                assert!(cache.is_empty(), "{policy:?} {shards:?}");
            }
            assert_eq!((cache.len(), cache.weighted_size()), (0, 0));
            assert!((0..50).all(|k| cache.get(&k).is_none() && !cache.contains_key(&k)));
            let expected: Vec<_> = (0..50).map(|k| (k, k + 1, RemovalCause::Size)).collect();
            assert_eq!(*log.lock().unwrap(), expected, "{policy:?} {shards:?}");
            let runs = AtomicU32::new(0);
            for _ in 0..2 {
                let v = cache.get_or_insert_with(7, || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    70
                });
                assert_eq!(v, 70);
            }
            assert_eq!(
                runs.load(Ordering::SeqCst),
                2,
                "nothing was kept between calls"
            );
            let stats = cache.stats();
            assert_eq!(
                (stats.inserts, stats.evictions),
                (0, 52),
                "{policy:?} {shards:?}"
            );
        }
    }
    let plain: Cache<u64, u64> = Cache::new(0);
    plain.insert(1, 1);
    assert!(plain.is_empty() && plain.get(&1).is_none());
}

#[test]
fn evicted_keys_are_distinct_and_gone() {
    // What the listener reports as evicted for size is really gone, once each.
    for policy in POLICIES {
        let (cache, log) = logged(policy, 40, 2);
        for k in 0..200 {
            cache.insert(k, 1 + k % 3);
        }
        let log = log.lock().unwrap();
        let mut seen = HashSet::new();
        for &(k, v, cause) in log.iter() {
            assert_eq!(cause, RemovalCause::Size, "{policy:?}");
            assert_eq!(v, 1 + k % 3);
            assert!(seen.insert(k), "{policy:?}: key {k} evicted twice");
            assert!(
                !cache.contains_key(&k),
                "{policy:?}: evicted key {k} still present"
            );
        }
        let present = (0..200).filter(|k| cache.contains_key(k)).count();
        assert_eq!(
            present + seen.len(),
            200,
            "{policy:?}: every key is present or evicted"
        );
        assert!(cache.weighted_size() <= 40);
    }
}

#[test]
fn any_shard_count_builds_a_working_cache() {
    for asked in [0, 3, 1 << 40, usize::MAX] {
        let cache: Cache<u64, u64> = Cache::builder().shards(asked).build();
        let shards = cache.shard_count();
        assert!(
            shards.is_power_of_two() && (1..=memokit::MAX_SHARDS).contains(&shards),
            "shards({asked}) gave {shards}"
        );
        cache.insert(1, 10);
        assert_eq!(cache.get(&1), Some(10), "shards({asked})");
    }
    let clamped: Cache<u64, u64> = Cache::builder().shards(usize::MAX).build();
    assert_eq!(clamped.shard_count(), memokit::MAX_SHARDS);
}

#[test]
fn entries_that_weigh_nothing_still_count_against_the_capacity() {
    for policy in POLICIES {
        let cache: Cache<u64, u64> = Cache::builder()
            .policy(policy)
            .max_capacity(10)
            .shards(1)
            .weigher(|_k, _v| 0)
            .build();
        for k in 0..1_000 {
            cache.insert(k, k);
        }
        assert!(cache.len() <= 10, "{policy:?}: {} entries", cache.len());
        assert!(cache.weighted_size() <= 10, "{policy:?}");
    }
}

/// A key updated with a heavier value that fits is readable right after: the room is made
/// from other entries, under every policy (under FIFO-like orders the entry's own growth used
/// to evict it).
#[test]
fn a_heavier_update_that_fits_is_kept() {
    for policy in memokit_tests::POLICIES {
        let cache: Cache<u32, u32> = Cache::builder()
            .max_capacity(10)
            .shards(1)
            .policy(policy)
            .weigher(|_, value| *value)
            .build();
        cache.insert(1, 5);
        cache.insert(2, 5);
        cache.insert(1, 8);
        assert_eq!(cache.get(&1), Some(8), "{policy:?}");
        assert!(cache.weighted_size() <= 10, "{policy:?}");
    }
}
