//! The shared tier (feature `redis`): one cache across processes, in Redis.
//!
//! A function written `#[cached(size = 10_000, ttl = "1m", redis(ttl = "10m"))]` keeps its
//! results in the process (L1, as without the option) and in Redis (L2), under the Redis
//! connection of the process:
//!
//! ```no_run
//! use memokit::cached;
//!
//! #[cached(size = 10_000, ttl = "1m", redis(ttl = "10m"))]
//! fn render(page: u32) -> String {
//!     format!("<h1>page {page}</h1>") // runs once per key across every process
//! }
//!
//! fn main() -> Result<(), memokit::redis::Error> {
//!     memokit::redis::connect("redis://127.0.0.1:6379")?; // or set MEMOKIT_REDIS_URL
//!     assert_eq!(render(1), "<h1>page 1</h1>");
//!     println!("{}", render_cache().stats()); // … l2_hits=0 l2_misses=1 l2_errors=0 …
//!     Ok(())
//! }
//! ```
//!
//! # Behaviour
//! - **Lookup order**: in-process, then Redis, then the computation. A Redis hit fills the
//!   in-process tier; a computed value is written to both (`SET … PX ttl`). What the
//!   in-process tier would not store (an `Err`, a `None` with `cache_none = false`) is not
//!   written to Redis either.
//! - **Keys** are `prefix:function:generation:hexkey`: two functions, two applications (with
//!   different [`Config::prefix`]) or two argument tuples never share an entry.
//! - **Values** are encoded with [postcard](https://docs.rs/postcard) behind a one-byte format
//!   version and a fingerprint of the value's type name. A value that does not decode (the type
//!   changed) is a miss, counted in `l2_decode_errors` and overwritten, never a panic.
//! - **Handles write through**: `clear()` increments the function's generation in Redis (O(1);
//!   old entries age out by their TTL), `invalidate(&key)` deletes the entry, `insert(key,
//!   value)` writes it. Each is published on `prefix:events`, and every other process applies it
//!   to its in-process tier within milliseconds.
//! - **Distributed single flight**: when a key is in neither tier, one process computes it
//!   under a lease (`SET NX PX`, released only by its holder); the others poll Redis until the
//!   value appears. A holder that dies delays the others until its lease expires
//!   ([`Config::lease_ttl`], or `redis(lease = "…")`), then one of them computes. While the
//!   holder computes, the lease is extended back to its full length every third of it (on the
//!   tier's runtime thread, for sync and async functions alike), so a computation longer than
//!   the lease still runs once. Only a holder cut off from Redis for longer than the lease may
//!   see the computation run twice; it is never wrong.
//! - **Outages**: with Redis down, slow or restarted, every call still returns its value (from
//!   the in-process tier or computed), with at most about one [`Config::timeout`] of extra
//!   latency per call: after a failure Redis is not asked for [`Config::retry_after`]. Failures
//!   count in `l2_errors`, a `tracing` warning (target `memokit::redis`) says that Redis is
//!   unreachable at most once per [`Config::warn_every`], and the tier resumes by itself.
//!   Invalidations published while a process was disconnected are not replayed: when its
//!   subscription comes back, it empties the in-process tier of its shared functions instead.
//! - **Not connected**: until [`connect`] is called (or `MEMOKIT_REDIS_URL` is set), functions
//!   with the option are in-process only.
//!
//! # Security
//! Values and keys are stored **in clear** in Redis: anyone who can read the Redis server can
//! read them. Functions whose results must not leave the process simply do not use the
//! option. Use TLS (`rediss://host:6380`; needs the `redis-tls` feature) and AUTH in the URL
//! (`redis://user:password@host:6379/0`, or `redis://:password@host` without ACL users); the
//! password never appears in memokit's messages.
//!
//! # Runtime
//! Sync functions talk to Redis from the calling thread, over a small pool of blocking
//! connections (reads and writes bounded by [`Config::timeout`]): an L2 hit costs about one
//! plain `GET`. Async functions await their operations on any executor (no tokio runtime is
//! needed by the caller): those run on a thread of memokit's own (`memokit-redis`), over one
//! multiplexed connection, which sync functions also fall back to when a pooled connection
//! was closed by the server.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::tier::redis::{codec, Shared};
pub use crate::tier::redis::{
    connect, connect_with, disconnect, is_connected, is_subscribed, Config, Error,
};

/// The shared tier of a function with key `K` and value `V`: what `#[cached(redis(...))]`
/// expands to. Not part of the stable API.
#[doc(hidden)]
pub fn __shared<K, V>(ttl: Duration, lease: Option<Duration>) -> Shared<K, V>
where
    K: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    Shared::new(
        ttl,
        lease,
        codec::encode_key::<K>,
        codec::decode_key::<K>,
        codec::encode_value::<V>,
        codec::decode_value::<V>,
    )
}
