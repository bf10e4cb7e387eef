//! [`Memo`]: the cache a `#[cached]` function owns, and its typed handle.

use std::borrow::Borrow;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, Weak};
use std::task::{Context, Poll};

use equivalent::Equivalent;

pub(crate) mod exposition;
pub(crate) mod generic;
#[cfg(feature = "metrics")]
pub mod metrics;
pub(crate) mod registry;
pub(crate) mod shape;
pub mod testing;

use crate::cache::batch;
use crate::cache::flight::{ShareError, Superseded};
use crate::cache::key::LookupKey;
use crate::cache::load::{self, Leader, LoadRule};
use crate::cache::stats::Stats;
use crate::cache::{Cache, Inner};
use crate::memo::registry::{registry, ErasedMemo, Registry};
use crate::memo::shape::Shape;
use crate::tier::{self, load_through, load_through_blocking, Kept, Tier, TierHandle};

/// Per-function settings from the `#[cached]` attribute that the runtime applies on each call.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct MemoOptions {
    /// `coalesce = …`: concurrent callers of one key share one computation.
    pub coalesce: bool,
    /// `cache_none = …`: a `None` result is stored.
    pub cache_none: bool,
}

impl Default for MemoOptions {
    fn default() -> Self {
        MemoOptions {
            coalesce: true,
            cache_none: true,
        }
    }
}

/// The cache of one memoized function: a [`Cache`] plus the function's registry name and its
/// `#[cached]` options. For `fn load_user`, `load_user_cache()` returns
/// `&'static Memo<K, V>`, where `K` is the key (by default the owned argument, or the tuple of
/// the owned arguments when there are several) and
/// `V` what is stored (the `Ok` type for a function returning `Result`).
///
/// ```
/// use memokit::cached;
///
/// #[cached(size = 100)]
/// fn square(n: u64) -> u64 {
///     n * n
/// }
///
/// assert_eq!(square(4), 16);
/// let memo = square_cache();
/// assert_eq!(memo.get(&4), Some(16)); // peek: no computation, not counted
/// memo.insert(5, 26); // write-through after changing the source of truth
/// assert_eq!(square(5), 26);
/// assert!(memo.invalidate(&5));
/// assert_eq!(square(5), 25);
/// println!("{}: {}", memo.name(), memo.stats());
/// memo.clear();
/// assert!(memo.is_empty());
/// ```
pub struct Memo<K, V> {
    name: &'static str,
    cache: Cache<K, V>,
    options: MemoOptions,
    /// Which values its function's results store (a `None` is not under `cache_none =
    /// false`); what `#[cache_put]` follows, whatever its writer returns.
    stores: fn(&V) -> bool,
    /// The tier behind the in-process cache (`#[cached(redis(...))]`), if any.
    tier: Option<Box<dyn Tier<K, V>>>,
    /// For an instance's cache, its listing in the registry, which keeps its counters once the
    /// instance is dropped.
    listing: Option<Arc<dyn Retire>>,
}

impl<K, V> Drop for Memo<K, V> {
    fn drop(&mut self) {
        if let Some(listing) = &self.listing {
            listing.retire();
        }
    }
}

/// A listing that keeps the counters of a cache about to go.
trait Retire: Send + Sync {
    fn retire(&self);
}

impl<K, V> fmt::Debug for Memo<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memo")
            .field("name", &self.name)
            .field("options", &self.options)
            .field("cache", &self.cache)
            .field("shared", &self.tier)
            .finish()
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Memo<K, V> {
    /// Used by `#[cached]`; not part of the stable API.
    #[doc(hidden)]
    pub fn __new(name: &'static str, cache: Cache<K, V>, options: MemoOptions) -> Self {
        cache.inner.config.name.set(name);
        Memo {
            name,
            cache,
            options,
            stores: |_| true,
            tier: None,
            listing: None,
        }
    }

    /// Sets which values its function's results (of shape `S`) store. Not part of the stable
    /// API.
    #[doc(hidden)]
    pub fn __storing<S: Shape<Value = V>>(mut self) -> Self {
        self.stores = S::store_rule(self.options.cache_none);
        self
    }

    /// Adds the tier behind the in-process cache, which hears from now on what other
    /// processes write; used by `#[cached(redis(...))]`, not part of the stable API.
    #[doc(hidden)]
    #[track_caller]
    pub fn __with_shared(mut self, tier: impl Into<TierHandle<K, V>>) -> Self {
        self.tier = tier.into().0;
        if let Some(tier) = &self.tier {
            tier.attach(self.name, &self.cache, std::panic::Location::caller());
        }
        self
    }

    /// The registry name: by default `module_path!()::function` (`module::Type::method` for
    /// methods), or the attribute's `name = "…"`.
    ///
    /// ```
    /// #[memokit::cached(name = "squares")]
    /// fn square(n: u64) -> u64 { n * n }
    /// assert_eq!(square_cache().name(), "squares");
    /// ```
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The function's counters: hits, misses, loads, coalesced waits, size, … (and, with the
    /// shared tier, `l2_hits`, `l2_misses`, `l2_errors`, `l2_decode_errors`, `l2_skipped`, and after an
    /// outage `l2_pending_writes` and `l2_replayed_writes`).
    ///
    /// ```
    /// #[memokit::cached]
    /// fn double(n: u64) -> u64 { n * 2 }
    /// double(1);
    /// double(1);
    /// let stats = double_cache().stats();
    /// assert_eq!((stats.hits, stats.misses, stats.loads), (1, 1, 1));
    /// ```
    pub fn stats(&self) -> Stats {
        let mut stats = self.cache.stats();
        if let Some(tier) = &self.tier {
            tier.add_stats(&mut stats);
        }
        stats
    }

    /// Sets the counters back to zero. A computation already running when they are reset is
    /// counted when it ends (its load, not its miss), so under traffic `loads` can exceed
    /// `misses` for a while after a reset.
    ///
    /// ```
    /// #[memokit::cached]
    /// fn double(n: u64) -> u64 { n * 2 }
    /// double(1);
    /// double_cache().reset_stats();
    /// assert_eq!(double_cache().stats().misses, 0);
    /// ```
    pub fn reset_stats(&self) {
        self.cache.reset_stats();
        if let Some(tier) = &self.tier {
            tier.reset_stats();
        }
    }

    /// Removes every cached result of the function. With the shared tier, also in Redis (a new
    /// generation: O(1), old entries age out) and in the other processes; if Redis cannot be
    /// reached, before this function reads it again (see `memokit::redis`).
    ///
    /// ```
    /// #[memokit::cached]
    /// fn double(n: u64) -> u64 { n * 2 }
    /// double(1);
    /// double_cache().clear();
    /// assert_eq!(double_cache().len(), 0);
    /// ```
    pub fn clear(&self) {
        self.cache.clear();
        if let Some(tier) = &self.tier {
            tier.clear();
            // Again, for every removal with tiers. The first supersedes the computations
            // running now, so that none writes its older result to a tier after the tier's
            // removal; the second removes what a call in between read from a tier before the
            // tier's removal and stored here (or supersedes it, if it is still running).
            self.cache.clear();
        }
    }

    /// Removes the result cached for `key`; returns whether there was one (in this process).
    /// With the shared tier, also deletes it from Redis and from the other processes (if Redis
    /// cannot be reached, before this function reads it again; see `memokit::redis`).
    ///
    /// ```
    /// #[memokit::cached]
    /// fn greet(name: &str) -> String { format!("hello {name}") }
    /// greet("ann");
    /// assert!(greet_cache().invalidate("ann"));
    /// ```
    pub fn invalidate<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned + ?Sized,
        Q::Owned: Into<K>,
    {
        let found = self.cache.invalidate(key);
        if let Some(tier) = &self.tier {
            tier.remove(&key.to_owned().into());
            // Again, as `clear` does.
            self.cache.invalidate(key);
        }
        found
    }

    /// Stores `value` as the result for `key` (write-through after updating the source). With
    /// the shared tier, also in Redis and in the other processes that have the function.
    ///
    /// ```
    /// #[memokit::cached]
    /// fn price(id: u32) -> u32 { id * 100 }
    /// price_cache().insert(1, 150);
    /// assert_eq!(price(1), 150);
    /// ```
    pub fn insert(&self, key: K, value: V) {
        if let Some(tier) = &self.tier {
            // In-process first: a computation of the key that is running now is superseded
            // before the value reaches the tier, so its own (older) result is not written over it.
            self.cache.insert(key.clone(), value.clone());
            tier.put(&key, &value);
            return;
        }
        self.cache.insert(key, value)
    }

    /// Stores each `(key, value)` as [`insert`](Self::insert) does. With the shared tier, all
    /// are written to Redis and announced to the other processes in one round trip.
    ///
    /// ```
    /// #[memokit::cached]
    /// fn price(id: u32) -> u32 { id * 100 }
    /// price_cache().insert_many([(1, 150), (2, 250)]);
    /// assert_eq!((price(1), price(2)), (150, 250));
    /// ```
    pub fn insert_many(&self, entries: impl IntoIterator<Item = (K, V)>) {
        if let Some(tier) = &self.tier {
            // In-process first, as `insert` does.
            let entries: Vec<(K, V)> = entries.into_iter().collect();
            self.cache.insert_many(entries.iter().cloned());
            tier.put_many(&entries);
            return;
        }
        self.cache.insert_many(entries)
    }

    /// Removes the results cached for `keys`, as [`invalidate`](Self::invalidate) does;
    /// returns how many were there (in this process). With the shared tier, all are deleted
    /// from Redis and the deletions announced to the other processes in one round trip.
    ///
    /// ```
    /// #[memokit::cached]
    /// fn greet(name: &str) -> String { format!("hello {name}") }
    /// greet("ann");
    /// greet("bob");
    /// assert_eq!(greet_cache().invalidate_many(["ann", "bob", "cy"]), 2);
    /// assert!(greet_cache().is_empty());
    /// ```
    pub fn invalidate_many<'a, Q>(&self, keys: impl IntoIterator<Item = &'a Q>) -> u64
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned + ?Sized + 'a,
        Q::Owned: Into<K>,
    {
        if let Some(tier) = &self.tier {
            let keys: Vec<&Q> = keys.into_iter().collect();
            let found = self.cache.invalidate_many(keys.iter().copied());
            let owned: Vec<K> = keys.iter().map(|&key| key.to_owned().into()).collect();
            tier.remove_many(&owned);
            // Again, as `clear` does.
            self.cache.invalidate_many(keys);
            return found;
        }
        self.cache.invalidate_many(keys)
    }

    /// The result cached for `key`, without computing it, counting it, or marking it used.
    /// `key` may be any form of the key that [`Cache::get`] takes (`&str` for `String` keys).
    ///
    /// ```
    /// #[memokit::cached]
    /// fn price(id: u32) -> u32 { id * 100 }
    /// assert_eq!(price_cache().get(&1), None);
    /// price(1);
    /// assert_eq!(price_cache().get(&1), Some(100));
    /// ```
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        self.cache.peek(key)
    }

    /// Number of cached results.
    ///
    /// ```
    /// #[memokit::cached]
    /// fn price(id: u32) -> u32 { id * 100 }
    /// price(1);
    /// price(2);
    /// assert_eq!(price_cache().len(), 2);
    /// ```
    pub fn len(&self) -> u64 {
        self.cache.len()
    }

    /// Whether nothing is cached.
    ///
    /// ```
    /// #[memokit::cached]
    /// fn price(id: u32) -> u32 { id * 100 }
    /// assert!(price_cache().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    /// The underlying cache, for everything else ([`Cache::invalidate_if`], …).
    ///
    /// ```
    /// #[memokit::cached]
    /// fn price(id: u32) -> u32 { id * 100 }
    /// price(1);
    /// price(2);
    /// assert_eq!(price_cache().cache().invalidate_if(|id, _| *id > 1), 1);
    /// ```
    pub fn cache(&self) -> &Cache<K, V> {
        &self.cache
    }

    /// A guard that clears this cache (as [`clear`](Self::clear) does) when it is dropped: at
    /// the end of a test, also one that panics. See [`memokit::testing`](crate::testing) for
    /// the other test switches.
    ///
    /// ```
    /// #[memokit::cached]
    /// fn square(n: u64) -> u64 { n * n }
    ///
    /// {
    ///     let _cleared = square_cache().clear_on_drop();
    ///     square(2);
    ///     assert_eq!(square_cache().len(), 1);
    /// }
    /// assert!(square_cache().is_empty());
    /// ```
    pub fn clear_on_drop(&self) -> testing::ClearOnDrop<'_, K, V> {
        testing::ClearOnDrop { memo: self }
    }

    /// Whether its function's result `value` is stored (not a `None` under `cache_none =
    /// false`); `#[cache_put]` follows it too.
    pub(crate) fn stores(&self, value: &V) -> bool {
        (self.stores)(value)
    }

    fn rule<S: Shape<Value = V>>(
        &self,
        share_error: Option<ShareError<S::Error>>,
    ) -> LoadRule<V, S::Error> {
        LoadRule {
            store: S::store_rule(self.options.cache_none),
            share_error,
            coalesce: self.options.coalesce,
            fails: |_| true,
        }
    }

    /// The call of a synchronous `#[cached]` function, with its key as the arguments hold it
    /// (borrowed: looked up as it is, made owned only on a miss). Not part of the stable API.
    #[doc(hidden)]
    #[inline]
    pub fn __call<S: Shape<Value = V>>(
        &self,
        key: impl LookupKey<K>,
        share_error: Option<ShareError<S::Error>>,
        body: impl FnOnce() -> S::Output,
    ) -> S::Output {
        if testing::is_disabled() {
            return body();
        }
        match load::first_look(&self.cache, &key) {
            Ok(value) => S::join(Ok(value)),
            Err(unhit) => self.call_unhit::<S>(unhit, key, share_error, body),
        }
    }

    /// [`Memo::__call`] after its first look did not hit: out of line, so that what only a
    /// miss needs is not set up on a hit.
    #[inline(never)]
    fn call_unhit<S: Shape<Value = V>>(
        &self,
        unhit: load::Unhit<V>,
        key: impl LookupKey<K>,
        share_error: Option<ShareError<S::Error>>,
        body: impl FnOnce() -> S::Output,
    ) -> S::Output {
        let rule = self.rule::<S>(share_error);
        let compute = || S::split(body());
        // The tier is looked at by the caller that computes only: a hit never sees it.
        let init = |key: &K, superseded| match self.tier.as_deref() {
            Some(tier) => load_through_blocking(tier, key, rule.store, superseded, compute),
            None => compute(),
        };
        S::join(load::load_unhit(&self.cache, unhit, key, init, rule))
    }

    /// The first look of an `async` `#[cached]` function, made in its body before any future
    /// of the load is: the output on a hit; otherwise what [`Memo::__call_async`] goes on
    /// from. A hit so costs what a blocking one does: making the load's future first, and
    /// then looking up, cost a hit a third more. Not part of the stable API.
    #[doc(hidden)]
    #[inline]
    pub fn __look<S: Shape<Value = V>>(
        &self,
        key: &impl LookupKey<K>,
    ) -> Result<S::Output, Look<V>> {
        if testing::is_disabled() {
            return Err(Look(None));
        }
        match load::first_look(&self.cache, key) {
            Ok(value) => Ok(S::join(Ok(value))),
            Err(unhit) => Err(Look(Some(unhit))),
        }
    }

    /// The call of an `async` `#[cached]` function after its [`Memo::__look`] did not hit.
    /// Not part of the stable API.
    ///
    /// `body` makes the function's body future: only the caller that computes calls it (and
    /// the cache boxes it), so the future of every call, hits' and waiters' included, holds the
    /// arguments `body` captured and not the body's own state (see `cache::load::load_async`).
    #[doc(hidden)]
    pub fn __call_async<'a, S, B, F, Q>(
        &'a self,
        look: Look<V>,
        key: Q,
        share_error: Option<ShareError<S::Error>>,
        body: B,
    ) -> impl Future<Output = S::Output> + use<'a, K, V, S, B, F, Q>
    where
        Q: LookupKey<K>,
        S: Shape<Value = V>,
        B: FnOnce() -> F,
        F: Future<Output = S::Output>,
    {
        let Look(Some(unhit)) = look else {
            return Call::Body {
                body: Box::pin(body()),
            };
        };
        let rule = self.rule::<S>(share_error);
        Call::Load {
            load: load::load_async(
                &self.cache,
                Some(unhit),
                key,
                move |key, superseded| {
                    self.computation::<S, B, F>(key, superseded, rule.store, body)
                },
                rule,
                S::join,
            ),
        }
    }

    /// The rule of a batch: every value computed is stored (a key left out of the answer is
    /// how a batch says "none").
    fn batch_rule<E>(&self, share_error: Option<ShareError<E>>) -> LoadRule<V, E> {
        LoadRule {
            store: |_| true,
            share_error,
            coalesce: self.options.coalesce,
            fails: |_| true,
        }
    }

    /// The call of a `#[cached(batch)]` function with its keys: the keys cached are served,
    /// those another call computes are awaited, and `body` gets the others, once (not called
    /// when none is missing). Not part of the stable API.
    #[doc(hidden)]
    pub fn __call_batch<S, M>(
        &self,
        keys: impl IntoIterator<Item = K>,
        share_error: Option<ShareError<S::Error>>,
        body: impl FnOnce(&[K]) -> S::Output,
    ) -> S::Output
    where
        S: Shape<Value = M>,
        M: IntoIterator<Item = (K, V)> + FromIterator<(K, V)>,
    {
        if testing::is_disabled() {
            return body(&keys.into_iter().collect::<Vec<K>>());
        }
        let rule = self.batch_rule(share_error);
        let mut batch = batch::begin(&self.cache, keys, self.options.coalesce);
        while let Some(flight) = batch.advance() {
            if let Err(error) = batch.resume(flight.wait(rule.share_error)) {
                return S::join(Err(error));
            }
        }
        let missing = batch.missing();
        let computed = if missing.is_empty() {
            Ok(M::from_iter(None))
        } else {
            let _running = batch.running_here();
            match self.tier.as_deref() {
                None => S::split(body(&missing)),
                Some(tier) => {
                    let marks = batch.superseded_of(&missing);
                    let looked = tier::block_on(tier, tier.get_many(&missing, &marks));
                    let (found, absent) = in_tier(&missing, looked.found, &batch);
                    if absent.is_empty() {
                        Ok(M::from_iter(found))
                    } else {
                        S::split(body(&absent)).map(|answer| {
                            let (all, fresh, marks) = with_tier(found, answer, &absent, &batch);
                            if !fresh.is_empty() {
                                tier::block_on(tier, looked.claim.store(&fresh, &marks));
                            }
                            all
                        })
                    }
                }
            }
        };
        S::join(batch.end(computed, rule).map(M::from_iter))
    }

    /// The `async` form of [`Memo::__call_batch`]: `body` gets the missing keys and makes the
    /// computation. Not part of the stable API.
    #[doc(hidden)]
    pub async fn __call_batch_async<S, M, B, F>(
        &self,
        keys: impl IntoIterator<Item = K>,
        share_error: Option<ShareError<S::Error>>,
        body: B,
    ) -> S::Output
    where
        S: Shape<Value = M>,
        M: IntoIterator<Item = (K, V)> + FromIterator<(K, V)>,
        B: FnOnce(Vec<K>) -> F,
        F: Future<Output = S::Output>,
    {
        if testing::is_disabled() {
            return body(keys.into_iter().collect()).await;
        }
        let rule = self.batch_rule(share_error);
        let mut batch = batch::begin(&self.cache, keys, self.options.coalesce);
        while let Some(flight) = batch.advance() {
            flight.wait_async().await;
            if let Err(error) = batch.resume(flight.ended(rule.share_error)) {
                return S::join(Err(error));
            }
        }
        let missing = batch.missing();
        let computed = if missing.is_empty() {
            Ok(M::from_iter(None))
        } else {
            match self.tier.as_deref() {
                None => S::split(running_batch(&batch, body(missing)).await),
                Some(tier) => {
                    let marks = batch.superseded_of(&missing);
                    let looked = tier.get_many(&missing, &marks).await;
                    let (found, absent) = in_tier(&missing, looked.found, &batch);
                    if absent.is_empty() {
                        Ok(M::from_iter(found))
                    } else {
                        match S::split(running_batch(&batch, body(absent.clone())).await) {
                            Ok(answer) => {
                                let (all, fresh, marks) = with_tier(found, answer, &absent, &batch);
                                if !fresh.is_empty() {
                                    looked.claim.store(&fresh, &marks).await;
                                }
                                Ok(all)
                            }
                            Err(error) => Err(error),
                        }
                    }
                }
            }
        };
        S::join(batch.end(computed, rule).map(M::from_iter))
    }

    /// What the caller that computes `key` runs: the body, through the shared tier when the
    /// function has one.
    fn computation<'m, S, B, F>(
        &'m self,
        key: &K,
        superseded: Superseded<V>,
        store: fn(&V) -> bool,
        body: B,
    ) -> impl Future<Output = Result<V, S::Error>> + use<'m, K, V, S, B, F>
    where
        S: Shape<Value = V>,
        B: FnOnce() -> F,
        F: Future<Output = S::Output>,
    {
        // Cloned here, once a caller computes, rather than by every call.
        let tier = self.tier.as_deref().map(|tier| (tier, key.clone()));
        async move {
            let compute = async move { S::split(body().await) };
            match tier {
                Some((tier, key)) => load_through(tier, &key, store, superseded, compute).await,
                None => compute.await,
            }
        }
    }
}

impl<K, V> Memo<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The call of an `async` `#[cached(refresh = …)]` function whose arguments are all owned,
    /// so that its body can outlive the call: like `__call_async`, but inside a tokio runtime
    /// (feature `tokio`) a refresh runs on a task of its own and every caller gets the old
    /// value at once. Not part of the stable API.
    #[doc(hidden)]
    pub fn __call_async_spawnable<S, B, F, Q>(
        &'static self,
        look: Look<V>,
        key: Q,
        share_error: Option<ShareError<S::Error>>,
        body: B,
    ) -> impl Future<Output = S::Output> + use<K, V, S, B, F, Q>
    where
        Q: LookupKey<K>,
        S: Shape<Value = V> + 'static,
        S::Error: 'static,
        B: FnOnce() -> F + Send + 'static,
        F: Future<Output = S::Output> + Send + 'static,
    {
        let Look(Some(unhit)) = look else {
            return Call::Body {
                body: Box::pin(body()),
            };
        };
        let rule = self.rule::<S>(share_error);
        Call::Load {
            load: load::load_async_detachable(
                &self.cache,
                Some(unhit),
                key,
                move |key, superseded| {
                    self.computation::<S, B, F>(key, superseded, rule.store, body)
                },
                rule,
                detach_refresh(rule),
                S::join,
            ),
        }
    }

    /// The `static` behind a `#[cached]` function: built on first use and then listed in the
    /// [`registry`](crate::registry()). Not part of the stable API.
    #[doc(hidden)]
    pub fn __get_or_init(
        slot: &'static OnceLock<Self>,
        init: impl FnOnce() -> Self,
    ) -> &'static Self {
        get_or_init_registered(slot, init, |memo| memo)
    }
}

/// Where an `async` `#[cached]` call goes on from after [`Memo::__look`] did not hit: the
/// load, or (`None`) the body alone, with memoization off on the thread ([`testing::disable`]).
/// Not part of the stable API.
#[doc(hidden)]
pub struct Look<V>(Option<load::Unhit<V>>);

pin_project_lite::pin_project! {
    /// The future of an `async` call: the load, or with memoization off on the thread that
    /// made it ([`testing::disable`]) the body alone, boxed so that the load's future does not
    /// grow by the body's.
    #[project = CallProjection]
    enum Call<L, F> {
        Load { #[pin] load: L },
        Body { body: Pin<Box<F>> },
    }
}

impl<L: Future, F: Future<Output = L::Output>> Future for Call<L, F> {
    type Output = L::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<L::Output> {
        match self.project() {
            CallProjection::Load { load } => load.poll(cx),
            CallProjection::Body { body } => body.as_mut().poll(cx),
        }
    }
}

/// The `static` handle in `slot`, built on first use; then the memo in it (`memo`) is listed
/// in the registry.
#[inline]
pub(crate) fn get_or_init_registered<T>(
    slot: &'static OnceLock<T>,
    init: impl FnOnce() -> T,
    memo: impl FnOnce(&'static T) -> &'static dyn ErasedMemo,
) -> &'static T {
    if let Some(handle) = slot.get() {
        return handle;
    }
    let mut built = false;
    let handle = slot.get_or_init(|| {
        built = true;
        init()
    });
    if built {
        registry().register(memo(handle));
    }
    handle
}

/// Runs a refresh on the current tokio runtime, if any (feature `tokio`); otherwise hands it
/// back to the caller.
#[allow(clippy::type_complexity)] // the signature `load_async_detachable` expects
fn detach_refresh<K, V, E, I, F>(
    rule: LoadRule<V, E>,
) -> impl FnOnce(Leader<'static, K, V>, I) -> Option<(Leader<'static, K, V>, I)>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: 'static,
    I: FnOnce(&K, Superseded<V>) -> F,
    F: Future<Output = Result<V, E>> + Send + 'static,
{
    move |leader, init| {
        #[cfg(feature = "tokio")]
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let refresh = leader
                .span()
                .instrument(init(leader.key(), leader.superseded()));
            runtime.spawn(async move {
                let result = refresh.await;
                // A refresh's caller already has the old value.
                drop(leader.finish(result, rule));
            });
            return None;
        }
        #[cfg(not(feature = "tokio"))]
        let _ = rule;
        Some((leader, init))
    }
}

/// `computation`, a batch's body, polled with the batch's keys marked as computed on this
/// thread during each poll (as `load::running_here` does for one key): a body that awaits its
/// own function for one of them panics with a message instead of waiting for itself.
async fn running_batch<K, V, F>(batch: &batch::Batch<'_, K, V>, computation: F) -> F::Output
where
    K: Hash + Eq + Clone,
    V: Clone,
    F: Future,
{
    let mut computation = std::pin::pin!(computation);
    std::future::poll_fn(|cx| {
        let _running = batch.running_here();
        computation.as_mut().poll(cx)
    })
    .await
}

impl<K, V> ErasedMemo for Memo<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn name(&self) -> &'static str {
        self.name
    }

    fn stats(&self) -> Option<Stats> {
        Some(Memo::stats(self))
    }

    fn clear(&self) {
        Memo::clear(self)
    }
}

/// What a tier holds of a batch's missing keys (`got`, in their order), and the keys it does
/// not hold, which the batch computes.
fn in_tier<K: Hash + Eq + Clone, V: Clone>(
    missing: &[K],
    got: Vec<Option<Kept<V>>>,
    batch: &batch::Batch<'_, K, V>,
) -> (Vec<(K, V)>, Vec<K>) {
    let mut found = Vec::new();
    let mut absent = Vec::new();
    for (key, kept) in missing.iter().zip(got) {
        match kept {
            Some((value, left)) => {
                // It lives in the process only what it had left in the tier.
                if let Some(left) = left {
                    batch.limit_lifetime(key, left);
                }
                found.push((key.clone(), value));
            }
            None => absent.push(key.clone()),
        }
    }
    (found, absent)
}

/// A batch's answer when it has a tier: the values `found` there and those computed
/// (`answer`), and, of the computed ones, those that go to the tier (of keys it asked for,
/// `absent` there, not superseded by a write while it computed), each with its mark, which
/// tells whether a write supersedes it before it is stored.
fn with_tier<K: Hash + Eq + Clone, V: Clone, M>(
    found: Vec<(K, V)>,
    answer: M,
    absent: &[K],
    batch: &batch::Batch<'_, K, V>,
) -> (M, Vec<(K, V)>, Vec<Superseded<V>>)
where
    M: IntoIterator<Item = (K, V)> + FromIterator<(K, V)>,
{
    let computed: Vec<(K, V)> = answer.into_iter().collect();
    let mut marks: std::collections::HashMap<&K, Superseded<V>> =
        absent.iter().zip(batch.superseded_of(absent)).collect();
    let (fresh, marks) = computed
        .iter()
        .filter_map(|entry| {
            let mark = marks.remove(&entry.0)?;
            (!mark.get()).then(|| (entry.clone(), mark))
        })
        .unzip();
    (found.into_iter().chain(computed).collect(), fresh, marks)
}

/// How the registry lists the cache of one instance: by a weak handle, so that the cache and
/// its values go with the instance; and once the instance is dropped, its counters (see
/// [`Retire`]), so that the function's counters never go down.
struct InstanceListing<K, V> {
    name: &'static str,
    cache: Weak<Inner<K, V>>,
    retired: parking_lot::Mutex<Option<Stats>>,
}

impl<K, V> Retire for InstanceListing<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Called by the instance's `Memo` as it is dropped: keeps the cache's counters, unless a
    /// clone of the cache outlives the instance (it is then counted while it lives).
    fn retire(&self) {
        let Some(inner) = self.cache.upgrade() else {
            return;
        };
        // The memo's handle and this one.
        if Arc::strong_count(&inner) <= 2 {
            *self.retired.lock() = Some(Cache { inner }.stats().counters_only());
        }
    }
}

impl<K, V> InstanceListing<K, V> {
    fn of(name: &'static str, cache: &Cache<K, V>) -> Self {
        InstanceListing {
            name,
            cache: Arc::downgrade(&cache.inner),
            retired: parking_lot::Mutex::new(None),
        }
    }

    fn cache(&self) -> Option<Cache<K, V>> {
        self.cache.upgrade().map(|inner| Cache { inner })
    }
}

impl<K, V> ErasedMemo for InstanceListing<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn name(&self) -> &'static str {
        self.name
    }

    fn stats(&self) -> Option<Stats> {
        // Gone: its counters if its instance kept them, else nothing (not an empty and
        // unbounded cache, which made the whole function's capacity unbounded).
        match self.cache() {
            Some(cache) => Some(cache.stats()),
            None => *self.retired.lock(),
        }
    }

    fn retired(&self) -> Option<Stats> {
        if self.alive() {
            return None;
        }
        *self.retired.lock()
    }

    fn clear(&self) {
        if let Some(cache) = self.cache() {
            cache.clear();
        }
    }

    fn alive(&self) -> bool {
        self.cache.strong_count() > 0
    }
}

impl<K, V> Memo<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The cache of one instance, for `#[cached(instance = field)]` (what the generated
    /// `new_<method>_cache()` returns): listed in the [`registry`](crate::registry()) under the
    /// method's name, with the other live instances' (their stats added up), until it is
    /// dropped. Not part of the stable API.
    #[doc(hidden)]
    pub fn __instance(name: &'static str, cache: Cache<K, V>, options: MemoOptions) -> Self {
        let listing = Arc::new(InstanceListing::of(name, &cache));
        registry().register_instance(listing.clone());
        let mut memo = Memo::__new(name, cache, options);
        memo.listing = Some(listing);
        memo
    }
}

// Here rather than in the registry, which knows memos only as `ErasedMemo`: listing a cache
// built by hand wraps it in a `Memo`.
impl Registry {
    /// Lists a [`Cache`] built by hand under `name`, as a `#[cached]` function is
    /// (its stats, [`clear`](Self::clear), the Prometheus text), for as long as the cache lives
    /// (any clone of it): the registry does not keep it alive, so a cache dropped everywhere
    /// else is freed and forgotten, as a per-instance cache is. Each call lists one more
    /// entry (entries of one name are added up): call it once per cache.
    ///
    /// ```
    /// let cache: memokit::Cache<u32, u32> = memokit::Cache::new(10);
    /// memokit::registry().register_cache("docs::by_hand", cache.clone());
    /// cache.get(&1);
    /// assert_eq!(memokit::registry().stats("docs::by_hand").map(|s| s.misses), Some(1));
    /// drop(cache);
    /// assert_eq!(memokit::registry().stats("docs::by_hand"), None);
    /// ```
    pub fn register_cache<K, V>(&self, name: &'static str, cache: Cache<K, V>)
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        cache.inner.config.name.set(name);
        self.register_instance(Arc::new(InstanceListing::of(name, &cache)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tier::map::MapTier;

    /// An instance dropped between the registry's `alive` and its `stats` is left out, not
    /// counted as an empty, unbounded cache (which made the function's capacity unbounded in
    /// that snapshot).
    #[test]
    fn an_instance_gone_before_its_stats_are_read_is_left_out() {
        let cache: Cache<u64, u64> = Cache::new(10);
        let listing = InstanceListing::of("tests::gone", &cache);
        assert_eq!(
            ErasedMemo::stats(&listing).map(|s| s.capacity),
            Some(Some(10))
        );
        drop(cache);
        assert!(ErasedMemo::stats(&listing).is_none());
    }

    /// Inside a removal from the tier, before it takes the copy: a lookup, as a call on another
    /// thread could make between the in-process removal and the tier's. It finds nothing in
    /// process, reads the copy still in the tier, and stores it in process.
    fn lookup_beside(tier: &MapTier, key: u64) {
        let local = tier.local();
        let copy = tier.copies.lock().get(&key).copied();
        if let (None, Some(copy)) = (local.get(&key), copy) {
            local.insert(key, copy);
        }
    }

    #[test]
    fn a_lookup_between_the_in_process_removal_and_the_tiers_does_not_undo_it() {
        let memo = Memo::__new(
            "memo::tests::beside",
            Cache::new(10),
            MemoOptions::default(),
        )
        .__with_shared(TierHandle(Some(Box::new(MapTier {
            before_removal: Some(lookup_beside),
            ..MapTier::default()
        }))));
        memo.insert_many([(1, 10), (2, 20), (3, 30)]);
        assert!(memo.invalidate(&1));
        assert_eq!(memo.cache().get(&1), None, "invalidate");
        assert_eq!(memo.invalidate_many([&2]), 1);
        assert_eq!(memo.cache().get(&2), None, "invalidate_many");
        memo.clear();
        assert_eq!(memo.cache().get(&3), None, "clear");
    }
}
