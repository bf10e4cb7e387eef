//! Per-key single flight: concurrent callers of one missing key share one computation.
//!
//! The first caller of a missing key becomes the *leader*: it registers a [`Flight`] in its
//! shard's flight table and runs the computation with no lock held. Later callers of the same key
//! find the flight and wait on it (a blocking caller parks its thread, an async one awaits a
//! [`tokio::sync::Notify`], which needs no runtime). Callers of other keys never touch it.
//!
//! The hand-over is lock-free: the leader publishes the outcome once in a `OnceLock`, then
//! unparks every parked thread and wakes every waiting task with one `notify_waiters`, holding
//! no lock while they run; each woken waiter reads the outcome without taking any lock (no
//! mutex that the waiters take in turn, no re-registration with the `Notify`, no second lookup)
//! and clones the value.
//!
//! How a flight ends:
//! - **value**: the leader stores it in the cache, then every waiter gets a clone.
//! - **error** (`try_*` variants): nothing is cached; every waiter gets a clone of the leader's
//!   error. A waiter whose own call has a different error type (or none) retries instead.
//! - **abandoned** (the leader panicked, or its future was dropped): one waiter takes over as the
//!   new leader and runs its own computation; the others wait for that one. No waiter hangs and
//!   none sees a panic it did not cause.

use std::any::Any;
use std::borrow::Borrow;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use hashbrown::HashTable;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::cache::stats::bump;
use crate::cache::sync::{self, OnceLock, Thread};
use crate::cache::trace::{LoadOutcome, LoadSpan};
use crate::cache::Cache;
use crate::cache::LoadRule;

/// A flight in its shard's table: (hash, key, flight).
type Registered<K, V> = (u64, K, Arc<Flight<V>>);

/// The flights of one shard.
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
    /// The thread of a blocking leader, to detect a same-key recursive call.
    leader_thread: Option<ThreadId>,
    /// Set when the key was invalidated, replaced or cleared while computing: the result may
    /// predate that write, so it is handed to the callers already waiting but not stored.
    superseded: AtomicBool,
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
enum Ended<V> {
    Value(V),
    Error(SharedError),
    Abandoned,
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

/// What a caller of a missing key does next.
pub(crate) enum Join<'a, K: Hash + Eq + Clone, V: Clone> {
    /// The value arrived in the cache meanwhile.
    Ready(V),
    /// This caller runs the computation.
    Lead(Leader<'a, K, V>),
    /// Another caller runs it.
    Wait(Arc<Flight<V>>),
}

/// What a waiter learnt when the flight ended.
pub(crate) enum Outcome<V, E> {
    Done(Result<V, E>),
    /// Take over: look the key up again, and lead or wait.
    Retry,
}

impl<V: Clone> Flight<V> {
    fn new(leader_thread: Option<ThreadId>) -> Self {
        Flight {
            ended: Handover::new(),
            ended_async: Notify::new(),
            leader_thread,
            superseded: AtomicBool::new(false),
        }
    }

    /// Blocks until the flight ends.
    pub(crate) fn wait<E>(&self, share_error: Option<ShareError<E>>) -> Outcome<V, E> {
        Self::outcome(self.ended.wait(), share_error)
    }

    /// Awaits the end of the flight on any executor; [`Flight::ended`] then tells its outcome.
    ///
    /// Not an `async fn`, which would store `self` twice, and the outcome is read apart: every
    /// waiter's future holds this one (see `Cache::load_async`).
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
            Ended::Abandoned => Outcome::Retry,
        }
    }

    /// Publishes the outcome, then wakes every waiter: each parked thread by its own unpark,
    /// outside any lock, and every task with one `notify_waiters`.
    fn end(&self, ended: Ended<V>) {
        let first = self.ended.publish(ended);
        debug_assert!(first, "a flight ends once");
        if !first {
            return;
        }
        self.ended_async.notify_waiters();
    }
}

/// The leader's handle on its flight. Dropped without [`Leader::finish`] (a panic, a cancelled
/// future), it hands the key over to a waiter.
pub(crate) struct Leader<'a, K: Hash + Eq + Clone, V: Clone> {
    cache: &'a Cache<K, V>,
    shard: usize,
    hash: u64,
    key: Option<K>,
    flight: Arc<Flight<V>>,
    started: Instant,
    /// A refresh of a value still cached (counted as a refresh, not a load).
    refresh: bool,
    span: LoadSpan,
}

impl<K: Hash + Eq + Clone, V: Clone> Cache<K, V> {
    /// Looks for a flight of `key`; with none, checks the cache once more (a leader stores its
    /// value before leaving the table) and otherwise starts one. `blocking` records the leader's
    /// thread to detect same-key recursion.
    pub(crate) fn join_flight(
        &self,
        shard: usize,
        hash: u64,
        key: &K,
        blocking: bool,
        coalesce: bool,
        waited: &mut bool,
    ) -> Join<'_, K, V> {
        let owner = &self.inner.shards[shard];
        if !coalesce {
            // A private flight nobody can join: the caller computes on its own.
            return Join::Lead(Leader::new(
                self,
                shard,
                hash,
                key,
                Arc::new(Flight::new(None)),
            ));
        }
        let mut table = owner.flights.table.lock();
        if let Some((_, _, flight)) = table.find(hash, |(h, k, _)| *h == hash && k == key) {
            assert!(
                !blocking || flight.leader_thread != Some(thread::current().id()),
                "memokit: a computation called itself with the same key; waiting for it would deadlock"
            );
            // One wait per call, however many hand-overs it sees.
            if !std::mem::replace(waited, true) {
                bump(&owner.counters.coalesced_waits);
            }
            return Join::Wait(flight.clone());
        }
        if let Some(value) = owner
            .lookup(&self.inner.config, hash, key, self.now())
            .value()
        {
            return Join::Ready(value);
        }
        let flight = Arc::new(Flight::new(blocking.then(|| thread::current().id())));
        table.insert_unique(hash, (hash, key.clone(), flight.clone()), |(h, _, _)| *h);
        owner.flights.publish_len(&table);
        Join::Lead(Leader::new(self, shard, hash, key, flight))
    }

    /// Starts the refresh of `key`, found due for one, unless one is already in flight (or a
    /// computation of the key is: its value will be as fresh) or the entry was refreshed
    /// meanwhile. The caller that gets the leader runs the refresh; the others keep the old
    /// value.
    pub(crate) fn lead_refresh(
        &self,
        shard: usize,
        hash: u64,
        key: &K,
        blocking: bool,
    ) -> Option<Leader<'_, K, V>> {
        let owner = &self.inner.shards[shard];
        let mut table = owner.flights.table.lock();
        if table
            .find(hash, |(h, k, _)| *h == hash && k == key)
            .is_some()
        {
            return None;
        }
        // A refresh that just finished stored its value before leaving the table.
        if !owner.refresh_due(hash, key, self.now()) {
            return None;
        }
        let flight = Arc::new(Flight::new(blocking.then(|| thread::current().id())));
        table.insert_unique(hash, (hash, key.clone(), flight.clone()), |(h, _, _)| *h);
        owner.flights.publish_len(&table);
        let mut leader = Leader::new(self, shard, hash, key, flight);
        leader.refresh = true;
        Some(leader)
    }
}

impl<K: Hash + Eq, V> Flights<K, V> {
    /// Detaches the computation of `key`, if any, so that its result is not stored and later
    /// callers start a fresh one (see `Flight::superseded`).
    pub(crate) fn supersede<Q>(&self, hash: u64, key: &Q)
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        if self.registered.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut table = self.table.lock();
        if let Ok(entry) = table.find_entry(hash, |(h, k, _)| *h == hash && k.borrow() == key) {
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

/// Tells a running computation whether it was superseded (its key invalidated, replaced or
/// cleared meanwhile): its result is then stored nowhere, so the shared tier skips its write
/// too. Also tells whether it is a refresh (the shared tier then computes without reading).
pub(crate) struct Superseded<V>(Weak<Flight<V>>, bool);

impl<V> Superseded<V> {
    /// Whether the computation's result must not be stored.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn get(&self) -> bool {
        self.0
            .upgrade()
            .is_some_and(|flight| flight.superseded.load(Ordering::Acquire))
    }

    /// Whether the computation refreshes a value still cached.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn is_refresh(&self) -> bool {
        self.1
    }
}

impl<'a, K: Hash + Eq + Clone, V: Clone> Leader<'a, K, V> {
    /// The superseded flag of this computation (a weak reference: it does not keep the flight
    /// alive or count as one of its waiters).
    pub(crate) fn superseded(&self) -> Superseded<V> {
        Superseded(Arc::downgrade(&self.flight), self.refresh)
    }

    fn new(
        cache: &'a Cache<K, V>,
        shard: usize,
        hash: u64,
        key: &K,
        flight: Arc<Flight<V>>,
    ) -> Self {
        let key = Some(key.clone());
        Leader {
            cache,
            shard,
            hash,
            key,
            flight,
            started: Instant::now(),
            refresh: false,
            span: LoadSpan::start(&cache.inner.config.name),
        }
    }

    /// The key being computed.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn key(&self) -> &K {
        self.key
            .as_ref()
            .expect("a leader holds its key until it finishes")
    }

    /// The span the computation runs in (feature `tracing`).
    pub(crate) fn span(&self) -> &LoadSpan {
        &self.span
    }

    /// Ends the flight with the computation's result: a value is stored in the cache when the
    /// rule says so and handed to the waiters; an error is handed to the waiters when the rule
    /// can share it, and otherwise one waiter takes over.
    pub(crate) fn finish<E>(mut self, result: &Result<V, E>, rule: LoadRule<V, E>) {
        let nanos = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        // The key stays in `self` until the last user code has run: should it panic (a weigher
        // or eviction listener while storing, a clone), `Drop` still ends the flight instead of
        // leaving its waiters asleep forever, and counts the load once.
        let key = self.key.as_ref().expect("finished once");
        let stored = result.as_ref().is_ok_and(|value| (rule.store)(value));
        if !stored {
            // Before leaving the table, so that no hit starts the next refresh right away.
            self.postpone_refresh();
        }
        if let Ok(value) = result {
            if (rule.store)(value) {
                let superseded = Some(&self.flight.superseded);
                self.cache.insert_hashed(
                    self.shard,
                    self.hash,
                    key.clone(),
                    value.clone(),
                    superseded,
                );
            }
        }
        self.leave_table(key);
        // No waiter can find the flight any more; without one, skip cloning for nobody.
        let ended =
            (Arc::strong_count(&self.flight) > 1).then(|| match (result, rule.share_error) {
                (Ok(value), _) => Ended::Value(value.clone()),
                (Err(error), Some(share)) => Ended::Error((share.share)(error)),
                (Err(_), None) => Ended::Abandoned,
            });
        // Counted before the waiters wake, so that they see this load in the stats.
        self.count(result.is_err(), nanos);
        self.key = None;
        let outcome = match result {
            Ok(_) => LoadOutcome::Ok,
            Err(_) => LoadOutcome::Error,
        };
        self.span.end(outcome, Duration::from_nanos(nanos));
        if let Some(ended) = ended {
            self.flight.end(ended);
        }
    }

    /// Counts the end of the computation: a load, or a refresh.
    fn count(&self, failed: bool, nanos: u64) {
        let counters = &self.cache.inner.shards[self.shard].counters;
        if self.refresh {
            bump(&counters.refreshes);
            if failed {
                bump(&counters.refresh_failures);
            }
            return;
        }
        bump(&counters.loads);
        counters
            .load_nanos
            .fetch_add(nanos, std::sync::atomic::Ordering::Relaxed);
        if failed {
            bump(&counters.load_failures);
        }
    }

    /// After a refresh that stored nothing, the entry keeps its old value and waits
    /// `ExpiryPolicy::refresh_backoff` for the next attempt (a superseded refresh leaves the
    /// newer entry alone).
    fn postpone_refresh(&self) {
        if !self.refresh || self.flight.superseded.load(Ordering::Acquire) {
            return;
        }
        let (Some(key), Some(now)) = (&self.key, self.cache.now()) else {
            return;
        };
        let at = now.saturating_add(self.cache.inner.config.expiry.refresh_backoff());
        self.cache.inner.shards[self.shard].postpone_refresh(self.hash, key, Some(now), at);
    }

    fn leave_table(&self, key: &K) {
        let flights = &self.cache.inner.shards[self.shard].flights;
        let mut table = flights.table.lock();
        if let Ok(entry) = table.find_entry(self.hash, |(_, k, f)| {
            k == key && Arc::ptr_eq(f, &self.flight)
        }) {
            entry.remove();
        }
        flights.publish_len(&table);
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Drop for Leader<'_, K, V> {
    fn drop(&mut self) {
        if self.key.is_some() {
            self.postpone_refresh();
            self.count(true, 0);
            let outcome = if thread::panicking() {
                LoadOutcome::Panic
            } else {
                LoadOutcome::Cancelled
            };
            self.span.end(outcome, self.started.elapsed());
            let key = self.key.take().expect("checked");
            self.leave_table(&key);
            self.flight.end(Ended::Abandoned);
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
        let flight = Arc::new(Flight::<u64>::new(None));
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
        let flight = Arc::new(Flight::<u64>::new(None));
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
