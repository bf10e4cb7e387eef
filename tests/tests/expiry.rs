//! Expiry: time-to-live and time-to-idle driven by a [`MockClock`] (an expired value is never
//! returned, whatever the timing), and reclamation of expired entries that are never read: by
//! writes, by `purge_expired`, and by the background sweeper of `sweep_interval`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use memokit::{Cache, MockClock, Policy, RemovalCause};
use proptest::prelude::*;

use memokit_tests::POLICIES;
const NS: Duration = Duration::from_nanos(1);
const TTL: Duration = Duration::from_secs(10);

type Log = Arc<Mutex<Vec<(u32, u32, RemovalCause)>>>;

/// An unbounded cache with the given TTL/TTI on `clock`, recording removals in the returned log.
fn cache_with(
    clock: &MockClock,
    policy: Policy,
    ttl: Option<Duration>,
    tti: Option<Duration>,
) -> (Cache<u32, u32>, Log) {
    let log = Log::default();
    let sink = log.clone();
    let mut builder = Cache::builder()
        .policy(policy)
        .clock(clock.clone())
        .eviction_listener(move |k, v, cause| sink.lock().unwrap().push((k, v, cause)));
    if let Some(ttl) = ttl {
        builder = builder.time_to_live(ttl);
    }
    if let Some(tti) = tti {
        builder = builder.time_to_idle(tti);
    }
    (builder.build(), log)
}

/// Keys the log reports with `cause`, checking none is reported twice.
fn keys_with(log: &Log, cause: RemovalCause) -> HashSet<u32> {
    let mut keys = HashSet::new();
    for &(k, _, c) in log.lock().unwrap().iter() {
        if c == cause {
            assert!(keys.insert(k), "key {k} reported twice as {cause:?}");
        }
    }
    keys
}

#[test]
fn ttl_never_returns_a_value_at_or_after_its_deadline() {
    for policy in POLICIES {
        let clock = MockClock::new();
        let (cache, _) = cache_with(&clock, policy, Some(TTL), None);
        cache.insert(1, 10);
        clock.advance(TTL - NS);
        assert_eq!(
            cache.get(&1),
            Some(10),
            "{policy:?}: 1ns before the deadline"
        );
        assert!(cache.contains_key(&1), "{policy:?}");
        clock.advance(NS);
        // contains_key first: it does not reclaim, so get still finds the expired entry.
        assert!(!cache.contains_key(&1), "{policy:?}: at the deadline");
        assert_eq!(cache.get(&1), None, "{policy:?}: at the deadline");
        assert_eq!(cache.get(&1), None, "{policy:?}: a second read");
        clock.advance(TTL * 3);
        assert_eq!(cache.get(&1), None, "{policy:?}: long after");
        assert!(!cache.contains_key(&1), "{policy:?}");
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (1, 3), "{policy:?}");
    }
}

#[test]
fn expired_value_is_not_returned_before_it_is_reclaimed() {
    // Nothing reclaims the entry (no write, no purge): it is still resident, but never returned.
    let clock = MockClock::new();
    let (cache, _) = cache_with(&clock, Policy::S3Fifo, Some(TTL), None);
    cache.insert(1, 10);
    clock.advance(TTL);
    assert_eq!(cache.len(), 1, "expired entries stay until reclaimed");
    assert!(!cache.contains_key(&1));
    assert_eq!(cache.len(), 1, "contains_key does not reclaim");
    assert_eq!(cache.get(&1), None);
    assert_eq!(cache.len(), 0, "a read of an expired entry reclaims it");
}

#[test]
fn tti_extends_on_reads_and_expires_when_idle() {
    let tti = Duration::from_secs(10);
    for policy in POLICIES {
        let clock = MockClock::new();
        let (cache, _) = cache_with(&clock, policy, None, Some(tti));
        // Two keys with the same history, to probe both sides of the same idle deadline.
        cache.insert(1, 1);
        cache.insert(2, 2);
        for _ in 0..5 {
            clock.advance(Duration::from_secs(9));
            assert_eq!(
                cache.get(&1),
                Some(1),
                "{policy:?}: read within the idle time"
            );
            assert_eq!(cache.get(&2), Some(2), "{policy:?}");
        }
        // 45 s since insertion: far beyond one idle period, alive thanks to the reads.
        clock.advance(tti - NS);
        assert_eq!(
            cache.get(&1),
            Some(1),
            "{policy:?}: 1ns before the idle deadline"
        );
        clock.advance(NS);
        assert_eq!(cache.get(&2), None, "{policy:?}: idle for exactly the TTI");
        assert!(!cache.contains_key(&2), "{policy:?}");
        // Key 1 was read 1ns ago, so its deadline moved.
        assert_eq!(cache.get(&1), Some(1), "{policy:?}");
        clock.advance(tti);
        assert_eq!(cache.get(&1), None, "{policy:?}: idle again");
    }
}

#[test]
fn tti_is_restarted_by_writes_and_not_by_misses() {
    let tti = Duration::from_secs(10);
    let clock = MockClock::new();
    let (cache, _) = cache_with(&clock, Policy::Lru, None, Some(tti));
    cache.insert(1, 1);
    clock.advance(Duration::from_secs(8));
    cache.insert(1, 2);
    assert_eq!(cache.get(&7), None); // a miss on another key touches nothing
    clock.advance(tti - NS);
    assert!(cache.contains_key(&1), "the write restarted the idle time");
    clock.advance(NS);
    assert!(!cache.contains_key(&1));
    assert_eq!(cache.get(&1), None);
}

#[test]
fn ttl_and_tti_together_the_earlier_deadline_wins() {
    let tti = Duration::from_secs(4);
    let s = Duration::from_secs;
    for policy in POLICIES {
        let clock = MockClock::new();
        let (cache, _) = cache_with(&clock, policy, Some(TTL), Some(tti));
        cache.insert(0, 0); // read every 3 s: the TTL ends it
        cache.insert(1, 1); // idle: the TTI ends it
        cache.insert(2, 2); // idle, probed 1 ns before the TTI
        clock.advance(s(3)); // t = 3
        assert_eq!(cache.get(&0), Some(0), "{policy:?}");
        clock.advance(s(1) - NS); // t = 4 - 1ns
        assert_eq!(cache.get(&2), Some(2), "{policy:?}");
        clock.advance(NS); // t = 4
        assert_eq!(cache.get(&1), None, "{policy:?}: idle for the TTI");
        clock.advance(s(2)); // t = 6
        assert_eq!(cache.get(&0), Some(0), "{policy:?}");
        clock.advance(s(2) - 2 * NS); // t = 8 - 2ns, the last instant of idle time from 4 - 1ns
        assert_eq!(
            cache.get(&2),
            Some(2),
            "{policy:?}: its read at 4-1ns moved the idle time"
        );
        clock.advance(s(1) + 2 * NS); // t = 9
        assert_eq!(cache.get(&0), Some(0), "{policy:?}");
        clock.advance(s(1) - NS); // t = 10 - 1ns
        assert_eq!(cache.get(&0), Some(0), "{policy:?}: just before the TTL");
        assert_eq!(cache.get(&2), Some(2), "{policy:?}: read at 8-2ns");
        clock.advance(NS); // t = 10: both were read 1 ns ago, but the TTL has passed
        assert_eq!(
            cache.get(&0),
            None,
            "{policy:?}: reads do not extend the TTL"
        );
        assert_eq!(
            cache.get(&2),
            None,
            "{policy:?}: reads do not extend the TTL"
        );
    }
}

#[test]
fn insert_restarts_the_ttl() {
    let s = Duration::from_secs;
    for policy in POLICIES {
        let clock = MockClock::new();
        let (cache, log) = cache_with(&clock, policy, Some(TTL), None);
        cache.insert(1, 1);
        clock.advance(s(8));
        cache.insert(1, 2);
        clock.advance(s(8)); // 16 s after the first write, 8 s after the second
        assert_eq!(cache.get(&1), Some(2), "{policy:?}");
        clock.advance(s(2) - NS);
        assert_eq!(cache.get(&1), Some(2), "{policy:?}");
        clock.advance(NS);
        assert_eq!(cache.get(&1), None, "{policy:?}");
        assert_eq!(
            *log.lock().unwrap(),
            [
                (1, 1, RemovalCause::Replaced),
                (1, 2, RemovalCause::Expired)
            ],
            "{policy:?}"
        );
    }
}

#[test]
fn get_or_insert_with_recomputes_after_expiry() {
    let s = Duration::from_secs;
    for policy in POLICIES {
        let clock = MockClock::new();
        let (cache, log) = cache_with(&clock, policy, Some(TTL), None);
        let runs = AtomicU32::new(0);
        let load = || runs.fetch_add(1, Ordering::SeqCst) + 100;
        assert_eq!(cache.get_or_insert_with(1, load), 100, "{policy:?}");
        clock.advance(TTL - NS);
        assert_eq!(
            cache.get_or_insert_with(1, load),
            100,
            "{policy:?}: still live"
        );
        clock.advance(NS);
        assert_eq!(
            cache.get_or_insert_with(1, load),
            101,
            "{policy:?}: recomputed"
        );
        clock.advance(s(9));
        assert_eq!(
            cache.get_or_insert_with(1, load),
            101,
            "{policy:?}: new TTL"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 2, "{policy:?}");
        assert_eq!(*log.lock().unwrap(), [(1, 100, RemovalCause::Expired)]);
        let stats = cache.stats();
        assert_eq!(
            (stats.loads, stats.hits, stats.misses, stats.expirations),
            (2, 2, 2, 1),
            "{policy:?}"
        );
    }
}

#[test]
fn contains_key_is_false_after_expiry() {
    for (ttl, tti) in [(Some(TTL), None), (None, Some(TTL)), (Some(TTL), Some(TTL))] {
        let clock = MockClock::new();
        let (cache, _) = cache_with(&clock, Policy::Fifo, ttl, tti);
        cache.insert(1, 1);
        clock.advance(TTL - NS);
        assert!(cache.contains_key(&1));
        clock.advance(NS);
        assert!(!cache.contains_key(&1), "ttl={ttl:?} tti={tti:?}");
        assert_eq!(cache.get(&1), None);
    }
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u32),
    Get(u32),
    Contains(u32),
    Advance(Duration),
    Purge,
}

fn op() -> impl Strategy<Value = Op> {
    let ttl_ns = TTL.as_nanos() as u64;
    prop_oneof![
        3 => (0..6u32).prop_map(Op::Insert),
        3 => (0..6u32).prop_map(Op::Get),
        1 => (0..6u32).prop_map(Op::Contains),
        1 => (0..4u64).prop_map(|n| Op::Advance(Duration::from_nanos(n))),
        1 => (ttl_ns - 2..=ttl_ns + 1).prop_map(|n| Op::Advance(Duration::from_nanos(n))),
        2 => (0..ttl_ns).prop_map(|n| Op::Advance(Duration::from_nanos(n))),
        1 => Just(Op::Purge),
    ]
}

fn policy() -> impl Strategy<Value = Policy> {
    prop::sample::select(POLICIES.to_vec())
}

proptest! {
    /// Random interleavings of writes, reads and clock moves: a read returns exactly the last
    /// value written if it was written less than the TTL ago (and, with a TTI, touched less than
    /// the TTI ago), and nothing otherwise. With a small capacity, evictions may make a read
    /// miss, but a read that returns something still returns exactly that value.
    #[test]
    fn reads_never_return_a_value_older_than_the_ttl(
        policy in policy(),
        tti in prop::option::of((3..20u64).prop_map(Duration::from_secs)),
        capacity in prop::option::of(1..5u64),
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let clock = MockClock::new();
        let mut builder = Cache::builder().policy(policy).clock(clock.clone()).time_to_live(TTL);
        if let Some(tti) = tti {
            builder = builder.time_to_idle(tti);
        }
        if let Some(capacity) = capacity {
            builder = builder.max_capacity(capacity);
        }
        let cache: Cache<u32, u32> = builder.build();
        // key -> (value, written at, last touched at)
        let mut model: HashMap<u32, (u32, Duration, Duration)> = HashMap::new();
        let mut now = Duration::ZERO;
        let mut next_value = 0;
        let live = |model: &HashMap<u32, (u32, Duration, Duration)>, key: u32, now: Duration| {
            model.get(&key).and_then(|&(v, written, touched)| {
                let fresh = now - written < TTL && tti.is_none_or(|tti| now - touched < tti);
                fresh.then_some(v)
            })
        };
        for op in ops {
            match op {
                Op::Insert(k) => {
                    next_value += 1;
                    cache.insert(k, next_value);
                    model.insert(k, (next_value, now, now));
                }
                Op::Get(k) => {
                    let expected = live(&model, k, now);
                    let got = cache.get(&k);
                    if capacity.is_none() {
                        prop_assert_eq!(got, expected, "get({}) at {:?}", k, now);
                    } else if got.is_some() {
                        prop_assert_eq!(got, expected, "get({}) at {:?}", k, now);
                    }
                    if got.is_some() {
                        model.get_mut(&k).unwrap().2 = now;
                    }
                }
                Op::Contains(k) => {
                    let expected = live(&model, k, now).is_some();
                    let got = cache.contains_key(&k);
                    if capacity.is_none() {
                        prop_assert_eq!(got, expected, "contains_key({}) at {:?}", k, now);
                    } else if got {
                        prop_assert!(expected, "contains_key({}) at {:?}", k, now);
                    }
                }
                Op::Advance(d) => {
                    clock.advance(d);
                    now += d;
                }
                Op::Purge => {
                    cache.purge_expired();
                    let resident = (0..6).filter(|&k| live(&model, k, now).is_some()).count();
                    if capacity.is_none() {
                        prop_assert_eq!(cache.len(), resident as u64, "len after purge");
                    } else {
                        prop_assert!(cache.len() <= resident as u64, "len after purge");
                    }
                }
            }
        }
    }
}

#[test]
fn writes_reclaim_expired_entries_that_are_never_read() {
    const OLD: u32 = 100;
    const NEW: u32 = 300;
    for policy in POLICIES {
        let clock = MockClock::new();
        let log = Log::default();
        let sink = log.clone();
        let cache: Cache<u32, u32> = Cache::builder()
            .policy(policy)
            .shards(4)
            .clock(clock.clone())
            .time_to_live(TTL)
            .eviction_listener(move |k, v, cause| sink.lock().unwrap().push((k, v, cause)))
            .build();
        for k in 0..OLD {
            cache.insert(k, k);
        }
        clock.advance(TTL);
        assert_eq!(
            cache.len(),
            u64::from(OLD),
            "{policy:?}: nothing reclaimed yet"
        );
        // Only writes of other keys from here on; the old keys are never read.
        for k in 1000..1000 + NEW {
            cache.insert(k, k);
        }
        assert_eq!(
            cache.len(),
            u64::from(NEW),
            "{policy:?}: only the live entries remain"
        );
        let stats = cache.stats();
        assert_eq!(stats.expirations, u64::from(OLD), "{policy:?}");
        assert_eq!(
            (stats.hits, stats.misses),
            (0, 0),
            "{policy:?}: nothing was read"
        );
        assert_eq!(keys_with(&log, RemovalCause::Expired), (0..OLD).collect());
        assert_eq!(
            log.lock().unwrap().len(),
            OLD as usize,
            "{policy:?}: only expirations"
        );
        assert!(
            (1000..1000 + NEW).all(|k| cache.contains_key(&k)),
            "{policy:?}"
        );
    }
}

#[test]
fn purge_expired_removes_exactly_the_expired_entries() {
    let half = TTL / 2;
    for policy in POLICIES {
        let clock = MockClock::new();
        let (cache, log) = cache_with(&clock, policy, Some(TTL), None);
        cache.purge_expired(); // on an empty cache
        for k in 0..50 {
            cache.insert(k, k);
        }
        clock.advance(half);
        for k in 50..100 {
            cache.insert(k, k);
        }
        // Inserting the second half may have swept a few; none had expired yet.
        assert_eq!(cache.len(), 100, "{policy:?}");
        cache.purge_expired();
        assert_eq!(cache.len(), 100, "{policy:?}: nothing expired yet");
        clock.advance(half); // the first 50 reach their deadline
        cache.purge_expired();
        assert_eq!(cache.len(), 50, "{policy:?}");
        assert_eq!(cache.stats().expirations, 50, "{policy:?}");
        assert_eq!(keys_with(&log, RemovalCause::Expired), (0..50).collect());
        assert!((50..100).all(|k| cache.contains_key(&k)), "{policy:?}");
        clock.advance(half);
        cache.purge_expired();
        assert!(cache.is_empty(), "{policy:?}");
        assert_eq!(cache.stats().expirations, 100, "{policy:?}");
        assert_eq!(log.lock().unwrap().len(), 100, "{policy:?}");
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (0, 0), "{policy:?}");
    }
}

/// Tests that start sweeper threads run one at a time, so that counting those threads is exact.
static SWEEPERS: Mutex<()> = Mutex::new(());

fn sweeper_lock() -> MutexGuard<'static, ()> {
    SWEEPERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Polls `done` every millisecond for up to five seconds; returns whether it became true.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        thread::sleep(Duration::from_millis(1));
    }
    done()
}

#[test]
fn sweep_interval_reclaims_without_reads_or_writes() {
    let _serial = sweeper_lock();
    let clock = MockClock::new();
    let log = Log::default();
    let sink = log.clone();
    let cache: Cache<u32, u32> = Cache::builder()
        .clock(clock.clone())
        .time_to_live(TTL)
        .sweep_interval(Duration::from_millis(5))
        .eviction_listener(move |k, v, cause| sink.lock().unwrap().push((k, v, cause)))
        .build();
    for k in 0..100 {
        cache.insert(k, k);
    }
    // Several sweeps run meanwhile; nothing has expired, so nothing goes.
    thread::sleep(Duration::from_millis(30));
    assert_eq!(cache.len(), 100);
    clock.advance(TTL);
    assert!(
        eventually(|| cache.is_empty()),
        "the sweeper left {} expired entries",
        cache.len()
    );
    let stats = cache.stats();
    assert_eq!(stats.expirations, 100);
    assert_eq!((stats.hits, stats.misses, stats.inserts), (0, 0, 100));
    assert_eq!(keys_with(&log, RemovalCause::Expired), (0..100).collect());
}

/// Threads of this process named `memokit-sweep` (Linux: `/proc/self/task/*/comm`).
#[cfg(target_os = "linux")]
fn sweeper_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "memokit-sweep")
        .count()
}

#[cfg(target_os = "linux")]
#[test]
fn dropping_every_handle_stops_the_sweeper_thread() {
    let _serial = sweeper_lock();
    let before = sweeper_threads();
    // The listener owns this Arc: it is released only when the cache itself is freed.
    let witness = Arc::new(());
    let held = witness.clone();
    let cache: Cache<u32, u32> = Cache::builder()
        .time_to_live(TTL)
        .clock(MockClock::new())
        .sweep_interval(Duration::from_millis(5))
        .eviction_listener(move |_, _, _| {
            let _ = &held;
        })
        .build();
    // The new thread names itself once it runs.
    assert!(
        eventually(|| sweeper_threads() == before + 1),
        "one sweeper per cache"
    );
    let clone = cache.clone();
    drop(cache);
    thread::sleep(Duration::from_millis(30));
    assert_eq!(
        sweeper_threads(),
        before + 1,
        "a clone keeps the sweeper running"
    );
    assert_eq!(Arc::strong_count(&witness), 2);
    drop(clone);
    assert!(
        eventually(|| sweeper_threads() == before),
        "the sweeper thread outlived the cache"
    );
    assert!(
        eventually(|| Arc::strong_count(&witness) == 1),
        "the sweeper kept the cache alive"
    );

    // Without a TTL or TTI there is nothing to sweep, and no thread is started.
    let plain: Cache<u32, u32> = Cache::builder()
        .sweep_interval(Duration::from_millis(5))
        .build();
    plain.insert(1, 1);
    thread::sleep(Duration::from_millis(20)); // time for a wrongly started thread to show
    assert_eq!(sweeper_threads(), before);
}

#[test]
fn a_full_cache_reclaims_expired_entries_before_evicting_live_ones() {
    // One shard of two slots, both within the few slots a write sweeps. (In a larger shard,
    // only the expired entries that the write's sweep reaches are spared this way.)
    let s = Duration::from_secs;
    for policy in POLICIES {
        // TTL: `old` expires while `young` is live, though `old` was read more recently.
        let clock = MockClock::new();
        let cache: Cache<&str, u32> = Cache::builder()
            .policy(policy)
            .max_capacity(2)
            .shards(1)
            .time_to_live(TTL)
            .clock(clock.clone())
            .build();
        cache.insert("old", 1);
        clock.advance(s(5));
        cache.insert("young", 2);
        clock.advance(s(1));
        assert_eq!(cache.get("old"), Some(1));
        clock.advance(s(4)); // "old" expires
        cache.insert("new", 3);
        assert_eq!(
            cache.get("young"),
            Some(2),
            "{policy:?}: a live entry was evicted"
        );
        assert_eq!(cache.get("new"), Some(3), "{policy:?}");
        let stats = cache.stats();
        assert_eq!((stats.evictions, stats.expirations), (0, 1), "{policy:?}");

        // TTI: whichever of two entries is read stays live; the other expires.
        for read in ["first", "second"] {
            let clock = MockClock::new();
            let cache: Cache<&str, u32> = Cache::builder()
                .policy(policy)
                .max_capacity(2)
                .shards(1)
                .time_to_idle(TTL)
                .clock(clock.clone())
                .build();
            cache.insert("first", 1);
            cache.insert("second", 2);
            clock.advance(s(5));
            assert!(cache.get(read).is_some());
            clock.advance(s(5));
            cache.insert("new", 3);
            assert!(
                cache.get(read).is_some(),
                "{policy:?}: live {read:?} was evicted"
            );
            let stats = cache.stats();
            assert_eq!((stats.evictions, stats.expirations), (0, 1), "{policy:?}");
        }
    }
}

#[test]
fn a_value_written_over_an_expired_entry_starts_afresh_in_the_policy() {
    // Under LFU, a key read often and then left to expire must not hand its old frequency to
    // the value written after it: the new value is as cold as any new key. The shard is large
    // enough that the per-write sweep has not reached the expired slot when it is overwritten.
    let clock = MockClock::new();
    let cache: Cache<u32, u32> = Cache::builder()
        .max_capacity(40)
        .shards(1)
        .policy(Policy::Lfu)
        .time_to_idle(Duration::from_secs(10))
        .clock(clock.clone())
        .build();
    cache.insert(0, 0);
    for _ in 0..5 {
        assert_eq!(cache.get(&0), Some(0));
    }
    clock.advance(Duration::from_secs(5));
    for key in 1..40 {
        cache.insert(key, key);
        cache.get(&key); // frequency 2
    }
    clock.advance(Duration::from_secs(6)); // key 0 idle for 11 s: expired; the others for 6 s
    assert!(!cache.contains_key(&0));
    cache.insert(0, 100); // frequency 1, not 7
    cache.insert(40, 40); // full: the least frequent goes; 40 itself is new and never the victim
    assert!(
        !cache.contains_key(&0),
        "the rewritten key kept the expired entry's frequency"
    );
    assert_eq!((1..=40).filter(|key| cache.contains_key(key)).count(), 40);
}
