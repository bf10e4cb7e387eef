//! The caches compared: one small trait, one module per contender.
//!
//! Every contender maps `u64` keys to `u64` values and is built from a capacity in entries,
//! the way its users would write it: default hasher and default sharding, behind a
//! `parking_lot::Mutex` where the cache itself is not thread-safe.
//!
//! The measurements are generic over [`Contender`] and reached through [`Measure`], so each
//! loop is compiled for each cache: no dynamic dispatch in the timed code.

mod cached_lru;
mod lru_mutex;
mod memokit_cache;
mod mini_moka_sync;
mod moka_future;
mod moka_sync;
mod quick_cache_sync;

pub use cached_lru::CachedLru;
pub use lru_mutex::LruMutex;
pub use memokit_cache::{Memokit, FIFO, LFU, LRU, S3FIFO, S3FIFO_TINYLFU, W_TINYLFU};
pub use mini_moka_sync::MiniMoka;
pub use moka_future::{poll_to_completion, MokaFuture};
pub use moka_sync::MokaSync;
pub use quick_cache_sync::QuickCache;

/// A cache under test: `u64` keys and values.
pub trait Contender: Send + Sync + 'static {
    /// A cache holding at most `capacity` entries.
    fn with_capacity(capacity: usize) -> Self
    where
        Self: Sized;
    /// A cache like [`with_capacity`](Contender::with_capacity)'s whose hashing is drawn from
    /// `seed`, so that a replay gives the same figures every time and can be repeated with
    /// other seeds to see how far they move. `None` (the default) for a contender whose
    /// builder takes no seed: the peers, built as their users build them.
    fn seeded(capacity: usize, seed: u64) -> Option<Self>
    where
        Self: Sized,
    {
        let _ = (capacity, seed);
        None
    }
    /// The value of `key`, if present; counts as a use for the eviction policy.
    fn get(&self, key: u64) -> Option<u64>;
    /// Stores `value` under `key`, evicting if the cache is full.
    fn insert(&self, key: u64, value: u64);
    /// Finishes deferred maintenance (moka applies its policy in batches), so that a
    /// measurement that follows sees the settled state. Not called in timed loops.
    fn settle(&self) {}
    /// Entries held right now, counting those that deferred maintenance has not yet weighed
    /// against the capacity (moka keeps new entries beyond it until then). May walk the whole
    /// cache; not called in timed loops.
    fn resident(&self) -> usize;
}

/// A measurement run on one contender type. `measure` is generic, so the timed loops are
/// compiled separately for each cache.
pub trait Measure {
    /// What the measurement returns.
    type Output;
    /// Runs the measurement on contender `C`.
    fn measure<C: Contender>(self) -> Self::Output;
}

/// Every contender, in table order; the first is memokit's default policy, the reference of
/// every ratio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// memokit with its default policy, adaptive W-TinyLFU.
    MemokitWTinyLfu,
    /// memokit, S3-FIFO.
    MemokitS3Fifo,
    /// memokit, LRU.
    MemokitLru,
    /// memokit, LFU.
    MemokitLfu,
    /// memokit, FIFO.
    MemokitFifo,
    /// memokit, S3-FIFO with the TinyLFU-style admission filter.
    MemokitS3FifoTinyLfu,
    /// `quick_cache::sync::Cache`.
    QuickCache,
    /// `moka::sync::Cache`.
    MokaSync,
    /// `moka::future::Cache`, its futures polled to completion in place.
    MokaFuture,
    /// `mini_moka::sync::Cache`.
    MiniMoka,
    /// `cached::LruCache` (called `SizedCache` before cached 3) behind a `parking_lot::Mutex`.
    CachedLru,
    /// `lru::LruCache` behind a `parking_lot::Mutex`.
    Lru,
}

impl Kind {
    /// All contenders, in table order.
    pub const ALL: [Kind; 12] = [
        Kind::MemokitWTinyLfu,
        Kind::MemokitS3Fifo,
        Kind::MemokitLru,
        Kind::MemokitLfu,
        Kind::MemokitFifo,
        Kind::MemokitS3FifoTinyLfu,
        Kind::QuickCache,
        Kind::MokaSync,
        Kind::MokaFuture,
        Kind::MiniMoka,
        Kind::CachedLru,
        Kind::Lru,
    ];

    /// The reference of every ratio: memokit's default policy.
    pub const REFERENCE: Kind = Kind::MemokitWTinyLfu;

    /// The name in tables and plots.
    pub fn name(self) -> &'static str {
        match self {
            Kind::MemokitWTinyLfu => "memokit W-TinyLFU (default)",
            Kind::MemokitS3Fifo => "memokit S3-FIFO",
            Kind::MemokitLru => "memokit LRU",
            Kind::MemokitLfu => "memokit LFU",
            Kind::MemokitFifo => "memokit FIFO",
            Kind::MemokitS3FifoTinyLfu => "memokit S3-FIFO+TinyLFU",
            Kind::QuickCache => "quick_cache",
            Kind::MokaSync => "moka sync",
            Kind::MokaFuture => "moka future",
            Kind::MiniMoka => "mini_moka",
            Kind::CachedLru => "cached LruCache+Mutex",
            Kind::Lru => "lru+Mutex",
        }
    }

    /// The name on the command line (`memory NAME`).
    pub fn slug(self) -> &'static str {
        match self {
            Kind::MemokitS3Fifo => "memokit-s3fifo",
            Kind::MemokitLru => "memokit-lru",
            Kind::MemokitLfu => "memokit-lfu",
            Kind::MemokitFifo => "memokit-fifo",
            Kind::MemokitS3FifoTinyLfu => "memokit-s3fifo-tinylfu",
            Kind::MemokitWTinyLfu => "memokit-w-tinylfu",
            Kind::QuickCache => "quick-cache",
            Kind::MokaSync => "moka-sync",
            Kind::MokaFuture => "moka-future",
            Kind::MiniMoka => "mini-moka",
            Kind::CachedLru => "cached",
            Kind::Lru => "lru",
        }
    }

    /// The contender named `slug`.
    pub fn from_slug(slug: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.slug() == slug)
    }

    /// Whether this is one of memokit's policies rather than a peer.
    pub fn is_memokit(self) -> bool {
        matches!(
            self,
            Kind::MemokitS3Fifo
                | Kind::MemokitLru
                | Kind::MemokitLfu
                | Kind::MemokitFifo
                | Kind::MemokitS3FifoTinyLfu
                | Kind::MemokitWTinyLfu
        )
    }

    /// Runs `measurement` on this contender's type.
    pub fn measure<M: Measure>(self, measurement: M) -> M::Output {
        match self {
            Kind::MemokitS3Fifo => measurement.measure::<Memokit<S3FIFO>>(),
            Kind::MemokitLru => measurement.measure::<Memokit<LRU>>(),
            Kind::MemokitLfu => measurement.measure::<Memokit<LFU>>(),
            Kind::MemokitFifo => measurement.measure::<Memokit<FIFO>>(),
            Kind::MemokitS3FifoTinyLfu => measurement.measure::<Memokit<S3FIFO_TINYLFU>>(),
            Kind::MemokitWTinyLfu => measurement.measure::<Memokit<W_TINYLFU>>(),
            Kind::QuickCache => measurement.measure::<QuickCache>(),
            Kind::MokaSync => measurement.measure::<MokaSync>(),
            Kind::MokaFuture => measurement.measure::<MokaFuture>(),
            Kind::MiniMoka => measurement.measure::<MiniMoka>(),
            Kind::CachedLru => measurement.measure::<CachedLru>(),
            Kind::Lru => measurement.measure::<LruMutex>(),
        }
    }
}
