//! Loads of several keys at once (`#[cached(batch)]`): the keys found are served, the keys
//! another caller is computing are waited for, and the rest are computed by one call.
//!
//! A batch leads its missing keys' flights before it computes, and waits for the others' only
//! after it has ended its own: two batches that lead some keys each and wait for each other's
//! never wait in a circle.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use crate::cache::flight::{Ended, Flight, Outcome, RunningHere};
use crate::cache::load::{lookup, step, Found, Join, Leader, LoadRule};
use crate::cache::Cache;

/// A batch call between its look at the cache and its computation.
pub(crate) struct Batch<'a, K: Hash + Eq + Clone, V: Clone> {
    /// Values found (hits, and values that arrived meanwhile).
    found: HashMap<K, V>,
    /// The keys this call computes.
    leaders: Vec<Leader<'a, K, V>>,
    /// The keys another call computes.
    waits: Vec<(K, Arc<Flight<V>>)>,
}

/// Looks every distinct key of `keys` up, and takes over the computation of each missing key
/// that no other caller computes.
pub(crate) fn begin<'a, K: Hash + Eq + Clone, V: Clone>(
    cache: &'a Cache<K, V>,
    keys: impl IntoIterator<Item = K>,
    coalesce: bool,
) -> Batch<'a, K, V> {
    let mut batch = Batch {
        found: HashMap::new(),
        leaders: Vec::new(),
        waits: Vec::new(),
    };
    let mut seen = std::collections::HashSet::new();
    for key in keys {
        if !seen.insert(key.clone()) {
            continue;
        }
        let hash = cache.hash(&key);
        let shard = cache.shard_of(hash);
        match lookup(cache, shard, hash, &key) {
            // A value due for a refresh is still served; batches do not refresh ahead.
            Found::Hit(value) | Found::Stale(value) => {
                batch.found.insert(key, value);
                continue;
            }
            Found::Miss => {}
        }
        let mut waited = false;
        match step(cache, shard, hash, &key, coalesce, &mut waited) {
            Join::Ready(value) => {
                batch.found.insert(key, value);
            }
            Join::Lead(leader) => batch.leaders.push(leader),
            Join::Wait(flight) => batch.waits.push((key, flight)),
        }
    }
    batch
}

impl<'a, K: Hash + Eq + Clone, V: Clone> Batch<'a, K, V> {
    /// The keys this call must compute (empty: no computation).
    pub(crate) fn missing(&self) -> Vec<K> {
        self.leaders
            .iter()
            .map(|leader| leader.key().clone())
            .collect()
    }

    /// The keys of this call whose computation was superseded (written meanwhile): their
    /// computed values must not go to a tier (the in-process cache already keeps them out).
    pub(crate) fn superseded(&self) -> std::collections::HashSet<K> {
        self.leaders
            .iter()
            .filter(|leader| leader.superseded().get())
            .map(|leader| leader.key().clone())
            .collect()
    }

    /// Marks this thread as computing the batch's keys, so that a computation that calls the
    /// function again for one of them panics instead of waiting for itself.
    pub(crate) fn running_here(&self) -> RunningAll {
        RunningAll(
            self.leaders
                .iter()
                .map(|leader| leader.running_here())
                .collect(),
        )
    }

    /// Ends this call's flights with what the computation gave: each key's value is stored and
    /// handed to its waiters; a key left out of the answer ends its flight without a value
    /// (nothing stored; its waiters leave it out too); an error ends every flight as a failure.
    /// Returns the waits still to do, or the error.
    pub(crate) fn end<E, M>(
        mut self,
        computed: Result<M, E>,
        rule: LoadRule<V, E>,
    ) -> Result<Waits<K, V>, E>
    where
        M: IntoIterator<Item = (K, V)>,
    {
        let mut computed: HashMap<K, V> = match computed {
            Ok(answer) => answer.into_iter().collect(),
            Err(error) => {
                for leader in self.leaders.drain(..) {
                    leader.end_without_value(Ended::failure(&error, rule.share_error), true);
                }
                return Err(error);
            }
        };
        for leader in self.leaders.drain(..) {
            match computed.remove(leader.key()) {
                Some(value) => {
                    let key = leader.key().clone();
                    if let Ok(value) = leader.finish::<E>(Ok(value), rule) {
                        self.found.insert(key, value);
                    }
                }
                None => leader.end_without_value(Ended::Abandoned, false),
            }
        }
        Ok(Waits {
            found: self.found,
            waits: self.waits,
        })
    }
}

/// The marks of a batch's flights, left in the reverse order they were made (they nest).
pub(crate) struct RunningAll(Vec<RunningHere>);

impl Drop for RunningAll {
    fn drop(&mut self) {
        while self.0.pop().is_some() {}
    }
}

/// What a batch call waits for after its own computation.
pub(crate) struct Waits<K, V> {
    found: HashMap<K, V>,
    waits: Vec<(K, Arc<Flight<V>>)>,
}

impl<K: Hash + Eq, V: Clone> Waits<K, V> {
    /// Blocks until every waited-for key's flight ends. A key whose computation failed with an
    /// error this caller can copy fails the call; one that ended without a value (left out,
    /// panicked, cancelled, an error that cannot be copied) is left out of the answer.
    pub(crate) fn wait<E>(mut self, rule: LoadRule<V, E>) -> Result<HashMap<K, V>, E> {
        for (key, flight) in std::mem::take(&mut self.waits) {
            self.take(key, flight.wait(rule.share_error))?;
        }
        Ok(self.found)
    }

    /// The async form of [`Waits::wait`].
    pub(crate) async fn wait_async<E>(mut self, rule: LoadRule<V, E>) -> Result<HashMap<K, V>, E> {
        for (key, flight) in std::mem::take(&mut self.waits) {
            flight.wait_async().await;
            self.take(key, flight.ended(rule.share_error))?;
        }
        Ok(self.found)
    }

    fn take<E>(&mut self, key: K, outcome: Outcome<V, E>) -> Result<(), E> {
        match outcome {
            Outcome::Done(Ok(value)) => {
                self.found.insert(key, value);
                Ok(())
            }
            Outcome::Done(Err(error)) => Err(error),
            Outcome::Retry | Outcome::Failed => Ok(()),
        }
    }
}
