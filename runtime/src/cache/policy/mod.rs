//! Eviction policies: which resident entry leaves when a shard is over its capacity.
//!
//! A policy only keeps an order over slot numbers; the shard owns the entries. Each policy is a
//! plain struct, and [`PolicyState`] dispatches to the one a cache was built with.

use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

mod fifo;
mod ghost;
mod lfu;
pub(crate) mod list;
mod lru;
mod s3fifo;
pub(crate) mod sketch;
mod tuner;
mod wtinylfu;

pub(crate) use fifo::Fifo;
pub(crate) use lfu::Lfu;
pub(crate) use lru::Lru;
pub(crate) use s3fifo::S3Fifo;
pub(crate) use tuner::WindowTuner;
pub(crate) use wtinylfu::WTinyLfu;

/// Which entry a full cache evicts.
///
/// The default is [`Policy::WTinyLfu`]: on the benchmark's 70 workloads and sizes (see
/// `bench/results/REPORT.md`) it is never far below the best of the other Rust caches, where
/// each other policy is far below on some (LRU on loops and scans, S3-FIFO on back-and-forth
/// sweeps and on loops slightly longer than the cache), and a hit under it takes only the
/// shard's shared lock.
///
/// ```
/// use memokit::{Cache, Policy};
///
/// let cache: Cache<u32, u32> = Cache::builder().max_capacity(100).policy(Policy::Lru).build();
/// cache.insert(1, 10);
/// assert_eq!(cache.get(&1), Some(10));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Policy {
    /// Least recently used, exact within a shard. A hit takes the shard's exclusive lock to move
    /// the entry to the front.
    Lru,
    /// Least frequently used with aging: O(1) frequency buckets, ties broken by least recent use,
    /// and every counter halved once the shard has seen ten accesses per resident entry, so keys
    /// that were hot long ago can leave. A hit takes the shard's exclusive lock.
    Lfu,
    /// First in, first out: hits do not change the order. A hit takes only the shared lock.
    Fifo,
    /// S3-FIFO (Yang et al., SOSP 2023): a small probationary FIFO queue, a main queue with a 2-bit
    /// use counter per entry (CLOCK-like second chances), and a ghost queue of recently evicted key
    /// hashes (half as many as the shard holds) that readmits returning keys straight into the main
    /// queue. Until a shard first evicts, new entries fill the main queue up to its share; after
    /// that they enter the small queue, which starts at 1% of the capacity and adapts between 1%
    /// and 90%: it grows while the main queue evicts entries unused and shrinks while entries there
    /// get reused, which keeps recency-only patterns (zigzags) closer to LRU's hit ratio. A loop or
    /// scan many times larger than the cache never promotes anything, so main keeps the keys it
    /// filled up with and serves them on every pass (near Bélády's optimum instead of no hits at
    /// all). Scan-resistant; a hit takes only the shared lock. 0.2 to 0.3 point ahead of
    /// [`Policy::WTinyLfu`] on Zipf with scans at 10,000 entries, far behind it on zigzags and on
    /// loops slightly longer than the cache.
    S3Fifo,
    /// S3-FIFO with a TinyLFU-style admission filter: a count-min sketch of 4-bit counters
    /// (about one byte per entry of capacity, allocated once the shard is first full, halved
    /// every ten accesses per entry) counts each key on its misses, and each use an entry's
    /// counter spends. A key returning from the ghost queue joins the main queue only while main
    /// has room or if the sketch counts it strictly more often than main's next victim; otherwise
    /// it stays on probation. On loops slightly longer than the cache this keeps most of the loop
    /// resident (a loop of 1,100 keys in 1,000 entries: about 89 % hits, against about 78 % for
    /// [`Policy::S3Fifo`]); on some recency-heavy traces it loses a few points. Hits are recorded
    /// exactly as under [`Policy::S3Fifo`] (the shared lock and the entry's own bits); the
    /// sketch is only touched on the miss path.
    ///
    /// ```
    /// use memokit::{Cache, Policy};
    ///
    /// let cache: Cache<u32, u32> =
    ///     Cache::builder().max_capacity(1000).policy(Policy::S3FifoTinyLfu).build();
    /// // A loop over 1,100 keys, read through the cache ten times.
    /// let mut hits = 0;
    /// for key in (0..10).flat_map(|_| 0..1100) {
    ///     if cache.get(&key).is_some() {
    ///         hits += 1;
    ///     } else {
    ///         cache.insert(key, key);
    ///     }
    /// }
    /// assert!(hits > 5000, "{hits}");
    /// ```
    S3FifoTinyLfu,
    /// Adaptive W-TinyLFU (the policy of Java's Caffeine): new entries enter an admission
    /// window; an entry leaving it replaces the main space's next victim only if a count-min
    /// sketch of recent key frequencies (4-bit counters, eight per entry of capacity, so four
    /// bytes per entry, allocated once the shard is half full) counts it more often (by at least
    /// two). Main is a segmented queue (probation and protected). The window's share of the
    /// capacity, and whether admission keeps a ghost (the hashes of the last candidates it
    /// turned away, as many as the shard holds, so that a key that comes back wins a tie against
    /// main's victim), are chosen by miniature simulation: once the cache's first shard is half
    /// full, a hashed sample of that shard's keys (all of them in a shard of up to 1,024
    /// entries) is replayed through nine scaled-down copies of the shard, with windows of 1, 5,
    /// 20, 50, 80 and 99 %, and of 1, 5 and 20 % with the ghost, and the cache follows the copy
    /// that hits most: the ghost at once, the share by at most 5 % of the capacity per period
    /// (two sampled lookups per copy entry, at least 1,000). The window ends up small on skewed
    /// and looping workloads, large on recency-only ones; the ghost on where keys come back soon
    /// after a small window let them go. The copies take about 36 KiB per 1,024 entries each, 54
    /// with a ghost (at most about 380 KiB a cache), allocated as sampling starts; writers run
    /// them outside the shard's lock. The cache's own ghost allocates nothing until the
    /// simulation first turns it on; then it holds as many hashes as the shard then holds
    /// entries, 8 bytes each in a ring and 4 in an index (about 14 to 20 bytes per hash
    /// remembered). Queues are
    /// CLOCKs over a use counter in each entry, so a hit takes only the shard's shared lock and
    /// writes only the entry's own byte; the sketch is fed on the miss path.
    ///
    /// It keeps most of a loop slightly longer than the cache resident (where
    /// [`Policy::S3Fifo`]'s main queue churns), grows its window on back-and-forth sweeps (where
    /// admission alone would keep yesterday's keys), and shrinks it back on skewed workloads.
    /// The default; see the README's "Policies" section for the measured averages.
    ///
    /// ```
    /// use memokit::{Cache, Policy};
    ///
    /// let cache: Cache<u32, u32> =
    ///     Cache::builder().max_capacity(1000).policy(Policy::WTinyLfu).build();
    /// // A loop over 1,100 keys, read through the cache ten times.
    /// let mut hits = 0;
    /// for key in (0..10).flat_map(|_| 0..1100) {
    ///     if cache.get(&key).is_some() {
    ///         hits += 1;
    ///     } else {
    ///         cache.insert(key, key);
    ///     }
    /// }
    /// assert!(hits > 5000, "{hits}");
    /// ```
    #[default]
    WTinyLfu,
}

impl Policy {
    /// How a hit is recorded under the shared lock, for the hit path that reads no policy
    /// state: `Some(max)` bumps a use counter in the low bits of the entry's policy bits up to
    /// `max` (see [`bump_uses`]; `Some(0)` records nothing), `None` when hits take the
    /// exclusive lock.
    pub(crate) fn shared_hit_counter(self) -> Option<u8> {
        match self {
            Policy::S3Fifo | Policy::S3FifoTinyLfu => Some(s3fifo::MAX_FREQ),
            Policy::WTinyLfu => Some(wtinylfu::MAX_USES),
            Policy::Fifo => Some(0),
            Policy::Lru | Policy::Lfu => None,
        }
    }
}

/// Records a hit in a use counter kept in the low bits of an entry's policy bits, saturating
/// at `max` (all ones in those bits). A saturated counter is left alone, so hot entries cause
/// no writes; a lost race between two hits loses one count, which is harmless. Flag bits above
/// the counter change only under the exclusive lock, so no hit can overwrite them.
#[inline(always)]
pub(crate) fn bump_uses(bits: &AtomicU8, max: u8) {
    let b = bits.load(Relaxed);
    if b & max < max {
        bits.store(b + 1, Relaxed);
    }
}

/// The shard, among `shards`, of a key hashed `hash`: its low 32 bits scaled to the count (see
/// `Cache::shard_of`, which routes by it). Here, below the cache, so that the window tuner's
/// miniatures route their samples by the same rule.
#[inline(always)]
pub(crate) fn shard_index(hash: u64, shards: u64) -> usize {
    ((u64::from(hash as u32) * shards) >> 32) as usize
}

/// What a policy may ask of the shard's slots while choosing a victim.
pub(crate) trait SlotInfo {
    fn weight(&self, idx: u32) -> u64;
    fn hash(&self, idx: u32) -> u64;
    /// The entry's policy bits (see [`PolicyState`]).
    fn bits(&self, idx: u32) -> &AtomicU8;
}

/// The policy state of one shard.
///
/// Besides its own structures, a policy owns one byte inside each entry, its *policy bits*,
/// handed to it on every event: per-entry state that a hit must reach without touching any
/// other memory (S3-FIFO's use counter). Policies that need none ignore it.
#[derive(Debug)]
pub(crate) enum PolicyState {
    Lru(Lru),
    Lfu(Lfu),
    Fifo(Fifo),
    S3Fifo(S3Fifo),
    WTinyLfu(WTinyLfu),
}

macro_rules! dispatch {
    ($self:expr, $p:ident => $body:expr) => {
        match $self {
            PolicyState::Lru($p) => $body,
            PolicyState::Lfu($p) => $body,
            PolicyState::Fifo($p) => $body,
            PolicyState::S3Fifo($p) => $body,
            PolicyState::WTinyLfu($p) => $body,
        }
    };
}

impl PolicyState {
    /// A fresh state for a shard holding at most `capacity` weight. `tuner` is the cache's
    /// W-TinyLFU window tuner, shared by its shards (inert for the other policies).
    pub(crate) fn new(policy: Policy, capacity: u64, tuner: &std::sync::Arc<WindowTuner>) -> Self {
        match policy {
            Policy::Lru => PolicyState::Lru(Lru::default()),
            Policy::Lfu => PolicyState::Lfu(Lfu::default()),
            Policy::Fifo => PolicyState::Fifo(Fifo::default()),
            Policy::S3Fifo => PolicyState::S3Fifo(S3Fifo::new(capacity, false)),
            Policy::S3FifoTinyLfu => PolicyState::S3Fifo(S3Fifo::new(capacity, true)),
            Policy::WTinyLfu => PolicyState::WTinyLfu(WTinyLfu::new(capacity, tuner.clone())),
        }
    }

    /// The shard's slab now has room for `slots` slots: the per-slot arrays make the same room.
    pub(crate) fn reserve(&mut self, slots: usize) {
        dispatch!(self, p => p.reserve(slots))
    }

    /// Whether a hit must go through [`PolicyState::on_hit`] under the exclusive lock, rather
    /// than [`PolicyState::on_hit_shared`] under the shared one.
    pub(crate) fn hit_needs_exclusive(&self) -> bool {
        matches!(self, PolicyState::Lru(_) | PolicyState::Lfu(_))
    }

    /// Records a hit under the shared lock (policies whose hits change no links).
    #[inline]
    pub(crate) fn on_hit_shared(&self, bits: &AtomicU8) {
        match self {
            PolicyState::S3Fifo(_) => S3Fifo::on_hit(bits),
            PolicyState::WTinyLfu(_) => WTinyLfu::on_hit(bits),
            _ => {}
        }
    }

    /// Records a hit under the exclusive lock.
    pub(crate) fn on_hit(&mut self, idx: u32, bits: &AtomicU8) {
        match self {
            PolicyState::Lru(p) => p.on_hit(idx),
            PolicyState::Lfu(p) => p.on_hit(idx),
            PolicyState::Fifo(_) => {}
            PolicyState::S3Fifo(_) => S3Fifo::on_hit(bits),
            PolicyState::WTinyLfu(_) => WTinyLfu::on_hit(bits),
        }
    }

    /// A new entry became resident in slot `idx`.
    pub(crate) fn on_insert(&mut self, idx: u32, hash: u64, weight: u64, bits: &AtomicU8) {
        match self {
            PolicyState::Lru(p) => p.on_insert(idx),
            PolicyState::Lfu(p) => p.on_insert(idx),
            PolicyState::Fifo(p) => p.on_insert(idx),
            PolicyState::S3Fifo(p) => p.on_insert(idx, hash, weight, bits),
            PolicyState::WTinyLfu(p) => p.on_insert(idx, hash, weight, bits),
        }
    }

    /// The value in slot `idx` was replaced; its weight went from `old` to `new`. Counts as a use.
    pub(crate) fn on_update(&mut self, idx: u32, old: u64, new: u64, bits: &AtomicU8) {
        match self {
            PolicyState::Lru(p) => p.on_hit(idx),
            PolicyState::Lfu(p) => p.on_hit(idx),
            PolicyState::Fifo(_) => {}
            PolicyState::S3Fifo(p) => p.on_update(old, new, bits),
            PolicyState::WTinyLfu(p) => p.on_update(old, new, bits),
        }
    }

    /// Slot `idx` left for a reason other than eviction (invalidated, expired).
    pub(crate) fn on_remove(&mut self, idx: u32, weight: u64, bits: &AtomicU8) {
        match self {
            PolicyState::Lru(p) => p.on_remove(idx),
            PolicyState::Lfu(p) => p.on_remove(idx),
            PolicyState::Fifo(p) => p.on_remove(idx),
            PolicyState::S3Fifo(p) => p.on_remove(idx, weight, bits),
            PolicyState::WTinyLfu(p) => p.on_remove(idx, weight, bits),
        }
    }

    /// Chooses the next entry to evict and forgets it; the caller removes it from the shard.
    pub(crate) fn evict(&mut self, slots: &(impl SlotInfo + ?Sized)) -> Option<u32> {
        dispatch!(self, p => p.evict(slots))
    }

    pub(crate) fn clear(&mut self) {
        dispatch!(self, p => p.clear())
    }
}
