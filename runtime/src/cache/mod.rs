//! [`Cache`]: the public concurrent cache. It hashes a key once, routes it to its shard, and
//! hands removed entries to the eviction listener after the shard's lock is released.

use std::fmt;
use std::hash::Hash;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use equivalent::Equivalent;

pub(crate) mod batch;
pub(crate) mod builder;
pub(crate) mod expiry;
pub(crate) mod flight;
pub(crate) mod key;
pub(crate) mod load;
pub(crate) mod policy;
pub(crate) mod removal;
pub(crate) mod shard;
pub(crate) mod stats;
pub(crate) mod stopwatch;
mod sync;
pub(crate) mod trace;

use crate::cache::builder::CacheBuilder;
use crate::cache::expiry::{duration_nanos, Clock, ExpiryPolicy};
use crate::cache::flight::Flights;
use crate::cache::policy::{Policy, WindowTuner};
use crate::cache::removal::RemovalCause;
use crate::cache::shard::{Lookup, Removed, Shard, ShardConfig};
use crate::cache::stats::LookupCounters;
use crate::cache::stats::Stats;

pub(crate) type Listener<K, V> = Box<dyn Fn(K, V, RemovalCause) + Send + Sync>;

pub(crate) struct Inner<K, V> {
    pub(crate) shards: Box<[Shard<K, V>]>,
    /// The computations in progress of each shard's keys: beside the shards, not in them, so
    /// that a shard only stores, and a write can supersede a computation of its key.
    pub(crate) flights: Box<[Flights<K, V>]>,
    pub(crate) config: ShardConfig<K, V>,
    /// The same hasher as every shard's, which recompute hashes of stored keys.
    pub(crate) hasher: ahash::RandomState,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) listener: Option<Listener<K, V>>,
    pub(crate) capacity: Option<u64>,
    pub(crate) policy: Policy,
    pub(crate) lookups: LookupCounters,
    /// W-TinyLFU's tuner, shown every lookup (it samples a few); inert under other policies.
    pub(crate) tuner: Arc<WindowTuner>,
    /// [`Cache::shared_hit_counter`], worked out once by the builder (see [`shared_hit_counter`]).
    pub(crate) shared_hit_counter: Option<u8>,
}

/// `Some` when a cache with this policy and expiry reads no clock and records a hit under the
/// shared lock, with the policy's use-counter maximum (see [`Policy::shared_hit_counter`]);
/// `None` for the other caches, whose lookups take the general path.
pub(crate) fn shared_hit_counter(policy: Policy, expiry: &ExpiryPolicy) -> Option<u8> {
    policy.shared_hit_counter().filter(|_| !expiry.is_enabled())
}

/// A concurrent, sharded, bounded or unbounded cache.
///
/// Cloning a `Cache` is cheap and gives another handle on the same entries. It is `Send + Sync`:
/// share it through a `static`, an `Arc`, or clones.
///
/// Keys are hashed with ahash and spread over a number of shards, each behind its
/// own `parking_lot` read-write lock. Lookups under [`Policy::WTinyLfu`] (the default),
/// [`Policy::S3Fifo`], [`Policy::S3FifoTinyLfu`] and [`Policy::Fifo`] take the shared lock
/// only; [`Policy::Lru`] and [`Policy::Lfu`] take the exclusive one to reorder.
///
/// ```
/// use std::time::Duration;
/// use memokit::{Cache, Policy};
///
/// let cache: Cache<String, u64> = Cache::builder()
///     .max_capacity(10_000)
///     .time_to_live(Duration::from_secs(300))
///     .policy(Policy::Lru)
///     .build();
/// cache.insert("alice".to_string(), 1);
/// assert_eq!(cache.get("alice"), Some(1)); // look up a String key with a &str
/// let total = cache.get_or_insert_with("bob".to_string(), || 2);
/// assert_eq!(total, 2);
/// println!("{}", cache.stats()); // hits=1 misses=1 hit_ratio=50.0% size=2/10000 ...
/// ```
pub struct Cache<K, V> {
    pub(crate) inner: Arc<Inner<K, V>>,
}

impl<K, V> Clone for Cache<K, V> {
    fn clone(&self) -> Self {
        Cache {
            inner: self.inner.clone(),
        }
    }
}

impl<K, V> fmt::Debug for Cache<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("policy", &self.inner.policy)
            .field("capacity", &self.inner.capacity)
            .field("shards", &self.inner.shards.len())
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq, V: Clone> Cache<K, V> {
    /// A cache holding at most `max_capacity` entries, with the default policy.
    ///
    /// ```
    /// let cache: memokit::Cache<u32, u32> = memokit::Cache::new(2);
    /// cache.insert(1, 1);
    /// assert_eq!(cache.get(&1), Some(1));
    /// ```
    pub fn new(max_capacity: u64) -> Self {
        Self::builder().max_capacity(max_capacity).build()
    }

    /// A builder for every other setting.
    ///
    /// ```
    /// let cache: memokit::Cache<u32, u32> = memokit::Cache::builder().build(); // unbounded
    /// assert!(cache.is_empty());
    /// ```
    pub fn builder() -> CacheBuilder<K, V> {
        CacheBuilder::default()
    }

    #[inline]
    pub(crate) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.inner.hasher.hash_one(key)
    }

    /// The hash the cache's policy sees for `key`; for the policy model tests, which feed the
    /// same hashes to the same frequency sketch. Not part of the stable API.
    ///
    /// ```
    /// let cache: memokit::Cache<u32, u32> = memokit::Cache::new(10);
    /// assert_eq!(cache.__hash(&1), cache.__hash(&1));
    /// ```
    #[doc(hidden)]
    pub fn __hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hash(key)
    }

    /// The shard of a hash: its low 32 bits scaled to the shard count (`n` shards split them
    /// into `n` ranges, so the shard is told by their top bits), since a bounded cache's count
    /// is chosen to fit its tables, not rounded to a power of two (see
    /// `builder::densest_split`). Not the top seven bits, the table's control bytes; the table
    /// probes with the lowest bits, which only a table of more than 2^32 / `n` buckets would
    /// share with the shard's.
    #[inline]
    pub(crate) fn shard_of(&self, hash: u64) -> usize {
        policy::shard_index(hash, self.inner.shards.len() as u64)
    }

    /// Whether a failed load may be answered with an expired value (stale-if-error), which it
    /// does not store.
    pub(crate) fn serves_stale_on_error(&self) -> bool {
        self.inner.config.expiry.stale_if_error.is_some()
    }

    /// The clock reading, only when entries expire or are refreshed: otherwise no clock is read.
    #[inline]
    pub(crate) fn now(&self) -> Option<u64> {
        self.inner
            .config
            .expiry
            .is_enabled()
            .then(|| duration_nanos(self.inner.clock.now()))
    }

    fn notify(&self, removed: Removed<K, V>) {
        if let Some(listener) = &self.inner.listener {
            for (key, value, cause) in removed {
                listener(key, value, cause);
            }
        }
    }

    /// The value of `key`, cloned, if present and not expired. Counts a hit or a miss.
    ///
    /// `key` is any form of the key that hashes as `K` and is [`Equivalent`](crate::Equivalent)
    /// to it: `K` itself, what `K` borrows as (`&str` for a `String`), or a type of your own,
    /// so that a lookup builds no owned key.
    ///
    /// ```
    /// let cache: memokit::Cache<String, u32> = memokit::Cache::new(10);
    /// cache.insert("a".into(), 1);
    /// assert_eq!(cache.get("a"), Some(1));
    /// assert_eq!(cache.get(&"a".to_string()), Some(1));
    /// assert_eq!(cache.get("b"), None);
    /// ```
    ///
    /// A tuple key looked up by borrowed parts: a type of your own that hashes its fields in
    /// order, as a tuple does, and compares them.
    ///
    /// ```
    /// use std::hash::{Hash, Hasher};
    /// use memokit::{Cache, Equivalent};
    ///
    /// struct NameAndYear<'a>(&'a str, u32);
    ///
    /// impl Hash for NameAndYear<'_> {
    ///     fn hash<H: Hasher>(&self, state: &mut H) {
    ///         (self.0, self.1).hash(state); // as (String, u32) hashes
    ///     }
    /// }
    ///
    /// impl Equivalent<(String, u32)> for NameAndYear<'_> {
    ///     fn equivalent(&self, key: &(String, u32)) -> bool {
    ///         self.0 == key.0 && self.1 == key.1
    ///     }
    /// }
    ///
    /// let cache: Cache<(String, u32), u64> = Cache::new(10);
    /// cache.insert(("ann".to_string(), 2024), 7);
    /// assert_eq!(cache.get(&NameAndYear("ann", 2024)), Some(7));
    /// assert_eq!(cache.get(&NameAndYear("ann", 2025)), None);
    /// ```
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let hash = self.hash(key);
        let shard = self.shard_of(hash);
        match self.shared_hit_counter() {
            Some(max_uses) => self.get_unclocked(shard, hash, key, max_uses),
            None => self
                .get_hashed_general(shard, hash, key)
                .map(|(value, _)| value),
        }
    }

    /// For the hit path inlined in [`Cache::get`] and [`Cache::get_hashed`]: whether it applies
    /// and how a hit is recorded (see [`shared_hit_counter`]); two bytes read.
    #[inline]
    fn shared_hit_counter(&self) -> Option<u8> {
        self.inner.shared_hit_counter
    }

    /// Shows a lookup of `hash` to the policy's tuner.
    #[inline]
    fn observe(&self, hash: u64) {
        self.inner.tuner.observe(hash);
    }

    /// After a write, outside the shard's lock: lets the policy's tuner simulate the lookups it
    /// sampled.
    fn tune(&self) {
        self.inner.tuner.poll();
    }

    /// A counted lookup on the path [`Cache::shared_hit_counter`] allows.
    #[inline(always)]
    fn get_unclocked<Q>(&self, shard: usize, hash: u64, key: &Q, max_uses: u8) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let found = self.inner.shards[shard].lookup_unclocked(hash, key, max_uses);
        self.inner.lookups.record(found.is_some());
        self.observe(hash);
        found
    }

    /// A counted lookup of an already hashed key; reclaims an expired entry it finds. With the
    /// value, whether its entry is due for a refresh.
    ///
    /// The common case (no clock, a policy that records hits under the shared lock) is inlined
    /// here with nothing else: no expiry branch, no read of the shard's policy state (a cache
    /// line that writes dirty), and no code of the other cases holding registers. Every other
    /// case takes [`Cache::get_hashed_general`].
    #[inline(always)]
    fn get_hashed<Q>(&self, shard_idx: usize, hash: u64, key: &Q) -> Option<(V, bool)>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        match self.shared_hit_counter() {
            Some(max_uses) => self
                .get_unclocked(shard_idx, hash, key, max_uses)
                .map(|value| (value, false)),
            None => self.get_hashed_general(shard_idx, hash, key),
        }
    }

    /// [`Cache::get_hashed`] for every case: expiry, refresh, and policies whose hits take the
    /// exclusive lock.
    #[inline(never)]
    fn get_hashed_general<Q>(&self, shard_idx: usize, hash: u64, key: &Q) -> Option<(V, bool)>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let shard = &self.inner.shards[shard_idx];
        let now = self.now();
        let lookup = shard.lookup(&self.inner.config, hash, key, now);
        self.inner
            .lookups
            .record(matches!(lookup, Lookup::Hit(_) | Lookup::Stale(_)));
        self.observe(hash);
        match lookup {
            Lookup::Hit(value) => Some((value, false)),
            Lookup::Stale(value) => Some((value, true)),
            Lookup::Miss => None,
            Lookup::Expired => {
                let mut removed = Vec::new();
                shard.reclaim_expired(&self.inner.config, hash, key, now, &mut removed);
                self.notify(removed);
                None
            }
        }
    }

    /// Whether `key` has a live entry. Not counted in the stats and not a use for the policy.
    ///
    /// ```
    /// let cache: memokit::Cache<u32, u32> = memokit::Cache::new(10);
    /// cache.insert(1, 1);
    /// assert!(cache.contains_key(&1) && !cache.contains_key(&2));
    /// ```
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let hash = self.hash(key);
        self.inner.shards[self.shard_of(hash)]
            .peek(hash, key, self.now(), |_| ())
            .is_some()
    }

    /// The value of `key`, cloned, if present and not expired, without counting a lookup or
    /// marking the entry used.
    ///
    /// ```
    /// let cache: memokit::Cache<u32, u32> = memokit::Cache::new(10);
    /// cache.insert(1, 1);
    /// assert_eq!(cache.peek(&1), Some(1));
    /// assert_eq!(cache.stats().hits, 0);
    /// ```
    pub fn peek<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let hash = self.hash(key);
        self.inner.shards[self.shard_of(hash)].peek(hash, key, self.now(), V::clone)
    }

    /// Stores `value` under `key`, replacing any previous value and restarting its time-to-live.
    ///
    /// A value heavier than a shard's capacity (see [`CacheBuilder::weigher`]) is not stored, and
    /// any older value of the key is removed.
    ///
    /// ```
    /// let cache: memokit::Cache<u32, &str> = memokit::Cache::new(10);
    /// cache.insert(1, "one");
    /// cache.insert(1, "uno");
    /// assert_eq!(cache.get(&1), Some("uno"));
    /// ```
    pub fn insert(&self, key: K, value: V) {
        let hash = self.hash(&key);
        let shard = self.shard_of(hash);
        // A computation of this key in progress must not overwrite this newer value.
        self.inner.flights[shard].supersede(hash, &key);
        self.insert_hashed(shard, hash, key, value, None, None);
    }

    /// Stores a value unless `superseded` is set. The flag is read under the shard's lock, so a
    /// write that sets it before taking that lock is never overwritten by this value. With
    /// `lifetime` (nanoseconds), the entry lives no longer than that (a value a tier had with
    /// less than its ttl left; without a clock, no ttl, it changes nothing).
    pub(crate) fn insert_hashed(
        &self,
        shard: usize,
        hash: u64,
        key: K,
        value: V,
        superseded: Option<&AtomicBool>,
        lifetime: Option<u64>,
    ) {
        let mut removed = Vec::new();
        let now = self.now();
        let until = lifetime
            .zip(now)
            .map(|(left, now)| now.saturating_add(left));
        self.inner.shards[shard].insert(
            &self.inner.config,
            hash,
            key,
            value,
            now,
            until,
            superseded,
            &mut removed,
        );
        self.notify(removed);
        self.tune();
    }

    /// Removes `key`; returns whether a live entry was there.
    ///
    /// ```
    /// let cache: memokit::Cache<u32, u32> = memokit::Cache::new(10);
    /// cache.insert(1, 1);
    /// assert!(cache.invalidate(&1));
    /// assert!(!cache.invalidate(&1));
    /// ```
    pub fn invalidate<Q>(&self, key: &Q) -> bool
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let hash = self.hash(key);
        let mut removed = Vec::new();
        let shard_idx = self.shard_of(hash);
        let shard = &self.inner.shards[shard_idx];
        // A computation that started before this call must not store its (older) result.
        self.inner.flights[shard_idx].supersede(hash, key);
        let was_live = shard.invalidate(
            &self.inner.config,
            hash,
            key,
            self.now(),
            None,
            &mut removed,
        );
        self.notify(removed);
        was_live
    }

    /// Removes every entry for which `predicate` returns true; returns how many. Shards are
    /// visited one at a time, so entries inserted meanwhile may or may not be visited. It
    /// cannot know which computations in flight would produce a matching value, so, as
    /// [`clear`](Self::clear) does, it detaches every one of them: each still returns its
    /// value to its callers, but stores nothing, so no value computed before the invalidation
    /// comes back after it.
    ///
    /// ```
    /// let cache: memokit::Cache<u32, u32> = memokit::Cache::new(10);
    /// for i in 0..6 { cache.insert(i, i * 10); }
    /// assert_eq!(cache.invalidate_if(|k, _v| k % 2 == 0), 3);
    /// assert_eq!(cache.len(), 3);
    /// ```
    pub fn invalidate_if(&self, mut predicate: impl FnMut(&K, &V) -> bool) -> u64 {
        let now = self.now();
        let mut count = 0;
        for (shard, flights) in self.inner.shards.iter().zip(self.inner.flights.iter()) {
            let mut removed = Vec::new();
            flights.supersede_all();
            count += shard.retain(&self.inner.config, &mut predicate, now, &mut removed);
            self.notify(removed);
        }
        count
    }

    /// Stores each `(key, value)` as [`insert`](Self::insert) does, in order (a later value of
    /// a key wins), taking each shard's lock once for all its keys. The removal listener is
    /// called after each shard's writes, outside its lock: in order within a shard, shard
    /// after shard.
    ///
    /// ```
    /// let cache: memokit::Cache<u32, &str> = memokit::Cache::new(10);
    /// cache.insert_many([(1, "one"), (2, "two")]);
    /// assert_eq!((cache.get(&1), cache.get(&2)), (Some("one"), Some("two")));
    /// ```
    pub fn insert_many(&self, entries: impl IntoIterator<Item = (K, V)>) {
        let mut entries: Vec<(usize, u64, K, V)> = entries
            .into_iter()
            .map(|(key, value)| {
                let hash = self.hash(&key);
                (self.shard_of(hash), hash, key, value)
            })
            .collect();
        // Stable: the writes of one key (all in one shard) keep their order.
        entries.sort_by_key(|&(shard, ..)| shard);
        let now = self.now();
        let mut entries = entries.into_iter().peekable();
        while let Some(&(shard, ..)) = entries.peek() {
            let mut batch = Vec::new();
            while let Some(entry) = entries.next_if(|&(next, ..)| next == shard) {
                batch.push(entry);
            }
            // As `insert`: computations in progress must not overwrite these newer values.
            for (_, hash, key, _) in &batch {
                self.inner.flights[shard].supersede(*hash, key);
            }
            let shard = &self.inner.shards[shard];
            let mut removed = Vec::new();
            shard.insert_many(
                &self.inner.config,
                batch
                    .into_iter()
                    .map(|(_, hash, key, value)| (hash, key, value)),
                now,
                &mut removed,
            );
            self.notify(removed);
        }
        self.tune();
    }

    /// Removes each of `keys` as [`invalidate`](Self::invalidate) does; returns how many had a
    /// live entry.
    ///
    /// ```
    /// let cache: memokit::Cache<String, u32> = memokit::Cache::new(10);
    /// cache.insert_many([("a".to_string(), 1), ("b".to_string(), 2), ("c".to_string(), 3)]);
    /// assert_eq!(cache.invalidate_many(["a", "b", "z"]), 2);
    /// assert_eq!(cache.len(), 1);
    /// ```
    pub fn invalidate_many<'a, Q>(&self, keys: impl IntoIterator<Item = &'a Q>) -> u64
    where
        Q: Hash + Equivalent<K> + ?Sized + 'a,
    {
        keys.into_iter()
            .map(|key| u64::from(self.invalidate(key)))
            .sum()
    }

    /// Removes every entry (counted as invalidations).
    ///
    /// ```
    /// let cache: memokit::Cache<u32, u32> = memokit::Cache::new(10);
    /// cache.insert(1, 1);
    /// cache.clear();
    /// assert!(cache.is_empty());
    /// ```
    pub fn clear(&self) {
        let now = self.now();
        for (shard, flights) in self.inner.shards.iter().zip(self.inner.flights.iter()) {
            let mut removed = Vec::new();
            flights.supersede_all();
            shard.clear(&self.inner.config, now, &mut removed);
            self.notify(removed);
        }
    }

    /// Removes every expired entry now (with [`CacheBuilder::stale_if_error`], those that
    /// expired longer ago than its window). Writes already reclaim a few expired entries each
    /// (and [`CacheBuilder::sweep_interval`] does it in the background); this is for callers
    /// that want it done at a moment of their choosing.
    ///
    /// ```
    /// use std::time::Duration;
    /// use memokit::{Cache, MockClock};
    ///
    /// let clock = MockClock::new();
    /// let cache: Cache<u32, u32> =
    ///     Cache::builder().time_to_live(Duration::from_secs(1)).clock(clock.clone()).build();
    /// cache.insert(1, 1);
    /// clock.advance(Duration::from_secs(2));
    /// assert_eq!(cache.len(), 1); // expired, but still holding memory
    /// cache.purge_expired();
    /// assert_eq!(cache.len(), 0);
    /// ```
    pub fn purge_expired(&self) {
        let now = self.now();
        if now.is_none() {
            return;
        }
        for shard in self.inner.shards.iter() {
            let mut removed = Vec::new();
            shard.purge_expired(&self.inner.config, now, &mut removed);
            self.notify(removed);
        }
    }

    /// Entries resident, including expired ones not yet reclaimed (or kept for
    /// [stale-if-error](CacheBuilder::stale_if_error)).
    ///
    /// ```
    /// let cache: memokit::Cache<u32, u32> = memokit::Cache::new(10);
    /// cache.insert(1, 1);
    /// assert_eq!(cache.len(), 1);
    /// ```
    pub fn len(&self) -> u64 {
        self.inner.shards.iter().map(Shard::len).sum()
    }

    /// Whether no entry is resident.
    ///
    /// ```
    /// assert!(memokit::Cache::<u32, u32>::new(10).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total weight resident (equals [`len`](Self::len) without a weigher).
    ///
    /// ```
    /// let cache: memokit::Cache<u32, String> =
    ///     memokit::Cache::builder().weigher(|_k, v: &String| v.len() as u32).build();
    /// cache.insert(1, "four".into());
    /// assert_eq!(cache.weighted_size(), 4);
    /// ```
    pub fn weighted_size(&self) -> u64 {
        self.inner.shards.iter().map(Shard::weighted_size).sum()
    }

    /// The maximum total weight, or `None` when unbounded.
    ///
    /// ```
    /// assert_eq!(memokit::Cache::<u32, u32>::new(10).capacity(), Some(10));
    /// ```
    pub fn capacity(&self) -> Option<u64> {
        self.inner.capacity
    }

    /// The eviction policy.
    ///
    /// ```
    /// assert_eq!(memokit::Cache::<u32, u32>::new(10).policy(), memokit::Policy::WTinyLfu);
    /// ```
    pub fn policy(&self) -> Policy {
        self.inner.policy
    }

    /// Number of shards: a power of two when set with [`CacheBuilder::shards`], else the
    /// default's choice (see there).
    ///
    /// ```
    /// let cache: memokit::Cache<u32, u32> = memokit::Cache::builder().shards(4).build();
    /// assert_eq!(cache.shard_count(), 4);
    /// ```
    pub fn shard_count(&self) -> usize {
        self.inner.shards.len()
    }

    /// A snapshot of the counters, with the current size and capacity.
    ///
    /// ```
    /// let cache: memokit::Cache<u32, u32> = memokit::Cache::new(10);
    /// cache.get(&1);
    /// assert_eq!(cache.stats().misses, 1);
    /// ```
    pub fn stats(&self) -> Stats {
        let mut stats = Stats::default();
        for shard in self.inner.shards.iter() {
            shard.counters.add_to(&mut stats);
            stats.len += shard.len();
            stats.weighted_size += shard.weighted_size();
        }
        self.inner.lookups.add_to(&mut stats);
        stats.capacity = self.inner.capacity;
        stats
    }

    /// Sets every counter back to zero (entries stay).
    ///
    /// ```
    /// let cache: memokit::Cache<u32, u32> = memokit::Cache::new(10);
    /// cache.get(&1);
    /// cache.reset_stats();
    /// assert_eq!(cache.stats().misses, 0);
    /// ```
    pub fn reset_stats(&self) {
        for shard in self.inner.shards.iter() {
            shard.reset_counters();
        }
        self.inner.lookups.reset();
    }
}
