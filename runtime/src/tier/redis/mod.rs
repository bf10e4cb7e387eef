//! The Redis tier: [`Shared`], one function's view of Redis, implements [`Tier`]; the
//! process's connection (`connection`), the lease of the distributed single flight (`lease`),
//! cross-process invalidation (`pubsub`) and the key layout (the codec is the tiers' shared
//! `tier::codec`). What users configure
//! is re-exported by `crate::redis`, which also documents the behaviour.

mod connection;
mod keys;
mod lease;
mod pubsub;

use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use crate::cache::flight::Superseded;
use crate::cache::stats::Stats;
use crate::cache::Cache;
use crate::tier::codec::{Encoding, COMPRESS_ABOVE};
use crate::tier::{BlockingWork, Codec, Fetched, FoundMany, Tier, TierFuture, TierHandle};
pub(crate) use connection::{block_on, Connection, Unavailable};

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
    /// The node URLs of a cluster; `None` for one server at `url`.
    cluster: Option<Vec<String>>,
    prefix: String,
    timeout: Duration,
    lease_ttl: Duration,
    retry_after: Duration,
    warn_every: Duration,
    codec: Codec,
    compress_above: usize,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("url", &connection::redact(&self.url))
            .field(
                "cluster",
                &self.cluster.as_ref().map(|nodes| {
                    nodes
                        .iter()
                        .map(|node| connection::redact(node))
                        .collect::<Vec<_>>()
                }),
            )
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("lease_ttl", &self.lease_ttl)
            .field("retry_after", &self.retry_after)
            .field("warn_every", &self.warn_every)
            .field("codec", &self.codec)
            .field("compress_above", &self.compress_above)
            .finish()
    }
}

impl Config {
    /// The defaults for `url`: prefix `memokit`, timeout 50 ms, lease 5 s, retry after 1 s,
    /// warn every 10 s, codec postcard, compressed above 1 KiB.
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
            cluster: None,
            prefix: "memokit".into(),
            timeout: Duration::from_millis(50),
            lease_ttl: Duration::from_secs(5),
            retry_after: Duration::from_secs(1),
            warn_every: Duration::from_secs(10),
            codec: Codec::Postcard,
            compress_above: COMPRESS_ABOVE,
        }
    }

    /// A Redis Cluster (or a Valkey or managed cluster) reached through any of `nodes`, each a
    /// URL as for [`Config::new`]; the defaults are those of [`Config::new`].
    ///
    /// The `redis` crate's cluster client learns the rest of the cluster from them, routes
    /// every command to the node that owns its key's slot, and follows `MOVED`/`ASK` and
    /// failovers. All of one function's keys are spread over the whole cluster (see the
    /// module docs for the key layout); the invalidations are classic pub/sub, which a cluster
    /// delivers to every node. The nodes must agree on scheme, user and password; a list
    /// that is empty or does not parse is an error at [`connect_with`], a cluster that is
    /// down is not (calls run in-process until it is up).
    ///
    /// ```
    /// let config = memokit::redis::Config::cluster([
    ///     "redis://10.0.0.1:7000",
    ///     "redis://10.0.0.2:7000",
    ///     "redis://10.0.0.3:7000",
    /// ]);
    /// assert!(config.is_cluster());
    /// ```
    pub fn cluster<S: Into<String>>(nodes: impl IntoIterator<Item = S>) -> Config {
        let nodes: Vec<String> = nodes.into_iter().map(Into::into).collect();
        let mut config = Config::new(nodes.join(","));
        config.cluster = Some(nodes);
        config
    }

    /// Whether this configuration names a cluster ([`Config::cluster`]).
    ///
    /// ```
    /// assert!(!memokit::redis::Config::new("redis://127.0.0.1").is_cluster());
    /// ```
    pub fn is_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    fn cluster_nodes(&self) -> Option<&[String]> {
        self.cluster.as_deref()
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

    /// How the values of functions that name no codec are written (default
    /// [`Codec::Postcard`]); a function's `redis(codec = …)` overrides it. Values are read
    /// whichever codec wrote them, so processes may differ here.
    ///
    /// ```
    /// use memokit::redis::{Codec, Config};
    /// let config = Config::new("redis://127.0.0.1").codec(Codec::Json);
    /// assert_eq!(config.get_codec(), Codec::Json);
    /// ```
    pub fn codec(mut self, codec: Codec) -> Config {
        self.codec = codec;
        self
    }

    /// The default codec ([`Config::codec`]).
    ///
    /// ```
    /// use memokit::redis::{Codec, Config};
    /// assert_eq!(Config::new("redis://127.0.0.1").get_codec(), Codec::Postcard);
    /// ```
    pub fn get_codec(&self) -> Codec {
        self.codec
    }

    /// A postcard value of more than `bytes` bytes is stored compressed (one LZ4 block), when
    /// that makes it smaller (default 1,024; `usize::MAX`: never). Structured values of
    /// 1.7–300 KB were stored in 20–44 % of their postcard bytes (`bench/results/CODEC.md`);
    /// JSON values are never compressed, so that other languages read them as they are.
    ///
    /// ```
    /// use memokit::redis::Config;
    /// let config = Config::new("redis://127.0.0.1").compress_above(16 * 1024);
    /// assert_eq!(config.get_compress_above(), 16 * 1024);
    /// assert_eq!(Config::new("redis://127.0.0.1").get_compress_above(), 1024);
    /// ```
    pub fn compress_above(mut self, bytes: usize) -> Config {
        self.compress_above = bytes;
        self
    }

    /// The compression threshold ([`Config::compress_above`]).
    ///
    /// ```
    /// let config = memokit::redis::Config::new("redis://127.0.0.1").compress_above(usize::MAX);
    /// assert_eq!(config.get_compress_above(), usize::MAX); // never compressed
    /// ```
    pub fn get_compress_above(&self) -> usize {
        self.compress_above
    }
}

/// A Redis URL or configuration that cannot be used.
///
/// ```
/// use std::error::Error as _;
///
/// let error = memokit::redis::connect("not a url").unwrap_err();
/// assert!(error.to_string().starts_with("bad Redis URL: "));
/// assert!(error.source().is_some()); // the `redis` crate's own error
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The prefix is empty or holds a `:`, `{` or `}`.
    BadPrefix(String),
    /// The URL does not parse, or names what this build cannot use (the source says why).
    BadUrl(redis::RedisError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadPrefix(prefix) => write!(
                f,
                "the Redis prefix {prefix:?} must be non-empty and have no `:`, `{{` or `}}`"
            ),
            Error::BadUrl(error) => write!(f, "bad Redis URL: {error}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::BadPrefix(_) => None,
            Error::BadUrl(error) => Some(error),
        }
    }
}

static TIER: RwLock<Option<Arc<Connection>>> = RwLock::new(None);

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
    if config.prefix.is_empty() || config.prefix.contains([':', '{', '}']) {
        return Err(Error::BadPrefix(config.prefix));
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

fn new_tier(config: Config) -> Result<Arc<Connection>, Error> {
    #[cfg(feature = "redis-tls")]
    {
        // rustls needs one process-wide crypto provider; keep the application's if it has one.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    Connection::new(config).map_err(Error::BadUrl)
}

/// The tier of the process, connecting from `MEMOKIT_REDIS_URL` on first use.
pub(crate) fn current() -> Option<Arc<Connection>> {
    if ENV_READ.get().is_none() {
        ENV_READ.get_or_init(|| {
            if let Ok(nodes) = std::env::var("MEMOKIT_REDIS_CLUSTER") {
                let config = Config::cluster(nodes.split(',').map(str::trim));
                if let Err(error) = connect_inner_from_env(config) {
                    tracing::warn!(target: "memokit::redis", "MEMOKIT_REDIS_CLUSTER: {error}");
                }
            } else if let Ok(url) = std::env::var("MEMOKIT_REDIS_URL") {
                if let Err(error) = connect_inner_from_env(Config::new(url)) {
                    tracing::warn!(target: "memokit::redis", "MEMOKIT_REDIS_URL: {error}");
                }
            }
        });
    }
    TIER.read().clone()
}

fn connect_inner_from_env(config: Config) -> Result<(), Error> {
    let tier = new_tier(config)?;
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
    pub(crate) skipped: AtomicU64,
    pub(crate) replayed_writes: AtomicU64,
}

/// The most keys one function remembers to remove from Redis after an outage; one more, and
/// it starts a new generation instead (which removes them all, and everything else).
pub(crate) const MAX_PENDING_KEYS: usize = 1_024;

/// Writes of one function that did not reach Redis. Redis may still hold what they replaced,
/// so they are applied, as removals, before the function reads Redis again: an insert's value
/// is not kept (its key is deleted, and computed again when asked), an invalidation deletes,
/// a clear starts a new generation.
#[derive(Debug, Default)]
struct Pending {
    /// Encoded keys to delete, each with the number of the write that left it.
    keys: std::collections::HashMap<Vec<u8>, u64>,
    /// The number of a `clear` (or of an overflow of `keys`) to apply as a new generation.
    clear: Option<u64>,
    /// The number of the next write left here.
    next: u64,
}

impl Pending {
    fn len(&self) -> usize {
        self.keys.len() + usize::from(self.clear.is_some())
    }
}

/// How long before a failure of Redis a write it acknowledged is applied again: Redis
/// replicates asynchronously, so a master that dies may take writes it acknowledged but had not
/// passed to the replica that takes its place; writing them again (as removals) keeps them from
/// being undone.
pub(crate) const REDO_WINDOW: Duration = Duration::from_secs(2);

/// Writes of one function that Redis acknowledged within [`REDO_WINDOW`].
#[derive(Debug, Default)]
struct Recent {
    /// Encoded keys written or deleted, oldest first.
    keys: std::collections::VecDeque<(Instant, Vec<u8>)>,
    /// The last `clear` (or the last write forgotten past [`MAX_PENDING_KEYS`]): applied again
    /// as a new generation.
    clear: Option<Instant>,
}

/// What one function keeps about the shared tier, whatever its types.
#[derive(Debug)]
pub(crate) struct FnState {
    pub(crate) ttl: Duration,
    pub(crate) lease: Option<Duration>,
    /// `redis(codec = …)`; `None`: the connection's [`Config::codec`].
    pub(crate) codec: Option<Codec>,
    pub(crate) counters: Counters,
    /// (tier id, tier epoch, generation) last read or written.
    generation: Mutex<Option<(u64, u64, u64)>>,
    /// Writes that could not reach Redis yet.
    pending: Mutex<Pending>,
    /// Set while one caller applies `pending`, so that no other reads Redis meanwhile.
    replaying: AtomicBool,
    /// Writes acknowledged lately, applied again after a failure (see [`REDO_WINDOW`]).
    recent: Mutex<Recent>,
}

/// Clears [`FnState::replaying`] when the replay ends, however it ends.
struct Replaying<'a>(&'a AtomicBool);

impl Drop for Replaying<'_> {
    fn drop(&mut self) {
        self.0.store(false, SeqCst);
    }
}

/// `INCR` of a generation counter, but never to `ARGV[1]` or below (the highest generation the
/// caller has used): a lost counter starts again from 1.
const NEXT_GENERATION: &str = "local g = redis.call('incr', KEYS[1]) \
local floor = tonumber(ARGV[1]) \
if g <= floor then g = floor + 1 redis.call('set', KEYS[1], g) end return g";

/// Sets a generation counter behind `ARGV[1]` to one past it, and returns that; -1 if it was
/// not behind.
const MEND_GENERATION: &str = "local g = tonumber(redis.call('get', KEYS[1]) or '0') \
local seen = tonumber(ARGV[1]) \
if g >= seen then return -1 end redis.call('set', KEYS[1], seen + 1) return seen + 1";

impl FnState {
    /// The function's current generation in `tier`, read from Redis when not known.
    pub(crate) async fn generation(
        &self,
        tier: &Connection,
        name: &str,
    ) -> Result<u64, Unavailable> {
        let epoch = tier.epoch();
        if let Some(generation) = self.known_generation(tier) {
            return Ok(generation);
        }
        let key = keys::generation(&tier.config.prefix, name);
        let read: Option<u64> = tier.query(redis::Cmd::get(key)).await?;
        let generation = read.unwrap_or(0);
        self.set_generation(tier, epoch, generation);
        Ok(generation)
    }

    pub(crate) fn set_generation(&self, tier: &Connection, epoch: u64, generation: u64) {
        let mut known = self.generation.lock();
        // A generation only grows; an older answer arriving late does not win.
        match *known {
            Some((id, seen, current)) if id == tier.id && seen == epoch && current > generation => {
            }
            _ => *known = Some((tier.id, epoch, generation)),
        }
    }

    /// `value` encoded by `encode`; a value that does not encode (its `Serialize` failed) is
    /// counted among the errors, as the disk tier counts it.
    pub(crate) fn encoded<V>(
        &self,
        encode: fn(&V, Encoding) -> Option<Vec<u8>>,
        value: &V,
        encoding: Encoding,
    ) -> Option<Vec<u8>> {
        let bytes = encode(value, encoding);
        if bytes.is_none() {
            self.counters.errors.fetch_add(1, Relaxed);
        }
        bytes
    }

    /// The generation this process uses for the function on `tier`, if it knows one.
    pub(crate) fn known_generation(&self, tier: &Connection) -> Option<u64> {
        match *self.generation.lock() {
            Some((id, seen, generation)) if id == tier.id && seen == tier.epoch() => {
                Some(generation)
            }
            _ => None,
        }
    }

    /// A new generation for a `clear`: the counter's next value, and past every generation
    /// this process has used if the counter was lost meanwhile (a `FLUSHALL` or an eviction
    /// would otherwise give back one already used, whose entries written since would survive
    /// the clear).
    pub(crate) async fn next_generation(
        &self,
        tier: &Connection,
        name: &str,
    ) -> Result<u64, Unavailable> {
        let floor = match *self.generation.lock() {
            Some((id, _, generation)) if id == tier.id => generation,
            _ => 0,
        };
        let epoch = tier.epoch();
        let mut next = redis::cmd("EVAL");
        next.arg(NEXT_GENERATION)
            .arg(1)
            .arg(keys::generation(&tier.config.prefix, name))
            .arg(floor);
        let generation = tier.query::<u64>(next).await?;
        self.set_generation(tier, epoch, generation);
        Ok(generation)
    }

    /// Sets the generation counter past `seen` if it is behind it (it was lost): the new
    /// generation, or `None` when the counter was not behind.
    pub(crate) async fn mend_generation(
        &self,
        tier: &Connection,
        name: &str,
        seen: u64,
    ) -> Result<Option<u64>, Unavailable> {
        let mut mend = redis::cmd("EVAL");
        mend.arg(MEND_GENERATION)
            .arg(1)
            .arg(keys::generation(&tier.config.prefix, name))
            .arg(seen);
        let mended: i64 = tier.query(mend).await?;
        Ok(u64::try_from(mended).ok())
    }

    pub(crate) fn forget_generation(&self) {
        *self.generation.lock() = None;
    }

    pub(crate) fn count(&self, unavailable: Unavailable) {
        let counter = match unavailable {
            Unavailable::Skipped => &self.counters.skipped,
            Unavailable::Failed | Unavailable::Rejected => &self.counters.errors,
        };
        counter.fetch_add(1, Relaxed);
    }

    /// Remembers that the entries of `keys` (encoded) could not be written or deleted in
    /// Redis: they are deleted there before this function reads Redis again.
    pub(crate) fn defer_removal(&self, keys: impl IntoIterator<Item = Vec<u8>>) {
        let mut pending = self.pending.lock();
        for key in keys {
            let number = pending.next;
            pending.next += 1;
            pending.keys.insert(key, number);
        }
        if pending.keys.len() > MAX_PENDING_KEYS {
            // Too many to remember one by one: a new generation removes them all.
            pending.keys.clear();
            let number = pending.next;
            pending.next += 1;
            pending.clear = Some(number);
        }
    }

    /// Remembers that a `clear` could not reach Redis: a new generation is started there
    /// before this function reads Redis again.
    pub(crate) fn defer_clear(&self) {
        let mut pending = self.pending.lock();
        let number = pending.next;
        pending.next += 1;
        pending.keys.clear();
        pending.clear = Some(number);
    }

    /// Remembers writes of `keys` that Redis acknowledged, for [`FnState::redo_recent`].
    pub(crate) fn acknowledged(&self, keys: impl IntoIterator<Item = Vec<u8>>) {
        let now = Instant::now();
        let mut recent = self.recent.lock();
        while recent
            .keys
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > REDO_WINDOW)
        {
            recent.keys.pop_front();
        }
        recent.keys.extend(keys.into_iter().map(|key| (now, key)));
        if recent.keys.len() > MAX_PENDING_KEYS {
            // Too many to remember one by one: a new generation covers them all.
            recent.keys.clear();
            recent.clear = Some(now);
        }
    }

    /// Remembers a `clear` that Redis acknowledged, for [`FnState::redo_recent`].
    pub(crate) fn acknowledged_clear(&self) {
        let mut recent = self.recent.lock();
        recent.keys.clear();
        recent.clear = Some(Instant::now());
    }

    /// After a failure of Redis: the writes it acknowledged within [`REDO_WINDOW`] are left to
    /// apply again, as removals, before the function reads Redis again.
    pub(crate) fn redo_recent(&self) {
        let recent = std::mem::take(&mut *self.recent.lock());
        let now = Instant::now();
        let within = |at: Instant| now.duration_since(at) <= REDO_WINDOW;
        if recent.clear.is_some_and(within) {
            self.defer_clear();
        }
        let keys: Vec<Vec<u8>> = recent
            .keys
            .into_iter()
            .filter(|(at, _)| within(*at))
            .map(|(_, key)| key)
            .collect();
        if !keys.is_empty() {
            self.defer_removal(keys);
        }
    }

    /// Whether writes wait to be applied to Redis.
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.lock().len() > 0
    }

    /// Applies the writes that could not reach Redis (see [`Pending`]), and announces them to
    /// the other processes. `Ok` once none is left: only then may the function read Redis.
    pub(crate) async fn replay(&self, tier: &Connection, name: &str) -> Result<(), Unavailable> {
        let (keys, clear, upto) = {
            let pending = self.pending.lock();
            if pending.len() == 0 {
                return Ok(());
            }
            let keys: Vec<Vec<u8>> = pending.keys.keys().cloned().collect();
            (keys, pending.clear, pending.next)
        };
        if self.replaying.swap(true, SeqCst) {
            // Another caller applies them now: Redis is not to be read before it is done.
            return Err(Unavailable::Skipped);
        }
        let _replaying = Replaying(&self.replaying);
        let applied = if clear.is_some() {
            let generation = self.next_generation(tier, name).await?;
            self.acknowledged_clear();
            pubsub::publish(tier, name, generation, pubsub::Op::Clear { generation }).await;
            1
        } else {
            let generation = self.generation(tier, name).await?;
            let deletes = keys
                .iter()
                .flat_map(|key| {
                    let entry = keys::entry(&tier.config.prefix, name, generation, key);
                    revoking_lease((entry.clone(), redis::Cmd::del(entry)))
                })
                .collect();
            let announce = keys
                .iter()
                .filter_map(|key| {
                    let op = pubsub::Op::Invalidate { key: key.clone() };
                    pubsub::publish_cmd(tier, name, generation, op)
                })
                .collect();
            tier.write_all(deletes, announce).await?;
            self.acknowledged(keys.iter().cloned());
            keys.len()
        };
        // Writes left meanwhile (numbered from `upto` on) stay for the next replay.
        let mut pending = self.pending.lock();
        if clear.is_some() {
            // The new generation removed every entry older than it.
            pending.keys.retain(|_, number| *number >= upto);
        } else {
            for key in &keys {
                if pending.keys.get(key).is_some_and(|number| *number < upto) {
                    pending.keys.remove(key);
                }
            }
        }
        if pending.clear.is_some_and(|number| number < upto) {
            pending.clear = None;
        }
        drop(pending);
        self.counters
            .replayed_writes
            .fetch_add(applied as u64, Relaxed);
        Ok(())
    }

    pub(crate) fn add_to(&self, stats: &mut Stats) {
        stats.l2_hits += self.counters.hits.load(Relaxed);
        stats.l2_misses += self.counters.misses.load(Relaxed);
        stats.l2_errors += self.counters.errors.load(Relaxed);
        stats.l2_decode_errors += self.counters.decode_errors.load(Relaxed);
        stats.l2_skipped += self.counters.skipped.load(Relaxed);
        stats.l2_pending_writes += self.pending.lock().len() as u64;
        stats.l2_replayed_writes += self.counters.replayed_writes.load(Relaxed);
    }

    pub(crate) fn reset(&self) {
        for counter in [
            &self.counters.hits,
            &self.counters.misses,
            &self.counters.errors,
            &self.counters.decode_errors,
            &self.counters.skipped,
            &self.counters.replayed_writes,
        ] {
            counter.store(0, Relaxed);
        }
    }
}

/// The shared tier of one function: its settings and the serde glue for its key and value
/// types. Built by `#[cached(redis(...))]`; not part of the stable API.
#[doc(hidden)]
pub struct Shared<K, V> {
    /// Also held by the function's subscription to other processes' writes.
    pub(crate) state: Arc<FnState>,
    /// The function's registry name, from [`Tier::attach`].
    name: OnceLock<&'static str>,
    /// The tier in front of this one in a chain (the disk), which other processes' writes
    /// reach too.
    near: OnceLock<Arc<dyn Tier<K, V>>>,
    pub(crate) encode_key: fn(&K) -> Option<Vec<u8>>,
    pub(crate) decode_key: fn(&[u8]) -> Option<K>,
    pub(crate) encode_value: fn(&V, Encoding) -> Option<Vec<u8>>,
    pub(crate) decode_value: fn(&[u8]) -> Option<V>,
}

impl<K, V> fmt::Debug for Shared<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("ttl", &self.state.ttl)
            .field("lease", &self.state.lease)
            .field("codec", &self.state.codec)
            .finish_non_exhaustive()
    }
}

impl<K, V> Shared<K, V> {
    /// The shared tier of a function, with the codec of its key and value types.
    pub(crate) fn new(
        ttl: Duration,
        lease: Option<Duration>,
        codec: Option<Codec>,
        encode_key: fn(&K) -> Option<Vec<u8>>,
        decode_key: fn(&[u8]) -> Option<K>,
        encode_value: fn(&V, Encoding) -> Option<Vec<u8>>,
        decode_value: fn(&[u8]) -> Option<V>,
    ) -> Self {
        Shared {
            state: Arc::new(FnState {
                ttl,
                lease,
                codec,
                counters: Counters::default(),
                generation: Mutex::new(None),
                pending: Mutex::new(Pending::default()),
                replaying: AtomicBool::new(false),
                recent: Mutex::new(Recent::default()),
            }),
            name: OnceLock::new(),
            near: OnceLock::new(),
            encode_key,
            decode_key,
            encode_value,
            decode_value,
        }
    }

    /// The function's name in Redis keys and events; `None` before it is attached (which a
    /// memo does before any call), or when another function of the process has that name.
    pub(crate) fn name(&self) -> Option<&'static str> {
        self.name.get().copied()
    }

    /// How this function's values are written over `tier`: its own codec, else the
    /// connection's, and the connection's compression threshold.
    pub(crate) fn encoding(&self, tier: Option<&Connection>) -> Encoding {
        let config = tier.map(|tier| &tier.config);
        Encoding {
            codec: self
                .state
                .codec
                .or(config.map(|config| config.codec))
                .unwrap_or_default(),
            compress_above: config.map_or(COMPRESS_ABOVE, |config| config.compress_above),
        }
    }
}

impl<K, V> From<Shared<K, V>> for TierHandle<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn from(shared: Shared<K, V>) -> Self {
        TierHandle(Some(Box::new(shared)))
    }
}

impl<K, V> Tier<K, V> for Shared<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn attach(
        &self,
        name: &'static str,
        local: &Cache<K, V>,
        defined_at: &'static std::panic::Location<'static>,
    ) {
        let subscribed = pubsub::subscribe(Arc::new(pubsub::Subscriber {
            name,
            defined_at,
            local: local.clone(),
            near: self.near.get().cloned(),
            state: self.state.clone(),
            decode_key: self.decode_key,
            decode_value: self.decode_value,
        }));
        match subscribed {
            Ok(()) => {
                let _ = self.name.set(name);
            }
            // Sharing entries, the two would return each other's values: this one stays
            // in-process (its name is never set, so it never talks to Redis).
            Err(first) => tracing::error!(
                target: "memokit::redis",
                "two functions are named {name:?}, at {first} and at {defined_at}: they would \
                 read each other's entries in Redis, so the one at {defined_at} does not use \
                 Redis (in-process only). Give one of them another `name = \"…\"`."
            ),
        }
    }

    fn get<'a>(&'a self, key: &'a K, superseded: &'a Superseded<V>) -> TierFuture<'a, Fetched<V>> {
        Box::pin(lease::fetch(self, key, superseded.is_refresh()))
    }

    fn forward_remote_writes(&self, near: Arc<dyn Tier<K, V>>) {
        let _ = self.near.set(near);
    }

    fn get_many<'a>(
        &'a self,
        keys: &'a [K],
        _superseded: &'a [Superseded<V>],
    ) -> TierFuture<'a, FoundMany<K, V>> {
        Box::pin(lease::fetch_many(self, keys))
    }

    fn put(&self, key: &K, value: &V) {
        self.insert(key, value);
    }

    fn put_many(&self, entries: &[(K, V)]) {
        self.insert_many(entries);
    }

    fn remove(&self, key: &K) {
        self.invalidate(key);
    }

    fn remove_many(&self, keys: &[K]) {
        self.invalidate_many(keys);
    }

    fn clear(&self) {
        Shared::clear(self);
    }

    fn add_stats(&self, stats: &mut Stats) {
        self.state.add_to(stats);
    }

    fn reset_stats(&self) {
        self.state.reset();
    }

    fn block_on(&self, work: BlockingWork<'_>) {
        block_on(work);
    }
}

/// What a batch's look read Redis with: the connection, and each key's entry name (`None`
/// for a key that does not encode).
pub(crate) type Read = (Arc<Connection>, Vec<Option<String>>);

impl<K, V> Shared<K, V> {
    /// The entry names of `keys` (encoded) in the function's current generation, after the
    /// writes an outage kept from Redis; `None` when Redis is not to be read now.
    async fn entries_of<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k K>,
    ) -> Option<(Arc<Connection>, Vec<Option<String>>)>
    where
        K: 'k,
    {
        let name = self.name()?;
        let tier = current()?;
        if !tier.available() {
            self.state.count(Unavailable::Skipped);
            return None;
        }
        let generation = match self.state.replay(&tier, name).await {
            Ok(()) => self.state.generation(&tier, name).await,
            Err(unavailable) => Err(unavailable),
        };
        let generation = match generation {
            Ok(generation) => generation,
            Err(unavailable) => {
                self.state.count(unavailable);
                return None;
            }
        };
        let entries = keys
            .into_iter()
            .map(|key| {
                (self.encode_key)(key)
                    .map(|key| keys::entry(&tier.config.prefix, name, generation, &key))
            })
            .collect();
        Some((tier, entries))
    }

    /// A batch's look at Redis: one `GET` per key, in one round trip per slot; with the
    /// connection and each key's entry name when Redis was read.
    pub(crate) async fn read_many(&self, keys: &[K]) -> (Vec<Option<V>>, Option<Read>) {
        let mut found: Vec<Option<V>> = keys.iter().map(|_| None).collect();
        let Some((tier, entries)) = self.entries_of(keys).await else {
            return (found, None);
        };
        let asked: Vec<(usize, String)> = entries
            .iter()
            .enumerate()
            .filter_map(|(at, entry)| Some((at, entry.clone()?)))
            .collect();
        let names = asked.iter().map(|(_, entry)| entry.clone()).collect();
        match tier.read_all(names).await {
            Ok(values) => {
                for ((at, _), bytes) in asked.into_iter().zip(values) {
                    let value = bytes.and_then(|bytes| {
                        let value = (self.decode_value)(&bytes);
                        if value.is_none() {
                            self.state.counters.decode_errors.fetch_add(1, Relaxed);
                        }
                        value
                    });
                    let counter = match value {
                        Some(_) => &self.state.counters.hits,
                        None => &self.state.counters.misses,
                    };
                    counter.fetch_add(1, Relaxed);
                    found[at] = value;
                }
                (found, Some((tier, entries)))
            }
            Err(unavailable) => {
                self.state.count(unavailable);
                (found, None)
            }
        }
    }

    /// `clear()` of a handle: a new generation, announced to the other processes. Left for
    /// later (see `FnState::replay`) when Redis cannot be reached.
    pub(crate) fn clear(&self) {
        let (Some(name), Some(tier)) = (self.name(), current()) else {
            return;
        };
        block_on(async {
            let result = async {
                self.state.replay(&tier, name).await?;
                let generation = self.state.next_generation(&tier, name).await?;
                self.state.acknowledged_clear();
                Ok(generation)
            }
            .await;
            match result {
                Ok(generation) => {
                    let clear = pubsub::Op::Clear { generation };
                    pubsub::publish(&tier, name, generation, clear).await;
                }
                Err(unavailable) => {
                    self.state.count(unavailable);
                    // Whatever the generation is, it is not known any more.
                    self.state.forget_generation();
                    self.state.defer_clear();
                }
            }
        });
    }

    /// `invalidate(&key)` of a handle: the entry is deleted and the deletion announced.
    pub(crate) fn invalidate(&self, key: &K) {
        let Some(key) = (self.encode_key)(key) else {
            return;
        };
        self.write_many(vec![pubsub::Op::Invalidate { key }]);
    }

    /// `insert(key, value)` of a handle: the entry is written and announced.
    pub(crate) fn insert(&self, key: &K, value: &V) {
        let Some(key) = (self.encode_key)(key) else {
            return;
        };
        let encoding = self.encoding(current().as_deref());
        let op = match self.state.encoded(self.encode_value, value, encoding) {
            Some(value) => pubsub::Op::Insert { key, value },
            // Not storable: Redis must not keep the value this one replaces.
            None => pubsub::Op::Invalidate { key },
        };
        self.write_many(vec![op]);
    }

    /// `insert_many` of a handle: every entry written, then announced, in one pipeline.
    pub(crate) fn insert_many(&self, entries: &[(K, V)]) {
        let encoding = self.encoding(current().as_deref());
        let ops = entries
            .iter()
            .filter_map(|(key, value)| {
                let key = (self.encode_key)(key)?;
                Some(
                    match self.state.encoded(self.encode_value, value, encoding) {
                        Some(value) => pubsub::Op::Insert { key, value },
                        None => pubsub::Op::Invalidate { key },
                    },
                )
            })
            .collect();
        self.write_many(ops);
    }

    /// `invalidate_many` of a handle: every entry deleted, then announced, in one pipeline.
    pub(crate) fn invalidate_many(&self, keys: &[K]) {
        let ops = keys
            .iter()
            .filter_map(|key| (self.encode_key)(key))
            .map(|key| pubsub::Op::Invalidate { key })
            .collect();
        self.write_many(ops);
    }

    /// Applies `ops` (inserts and invalidations) to Redis, then publishes them: one round trip.
    /// When Redis cannot be reached, their keys are left to delete later (`FnState::replay`),
    /// so that Redis never serves what they replaced.
    fn write_many(&self, ops: Vec<pubsub::Op>) {
        let (Some(name), Some(tier)) = (self.name(), current()) else {
            return;
        };
        if ops.is_empty() {
            return;
        }
        block_on(async {
            let written = async {
                self.state.replay(&tier, name).await?;
                let generation = self.state.generation(&tier, name).await?;
                let writes = ops
                    .iter()
                    .filter_map(|op| match op {
                        pubsub::Op::Insert { key, value } => {
                            let entry = keys::entry(&tier.config.prefix, name, generation, key);
                            Some((entry.clone(), set_px(entry, value, self.state.ttl)))
                        }
                        pubsub::Op::Invalidate { key } => {
                            let entry = keys::entry(&tier.config.prefix, name, generation, key);
                            Some((entry.clone(), redis::Cmd::del(entry)))
                        }
                        pubsub::Op::Clear { .. } => None,
                    })
                    .flat_map(revoking_lease)
                    .collect();
                let announce = ops
                    .iter()
                    .filter_map(|op| pubsub::publish_cmd(&tier, name, generation, op.clone()))
                    .collect();
                tier.write_all(writes, announce).await
            }
            .await;
            let keys = ops.into_iter().filter_map(|op| match op {
                pubsub::Op::Insert { key, .. } | pubsub::Op::Invalidate { key } => Some(key),
                pubsub::Op::Clear { .. } => None,
            });
            if let Err(unavailable) = written {
                self.state.count(unavailable);
                self.state.defer_removal(keys);
            } else {
                self.state.acknowledged(keys);
            }
        });
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

/// A write of `entry` (a `SET` or a `DEL`) and the deletion of its lease, which it goes with
/// in one pipeline (one slot: the lease shares the entry's hash tag): a computation that
/// started before the write, in any process, holds that lease, and its write-back, which
/// checks the lease, then stores nothing. Without it, such a computation's older value could
/// land after this write and stay for the whole Redis ttl.
fn revoking_lease((entry, write): (String, redis::Cmd)) -> [(String, redis::Cmd); 2] {
    let lease = keys::lease(&entry);
    [(entry, write), (lease.clone(), redis::Cmd::del(lease))]
}

pub(crate) fn set_px(entry: String, value: &[u8], ttl: Duration) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(entry)
        .arg(value)
        .arg("PX")
        .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> FnState {
        FnState {
            ttl: Duration::from_secs(1),
            lease: None,
            codec: None,
            counters: Counters::default(),
            generation: Mutex::new(None),
            pending: Mutex::new(Pending::default()),
            replaying: AtomicBool::new(false),
            recent: Mutex::new(Recent::default()),
        }
    }

    #[test]
    fn pending_removals_past_the_bound_become_one_new_generation() {
        let state = state();
        let key = |n: usize| n.to_le_bytes().to_vec();
        state.defer_removal((0..MAX_PENDING_KEYS).map(key));
        state.defer_removal([key(0)]);
        assert_eq!(state.pending.lock().len(), MAX_PENDING_KEYS, "a key once");
        assert!(state.pending.lock().clear.is_none());
        state.defer_removal([key(MAX_PENDING_KEYS)]);
        let pending = state.pending.lock();
        assert_eq!((pending.keys.len(), pending.len()), (0, 1));
        assert!(pending.clear.is_some(), "one more key: a new generation");
    }

    #[test]
    fn acknowledged_writes_are_applied_again_after_a_failure() {
        let state = state();
        state.acknowledged([vec![1], vec![2]]);
        state.redo_recent();
        assert_eq!(
            state.pending.lock().len(),
            2,
            "both keys wait to be deleted again"
        );
        state.redo_recent();
        assert_eq!(state.pending.lock().len(), 2, "taken once");
        let state = self::state();
        state.acknowledged([vec![1]]);
        state.acknowledged_clear();
        state.acknowledged([vec![3]]);
        state.redo_recent();
        let pending = state.pending.lock();
        assert!(pending.clear.is_some(), "the clear is applied again");
        assert_eq!(pending.keys.keys().collect::<Vec<_>>(), [&vec![3]]);
    }

    #[test]
    fn a_pending_clear_replaces_earlier_removals_only() {
        let state = state();
        state.defer_removal([vec![1]]);
        state.defer_clear();
        state.defer_removal([vec![2]]);
        let pending = state.pending.lock();
        assert_eq!(pending.keys.keys().collect::<Vec<_>>(), [&vec![2]]);
        assert_eq!(pending.len(), 2);
    }
}
