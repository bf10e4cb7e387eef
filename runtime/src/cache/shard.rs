//! One shard: one lock, one hash table of slot numbers, one slab of entries, one policy.
//! Every mutation of cached data happens here, under the shard's exclusive lock.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering, Ordering::Relaxed};
use std::sync::Arc;

use equivalent::Equivalent;
use hashbrown::HashTable;
use parking_lot::RwLock;

use crate::cache::expiry::{Deadline, ExpiryPolicy};
use crate::cache::policy::{bump_uses, Policy, PolicyState, SlotInfo, WindowTuner};
use crate::cache::removal::RemovalCause;
use crate::cache::stats::Counters;

/// Slots examined for expiry on each write, so expired entries leave without being read.
const SWEEP_PER_WRITE: usize = 4;

/// One cached entry. Its hash is not stored but recomputed from the key on the rare paths that
/// need it (removal, table growth, the S3-FIFO ghost), and the weight is kept non-zero so that
/// `Option<Entry>` needs no separate tag: 24 bytes for a `u64 -> u64` entry instead of 40.
pub(crate) struct Entry<K, V> {
    key: K,
    value: V,
    /// The weight plus one.
    stored_weight: NonZeroU32,
    /// Owned by the eviction policy (see `PolicyState`); fits in the entry's padding.
    policy_bits: AtomicU8,
}

impl<K, V> Entry<K, V> {
    fn new(key: K, value: V, weight: u64) -> Self {
        let stored_weight = stored_weight(weight);
        Entry {
            key,
            value,
            stored_weight,
            policy_bits: AtomicU8::new(0),
        }
    }

    fn weight(&self) -> u64 {
        u64::from(self.stored_weight.get() - 1)
    }

    fn set_weight(&mut self, weight: u64) {
        self.stored_weight = stored_weight(weight);
    }
}

/// Counts one event in a shard counter that is only written under the shard's exclusive lock,
/// which the caller holds (inserts, evictions, expirations, invalidations; see
/// [`Shard::reset_counters`]): a load and a store, without an atomic read-modify-write.
fn bump_locked(counter: &AtomicU64) {
    counter.store(counter.load(Relaxed) + 1, Relaxed);
}

/// A weight as stored: plus one, so that it is never zero. Weights come from a `u32` weigher;
/// the largest one is stored one lighter.
#[inline]
fn stored_weight(weight: u64) -> NonZeroU32 {
    let plus_one = u32::try_from(weight).unwrap_or(u32::MAX).saturating_add(1);
    NonZeroU32::new(plus_one).expect("at least one")
}

/// The highest load of a full shard's table that the builder's choice of shard count aims for
/// (`builder::densest_split`) and that [`ShardData::make_room_in_table`] keeps by rebuilding.
/// Evictions leave tombstones in a full table, and the fuller it is the sooner they use up its
/// free buckets: measured with hashbrown 0.17, rebuilds cost 1.5 re-insertions per insertion at
/// 0.75, 3.4 at 0.8, 15 at 0.85.
pub(crate) const MAX_TABLE_LOAD: f64 = 0.8;

/// Buckets of a hashbrown table that holds `entries` (as `HashTable::with_capacity` sizes it:
/// a power of two, at most 7/8 full; `shard::tests` checks it against hashbrown).
pub(crate) fn table_buckets(entries: u64) -> u64 {
    match entries {
        0 => 0,
        1..4 => 4,
        4..8 => 8,
        _ => (entries.saturating_mul(8) / 7).next_power_of_two(),
    }
}

/// The most entries a hashbrown table of `buckets` holds before it grows (7/8 of them, all
/// but one below eight).
fn buckets_capacity(buckets: u64) -> u64 {
    if buckets < 8 {
        buckets.saturating_sub(1)
    } else {
        buckets / 8 * 7
    }
}

/// Entries removed by an operation, handed to the eviction listener once the lock is released.
pub(crate) type Removed<K, V> = Vec<(K, V, RemovalCause)>;

/// Gives an entry its weight (see `CacheBuilder::weigher`).
pub(crate) type Weigher<K, V> = Box<dyn Fn(&K, &V) -> u32 + Send + Sync>;

/// Per-cache settings every shard operation needs.
pub(crate) struct ShardConfig<K, V> {
    pub(crate) expiry: ExpiryPolicy,
    pub(crate) weigher: Option<Weigher<K, V>>,
    /// Whether removed entries must be collected for a listener (otherwise they are dropped).
    pub(crate) collect_removed: bool,
    /// The function's name, for traces (feature `tracing`).
    pub(crate) name: crate::cache::trace::TraceName,
}

impl<K, V> ShardConfig<K, V> {
    fn weigh(&self, key: &K, value: &V) -> u64 {
        self.weigher
            .as_ref()
            // 0 counts as 1: entries that weigh nothing would make a bounded cache unbounded.
            .map_or(1, |weigh| u64::from(weigh(key, value).max(1)))
    }
}

struct ShardData<K, V> {
    table: HashTable<u32>,
    slots: Vec<Option<Entry<K, V>>>,
    free: Vec<u32>,
    /// Per slot, only when the cache expires entries.
    deadlines: Vec<Deadline>,
    /// Per slot, only when the cache refreshes entries: when the entry is due for a refresh.
    refresh_at: Vec<u64>,
    policy: PolicyState,
    weight: u64,
    sweep_cursor: usize,
    /// The cache's hasher, to recompute the hash of a stored key.
    hasher: ahash::RandomState,
}

pub(crate) struct Shard<K, V> {
    data: RwLock<ShardData<K, V>>,
    /// Whether a hit reorders the policy's lists and so needs the exclusive lock.
    exclusive_hits: bool,
    capacity: u64,
    len: AtomicU64,
    weight: AtomicU64,
    pub(crate) counters: Counters,
}

/// The slots as a policy sees them while choosing a victim.
struct SlotView<'a, K, V> {
    slots: &'a [Option<Entry<K, V>>],
    hasher: &'a ahash::RandomState,
}

impl<K: Hash, V> SlotInfo for SlotView<'_, K, V> {
    fn weight(&self, idx: u32) -> u64 {
        self.slots[idx as usize].as_ref().map_or(0, Entry::weight)
    }

    fn hash(&self, idx: u32) -> u64 {
        self.slots[idx as usize]
            .as_ref()
            .map_or(0, |e| self.hasher.hash_one(&e.key))
    }

    fn bits(&self, idx: u32) -> &AtomicU8 {
        &self.slots[idx as usize]
            .as_ref()
            .expect("a victim is a live slot")
            .policy_bits
    }
}

impl<K: Hash + Eq, V> ShardData<K, V> {
    #[inline]
    fn find<Q>(&self, hash: u64, key: &Q) -> Option<u32>
    where
        Q: Equivalent<K> + ?Sized,
    {
        self.find_entry(hash, key).map(|(idx, _)| idx)
    }

    /// [`ShardData::find`] that also returns the entry, read once while probing (no second
    /// bounds check and `Option` test of the slot on the hit path).
    #[inline]
    fn find_entry<Q>(&self, hash: u64, key: &Q) -> Option<(u32, &Entry<K, V>)>
    where
        Q: Equivalent<K> + ?Sized,
    {
        let slots = &self.slots;
        let mut found = None;
        // The probe stops at the first match, so `found` is set exactly when it matches.
        self.table.find(hash, |&idx| match &slots[idx as usize] {
            Some(entry) if key.equivalent(&entry.key) => {
                found = Some((idx, entry));
                true
            }
            _ => false,
        });
        found
    }

    fn entry(&self, idx: u32) -> &Entry<K, V> {
        self.slots[idx as usize]
            .as_ref()
            .expect("table points at a live slot")
    }

    #[inline]
    fn is_expired(&self, idx: u32, now: Option<u64>) -> bool {
        now.is_some_and(|now| self.deadlines[idx as usize].is_expired(now))
    }

    /// Whether slot `idx` expired at least `expiry`'s stale-if-error window ago (or, without
    /// one, is expired): an entry that may be reclaimed.
    fn is_reclaimable(&self, idx: u32, now: Option<u64>, expiry: &ExpiryPolicy) -> bool {
        now.is_some_and(|now| self.deadlines[idx as usize].is_reclaimable(now, expiry.grace()))
    }

    /// Sets the deadlines (and the refresh time) of slot `idx`, written at `now`.
    fn set_times(
        &mut self,
        expiry: &ExpiryPolicy,
        idx: u32,
        hash: u64,
        now: u64,
        until: Option<u64>,
    ) {
        let mut deadline = expiry.deadline_for_write(now, hash);
        if let Some(until) = until {
            deadline.expire_by(until);
        }
        match self.deadlines.get_mut(idx as usize) {
            Some(slot) => *slot = deadline,
            None => self.deadlines.push(deadline),
        }
        if expiry.refresh.is_some() {
            let at = expiry.refresh_at(now, hash);
            match self.refresh_at.get_mut(idx as usize) {
                Some(slot) => *slot = at,
                None => self.refresh_at.push(at),
            }
        }
    }

    /// Makes room for one more slot when the slab is full: doubling, as `Vec` would, but never
    /// past `capacity`, the most entries the shard can hold (each weighs at least one), so a
    /// full shard's slab has no unused tail. The policy's per-slot links grow with it.
    fn grow_slots(&mut self, capacity: u64) {
        let len = self.slots.len();
        if len == self.slots.capacity() {
            let most = usize::try_from(capacity).unwrap_or(usize::MAX);
            self.slots
                .reserve_exact(len.max(4).min(most.saturating_sub(len)).max(1));
            self.policy.reserve(self.slots.capacity());
        }
    }

    /// Before an insertion into the table: when tombstones (which evictions leave in full
    /// groups) have used up its free buckets while it already has buckets for `capacity`
    /// entries, builds it again at that size; hashbrown would double it, as it does when more
    /// than half its buckets' capacity is in use, and a full shard's table then stays twice the
    /// size it needs. Only up to [`MAX_TABLE_LOAD`]: fuller tables double as before, since they
    /// would be rebuilt too often.
    fn make_room_in_table(&mut self, capacity: u64) {
        let len = self.table.len();
        if len < self.table.capacity() {
            return;
        }
        let buckets = self.table.num_buckets() as u64;
        let holds = buckets_capacity(buckets);
        if holds < capacity || len as f64 > buckets as f64 * MAX_TABLE_LOAD {
            return;
        }
        let mut table = HashTable::with_capacity(holds as usize);
        let (slots, hasher) = (&self.slots, &self.hasher);
        let rehash = |&i: &u32| {
            slots[i as usize]
                .as_ref()
                .map_or(0, |e| hasher.hash_one(&e.key))
        };
        // In slot order: the slab is read front to back.
        for (idx, slot) in slots.iter().enumerate() {
            if let Some(entry) = slot {
                table.insert_unique(hasher.hash_one(&entry.key), idx as u32, rehash);
            }
        }
        debug_assert_eq!(table.num_buckets() as u64, buckets);
        self.table = table;
    }

    /// Takes slot `idx` out of the table and slab; the policy must already have forgotten it.
    fn take_slot(&mut self, idx: u32) -> Entry<K, V> {
        let entry = self.slots[idx as usize]
            .take()
            .expect("removing a live slot");
        if let Ok(found) = self
            .table
            .find_entry(self.hasher.hash_one(&entry.key), |&i| i == idx)
        {
            found.remove();
        }
        self.free.push(idx);
        self.weight -= entry.weight();
        entry
    }
}

impl<K: Hash + Eq, V: Clone> Shard<K, V> {
    pub(crate) fn new(
        policy: Policy,
        capacity: u64,
        hasher: ahash::RandomState,
        tuner: &Arc<WindowTuner>,
    ) -> Self {
        let policy = PolicyState::new(policy, capacity, tuner);
        Shard {
            exclusive_hits: policy.hit_needs_exclusive(),
            data: RwLock::new(ShardData {
                table: HashTable::new(),
                slots: Vec::new(),
                free: Vec::new(),
                deadlines: Vec::new(),
                refresh_at: Vec::new(),
                policy,
                weight: 0,
                sweep_cursor: 0,
                hasher,
            }),
            capacity,
            len: AtomicU64::new(0),
            weight: AtomicU64::new(0),
            counters: Counters::default(),
        }
    }

    pub(crate) fn len(&self) -> u64 {
        self.len.load(Relaxed)
    }

    pub(crate) fn weighted_size(&self) -> u64 {
        self.weight.load(Relaxed)
    }

    /// Sets the shard's counters back to zero under its exclusive lock, so that no writer's
    /// [`bump_locked`] stores a count loaded before the reset.
    pub(crate) fn reset_counters(&self) {
        let _exclusive = self.data.write();
        self.counters.reset();
    }

    /// Looks `key` up and records the use with the policy; counts nothing (see
    /// [`Shard::count`]). `now` is the clock reading when the cache expires entries.
    #[inline]
    pub(crate) fn lookup<Q>(
        &self,
        cfg: &ShardConfig<K, V>,
        hash: u64,
        key: &Q,
        now: Option<u64>,
    ) -> Lookup<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        if self.exclusive_hits {
            let mut guard = self.data.write();
            let data = &mut *guard;
            match data.find(hash, key) {
                Some(idx) if !data.is_expired(idx, now) => {
                    let entry = data.slots[idx as usize].as_ref().expect("live slot");
                    data.policy.on_hit(idx, &entry.policy_bits);
                    let stale = Self::touch_deadline(data, cfg, idx, now);
                    Lookup::hit(entry.value.clone(), stale)
                }
                Some(_) => Lookup::Expired,
                None => Lookup::Miss,
            }
        } else {
            let data = self.data.read();
            match data.find_entry(hash, key) {
                Some((idx, entry)) if !data.is_expired(idx, now) => {
                    data.policy.on_hit_shared(&entry.policy_bits);
                    let stale = Self::touch_deadline(&data, cfg, idx, now);
                    Lookup::hit(entry.value.clone(), stale)
                }
                Some(_) => Lookup::Expired,
                None => Lookup::Miss,
            }
        }
    }

    /// The hit path of a cache without a clock whose policy records a hit under the shared lock:
    /// a use counter in the entry's policy bits, up to `max_uses` (what
    /// [`PolicyState::on_hit_shared`] does, without reading the policy's state; FIFO's 0
    /// records nothing). Counts nothing.
    #[inline(always)]
    pub(crate) fn lookup_unclocked<Q>(&self, hash: u64, key: &Q, max_uses: u8) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        debug_assert!(!self.exclusive_hits);
        let data = self.data.read();
        let (_, entry) = data.find_entry(hash, key)?;
        if max_uses != 0 {
            bump_uses(&entry.policy_bits, max_uses);
        }
        Some(entry.value.clone())
    }

    /// Records a read in the entry's deadlines; returns whether the entry is due for a refresh.
    #[inline]
    fn touch_deadline(
        data: &ShardData<K, V>,
        cfg: &ShardConfig<K, V>,
        idx: u32,
        now: Option<u64>,
    ) -> bool {
        let Some(now) = now else { return false };
        cfg.expiry.on_read(&data.deadlines[idx as usize], now);
        // The one extra branch of a hit in a cache with expiry but without refresh.
        cfg.expiry.refresh.is_some() && data.refresh_at[idx as usize] <= now
    }

    /// Whether `key` has a live entry due for a refresh at `now`.
    pub(crate) fn refresh_due<Q>(&self, hash: u64, key: &Q, now: Option<u64>) -> bool
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let Some(now) = now else { return false };
        let data = self.data.read();
        data.find(hash, key).is_some_and(|idx| {
            !data.is_expired(idx, Some(now))
                && data
                    .refresh_at
                    .get(idx as usize)
                    .is_some_and(|&at| at <= now)
        })
    }

    /// Moves the refresh time of `key`'s live entry to `at` at the earliest (after a failed
    /// refresh).
    pub(crate) fn postpone_refresh<Q>(&self, hash: u64, key: &Q, now: Option<u64>, at: u64)
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let mut data = self.data.write();
        if let Some(idx) = data
            .find(hash, key)
            .filter(|&idx| !data.is_expired(idx, now))
        {
            if let Some(slot) = data.refresh_at.get_mut(idx as usize) {
                *slot = (*slot).max(at);
            }
        }
    }

    /// The value of `key` if it is live or expired within the stale-if-error window at `now`
    /// (what a failed recomputation returns instead of its error); not counted, not a use.
    pub(crate) fn stale_value<Q>(
        &self,
        cfg: &ShardConfig<K, V>,
        hash: u64,
        key: &Q,
        now: Option<u64>,
    ) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let data = self.data.read();
        let idx = data
            .find(hash, key)
            .filter(|&idx| !data.is_reclaimable(idx, now, &cfg.expiry))?;
        Some(data.entry(idx).value.clone())
    }

    /// Reads the live value of `key` with `read`; not counted as a lookup and not a use.
    pub(crate) fn peek<Q, R>(
        &self,
        hash: u64,
        key: &Q,
        now: Option<u64>,
        read: impl FnOnce(&V) -> R,
    ) -> Option<R>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let data = self.data.read();
        let idx = data
            .find(hash, key)
            .filter(|&idx| !data.is_expired(idx, now))?;
        Some(read(&data.entry(idx).value))
    }

    /// Stores `value` under `key`, evicting as needed so the shard never exceeds its capacity;
    /// stores nothing if `superseded` is set once the lock is held. With `until`, the entry
    /// expires then at the latest (a value a tier had with less than its ttl left).
    #[allow(clippy::too_many_arguments)] // each is a different input of one write
    pub(crate) fn insert(
        &self,
        cfg: &ShardConfig<K, V>,
        hash: u64,
        key: K,
        value: V,
        now: Option<u64>,
        until: Option<u64>,
        superseded: Option<&AtomicBool>,
        removed: &mut Removed<K, V>,
    ) {
        let weight = cfg.weigh(&key, &value);
        let mut guard = self.data.write();
        if superseded.is_some_and(|flag| flag.load(Ordering::Acquire)) {
            return;
        }
        let entry = (hash, key, value, weight);
        self.insert_locked(cfg, &mut guard, entry, now, until, removed);
    }

    /// Stores each of `entries` (hash, key, value), in order, as [`insert`](Self::insert) would
    /// one after the other, under one lock: weighed before it is taken.
    pub(crate) fn insert_many(
        &self,
        cfg: &ShardConfig<K, V>,
        entries: impl Iterator<Item = (u64, K, V)>,
        now: Option<u64>,
        removed: &mut Removed<K, V>,
    ) {
        let weighed: Vec<_> = entries
            .map(|(hash, key, value)| {
                let weight = cfg.weigh(&key, &value);
                (hash, key, value, weight)
            })
            .collect();
        let mut guard = self.data.write();
        for entry in weighed {
            self.insert_locked(cfg, &mut guard, entry, now, None, removed);
        }
    }

    /// One write of a weighed `(hash, key, value, weight)`, the lock held.
    fn insert_locked(
        &self,
        cfg: &ShardConfig<K, V>,
        data: &mut ShardData<K, V>,
        (hash, key, value, weight): (u64, K, V, u64),
        now: Option<u64>,
        until: Option<u64>,
        removed: &mut Removed<K, V>,
    ) {
        // Sweep first: room freed by expired entries must not be taken from live ones by eviction.
        self.sweep(cfg, data, SWEEP_PER_WRITE, now, removed);
        let mut existing = data.find(hash, &key);
        if let Some(idx) = existing.filter(|&idx| data.is_expired(idx, now)) {
            // An expired entry is not updated in place: it leaves as expired, and the new value
            // starts afresh in the policy instead of inheriting the dead entry's standing.
            self.remove_resident(cfg, data, idx, RemovalCause::Expired, removed);
            existing = None;
        }
        if let Some(idx) = existing.filter(|&idx| weight > data.entry(idx).weight()) {
            // A heavier value takes the path of a new entry: room is made before it is placed,
            // so the eviction that makes room for it can never pick it (updated in place, the
            // entry's own growth could evict it under a FIFO-like order).
            self.remove_resident(cfg, data, idx, RemovalCause::Replaced, removed);
            existing = None;
        }
        if weight > self.capacity {
            // Too heavy to ever fit: the old value is outdated, so it goes too.
            if let Some(idx) = existing {
                self.remove_resident(cfg, data, idx, RemovalCause::Replaced, removed);
            }
            bump_locked(&self.counters.evictions);
            self.note(cfg, removed, key, value, RemovalCause::Size);
        } else if let Some(idx) = existing {
            let entry = data.slots[idx as usize].as_mut().expect("live slot");
            let old_weight = entry.weight();
            let old_value = std::mem::replace(&mut entry.value, value);
            entry.set_weight(weight);
            data.weight = data.weight - old_weight + weight;
            data.policy
                .on_update(idx, old_weight, weight, &entry.policy_bits);
            if let Some(now) = now {
                data.set_times(&cfg.expiry, idx, hash, now, until);
            }
            bump_locked(&self.counters.inserts);
            self.note(cfg, removed, key, old_value, RemovalCause::Replaced);
            self.evict_to_fit(cfg, data, 0, now, removed);
        } else {
            self.evict_to_fit(cfg, data, weight, now, removed);
            let idx = match data.free.pop() {
                Some(idx) => idx,
                None => {
                    data.grow_slots(self.capacity);
                    data.slots.push(None);
                    (data.slots.len() - 1) as u32
                }
            };
            data.make_room_in_table(self.capacity);
            data.slots[idx as usize] = Some(Entry::new(key, value, weight));
            if let Some(now) = now {
                data.set_times(&cfg.expiry, idx, hash, now, until);
            }
            let (slots, hasher) = (&data.slots, &data.hasher);
            data.table.insert_unique(hash, idx, |&i| {
                slots[i as usize]
                    .as_ref()
                    .map_or(0, |e| hasher.hash_one(&e.key))
            });
            data.weight += weight;
            let entry = data.slots[idx as usize].as_ref().expect("just stored");
            data.policy.on_insert(idx, hash, weight, &entry.policy_bits);
            bump_locked(&self.counters.inserts);
        }
        self.publish_size(data);
    }

    /// Evicts until `incoming` more weight fits.
    fn evict_to_fit(
        &self,
        cfg: &ShardConfig<K, V>,
        data: &mut ShardData<K, V>,
        incoming: u64,
        now: Option<u64>,
        removed: &mut Removed<K, V>,
    ) {
        while data.weight + incoming > self.capacity {
            let Some(idx) = data.policy.evict(&SlotView {
                slots: &data.slots,
                hasher: &data.hasher,
            }) else {
                break;
            };
            // A victim that had already expired is reported as such.
            let cause = if data.is_expired(idx, now) {
                RemovalCause::Expired
            } else {
                RemovalCause::Size
            };
            bump_locked(if cause == RemovalCause::Expired {
                &self.counters.expirations
            } else {
                &self.counters.evictions
            });
            let Entry { key, value, .. } = data.take_slot(idx);
            self.note(cfg, removed, key, value, cause);
        }
    }

    /// Removes a resident entry for a reason other than eviction, counting it.
    fn remove_resident(
        &self,
        cfg: &ShardConfig<K, V>,
        data: &mut ShardData<K, V>,
        idx: u32,
        cause: RemovalCause,
        removed: &mut Removed<K, V>,
    ) {
        let entry = data.slots[idx as usize].as_ref().expect("live slot");
        data.policy
            .on_remove(idx, entry.weight(), &entry.policy_bits);
        let Entry { key, value, .. } = data.take_slot(idx);
        match cause {
            RemovalCause::Expired => bump_locked(&self.counters.expirations),
            RemovalCause::Invalidated => bump_locked(&self.counters.invalidations),
            RemovalCause::Size => bump_locked(&self.counters.evictions),
            RemovalCause::Replaced => {}
        }
        self.note(cfg, removed, key, value, cause);
    }

    fn note(
        &self,
        cfg: &ShardConfig<K, V>,
        removed: &mut Removed<K, V>,
        key: K,
        value: V,
        cause: RemovalCause,
    ) {
        crate::cache::trace::removed(&cfg.name, cause);
        if cfg.collect_removed {
            removed.push((key, value, cause));
        }
    }

    /// Examines up to `budget` slots after the sweep cursor and removes the expired ones.
    fn sweep(
        &self,
        cfg: &ShardConfig<K, V>,
        data: &mut ShardData<K, V>,
        budget: usize,
        now: Option<u64>,
        removed: &mut Removed<K, V>,
    ) {
        if now.is_none() || data.slots.is_empty() {
            return;
        }
        for _ in 0..budget.min(data.slots.len()) {
            let idx = data.sweep_cursor % data.slots.len();
            data.sweep_cursor = idx + 1;
            if data.slots[idx].is_some() && data.is_reclaimable(idx as u32, now, &cfg.expiry) {
                self.remove_resident(cfg, data, idx as u32, RemovalCause::Expired, removed);
            }
        }
    }

    fn publish_size(&self, data: &ShardData<K, V>) {
        self.len.store(data.table.len() as u64, Relaxed);
        self.weight.store(data.weight, Relaxed);
    }

    /// Removes `key` if present and still reclaimable (another writer may have refreshed it;
    /// an entry within its stale-if-error window stays). Never blocks: if the lock is busy, a
    /// later sweep reclaims the entry.
    pub(crate) fn reclaim_expired<Q>(
        &self,
        cfg: &ShardConfig<K, V>,
        hash: u64,
        key: &Q,
        now: Option<u64>,
        removed: &mut Removed<K, V>,
    ) where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        if let Some(mut guard) = self.data.try_write() {
            let data = &mut *guard;
            if let Some(idx) = data
                .find(hash, key)
                .filter(|&idx| data.is_reclaimable(idx, now, &cfg.expiry))
            {
                self.remove_resident(cfg, data, idx, RemovalCause::Expired, removed);
                self.publish_size(data);
            }
        }
    }

    /// Removes `key`; returns whether a live entry was there.
    pub(crate) fn invalidate<Q>(
        &self,
        cfg: &ShardConfig<K, V>,
        hash: u64,
        key: &Q,
        now: Option<u64>,
        superseded: Option<&AtomicBool>,
        removed: &mut Removed<K, V>,
    ) -> bool
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let mut guard = self.data.write();
        // Read under the lock, as `insert` does: a write that set it has not yet run, or ran
        // before this, and what it wrote must stay.
        if superseded.is_some_and(|flag| flag.load(Ordering::Acquire)) {
            return false;
        }
        let data = &mut *guard;
        let Some(idx) = data.find(hash, key) else {
            return false;
        };
        let live = !data.is_expired(idx, now);
        let cause = if live {
            RemovalCause::Invalidated
        } else {
            RemovalCause::Expired
        };
        self.remove_resident(cfg, data, idx, cause, removed);
        self.publish_size(data);
        live
    }

    /// Removes every entry for which `pred` holds (expired entries go as expired), and the
    /// reclaimable ones; returns how many live entries were invalidated.
    pub(crate) fn retain(
        &self,
        cfg: &ShardConfig<K, V>,
        mut pred: impl FnMut(&K, &V) -> bool,
        now: Option<u64>,
        removed: &mut Removed<K, V>,
    ) -> u64 {
        let mut guard = self.data.write();
        let data = &mut *guard;
        let mut invalidated = 0;
        for idx in 0..data.slots.len() as u32 {
            let Some(entry) = &data.slots[idx as usize] else {
                continue;
            };
            let cause = if data.is_reclaimable(idx, now, &cfg.expiry) {
                RemovalCause::Expired
            } else if !pred(&entry.key, &entry.value) {
                continue;
            } else if data.is_expired(idx, now) {
                // Kept for stale-if-error, and invalidated: it goes, but was not live.
                RemovalCause::Expired
            } else {
                invalidated += 1;
                RemovalCause::Invalidated
            };
            self.remove_resident(cfg, data, idx, cause, removed);
        }
        self.publish_size(data);
        invalidated
    }

    /// Removes every entry at once: live ones count as invalidated, expired ones as expired.
    pub(crate) fn clear(
        &self,
        cfg: &ShardConfig<K, V>,
        now: Option<u64>,
        removed: &mut Removed<K, V>,
    ) {
        let mut guard = self.data.write();
        let data = &mut *guard;
        let slots = std::mem::take(&mut data.slots);
        for (idx, entry) in slots.into_iter().enumerate() {
            let Some(Entry { key, value, .. }) = entry else {
                continue;
            };
            let cause = if data.is_expired(idx as u32, now) {
                RemovalCause::Expired
            } else {
                RemovalCause::Invalidated
            };
            bump_locked(if cause == RemovalCause::Expired {
                &self.counters.expirations
            } else {
                &self.counters.invalidations
            });
            self.note(cfg, removed, key, value, cause);
        }
        data.table.clear();
        data.free.clear();
        data.deadlines.clear();
        data.refresh_at.clear();
        data.policy.clear();
        data.weight = 0;
        data.sweep_cursor = 0;
        self.publish_size(data);
    }

    /// Removes every reclaimable entry (expired, and past its stale-if-error window).
    pub(crate) fn purge_expired(
        &self,
        cfg: &ShardConfig<K, V>,
        now: Option<u64>,
        removed: &mut Removed<K, V>,
    ) {
        let mut guard = self.data.write();
        let data = &mut *guard;
        let slots = data.slots.len();
        self.sweep(cfg, data, slots, now, removed);
        self.publish_size(data);
    }
}

/// The outcome of one lookup.
pub(crate) enum Lookup<V> {
    Hit(V),
    /// A hit on an entry due for a refresh (see `CacheBuilder::refresh_after`).
    Stale(V),
    Miss,
    /// Found, but expired: a miss whose entry can be reclaimed.
    Expired,
}

impl<V> Lookup<V> {
    #[inline]
    fn hit(value: V, stale: bool) -> Self {
        if stale {
            Lookup::Stale(value)
        } else {
            Lookup::Hit(value)
        }
    }

    /// The value found, stale or not.
    pub(crate) fn value(self) -> Option<V> {
        match self {
            Lookup::Hit(value) | Lookup::Stale(value) => Some(value),
            Lookup::Miss | Lookup::Expired => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_slot_costs_no_more_than_key_value_and_eight_bytes() {
        // The weight's niche holds `Option`'s tag and the policy bits sit in padding.
        assert_eq!(std::mem::size_of::<Option<Entry<u64, u64>>>(), 24);
        assert_eq!(stored_weight(0).get(), 1);
        assert_eq!(stored_weight(u64::MAX).get(), u32::MAX);
    }

    #[test]
    fn table_buckets_is_how_hashbrown_sizes_a_table() {
        for entries in (1..300).chain([1_600, 100_000, 114_688, 114_689, 1 << 20]) {
            let table = HashTable::<u32>::with_capacity(entries as usize);
            assert_eq!(
                table_buckets(entries),
                table.num_buckets() as u64,
                "{entries}"
            );
            assert!(buckets_capacity(table_buckets(entries)) >= entries);
            assert_eq!(
                buckets_capacity(table.num_buckets() as u64),
                table.capacity() as u64
            );
        }
    }

    #[test]
    fn a_full_shard_under_churn_keeps_its_table_and_slab_at_its_capacity() {
        // 1,600 entries in 2,048 buckets (load 0.78): evictions leave tombstones, and without
        // the rebuild hashbrown doubles the table once they use up its free buckets (it does
        // within these 32,000 insertions).
        let cache: crate::Cache<u64, u64> = crate::Cache::builder()
            .max_capacity(1_600)
            .shards(1)
            .seed(7)
            .build();
        for key in 0..32_000 {
            cache.insert(key, key);
        }
        {
            let data = cache.inner.shards[0].data.read();
            assert_eq!(data.table.len(), 1_600);
            assert_eq!(data.table.num_buckets(), 2_048);
            assert_eq!(data.slots.capacity(), 1_600);
            let PolicyState::WTinyLfu(policy) = &data.policy else {
                panic!("the default policy is W-TinyLFU")
            };
            assert_eq!(policy.links().allocated(), 1_600);
        }
        // The rebuilt table still finds every entry.
        let found = (0..32_000)
            .filter(|key| cache.get(key) == Some(*key))
            .count();
        assert_eq!(found, 1_600);
    }

    #[test]
    fn a_large_bound_with_few_entries_allocates_for_the_entries() {
        let cache: crate::Cache<u64, u64> =
            crate::Cache::builder().max_capacity(10_000_000).build();
        for key in 0..1_000 {
            cache.insert(key, key);
        }
        for shard in cache.inner.shards.iter() {
            let data = shard.data.read();
            assert!(data.slots.capacity() <= 2 * data.slots.len().max(4));
            assert!(
                data.table.num_buckets() <= 2 * table_buckets(data.table.len() as u64) as usize
            );
        }
    }

    #[test]
    fn refresh_times_are_kept_only_by_caches_that_refresh() {
        let times = |refresh: Option<u64>| {
            let cfg = ShardConfig::<u64, u64> {
                expiry: ExpiryPolicy {
                    ttl: Some(1_000),
                    refresh,
                    ..ExpiryPolicy::default()
                },
                weigher: None,
                collect_removed: false,
                name: Default::default(),
            };
            let shard = Shard::new(
                Policy::S3Fifo,
                u64::MAX,
                ahash::RandomState::new(),
                &WindowTuner::inert(),
            );
            for key in 0..100u64 {
                let hash = shard.data.read().hasher.hash_one(key);
                shard.insert(&cfg, hash, key, key, Some(0), None, None, &mut Vec::new());
            }
            let data = shard.data.read();
            (data.deadlines.len(), data.refresh_at.len())
        };
        assert_eq!(times(None), (100, 0));
        assert_eq!(times(Some(800)), (100, 100));
    }

    #[test]
    fn w_tinylfu_shards_take_one_window_share_from_the_tuner() {
        let cache: crate::Cache<u32, u32> = crate::Cache::builder()
            .max_capacity(400)
            .shards(4)
            .policy(Policy::WTinyLfu)
            .build();
        let windows = || -> Vec<u64> {
            cache
                .inner
                .shards
                .iter()
                .map(|shard| match &shard.data.read().policy {
                    PolicyState::WTinyLfu(policy) => policy.window_target(),
                    _ => unreachable!("built with W-TinyLFU"),
                })
                .collect()
        };
        assert_eq!(windows(), [1, 1, 1, 1], "1% of each shard's 100");
        // Every key read twice, its second read 1 to 160 new keys after the first: the larger
        // the windows (more recency), the more second reads hit, so the tuner, simulating the
        // first shard on its sampled lookups, grows every shard's window alike.
        for i in 0..150_000u32 {
            for key in [i, i.saturating_sub(1 + i * 7919 % 160)] {
                if cache.get(&key).is_none() {
                    cache.insert(key, key);
                }
            }
        }
        let grown = windows();
        assert!(
            grown.iter().all(|&w| w > 5 && w == grown[0]),
            "{grown:?} {}",
            cache.stats()
        );
    }
}
