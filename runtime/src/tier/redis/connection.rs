//! The process's connection to Redis: one multiplexed [`ConnectionManager`] driven by a
//! dedicated runtime thread, a circuit breaker and a rate-limited warning.
//!
//! An operation of a sync function (one run under [`block_on`]) goes straight to Redis from the
//! caller's thread, over a blocking connection taken from a small pool whose reads and writes
//! are bounded by the configured timeout: an L2 hit costs one round trip and no thread
//! hand-off. Any other operation, and one whose pooled connection turns out dead, is a task
//! on the tier's own current-thread runtime (thread `memokit-redis`) over one multiplexed
//! connection, bounded by the timeout; callers await its join handle (async functions, on any
//! executor) or park until it is done. So async functions with the shared tier need no tokio
//! runtime of their own, and the connection outlives the runtimes of callers (e.g. one per
//! `#[tokio::test]`).

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::FromRedisValue;

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

/// One connected (or connecting) Redis server.
pub(crate) struct Connection {
    /// Unique per `connect`, so that cached generations of an earlier tier are not reused.
    pub(crate) id: u64,
    pub(crate) config: Config,
    pub(crate) client: redis::Client,
    manager: ConnectionManager,
    /// Idle blocking connections for sync callers (at most [`POOL`]).
    pool: Mutex<Vec<redis::Connection>>,
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
        let client = redis::Client::open(config.url.as_str())?;
        let Some(runtime) = runtime() else {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "memokit could not start its Redis runtime thread",
            )));
        };
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
        Ok(Arc::new(Connection {
            id: IDS.fetch_add(1, Relaxed),
            config,
            client,
            manager,
            pool: Mutex::new(Vec::new()),
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

    /// Runs `cmd` (a command or a pipeline) on a pooled blocking connection from the calling
    /// thread, bounded by the timeout. `None` when it should go the multiplexed way instead: a
    /// reused connection failed for another reason than a timeout (the server closed it, e.g.
    /// after a restart), so the answer is not known yet.
    fn run_direct<T: FromRedisValue>(
        &self,
        query: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Option<Result<T, Unavailable>> {
        let pooled = self.pool.lock().pop();
        let reused = pooled.is_some();
        let connection = match pooled {
            Some(connection) => Ok(connection),
            None => self.connect_blocking(),
        };
        let result = connection.and_then(|connection| {
            let mut connection = connection;
            let answer = query(&mut connection);
            // A rejected command leaves the connection as good as an answer does.
            if answer.as_ref().is_ok() || answer.as_ref().is_err_and(rejected_command) {
                self.keep(connection, reused);
            }
            answer
        });
        match result {
            Ok(value) => Some(Ok(value)),
            Err(error) if rejected_command(&error) => Some(Err(Unavailable::Rejected)),
            Err(error) if reused && !error.is_timeout() => None,
            Err(error) => {
                self.failed(&error);
                Some(Err(Unavailable::Failed))
            }
        }
    }

    /// Puts a connection that answered back in the pool (if there is room).
    fn keep(&self, connection: redis::Connection, reused: bool) {
        if !reused {
            // Connecting used part of the timeout: the first query had only the rest.
            let timeout = Some(self.config.timeout.max(Duration::from_millis(1)));
            if connection.set_read_timeout(timeout).is_err()
                || connection.set_write_timeout(timeout).is_err()
            {
                return;
            }
        }
        let mut pool = self.pool.lock();
        if pool.len() < POOL {
            pool.push(connection);
        }
    }

    /// A new blocking connection; connecting and its first query share one timeout.
    fn connect_blocking(&self) -> redis::RedisResult<redis::Connection> {
        let floor = Duration::from_millis(1);
        let deadline = Instant::now() + self.config.timeout;
        let connection = self
            .client
            .get_connection_with_timeout(self.config.timeout.max(floor))?;
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(floor);
        connection.set_read_timeout(Some(left))?;
        connection.set_write_timeout(Some(left))?;
        Ok(connection)
    }

    /// Runs `op` on the tier's runtime, bounded by the timeout. Skipped while the circuit is
    /// open; a failure opens it.
    async fn run<T, F>(&self, op: impl FnOnce(ConnectionManager) -> F) -> Result<T, Unavailable>
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
        let task = op(self.manager.clone());
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

    /// One command: directly from a sync caller's thread, else on the tier's runtime.
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

    /// Several commands in one round trip (directly from a sync caller's thread, as
    /// [`Connection::query`]).
    pub(crate) async fn query_pipe<T>(&self, pipe: redis::Pipeline) -> Result<T, Unavailable>
    where
        T: FromRedisValue + Send + 'static,
    {
        if in_block_on() {
            if !self.available() {
                return Err(Unavailable::Skipped);
            }
            if let Some(result) = self.run_direct(|connection| pipe.query::<T>(connection)) {
                return result;
            }
        }
        self.run(|mut conn| async move { pipe.query_async::<T>(&mut conn).await })
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
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let runtime = runtime()?;
        Some(runtime.spawn(task(self.manager.clone())).abort_handle())
    }

    /// Runs `cmd` without waiting for its answer (a lease release from a `Drop`).
    pub(crate) fn fire(&self, cmd: redis::Cmd) {
        if let Some(runtime) = runtime() {
            let mut conn = self.manager.clone();
            let timeout = self.config.timeout;
            runtime.spawn(async move {
                let _ =
                    tokio::time::timeout(timeout, cmd.query_async::<redis::Value>(&mut conn)).await;
            });
        }
    }
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
