//! A tier of copies in a map, for the runtime's tests of how a write interleaves with what
//! another thread does meanwhile: a hook runs inside each write of a key, where such a call
//! could (before a removal takes the copy, after a put stores one).

use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context, Waker};

use parking_lot::Mutex;

use super::{BlockingWork, ClaimMany, Fetched, FoundMany, Tier, TierFuture};
use crate::cache::flight::Superseded;
use crate::cache::stats::Stats;
use crate::cache::Cache;

/// What runs inside a write of `key` to the tier.
pub(crate) type Hook = fn(&MapTier, u64);

#[derive(Debug, Default)]
pub(crate) struct MapTier {
    pub(crate) copies: Arc<Mutex<HashMap<u64, u64>>>,
    /// The in-process cache in front of it (set by `attach`).
    pub(crate) local: Mutex<Option<Cache<u64, u64>>>,
    /// Runs before a removal (and before `clear`, for each key) takes the copy.
    pub(crate) before_removal: Option<Hook>,
    /// Runs after a put stored its copy.
    pub(crate) after_put: Option<Hook>,
}

impl MapTier {
    /// The in-process cache in front of this tier.
    pub(crate) fn local(&self) -> Cache<u64, u64> {
        self.local.lock().clone().expect("attached")
    }
}

/// A batch's right to store its values (no hooks run).
struct MapClaim(Arc<Mutex<HashMap<u64, u64>>>);

impl ClaimMany<u64, u64> for MapClaim {
    fn store<'a>(
        &'a self,
        entries: &'a [(u64, u64)],
        superseded: &'a [Superseded<u64>],
    ) -> TierFuture<'a, ()> {
        for ((key, value), superseded) in entries.iter().zip(superseded) {
            if !superseded.get() {
                self.0.lock().insert(*key, *value);
            }
        }
        Box::pin(async {})
    }
}

impl Tier<u64, u64> for MapTier {
    fn attach(
        &self,
        _name: &'static str,
        local: &Cache<u64, u64>,
        _defined_at: &'static std::panic::Location<'static>,
    ) {
        *self.local.lock() = Some(local.clone());
    }

    fn get<'a>(&'a self, key: &'a u64, _: &'a Superseded<u64>) -> TierFuture<'a, Fetched<u64>> {
        let copy = self.copies.lock().get(key).copied();
        Box::pin(async move { copy.map_or(Fetched::Miss(None), Fetched::Hit) })
    }

    fn get_many<'a>(
        &'a self,
        keys: &'a [u64],
        _: &'a [Superseded<u64>],
    ) -> TierFuture<'a, FoundMany<u64, u64>> {
        let copies = self.copies.lock();
        let found = keys
            .iter()
            .map(|key| copies.get(key).map(|&value| (value, None)))
            .collect();
        Box::pin(async move {
            FoundMany {
                found,
                claim: Box::new(MapClaim(self.copies.clone())),
            }
        })
    }

    fn put(&self, key: &u64, value: &u64) {
        self.copies.lock().insert(*key, *value);
        if let Some(hook) = self.after_put {
            hook(self, *key);
        }
    }

    fn put_many(&self, entries: &[(u64, u64)]) {
        for (key, value) in entries {
            self.put(key, value);
        }
    }

    fn remove(&self, key: &u64) {
        if let Some(hook) = self.before_removal {
            hook(self, *key);
        }
        self.copies.lock().remove(key);
    }

    fn remove_many(&self, keys: &[u64]) {
        for key in keys {
            self.remove(key);
        }
    }

    fn clear(&self) {
        let keys: Vec<u64> = self.copies.lock().keys().copied().collect();
        for key in keys {
            self.remove(&key);
        }
    }

    fn add_stats(&self, _stats: &mut Stats) {}

    fn reset_stats(&self) {}

    fn block_on(&self, mut work: BlockingWork<'_>) {
        let mut cx = Context::from_waker(Waker::noop());
        while work.as_mut().poll(&mut cx).is_pending() {}
    }
}
