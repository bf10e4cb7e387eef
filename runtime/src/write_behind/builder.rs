//! [`WriteBehindBuilder`](super::WriteBehindBuilder): the settings of a buffer, checked by `build`.

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, ReentrantMutex};
use tokio::sync::Notify;

use super::flusher::{FailureFn, Flusher, SinkFn};
use super::queue::{Owner, Queue, Shared};
use super::{BuildError, SinkFailure, WriteBehind, WriteBehindStats, WriteTarget};

/// Long enough for a large batch on a slow store, short enough that a sink that never
/// completes costs `flush` and `shutdown` minutes (with the retries), not forever.
pub(super) const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Configures and builds a [`WriteBehind`](super::WriteBehind); get one from [`WriteBehind::builder`](super::WriteBehind::builder).
///
/// ```
/// use std::time::Duration;
/// use memokit::{Cache, WriteBehind};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let counts: Cache<u64, u64> = Cache::new(1_000);
/// let builder = WriteBehind::builder(counts, |batch: Vec<(u64, u64)>| async move {
///     println!("{} rows", batch.len());
///     Ok::<(), std::io::Error>(())
/// })
/// .batch_size(200)
/// .flush_interval(Duration::from_millis(500))
/// .retries(3);
/// let buffer = builder.build().expect("valid settings, inside a tokio runtime");
/// buffer.shutdown().await;
/// # }
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct WriteBehindBuilder<K, V, E> {
    pub(super) target: Box<dyn WriteTarget<K, V>>,
    pub(super) sink: SinkFn<K, V, E>,
    pub(super) batch_size: usize,
    pub(super) flush_interval: Duration,
    pub(super) max_pending: usize,
    /// `None`: retry forever.
    pub(super) retries: Option<u32>,
    /// The first and the longest wait between attempts.
    pub(super) backoff: (Duration, Duration),
    pub(super) attempt_timeout: Duration,
    pub(super) on_failure: Option<FailureFn<K, V, E>>,
}

impl<K, V, E> fmt::Debug for WriteBehindBuilder<K, V, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteBehindBuilder")
            .field("batch_size", &self.batch_size)
            .field("flush_interval", &self.flush_interval)
            .field("max_pending", &self.max_pending)
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .field("attempt_timeout", &self.attempt_timeout)
            .finish_non_exhaustive()
    }
}

impl<K, V, E> WriteBehindBuilder<K, V, E>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Clone + Send + 'static,
    E: Send + 'static,
{
    /// At most this many keys per sink call; a batch is sent as soon as this many are queued
    /// (default 100; at least 1).
    ///
    /// ```
    /// # use memokit::{Cache, WriteBehind};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let built = WriteBehind::builder(Cache::<u32, u32>::new(10), |_b| async { Ok::<(), ()>(()) })
    ///     .batch_size(0)
    ///     .build();
    /// assert!(matches!(built, Err(memokit::write_behind::BuildError::ZeroBatchSize)));
    /// # }
    /// ```
    pub fn batch_size(mut self, keys: usize) -> Self {
        self.batch_size = keys;
        self
    }

    /// The longest a queued write waits for a batch to fill (default 1 s): when this much time
    /// has passed since the oldest queued write, what is queued is sent (up to `batch_size`
    /// keys). Zero sends whenever the task is free.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use memokit::{Cache, WriteBehind};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let buffer = WriteBehind::builder(Cache::<u32, u32>::new(10), |_b| async { Ok::<(), ()>(()) })
    ///     .flush_interval(Duration::from_millis(200))
    ///     .build()
    ///     .unwrap();
    /// # }
    /// ```
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// At most this many distinct keys wait in the queue (default 10,000; at least
    /// `batch_size`); then `write` waits and `try_write` fails. The batch being delivered is
    /// not counted: memory holds at most `max_pending + batch_size` entries.
    ///
    /// ```
    /// # use memokit::{Cache, WriteBehind};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let built = WriteBehind::builder(Cache::<u32, u32>::new(10), |_b| async { Ok::<(), ()>(()) })
    ///     .batch_size(100)
    ///     .max_pending(10)
    ///     .build();
    /// assert_eq!(
    ///     built.unwrap_err().to_string(),
    ///     "max_pending (10) must be at least batch_size (100)"
    /// );
    /// # }
    /// ```
    pub fn max_pending(mut self, keys: usize) -> Self {
        self.max_pending = keys;
        self
    }

    /// How many times a failed batch is sent again before it counts as failed (default 5; 0:
    /// never retried).
    ///
    /// ```
    /// # use memokit::{Cache, WriteBehind};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let buffer = WriteBehind::builder(Cache::<u32, u32>::new(10), |_b| async { Ok::<(), ()>(()) })
    ///     .retries(10)
    ///     .build()
    ///     .unwrap();
    /// # }
    /// ```
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = Some(retries);
        self
    }

    /// Sends a failed batch again until it succeeds: nothing ever fails, but `flush` and
    /// `shutdown` wait as long as the sink keeps failing, and the queue fills up behind it
    /// (writers wait).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use memokit::{Cache, WriteBehind};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let buffer = WriteBehind::builder(Cache::<u32, u32>::new(10), |_b| async { Ok::<(), ()>(()) })
    ///     .retry_forever()
    ///     .build()
    ///     .unwrap();
    /// // bound the wait at exit
    /// let _ = tokio::time::timeout(Duration::from_secs(30), buffer.shutdown()).await;
    /// # }
    /// ```
    pub fn retry_forever(mut self) -> Self {
        self.retries = None;
        self
    }

    /// The wait before the first retry, doubled before each next one up to `max` (default
    /// 100 ms and 10 s).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use memokit::{Cache, WriteBehind};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let built = WriteBehind::builder(Cache::<u32, u32>::new(10), |_b| async { Ok::<(), ()>(()) })
    ///     .backoff(Duration::from_secs(2), Duration::from_secs(1))
    ///     .build();
    /// assert!(built.is_err()); // the longest wait is shorter than the first
    /// # }
    /// ```
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        self.backoff = (first, max);
        self
    }

    /// How long one sink call may take (default 30 s): a call whose future has not completed
    /// by then is dropped and counts as a failed attempt (retried, then handed to `on_failure`
    /// as [`SinkFailure::TimedOut`]). Without it, a sink that never completes would hold
    /// `flush` and `shutdown` forever. `Duration::MAX` waits without limit.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use memokit::{Cache, WriteBehind};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let buffer = WriteBehind::builder(Cache::<u32, u32>::new(10), |_b| async { Ok::<(), ()>(()) })
    ///     .attempt_timeout(Duration::from_secs(5))
    ///     .build()
    ///     .unwrap();
    /// # }
    /// ```
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// Called with a batch and the last attempt's failure (the sink's error, a panic or a
    /// timeout) when the batch failed after its last retry (on the buffer's task: keep it
    /// short). Without it, the batch is dropped (and counted as `failed`). Should it panic, the
    /// panic is caught and counted (`on_failure_panics`), and the buffer goes on.
    ///
    /// ```
    /// # use memokit::{Cache, WriteBehind};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let buffer = WriteBehind::builder(Cache::<u32, u32>::new(10), |_b| async {
    ///     Err::<(), _>("database down")
    /// })
    /// .retries(0)
    /// .on_failure(|batch, failure| eprintln!("lost {batch:?}: {failure}"))
    /// .build()
    /// .unwrap();
    /// buffer.write(1, 1).await.unwrap();
    /// buffer.flush().await; // prints "lost [(1, 1)]: database down"
    /// assert_eq!(buffer.stats().failed, 1);
    /// # }
    /// ```
    pub fn on_failure(
        mut self,
        on_failure: impl Fn(Vec<(K, V)>, SinkFailure<E>) + Send + Sync + 'static,
    ) -> Self {
        self.on_failure = Some(Box::new(on_failure));
        self
    }

    /// Checks the settings and starts the buffer's task on the current tokio runtime (which
    /// needs the `time` driver: `enable_time` or `enable_all`).
    ///
    /// ```
    /// # use memokit::{Cache, WriteBehind};
    /// let outside = WriteBehind::builder(Cache::<u32, u32>::new(10), |_b| async { Ok::<(), ()>(()) })
    ///     .build();
    /// assert!(matches!(outside, Err(memokit::write_behind::BuildError::NoRuntime)));
    /// ```
    pub fn build(self) -> Result<WriteBehind<K, V>, BuildError> {
        if self.batch_size == 0 {
            return Err(BuildError::ZeroBatchSize);
        }
        if self.max_pending < self.batch_size {
            return Err(BuildError::MaxPendingBelowBatchSize {
                max_pending: self.max_pending,
                batch_size: self.batch_size,
            });
        }
        if self.backoff.1 < self.backoff.0 {
            return Err(BuildError::BackoffOutOfOrder {
                first: self.backoff.0,
                max: self.backoff.1,
            });
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                values: HashMap::default(),
                order: VecDeque::new(),
                next_seq: 1,
                flush_through: 0,
                in_flight: None,
                to_apply: VecDeque::new(),
                closed: false,
                stopped: false,
                stats: WriteBehindStats::default(),
            }),
            target: self.target,
            applying: ReentrantMutex::new(Cell::new(false)),
            batch_size: self.batch_size,
            flush_interval: self.flush_interval,
            max_pending: self.max_pending,
            wake_flusher: Notify::new(),
            room: Notify::new(),
            progress: Notify::new(),
        });
        let flusher = Flusher {
            shared: shared.clone(),
            sink: self.sink,
            retries: self.retries,
            backoff: self.backoff,
            attempt_timeout: self.attempt_timeout,
            on_failure: self.on_failure,
        };
        runtime.spawn(flusher.run());
        Ok(WriteBehind {
            owner: Arc::new(Owner { shared }),
        })
    }
}
