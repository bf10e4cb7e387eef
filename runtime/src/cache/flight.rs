//! Per-key single flight: concurrent callers of one missing key share one computation.
//!
//! A generic primitive that knows nothing of caches (as quick_cache's `placeholder.rs` knows
//! nothing of its shard): [`Flights`] is a table of the computations in progress, keyed by
//! `(hash, key)`; [`Flight`] is one of them, which its leader ends once with an outcome that
//! every waiter reads. What a flight computes, where its value is stored and what is counted
//! is the business of its caller (`cache::load`).
//!
//! The first caller of a missing key becomes the *leader*: it registers a [`Flight`] in the
//! table and runs the computation with no lock held. Later callers of the same key find the
//! flight and wait on it (a blocking caller parks its thread, an async one awaits a
//! [`tokio::sync::Notify`], which needs no runtime). Callers of other keys never touch it.
//!
//! The hand-over is lock-free: the leader publishes the outcome once in a `OnceLock`, then
//! unparks every parked thread and wakes every waiting task with one `notify_waiters`, holding
//! no lock while they run; each woken waiter reads the outcome without taking any lock (no
//! mutex that the waiters take in turn, no re-registration with the `Notify`, no second lookup)
//! and clones the value.
//!
//! How a flight ends:
//! - **value**: every waiter gets a clone.
//! - **error** (`try_*` variants): every waiter gets a copy of the leader's error: a clone, or
//!   for an error type that is not `Clone` but converts from [`LoadFailed`] (`anyhow::Error`,
//!   `Box<dyn Error + Send + Sync>`), a `LoadFailed` with the leader's message. A waiter whose
//!   own call has a different error type (or none) retries instead.
//! - **failed** (an error that cannot be copied either): one waiter takes over, the others
//!   wait for it; a waiter that sees a second failure runs its own computation, uncoalesced,
//!   rather than queue for one waiter's run after another's (`cache::load` keeps that count).
//! - **abandoned** (the leader panicked, or its future was dropped): one waiter takes over as the
//!   new leader and runs its own computation; the others wait for that one. No waiter hangs and
//!   none sees a panic it did not cause.

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use equivalent::Equivalent;
use hashbrown::HashTable;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::cache::sync::{self, OnceLock, Thread};

/// A flight in the table: (hash, key, flight).
type Registered<K, V> = (u64, K, Arc<Flight<V>>);

/// The computations in progress, by key.
pub(crate) struct Flights<K, V> {
    table: Mutex<HashTable<Registered<K, V>>>,
    /// The table's length, published after each change, so that writes (`insert`, `invalidate`)
    /// skip the table's lock when nothing is computing, which is nearly always. A computation
    /// that registers after a write read this as zero started after that write, so its result is
    /// not older than the write.
    registered: AtomicUsize,
}

impl<K, V> Default for Flights<K, V> {
    fn default() -> Self {
        Flights {
            table: Mutex::new(HashTable::new()),
            registered: AtomicUsize::new(0),
        }
    }
}

impl<K, V> Flights<K, V> {
    fn publish_len(&self, table: &HashTable<Registered<K, V>>) {
        self.registered.store(table.len(), Ordering::Release);
    }
}

/// One computation in progress.
pub(crate) struct Flight<V> {
    /// Set once, when the flight ends; read by the waiters without a lock. Blocking waiters
    /// sleep in it until then.
    ended: Handover<Ended<V>>,
    ended_async: Notify,
    /// Set when the key was invalidated, replaced or cleared while computing: the result may
    /// predate that write, so it is handed to the callers already waiting but not stored.
    superseded: AtomicBool,
    /// How long the value may live in the cache at most, in nanoseconds, when a tier gave it
    /// with less than its ttl left (`u64::MAX`: no limit).
    lifetime: AtomicU64,
    /// Whether other callers of the key wait for it; `false` for a caller that computes alone
    /// (`coalesce = false`, or after a failure it could not share), whose flight is in the table
    /// only so that writes supersede it.
    joinable: bool,
}

/// A value published once, for threads that block until it is: the blocking half of a flight's
/// hand-over. Its primitives come from `crate::cache::sync`, so that under `--cfg shuttle` a test
/// explores its interleavings (`shuttle_tests` below).
struct Handover<T> {
    /// Set once; read without a lock.
    outcome: OnceLock<T>,
    /// The threads that wait for the outcome, each unparked once it is published.
    sleepers: sync::Mutex<Vec<Thread>>,
}

impl<T> Handover<T> {
    fn new() -> Self {
        Handover {
            outcome: OnceLock::new(),
            sleepers: sync::Mutex::new(Vec::new()),
        }
    }

    /// The outcome, if published.
    fn get(&self) -> Option<&T> {
        self.outcome.get()
    }

    /// Blocks until the outcome is published.
    fn wait(&self) -> &T {
        if let Some(outcome) = self.outcome.get() {
            return outcome;
        }
        // Registered before the outcome is read again: `publish` publishes the outcome before
        // it takes the list, so this thread either is in the list it takes or sees the outcome.
        self.sleepers.lock().push(sync::current());
        loop {
            if let Some(outcome) = self.outcome.get() {
                return outcome;
            }
            // An unpark that came first makes this return at once; a spurious return loops.
            sync::park();
        }
    }

    /// Publishes the outcome, then unparks every waiting thread, outside the list's lock.
    /// Returns false, publishing nothing, if an outcome was published already.
    fn publish(&self, outcome: T) -> bool {
        if self.outcome.set(outcome).is_err() {
            return false;
        }
        let sleepers = std::mem::take(&mut *self.sleepers.lock());
        for sleeper in sleepers {
            sleeper.unpark();
        }
        true
    }
}

/// How a flight ended.
pub(crate) enum Ended<V> {
    Value(V),
    Error(SharedError),
    /// The leader's error cannot be copied: waiters retry once, then compute on their own.
    Failed,
    /// The leader gave up without a value (it panicked, was cancelled, or released the key
    /// before computing): a waiter takes over.
    Abandoned,
    /// The computation gave no value for the key (a batch's answer left it out): waiters leave
    /// it out too.
    Absent,
}

/// A leader's error, kept for its waiters.
type SharedError = Arc<dyn Any + Send + Sync>;

/// How an error type crosses from a leader to its waiters; only errors that are `Clone`,
/// `Send` and `Sync` can. Used by `#[cached]`; not part of the stable API.
#[doc(hidden)]
pub struct ShareError<E> {
    share: fn(&E) -> SharedError,
    copy: fn(&SharedError) -> Option<E>,
}

impl<E> Clone for ShareError<E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for ShareError<E> {}

impl<E: Clone + Send + Sync + 'static> ShareError<E> {
    pub(crate) const BY_CLONE: Self = ShareError {
        share: |error| Arc::new(error.clone()),
        // A waiter whose own error type differs gets `None` and retries.
        copy: |shared| shared.downcast_ref::<E>().cloned(),
    };
}

impl<E: From<LoadFailed> + fmt::Display> ShareError<E> {
    pub(crate) const AS_LOAD_FAILED: Self = ShareError {
        share: |error| {
            Arc::new(LoadFailed {
                message: error.to_string(),
            })
        },
        copy: |shared| shared.downcast_ref::<LoadFailed>().cloned().map(E::from),
    };
}

/// The error a coalesced caller gets when the computation it waited for failed with an error
/// that is not `Clone`, for error types that convert from it (`anyhow::Error`,
/// `Box<dyn Error + Send + Sync>`, or your own with `impl From<LoadFailed>`): one computation
/// fails for every waiter, instead of each waiter running its own.
///
/// Its message is the leader's error's, after "memokit: the coalesced computation failed: ".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadFailed {
    message: String,
}

impl LoadFailed {
    /// The `Display` text of the leader's error.
    pub fn leader_error(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for LoadFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "memokit: the coalesced computation failed: {}",
            self.message
        )
    }
}

impl std::error::Error for LoadFailed {}

impl<V: Clone> Ended<V> {
    /// How a leader's `result` ends its flight: a value, an error its waiters can copy (with
    /// `share_error`), or abandoned, for one waiter to take over.
    pub(crate) fn of<E>(result: &Result<V, E>, share_error: Option<ShareError<E>>) -> Self {
        match result {
            Ok(value) => Ended::Value(value.clone()),
            Err(error) => Ended::failure(error, share_error),
        }
    }

    /// How a failed computation ends its flight: with an error its waiters can copy, or
    /// abandoned to one of them.
    pub(crate) fn failure<E>(error: &E, share_error: Option<ShareError<E>>) -> Self {
        match share_error {
            Some(share) => Ended::Error((share.share)(error)),
            None => Ended::Failed,
        }
    }
}

/// What a caller of a key found in the table.
pub(crate) enum Joined<V> {
    /// Another caller computes the key: wait for it.
    Wait(Arc<Flight<V>>),
    /// No flight, and the value is there now (a leader stores it before leaving the table).
    Ready(V),
    /// This caller leads the new flight; it leaves the table with [`Flights::leave`].
    Started(Arc<Flight<V>>),
}

/// What a waiter learnt when the flight ended.
pub(crate) enum Outcome<V, E> {
    Done(Result<V, E>),
    /// Take over: look the key up again, and lead or wait.
    Retry,
    /// The leader failed with an error this waiter cannot copy: take over like `Retry` the
    /// first time, compute on its own (in no flight) after that.
    Failed,
    /// The computation gave no value for the key (only a batch's can).
    Absent,
}

impl<V> Flight<V> {
    fn new(joinable: bool) -> Self {
        Flight {
            ended: Handover::new(),
            ended_async: Notify::new(),
            superseded: AtomicBool::new(false),
            lifetime: AtomicU64::new(u64::MAX),
            joinable,
        }
    }

    /// What identifies the flight in [`RunningHere`]: its address, unique while it is alive.
    fn id(self: &Arc<Self>) -> usize {
        Arc::as_ptr(self).addr()
    }

    /// Whether the flight's computation is running on this thread right now, so that a caller
    /// here that waited for it would wait for itself.
    fn is_running_here(self: &Arc<Self>) -> bool {
        let id = self.id();
        RUNNING_HERE.with_borrow(|running| running.contains(&id))
    }

    /// Whether the key was invalidated, replaced or cleared since the flight started.
    pub(crate) fn is_superseded(&self) -> bool {
        self.superseded.load(Ordering::Acquire)
    }

    /// The superseded flag, for a store that must not overwrite a newer value (read under the
    /// store's lock).
    pub(crate) fn superseded_flag(&self) -> &AtomicBool {
        &self.superseded
    }

    /// The most its value may live in the cache, in nanoseconds, if a tier limited it (see
    /// [`Superseded::limit_lifetime`]).
    pub(crate) fn lifetime_limit(&self) -> Option<u64> {
        Some(self.lifetime.load(Ordering::Acquire)).filter(|&nanos| nanos != u64::MAX)
    }

    /// The flight's superseded flag for its computation (a weak reference: it does not keep the
    /// flight alive or count as one of its waiters); `refresh` tells whether the computation
    /// refreshes a value still cached.
    pub(crate) fn superseded(self: &Arc<Self>, refresh: bool) -> Superseded<V> {
        Superseded(Arc::downgrade(self), refresh)
    }

    /// Whether anyone but the leader holds the flight (once it left the table: a waiter).
    pub(crate) fn has_waiters(self: &Arc<Self>) -> bool {
        Arc::strong_count(self) > 1
    }
}

impl<V: Clone> Flight<V> {
    /// Blocks until the flight ends.
    pub(crate) fn wait<E>(&self, share_error: Option<ShareError<E>>) -> Outcome<V, E> {
        Self::outcome(self.ended.wait(), share_error)
    }

    /// Awaits the end of the flight on any executor; [`Flight::ended`] then tells its outcome.
    ///
    /// Not an `async fn`, which would store `self` twice, and the outcome is read apart: every
    /// waiter's future holds this one (see `cache::load::load_async`).
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn wait_async<'f>(&'f self) -> impl Future<Output = ()> + use<'f, V> {
        async move {
            if self.ended.get().is_some() {
                return;
            }
            let mut notified = std::pin::pin!(self.ended_async.notified());
            // Registered before the outcome is read again: an end between the two wakes it.
            notified.as_mut().enable();
            if self.ended.get().is_none() {
                notified.await;
            }
        }
    }

    /// The outcome of a flight that ended, for an async waiter.
    pub(crate) fn ended<E>(&self, share_error: Option<ShareError<E>>) -> Outcome<V, E> {
        // `end` publishes the outcome before it wakes anyone, and only `end` wakes.
        let ended = self
            .ended
            .get()
            .expect("a flight wakes its waiters once it ended");
        Self::outcome(ended, share_error)
    }

    fn outcome<E>(ended: &Ended<V>, share_error: Option<ShareError<E>>) -> Outcome<V, E> {
        match ended {
            Ended::Value(value) => Outcome::Done(Ok(value.clone())),
            Ended::Error(error) => match share_error.and_then(|share| (share.copy)(error)) {
                Some(error) => Outcome::Done(Err(error)),
                None => Outcome::Retry,
            },
            Ended::Failed => Outcome::Failed,
            Ended::Abandoned => Outcome::Retry,
            Ended::Absent => Outcome::Absent,
        }
    }

    /// Publishes the outcome, then wakes every waiter: each parked thread by its own unpark,
    /// outside any lock, and every task with one `notify_waiters`.
    pub(crate) fn end(&self, ended: Ended<V>) {
        let first = self.ended.publish(ended);
        debug_assert!(first, "a flight ends once");
        if !first {
            return;
        }
        self.ended_async.notify_waiters();
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Flights<K, V> {
    /// Looks for a flight of `key`; with none, asks `ready` for the value once more (a leader
    /// stores its value before leaving the table) and otherwise starts one. A flight whose
    /// computation is running on this thread (see [`RunningHere`]) is same-key recursion,
    /// which panics instead of deadlocking.
    pub(crate) fn join(&self, hash: u64, key: &K, ready: impl FnOnce() -> Option<V>) -> Joined<V> {
        let mut table = self.table.lock();
        if let Some((_, _, flight)) =
            table.find(hash, |(h, k, f)| f.joinable && *h == hash && k == key)
        {
            let flight = flight.clone();
            // Not under the table's lock: the panic unwinds through this caller's code.
            drop(table);
            assert!(
                !flight.is_running_here(),
                "memokit: a computation called itself with the same key; waiting for it would deadlock"
            );
            return Joined::Wait(flight);
        }
        if let Some(value) = ready() {
            return Joined::Ready(value);
        }
        Joined::Started(self.register(&mut table, hash, key))
    }

    /// Starts a flight of `key` unless one is in progress or `due` says it is not needed
    /// (asked under the table's lock, so that a flight that just left it is seen).
    pub(crate) fn start_unless_running(
        &self,
        hash: u64,
        key: &K,
        due: impl FnOnce() -> bool,
    ) -> Option<Arc<Flight<V>>> {
        let mut table = self.table.lock();
        if table
            .find(hash, |(h, k, f)| f.joinable && *h == hash && k == key)
            .is_some()
            || !due()
        {
            return None;
        }
        Some(self.register(&mut table, hash, key))
    }

    /// A flight of `key` that nobody joins, for a caller that computes alone: in the table only
    /// so that writes of the key supersede it, as they do a shared one.
    pub(crate) fn start_alone(&self, hash: u64, key: &K) -> Arc<Flight<V>> {
        let mut table = self.table.lock();
        self.insert(&mut table, hash, key, false)
    }

    fn register(
        &self,
        table: &mut HashTable<Registered<K, V>>,
        hash: u64,
        key: &K,
    ) -> Arc<Flight<V>> {
        self.insert(table, hash, key, true)
    }

    fn insert(
        &self,
        table: &mut HashTable<Registered<K, V>>,
        hash: u64,
        key: &K,
        joinable: bool,
    ) -> Arc<Flight<V>> {
        let flight = Arc::new(Flight::new(joinable));
        table.insert_unique(hash, (hash, key.clone(), flight.clone()), |(h, _, _)| *h);
        self.publish_len(table);
        flight
    }

    /// Removes `flight` (of `key`) from the table, if still there: later callers start anew.
    pub(crate) fn leave(&self, hash: u64, key: &K, flight: &Arc<Flight<V>>) {
        let mut table = self.table.lock();
        if let Ok(entry) = table.find_entry(hash, |(_, k, f)| k == key && Arc::ptr_eq(f, flight)) {
            entry.remove();
        }
        self.publish_len(&table);
    }
}

impl<K: Hash + Eq, V> Flights<K, V> {
    /// Detaches the computation of `key`, if any, so that its result is not stored and later
    /// callers start a fresh one (see `Flight::superseded`).
    pub(crate) fn supersede<Q>(&self, hash: u64, key: &Q)
    where
        Q: Equivalent<K> + ?Sized,
    {
        if self.registered.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut table = self.table.lock();
        // Every one: a key computed alone may have several flights.
        while let Ok(entry) = table.find_entry(hash, |(h, k, _)| *h == hash && key.equivalent(k)) {
            let ((_, _, flight), _) = entry.remove();
            flight.superseded.store(true, Ordering::Release);
        }
        self.publish_len(&table);
    }

    /// Detaches every computation of the shard.
    pub(crate) fn supersede_all(&self) {
        let mut table = self.table.lock();
        for (_, _, flight) in table.drain() {
            flight.superseded.store(true, Ordering::Release);
        }
        self.publish_len(&table);
    }
}

thread_local! {
    /// The ids of the flights whose computation runs on this thread right now, innermost last.
    static RUNNING_HERE: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Marks a flight's computation as running on this thread until dropped: a blocking leader's
/// for its whole run, an async leader's during each poll of its future. A caller that finds
/// such a flight in the table was called from inside that computation, on its stack: the same
/// thread, or the same task (an async call of the key polled inside the leader's poll). A call
/// from another task the computation spawned, or a future sent to another thread, is not seen.
pub(crate) struct RunningHere(usize);

impl RunningHere {
    pub(crate) fn enter<V>(flight: &Arc<Flight<V>>) -> Self {
        let id = flight.id();
        RUNNING_HERE.with_borrow_mut(|running| running.push(id));
        RunningHere(id)
    }
}

impl Drop for RunningHere {
    fn drop(&mut self) {
        // Entered and dropped in nested order, on one thread (a poll or a run never moves).
        let left = RUNNING_HERE.with_borrow_mut(|running| running.pop());
        debug_assert_eq!(left, Some(self.0));
    }
}

/// Tells a running computation whether it was superseded (its key invalidated, replaced or
/// cleared meanwhile): its result is then stored nowhere, so the shared tier skips its write
/// too. Also tells whether it is a refresh (the shared tier then computes without reading).
pub(crate) struct Superseded<V>(Weak<Flight<V>>, bool);

impl<V> Clone for Superseded<V> {
    fn clone(&self) -> Self {
        Superseded(self.0.clone(), self.1)
    }
}

impl<V> Superseded<V> {
    /// Whether the computation's result must not be stored.
    pub(crate) fn get(&self) -> bool {
        self.0
            .upgrade()
            .is_some_and(|flight| flight.superseded.load(Ordering::Acquire))
    }

    /// Whether the computation refreshes a value still cached.
    // Read by the tiers, which are all optional.
    #[allow(dead_code)]
    pub(crate) fn is_refresh(&self) -> bool {
        self.1
    }

    /// Stores the value for at most `left` (a tier's copy that has only that long to live).
    // Called by the disk tier, which is optional.
    #[allow(dead_code)]
    pub(crate) fn limit_lifetime(&self, left: std::time::Duration) {
        if let Some(flight) = self.0.upgrade() {
            let nanos = u64::try_from(left.as_nanos()).unwrap_or(u64::MAX - 1);
            flight.lifetime.fetch_min(nanos, Ordering::AcqRel);
        }
    }
}

/// The blocking hand-over, model-checked: `RUSTFLAGS="--cfg shuttle" cargo test -p memokit --lib
/// shuttle` explores interleavings of a leader ending a flight and blocking waiters, through
/// `Flight::end` and `Flight::wait`. A lost wake-up leaves a waiter parked for ever, which
/// `shuttle` reports as a deadlock.
#[cfg(all(test, shuttle))]
mod shuttle_tests {
    use std::sync::Arc;

    use super::{Ended, Flight, Outcome};

    /// One leader ends a flight with a value while `waiters` threads wait for it.
    fn value_reaches_every_waiter(waiters: usize) {
        let flight = Arc::new(Flight::<u64>::new(true));
        let waiting: Vec<_> = (0..waiters)
            .map(|_| {
                let flight = flight.clone();
                shuttle::thread::spawn(move || match flight.wait::<()>(None) {
                    Outcome::Done(Ok(value)) => value,
                    _ => panic!("a waiter missed the value"),
                })
            })
            .collect();
        let leader = {
            let flight = flight.clone();
            shuttle::thread::spawn(move || flight.end(Ended::Value(42)))
        };
        leader.join().unwrap();
        for waiter in waiting {
            assert_eq!(waiter.join().unwrap(), 42);
        }
    }

    /// An abandoned flight (the leader panicked) wakes every waiter too, each to take over.
    fn abandonment_reaches_every_waiter() {
        let flight = Arc::new(Flight::<u64>::new(true));
        let waiting: Vec<_> = (0..2)
            .map(|_| {
                let flight = flight.clone();
                shuttle::thread::spawn(move || matches!(flight.wait::<()>(None), Outcome::Retry))
            })
            .collect();
        flight.end(Ended::Abandoned);
        for waiter in waiting {
            assert!(waiter.join().unwrap());
        }
    }

    #[test]
    fn shuttle_handover_two_waiters() {
        shuttle::check_random(|| value_reaches_every_waiter(2), 10_000);
        shuttle::check_pct(|| value_reaches_every_waiter(2), 10_000, 3);
    }

    #[test]
    fn shuttle_handover_three_waiters() {
        shuttle::check_random(|| value_reaches_every_waiter(3), 10_000);
        shuttle::check_pct(|| value_reaches_every_waiter(3), 10_000, 3);
    }

    #[test]
    fn shuttle_handover_abandoned() {
        shuttle::check_random(abandonment_reaches_every_waiter, 5000);
        shuttle::check_pct(abandonment_reaches_every_waiter, 5000, 3);
    }
}
