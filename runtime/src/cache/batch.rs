//! Loads of several keys at once (`#[cached(batch)]`): the keys found are served, the keys
//! another caller is computing are waited for, and the rest are computed by one call.
//!
//! A batch waits for another call's keys before it computes its own, and holds none of its own
//! while it waits: it gives up the keys it took ([`Leader::release`]; their waiters take over)
//! and takes them again afterwards. So no wait is ever in a circle, and a key whose computation
//! panicked or was cancelled is taken over by a batch waiting for it as by a single-key caller,
//! with the batch's one call of the body. Keys are taken in the order of their hashes, so that
//! two batches asking for the same keys do not each give up what the other waits for, again
//! and again.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use crate::cache::flight::{Ended, Flight, Outcome, RunningHere, Superseded};
use crate::cache::load::{lookup, step, Found, Join, Leader, LoadRule};
use crate::cache::Cache;

/// A batch call between its look at the cache and its computation.
pub(crate) struct Batch<'a, K: Hash + Eq + Clone, V: Clone> {
    cache: &'a Cache<K, V>,
    coalesce: bool,
    /// Values found (hits, and values that arrived meanwhile).
    found: HashMap<K, V>,
    /// Keys not settled yet, the smallest hash last (taken first).
    pending: Vec<Pending<K>>,
    /// The key whose flight the caller waits for.
    waiting: Option<Pending<K>>,
    /// The keys this call computes, each with its pending form, to be pending again if the
    /// call gives it up.
    leaders: Vec<(Pending<K>, Leader<'a, K, V>)>,
}

/// A missing key of a batch.
struct Pending<K> {
    key: K,
    hash: u64,
    shard: usize,
    /// Its place among the call's keys: the body gets its keys in the caller's order.
    place: usize,
    /// Whether this call already waited for it (one coalesced wait per key and call).
    waited: bool,
}

/// Looks every distinct key of `keys` up; the missing ones are then settled by
/// [`Batch::advance`].
pub(crate) fn begin<'a, K: Hash + Eq + Clone, V: Clone>(
    cache: &'a Cache<K, V>,
    keys: impl IntoIterator<Item = K>,
    coalesce: bool,
) -> Batch<'a, K, V> {
    let mut batch = Batch {
        cache,
        coalesce,
        found: HashMap::new(),
        pending: Vec::new(),
        waiting: None,
        leaders: Vec::new(),
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
            }
            Found::Miss => batch.pending.push(Pending {
                key,
                hash,
                shard,
                place: seen.len(),
                waited: false,
            }),
        }
    }
    batch.sort_pending();
    batch
}

impl<'a, K: Hash + Eq + Clone, V: Clone> Batch<'a, K, V> {
    /// Takes the pending keys, the smallest hash first: each key found meanwhile is served,
    /// each key nobody computes becomes this call's to compute, and at the first key another
    /// call computes, this call gives up its own and returns that key's flight, to wait for and
    /// pass to [`Batch::resume`]. `None` once every key is settled.
    pub(crate) fn advance(&mut self) -> Option<Arc<Flight<V>>> {
        debug_assert!(self.waiting.is_none(), "resume after each wait");
        while let Some(mut pending) = self.pending.pop() {
            let (cache, shard, hash) = (self.cache, pending.shard, pending.hash);
            match step(
                cache,
                shard,
                hash,
                &pending.key,
                self.coalesce,
                &mut pending.waited,
            ) {
                Join::Ready(value) => {
                    self.found.insert(pending.key, value);
                }
                Join::Lead(leader) => self.leaders.push((pending, leader)),
                Join::Wait(flight) => {
                    self.release_leaders();
                    self.waiting = Some(pending);
                    return Some(flight);
                }
            }
        }
        None
    }

    /// Gives up the keys taken so far (their waiters take over), to be taken again.
    fn release_leaders(&mut self) {
        for (pending, leader) in self.leaders.drain(..) {
            leader.release();
            self.pending.push(pending);
        }
        self.sort_pending();
    }

    fn sort_pending(&mut self) {
        self.pending
            .sort_unstable_by_key(|p| std::cmp::Reverse((p.hash, p.place)));
    }

    /// How the flight [`Batch::advance`] returned ended: its value is served; a computation
    /// that panicked or was cancelled makes the key pending again, to be taken over; a key
    /// another batch's answer left out, or whose error this caller cannot copy, is left out; an
    /// error it can copy fails the call.
    pub(crate) fn resume<E>(&mut self, outcome: Outcome<V, E>) -> Result<(), E> {
        let pending = self.waiting.take().expect("advance returned a flight");
        match outcome {
            Outcome::Done(Ok(value)) => {
                self.found.insert(pending.key, value);
            }
            Outcome::Done(Err(error)) => return Err(error),
            Outcome::Retry => {
                self.pending.push(pending);
                self.sort_pending();
            }
            Outcome::Failed | Outcome::Absent => {}
        }
        Ok(())
    }

    /// The keys this call must compute, in the caller's order (empty: no computation).
    pub(crate) fn missing(&self) -> Vec<K> {
        let mut pending: Vec<&Pending<K>> = self.leaders.iter().map(|(p, _)| p).collect();
        pending.sort_unstable_by_key(|p| p.place);
        pending.into_iter().map(|p| p.key.clone()).collect()
    }

    /// Per key of `keys`, all computed by this call, what tells whether its computation was
    /// superseded (the key written meanwhile): its value must then not go to a tier (the
    /// in-process cache already keeps it out).
    pub(crate) fn superseded_of(&self, keys: &[K]) -> Vec<Superseded<V>> {
        let marks: HashMap<&K, Superseded<V>> = self
            .leaders
            .iter()
            .map(|(_, leader)| (leader.key(), leader.superseded()))
            .collect();
        keys.iter()
            .map(|key| marks.get(key).expect("a key this call computes").clone())
            .collect()
    }

    /// The value this call stores for `key` came from a tier with only `left` to live: its
    /// entry lives no longer.
    pub(crate) fn limit_lifetime(&self, key: &K, left: std::time::Duration) {
        if let Some((_, leader)) = self.leaders.iter().find(|(pending, _)| pending.key == *key) {
            leader.superseded().limit_lifetime(left);
        }
    }

    /// Marks this thread as computing the batch's keys, so that a computation that calls the
    /// function again for one of them panics instead of waiting for itself.
    pub(crate) fn running_here(&self) -> RunningAll {
        RunningAll(
            self.leaders
                .iter()
                .map(|(_, leader)| leader.running_here())
                .collect(),
        )
    }

    /// Ends this call's flights with what the computation gave: each key's value is stored and
    /// handed to its waiters; a key left out of the answer ends its flight without a value
    /// (nothing stored; its waiters leave it out too); an error ends every flight as a failure.
    /// Returns every value of the call, or the error.
    pub(crate) fn end<E, M>(
        mut self,
        computed: Result<M, E>,
        rule: LoadRule<V, E>,
    ) -> Result<HashMap<K, V>, E>
    where
        M: IntoIterator<Item = (K, V)>,
    {
        debug_assert!(self.pending.is_empty() && self.waiting.is_none());
        let mut computed: HashMap<K, V> = match computed {
            Ok(answer) => answer.into_iter().collect(),
            Err(error) => {
                for (_, leader) in self.leaders.drain(..) {
                    leader.end_without_value(Ended::failure(&error, rule.share_error), true);
                }
                return Err(error);
            }
        };
        for (_, leader) in self.leaders.drain(..) {
            match computed.remove(leader.key()) {
                Some(value) => {
                    let key = leader.key().clone();
                    if let Ok(value) = leader.finish::<E>(Ok(value), rule) {
                        self.found.insert(key, value);
                    }
                }
                None => leader.end_without_value(Ended::Absent, false),
            }
        }
        Ok(std::mem::take(&mut self.found))
    }
}

/// The marks of a batch's flights, left in the reverse order they were made (they nest).
pub(crate) struct RunningAll(Vec<RunningHere>);

impl Drop for RunningAll {
    fn drop(&mut self) {
        while self.0.pop().is_some() {}
    }
}
