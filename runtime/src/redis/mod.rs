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

mod codec;
mod keys;
mod lease;
mod pubsub;
mod tier;

use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cache::stats::Stats;
pub(crate) use lease::load_through;
pub(crate) use pubsub::RemoteOp;
pub(crate) use tier::{block_on, Tier, Unavailable};

/// How to reach Redis and how to use it; see [`connect_with`].
///
/// ```
/// use std::time::Duration;
/// let config = memokit::redis::Config::new("redis://127.0.0.1:6379")
///     .prefix("billing")
///     .timeout(Duration::from_millis(20))
///     .lease_ttl(Duration::from_secs(10));
/// assert_eq!(config.get_prefix(), "billing");
/// ```
#[derive(Clone)]
pub struct Config {
    url: String,
    prefix: String,
    timeout: Duration,
    lease_ttl: Duration,
    retry_after: Duration,
    warn_every: Duration,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("url", &tier::redact(&self.url))
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("lease_ttl", &self.lease_ttl)
            .field("retry_after", &self.retry_after)
            .field("warn_every", &self.warn_every)
            .finish()
    }
}

impl Config {
    /// The defaults for `url`: prefix `memokit`, timeout 50 ms, lease 5 s, retry after 1 s,
    /// warn every 10 s.
    ///
    /// The URL is `redis://[user:password@]host[:port][/db]`, `rediss://…` for TLS (feature
    /// `redis-tls`), or `redis+unix:///path/to/socket`.
    ///
    /// ```
    /// let config = memokit::redis::Config::new("redis://:secret@127.0.0.1:6379/2");
    /// assert_eq!(config.get_prefix(), "memokit");
    /// ```
    pub fn new(url: impl Into<String>) -> Config {
        Config {
            url: url.into(),
            prefix: "memokit".into(),
            timeout: Duration::from_millis(50),
            lease_ttl: Duration::from_secs(5),
            retry_after: Duration::from_secs(1),
            warn_every: Duration::from_secs(10),
        }
    }

    /// The first segment of every Redis key and of the events channel: applications with
    /// different prefixes share nothing on one server. No `:` in it.
    ///
    /// ```
    /// let config = memokit::redis::Config::new("redis://127.0.0.1").prefix("shop");
    /// assert_eq!(config.get_prefix(), "shop");
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Config {
        self.prefix = prefix.into();
        self
    }

    /// The configured prefix.
    ///
    /// ```
    /// assert_eq!(memokit::redis::Config::new("redis://127.0.0.1").get_prefix(), "memokit");
    /// ```
    pub fn get_prefix(&self) -> &str {
        &self.prefix
    }

    /// The longest a call waits for one Redis operation (connecting included) before it goes on
    /// without Redis (default 50 ms).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let config = memokit::redis::Config::new("redis://127.0.0.1").timeout(Duration::from_millis(10));
    /// # let _ = config;
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Config {
        self.timeout = timeout;
        self
    }

    /// How long a computing process holds a key's lease (default 5 s): if it dies, the others
    /// wait that long before one of them computes. A live holder extends it every third of
    /// this while it computes, however long that takes. Overridden per function by
    /// `redis(lease = "…")`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let config = memokit::redis::Config::new("redis://127.0.0.1").lease_ttl(Duration::from_secs(30));
    /// # let _ = config;
    /// ```
    pub fn lease_ttl(mut self, lease_ttl: Duration) -> Config {
        self.lease_ttl = lease_ttl;
        self
    }

    /// After a failed operation, Redis is not asked for this long (default 1 s): calls go
    /// straight to the in-process tier and the computation, without waiting for a timeout.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let config = memokit::redis::Config::new("redis://127.0.0.1").retry_after(Duration::from_millis(200));
    /// # let _ = config;
    /// ```
    pub fn retry_after(mut self, retry_after: Duration) -> Config {
        self.retry_after = retry_after;
        self
    }

    /// At most one "Redis is unreachable" warning per this interval (default 10 s).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let config = memokit::redis::Config::new("redis://127.0.0.1").warn_every(Duration::from_secs(60));
    /// # let _ = config;
    /// ```
    pub fn warn_every(mut self, warn_every: Duration) -> Config {
        self.warn_every = warn_every;
        self
    }
}

/// A Redis URL or configuration that cannot be used.
///
/// ```
/// assert!(memokit::redis::connect("not a url").is_err());
/// ```
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

static TIER: RwLock<Option<Arc<Tier>>> = RwLock::new(None);

/// Connects the process to Redis at `url` with the default [`Config`]; see
/// [`connect_with`].
///
/// ```no_run
/// memokit::redis::connect("redis://127.0.0.1:6379")?;
/// # Ok::<(), memokit::redis::Error>(())
/// ```
pub fn connect(url: &str) -> Result<(), Error> {
    connect_with(Config::new(url))
}

/// Connects the process to Redis: from now on, functions with the `redis` option use it.
///
/// Only the URL and the configuration are checked here: a server that is down is not an
/// error (calls run in-process until it is up). Connecting again replaces the previous
/// connection. Without any call, the first use of the tier reads `MEMOKIT_REDIS_URL`.
///
/// ```no_run
/// use std::time::Duration;
/// use memokit::redis::{connect_with, Config};
///
/// connect_with(Config::new("rediss://app:secret@cache.internal:6380/0")
///     .prefix("billing")
///     .timeout(Duration::from_millis(20)))?;
/// # Ok::<(), memokit::redis::Error>(())
/// ```
pub fn connect_with(config: Config) -> Result<(), Error> {
    if config.prefix.is_empty() || config.prefix.contains(':') {
        return Err(Error(format!(
            "the Redis prefix {:?} must be non-empty and have no `:`",
            config.prefix
        )));
    }
    let tier = new_tier(config)?;
    pubsub::start(&tier);
    ENV_READ.get_or_init(|| ());
    if let Some(old) = TIER.write().replace(tier) {
        old.closed.store(true, Relaxed);
    }
    Ok(())
}

/// Disconnects the process: functions with the `redis` option become in-process only (and
/// `MEMOKIT_REDIS_URL` is not read again).
///
/// ```
/// memokit::redis::disconnect();
/// assert!(!memokit::redis::is_connected());
/// ```
pub fn disconnect() {
    ENV_READ.get_or_init(|| ());
    if let Some(old) = TIER.write().take() {
        old.closed.store(true, Relaxed);
    }
}

/// Whether a Redis connection is configured (by [`connect`] or `MEMOKIT_REDIS_URL`); it says
/// nothing about whether the server answers.
///
/// ```
/// memokit::redis::disconnect();
/// assert!(!memokit::redis::is_connected());
/// ```
pub fn is_connected() -> bool {
    current().is_some()
}

/// Whether this process currently receives the invalidations of other processes (its
/// subscription to `prefix:events` is up).
///
/// ```no_run
/// memokit::redis::connect("redis://127.0.0.1:6379")?;
/// while !memokit::redis::is_subscribed() {
///     std::thread::sleep(std::time::Duration::from_millis(10));
/// }
/// # Ok::<(), memokit::redis::Error>(())
/// ```
pub fn is_subscribed() -> bool {
    current().is_some_and(|tier| tier.subscribed.load(Relaxed))
}

static ENV_READ: OnceLock<()> = OnceLock::new();

fn new_tier(config: Config) -> Result<Arc<Tier>, Error> {
    #[cfg(feature = "redis-tls")]
    {
        // rustls needs one process-wide crypto provider; keep the application's if it has one.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    Tier::new(config).map_err(|error| Error(format!("bad Redis URL: {error}")))
}

/// The tier of the process, connecting from `MEMOKIT_REDIS_URL` on first use.
pub(crate) fn current() -> Option<Arc<Tier>> {
    if ENV_READ.get().is_none() {
        ENV_READ.get_or_init(|| {
            if let Ok(url) = std::env::var("MEMOKIT_REDIS_URL") {
                if let Err(error) = connect_inner_from_env(&url) {
                    tracing::warn!(target: "memokit::redis", "MEMOKIT_REDIS_URL: {error}");
                }
            }
        });
    }
    TIER.read().clone()
}

fn connect_inner_from_env(url: &str) -> Result<(), Error> {
    let tier =
        Tier::new(Config::new(url)).map_err(|error| Error(format!("bad Redis URL: {error}")))?;
    pubsub::start(&tier);
    TIER.write().get_or_insert(tier);
    Ok(())
}

/// The L2 counters of one function.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) decode_errors: AtomicU64,
}

/// What one function keeps about the shared tier, whatever its types.
#[derive(Debug)]
pub(crate) struct FnState {
    pub(crate) ttl: Duration,
    pub(crate) lease: Option<Duration>,
    pub(crate) counters: Counters,
    /// (tier id, tier epoch, generation) last read or written.
    generation: Mutex<Option<(u64, u64, u64)>>,
}

impl FnState {
    /// The function's current generation in `tier`, read from Redis when not known.
    pub(crate) async fn generation(&self, tier: &Tier, name: &str) -> Result<u64, Unavailable> {
        let epoch = tier.epoch();
        if let Some((id, seen, generation)) = *self.generation.lock() {
            if id == tier.id && seen == epoch {
                return Ok(generation);
            }
        }
        let key = keys::generation(&tier.config.prefix, name);
        let read: Option<u64> = tier.query(redis::Cmd::get(key)).await?;
        let generation = read.unwrap_or(0);
        self.set_generation(tier, epoch, generation);
        Ok(generation)
    }

    fn set_generation(&self, tier: &Tier, epoch: u64, generation: u64) {
        let mut known = self.generation.lock();
        // A generation only grows; an older answer arriving late does not win.
        match *known {
            Some((id, seen, current)) if id == tier.id && seen == epoch && current > generation => {
            }
            _ => *known = Some((tier.id, epoch, generation)),
        }
    }

    fn forget_generation(&self) {
        *self.generation.lock() = None;
    }

    pub(crate) fn count(&self, unavailable: Unavailable) {
        if unavailable == Unavailable::Failed {
            self.counters.errors.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn add_to(&self, stats: &mut Stats) {
        stats.l2_hits += self.counters.hits.load(Relaxed);
        stats.l2_misses += self.counters.misses.load(Relaxed);
        stats.l2_errors += self.counters.errors.load(Relaxed);
        stats.l2_decode_errors += self.counters.decode_errors.load(Relaxed);
    }

    pub(crate) fn reset(&self) {
        for counter in [
            &self.counters.hits,
            &self.counters.misses,
            &self.counters.errors,
            &self.counters.decode_errors,
        ] {
            counter.store(0, Relaxed);
        }
    }
}

/// The shared tier of one function: its settings and the serde glue for its key and value
/// types. Built by `#[cached(redis(...))]`; not part of the stable API.
#[doc(hidden)]
pub struct Shared<K, V> {
    pub(crate) state: FnState,
    pub(crate) encode_key: fn(&K) -> Option<Vec<u8>>,
    pub(crate) decode_key: fn(&[u8]) -> Option<K>,
    pub(crate) encode_value: fn(&V) -> Option<Vec<u8>>,
    pub(crate) decode_value: fn(&[u8]) -> Option<V>,
}

impl<K, V> fmt::Debug for Shared<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("ttl", &self.state.ttl)
            .field("lease", &self.state.lease)
            .finish_non_exhaustive()
    }
}

/// The shared tier of a function with key `K` and value `V`: what `#[cached(redis(...))]`
/// expands to. Not part of the stable API.
#[doc(hidden)]
pub fn __shared<K, V>(ttl: Duration, lease: Option<Duration>) -> Shared<K, V>
where
    K: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    Shared {
        state: FnState {
            ttl,
            lease,
            counters: Counters::default(),
            generation: Mutex::new(None),
        },
        encode_key: codec::encode_key::<K>,
        decode_key: codec::decode_key::<K>,
        encode_value: codec::encode_value::<V>,
        decode_value: codec::decode_value::<V>,
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Shared<K, V> {
    /// `clear()` of a handle: a new generation, announced to the other processes.
    pub(crate) fn clear(&self, name: &str) {
        let Some(tier) = current() else { return };
        block_on(async {
            let key = keys::generation(&tier.config.prefix, name);
            let epoch = tier.epoch();
            match tier.query::<u64>(redis::Cmd::incr(key, 1)).await {
                Ok(generation) => {
                    self.state.set_generation(&tier, epoch, generation);
                    pubsub::publish(&tier, name, pubsub::Op::Clear { generation }).await;
                }
                Err(unavailable) => {
                    self.state.count(unavailable);
                    // Whatever the generation is, it is not known any more.
                    self.state.forget_generation();
                }
            }
        });
    }

    /// `invalidate(&key)` of a handle: the entry is deleted and the deletion announced.
    pub(crate) fn invalidate(&self, name: &str, key: &K) {
        let Some(tier) = current() else { return };
        let Some(key) = (self.encode_key)(key) else {
            return;
        };
        block_on(async {
            let result = async {
                let generation = self.state.generation(&tier, name).await?;
                let entry = keys::entry(&tier.config.prefix, name, generation, &key);
                tier.query::<()>(redis::Cmd::del(entry)).await
            }
            .await;
            match result {
                Ok(()) => pubsub::publish(&tier, name, pubsub::Op::Invalidate { key }).await,
                Err(unavailable) => self.state.count(unavailable),
            }
        });
    }

    /// `insert(key, value)` of a handle: the entry is written and announced.
    pub(crate) fn insert(&self, name: &str, key: &K, value: &V) {
        let Some(tier) = current() else { return };
        let (Some(key), Some(value)) = ((self.encode_key)(key), (self.encode_value)(value)) else {
            return;
        };
        block_on(async {
            let result = async {
                let generation = self.state.generation(&tier, name).await?;
                let entry = keys::entry(&tier.config.prefix, name, generation, &key);
                tier.query::<()>(set_px(entry, &value, self.state.ttl))
                    .await
            }
            .await;
            match result {
                Ok(()) => pubsub::publish(&tier, name, pubsub::Op::Insert { key, value }).await,
                Err(unavailable) => self.state.count(unavailable),
            }
        });
    }

    /// `insert_many` of a handle: every entry written, then announced, in one pipeline.
    pub(crate) fn insert_many(&self, name: &str, entries: &[(K, V)]) {
        let encoded = entries.iter().filter_map(|(key, value)| {
            Some(((self.encode_key)(key)?, (self.encode_value)(value)?))
        });
        let ops = encoded
            .map(|(key, value)| pubsub::Op::Insert { key, value })
            .collect();
        self.write_many(name, ops);
    }

    /// `invalidate_many` of a handle: every entry deleted, then announced, in one pipeline.
    pub(crate) fn invalidate_many(&self, name: &str, keys: &[K]) {
        let ops = keys
            .iter()
            .filter_map(|key| (self.encode_key)(key))
            .map(|key| pubsub::Op::Invalidate { key })
            .collect();
        self.write_many(name, ops);
    }

    /// Applies `ops` (inserts and invalidations) to Redis, then publishes them: one round trip.
    fn write_many(&self, name: &str, ops: Vec<pubsub::Op>) {
        let Some(tier) = current() else { return };
        if ops.is_empty() {
            return;
        }
        block_on(async {
            let generation = match self.state.generation(&tier, name).await {
                Ok(generation) => generation,
                Err(unavailable) => return self.state.count(unavailable),
            };
            let mut pipe = redis::pipe();
            for op in &ops {
                let write = match op {
                    pubsub::Op::Insert { key, value } => {
                        let entry = keys::entry(&tier.config.prefix, name, generation, key);
                        set_px(entry, value, self.state.ttl)
                    }
                    pubsub::Op::Invalidate { key } => {
                        redis::Cmd::del(keys::entry(&tier.config.prefix, name, generation, key))
                    }
                    pubsub::Op::Clear { .. } => continue,
                };
                pipe.add_command(write).ignore();
            }
            for op in ops {
                if let Some(publish) = pubsub::publish_cmd(&tier, name, op) {
                    pipe.add_command(publish).ignore();
                }
            }
            if let Err(unavailable) = tier.query_pipe::<()>(pipe).await {
                self.state.count(unavailable);
            }
        });
    }

    /// Applies another process's `clear`, `invalidate` or `insert` to the in-process tier.
    pub(crate) fn apply(&self, cache: &crate::Cache<K, V>, op: &RemoteOp<'_>) {
        match op {
            RemoteOp::Clear { tier, generation } => {
                cache.clear();
                self.state.set_generation(tier, tier.epoch(), *generation);
            }
            RemoteOp::Invalidate { key } => {
                if let Some(key) = (self.decode_key)(key) {
                    cache.invalidate(&key);
                }
            }
            RemoteOp::Insert { key, value } => {
                if let (Some(key), Some(value)) =
                    ((self.decode_key)(key), (self.decode_value)(value))
                {
                    cache.insert(key, value);
                } else if let Some(key) = (self.decode_key)(key) {
                    cache.invalidate(&key);
                }
            }
            RemoteOp::Resync => {
                cache.clear();
                self.state.forget_generation();
            }
        }
    }
}

/// `SET entry value PX ttl`.
/// A number no other process (and no other call in this one) is likely to draw: the process
/// id and the time, through a randomly keyed hasher.
pub(crate) fn unique_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos()),
    );
    hasher.finish()
}

pub(crate) fn set_px(entry: String, value: &[u8], ttl: Duration) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(entry)
        .arg(value)
        .arg("PX")
        .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
    cmd
}
