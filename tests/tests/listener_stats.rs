//! The eviction listener (the cause it is told on every removal path, and that it runs with no
//! shard lock held), the [`Stats`] counters, `hit_ratio`, `reset_stats` and the `Display` line,
//! borrowed-key lookups, the `Send + Sync + Clone` handle whose clones share entries, and
//! `insert_many` (one lock per shard, the same outcome as one `insert` after another).

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use memokit::{Cache, MockClock, Policy, RemovalCause, Stats};

use memokit_tests::POLICIES;
const TTL: Duration = Duration::from_secs(10);

type Log = Arc<Mutex<Vec<(u32, &'static str, RemovalCause)>>>;

/// A one-shard cache on `clock` with a 10 s TTL and the given capacity, logging removals.
fn logged(
    policy: Policy,
    capacity: Option<u64>,
    clock: &MockClock,
) -> (Cache<u32, &'static str>, Log) {
    let log = Log::default();
    let sink = log.clone();
    let mut builder = Cache::builder()
        .policy(policy)
        .shards(1)
        .time_to_live(TTL)
        .clock(clock.clone())
        .eviction_listener(move |k, v, cause| sink.lock().unwrap().push((k, v, cause)));
    if let Some(capacity) = capacity {
        builder = builder.max_capacity(capacity);
    }
    (builder.build(), log)
}

fn take(log: &Log) -> Vec<(u32, &'static str, RemovalCause)> {
    std::mem::take(&mut *log.lock().unwrap())
}

/// (evictions, expirations, invalidations)
fn removals(stats: Stats) -> (u64, u64, u64) {
    (stats.evictions, stats.expirations, stats.invalidations)
}

#[test]
fn size_eviction_is_reported_as_size() {
    for policy in POLICIES {
        let (cache, log) = logged(policy, Some(1), &MockClock::new());
        cache.insert(1, "a");
        cache.insert(2, "b");
        assert_eq!(take(&log), [(1, "a", RemovalCause::Size)], "{policy:?}");
        assert_eq!(cache.get(&2), Some("b"));
        assert_eq!(removals(cache.stats()), (1, 0, 0), "{policy:?}");
    }
}

#[test]
fn replacement_is_reported_as_replaced_and_not_counted_as_a_removal() {
    for policy in POLICIES {
        let (cache, log) = logged(policy, None, &MockClock::new());
        cache.insert(1, "a");
        cache.insert(1, "b");
        cache.insert(1, "c");
        assert_eq!(
            take(&log),
            [
                (1, "a", RemovalCause::Replaced),
                (1, "b", RemovalCause::Replaced)
            ]
        );
        assert_eq!(cache.get(&1), Some("c"));
        let stats = cache.stats();
        assert_eq!((stats.inserts, stats.len), (3, 1), "{policy:?}");
        assert_eq!(removals(stats), (0, 0, 0), "{policy:?}");
    }
}

#[test]
fn invalidate_invalidate_if_and_clear_are_reported_as_invalidated() {
    for policy in POLICIES {
        let (cache, log) = logged(policy, None, &MockClock::new());
        cache.insert(1, "a");
        assert!(cache.invalidate(&1));
        assert!(!cache.invalidate(&1), "already gone");
        assert_eq!(take(&log), [(1, "a", RemovalCause::Invalidated)]);

        for (k, v) in [(1, "odd"), (2, "even"), (3, "odd"), (4, "even")] {
            cache.insert(k, v);
        }
        assert_eq!(cache.invalidate_if(|k, _| k % 2 == 0), 2, "{policy:?}");
        let mut removed = take(&log);
        removed.sort_by_key(|&(k, v, _)| (k, v));
        assert_eq!(
            removed,
            [
                (2, "even", RemovalCause::Invalidated),
                (4, "even", RemovalCause::Invalidated)
            ]
        );
        assert_eq!(cache.len(), 2);

        cache.clear();
        let mut removed = take(&log);
        removed.sort_by_key(|&(k, v, _)| (k, v));
        assert_eq!(
            removed,
            [
                (1, "odd", RemovalCause::Invalidated),
                (3, "odd", RemovalCause::Invalidated)
            ]
        );
        assert!(cache.is_empty());
        assert_eq!(removals(cache.stats()), (0, 0, 5), "{policy:?}");
    }
}

#[test]
fn expired_entries_are_reported_as_expired_on_every_path() {
    for policy in POLICIES {
        let clock = MockClock::new();
        let (cache, log) = logged(policy, None, &clock);
        let expect = |what: &str, expected: &[(u32, &'static str, RemovalCause)]| {
            let mut removed = take(&log);
            removed.sort_by_key(|&(k, v, _)| (k, v));
            assert_eq!(removed, expected, "{policy:?}: {what}");
        };
        let expired = |k, v| (k, v, RemovalCause::Expired);

        cache.insert(1, "read");
        clock.advance(TTL);
        assert_eq!(cache.get(&1), None);
        expect("a read", &[expired(1, "read")]);

        cache.insert(1, "purged");
        clock.advance(TTL);
        cache.purge_expired();
        expect("purge_expired", &[expired(1, "purged")]);

        // One shard, one slot in use: the next write's sweep examines it.
        cache.insert(1, "swept");
        clock.advance(TTL);
        cache.insert(2, "live");
        expect("a write's sweep", &[expired(1, "swept")]);
        assert_eq!(cache.len(), 1);
        cache.clear();
        take(&log);

        cache.insert(1, "invalidated");
        clock.advance(TTL);
        assert!(!cache.invalidate(&1), "an expired entry is not live");
        expect("invalidate", &[expired(1, "invalidated")]);

        cache.insert(1, "invalidate_if");
        clock.advance(TTL);
        assert_eq!(
            cache.invalidate_if(|_, _| true),
            0,
            "expired entries are not counted"
        );
        expect("invalidate_if", &[expired(1, "invalidate_if")]);

        cache.insert(1, "cleared");
        clock.advance(TTL);
        cache.clear();
        expect("clear", &[expired(1, "cleared")]);

        cache.insert(1, "overwritten");
        clock.advance(TTL);
        cache.insert(1, "new");
        expect("an insert over it", &[expired(1, "overwritten")]);
        assert_eq!(cache.get(&1), Some("new"));

        let stats = cache.stats();
        assert_eq!(
            removals(stats),
            (0, 7, 1),
            "{policy:?}: only clear's live entry"
        );
    }
}

#[test]
fn an_expired_eviction_victim_is_reported_as_expired() {
    for policy in POLICIES {
        let clock = MockClock::new();
        let (cache, log) = logged(policy, Some(1), &clock);
        cache.insert(1, "old");
        clock.advance(TTL);
        cache.insert(2, "new");
        assert_eq!(
            take(&log),
            [(1, "old", RemovalCause::Expired)],
            "{policy:?}"
        );
        assert_eq!(removals(cache.stats()), (0, 1, 0), "{policy:?}");
    }
}

#[test]
fn listener_runs_after_the_shard_lock_is_released() {
    // The listener reads the same (only) shard: if it ran under the lock it would deadlock, so
    // the work runs on a thread watched with a timeout.
    let (done_tx, done_rx) = mpsc::channel();
    thread::spawn(move || {
        let slot: Arc<Mutex<Option<Cache<u32, u32>>>> = Arc::default();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (inner_slot, inner_seen) = (slot.clone(), seen.clone());
        let cache: Cache<u32, u32> = Cache::builder()
            .max_capacity(1)
            .shards(1)
            .eviction_listener(move |k, _v, cause| {
                let cache = inner_slot.lock().unwrap().clone().expect("cache installed");
                // Takes the shard's lock; the removed entry is already gone.
                inner_seen
                    .lock()
                    .unwrap()
                    .push((k, cause, cache.contains_key(&k)));
                cache.get(&k);
            })
            .build();
        *slot.lock().unwrap() = Some(cache.clone());
        cache.insert(1, 1);
        cache.insert(2, 2); // evicts 1
        cache.insert(2, 3); // replaces 2 (the listener's get(&2) then hits the new value)
        cache.invalidate(&2);
        slot.lock().unwrap().take(); // breaks the cache -> listener -> cache cycle
        let seen = seen.lock().unwrap().clone();
        done_tx.send(seen).unwrap();
    });
    let seen = done_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the listener deadlocked: it was called under the shard lock");
    assert_eq!(
        seen,
        [
            (1, RemovalCause::Size, false),
            (2, RemovalCause::Replaced, true),
            (2, RemovalCause::Invalidated, false),
        ]
    );
}

#[test]
fn stats_count_every_kind_of_event() {
    let clock = MockClock::new();
    let (cache, _log) = logged(Policy::Lru, Some(2), &clock);
    cache.insert(1, "a");
    cache.insert(2, "b");
    assert_eq!(cache.get(&1), Some("a")); // hit; 2 is now least recently used
    assert_eq!(cache.get(&3), None); // miss
    cache.insert(3, "c"); // evicts 2
    assert!(!cache.contains_key(&2));
    cache.insert(1, "A"); // replaces
    assert!(cache.invalidate(&3));
    assert!(!cache.invalidate(&3));
    assert!(cache.contains_key(&1)); // not a lookup
    clock.advance(TTL);
    assert_eq!(cache.get(&1), None); // miss, expired
    assert_eq!(cache.get_or_insert_with(5, || "e"), "e"); // miss, load, insert
    assert_eq!(cache.get_or_insert_with(5, || unreachable!()), "e"); // hit
    let failed: Result<&str, &str> = cache.try_get_or_insert_with(6, || Err("down"));
    assert_eq!(failed, Err("down")); // miss, failed load

    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (2, 4));
    assert_eq!(stats.inserts, 5);
    assert_eq!(removals(stats), (1, 1, 1));
    assert_eq!(
        (stats.loads, stats.load_failures, stats.coalesced_waits),
        (2, 1, 0)
    );
    assert_eq!(
        (stats.len, stats.weighted_size, stats.capacity),
        (1, 1, Some(2))
    );
    assert_eq!(stats.hit_ratio(), 2.0 / 6.0);
    // Load times are real time; only the shape of that field can be checked.
    let line = stats.to_string();
    let prefix = "hits=2 misses=4 hit_ratio=33.3% size=1/2 evictions=1 expirations=1 \
                  invalidations=1 loads=2 load_failures=1 coalesced_waits=0 avg_load=";
    let micros = line
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix("µs"))
        .unwrap_or_else(|| panic!("unexpected stats line: {line}"));
    assert_eq!(
        micros.parse::<u128>().ok(),
        Some(stats.average_load_time().as_micros())
    );
}

#[test]
fn hit_ratio_is_hits_over_lookups_and_zero_before_any() {
    let cache: Cache<u32, u32> = Cache::new(10);
    assert_eq!(cache.stats().hit_ratio(), 0.0);
    cache.insert(1, 1);
    cache.get(&1);
    assert_eq!(cache.stats().hit_ratio(), 1.0);
    cache.get(&2);
    cache.get(&3);
    cache.get(&1);
    assert_eq!(cache.stats().hit_ratio(), 0.5);
}

#[test]
fn display_line_matches_its_documented_format() {
    let cache: Cache<u32, u32> = Cache::builder()
        .max_capacity(100)
        .shards(4)
        .weigher(|_k, v| *v)
        .build();
    cache.insert(1, 7);
    cache.insert(2, 3);
    cache.get(&1);
    cache.get(&2);
    cache.get(&9);
    assert_eq!(
        cache.stats().to_string(),
        "hits=2 misses=1 hit_ratio=66.7% size=10/100 evictions=0 expirations=0 \
         invalidations=0 loads=0 load_failures=0 coalesced_waits=0 avg_load=0µs",
        "size is the weighted size; the ratio has one decimal"
    );
    let unbounded: Cache<u32, u32> = Cache::builder().build();
    assert_eq!(
        unbounded.stats().to_string(),
        "hits=0 misses=0 hit_ratio=0.0% size=0/unbounded evictions=0 expirations=0 \
         invalidations=0 loads=0 load_failures=0 coalesced_waits=0 avg_load=0µs"
    );
}

#[test]
fn reset_stats_zeroes_the_counters_but_keeps_the_entries() {
    let clock = MockClock::new();
    let (cache, _log) = logged(Policy::S3Fifo, Some(1), &clock);
    cache.insert(1, "a");
    cache.insert(2, "b"); // eviction
    cache.get(&2);
    cache.get(&1);
    cache.get_or_insert_with(2, || "x");
    cache.invalidate(&2);
    cache.insert(3, "c");
    assert_ne!(cache.stats().hits, 0);
    cache.reset_stats();
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.inserts), (0, 0, 0));
    assert_eq!(removals(stats), (0, 0, 0));
    assert_eq!((stats.loads, stats.load_failures), (0, 0));
    assert_eq!(stats.total_load_time, Duration::ZERO);
    assert_eq!(stats.hit_ratio(), 0.0);
    assert_eq!(
        (stats.len, stats.weighted_size, stats.capacity),
        (1, 1, Some(1))
    );
    assert_eq!(cache.get(&3), Some("c"), "entries stay");
    assert_eq!(cache.stats().hits, 1, "counting resumes from zero");
}

#[test]
fn string_keys_are_read_with_str() {
    let cache: Cache<String, u32> = Cache::new(10);
    cache.insert("alpha".to_string(), 1);
    let borrowed: &str = "alpha";
    assert_eq!(cache.get(borrowed), Some(1));
    assert!(cache.contains_key(borrowed));
    assert_eq!(cache.get("beta"), None);
    assert!(cache.invalidate("alpha"));
    assert!(!cache.contains_key("alpha"));

    let bytes: Cache<Vec<u8>, u32> = Cache::new(10);
    bytes.insert(b"key".to_vec(), 2);
    assert_eq!(bytes.get(&b"key"[..]), Some(2));
}

const fn assert_send_sync_clone<T: Send + Sync + Clone>() {}

// Checked at compile time.
const _: () = {
    assert_send_sync_clone::<Cache<String, Vec<u8>>>();
    assert_send_sync_clone::<Cache<u64, Arc<str>>>();
    assert_send_sync_clone::<Stats>();
};

#[test]
fn clones_share_entries_and_stats_across_threads() {
    let cache: Cache<String, u32> = Cache::new(100);
    let clone = cache.clone();
    clone.insert("a".into(), 1);
    assert_eq!(cache.get("a"), Some(1));
    let handle = {
        let cache = cache.clone();
        thread::spawn(move || {
            cache.insert("b".into(), 2);
            cache.get("a")
        })
    };
    assert_eq!(handle.join().unwrap(), Some(1));
    assert_eq!(clone.get("b"), Some(2));
    assert!(cache.invalidate("a"));
    assert!(!clone.contains_key("a"));
    assert_eq!(cache.stats(), clone.stats());
    assert_eq!(clone.stats().hits, 3);
    clone.clear();
    assert!(cache.is_empty());
}

#[test]
fn overwriting_expired_values_reports_each_as_expired() {
    // Many entries in one shard, overwritten newest first, so that some are overwritten before
    // any sweep reaches them. Odd keys get a value too heavy to store.
    let clock = MockClock::new();
    let log: Arc<Mutex<Vec<(u32, u32, RemovalCause)>>> = Arc::default();
    let sink = log.clone();
    let cache: Cache<u32, u32> = Cache::builder()
        .max_capacity(1_000)
        .shards(1)
        .weigher(|_k, v| *v)
        .time_to_live(TTL)
        .clock(clock.clone())
        .eviction_listener(move |k, v, cause| sink.lock().unwrap().push((k, v, cause)))
        .build();
    for k in 0..64 {
        cache.insert(k, 1);
    }
    clock.advance(TTL);
    for k in (0..64).rev() {
        cache.insert(k, if k % 2 == 1 { 2_000 } else { 2 });
    }
    let mut removed = log.lock().unwrap().clone();
    removed.sort_by_key(|&(k, v, _)| (k, v));
    let expected: Vec<_> = (0..64)
        .flat_map(|k| {
            let old = (k, 1, RemovalCause::Expired);
            let rejected = (k % 2 == 1).then_some((k, 2_000, RemovalCause::Size));
            std::iter::once(old).chain(rejected)
        })
        .collect();
    assert_eq!(removed, expected);
    let stats = cache.stats();
    assert_eq!((stats.expirations, stats.evictions), (64, 32));
    assert_eq!((cache.len(), cache.weighted_size()), (32, 64));
}

// ---- `insert_many`: one lock per shard, the same outcome as one `insert` after another ------

type Call = (u32, u32, RemovalCause);
type Events = Arc<Mutex<Vec<Call>>>;

/// Four shards of two (weighed: a value of 1000 or more weighs 3, too heavy to be stored).
fn bulk_cache(policy: Policy) -> (Cache<u32, u32>, Events) {
    let events = Events::default();
    let sink = events.clone();
    let cache = Cache::builder()
        .policy(policy)
        .shards(4)
        .max_capacity(8)
        .weigher(|_, value: &u32| if *value >= 1000 { 3 } else { 1 })
        .eviction_listener(move |k, v, cause| sink.lock().unwrap().push((k, v, cause)))
        .build();
    (cache, events)
}

/// Writes `entries` with `write`; returns what is cached, the stats and the listener's calls
/// (ordered by key, stably: each key's calls in the order they came), then empties the cache.
fn outcome(
    cache: &Cache<u32, u32>,
    events: &Events,
    write: impl FnOnce(Vec<(u32, u32)>),
    entries: &[(u32, u32)],
) -> (Vec<(u32, u32)>, Stats, Vec<Call>) {
    cache.clear();
    cache.reset_stats();
    events.lock().unwrap().clear();
    write(entries.to_vec());
    let stats = cache.stats();
    let cached = (0..32)
        .filter_map(|k| cache.peek(&k).map(|v| (k, v)))
        .collect();
    let mut calls = std::mem::take(&mut *events.lock().unwrap());
    calls.sort_by_key(|&(k, ..)| k);
    (cached, stats, calls)
}

#[test]
fn insert_many_ends_as_one_insert_after_another() {
    // Repeated keys (replaced), more keys than room (evicted), too heavy values (refused).
    let entries: Vec<(u32, u32)> = (0..120)
        .map(|i| ((i * 7) % 29, if i % 17 == 0 { 1000 + i } else { i }))
        .flat_map(|(k, v)| {
            let again = (v % 5 == 1).then_some((k, v + 500));
            std::iter::once((k, v)).chain(again)
        })
        .collect();
    let heavy = entries.iter().filter(|&&(_, v)| v >= 1000).count() as u64;
    for policy in [Policy::Lru, Policy::Fifo] {
        let (cache, events) = bulk_cache(policy);
        let one_by_one = outcome(
            &cache,
            &events,
            |entries| entries.into_iter().for_each(|(k, v)| cache.insert(k, v)),
            &entries,
        );
        let bulk = outcome(
            &cache,
            &events,
            |entries| cache.insert_many(entries),
            &entries,
        );
        assert_eq!(bulk, one_by_one, "{policy:?}");
        let (cached, stats, calls) = bulk;
        assert!(
            cached.len() <= 8 && stats.weighted_size <= 8,
            "{policy:?}: {stats:?}"
        );
        assert_eq!(
            stats.inserts,
            entries.len() as u64 - heavy,
            "{policy:?}: all but the too heavy"
        );
        assert!(stats.evictions > 8, "{policy:?}: {stats:?}");
        let causes = |cause| calls.iter().filter(|call| call.2 == cause).count() as u64;
        assert_eq!(causes(RemovalCause::Size), stats.evictions, "{policy:?}");
        assert!(causes(RemovalCause::Replaced) > 0, "{policy:?}");
    }
}

#[test]
fn insert_many_writes_a_shards_keys_under_one_lock_and_calls_the_listener_after() {
    // One shard of one entry: each write evicts the previous key. The listener, called outside
    // the lock, sees the cache after the whole batch, not in between.
    let cache: Arc<std::sync::OnceLock<Cache<u32, u32>>> = Arc::default();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (handle, sink) = (cache.clone(), seen.clone());
    let built = cache.get_or_init(|| {
        Cache::builder()
            .shards(1)
            .max_capacity(1)
            .eviction_listener(move |k: u32, _v: u32, _cause| {
                let cache = handle.get().expect("built");
                sink.lock().unwrap().push((k, cache.peek(&3)));
            })
            .build()
    });
    built.insert_many([(1, 10), (2, 20), (3, 30)]);
    assert_eq!(*seen.lock().unwrap(), [(1, Some(30)), (2, Some(30))]);
    assert_eq!(built.peek(&3), Some(30));
}

/// A computation that panics or whose future is dropped counts as a failed load with the time
/// it ran, so `average_load_time` is not pulled down by zeros.
#[test]
fn panicked_and_cancelled_loads_count_their_real_time() {
    const RAN: Duration = Duration::from_millis(20);
    let cache: Cache<u32, u32> = Cache::new(10);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        cache.get_or_insert_with(1, || {
            thread::sleep(RAN);
            panic!("load failed")
        })
    }));
    assert!(panicked.is_err());
    let stats = cache.stats();
    assert_eq!((stats.loads, stats.load_failures), (1, 1));
    assert!(stats.total_load_time >= RAN, "{:?}", stats.total_load_time);

    let mut cancelled = Box::pin(cache.get_or_insert_with_async(2, std::future::pending::<u32>()));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(std::future::Future::poll(cancelled.as_mut(), &mut cx).is_pending());
    thread::sleep(RAN);
    drop(cancelled);
    let stats = cache.stats();
    assert_eq!((stats.loads, stats.load_failures), (2, 2));
    assert!(
        stats.total_load_time >= 2 * RAN,
        "{:?}",
        stats.total_load_time
    );
    assert!(stats.average_load_time() >= RAN);
}
