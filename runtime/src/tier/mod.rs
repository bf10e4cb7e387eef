//! The seam between a memoized function and the tiers behind its in-process cache.
//!
//! A [`Memo`](crate::Memo) holds at most one [`Tier`] as a trait object; it never names a
//! concrete tier. Redis (`tier::redis`) and the disk (`tier::disk`) implement it, and so does
//! [`chain::Chain`], which puts one tier in front of another (disk, then Redis). A tier keeps
//! its own counters and adds them to the function's [`Stats`], and it hears other processes'
//! writes by itself: [`Tier::attach`] hands it the function's name and in-process cache, and
//! [`Tier::forward_remote_writes`] the tier in front of it, so that neither the memo nor the
//! registry knows how invalidations travel.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::cache::flight::Superseded;
use crate::cache::stats::Stats;
use crate::cache::Cache;

pub(crate) mod chain;
#[cfg(any(feature = "redis", feature = "disk"))]
pub(crate) mod codec;
#[cfg(feature = "disk")]
pub(crate) mod disk;
#[cfg(test)]
pub(crate) mod map;
#[cfg(feature = "redis")]
pub(crate) mod redis;

// Documented with the `redis` feature, where it is public as `memokit::redis::Codec` and its
// example and links resolve; without it, only `__private` reaches it (see ARCHITECTURE.md).
#[cfg_attr(feature = "redis", doc = include_str!("codec.md"))]
#[cfg_attr(
    not(feature = "redis"),
    doc = "How a shared function's values are written to Redis (the `redis` feature)."
)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// [postcard](https://docs.rs/postcard) behind a 6-byte header, compressed with LZ4
    /// above `memokit::redis::Config::compress_above` bytes: the smallest and fastest, read by
    /// memokit only.
    #[default]
    Postcard,
    /// One JSON document, `{"memokit":2,"fingerprint":"…","value":…}`, never compressed: for
    /// values that other languages read with `GET` and a JSON parser.
    Json,
}

/// A tier's operation in progress.
pub(crate) type TierFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Work that a synchronous caller runs to its end on its own thread.
pub(crate) type BlockingWork<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

/// A store behind the in-process cache of one memoized function.
///
/// Reads happen only in the leader of a key's in-process flight, so one caller per process
/// and key talks to the tier. A tier that cannot be reached is a miss, never an error: the
/// function's value is then computed (and counted in the tier's own error counter).
pub(crate) trait Tier<K, V>: Send + Sync + fmt::Debug {
    /// Called once, by the memo that holds the tier: the function's registry name, its
    /// in-process cache, to which the tier applies what other processes write, and where the
    /// function is defined (for messages).
    fn attach(
        &self,
        name: &'static str,
        local: &Cache<K, V>,
        defined_at: &'static std::panic::Location<'static>,
    );

    /// The value of `key` in the tier, or, on a miss, what the caller that computes the value
    /// needs to store it there (`None`: do not). A refresh (`superseded.is_refresh()`)
    /// recomputes a value still cached, so it reads nothing.
    fn get<'a>(&'a self, key: &'a K, superseded: &'a Superseded<V>) -> TierFuture<'a, Fetched<V>>;

    /// Called by a [`chain::Chain`] before [`Tier::attach`]: a tier that hears other
    /// processes' writes applies them to `near`, the tier in front of it, as well as to the
    /// in-process cache. Others ignore it.
    fn forward_remote_writes(&self, near: std::sync::Arc<dyn Tier<K, V>>) {
        let _ = near;
    }

    /// The values of a batch's missing `keys` in the tier, in one round trip where the tier
    /// can (`None` for each miss), each with how long it has left to live where the tier
    /// keeps the function's own deadline (the disk tier; `None`: a whole ttl), and the claim
    /// to store the values computed for the misses. `superseded` has one mark per key (see
    /// [`Tier::get`]).
    fn get_many<'a>(
        &'a self,
        keys: &'a [K],
        superseded: &'a [Superseded<V>],
    ) -> TierFuture<'a, FoundMany<K, V>>;

    /// A handle's `insert`: stores `value` and tells the other processes.
    fn put(&self, key: &K, value: &V);

    /// A handle's `insert_many`.
    fn put_many(&self, entries: &[(K, V)]);

    /// A handle's `invalidate`: removes `key` and tells the other processes.
    fn remove(&self, key: &K);

    /// A handle's `invalidate_many`.
    fn remove_many(&self, keys: &[K]);

    /// A handle's `clear`.
    fn clear(&self);

    /// Adds the tier's counters to the function's.
    fn add_stats(&self, stats: &mut Stats);

    /// Sets the tier's counters back to zero.
    fn reset_stats(&self);

    /// Runs `work` to its end on the calling thread: how a synchronous function awaits the
    /// tier's operations.
    fn block_on(&self, work: BlockingWork<'_>);
}

/// A value a tier holds, and how long it has left to live when the tier knows it.
pub(crate) type Kept<V> = (V, Option<std::time::Duration>);

/// What a batch's look in a tier found: per key asked, its value if the tier had one, and the
/// claim to store the others'.
pub(crate) struct FoundMany<K, V> {
    pub(crate) found: Vec<Option<Kept<V>>>,
    pub(crate) claim: Box<dyn ClaimMany<K, V>>,
}

/// The right to store the values a batch computed for the keys a tier lacked (and whatever
/// the tier holds meanwhile, such as their leases); dropped, it stores nothing more.
pub(crate) trait ClaimMany<K, V>: Send + Sync {
    /// Stores computed `entries` of keys the tier lacked, none of them `superseded` (its key
    /// written meanwhile, one mark per entry) when the caller looked; a write of a key between
    /// the tier's look and this store must not leave the older value behind in the tier.
    fn store<'a>(
        &'a self,
        entries: &'a [(K, V)],
        superseded: &'a [Superseded<V>],
    ) -> TierFuture<'a, ()>;
}

/// What a look in a tier found.
// Built by the tiers, none of which is compiled in without its feature.
#[cfg_attr(not(any(feature = "redis", feature = "disk")), allow(dead_code))]
pub(crate) enum Fetched<V> {
    Hit(V),
    /// Nothing usable: compute the value, then store it with the claim, if any.
    Miss(Option<Box<dyn Claim<V>>>),
}

/// The right to store the value of one key in a tier (and whatever the tier holds meanwhile,
/// such as a lease); dropped without [`Claim::store`], it stores nothing.
pub(crate) trait Claim<V>: Send {
    /// Stores a computed `value`, which was not `superseded` (its key written meanwhile) when
    /// the caller looked; a write of the key between that look and the store must not leave
    /// this older value behind in the tier.
    fn store(self: Box<Self>, value: &V, superseded: Superseded<V>) -> TierFuture<'static, ()>;
}

/// The computation of `key` behind `tier`: the tier's value if it has one, and otherwise
/// `compute`'s, which the tier stores too when `store` says the in-process cache does.
pub(crate) async fn load_through<K, V, E>(
    tier: &dyn Tier<K, V>,
    key: &K,
    store: fn(&V) -> bool,
    superseded: Superseded<V>,
    compute: impl Future<Output = Result<V, E>>,
) -> Result<V, E> {
    let claim = match tier.get(key, &superseded).await {
        Fetched::Hit(value) => return Ok(value),
        Fetched::Miss(claim) => claim,
    };
    let value = compute.await?;
    if gone(store, &value, &superseded) {
        tier.remove(key);
    }
    if let Some(claim) = claim.filter(|_| stores(store, &value, &superseded)) {
        claim.store(&value, superseded).await;
    }
    Ok(value)
}

/// [`load_through`] for a synchronous function: the tier's operations run to their end on the
/// calling thread, and `compute` runs between them, outside any of them.
pub(crate) fn load_through_blocking<K, V, E>(
    tier: &dyn Tier<K, V>,
    key: &K,
    store: fn(&V) -> bool,
    superseded: Superseded<V>,
    compute: impl FnOnce() -> Result<V, E>,
) -> Result<V, E> {
    let claim = match block_on(tier, tier.get(key, &superseded)) {
        Fetched::Hit(value) => return Ok(value),
        Fetched::Miss(claim) => claim,
    };
    let value = compute()?;
    if gone(store, &value, &superseded) {
        tier.remove(key);
    }
    if let Some(claim) = claim.filter(|_| stores(store, &value, &superseded)) {
        tier.block_on(claim.store(&value, superseded));
    }
    Ok(value)
}

/// Whether a computed value goes to the tier: when the in-process cache stores it too, which
/// it does not for a computation superseded by a write of its key (it may predate the write).
fn stores<V>(store: fn(&V) -> bool, value: &V, superseded: &Superseded<V>) -> bool {
    store(value) && !superseded.get()
}

/// Whether a refresh found the value gone at its source (a value the cache does not store,
/// such as a `None`): the in-process cache then drops the old one, and the tier must too, or
/// the next miss would read it back.
fn gone<V>(store: fn(&V) -> bool, value: &V, superseded: &Superseded<V>) -> bool {
    superseded.is_refresh() && !store(value) && !superseded.get()
}

/// The output of `work`, run to its end by the tier's [`Tier::block_on`].
pub(crate) fn block_on<K, V, T>(tier: &dyn Tier<K, V>, work: TierFuture<'_, T>) -> T {
    let mut output = None;
    tier.block_on(Box::pin(async {
        output = Some(work.await);
    }));
    output.expect("a tier's block_on runs its work to the end")
}

/// The tier a memo holds, as `#[cached(redis(...))]` passes it (see `Memo::__with_shared`).
/// Not part of the stable API.
#[doc(hidden)]
pub struct TierHandle<K, V>(pub(crate) Option<Box<dyn Tier<K, V>>>);

impl<K, V> fmt::Debug for TierHandle<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TierHandle").field(&self.0).finish()
    }
}

/// What `shared_tier` (`disk_tier`) gives without the `redis` (`disk`) feature (never built:
/// it does not compile then).
#[doc(hidden)]
#[cfg(not(all(feature = "redis", feature = "disk")))]
#[derive(Debug)]
pub struct NoSharedTier;

#[cfg(not(all(feature = "redis", feature = "disk")))]
impl<K, V> From<NoSharedTier> for TierHandle<K, V> {
    fn from(_: NoSharedTier) -> Self {
        TierHandle(None)
    }
}
