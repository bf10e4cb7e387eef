//! The process's connection to Redis, one server or a cluster: one multiplexed connection
//! driven by a dedicated runtime thread, a circuit breaker and a rate-limited warning.
//!
//! Every operation is a task on the tier's own current-thread runtime (thread `memokit-redis`)
//! over the multiplexed connection, bounded as a whole by the configured timeout; callers await
//! its join handle (async functions, on any executor) or park until it is done. So async
//! functions with the shared tier need no tokio runtime of their own, and the connection
//! outlives the runtimes of callers (e.g. one per `#[tokio::test]`).
//!
//! One shortcut: a single command of a sync function (one run under [`block_on`]) against one
//! server goes straight to Redis from the caller's thread, over an idle blocking connection of
//! a small pool whose reads and writes are bounded by the timeout: an L2 hit costs one round
//! trip and no thread hand-off. The pool is only ever filled in the background, so a caller
//! never waits for a connection's set-up (which may take several round trips), and pipelines
//! never take the shortcut (a blocking connection would wait the timeout once per reply).
//!
//! On a cluster, the `redis` crate's cluster client routes each command to the node of its
//! key's slot and follows `MOVED`/`ASK` and topology changes; a pipeline may only hold keys of
//! one slot, so [`Connection::write_all`] sends one per slot.

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::Slot;
use redis::{FromRedisValue, RedisFuture, Value};

use super::Config;

/// Why a Redis operation gave no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unavailable {
    /// The circuit is open after a recent failure: Redis was not asked.
    Skipped,
    /// Redis failed, timed out or could not be reached (counted in `l2_errors`).
    Failed,
    /// Redis answered, with an error about this command's key alone (a key someone wrote
    /// with another type: `WRONGTYPE`, or a reply of an unexpected type). The connection
    /// works, so the circuit stays closed for every other key and function (counted in
    /// `l2_errors`).
    Rejected,
}

/// Whether `error` is Redis's answer about one command's key, rather than a sign that Redis
/// cannot be reached or used: such an error must not open the circuit for everyone.
fn rejected_command(error: &redis::RedisError) -> bool {
    if error.kind() == redis::ErrorKind::UnexpectedReturnType {
        return true;
    }
    error.clone().into_server_errors().is_some_and(|errors| {
        !errors.is_empty() && errors.iter().all(|(_, error)| error.code() == "WRONGTYPE")
    })
}

/// One connected (or connecting) Redis server or cluster.
pub(crate) struct Connection {
    /// Unique per `connect`, so that cached generations of an earlier tier are not reused.
    pub(crate) id: u64,
    pub(crate) config: Config,
    server: Server,
    /// The servers the subscriber may listen on, tried in turn: the one server, or every
    /// configured node of a cluster (a `PUBLISH` on any node of a cluster reaches every node).
    pub(crate) listen_on: Vec<redis::Client>,
    /// Bumped on every failure: generations read before it are read again.
    epoch: AtomicU64,
    /// Nanoseconds since `started` before which Redis is not asked (circuit breaker).
    open_until: AtomicU64,
    last_warning: AtomicU64,
    started: Instant,
    /// Set when replaced by another `connect` or by `disconnect`: the subscriber stops.
    pub(crate) closed: AtomicBool,
    /// Whether the subscriber currently listens to the events channel.
    pub(crate) subscribed: AtomicBool,
}

/// Where the tier's commands go.
enum Server {
    /// One Redis server: a multiplexed connection, and blocking ones for sync callers.
    Node {
        manager: ConnectionManager,
        pool: Arc<Pool>,
    },
    /// A Redis Cluster.
    Cluster(Arc<ClusterLink>),
}

/// Idle blocking connections to one server, for sync callers (at most [`POOL`]).
struct Pool {
    client: redis::Client,
    timeout: Duration,
    idle: Mutex<Vec<redis::Connection>>,
    /// Set while a connection is being made in the background.
    filling: AtomicBool,
}

impl Pool {
    /// Makes one more idle connection on a blocking thread of the tier's runtime, unless one is
    /// being made already.
    fn fill(self: &Arc<Self>) {
        if self.filling.swap(true, Relaxed) {
            return;
        }
        let Some(runtime) = runtime() else {
            self.filling.store(false, Relaxed);
            return;
        };
        let pool = self.clone();
        runtime.spawn_blocking(move || {
            let timeout = pool.timeout.max(Duration::from_millis(1));
            let made = pool.client.get_connection_with_timeout(timeout);
            if let Ok(connection) = made {
                pool.keep(connection);
            }
            pool.filling.store(false, Relaxed);
        });
    }

    /// Puts a connection that answered (back) in the pool, if there is room.
    fn keep(&self, connection: redis::Connection) {
        let timeout = Some(self.timeout.max(Duration::from_millis(1)));
        if connection.set_read_timeout(timeout).is_err()
            || connection.set_write_timeout(timeout).is_err()
        {
            return;
        }
        let mut idle = self.idle.lock();
        if idle.len() < POOL {
            idle.push(connection);
        }
    }
}

/// A cluster client and its multiplexed connection, made on first use (and again after a
/// failed attempt), so that a cluster that is down at `connect` is not an error.
struct ClusterLink {
    client: ClusterClient,
    connection: Mutex<Option<ClusterConnection>>,
}

impl ClusterLink {
    async fn connection(&self) -> redis::RedisResult<ClusterConnection> {
        if let Some(connection) = self.connection.lock().clone() {
            return Ok(connection);
        }
        let connection = self.client.get_async_connection().await?;
        Ok(self.connection.lock().get_or_insert(connection).clone())
    }
}

/// A multiplexed connection to the server or the cluster, for one operation.
#[derive(Clone)]
pub(crate) enum Multiplexed {
    Node(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Multiplexed {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> RedisFuture<'a, Value> {
        match self {
            Multiplexed::Node(manager) => manager.req_packed_command(cmd),
            Multiplexed::Cluster(cluster) => cluster.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Multiplexed::Node(manager) => manager.req_packed_commands(pipeline, offset, count),
            Multiplexed::Cluster(cluster) => cluster.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Multiplexed::Node(manager) => manager.get_db(),
            Multiplexed::Cluster(cluster) => cluster.get_db(),
        }
    }
}

impl Server {
    /// Forgets a cluster's connection after a failure: the next operation, after the circuit's
    /// `retry_after`, connects again and learns the topology afresh from the configured nodes
    /// (after a failover, the connection kept could go on asking the dead node).
    fn reset(&self) {
        if let Server::Cluster(link) = self {
            link.connection.lock().take();
        }
    }

    /// The multiplexed connection, as a future that owns what it needs (to run as a task).
    fn multiplexed(
        &self,
    ) -> impl Future<Output = redis::RedisResult<Multiplexed>> + Send + 'static {
        let server = match self {
            Server::Node { manager, .. } => Ok(manager.clone()),
            Server::Cluster(link) => Err(link.clone()),
        };
        async move {
            match server {
                Ok(manager) => Ok(Multiplexed::Node(manager)),
                Err(link) => link.connection().await.map(Multiplexed::Cluster),
            }
        }
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("url", &redact(&self.config.url))
            .field("prefix", &self.config.prefix)
            .finish_non_exhaustive()
    }
}

/// The runtime that drives every Redis connection of the process.
fn runtime() -> Option<&'static tokio::runtime::Handle> {
    static RUNTIME: OnceLock<Option<tokio::runtime::Handle>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            let handle = runtime.handle().clone();
            thread::Builder::new()
                .name("memokit-redis".into())
                .spawn(move || runtime.block_on(std::future::pending::<()>()))
                .ok()?;
            Some(handle)
        })
        .as_ref()
}

impl Connection {
    pub(crate) fn new(config: Config) -> Result<Arc<Connection>, redis::RedisError> {
        static IDS: AtomicU64 = AtomicU64::new(1);
        let Some(runtime) = runtime() else {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "memokit could not start its Redis runtime thread",
            )));
        };
        let (server, listen_on) = match config.cluster_nodes() {
            None => {
                let client = redis::Client::open(config.url.as_str())?;
                let manager_config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(config.timeout))
                    .set_response_timeout(Some(config.timeout))
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(10))
                    .set_max_delay(config.retry_after);
                let manager = {
                    let _entered = runtime.enter();
                    ConnectionManager::new_lazy_with_config(client.clone(), manager_config)?
                };
                let pool = Arc::new(Pool {
                    client: client.clone(),
                    timeout: config.timeout,
                    idle: Mutex::new(Vec::new()),
                    filling: AtomicBool::new(false),
                });
                (Server::Node { manager, pool }, vec![client])
            }
            Some([]) => {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "a cluster needs the URL of at least one of its nodes",
                )));
            }
            Some(nodes) => {
                let listen_on = nodes
                    .iter()
                    .map(|node| redis::Client::open(node.as_str()))
                    .collect::<Result<Vec<_>, _>>()?;
                let client = ClusterClient::builder(nodes.iter().map(String::as_str))
                    .connection_timeout(config.timeout)
                    .response_timeout(config.timeout)
                    .retries(2)
                    .min_retry_wait(5)
                    .max_retry_wait(u64::try_from(config.timeout.as_millis()).unwrap_or(u64::MAX))
                    .build()?;
                let link = Arc::new(ClusterLink {
                    client,
                    connection: Mutex::new(None),
                });
                (Server::Cluster(link), listen_on)
            }
        };
        Ok(Arc::new(Connection {
            id: IDS.fetch_add(1, Relaxed),
            config,
            server,
            listen_on,
            epoch: AtomicU64::new(0),
            open_until: AtomicU64::new(0),
            last_warning: AtomicU64::new(0),
            started: Instant::now(),
            closed: AtomicBool::new(false),
            subscribed: AtomicBool::new(false),
        }))
    }

    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Whether Redis may be asked now (the circuit is closed).
    pub(crate) fn available(&self) -> bool {
        self.now() >= self.open_until.load(Relaxed)
    }

    /// Bumped by failures; a generation read in an earlier epoch is read again.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Relaxed)
    }

    /// Records a failure: opens the circuit for `retry_after` and warns, at most once per
    /// `warn_every`.
    pub(crate) fn failed(&self, what: &dyn std::fmt::Display) {
        self.server.reset();
        // What Redis acknowledged just before may be lost with a master that died (replication
        // is asynchronous): the functions write it again before they read Redis.
        super::pubsub::redo_recent_writes();
        let now = self.now();
        let retry = u64::try_from(self.config.retry_after.as_nanos()).unwrap_or(u64::MAX);
        self.open_until.store(now.saturating_add(retry), Relaxed);
        self.epoch.fetch_add(1, Relaxed);
        let every = u64::try_from(self.config.warn_every.as_nanos()).unwrap_or(u64::MAX);
        let last = self.last_warning.load(Relaxed);
        if (last == 0 || now.saturating_sub(last) >= every)
            && self
                .last_warning
                .compare_exchange(last, now.max(1), Relaxed, Relaxed)
                .is_ok()
        {
            tracing::warn!(
                target: "memokit::redis",
                "Redis at {} is unreachable ({what}): serving from the in-process tier and computing \
                 meanwhile; retrying in {:?}",
                redact(&self.config.url),
                self.config.retry_after,
            );
        }
    }

    /// Runs `query` on an idle blocking connection from the calling thread, bounded by the
    /// timeout. `None` when it should go the multiplexed way instead: no idle connection (one
    /// is made in the background), a cluster, or a connection that failed for another reason
    /// than a timeout (the server closed it, e.g. after a restart), so the answer is not known
    /// yet.
    fn run_direct<T: FromRedisValue>(
        &self,
        query: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Option<Result<T, Unavailable>> {
        let Server::Node { pool, .. } = &self.server else {
            return None;
        };
        let Some(mut connection) = pool.idle.lock().pop() else {
            pool.fill();
            return None;
        };
        let answer = query(&mut connection);
        // A rejected command leaves the connection as good as an answer does.
        if answer.as_ref().is_ok() || answer.as_ref().is_err_and(rejected_command) {
            pool.keep(connection);
        }
        match answer {
            Ok(value) => Some(Ok(value)),
            Err(error) if rejected_command(&error) => Some(Err(Unavailable::Rejected)),
            Err(error) if !error.is_timeout() => None,
            Err(error) => {
                self.failed(&error);
                Some(Err(Unavailable::Failed))
            }
        }
    }

    /// Runs `op` on the tier's runtime, bounded by the timeout. Skipped while the circuit is
    /// open; a failure opens it.
    async fn run<T, F>(
        &self,
        op: impl FnOnce(Multiplexed) -> F + Send + 'static,
    ) -> Result<T, Unavailable>
    where
        T: Send + 'static,
        F: Future<Output = redis::RedisResult<T>> + Send + 'static,
    {
        if !self.available() {
            return Err(Unavailable::Skipped);
        }
        let Some(runtime) = runtime() else {
            return Err(Unavailable::Skipped);
        };
        let timeout = self.config.timeout;
        let connection = self.server.multiplexed();
        let task = async move { op(connection.await?).await };
        let joined = runtime
            .spawn(async move { tokio::time::timeout(timeout, task).await })
            .await;
        match joined {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(error))) if rejected_command(&error) => Err(Unavailable::Rejected),
            Ok(Ok(Err(error))) => {
                self.failed(&error);
                Err(Unavailable::Failed)
            }
            Ok(Err(_)) => {
                self.failed(&format!("no answer within {timeout:?}"));
                Err(Unavailable::Failed)
            }
            Err(error) => {
                self.failed(&error);
                Err(Unavailable::Failed)
            }
        }
    }

    /// One command: directly from a sync caller's thread when it can, else on the tier's
    /// runtime.
    pub(crate) async fn query<T>(&self, cmd: redis::Cmd) -> Result<T, Unavailable>
    where
        T: FromRedisValue + Send + 'static,
    {
        if in_block_on() {
            if !self.available() {
                return Err(Unavailable::Skipped);
            }
            if let Some(result) = self.run_direct(|connection| cmd.query::<T>(connection)) {
                return result;
            }
        }
        self.run(|mut conn| async move { cmd.query_async::<T>(&mut conn).await })
            .await
    }

    /// Several commands on keys of one slot, in one round trip on the tier's runtime.
    pub(crate) async fn query_pipe<T>(&self, pipe: redis::Pipeline) -> Result<T, Unavailable>
    where
        T: FromRedisValue + Send + 'static,
    {
        self.run(|mut conn| async move { pipe.query_async::<T>(&mut conn).await })
            .await
    }

    /// The values of `entries` (`None` for each that is missing), within one timeout: one
    /// pipeline on a server, one per slot on a cluster.
    pub(crate) async fn read_all(
        &self,
        entries: Vec<String>,
    ) -> Result<Vec<Option<Vec<u8>>>, Unavailable> {
        let gets = entries
            .into_iter()
            .map(|entry| {
                let get = redis::Cmd::get(&entry);
                (entry, get)
            })
            .collect();
        self.query_all(gets).await
    }

    /// The answers of `commands` (each with the key it is about), in order, within one
    /// timeout: one pipeline on a server, one per slot on a cluster, all sent at once.
    pub(crate) async fn query_all<T>(
        &self,
        commands: Vec<(String, redis::Cmd)>,
    ) -> Result<Vec<T>, Unavailable>
    where
        T: FromRedisValue + Send + 'static,
    {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        if let Server::Node { .. } = self.server {
            let mut pipe = redis::pipe();
            for (_, cmd) in commands {
                pipe.add_command(cmd);
            }
            return self.query_pipe(pipe).await;
        }
        let mut by_slot: HashMap<Slot, (Vec<usize>, redis::Pipeline)> = HashMap::new();
        for (at, (key, cmd)) in commands.into_iter().enumerate() {
            let (places, pipe) = by_slot.entry(Slot::for_key(key)).or_default();
            places.push(at);
            pipe.add_command(cmd);
        }
        let (places, pipes): (Vec<Vec<usize>>, Vec<redis::Pipeline>) =
            by_slot.into_values().unzip();
        self.run(move |conn| async move {
            let answers = all_at_once::<Vec<T>>(&conn, pipes).await?;
            let mut placed: Vec<(usize, T)> = places
                .into_iter()
                .flatten()
                .zip(answers.into_iter().flatten())
                .collect();
            placed.sort_unstable_by_key(|(at, _)| *at);
            Ok(placed.into_iter().map(|(_, answer)| answer).collect())
        })
        .await
    }

    /// Writes (each with the key it writes), then the commands that announce them, all within
    /// one timeout: one pipeline on a server; on a cluster, one pipeline per slot, all sent at
    /// once, and the announcements once every write is done (so that no other process hears of
    /// a write before Redis holds it).
    pub(crate) async fn write_all(
        &self,
        writes: Vec<(String, redis::Cmd)>,
        announce: Vec<redis::Cmd>,
    ) -> Result<(), Unavailable> {
        if let Server::Node { .. } = self.server {
            let mut pipe = redis::pipe();
            for cmd in writes.into_iter().map(|(_, cmd)| cmd).chain(announce) {
                pipe.add_command(cmd).ignore();
            }
            return self.query_pipe::<()>(pipe).await;
        }
        let mut by_slot: HashMap<Slot, redis::Pipeline> = HashMap::new();
        for (key, cmd) in writes {
            by_slot
                .entry(Slot::for_key(key))
                .or_default()
                .add_command(cmd)
                .ignore();
        }
        // The announcements after the writes (a process that hears one reads Redis again), all
        // at once too: one after the other, a few hundred of them took longer than a timeout.
        let announce = announce
            .into_iter()
            .map(|cmd| {
                let mut pipe = redis::pipe();
                pipe.add_command(cmd).ignore();
                pipe
            })
            .collect();
        self.run(|conn| async move {
            all_at_once::<()>(&conn, by_slot.into_values().collect()).await?;
            all_at_once::<()>(&conn, announce).await?;
            Ok(())
        })
        .await
    }

    /// Sleeps on the tier's runtime (so that the caller needs none), or on the caller's thread
    /// for a sync caller.
    pub(crate) async fn sleep(&self, duration: Duration) {
        if in_block_on() {
            thread::sleep(duration);
            return;
        }
        match runtime() {
            Some(runtime) => {
                let _ = runtime
                    .spawn(async move { tokio::time::sleep(duration).await })
                    .await;
            }
            None => thread::sleep(duration),
        }
    }

    /// Runs `task` on the tier's runtime with a connection, in the background (a lease's
    /// keep-alive); `None` without that runtime. Abort it with the returned handle.
    pub(crate) fn spawn<F, Fut>(&self, task: F) -> Option<tokio::task::AbortHandle>
    where
        F: FnOnce(Multiplexed) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let runtime = runtime()?;
        let connection = self.server.multiplexed();
        let task = async move {
            if let Ok(connection) = connection.await {
                task(connection).await;
            }
        };
        Some(runtime.spawn(task).abort_handle())
    }

    /// Runs `cmd` without waiting for its answer (a lease release from a `Drop`).
    pub(crate) fn fire(&self, cmd: redis::Cmd) {
        let timeout = self.config.timeout;
        self.spawn(move |mut conn| async move {
            let _ = tokio::time::timeout(timeout, cmd.query_async::<redis::Value>(&mut conn)).await;
        });
    }
}

/// Sends every pipeline at once (each a task on the tier's runtime, over clones of one
/// multiplexed connection) and returns their answers in order: the first error fails all.
async fn all_at_once<T: FromRedisValue + Send + 'static>(
    conn: &Multiplexed,
    pipes: Vec<redis::Pipeline>,
) -> redis::RedisResult<Vec<T>> {
    let sent: Vec<_> = pipes
        .into_iter()
        .map(|pipe| {
            let mut conn = conn.clone();
            tokio::spawn(async move { pipe.query_async::<T>(&mut conn).await })
        })
        .collect();
    let mut answers = Vec::with_capacity(sent.len());
    for sent in sent {
        let answer = sent.await.map_err(|error| {
            redis::RedisError::from((redis::ErrorKind::Io, "pipeline task", error.to_string()))
        })??;
        answers.push(answer);
    }
    Ok(answers)
}

/// The URL without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_string(),
    }
}

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Idle blocking connections kept per tier: one per thread that is talking to Redis at the
/// same moment, beyond which connections are closed after use.
const POOL: usize = 8;

thread_local! {
    /// Whether this thread is polling a future in [`block_on`]: its Redis operations may block
    /// the thread (it would park anyway) instead of going through the tier's runtime.
    static IN_BLOCK_ON: Cell<bool> = const { Cell::new(false) };
}

fn in_block_on() -> bool {
    IN_BLOCK_ON.with(Cell::get)
}

/// Restores the previous [`IN_BLOCK_ON`] when dropped (also by a panic in the computation).
struct Entered(bool);

impl Drop for Entered {
    fn drop(&mut self) {
        IN_BLOCK_ON.with(|flag| flag.set(self.0));
    }
}

/// Runs a future to completion on the calling thread, parking between polls: how a sync
/// function awaits its Redis operations (which run on the calling thread, or on the tier's
/// runtime thread). Re-entrant, so a computation may call other memoized functions.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let _entered = Entered(IN_BLOCK_ON.with(|flag| flag.replace(true)));
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut context = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redact("rediss://user:secret@cache.example:6380/0"),
            "rediss://***@cache.example:6380/0"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }

    #[test]
    fn only_futures_in_block_on_talk_to_redis_from_their_thread() {
        assert!(!in_block_on());
        let nested = block_on(async {
            let outer = in_block_on();
            let inner = block_on(async { in_block_on() });
            (outer, inner, in_block_on())
        });
        assert_eq!(nested, (true, true, true));
        assert!(!in_block_on(), "restored after block_on");
        let panicked = std::panic::catch_unwind(|| block_on(async { panic!("computation") }));
        assert!(panicked.is_err());
        assert!(!in_block_on(), "restored after a panic");
    }

    #[test]
    fn block_on_waits_for_other_threads() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            let _ = tx.send(7);
        });
        assert_eq!(block_on(rx), Ok(7));
    }
}
