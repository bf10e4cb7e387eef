//! The miss path: look the key up, then lead or join its flight, run the computation with no
//! lock held, store its value and count it.
//!
//! Plain functions over a [`Cache`] and its [`Flights`]: [`lookup`] and [`step`] tell a caller
//! what to do next, and two loops drive them, [`load_with`] for a blocking caller and
//! [`load_async_detachable`] for a future. A [`Leader`] is the handle of the caller that
//! computes: it stores, counts and ends the flight, or hands the key over when dropped.

use std::convert::Infallible;
use std::future::Future;
use std::hash::Hash;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use equivalent::Equivalent;

use crate::cache::flight::{
    Ended, Flight, Flights, Joined, Outcome, RunningHere, ShareError, Superseded,
};
use crate::cache::key::{LookupKey, Owned};
use crate::cache::stats::{bump, Counters};
use crate::cache::stopwatch::Stopwatch;
use crate::cache::trace::{LoadOutcome, LoadSpan};
use crate::cache::Cache;

/// How one load treats its outcome.
pub(crate) struct LoadRule<V, E> {
    /// Whether a computed value is stored (e.g. not a `None` when `None`s are not cached).
    pub(crate) store: fn(&V) -> bool,
    /// How waiters get a copy of the leader's error; without it, one waiter of a failed run
    /// runs the computation again, and a waiter that sees that fail too runs its own.
    pub(crate) share_error: Option<ShareError<E>>,
    /// Whether concurrent callers of one key share one computation.
    pub(crate) coalesce: bool,
    /// Whether an error is a failed load (counted in `load_failures`, and answered with a
    /// stale-if-error value), rather than a computation that found nothing to store.
    pub(crate) fails: fn(&E) -> bool,
}

impl<V, E> Clone for LoadRule<V, E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V, E> Copy for LoadRule<V, E> {}

impl<V, E> LoadRule<V, E> {
    pub(crate) const ALWAYS: Self = LoadRule {
        store: |_| true,
        share_error: None,
        coalesce: true,
        fails: |_| true,
    };
}

/// Why an `…optionally…` load stored no value: its `init` found nothing (not a failure), or
/// failed.
#[derive(Debug, Clone)]
enum Unstored<E> {
    Nothing,
    Failed(E),
}

impl<V, E: Clone + Send + Sync + 'static> LoadRule<V, Unstored<E>> {
    /// A computation's `None` and its error are both shared with its waiters; only the error
    /// is a failed load.
    const OPTIONAL: Self = LoadRule {
        store: |_| true,
        share_error: Some(ShareError::BY_CLONE),
        coalesce: true,
        fails: |unstored| matches!(unstored, Unstored::Failed(_)),
    };
}

fn unstored<V, E>(computed: Result<Option<V>, E>) -> Result<V, Unstored<E>> {
    match computed {
        Ok(Some(value)) => Ok(value),
        Ok(None) => Err(Unstored::Nothing),
        Err(error) => Err(Unstored::Failed(error)),
    }
}

fn optional<V, E>(loaded: Result<V, Unstored<E>>) -> Result<Option<V>, E> {
    match loaded {
        Ok(value) => Ok(Some(value)),
        Err(Unstored::Nothing) => Ok(None),
        Err(Unstored::Failed(error)) => Err(error),
    }
}

/// The value of a load that cannot fail.
pub(crate) fn infallible<V>(result: Result<V, Infallible>) -> V {
    match result {
        Ok(value) => value,
        Err(never) => match never {},
    }
}

/// The loading half of [`Cache`]'s API: it sits above the cache, whose query half knows
/// nothing of loads.
impl<K: Hash + Eq + Clone, V: Clone> Cache<K, V> {
    /// The value of `key`, computing and storing it with `init` on a miss.
    ///
    /// Concurrent callers of the same missing key run `init` once: the first runs it, the others
    /// block (without spinning and without holding any shard lock) and receive a clone of its
    /// value. Callers of other keys are never held up. If the running `init` panics, the panic
    /// goes to its own caller and one waiter takes over with its own `init`. Calling it again
    /// for the same key from inside `init` panics with a message instead of deadlocking.
    ///
    /// ```
    /// let cache: memokit::Cache<u64, u64> = memokit::Cache::new(100);
    /// assert_eq!(cache.get_or_insert_with(3, || 3 * 3), 9);
    /// assert_eq!(cache.get_or_insert_with(3, || unreachable!()), 9);
    /// ```
    pub fn get_or_insert_with(&self, key: K, init: impl FnOnce() -> V) -> V {
        infallible(load_with(
            self,
            Owned(key),
            |_, _| Ok(init()),
            LoadRule::ALWAYS,
        ))
    }

    /// Like [`get_or_insert_with`](Self::get_or_insert_with) for a fallible `init`: an `Ok`
    /// value is stored; an `Err` is not, and is returned to the caller that ran `init` and, as a
    /// clone, to every caller that was waiting on that run (so a failing source sees one call,
    /// not one per waiter). The next call after the failure computes again.
    ///
    /// ```
    /// let cache: memokit::Cache<u32, String> = memokit::Cache::new(100);
    /// let failed: Result<String, &str> = cache.try_get_or_insert_with(1, || Err("db down"));
    /// assert_eq!(failed, Err("db down"));
    /// assert!(!cache.contains_key(&1)); // errors are not cached
    /// let loaded: Result<String, &str> = cache.try_get_or_insert_with(1, || Ok("ok".into()));
    /// assert_eq!(loaded.as_deref(), Ok("ok"));
    /// ```
    pub fn try_get_or_insert_with<E>(
        &self,
        key: K,
        init: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E>
    where
        E: Clone + Send + Sync + 'static,
    {
        load_with(
            self,
            Owned(key),
            |_, _| init(),
            LoadRule {
                share_error: Some(ShareError::BY_CLONE),
                ..LoadRule::ALWAYS
            },
        )
    }

    /// Like [`get_or_insert_with`](Self::get_or_insert_with) for an `init` that may find
    /// nothing (moka's `optionally_get_with`): `Some` is stored; `None` is not, and is returned
    /// to the caller that ran `init` and to every caller waiting on that run. A `None` counts as
    /// a load, not as a failed one. The next call after a `None` computes again.
    ///
    /// ```
    /// let cache: memokit::Cache<u32, String> = memokit::Cache::new(100);
    /// assert_eq!(cache.optionally_get_or_insert_with(1, || None), None);
    /// assert!(!cache.contains_key(&1)); // nothing stored
    /// assert_eq!(cache.stats().load_failures, 0);
    /// let found = cache.optionally_get_or_insert_with(1, || Some("one".to_string()));
    /// assert_eq!(found.as_deref(), Some("one"));
    /// ```
    pub fn optionally_get_or_insert_with(
        &self,
        key: K,
        init: impl FnOnce() -> Option<V>,
    ) -> Option<V> {
        self.try_optionally_get_or_insert_with(key, || Ok::<_, Infallible>(init()))
            .unwrap_or_else(|never| match never {})
    }

    /// [`optionally_get_or_insert_with`](Self::optionally_get_or_insert_with) for a fallible
    /// `init`: `Ok(Some)` is stored; `Ok(None)` and `Err` are not, and go to every caller
    /// waiting on that run too. Only an `Err` counts as a failed load (`load_failures`), and
    /// only an `Err` is answered with a stale-if-error value.
    ///
    /// ```
    /// let cache: memokit::Cache<u32, u32> = memokit::Cache::new(100);
    /// let none: Result<Option<u32>, &str> = cache.try_optionally_get_or_insert_with(1, || Ok(None));
    /// let failed = cache.try_optionally_get_or_insert_with(2, || Err("db down"));
    /// assert_eq!((none, failed), (Ok(None), Err("db down")));
    /// assert_eq!((cache.stats().loads, cache.stats().load_failures), (2, 1));
    /// ```
    pub fn try_optionally_get_or_insert_with<E>(
        &self,
        key: K,
        init: impl FnOnce() -> Result<Option<V>, E>,
    ) -> Result<Option<V>, E>
    where
        E: Clone + Send + Sync + 'static,
    {
        optional(load_with(
            self,
            Owned(key),
            |_, _| unstored(init()),
            LoadRule::OPTIONAL,
        ))
    }

    /// The async form of [`get_or_insert_with`](Self::get_or_insert_with): `init` is awaited
    /// only by the caller that leads; concurrent callers of the same key await its value. Works
    /// on any executor. If the leading caller's future is dropped (cancelled) or panics, one
    /// waiter takes over with its own `init`. Awaiting the same key from inside `init` panics
    /// with a message instead of waiting for itself, unless that call runs on another task
    /// (spawned by `init`), which cannot be detected: it waits for `init`, for ever if `init`
    /// awaits it.
    ///
    /// Like an `async fn`, it does nothing until the future is first polled. The future holds
    /// `init` once, unstarted, and about 200 bytes more with a small key; the caller that leads
    /// moves `init` to the heap to run it, so that no caller's future grows by what `init`
    /// holds while it runs.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let cache: memokit::Cache<u32, String> = memokit::Cache::new(100);
    /// let v = cache.get_or_insert_with_async(7, async { "seven".to_string() }).await;
    /// assert_eq!(v, "seven");
    /// # });
    /// ```
    // Not an `async fn`: one stores each argument twice (as written and moved into its body),
    // and `init` would be in every caller's future twice.
    pub fn get_or_insert_with_async<'a, F>(
        &'a self,
        key: K,
        init: F,
    ) -> impl Future<Output = V> + use<'a, K, V, F>
    where
        F: Future<Output = V>,
    {
        load_async(
            self,
            None,
            Owned(key),
            move |_, _| async move { Ok(init.await) },
            LoadRule::ALWAYS,
            infallible,
        )
    }

    /// The async form of [`try_get_or_insert_with`](Self::try_get_or_insert_with), with the same
    /// error sharing. Its future holds `init` once, as
    /// [`get_or_insert_with_async`](Self::get_or_insert_with_async)'s does.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let cache: memokit::Cache<u32, u32> = memokit::Cache::new(100);
    /// let r: Result<u32, String> = cache.try_get_or_insert_with_async(1, async { Ok(1) }).await;
    /// assert_eq!(r, Ok(1));
    /// # });
    /// ```
    pub fn try_get_or_insert_with_async<'a, E, F>(
        &'a self,
        key: K,
        init: F,
    ) -> impl Future<Output = Result<V, E>> + use<'a, K, V, E, F>
    where
        E: Clone + Send + Sync + 'static,
        F: Future<Output = Result<V, E>>,
    {
        let rule = LoadRule {
            share_error: Some(ShareError::BY_CLONE),
            ..LoadRule::ALWAYS
        };
        load_async(
            self,
            None,
            Owned(key),
            move |_, _| init,
            rule,
            |result| result,
        )
    }

    /// The async form of
    /// [`optionally_get_or_insert_with`](Self::optionally_get_or_insert_with).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let cache: memokit::Cache<u32, u32> = memokit::Cache::new(100);
    /// assert_eq!(cache.optionally_get_or_insert_with_async(1, async { None }).await, None);
    /// assert_eq!(cache.optionally_get_or_insert_with_async(1, async { Some(1) }).await, Some(1));
    /// # });
    /// ```
    pub fn optionally_get_or_insert_with_async<'a, F>(
        &'a self,
        key: K,
        init: F,
    ) -> impl Future<Output = Option<V>> + use<'a, K, V, F>
    where
        F: Future<Output = Option<V>>,
    {
        load_async(
            self,
            None,
            Owned(key),
            move |_, _| async move { unstored(Ok::<_, Infallible>(init.await)) },
            LoadRule::OPTIONAL,
            |loaded| optional(loaded).unwrap_or_else(|never| match never {}),
        )
    }

    /// The async form of
    /// [`try_optionally_get_or_insert_with`](Self::try_optionally_get_or_insert_with).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let cache: memokit::Cache<u32, u32> = memokit::Cache::new(100);
    /// let r: Result<Option<u32>, String> =
    ///     cache.try_optionally_get_or_insert_with_async(1, async { Ok(None) }).await;
    /// assert_eq!(r, Ok(None));
    /// # });
    /// ```
    pub fn try_optionally_get_or_insert_with_async<'a, E, F>(
        &'a self,
        key: K,
        init: F,
    ) -> impl Future<Output = Result<Option<V>, E>> + use<'a, K, V, E, F>
    where
        E: Clone + Send + Sync + 'static,
        F: Future<Output = Result<Option<V>, E>>,
    {
        load_async(
            self,
            None,
            Owned(key),
            move |_, _| async move { unstored(init.await) },
            LoadRule::OPTIONAL,
            optional,
        )
    }
}

/// What the first look at the cache found.
pub(crate) enum Found<V> {
    Hit(V),
    /// A value due for a refresh: the caller returns it, after refreshing it if it leads.
    Stale(V),
    Miss,
}

/// The first step of a load: a counted lookup (the hit path, with nothing added), by the key
/// as the caller holds it (no owned key is built).
#[inline]
pub(crate) fn lookup<K: Hash + Eq, V: Clone, Q: Hash + Equivalent<K> + ?Sized>(
    cache: &Cache<K, V>,
    shard: usize,
    hash: u64,
    key: &Q,
) -> Found<V> {
    match cache.get_hashed(shard, hash, key) {
        None => Found::Miss,
        Some((value, false)) => Found::Hit(value),
        Some((stale, true)) => Found::Stale(stale),
    }
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

/// One step of a miss: join the key's flight, or lead a new one (without coalescing, always a
/// flight of its own). `waited` counts one coalesced wait per call, however many hand-overs it
/// sees.
pub(crate) fn step<'a, K: Hash + Eq + Clone, V: Clone>(
    cache: &'a Cache<K, V>,
    shard: usize,
    hash: u64,
    key: &K,
    coalesce: bool,
    waited: &mut bool,
) -> Join<'a, K, V> {
    if !coalesce {
        return Join::Lead(Leader::alone(cache, shard, hash, key));
    }
    let ready = || {
        cache.inner.shards[shard]
            .lookup(&cache.inner.config, hash, key, cache.now())
            .value()
    };
    match cache.inner.flights[shard].join(hash, key, ready) {
        Joined::Wait(flight) => {
            if !std::mem::replace(waited, true) {
                bump(&counters(cache, shard).coalesced_waits);
            }
            Join::Wait(flight)
        }
        Joined::Ready(value) => Join::Ready(value),
        Joined::Started(flight) => Join::Lead(Leader::new(cache, shard, hash, key, flight)),
    }
}

/// Starts the refresh of `key`, found due for one, unless one is already in flight (or a
/// computation of the key is: its value will be as fresh) or the entry was refreshed
/// meanwhile. The caller that gets the leader runs the refresh; the others keep the old value.
fn lead_refresh<'a, K: Hash + Eq + Clone, V: Clone>(
    cache: &'a Cache<K, V>,
    shard: usize,
    hash: u64,
    key: &K,
) -> Option<Leader<'a, K, V>> {
    // A refresh that just finished stored its value before leaving the table.
    let due = || cache.inner.shards[shard].refresh_due(hash, key, cache.now());
    let flight = cache.inner.flights[shard].start_unless_running(hash, key, due)?;
    let mut leader = Leader::new(cache, shard, hash, key, flight);
    leader.refresh = true;
    Some(leader)
}

fn counters<K, V>(cache: &Cache<K, V>, shard: usize) -> &Counters {
    &cache.inner.shards[shard].counters
}

/// Where a load goes on from after its first look did not hit: the key's hash and shard, and
/// the value found due for a refresh, if any.
pub(crate) struct Unhit<V> {
    hash: u64,
    shard: usize,
    stale: Option<V>,
}

/// The first look of a blocking load, inlined into its caller: the value on a hit, with
/// nothing else run or set up, or where [`load_unhit`] goes on from.
#[inline(always)]
pub(crate) fn first_look<K, V, Q>(cache: &Cache<K, V>, key: &Q) -> Result<V, Unhit<V>>
where
    K: Hash + Eq,
    V: Clone,
    Q: Hash + Equivalent<K> + ?Sized,
{
    let hash = cache.hash(key);
    let shard = cache.shard_of(hash);
    let stale = match lookup(cache, shard, hash, key) {
        Found::Hit(value) => return Ok(value),
        Found::Stale(stale) => Some(stale),
        Found::Miss => None,
    };
    Err(Unhit { hash, shard, stale })
}

/// The blocking load: lookup, then lead or wait (or, without coalescing, compute). `init`
/// gets the key and is told whether its run was superseded (a tier then does not write its
/// result). `key` is looked up as it is; the owned key is built after a miss (or for a
/// refresh), never on a hit.
#[inline]
pub(crate) fn load_with<K: Hash + Eq + Clone, V: Clone, E>(
    cache: &Cache<K, V>,
    key: impl LookupKey<K>,
    init: impl FnOnce(&K, Superseded<V>) -> Result<V, E>,
    rule: LoadRule<V, E>,
) -> Result<V, E> {
    match first_look(cache, &key) {
        Ok(value) => Ok(value),
        Err(unhit) => load_unhit(cache, unhit, key, init, rule),
    }
}

/// [`load_with`] after its [`first_look`] did not hit: out of line, so that a hit runs in the
/// caller with nothing of this (its locals, its saved registers) around it.
#[inline(never)]
pub(crate) fn load_unhit<K: Hash + Eq + Clone, V: Clone, E>(
    cache: &Cache<K, V>,
    Unhit { hash, shard, stale }: Unhit<V>,
    key: impl LookupKey<K>,
    init: impl FnOnce(&K, Superseded<V>) -> Result<V, E>,
    rule: LoadRule<V, E>,
) -> Result<V, E> {
    // Refresh-ahead: one caller refreshes, every caller meanwhile gets the old value, and so
    // does this one if the refresh fails (not if it found nothing: the value is gone).
    if let Some(stale) = stale {
        let key = key.into_key();
        return match lead_refresh(cache, shard, hash, &key).map(|leader| run(leader, init, rule)) {
            Some(Err(nothing)) if !(rule.fails)(&nothing) => Err(nothing),
            Some(Ok(value)) => Ok(value),
            Some(Err(_)) | None => Ok(stale),
        };
    }
    let key = key.into_key();
    let mut waited = false;
    // A failure this caller cannot copy is retried once coalesced; after a second it computes
    // on its own, so no caller queues behind one failing run after another.
    let mut saw_failure = false;
    let leader = loop {
        let flight = match step(cache, shard, hash, &key, rule.coalesce, &mut waited) {
            Join::Ready(value) => return Ok(value),
            Join::Lead(leader) => break leader,
            Join::Wait(flight) => flight,
        };
        match flight.wait(rule.share_error) {
            Outcome::Done(result) => return result,
            Outcome::Retry | Outcome::Absent => continue,
            Outcome::Failed if !std::mem::replace(&mut saw_failure, true) => continue,
            Outcome::Failed => break Leader::alone(cache, shard, hash, &key),
        }
    };
    run(leader, init, rule)
}

/// A blocking leader's computation, in its span, then the end of its flight.
fn run<K: Hash + Eq + Clone, V: Clone, E>(
    leader: Leader<'_, K, V>,
    init: impl FnOnce(&K, Superseded<V>) -> Result<V, E>,
    rule: LoadRule<V, E>,
) -> Result<V, E> {
    let result = {
        let _running = RunningHere::enter(&leader.flight);
        leader
            .span()
            .in_scope(|| init(leader.key(), leader.superseded()))
    };
    leader.finish(result, rule)
}

/// The async twin of [`load_with`]: `init` makes the computation of `key` (it gets the key
/// and the superseded flag), `output` turns the result into what the future returns.
///
/// Every caller of a key carries this future whole, and tokio copies a task's whole future
/// when the task completes: after a flight ends, each of its waiters pays for every byte of
/// it. So it is kept small. `init` is a closure that makes the computation only in the caller
/// that leads, and the computation is boxed there (one allocation per computation, nothing
/// next to the computation itself), so no caller's future holds a running computation, or an
/// unstarted one for a caller that hits or waits. No function on the way is an `async fn`
/// (one stores each argument twice: as passed, and moved into its body), and `output` maps
/// the result here rather than in one more future around this one, which would hold this
/// one as it is passed and again as it is awaited.
///
/// `looked`: where the caller's own [`first_look`] left off, if it made one (a `#[cached]`
/// `async fn` looks before it makes this future, so that a hit makes none).
pub(crate) fn load_async<'a, K, V, E, F, I, O, M, Q>(
    cache: &'a Cache<K, V>,
    looked: Option<Unhit<V>>,
    key: Q,
    init: I,
    rule: LoadRule<V, E>,
    output: M,
) -> impl Future<Output = O> + use<'a, K, V, E, F, I, O, M, Q>
where
    Q: LookupKey<K>,
    K: Hash + Eq + Clone,
    V: Clone,
    I: FnOnce(&K, Superseded<V>) -> F,
    F: Future<Output = Result<V, E>>,
    M: FnOnce(Result<V, E>) -> O,
{
    load_async_detachable(cache, looked, key, init, rule, keep_refresh, output)
}

/// [`load_async`] whose refreshes `detach` may take away from the caller (to run them on
/// another task): it returns `None` when it did, and otherwise the leader and `init` for the
/// caller to run the refresh itself.
///
/// Written for the future's state, which holds whatever may be live across an `.await`:
/// - `init` is moved only where the caller leads, on paths that then leave the block, so the
///   borrow checker needs no `Option` around it (which would be a second copy of it);
/// - the waits and the computation are not awaited inside a `match` on a temporary, or after
///   a pattern moved part of a local still in scope: such a place is kept whole across the
///   `.await`. (A refresh keeps the stale value twice so: once in its `Option`.)
#[allow(clippy::manual_async_fn)] // not an `async fn`: see `load_async`
pub(crate) fn load_async_detachable<'a, K, V, E, F, I, D, O, M, Q>(
    cache: &'a Cache<K, V>,
    looked: Option<Unhit<V>>,
    key: Q,
    init: I,
    rule: LoadRule<V, E>,
    detach: D,
    output: M,
) -> impl Future<Output = O> + use<'a, K, V, E, F, I, D, O, M, Q>
where
    Q: LookupKey<K>,
    K: Hash + Eq + Clone,
    V: Clone,
    I: FnOnce(&K, Superseded<V>) -> F,
    F: Future<Output = Result<V, E>>,
    D: FnOnce(Leader<'a, K, V>, I) -> Option<(Leader<'a, K, V>, I)>,
    M: FnOnce(Result<V, E>) -> O,
{
    async move {
        let result = 'load: {
            // In a block of its own: `stale` is not kept across the waits below.
            let (hash, shard) = {
                let Unhit { hash, shard, stale } = match looked {
                    Some(unhit) => unhit,
                    None => match first_look(cache, &key) {
                        Ok(value) => break 'load Ok(value),
                        Err(unhit) => unhit,
                    },
                };
                if let Some(stale) = stale {
                    let key = key.into_key();
                    let refresh = lead_refresh(cache, shard, hash, &key)
                        .and_then(|leader| detach(leader, init))
                        .map(|(leader, init)| lead_async(leader, init, &key, rule));
                    if let Some(computation) = refresh {
                        match computation.await {
                            Ok(value) => break 'load Ok(value),
                            Err(nothing) if !(rule.fails)(&nothing) => break 'load Err(nothing),
                            Err(_) => {}
                        }
                    }
                    break 'load Ok(stale);
                }
                (hash, shard)
            };
            let key = key.into_key();
            let mut waited = false;
            // As in `load_with`.
            let mut saw_failure = false;
            let leader = loop {
                let flight = match step(cache, shard, hash, &key, rule.coalesce, &mut waited) {
                    Join::Ready(value) => break 'load Ok(value),
                    Join::Lead(leader) => break leader,
                    Join::Wait(flight) => flight,
                };
                flight.wait_async().await;
                match flight.ended(rule.share_error) {
                    Outcome::Done(result) => break 'load result,
                    Outcome::Retry | Outcome::Absent => continue,
                    Outcome::Failed if !std::mem::replace(&mut saw_failure, true) => continue,
                    Outcome::Failed => break Leader::alone(cache, shard, hash, &key),
                }
            };
            let computation = lead_async(leader, init, &key, rule);
            computation.await
        };
        output(result)
    }
}

/// The computation of a caller that leads, with its leader handle, on the heap: the caller's
/// future holds a pointer to it, and only while it runs (see [`load_async`]).
#[allow(clippy::type_complexity)]
fn lead_async<'a, 'k, K, V, E, F, I>(
    leader: Leader<'a, K, V>,
    init: I,
    key: &'k K,
    rule: LoadRule<V, E>,
) -> Pin<Box<impl Future<Output = Result<V, E>> + use<'a, 'k, K, V, E, F, I>>>
where
    K: Hash + Eq + Clone,
    V: Clone,
    I: FnOnce(&K, Superseded<V>) -> F,
    F: Future<Output = Result<V, E>>,
{
    Box::pin(async move {
        let computation = pin!(leader.span().instrument(init(key, leader.superseded())));
        let result = running_here(&leader.flight, computation).await;
        leader.finish(result, rule)
    })
}

/// Polls `computation` marked as running on this thread (see [`RunningHere`]), so that a call of
/// the same key polled inside it panics instead of waiting for itself.
fn running_here<'f, V, F: Future>(
    flight: &'f Arc<Flight<V>>,
    mut computation: Pin<&'f mut F>,
) -> impl Future<Output = F::Output> + use<'f, V, F> {
    std::future::poll_fn(move |cx| {
        let _running = RunningHere::enter(flight);
        computation.as_mut().poll(cx)
    })
}

/// The `detach` of a load that runs its refreshes itself.
#[allow(clippy::type_complexity)]
fn keep_refresh<'a, K: Hash + Eq + Clone, V: Clone, I>(
    leader: Leader<'a, K, V>,
    init: I,
) -> Option<(Leader<'a, K, V>, I)> {
    Some((leader, init))
}

/// The handle of the caller that computes a key. Dropped without [`Leader::finish`] (a panic,
/// a cancelled future), it hands the key over to a waiter.
pub(crate) struct Leader<'a, K: Hash + Eq + Clone, V: Clone> {
    cache: &'a Cache<K, V>,
    shard: usize,
    hash: u64,
    key: Option<K>,
    flight: Arc<Flight<V>>,
    started: Stopwatch,
    /// A refresh of a value still cached (counted as a refresh, not a load).
    refresh: bool,
    span: LoadSpan,
}

impl<'a, K: Hash + Eq + Clone, V: Clone> Leader<'a, K, V> {
    fn new(
        cache: &'a Cache<K, V>,
        shard: usize,
        hash: u64,
        key: &K,
        flight: Arc<Flight<V>>,
    ) -> Self {
        Leader {
            cache,
            shard,
            hash,
            key: Some(key.clone()),
            flight,
            started: Stopwatch::start(),
            refresh: false,
            span: LoadSpan::start(&cache.inner.config.name),
        }
    }

    /// Gives the key up before computing it: leaves the table of flights and ends the flight
    /// without a value, so that its waiters take over. Counts nothing: no computation ran.
    pub(crate) fn release(mut self) {
        self.span.end(LoadOutcome::Released, Duration::ZERO);
        let key = self.key.take().expect("a leader is released once");
        self.flights().leave(self.hash, &key, &self.flight);
        self.flight.end(Ended::Abandoned);
    }

    /// A leader of a flight nobody joins: nobody waits for it, but writes of the key
    /// supersede it as they do a shared one.
    fn alone(cache: &'a Cache<K, V>, shard: usize, hash: u64, key: &K) -> Self {
        let flight = cache.inner.flights[shard].start_alone(hash, key);
        Leader::new(cache, shard, hash, key, flight)
    }

    /// The superseded flag of this computation.
    pub(crate) fn superseded(&self) -> Superseded<V> {
        self.flight.superseded(self.refresh)
    }

    /// The key being computed.
    pub(crate) fn key(&self) -> &K {
        self.key
            .as_ref()
            .expect("a leader holds its key until it finishes")
    }

    /// Marks this thread as running the computation (see [`RunningHere`]).
    pub(crate) fn running_here(&self) -> RunningHere {
        RunningHere::enter(&self.flight)
    }

    /// The span the computation runs in (feature `tracing`).
    pub(crate) fn span(&self) -> &LoadSpan {
        &self.span
    }

    fn flights(&self) -> &Flights<K, V> {
        &self.cache.inner.flights[self.shard]
    }

    /// Ends the flight with the computation's result, and returns what its caller gets: a
    /// value is stored in the cache when the rule says so and handed to the waiters; an error
    /// is replaced by the key's expired value within the stale-if-error window (not stored),
    /// else handed to the waiters when the rule can share it, and otherwise one waiter takes
    /// over.
    pub(crate) fn finish<E>(mut self, result: Result<V, E>, rule: LoadRule<V, E>) -> Result<V, E> {
        let nanos = self.elapsed_nanos();
        // The key stays in `self` until the last user code has run: should it panic (a weigher
        // or eviction listener while storing, a clone), `Drop` still ends the flight instead of
        // leaving its waiters asleep forever, and counts the load once.
        let key = self.key.as_ref().expect("finished once");
        let stored = result.as_ref().is_ok_and(|value| (rule.store)(value));
        let failed = result.as_ref().err().is_some_and(rule.fails);
        if !stored {
            if self.refresh && !failed {
                // The value is gone at its source (a `None` that is not cached): the old one
                // must not keep answering.
                self.drop_refreshed(key);
            } else {
                // Before leaving the table, so that no hit starts the next refresh right away.
                self.postpone_refresh();
            }
        }
        if let (true, Ok(value)) = (stored, &result) {
            self.cache.insert_hashed(
                self.shard,
                self.hash,
                key.clone(),
                value.clone(),
                Some(self.flight.superseded_flag()),
                self.flight.lifetime_limit(),
            );
        }
        let result = match result {
            Err(error) if failed && !self.refresh => self.stale_value(key).ok_or(error),
            other => other,
        };
        let stale_served = failed && result.is_ok();
        self.flights().leave(self.hash, key, &self.flight);
        // No waiter can find the flight any more; without one, skip cloning for nobody.
        let ended = self.flight.has_waiters().then(|| {
            // A failed refresh's caller keeps its old value (see `load_with`); the callers
            // that waited on it (the key expired meanwhile) get it within stale-if-error, as
            // the waiters of a failed load do, whatever the error's type.
            let stale = (self.refresh && failed)
                .then(|| self.stale_value(key))
                .flatten();
            match stale {
                Some(stale) => Ended::of(&Ok::<V, E>(stale), rule.share_error),
                None => Ended::of(&result, rule.share_error),
            }
        });
        // Counted before the waiters wake, so that they see this load in the stats.
        self.count(failed, nanos);
        if stale_served {
            bump(&counters(self.cache, self.shard).stale_served);
        }
        self.key = None;
        let outcome = if failed {
            LoadOutcome::Error
        } else {
            LoadOutcome::Ok
        };
        self.span.end(outcome, Duration::from_nanos(nanos));
        if let Some(ended) = ended {
            self.flight.end(ended);
        }
        result
    }

    /// Stale-if-error: what a failed load of `key` returns instead of its error, the key's
    /// value expired within the window (see `CacheBuilder::stale_if_error`).
    fn stale_value(&self, key: &K) -> Option<V> {
        let config = &self.cache.inner.config;
        config.expiry.stale_if_error?;
        self.cache.inner.shards[self.shard].stale_value(config, self.hash, key, self.cache.now())
    }

    /// Ends the flight without a value: the computation gave none for this key (absent from a
    /// batch's answer, counted as a load), or failed for every key of the batch (`failed`, with
    /// how its waiters learn it).
    pub(crate) fn end_without_value(mut self, ended: Ended<V>, failed: bool) {
        let nanos = self.elapsed_nanos();
        self.postpone_refresh();
        let key = self.key.take().expect("finished once");
        self.flights().leave(self.hash, &key, &self.flight);
        self.count(failed, nanos);
        let outcome = if failed {
            LoadOutcome::Error
        } else {
            LoadOutcome::Ok
        };
        self.span.end(outcome, Duration::from_nanos(nanos));
        self.flight.end(ended);
    }

    fn elapsed_nanos(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Counts the end of the computation: a load, or a refresh.
    fn count(&self, failed: bool, nanos: u64) {
        let counters = counters(self.cache, self.shard);
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

    /// After a refresh that found nothing to store: removes the entry it refreshed, unless a
    /// write of the key superseded the refresh.
    fn drop_refreshed(&self, key: &K) {
        let mut removed = Vec::new();
        self.cache.inner.shards[self.shard].invalidate(
            &self.cache.inner.config,
            self.hash,
            key,
            self.cache.now(),
            Some(self.flight.superseded_flag()),
            &mut removed,
        );
        self.cache.notify(removed);
    }

    /// After a refresh that stored nothing, the entry keeps its old value and waits
    /// `ExpiryPolicy::refresh_backoff` for the next attempt (a superseded refresh leaves the
    /// newer entry alone).
    fn postpone_refresh(&self) {
        if !self.refresh || self.flight.is_superseded() {
            return;
        }
        let (Some(key), Some(now)) = (&self.key, self.cache.now()) else {
            return;
        };
        let at = now.saturating_add(self.cache.inner.config.expiry.refresh_backoff());
        self.cache.inner.shards[self.shard].postpone_refresh(self.hash, key, Some(now), at);
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Drop for Leader<'_, K, V> {
    fn drop(&mut self) {
        if self.key.is_some() {
            self.postpone_refresh();
            // With the time it ran: a panicked or cancelled load counted as 0 ns would pull
            // `average_load_time` down.
            let nanos = self.elapsed_nanos();
            self.count(true, nanos);
            let outcome = if thread::panicking() {
                LoadOutcome::Panic
            } else {
                LoadOutcome::Cancelled
            };
            self.span.end(outcome, Duration::from_nanos(nanos));
            let key = self.key.take().expect("checked");
            self.flights().leave(self.hash, &key, &self.flight);
            self.flight.end(Ended::Abandoned);
        }
    }
}
