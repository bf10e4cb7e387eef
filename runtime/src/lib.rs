//! # memokit
//!
//! Concurrent, sharded in-process caches for memoization: adaptive W-TinyLFU (the default),
//! the scan-resistant S3-FIFO, LRU, LFU and FIFO, time-to-live and time-to-idle with an
//! injectable clock, per-key request coalescing for sync and async loaders, and hit/miss
//! statistics readable at run time.
//!
//! ```
//! use std::time::Duration;
//! use memokit::Cache;
//!
//! let cache: Cache<u64, String> = Cache::builder()
//!     .max_capacity(10_000)
//!     .time_to_live(Duration::from_secs(300))
//!     .build();
//!
//! // Concurrent callers of one missing key share one computation.
//! let name = cache.get_or_insert_with(42, || format!("user {}", 42));
//! assert_eq!(name, "user 42");
//! assert_eq!(cache.get(&42).as_deref(), Some("user 42"));
//! println!("{}", cache.stats()); // hits=1 misses=1 hit_ratio=50.0% size=1/10000 ...
//! ```
//!
//! See [`Cache`] for the operations, [`CacheBuilder`] for the settings, [`Policy`] for the
//! eviction policies and [`Stats`] for the counters.
//!
//! With the `write-behind` feature, `WriteBehind` (module `write_behind`) updates a cache at once
//! and sends the writes to a slower store in batches.
//!
//! # Observability
//! - [`Registry::prometheus`] renders every memoized function's counters as Prometheus text
//!   (no cargo feature needed).
//! - Feature `metrics`: `memokit::metrics::export()` copies them into the
//!   [`metrics`](https://docs.rs/metrics) facade, on demand or on an interval
//!   (`memokit::metrics::spawn_exporter`). Nothing is counted on the way: the hit path is
//!   the same code with or without the feature.
//! - Feature `tracing`: each computation runs in a span (target `memokit`, name `load`, level
//!   INFO) with the field `function`, and once it ends `outcome` (`ok`, `error`, `panic` or
//!   `cancelled`) and `duration` (a `Duration` in `Debug` form). Each entry leaving a cache is
//!   a DEBUG event (target `memokit`, message `entry removed`) with `function` and `cause`
//!   (`Size`, `Expired` or `Invalidated`), emitted under the shard's lock. `function` is the
//!   registry name, empty for a [`Cache`] used directly. A hit emits nothing. The warnings of
//!   the `redis` feature (target `memokit::redis`) need no feature of their own.

mod cache;
#[cfg(feature = "disk")]
pub mod disk;
mod memo;
#[cfg(feature = "redis")]
pub mod redis;
mod tier;
// The memo layer's warm-up and writers, at the crate root: the compile errors they produce
// (trybuild's `.stderr` files) name these files and module paths.
mod warm;
#[cfg(feature = "write-behind")]
pub mod write_behind;
mod writer;

pub use cache::builder::{CacheBuilder, MAX_SHARDS};
pub use cache::expiry::{Clock, MockClock, SystemClock};
pub use cache::flight::LoadFailed;
pub use cache::policy::Policy;
pub use cache::removal::RemovalCause;
pub use cache::stats::Stats;
/// The clock of caches on `wasm32-unknown-unknown`, where std has none.
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
pub use cache::stopwatch::no_clock::set_time_source;
pub use cache::Cache;
/// The trait of a borrowed form of a key: [`Cache::get`] and its kin take any `Q: Equivalent<K>`, as
/// hashbrown, indexmap and quick_cache do (it is the `equivalent` crate's).
pub use equivalent::Equivalent;
#[cfg(feature = "metrics")]
pub use memo::metrics;
pub use memo::registry::{registry, FunctionStats, Registry};
pub use memo::testing;
pub use memo::Memo;
pub use memokit_macros::cached;
pub use memokit_macros::{cache_evict, cache_put};
pub use warm::{AsyncLoader, LoadingMemo, SyncLoader, WarmReport};
#[cfg(feature = "write-behind")]
pub use write_behind::WriteBehind;

/// What `#[cached]` expands to calls; not part of the stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::cache::flight::ShareError;
    pub use crate::cache::key::{Args, Borrowed, LookupKey, Owned};
    /// The TinyLFU policies' frequency sketch, for the policy model tests.
    pub use crate::cache::policy::sketch::FrequencySketch;
    pub use crate::memo::generic::Instantiations;
    pub use crate::memo::shape::{
        ErrorSharing, OptionShape, Plain, ResultShape, RetryOnError, Shape, ShareClonedError,
        ShareErrorAsLoadFailed,
    };
    pub use crate::memo::testing::ThreadClock;
    pub use crate::memo::{Look, MemoOptions};
    pub use crate::warm::LoadAsync;
    pub use crate::writer::{run_once, Evict, KeyOf, Put, ValueOf};
    pub use std::any::TypeId;
    pub use std::sync::OnceLock;
    pub use std::time::Duration;

    /// What `seed = <expression>` in `#[cached]` must be: a `u64`.
    #[diagnostic::on_unimplemented(
        message = "`seed` expects a `u64`, not `{Self}`",
        label = "the cache's hashing seed",
        note = "write a whole number (`seed = 42`) or an expression of type `u64` (`seed = SEED as u64`)"
    )]
    pub trait Seed {
        /// The seed.
        fn into_seed(self) -> u64;
    }

    impl Seed for u64 {
        fn into_seed(self) -> u64 {
            self
        }
    }

    /// What an argument that is part of a `#[cached]` function's key must be: checked at the
    /// argument ([`key_argument`]), so that the compiler's error points at it.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be part of a `#[cached]` function's key: it is not `Hash` and `Eq`",
        label = "this argument is part of the key",
        note = "leave it out of the key with `#[skip]`, or write the key with `key = …` (for a float, its bits: `key = x.to_bits()`, `key_type = u64`)"
    )]
    pub trait KeyArgument {}

    impl<T: ?Sized + std::hash::Hash + Eq> KeyArgument for T {}

    /// Checks that `T`, an argument's type, can be part of a key.
    pub fn key_argument<T: ?Sized + KeyArgument>() {}

    /// The field `#[cached(instance = field)]` names, which must hold the method's cache.
    #[inline(always)]
    pub fn instance_cache<K, V>(field: &crate::Memo<K, V>) -> &crate::Memo<K, V> {
        field
    }

    /// What a `#[cached]` function's cached value must be: checked at the return type
    /// ([`cached_value`]), so that the compiler's error points at it.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be the cached value of a `#[cached]` function: it is not `Clone`",
        label = "every caller gets a clone of the cached value",
        note = "derive or implement `Clone` for it, or return an `Arc` of it (`Arc<{Self}>` is `Clone`)"
    )]
    pub trait CachedValue {}

    impl<T: Clone> CachedValue for T {}

    /// Checks that `T`, a function's cached value, can be handed to every caller.
    pub fn cached_value<T: CachedValue>() {}

    /// The seed of `#[cached(seed = <expression>)]`, checked to be a `u64`.
    pub fn seed(seed: impl Seed) -> u64 {
        seed.into_seed()
    }

    #[cfg(feature = "redis")]
    pub use crate::redis::__shared as shared_tier;
    /// `redis(codec = …)`: named by the expansion with or without the `redis` feature, so that
    /// a build without it fails on the feature alone.
    pub use crate::tier::Codec;
    /// The tiers' codec, for the codec measurement of `memokit-bench`.
    #[cfg(any(feature = "redis", feature = "disk"))]
    pub mod codec {
        pub use crate::tier::codec::{decode_value, encode_value, Encoding};
    }

    /// `#[cached(disk, redis(...))]`: the disk tier in front of the shared one.
    pub fn chain_tiers<K, V>(
        near: impl Into<crate::tier::TierHandle<K, V>>,
        far: impl Into<crate::tier::TierHandle<K, V>>,
    ) -> crate::tier::TierHandle<K, V>
    where
        K: Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        crate::tier::chain::chain(near.into(), far.into())
    }

    #[cfg(feature = "disk")]
    pub use crate::disk::__disk as disk_tier;

    /// What `disk` in `#[cached]` needs: the `disk` feature of memokit.
    #[cfg(not(feature = "disk"))]
    #[diagnostic::on_unimplemented(
        message = "`#[cached(disk)]` needs the `disk` feature of memokit",
        label = "the disk tier is not compiled in",
        note = "enable it in Cargo.toml: `memokit = {{ version = \"0.1\", features = [\"disk\"] }}`"
    )]
    pub trait DiskFeatureIsOff {}

    /// Without the `disk` feature, `#[cached(disk)]` fails here with the message above.
    #[cfg(not(feature = "disk"))]
    pub fn disk_tier<K, V>(
        _path: Option<&'static str>,
        _ttl: Option<Duration>,
    ) -> crate::tier::NoSharedTier
    where
        K: DiskFeatureIsOff,
    {
        crate::tier::NoSharedTier
    }

    /// What `redis(...)` in `#[cached]` needs: the `redis` feature of memokit.
    #[cfg(not(feature = "redis"))]
    #[diagnostic::on_unimplemented(
        message = "`#[cached(redis(...))]` needs the `redis` feature of memokit",
        label = "the shared tier is not compiled in",
        note = "enable it in Cargo.toml: `memokit = {{ version = \"0.1\", features = [\"redis\"] }}`"
    )]
    pub trait RedisFeatureIsOff {}

    /// Without the `redis` feature, `#[cached(redis(...))]` fails here with the message above.
    #[cfg(not(feature = "redis"))]
    pub fn shared_tier<K, V>(
        _ttl: Duration,
        _lease: Option<Duration>,
        _codec: Option<Codec>,
    ) -> crate::tier::NoSharedTier
    where
        K: RedisFeatureIsOff,
    {
        crate::tier::NoSharedTier
    }
}
