//! [`CacheBuilder`]: every setting of a [`Cache`], with moka-style names.

use std::hash::Hash;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::cache::expiry::{duration_nanos, mix64, Clock, ExpiryPolicy, SystemClock};
use crate::cache::flight::Flights;
use crate::cache::policy::Policy;
use crate::cache::policy::WindowTuner;
use crate::cache::removal::RemovalCause;
use crate::cache::shard::{table_buckets, Shard, ShardConfig, Weigher, MAX_TABLE_LOAD};
use crate::cache::stats::LookupCounters;
use crate::cache::Cache;
use crate::cache::{Inner, Listener};

/// Shards of a bounded cache hold at least this much weight, so small caches are not cut
/// into slivers that evict long before the cache is full.
const MIN_SHARD_CAPACITY: u64 = 64;
/// Shards per core by default: enough that two threads rarely meet on one lock, nor wait for
/// one shard's writer. Measured against four on two cores (Zipf 1.0 over 100,000 entries with
/// one insert in ten, medians of interleaved rounds): 2 threads 15.4 → 18.7 Mops/s
/// (quick_cache 18.9), 1 thread 18.5 → 17.6 (rounds of both from 13 to 20), 1.1 bytes more
/// per entry at 1M (4.9 at 100,000, which takes 31 shards instead of 8); the hit ratio is kept
/// by sampling several small shards (see `tuner::SHARDS_PER_SAMPLED`).
const SHARDS_PER_CORE: usize = 8;
/// The most shards [`CacheBuilder::shards`] gives: more only costs memory (each shard is a lock,
/// a table and a policy) and never helps with the cores a machine has.
pub const MAX_SHARDS: usize = 1 << 16;
/// The largest `ttl_jitter`: every lifetime stays above zero.
const MAX_JITTER: f64 = 0.99;

type StartSweeper<K, V> = Box<dyn FnOnce(&Cache<K, V>)>;

/// Configures and builds a [`Cache`]; get one from [`Cache::builder`].
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use memokit::{Cache, Policy};
///
/// let cache: Cache<u64, Arc<str>> = Cache::builder()
///     .max_capacity(1 << 20)                          // total bytes, with the weigher below
///     .weigher(|_key, value: &Arc<str>| value.len() as u32)
///     .time_to_live(Duration::from_secs(300))
///     .time_to_idle(Duration::from_secs(60))
///     .policy(Policy::Lfu)
///     .eviction_listener(|key, _value, cause| println!("{key} left: {cause:?}"))
///     .build();
/// cache.insert(1, "one".into());
/// assert_eq!(cache.weighted_size(), 3);
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct CacheBuilder<K, V> {
    max_capacity: Option<u64>,
    ttl: Option<Duration>,
    tti: Option<Duration>,
    refresh: Option<Duration>,
    stale_if_error: Option<Duration>,
    jitter: f64,
    policy: Policy,
    weigher: Option<Weigher<K, V>>,
    listener: Option<Listener<K, V>>,
    clock: Option<Arc<dyn Clock>>,
    shards: Option<usize>,
    /// Fixed hashing keys, drawn from this seed (see `seed`); absent: random ones.
    seed: Option<u64>,
    /// Starts the background sweeper on the built cache (see `sweep_interval`).
    start_sweeper: Option<StartSweeper<K, V>>,
}

impl<K, V> Default for CacheBuilder<K, V> {
    fn default() -> Self {
        CacheBuilder {
            max_capacity: None,
            ttl: None,
            tti: None,
            refresh: None,
            stale_if_error: None,
            jitter: 0.0,
            policy: Policy::default(),
            weigher: None,
            listener: None,
            clock: None,
            shards: None,
            seed: None,
            start_sweeper: None,
        }
    }
}

impl<K: Hash + Eq, V: Clone> CacheBuilder<K, V> {
    /// The most entries the cache holds (or the most total weight, with a
    /// [`weigher`](Self::weigher)). Without it the cache is unbounded.
    ///
    /// The capacity is split exactly between shards, so [`Cache::len`] never exceeds it; a
    /// shard evicts when *its* share is full, so an unevenly spread key set may see evictions
    /// slightly before the whole cache is full. Small capacities get fewer shards (each holds at
    /// least 64) to keep that effect small.
    ///
    /// ```
    /// let cache: memokit::Cache<u32, u32> = memokit::Cache::builder().max_capacity(2).build();
    /// for i in 0..10 { cache.insert(i, i); }
    /// assert_eq!(cache.len(), 2);
    /// ```
    pub fn max_capacity(mut self, max_capacity: u64) -> Self {
        self.max_capacity = Some(max_capacity);
        self
    }

    /// Entries expire this long after they were written.
    ///
    /// ```
    /// use std::time::Duration;
    /// let cache: memokit::Cache<u32, u32> =
    ///     memokit::Cache::builder().time_to_live(Duration::from_secs(300)).build();
    /// # cache.insert(1, 1);
    /// ```
    pub fn time_to_live(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Entries expire this long after they were last read or written.
    ///
    /// ```
    /// use std::time::Duration;
    /// let cache: memokit::Cache<u32, u32> =
    ///     memokit::Cache::builder().time_to_idle(Duration::from_secs(60)).build();
    /// # cache.insert(1, 1);
    /// ```
    pub fn time_to_idle(mut self, tti: Duration) -> Self {
        self.tti = Some(tti);
        self
    }

    /// Refresh-ahead (stale-while-revalidate): once an entry is older than `refresh`, the next
    /// call of the load path ([`Cache::get_or_insert_with`] and its variants, `#[cached]`
    /// functions) that hits it starts one recomputation, while every other caller keeps getting
    /// the old value at once. [`Cache::get`] returns the old value and starts nothing.
    ///
    /// - **Who recomputes**: the caller that finds the entry due runs its own `init` (its
    ///   arguments and borrows are only there), and gets the new value; callers meanwhile get
    ///   the old one without waiting. So a refresh costs that one caller the latency of a
    ///   miss, no other caller waits, and no thread is started. `async` `#[cached]` functions
    ///   (not methods) whose arguments are all owned refresh on a tokio task instead (feature `tokio`, inside
    ///   a runtime), and every caller gets the old value at once.
    /// - **One at a time**: at most one refresh per key is in flight. If the key is written
    ///   (`insert`, `invalidate`, `clear`) meanwhile, the refresh's result is not stored.
    /// - **Failures**: an `Err` or a panic (or a dropped future) keeps the old value until it
    ///   expires; the caller that ran the refresh gets the old value on `Err` (a panic goes to
    ///   it). The next refresh of that entry waits a quarter of `ttl − refresh` (of `refresh`
    ///   without a ttl), so a failing source sees about four attempts before the value expires.
    /// - **Stats**: `refreshes` and `refresh_failures`; refreshes are not counted in `loads`.
    ///
    /// With a [time-to-live](Self::time_to_live) shorter than `refresh`, entries expire before
    /// they are due and are never refreshed. Without a time-to-live (as Caffeine's
    /// `refreshAfterWrite` alone), entries never expire by age and are recomputed every
    /// `refresh`; a failed refresh keeps the old value and waits a quarter of `refresh`:
    ///
    /// ```
    /// use std::time::Duration;
    /// use memokit::{Cache, MockClock};
    ///
    /// let clock = MockClock::new();
    /// let cache: Cache<&str, u32> = Cache::builder()
    ///     .refresh_after(Duration::from_secs(60))
    ///     .clock(clock.clone())
    ///     .build();
    /// cache.insert("rate", 1);
    /// clock.advance(Duration::from_secs(24 * 3600));
    /// assert_eq!(cache.get(&"rate"), Some(1)); // still there a day later
    /// assert_eq!(cache.get_or_insert_with("rate", || 2), 2); // and refreshed
    /// ```
    ///
    /// ```
    /// use std::time::Duration;
    /// use memokit::{Cache, MockClock};
    ///
    /// let clock = MockClock::new();
    /// let cache: Cache<u32, &str> = Cache::builder()
    ///     .time_to_live(Duration::from_secs(600))
    ///     .refresh_after(Duration::from_secs(480))
    ///     .clock(clock.clone())
    ///     .build();
    /// cache.insert(1, "old");
    /// clock.advance(Duration::from_secs(500));
    /// assert_eq!(cache.get(&1), Some("old")); // due, but `get` does not refresh
    /// assert_eq!(cache.get_or_insert_with(1, || "new"), "new"); // this caller refreshes
    /// assert_eq!(cache.get(&1), Some("new"));
    /// assert_eq!(cache.stats().refreshes, 1);
    /// ```
    pub fn refresh_after(mut self, refresh: Duration) -> Self {
        self.refresh = Some(refresh);
        self
    }

    /// Stale-if-error (as RFC 5861's `stale-if-error`): when the recomputation of an expired
    /// entry fails, the load returns the expired value instead of the error, as long as it
    /// expired no longer than `window` ago. For the loads that can fail:
    /// [`Cache::try_get_or_insert_with`] and its async form, and `#[cached]` functions returning
    /// `Result` (`#[cached(ttl = "5m", stale_if_error = "1h")]`).
    ///
    /// - **What is kept**: an entry that expired (by [time-to-live](Self::time_to_live) or
    ///   [time-to-idle](Self::time_to_idle)) stays in the cache for `window` more, never
    ///   returned as a hit ([`Cache::get`] misses it), and is reclaimed after. It still counts
    ///   in [`Cache::len`] and towards the capacity, and is evicted like any entry when room
    ///   is needed: the cache stays within [`max_capacity`](Self::max_capacity).
    /// - **Who gets it**: the caller whose computation failed, and every caller waiting on that
    ///   computation (coalesced), whatever the error type. Nothing is stored: the next call
    ///   computes again. A value written meanwhile (an `insert`) is returned instead; after an
    ///   `invalidate` or `clear` of the key there is nothing to return, and the error is. A
    ///   panic still goes to its caller.
    /// - **Stats**: the failed computation counts in `loads` and `load_failures`, and in
    ///   `stale_served` when the old value answered it.
    /// - **With [refresh](Self::refresh_after)**: a failed refresh already keeps the old value
    ///   until it expires; then a failed load serves it for `window` more.
    ///
    /// ```
    /// use std::time::Duration;
    /// use memokit::{Cache, MockClock};
    ///
    /// let clock = MockClock::new();
    /// let cache: Cache<&str, u32> = Cache::builder()
    ///     .time_to_live(Duration::from_secs(300))
    ///     .stale_if_error(Duration::from_secs(3600))
    ///     .clock(clock.clone())
    ///     .build();
    /// cache.insert("rate", 1);
    /// clock.advance(Duration::from_secs(600)); // expired 5 minutes ago
    /// assert_eq!(cache.get(&"rate"), None);     // never a hit once expired
    /// let failed: Result<u32, &str> = cache.try_get_or_insert_with("rate", || Err("down"));
    /// assert_eq!(failed, Ok(1));                // the expired value, not the error
    /// assert_eq!(cache.stats().stale_served, 1);
    /// clock.advance(Duration::from_secs(3600)); // expired 65 minutes ago
    /// let failed: Result<u32, &str> = cache.try_get_or_insert_with("rate", || Err("down"));
    /// assert_eq!(failed, Err("down"));
    /// ```
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.stale_if_error = Some(window);
        self
    }

    /// Spreads each entry's [time-to-live](Self::time_to_live) (and
    /// [refresh time](Self::refresh_after)) randomly and uniformly within ±`fraction` of it,
    /// so that entries written together do not expire (and get recomputed) together. `0.1`
    /// gives a 10-minute ttl lifetimes between 9 and 11 minutes. `fraction` is clamped to
    /// `[0, 0.99]`; `0` or NaN means no jitter. For a jitter given as a duration `d`, pass
    /// `d / ttl`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use memokit::{Cache, MockClock};
    ///
    /// let clock = MockClock::new();
    /// let cache: Cache<u32, u32> = Cache::builder()
    ///     .time_to_live(Duration::from_secs(100))
    ///     .ttl_jitter(0.1)
    ///     .clock(clock.clone())
    ///     .build();
    /// for i in 0..1000 { cache.insert(i, i); }
    /// clock.advance(Duration::from_secs(100));
    /// cache.purge_expired();
    /// let left = cache.len(); // about half live longer than 100 s
    /// assert!(left > 300 && left < 700, "{left}");
    /// clock.advance(Duration::from_secs(10));
    /// cache.purge_expired();
    /// assert_eq!(cache.len(), 0); // none beyond 110 s
    /// ```
    pub fn ttl_jitter(mut self, fraction: f64) -> Self {
        self.jitter = if fraction > 0.0 {
            fraction.min(MAX_JITTER)
        } else {
            0.0 // also NaN
        };
        self
    }

    /// The eviction policy; [`Policy::WTinyLfu`] by default.
    ///
    /// ```
    /// let cache: memokit::Cache<u32, u32> =
    ///     memokit::Cache::builder().max_capacity(10).policy(memokit::Policy::Fifo).build();
    /// assert_eq!(cache.policy(), memokit::Policy::Fifo);
    /// ```
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Makes [`max_capacity`](Self::max_capacity) count the weight `weigher` gives each entry
    /// instead of entries. A value heavier than one shard's share of the capacity is not stored.
    /// A weight of 0 counts as 1, so that a bounded cache stays bounded in entries too.
    ///
    /// ```
    /// let cache: memokit::Cache<u32, Vec<u8>> = memokit::Cache::builder()
    ///     .max_capacity(100)
    ///     .weigher(|_k, v: &Vec<u8>| v.len() as u32)
    ///     .build();
    /// cache.insert(1, vec![0; 60]);
    /// cache.insert(2, vec![0; 60]); // 120 > 100: one of them is evicted
    /// assert_eq!(cache.len(), 1);
    /// ```
    pub fn weigher(mut self, weigher: impl Fn(&K, &V) -> u32 + Send + Sync + 'static) -> Self {
        self.weigher = Some(Box::new(weigher));
        self
    }

    /// Called with every entry that leaves the cache and why, after the shard's lock is
    /// released, on the thread whose call removed it.
    ///
    /// ```
    /// let cache: memokit::Cache<u32, u32> = memokit::Cache::builder()
    ///     .max_capacity(1)
    ///     .eviction_listener(|k, v, cause| println!("{k}={v} left: {cause:?}"))
    ///     .build();
    /// cache.insert(1, 1);
    /// cache.insert(2, 2); // prints "1=1 left: Size"
    /// ```
    pub fn eviction_listener(
        mut self,
        listener: impl Fn(K, V, RemovalCause) + Send + Sync + 'static,
    ) -> Self {
        self.listener = Some(Box::new(listener));
        self
    }

    /// The clock used for expiry; [`SystemClock`] by default. Tests pass a
    /// [`MockClock`](crate::MockClock).
    ///
    /// ```
    /// let clock = memokit::MockClock::new();
    /// let cache: memokit::Cache<u32, u32> = memokit::Cache::builder().clock(clock).build();
    /// # cache.insert(1, 1);
    /// ```
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// The number of shards, rounded up to a power of two, between 1 and [`MAX_SHARDS`]
    /// (65,536; a larger number is clamped to it, 0 counts as 1), and never more than a bounded
    /// cache's capacity. By default: eight per available core, fewer for small bounded caches (see
    /// [`max_capacity`](Self::max_capacity)), and for a bounded cache without a weigher up to
    /// twice as many, not necessarily a power of two: the count whose shares fill the shards'
    /// hash tables best, which take a power of two of buckets (1,000,000 entries over 10 shards
    /// instead of 8 need half the buckets).
    ///
    /// ```
    /// let cache: memokit::Cache<u32, u32> = memokit::Cache::builder().shards(3).build();
    /// assert_eq!(cache.shard_count(), 4);
    /// let small: memokit::Cache<u32, u32> = memokit::Cache::builder().max_capacity(3).shards(16).build();
    /// assert_eq!(small.shard_count(), 2);
    /// let clamped: memokit::Cache<u32, u32> = memokit::Cache::builder().shards(usize::MAX).build();
    /// assert_eq!(clamped.shard_count(), memokit::MAX_SHARDS);
    /// ```
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards.clamp(1, MAX_SHARDS).next_power_of_two());
        self
    }

    /// Hashes keys with keys drawn from `seed` instead of random ones, so that the cache places,
    /// admits and evicts the same way on every run: replaying one sequence of calls (from one
    /// thread) into two caches built alike with the same seed leaves them with the same entries
    /// and the same [`stats`](Cache::stats). For reproducible hit ratios and benchmark figures;
    /// run again with other seeds to see the spread.
    ///
    /// What stays fixed is everything the hash decides: the shard of each key, where the
    /// frequency sketch of W-TinyLFU and S3-FIFO+TinyLFU counts it, and the draw of its
    /// [`ttl_jitter`](Self::ttl_jitter). The same seed gives the same figures with the same
    /// memokit and ahash on the same kind of processor (ahash hashes differently with and without
    /// AES instructions) and the same number of shards: pin [`shards`](Self::shards) too to
    /// compare machines with different core counts. Concurrent callers still interleave as the
    /// scheduler decides.
    ///
    /// Without `seed` (the default) each cache gets random keys (on native targets and
    /// `wasm32-wasip1`, from the operating system once per process), so that keys chosen to
    /// collide in one process do not collide in another. A fixed seed gives that up: keep the
    /// default where keys come from untrusted input, or draw the seed from a random source of
    /// yours (on `wasm32-unknown-unknown`, which has no such source of its own, that is the way to
    /// get random keys: see README.md, "WebAssembly").
    ///
    /// ```
    /// use memokit::Cache;
    ///
    /// let replay = |cache: &Cache<u64, u64>| {
    ///     for i in 0..10_000u64 {
    ///         let key = (i * i) % 997; // any deterministic sequence
    ///         cache.get_or_insert_with(key, || key);
    ///     }
    /// };
    /// let build = || Cache::builder().max_capacity(100).shards(4).seed(42).build();
    /// let (first, second) = (build(), build());
    /// replay(&first);
    /// replay(&second);
    /// assert_eq!(first.stats().hits, second.stats().hits);
    /// assert_eq!(first.stats().evictions, second.stats().evictions);
    /// ```
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Builds the cache.
    ///
    /// ```
    /// let cache: memokit::Cache<u32, u32> = memokit::Cache::builder().max_capacity(10).build();
    /// assert_eq!(cache.capacity(), Some(10));
    /// ```
    pub fn build(self) -> Cache<K, V> {
        let shard_count = self.shard_count();
        let capacity = self.max_capacity;
        let hasher = self
            .seed
            .map_or_else(ahash::RandomState::new, seeded_hasher);
        let lookups = LookupCounters::new();
        // Exact split: the first `total % n` shards hold one more.
        let share_of = |i: u64| {
            capacity.map_or(u64::MAX, |total| {
                total / shard_count as u64 + u64::from(i < total % shard_count as u64)
            })
        };
        // W-TinyLFU's window is sized by one tuner per cache, which samples its lookups.
        let tuner = if self.policy == Policy::WTinyLfu {
            Arc::new(WindowTuner::new(share_of(0), shard_count))
        } else {
            WindowTuner::inert()
        };
        let shards: Box<[Shard<K, V>]> = (0..shard_count as u64)
            .map(|i| Shard::new(self.policy, share_of(i), hasher.clone(), &tuner))
            .collect();
        let expiry = ExpiryPolicy {
            ttl: self.ttl.map(duration_nanos),
            tti: self.tti.map(duration_nanos),
            refresh: self.refresh.map(duration_nanos),
            jitter: self.jitter,
            stale_if_error: self.stale_if_error.map(duration_nanos),
        };
        let config = ShardConfig {
            expiry,
            weigher: self.weigher,
            collect_removed: self.listener.is_some(),
            name: Default::default(),
        };
        let clock = self
            .clock
            .unwrap_or_else(|| Arc::new(SystemClock::default()));
        let (listener, policy) = (self.listener, self.policy);
        // One table of computations in progress beside each shard, found by the same bits.
        let flights = (0..shards.len()).map(|_| Flights::default()).collect();
        let inner = Inner {
            shards,
            flights,
            config,
            hasher,
            clock,
            listener,
            capacity,
            policy,
            lookups,
            tuner,
            shared_hit_counter: crate::cache::shared_hit_counter(policy, &expiry),
        };
        let cache = Cache {
            inner: Arc::new(inner),
        };
        if let (Some(start), true) = (self.start_sweeper, expiry.is_enabled()) {
            start(&cache);
        }
        cache
    }

    fn shard_count(&self) -> usize {
        if let Some(shards) = self.shards {
            // Never more shards than capacity: a shard with a zero share could store nothing.
            let most = self.max_capacity.map_or(usize::MAX, |capacity| {
                usize::try_from(capacity).unwrap_or(usize::MAX).max(1)
            });
            return if shards <= most {
                shards
            } else {
                prev_power_of_two(most)
            };
        }
        let cores = thread::available_parallelism().map_or(1, |n| n.get());
        let mut shards = (cores * SHARDS_PER_CORE).next_power_of_two();
        if let Some(capacity) = self.max_capacity {
            while shards > 1 && capacity / (shards as u64) < MIN_SHARD_CAPACITY {
                shards /= 2;
            }
            if self.weigher.is_none() {
                shards = densest_split(capacity, shards);
            }
        }
        shards
    }
}

/// The number of shards, from `least` to twice as many (excluded), that fills the shards'
/// tables best when every shard is full: a table has a power of two of buckets, so with a
/// power-of-two shard count a capacity just over 7/16 of one leaves its tables half empty
/// (1,000,000 entries on 8 shards: 125,000 in 262,144 buckets each, 10.5 bytes per entry; on
/// 10 shards, 100,000 in 131,072, 6.6). The fullest load up to [`MAX_TABLE_LOAD`] with shares
/// of at least [`MIN_SHARD_CAPACITY`], the fewest shards among equals; `least` if none.
fn densest_split(capacity: u64, least: usize) -> usize {
    let load = |shards: usize| {
        let share = capacity.div_ceil(shards as u64);
        share as f64 / table_buckets(share) as f64
    };
    (least..(2 * least).min(MAX_SHARDS + 1))
        .filter(|&shards| capacity / shards as u64 >= MIN_SHARD_CAPACITY)
        .filter(|&shards| load(shards) <= MAX_TABLE_LOAD)
        .fold(None, |best: Option<usize>, shards| match best {
            Some(best) if load(best) >= load(shards) => Some(best),
            _ => Some(shards),
        })
        .unwrap_or(least)
}

impl<K, V> CacheBuilder<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Reclaims expired entries every `interval` on a background thread, so that a cache that
    /// is neither read nor written still gives back their memory. Without it, expired entries
    /// are reclaimed when read, a few on every write, and by [`Cache::purge_expired`]. The
    /// thread stops once every handle on the cache is dropped.
    ///
    /// ```
    /// use std::time::Duration;
    /// let cache: memokit::Cache<u32, u32> = memokit::Cache::builder()
    ///     .time_to_live(Duration::from_secs(60))
    ///     .sweep_interval(Duration::from_secs(10))
    ///     .build();
    /// # cache.insert(1, 1);
    /// ```
    pub fn sweep_interval(mut self, interval: Duration) -> Self {
        self.start_sweeper = Some(Box::new(move |cache| spawn_sweeper(cache, interval)));
        self
    }
}

/// The hasher of [`CacheBuilder::seed`]: its four keys are the first four outputs of
/// splitmix64 started at `seed`, so that nearby seeds give unrelated keys.
pub(crate) fn seeded_hasher(seed: u64) -> ahash::RandomState {
    // `mix64` adds the first step itself.
    let key = |i: u64| mix64(seed.wrapping_add(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    ahash::RandomState::with_seeds(key(0), key(1), key(2), key(3))
}

fn prev_power_of_two(n: usize) -> usize {
    1 << (usize::BITS - 1 - n.leading_zeros())
}

fn spawn_sweeper<K, V>(cache: &Cache<K, V>, interval: Duration)
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    let weak = Arc::downgrade(&cache.inner);
    let spawned = thread::Builder::new()
        .name("memokit-sweep".into())
        .spawn(move || loop {
            thread::sleep(interval);
            let Some(inner) = weak.upgrade() else { break };
            Cache { inner }.purge_expired();
        });
    // Without a thread, expired entries are still reclaimed by writes and reads.
    drop(spawned);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bounded_cache_gets_the_shard_count_that_fills_its_tables() {
        // 8 shards of 125,000 entries fill 262,144 buckets each to 0.48; 10 of 100,000 fill
        // 131,072 to 0.76.
        assert_eq!(densest_split(1_000_000, 8), 10);
        assert_eq!(densest_split(300_000, 8), 12);
        // Already 0.76 with 8: no more shards.
        assert_eq!(densest_split(100_000, 8), 8);
        // Never a share under the minimum.
        assert_eq!(densest_split(64 * 8, 8), 8);
        assert_eq!(densest_split(1_000_000, 1), 1);
        for capacity in [1_000, 65_536, 1_000_000, 3_000_000, 10_000_000] {
            let shards = densest_split(capacity, 8);
            let share = capacity.div_ceil(shards as u64);
            assert!((8..16).contains(&shards));
            assert!(share as f64 / table_buckets(share) as f64 <= MAX_TABLE_LOAD);
        }
    }

    #[test]
    fn keys_spread_evenly_over_a_shard_count_that_is_not_a_power_of_two() {
        let cache: Cache<u64, u64> = Cache::builder().max_capacity(1_000_000).build();
        let shards = cache.shard_count();
        let mut counts = vec![0u64; shards];
        for key in 0..100_000u64 {
            counts[cache.shard_of(cache.hash(&key))] += 1;
        }
        let mean = 100_000 / shards as u64;
        assert!(
            counts
                .iter()
                .all(|&n| n > mean * 9 / 10 && n < mean * 11 / 10),
            "{counts:?}"
        );
    }
}
