//! Two tiers behind one in-process cache, `near` in front of `far` (`#[cached(disk,
//! redis(...))]`: the disk, then Redis). A lookup tries `near`, then `far`, whose hit fills
//! `near`; a computed value goes to both, and so do the handles' writes. `far` applies other
//! processes' writes to `near` as well as to the in-process cache ([`Tier::forward_remote_writes`]),
//! and since `near` cannot know what it missed while this process was not listening, it starts
//! empty: [`Tier::attach`] drops the function's entries a previous run left in it.

use std::fmt;
use std::sync::Arc;

use crate::cache::flight::Superseded;
use crate::cache::stats::Stats;
use crate::cache::Cache;
use crate::tier::{
    BlockingWork, Claim, ClaimMany, Fetched, FoundMany, Tier, TierFuture, TierHandle,
};

/// `near` in front of `far`.
pub(crate) struct Chain<K, V> {
    near: Arc<dyn Tier<K, V>>,
    far: Box<dyn Tier<K, V>>,
}

impl<K, V> fmt::Debug for Chain<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chain")
            .field("near", &self.near)
            .field("far", &self.far)
            .finish()
    }
}

/// The tiers of `near` in front of those of `far`; either alone when the other has none.
pub(crate) fn chain<K, V>(near: TierHandle<K, V>, far: TierHandle<K, V>) -> TierHandle<K, V>
where
    K: Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    match (near.0, far.0) {
        (Some(near), Some(far)) => TierHandle(Some(Box::new(Chain {
            near: Arc::from(near),
            far,
        }))),
        (near, far) => TierHandle(near.or(far)),
    }
}

/// The claims of both tiers on a key missing in both.
struct Both<V> {
    near: Option<Box<dyn Claim<V>>>,
    far: Option<Box<dyn Claim<V>>>,
}

impl<V: Clone + Send + Sync + 'static> Claim<V> for Both<V> {
    fn store(self: Box<Self>, value: &V, superseded: Superseded<V>) -> TierFuture<'static, ()> {
        let Both { near, far } = *self;
        let value = value.clone();
        Box::pin(async move {
            if let Some(near) = near {
                near.store(&value, superseded.clone()).await;
            }
            if let Some(far) = far {
                far.store(&value, superseded).await;
            }
        })
    }
}

/// The claims of both tiers on a batch's keys missing in both.
struct BothMany<K, V> {
    near: Box<dyn ClaimMany<K, V>>,
    far: Box<dyn ClaimMany<K, V>>,
}

impl<K: Sync, V: Send + Sync> ClaimMany<K, V> for BothMany<K, V> {
    fn store<'a>(
        &'a self,
        entries: &'a [(K, V)],
        superseded: &'a [Superseded<V>],
    ) -> TierFuture<'a, ()> {
        Box::pin(async move {
            self.near.store(entries, superseded).await;
            self.far.store(entries, superseded).await;
        })
    }
}

impl<K, V> Tier<K, V> for Chain<K, V>
where
    K: Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn attach(
        &self,
        name: &'static str,
        local: &Cache<K, V>,
        defined_at: &'static std::panic::Location<'static>,
    ) {
        self.near.attach(name, local, defined_at);
        // Entries of a previous run: `far`'s invalidations made since were not heard.
        self.near.clear();
        self.far.forward_remote_writes(self.near.clone());
        self.far.attach(name, local, defined_at);
    }

    fn get<'a>(&'a self, key: &'a K, superseded: &'a Superseded<V>) -> TierFuture<'a, Fetched<V>> {
        Box::pin(async move {
            let near = match self.near.get(key, superseded).await {
                Fetched::Hit(value) => return Fetched::Hit(value),
                Fetched::Miss(claim) => claim,
            };
            match self.far.get(key, superseded).await {
                Fetched::Hit(value) => {
                    // Under `near`'s own check: a write of the key meanwhile keeps it out.
                    if let Some(near) = near {
                        near.store(&value, superseded.clone()).await;
                    }
                    Fetched::Hit(value)
                }
                Fetched::Miss(None) if near.is_none() => Fetched::Miss(None),
                Fetched::Miss(far) => Fetched::Miss(Some(Box::new(Both { near, far }))),
            }
        })
    }

    fn get_many<'a>(
        &'a self,
        keys: &'a [K],
        superseded: &'a [Superseded<V>],
    ) -> TierFuture<'a, FoundMany<K, V>> {
        Box::pin(async move {
            let FoundMany {
                mut found,
                claim: near,
            } = self.near.get_many(keys, superseded).await;
            let missing: Vec<usize> = (0..keys.len()).filter(|&at| found[at].is_none()).collect();
            let asked: Vec<K> = missing.iter().map(|&at| keys[at].clone()).collect();
            let marks: Vec<Superseded<V>> =
                missing.iter().map(|&at| superseded[at].clone()).collect();
            let FoundMany {
                found: from_far,
                claim: far,
            } = self.far.get_many(&asked, &marks).await;
            let mut fill = Vec::new();
            let mut fill_marks = Vec::new();
            for (at, kept) in missing.into_iter().zip(from_far) {
                if let Some(kept) = kept {
                    fill.push((keys[at].clone(), kept.0.clone()));
                    fill_marks.push(superseded[at].clone());
                    found[at] = Some(kept);
                }
            }
            if !fill.is_empty() {
                // Under `near`'s own check, as for one key.
                near.store(&fill, &fill_marks).await;
            }
            FoundMany {
                found,
                claim: Box::new(BothMany { near, far }),
            }
        })
    }

    fn put(&self, key: &K, value: &V) {
        self.near.put(key, value);
        self.far.put(key, value);
    }

    fn put_many(&self, entries: &[(K, V)]) {
        self.near.put_many(entries);
        self.far.put_many(entries);
    }

    fn remove(&self, key: &K) {
        self.near.remove(key);
        self.far.remove(key);
    }

    fn remove_many(&self, keys: &[K]) {
        self.near.remove_many(keys);
        self.far.remove_many(keys);
    }

    fn clear(&self) {
        self.near.clear();
        self.far.clear();
    }

    fn add_stats(&self, stats: &mut Stats) {
        self.near.add_stats(stats);
        self.far.add_stats(stats);
    }

    fn reset_stats(&self) {
        self.near.reset_stats();
        self.far.reset_stats();
    }

    fn block_on(&self, work: BlockingWork<'_>) {
        // `far`'s way runs the work of both (the disk's operations end at their first poll).
        self.far.block_on(work);
    }
}
