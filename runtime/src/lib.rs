//! # memokit
//!
//! Concurrent, sharded in-process caches for memoization: LRU, LFU, FIFO and the scan-resistant
//! S3-FIFO (the default), time-to-live and time-to-idle with an injectable clock, per-key
//! request coalescing for sync and async loaders, and hit/miss statistics readable at run time.
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

mod builder;
mod cache;
mod expiry;
mod flight;
mod memo;
mod policy;
#[cfg(feature = "redis")]
pub mod redis;
mod registry;
mod shape;
mod shard;
mod stats;
mod writer;

pub use builder::CacheBuilder;
pub use cache::{Cache, RemovalCause};
pub use expiry::{Clock, MockClock, SystemClock};
pub use memo::Memo;
pub use memokit_macros::cached;
pub use memokit_macros::{cache_evict, cache_put};
pub use policy::Policy;
pub use registry::{registry, FunctionStats, Registry};
pub use stats::Stats;

/// What `#[cached]` expands to calls; not part of the stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::flight::ShareError;
    pub use crate::memo::MemoOptions;
    pub use crate::shape::{
        ErrorSharing, OptionShape, Plain, ResultShape, RetryOnError, Shape, ShareClonedError,
    };
    pub use crate::writer::{Evict, KeyOf, Put, ValueOf};
    pub use std::sync::OnceLock;
    pub use std::time::Duration;

    #[cfg(feature = "redis")]
    pub use crate::redis::__shared as shared_tier;

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
    pub fn shared_tier<K, V>(_ttl: Duration, _lease: Option<Duration>) -> crate::memo::NoSharedTier
    where
        K: RedisFeatureIsOff,
    {
        crate::memo::NoSharedTier
    }
}
