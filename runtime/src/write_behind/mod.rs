//! [`WriteBehind`]: a buffer for write-heavy data (counters, analytics events, last-seen
//! times) that updates a cache at once and hands the writes to a slower store in batches
//! (feature `write-behind`).
//!
//! ```
//! use std::time::Duration;
//! use memokit::{Cache, WriteBehind};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let last_seen: Cache<u64, u64> = Cache::new(10_000);
//! let buffer = WriteBehind::builder(last_seen.clone(), |batch: Vec<(u64, u64)>| async move {
//!     // e.g. one `INSERT … ON CONFLICT DO UPDATE` for the whole batch
//!     println!("storing {} rows", batch.len());
//!     Ok::<(), std::io::Error>(())
//! })
//! .batch_size(500)
//! .flush_interval(Duration::from_secs(1))
//! .max_pending(50_000)
//! .build()?;
//!
//! buffer.write(7, 1_700_000_000).await?;       // the cache has it now, the store soon
//! assert_eq!(last_seen.get(&7), Some(1_700_000_000));
//! buffer.shutdown().await;                     // delivers everything still queued
//! println!("{}", buffer.stats());              // queued=1 coalesced=0 flushed=1 batches=1 ...
//! # Ok(())
//! # }
//! ```
//!
//! # Semantics
//!
//! - **At once, then later**: [`write`](WriteBehind::write) stores the value in the target (a
//!   [`Cache`] or a `#[cached]` function's [`Memo`]) and queues it for the sink before it returns.
//!   The target is updated outside the queue's lock, one write at a time in the order the
//!   writes were accepted (so per key it ends with the queue's last value), and may itself
//!   write to the buffer: a removal listener of the target cache that writes into the same
//!   buffer is applied right after the write that triggered it, not deadlocked.
//! - **Coalescing**: the queue holds at most one value per key. A write to a key that is still
//!   queued replaces its value (last write wins) and keeps the key's place in the queue, so a
//!   key written over and over is still delivered in its turn; it is counted as `coalesced`.
//! - **Bounded**: at most `max_pending` distinct keys wait in the queue (besides the batch being
//!   delivered). When it is full, `write(..).await` waits for room (backpressure) and
//!   [`try_write`](WriteBehind::try_write) returns [`WriteError::Full`] with the rejected key and
//!   value. A write to a key already queued always has room.
//! - **Batches**: a background task (on the tokio runtime `build` was called on) sends the
//!   oldest keys, at most `batch_size` of them, when `batch_size` keys are queued, when
//!   `flush_interval` has passed since the oldest queued write, on [`flush`](WriteBehind::flush),
//!   and on shutdown. One batch is delivered at a time, so per key the sink never receives an
//!   older value after a newer one: a write to a key of the batch being delivered (or retried)
//!   is queued anew and sent in a later batch.
//! - **Failures**: a batch whose sink call returns `Err` is sent again after an exponential
//!   backoff (100 ms, doubling up to 10 s by default), up to `retries` times (5 by default, or
//!   forever with [`retry_forever`](WriteBehindBuilder::retry_forever)); nothing is dropped
//!   while retries remain. A sink call whose future has not completed after
//!   [`attempt_timeout`](WriteBehindBuilder::attempt_timeout) (30 s by default) is dropped and
//!   is a failed attempt too, so a sink that hangs cannot hang `flush` or `shutdown`. After
//!   the last retry the batch's entries are counted as `failed` and handed with the last
//!   failure ([`SinkFailure`]: the error, a panic or a timeout) to the
//!   [`on_failure`](WriteBehindBuilder::on_failure) callback (without one they are dropped; the
//!   cache keeps the values). A panic of `on_failure` itself is caught and counted
//!   (`on_failure_panics`); the buffer goes on.
//! - **Delivery**: each accepted write is delivered in exactly one successful sink call, unless
//!   it was coalesced (replaced while queued), finally failed, or lost as described under
//!   *Drop* and *Crash*. A sink call that returns `Err` after storing part of a
//!   batch sees that part again on the retry: make the sink idempotent (upserts) and it is
//!   exactly once from the store's point of view.
//! - **Flush and shutdown**: `flush().await` returns once every write accepted before the call
//!   has been delivered or finally failed. `shutdown().await` stops accepting writes (they
//!   return [`WriteError::Closed`]), delivers everything queued, and stops the task. Both wait
//!   through retries.
//! - **Drop**: dropping the last handle without `shutdown` closes the buffer the same way, but
//!   nobody waits: the task delivers what is queued in the background as long as the runtime
//!   runs. A runtime that shuts down first loses it.
//! - **Crash**: everything queued and the batch in flight live only in memory. A crash, a
//!   `kill -9`, or a runtime dropped before the queue drains loses them (the store may or may not
//!   have applied the batch in flight): at most `max_pending` keys plus one batch, and with a
//!   sink that keeps up, about the writes of the last `flush_interval`.
//! - **Sink panics**: a sink call that panics is a failed attempt like an `Err`: the batch is
//!   retried, and nothing queued is lost. Should the last attempt panic, the batch counts as
//!   `failed` and reaches `on_failure` with [`SinkFailure::Panicked`].
//!
//! [`Cache`]: crate::Cache
//! [`Memo`]: crate::Memo

mod builder;
mod error;
mod flusher;
mod queue;
mod stats;
mod target;

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

pub use builder::WriteBehindBuilder;
use builder::DEFAULT_ATTEMPT_TIMEOUT;
pub use error::{BuildError, SinkFailure, WriteError};

use queue::Owner;
pub use stats::WriteBehindStats;
pub use target::WriteTarget;

/// A write-behind buffer: updates its target at once and sends the writes to a sink in
/// batches, coalesced by key. See [the module](crate::write_behind) for the exact semantics.
///
/// Cloning gives another handle on the same buffer.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use memokit::{Cache, WriteBehind};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = Arc::new(Mutex::new(Vec::new()));
/// let log = store.clone();
/// let counters: Cache<&str, u64> = Cache::new(100);
/// let buffer = WriteBehind::builder(counters.clone(), move |batch| {
///     let log = log.clone();
///     async move {
///         log.lock().unwrap().extend(batch);
///         Ok::<(), String>(())
///     }
/// })
/// .build()?;
///
/// buffer.write("clicks", 1).await?;
/// buffer.write("clicks", 2).await?; // replaces the queued 1
/// assert_eq!(counters.get("clicks"), Some(2));
/// buffer.flush().await;
/// assert_eq!(*store.lock().unwrap(), [("clicks", 2)]);
/// # Ok(())
/// # }
/// ```
pub struct WriteBehind<K, V> {
    owner: Arc<Owner<K, V>>,
}

impl<K, V> Clone for WriteBehind<K, V> {
    fn clone(&self) -> Self {
        WriteBehind {
            owner: self.owner.clone(),
        }
    }
}

impl<K, V> fmt::Debug for WriteBehind<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteBehind")
            .field("stats", &self.owner.shared.queue.lock().stats())
            .finish_non_exhaustive()
    }
}

impl<K, V> WriteBehind<K, V>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// A builder for a buffer that updates `target` at once and sends batches to `sink`, an
    /// async function taking `Vec<(K, V)>` and returning `Result<(), E>`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use memokit::{Cache, WriteBehind};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// async fn store(batch: Vec<(u32, u64)>) -> Result<(), std::io::Error> {
    ///     Ok(()) // write the batch to a database
    /// }
    ///
    /// let cache: Cache<u32, u64> = Cache::new(1_000);
    /// let buffer = WriteBehind::builder(cache, store)
    ///     .batch_size(100)                                // at most 100 keys per call
    ///     .flush_interval(Duration::from_millis(500))     // the oldest write waits at most this
    ///     .max_pending(10_000)                            // then writers wait
    ///     .retries(3)                                     // after the first failure
    ///     .backoff(Duration::from_millis(50), Duration::from_secs(2))
    ///     .on_failure(|batch, failure| eprintln!("{} writes lost: {failure}", batch.len()))
    ///     .build()
    ///     .expect("inside a tokio runtime");
    /// # }
    /// ```
    pub fn builder<T, F, Fut, E>(target: T, sink: F) -> WriteBehindBuilder<K, V, E>
    where
        T: WriteTarget<K, V>,
        F: Fn(Vec<(K, V)>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Send + 'static,
    {
        WriteBehindBuilder {
            target: Box::new(target),
            sink: Box::new(move |batch| Box::pin(sink(batch))),
            batch_size: 100,
            flush_interval: Duration::from_secs(1),
            max_pending: 10_000,
            retries: Some(5),
            backoff: (Duration::from_millis(100), Duration::from_secs(10)),
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            on_failure: None,
        }
    }

    /// Stores `value` in the target and queues it for the sink, waiting for room when
    /// `max_pending` keys are queued (a write to a key already queued never waits). Fails only
    /// after [`shutdown`](Self::shutdown) (or the last handle's drop), returning the write.
    ///
    /// Cancelling the returned future before it completes leaves nothing written.
    ///
    /// ```
    /// # use memokit::{Cache, WriteBehind};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache: Cache<u32, u32> = Cache::new(10);
    /// let buffer = WriteBehind::builder(cache.clone(), |_batch| async { Ok::<(), ()>(()) })
    ///     .build()
    ///     .unwrap();
    /// buffer.write(1, 10).await.unwrap();
    /// assert_eq!(cache.get(&1), Some(10));
    /// buffer.shutdown().await;
    /// assert!(buffer.write(2, 20).await.unwrap_err().is_closed());
    /// # }
    /// ```
    pub async fn write(&self, key: K, value: V) -> Result<(), WriteError<K, V>> {
        let shared = &self.owner.shared;
        let (mut key, mut value) = (key, value);
        loop {
            let mut room = pin!(shared.room.notified());
            room.as_mut().enable();
            match shared.try_enqueue(key, value) {
                Err(WriteError::Full(k, v)) => (key, value) = (k, v),
                done => return done,
            }
            room.await;
        }
    }

    /// Like [`write`](Self::write), but returns [`WriteError::Full`] instead of waiting when
    /// the queue is full. Usable outside async code.
    ///
    /// ```
    /// # use memokit::{Cache, WriteBehind};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache: Cache<u32, u32> = Cache::new(10);
    /// let buffer = WriteBehind::builder(cache.clone(), |_batch| async { Ok::<(), ()>(()) })
    ///     .batch_size(1)
    ///     .max_pending(1)
    ///     .build()
    ///     .unwrap();
    /// buffer.try_write(1, 10).unwrap();
    /// buffer.try_write(1, 11).unwrap(); // the same key: replaces the queued value
    /// // The task has not run yet (this runtime has one thread), so key 1 is still queued.
    /// let full = buffer.try_write(2, 20).unwrap_err();
    /// assert!(full.is_full());
    /// assert_eq!(full.into_inner(), (2, 20));
    /// assert_eq!(cache.get(&2), None); // a rejected write changes nothing
    /// # }
    /// ```
    pub fn try_write(&self, key: K, value: V) -> Result<(), WriteError<K, V>> {
        self.owner.shared.try_enqueue(key, value)
    }

    /// Sends what is queued now without waiting for a full batch or the interval, and returns
    /// once every write accepted before the call has been delivered or finally failed (writes
    /// accepted meanwhile may be delivered too). Returns at once after the task stopped.
    ///
    /// ```
    /// # use std::sync::{Arc, Mutex};
    /// # use memokit::{Cache, WriteBehind};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let delivered = Arc::new(Mutex::new(0));
    /// let count = delivered.clone();
    /// let buffer = WriteBehind::builder(Cache::<u32, u32>::new(10), move |batch| {
    ///     *count.lock().unwrap() += batch.len();
    ///     async { Ok::<(), ()>(()) }
    /// })
    /// .build()
    /// .unwrap();
    /// buffer.write(1, 1).await.unwrap();
    /// buffer.write(2, 2).await.unwrap();
    /// buffer.flush().await;
    /// assert_eq!(*delivered.lock().unwrap(), 2);
    /// # }
    /// ```
    pub async fn flush(&self) {
        let shared = &self.owner.shared;
        let through = {
            let mut queue = shared.queue.lock();
            let through = queue.next_seq - 1;
            queue.flush_through = queue.flush_through.max(through);
            through
        };
        shared.wake_flusher.notify_one();
        shared
            .wait_until(|queue| queue.oldest_outstanding() > through)
            .await;
    }

    /// Stops accepting writes (from every handle), delivers everything queued (through
    /// retries), and returns when the task has stopped. Calling it again returns at once.
    ///
    /// ```
    /// # use memokit::{Cache, WriteBehind};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let buffer = WriteBehind::builder(Cache::<u32, u32>::new(10), |_batch| async {
    ///     Ok::<(), ()>(())
    /// })
    /// .build()
    /// .unwrap();
    /// buffer.write(1, 1).await.unwrap();
    /// buffer.shutdown().await;
    /// let stats = buffer.stats();
    /// assert_eq!((stats.flushed, stats.pending), (1, 0));
    /// # }
    /// ```
    pub async fn shutdown(&self) {
        let shared = &self.owner.shared;
        shared.close();
        shared.wait_until(|_| false).await;
    }

    /// The counters: writes queued and coalesced, entries flushed and failed, batches, retries,
    /// and the entries pending now. See [`WriteBehindStats`].
    ///
    /// ```
    /// # use memokit::{Cache, WriteBehind};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let buffer = WriteBehind::builder(Cache::<u32, u32>::new(10), |_batch| async {
    ///     Ok::<(), ()>(())
    /// })
    /// .build()
    /// .unwrap();
    /// buffer.write(1, 1).await.unwrap();
    /// buffer.write(1, 2).await.unwrap();
    /// let stats = buffer.stats();
    /// assert_eq!((stats.queued, stats.coalesced, stats.pending), (2, 1, 1));
    /// println!("{stats}"); // queued=2 coalesced=1 flushed=0 batches=0 retried=0 failed=0 pending=1
    /// # }
    /// ```
    pub fn stats(&self) -> WriteBehindStats {
        self.owner.shared.queue.lock().stats()
    }
}
