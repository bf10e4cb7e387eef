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
//!   while retries remain. After the last retry the batch's entries are counted as `failed`
//!   and handed with the last error to the [`on_failure`](WriteBehindBuilder::on_failure)
//!   callback (without one they are dropped; the cache keeps the values).
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
//!   `failed` without reaching `on_failure` (there is no error to hand it).
//!
//! [`Cache`]: crate::Cache
//! [`Memo`]: crate::Memo

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::panic::AssertUnwindSafe;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use parking_lot::{Mutex, ReentrantMutex};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::{Cache, Memo};

/// What a [`WriteBehind`] updates at once: a [`Cache`] or a `#[cached]` function's
/// `&'static` [`Memo`].
///
/// `write` is called outside the buffer's queue lock, one write at a time and in the order the
/// buffer accepted them, so that the target and the queue agree on the last value of every key.
/// It may write to the same [`WriteBehind`] (a removal listener of the target cache that does
/// is fine): such a nested write reaches the target right after the one in progress. (A `Memo`
/// with the Redis tier writes to Redis there, as its `insert` does.)
///
/// ```
/// use memokit::write_behind::WriteTarget;
///
/// #[memokit::cached]
/// fn views(page: u32) -> u64 { 0 }
///
/// let cache: memokit::Cache<u32, u64> = memokit::Cache::new(10);
/// cache.write(1, 5);
/// views_cache().write(1, 7);
/// assert_eq!((cache.get(&1), views(1)), (Some(5), 7));
/// ```
pub trait WriteTarget<K, V>: Send + Sync + 'static {
    /// Stores `value` under `key`.
    fn write(&self, key: K, value: V);
}

impl<K, V> WriteTarget<K, V> for Cache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn write(&self, key: K, value: V) {
        self.insert(key, value);
    }
}

impl<K, V> WriteTarget<K, V> for &'static Memo<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn write(&self, key: K, value: V) {
        self.insert(key, value);
    }
}

/// The handle of a `#[cached]` function that `warm` can call (see [`crate::LoadingMemo`]).
impl<K, V, L> WriteTarget<K, V> for &'static crate::LoadingMemo<K, V, L>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    L: Sync,
{
    fn write(&self, key: K, value: V) {
        self.insert(key, value);
    }
}

type SinkFn<K, V, E> =
    Box<dyn Fn(Vec<(K, V)>) -> Pin<Box<dyn Future<Output = Result<(), E>> + Send>> + Send + Sync>;
type FailureFn<K, V, E> = Box<dyn Fn(Vec<(K, V)>, E) + Send + Sync>;

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

/// Held by the handles only (the task holds `Shared`): its drop is the last handle's.
struct Owner<K, V> {
    shared: Arc<Shared<K, V>>,
}

impl<K, V> Drop for Owner<K, V> {
    fn drop(&mut self) {
        self.shared.close();
    }
}

struct Shared<K, V> {
    queue: Mutex<Queue<K, V>>,
    target: Box<dyn WriteTarget<K, V>>,
    /// Held while writes are applied to the target, one at a time, in `Queue::to_apply`'s
    /// order; set while a thread drains that list. Reentrant: a write made by the target
    /// itself (a removal listener) on the draining thread finds it set and leaves its write to
    /// that drain, which applies it next.
    applying: ReentrantMutex<Cell<bool>>,
    batch_size: usize,
    flush_interval: Duration,
    max_pending: usize,
    /// Wakes the task: a first key or a full batch is queued, a flush or the shutdown is asked.
    wake_flusher: Notify,
    /// Wakes writers waiting for room.
    room: Notify,
    /// Wakes `flush` and `shutdown`: a batch is done, or the task stopped.
    progress: Notify,
}

struct Queue<K, V> {
    /// The queued value of each key.
    values: HashMap<K, V, ahash::RandomState>,
    /// Each queued key once, in the order of its first queued write.
    order: VecDeque<Queued<K>>,
    /// The sequence number of the next newly queued key (from 1).
    next_seq: u64,
    /// Keys queued up to this sequence number are sent without waiting (by `flush`).
    flush_through: u64,
    /// The batch being delivered: its first sequence number and its length.
    in_flight: Option<(u64, usize)>,
    /// Accepted writes not yet applied to the target, in the order they were accepted.
    to_apply: VecDeque<(K, V)>,
    /// No more writes are accepted.
    closed: bool,
    /// The task has stopped.
    stopped: bool,
    stats: WriteBehindStats,
}

struct Queued<K> {
    key: K,
    seq: u64,
    since: Instant,
}

impl<K, V> Queue<K, V> {
    fn stats(&self) -> WriteBehindStats {
        WriteBehindStats {
            pending: (self.values.len() + self.in_flight.map_or(0, |(_, len)| len)) as u64,
            ..self.stats
        }
    }

    /// The sequence number of the oldest key not yet delivered or failed.
    fn oldest_outstanding(&self) -> u64 {
        match (self.in_flight, self.order.front()) {
            (Some((seq, _)), _) => seq,
            (None, Some(front)) => front.seq,
            (None, None) => self.next_seq,
        }
    }
}

impl<K, V> Shared<K, V> {
    fn close(&self) {
        self.queue.lock().closed = true;
        self.room.notify_waiters();
        self.wake_flusher.notify_one();
    }

    /// Waits until `done` holds for the queue (checked after each batch and when the task
    /// stops).
    async fn wait_until(&self, done: impl Fn(&Queue<K, V>) -> bool) {
        loop {
            let mut progress = pin!(self.progress.notified());
            progress.as_mut().enable();
            {
                let queue = self.queue.lock();
                if queue.stopped || done(&queue) {
                    return;
                }
            }
            progress.await;
        }
    }
}

impl<K, V> Shared<K, V>
where
    K: Hash + Eq + Clone + 'static,
    V: Clone + 'static,
{
    fn try_enqueue(&self, key: K, value: V) -> Result<(), WriteError<K, V>> {
        let mut queue = self.queue.lock();
        if queue.closed {
            return Err(WriteError::Closed(key, value));
        }
        let mut wake = false;
        if let Some(queued) = queue.values.get_mut(&key) {
            *queued = value.clone();
            queue.stats.coalesced += 1;
        } else {
            if queue.values.len() >= self.max_pending {
                return Err(WriteError::Full(key, value));
            }
            let seq = queue.next_seq;
            queue.next_seq += 1;
            queue.order.push_back(Queued {
                key: key.clone(),
                seq,
                since: Instant::now(),
            });
            queue.values.insert(key.clone(), value.clone());
            // A first key starts the interval; a full batch is sent now.
            let queued = queue.values.len();
            wake = queued == 1 || queued == self.batch_size;
        }
        queue.stats.queued += 1;
        // In the queue's order, so that two writers of one key update the target in that order;
        // applied outside the lock, so that the target may write to this buffer.
        queue.to_apply.push_back((key, value));
        drop(queue);
        self.apply();
        if wake {
            self.wake_flusher.notify_one();
        }
        Ok(())
    }

    /// Applies the accepted writes to the target, in order, until none is left. A writer
    /// returns only once its own write is applied: by itself, or by the thread it waited for.
    /// Nested in a drain on this thread (the target wrote to this buffer), it returns at once:
    /// the drain applies the write next.
    fn apply(&self) {
        let draining = self.applying.lock();
        if draining.replace(true) {
            return;
        }
        /// Ends the drain even if the target panics.
        struct Drain<'a>(&'a Cell<bool>);
        impl Drop for Drain<'_> {
            fn drop(&mut self) {
                self.0.set(false);
            }
        }
        let _drain = Drain(&draining);
        loop {
            let next = self.queue.lock().to_apply.pop_front();
            let Some((key, value)) = next else { break };
            self.target.write(key, value);
        }
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
    ///     .on_failure(|batch, error| eprintln!("{} writes lost: {error}", batch.len()))
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

/// Configures and builds a [`WriteBehind`]; get one from [`WriteBehind::builder`].
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
    target: Box<dyn WriteTarget<K, V>>,
    sink: SinkFn<K, V, E>,
    batch_size: usize,
    flush_interval: Duration,
    max_pending: usize,
    /// `None`: retry forever.
    retries: Option<u32>,
    /// The first and the longest wait between attempts.
    backoff: (Duration, Duration),
    on_failure: Option<FailureFn<K, V, E>>,
}

impl<K, V, E> fmt::Debug for WriteBehindBuilder<K, V, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteBehindBuilder")
            .field("batch_size", &self.batch_size)
            .field("flush_interval", &self.flush_interval)
            .field("max_pending", &self.max_pending)
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
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

    /// Called with a batch and the sink's last error when the batch failed after its last
    /// retry (on the buffer's task: keep it short). Without it, the batch is dropped (and
    /// counted as `failed`).
    ///
    /// ```
    /// # use memokit::{Cache, WriteBehind};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let buffer = WriteBehind::builder(Cache::<u32, u32>::new(10), |_b| async {
    ///     Err::<(), _>("database down")
    /// })
    /// .retries(0)
    /// .on_failure(|batch, error| eprintln!("lost {batch:?}: {error}"))
    /// .build()
    /// .unwrap();
    /// buffer.write(1, 1).await.unwrap();
    /// buffer.flush().await; // prints "lost [(1, 1)]: database down"
    /// assert_eq!(buffer.stats().failed, 1);
    /// # }
    /// ```
    pub fn on_failure(
        mut self,
        on_failure: impl Fn(Vec<(K, V)>, E) + Send + Sync + 'static,
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
            on_failure: self.on_failure,
        };
        runtime.spawn(flusher.run());
        Ok(WriteBehind {
            owner: Arc::new(Owner { shared }),
        })
    }
}

/// The background task: sends batches one at a time.
struct Flusher<K, V, E> {
    shared: Arc<Shared<K, V>>,
    sink: SinkFn<K, V, E>,
    retries: Option<u32>,
    backoff: (Duration, Duration),
    on_failure: Option<FailureFn<K, V, E>>,
}

enum Step<K, V> {
    Send(Vec<(K, V)>),
    WaitUntil(Instant),
    Wait,
    Stop,
}

/// Marks the task stopped however it ends (done, runtime shut down, a panic of the target), so that no
/// writer, `flush` or `shutdown` waits for it forever.
struct StopOnDrop<'a, K, V>(&'a Shared<K, V>);

impl<K, V> Drop for StopOnDrop<'_, K, V> {
    fn drop(&mut self) {
        {
            let mut queue = self.0.queue.lock();
            queue.closed = true;
            queue.stopped = true;
        }
        self.0.room.notify_waiters();
        self.0.progress.notify_waiters();
    }
}

impl<K, V, E> Flusher<K, V, E>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Clone + Send + 'static,
    E: Send + 'static,
{
    async fn run(self) {
        let _stop = StopOnDrop(&self.shared);
        loop {
            match self.next_step() {
                Step::Send(batch) => self.deliver(batch).await,
                Step::WaitUntil(deadline) => {
                    let _ = tokio::time::timeout_at(deadline, self.shared.wake_flusher.notified())
                        .await;
                }
                Step::Wait => self.shared.wake_flusher.notified().await,
                Step::Stop => return,
            }
        }
    }

    fn next_step(&self) -> Step<K, V> {
        let shared = &*self.shared;
        let mut queue = shared.queue.lock();
        let Some(oldest) = queue.order.front() else {
            return if queue.closed { Step::Stop } else { Step::Wait };
        };
        // `None`: an interval too long to represent, never reached.
        let due = oldest.since.checked_add(shared.flush_interval);
        let send_now = queue.closed
            || queue.order.len() >= shared.batch_size
            || oldest.seq <= queue.flush_through
            || due.is_some_and(|due| due <= Instant::now());
        if !send_now {
            return due.map_or(Step::Wait, Step::WaitUntil);
        }
        let len = queue.order.len().min(shared.batch_size);
        queue.in_flight = Some((oldest.seq, len));
        let Queue { order, values, .. } = &mut *queue;
        let batch: Vec<(K, V)> = order
            .drain(..len)
            .filter_map(|queued| values.remove_entry(&queued.key))
            .collect();
        drop(queue);
        shared.room.notify_waiters();
        Step::Send(batch)
    }

    /// One sink call; a panic in it is a failed attempt, so that a sink bug costs retries, not
    /// the buffer and everything queued in it.
    async fn attempt(&self, batch: Vec<(K, V)>) -> Attempt<E> {
        let call = std::panic::catch_unwind(AssertUnwindSafe(|| (self.sink)(batch)));
        let Ok(mut sending) = call else {
            return Attempt::Panicked;
        };
        let polled = std::future::poll_fn(|cx| {
            match std::panic::catch_unwind(AssertUnwindSafe(|| sending.as_mut().poll(cx))) {
                Ok(Poll::Pending) => Poll::Pending,
                Ok(Poll::Ready(result)) => Poll::Ready(Some(result)),
                Err(_) => Poll::Ready(None),
            }
        });
        match polled.await {
            Some(Ok(())) => Attempt::Delivered,
            Some(Err(error)) => Attempt::Failed(error),
            None => Attempt::Panicked,
        }
    }

    /// Sends `batch` until the sink accepts it or the retries run out.
    async fn deliver(&self, batch: Vec<(K, V)>) {
        let len = batch.len() as u64;
        let mut retried = 0;
        let mut wait = self.backoff.0;
        let outcome = loop {
            let last = self.retries.is_some_and(|retries| retried >= retries);
            match self.attempt(batch.clone()).await {
                Attempt::Delivered => break Ok(()),
                Attempt::Failed(error) if last => break Err(Some(error)),
                Attempt::Panicked if last => break Err(None),
                Attempt::Failed(_) | Attempt::Panicked => {
                    retried += 1;
                    self.shared.queue.lock().stats.retried += 1;
                    tokio::time::sleep(wait).await;
                    wait = wait.saturating_mul(2).min(self.backoff.1);
                }
            }
        };
        {
            let mut queue = self.shared.queue.lock();
            queue.in_flight = None;
            match outcome {
                Ok(()) => {
                    queue.stats.flushed += len;
                    queue.stats.batches += 1;
                }
                Err(_) => queue.stats.failed += len,
            }
        }
        if let (Err(Some(error)), Some(on_failure)) = (outcome, &self.on_failure) {
            on_failure(batch, error);
        }
        self.shared.progress.notify_waiters();
    }
}

/// How one sink call ended.
enum Attempt<E> {
    Delivered,
    Failed(E),
    Panicked,
}

/// Counters of a [`WriteBehind`], from [`WriteBehind::stats`].
///
/// Every accepted write is, at any time, exactly one of: coalesced (replaced while queued),
/// flushed, failed, or pending, so `queued == coalesced + flushed + failed + pending`.
///
/// ```
/// let stats = memokit::write_behind::WriteBehindStats::default();
/// assert_eq!(
///     stats.to_string(),
///     "queued=0 coalesced=0 flushed=0 batches=0 retried=0 failed=0 pending=0"
/// );
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteBehindStats {
    /// Writes accepted (including coalesced ones).
    pub queued: u64,
    /// Writes that replaced a value still queued for their key (the sink never sees the
    /// replaced value).
    pub coalesced: u64,
    /// Entries delivered: in batches the sink accepted.
    pub flushed: u64,
    /// Batches the sink accepted.
    pub batches: u64,
    /// Sink calls that were repeats of a failed call.
    pub retried: u64,
    /// Entries given up after the last retry (handed to `on_failure`, if set).
    pub failed: u64,
    /// Entries queued or being delivered now.
    pub pending: u64,
}

impl fmt::Display for WriteBehindStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "queued={} coalesced={} flushed={} batches={} retried={} failed={} pending={}",
            self.queued,
            self.coalesced,
            self.flushed,
            self.batches,
            self.retried,
            self.failed,
            self.pending
        )
    }
}

/// A write that was not accepted, with its key and value.
///
/// ```
/// use memokit::write_behind::WriteError;
///
/// let error = WriteError::Full("clicks", 3);
/// assert!(error.is_full());
/// assert_eq!(error.to_string(), "the write-behind queue is full");
/// assert_eq!(error.into_inner(), ("clicks", 3));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum WriteError<K, V> {
    /// `max_pending` keys are queued (from [`WriteBehind::try_write`] only).
    Full(K, V),
    /// The buffer was shut down (or its last handle dropped, or its task stopped).
    Closed(K, V),
}

impl<K, V> WriteError<K, V> {
    /// Whether the queue was full.
    ///
    /// ```
    /// assert!(memokit::write_behind::WriteError::Full(1, 2).is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        matches!(self, WriteError::Full(..))
    }

    /// Whether the buffer was shut down.
    ///
    /// ```
    /// assert!(memokit::write_behind::WriteError::Closed(1, 2).is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, WriteError::Closed(..))
    }

    /// The rejected key and value.
    ///
    /// ```
    /// let error = memokit::write_behind::WriteError::Closed(1, 2);
    /// assert_eq!(error.into_inner(), (1, 2));
    /// ```
    pub fn into_inner(self) -> (K, V) {
        match self {
            WriteError::Full(key, value) | WriteError::Closed(key, value) => (key, value),
        }
    }
}

// Without `K: Debug` or `V: Debug`, so that `?` and `unwrap` work for any key and value.
impl<K, V> fmt::Debug for WriteError<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WriteError::Full(..) => "Full(..)",
            WriteError::Closed(..) => "Closed(..)",
        })
    }
}

impl<K, V> fmt::Display for WriteError<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WriteError::Full(..) => "the write-behind queue is full",
            WriteError::Closed(..) => "the write-behind buffer is shut down",
        })
    }
}

impl<K, V> std::error::Error for WriteError<K, V> {}

/// A setting [`WriteBehindBuilder::build`] cannot work with.
///
/// ```
/// use memokit::{Cache, WriteBehind};
///
/// let error = WriteBehind::builder(Cache::<u32, u32>::new(10), |_b| async { Ok::<(), ()>(()) })
///     .build()
///     .unwrap_err();
/// assert_eq!(
///     error.to_string(),
///     "a write-behind buffer must be built inside a tokio runtime (it spawns its flusher task there)"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// `build` was called outside a tokio runtime.
    NoRuntime,
    /// `batch_size(0)`.
    ZeroBatchSize,
    /// `max_pending` is smaller than `batch_size`: a full batch could never be queued.
    MaxPendingBelowBatchSize {
        /// The `max_pending` setting.
        max_pending: usize,
        /// The `batch_size` setting.
        batch_size: usize,
    },
    /// The longest backoff is shorter than the first.
    BackoffOutOfOrder {
        /// The first wait.
        first: Duration,
        /// The longest wait.
        max: Duration,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::NoRuntime => f.write_str(
                "a write-behind buffer must be built inside a tokio runtime (it spawns its \
                 flusher task there)",
            ),
            BuildError::ZeroBatchSize => f.write_str("batch_size must be at least 1"),
            BuildError::MaxPendingBelowBatchSize {
                max_pending,
                batch_size,
            } => write!(
                f,
                "max_pending ({max_pending}) must be at least batch_size ({batch_size})"
            ),
            BuildError::BackoffOutOfOrder { first, max } => write!(
                f,
                "the longest backoff ({max:?}) must be at least the first ({first:?})"
            ),
        }
    }
}

impl std::error::Error for BuildError {}
