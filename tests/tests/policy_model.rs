//! Model-based tests of the six eviction policies.
//!
//! Each policy is restated as a small, obviously correct reference model over `VecDeque`s and
//! `Vec`s (O(n) per operation is fine at these sizes). Random sequences of lookups, inserts and
//! invalidations run against a single-shard [`Cache`] and the model side by side; after every
//! operation both must agree on the outcome, on which keys are resident and on the length, and at
//! the end on the counters. Hand-written sequences then show each policy's characteristic
//! behaviour, including LFU aging.

use std::collections::{HashMap, HashSet, VecDeque};

use memokit::__private::FrequencySketch;
use memokit::{Cache, Policy};
use proptest::prelude::*;

/// One operation of a generated sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `get`: a lookup, which counts as a use on a hit.
    Get(u32),
    /// `insert`: a new key, or a replacement (which counts as a use).
    Insert(u32),
    /// `invalidate`.
    Invalidate(u32),
    /// `clear`: the policy must start over as if freshly built.
    Clear,
}

/// A reference model of one policy for a cache of unit-weight entries.
trait Model {
    /// A lookup; whether it hit. A hit is a use.
    fn get(&mut self, key: u32) -> bool;
    /// Stores `key` (new or replaced); returns the evicted key, if any.
    fn insert(&mut self, key: u32) -> Option<u32>;
    /// Removes `key`; whether it was resident.
    fn invalidate(&mut self, key: u32) -> bool;
    /// Back to the state of a new model of the same capacity.
    fn clear(&mut self);
    fn contains(&self, key: u32) -> bool;
    fn len(&self) -> usize;
}

fn position(queue: &VecDeque<u32>, key: u32) -> Option<usize> {
    queue.iter().position(|&k| k == key)
}

/// LRU and FIFO: one order of resident keys, newest at the front, the victim at the back. Under
/// LRU a use (hit or replace) moves the key to the front; under FIFO only a new key arrives there.
struct OrderModel {
    capacity: usize,
    order: VecDeque<u32>,
    reorder_on_use: bool,
}

impl OrderModel {
    fn lru(capacity: usize) -> Self {
        OrderModel {
            capacity,
            order: VecDeque::new(),
            reorder_on_use: true,
        }
    }

    fn fifo(capacity: usize) -> Self {
        OrderModel {
            reorder_on_use: false,
            ..OrderModel::lru(capacity)
        }
    }

    /// Whether `key` is resident; a use of it under LRU.
    fn touch(&mut self, key: u32) -> bool {
        let Some(pos) = position(&self.order, key) else {
            return false;
        };
        if self.reorder_on_use {
            self.order.remove(pos);
            self.order.push_front(key);
        }
        true
    }
}

impl Model for OrderModel {
    fn get(&mut self, key: u32) -> bool {
        self.touch(key)
    }

    fn insert(&mut self, key: u32) -> Option<u32> {
        if self.touch(key) {
            return None;
        }
        // Room is made before the new key arrives, so it is never its own victim.
        let victim = if self.order.len() >= self.capacity {
            self.order.pop_back()
        } else {
            None
        };
        self.order.push_front(key);
        victim
    }

    fn invalidate(&mut self, key: u32) -> bool {
        position(&self.order, key)
            .map(|pos| self.order.remove(pos))
            .is_some()
    }

    fn clear(&mut self) {
        self.order.clear();
    }

    fn contains(&self, key: u32) -> bool {
        self.order.contains(&key)
    }

    fn len(&self) -> usize {
        self.order.len()
    }
}

/// LFU's aging period: accesses per resident entry (at least [`LFU_MIN_AGING_ENTRIES`]).
const LFU_AGING_PERIOD: usize = 10;
const LFU_MIN_AGING_ENTRIES: usize = 16;

#[derive(Debug, Clone, Copy)]
struct LfuEntry {
    key: u32,
    freq: u32,
    /// When the entry entered its current frequency: ties go to the smallest.
    since: u64,
}

/// LFU with aging: the victim has the lowest `(freq, since)`.
struct LfuModel {
    capacity: usize,
    entries: Vec<LfuEntry>,
    clock: u64,
    accesses_since_aging: usize,
    agings: u64,
}

impl LfuModel {
    fn new(capacity: usize) -> Self {
        LfuModel {
            capacity,
            entries: Vec::new(),
            clock: 0,
            accesses_since_aging: 0,
            agings: 0,
        }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Counts an access, after it took effect; ages once enough have been seen.
    fn access(&mut self) {
        self.accesses_since_aging += 1;
        let period = LFU_AGING_PERIOD * self.entries.len().max(LFU_MIN_AGING_ENTRIES);
        if self.accesses_since_aging >= period {
            self.age();
        }
    }

    /// Halves every frequency (at least 1). Entries re-enter their new frequency in the old
    /// eviction order, so among equal new frequencies the old order (lower old frequency first,
    /// then earlier entry) is kept.
    fn age(&mut self) {
        self.entries.sort_by_key(|e| (e.freq, e.since));
        for i in 0..self.entries.len() {
            let since = self.tick();
            let e = &mut self.entries[i];
            e.freq = (e.freq / 2).max(1);
            e.since = since;
        }
        self.accesses_since_aging = 0;
        self.agings += 1;
    }

    fn bump(&mut self, key: u32) -> bool {
        let Some(i) = self.entries.iter().position(|e| e.key == key) else {
            return false;
        };
        let since = self.tick();
        let e = &mut self.entries[i];
        e.freq += 1;
        e.since = since;
        self.access();
        true
    }
}

impl Model for LfuModel {
    fn get(&mut self, key: u32) -> bool {
        self.bump(key)
    }

    fn insert(&mut self, key: u32) -> Option<u32> {
        if self.bump(key) {
            return None;
        }
        let mut victim = None;
        if self.entries.len() >= self.capacity {
            let i = (0..self.entries.len())
                .min_by_key(|&i| (self.entries[i].freq, self.entries[i].since))
                .expect("a full cache has entries");
            // An eviction is not an access.
            victim = Some(self.entries.remove(i).key);
        }
        let since = self.tick();
        self.entries.push(LfuEntry {
            key,
            freq: 1,
            since,
        });
        self.access();
        victim
    }

    fn invalidate(&mut self, key: u32) -> bool {
        let Some(i) = self.entries.iter().position(|e| e.key == key) else {
            return false;
        };
        // Not an access either; only the resident count drops.
        self.entries.remove(i);
        true
    }

    fn clear(&mut self) {
        *self = LfuModel::new(self.capacity);
    }

    fn contains(&self, key: u32) -> bool {
        self.entries.iter().any(|e| e.key == key)
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// S3-FIFO's use counters saturate here.
const S3_MAX_FREQ: u8 = 3;
/// How much a reused key at the main queue's tail shrinks the small target; an unused key
/// evicted from main grows it by one.
const S3_SHRINK_STEP: usize = 32;

/// S3-FIFO, with or without its frequency filter (`Policy::S3FifoTinyLfu`): small and main queues run from newest (front) to oldest
/// (back); the ghost holds recently evicted keys from oldest (front) to newest (back). A key
/// readmitted from the ghost is forgotten there but its place stays taken (`None`) until it ages
/// out, as in the ring, which holds half the capacity. The small queue's target starts at 1% of
/// the capacity and adapts between 1% and 90% (at least 1).
///
/// Until the first eviction, new keys go to main while it holds fewer than `capacity -
/// small_target` (fillers); a filler evicted from main unused does not grow the small target,
/// and stops being one once a second chance finds it used.
///
/// Without the filter, a returning key goes straight to main. With it, it does so only while main
/// has room (the small queue stays over its target); otherwise it waits in the small queue and,
/// if unused there, takes main's victim's place only if the sketch counts it strictly more often.
/// The frequency sketch is memokit's own, used as a black box and fed the same key hashes as the
/// cache's (`Cache::__hash`), at the same moments: each new key, each use folded in from a use
/// counter when a promotion or a second chance spends it. It only counts once the cache first
/// evicts (it is allocated then).
struct S3FifoModel {
    capacity: usize,
    small_target: usize,
    min_target: usize,
    max_target: usize,
    small: VecDeque<u32>,
    main: VecDeque<u32>,
    /// Use counter of each resident key.
    freq: HashMap<u32, u8>,
    /// Small-queue keys that came back from the ghost: candidates for main when they leave.
    returning: HashSet<u32>,
    /// Whether the cache has not evicted yet.
    filling: bool,
    /// Main keys that filled it before the first eviction and were not found used since.
    fillers: HashSet<u32>,
    ghost: VecDeque<Option<u32>>,
    ghost_capacity: usize,
    admission: bool,
    sketch: FrequencySketch,
    hash: Box<dyn Fn(u32) -> u64>,
}

impl S3FifoModel {
    fn new(capacity: usize, admission: bool, hash: impl Fn(u32) -> u64 + 'static) -> Self {
        let small_target = (capacity / 100).max(1);
        S3FifoModel {
            capacity,
            small_target,
            min_target: small_target,
            max_target: (capacity * 9 / 10).max(1),
            small: VecDeque::new(),
            main: VecDeque::new(),
            freq: HashMap::new(),
            returning: HashSet::new(),
            filling: true,
            fillers: HashSet::new(),
            ghost: VecDeque::new(),
            ghost_capacity: (capacity / 2).clamp(1, 1 << 24),
            admission,
            sketch: FrequencySketch::lazy(capacity as u64),
            hash: Box::new(hash),
        }
    }

    /// A model of `cache`'s policy, fed its key hashes.
    fn of(cache: &Cache<u32, u64>, capacity: usize) -> Self {
        let admission = match cache.policy() {
            Policy::S3Fifo => false,
            Policy::S3FifoTinyLfu => true,
            other => panic!("not an S3-FIFO policy: {other:?}"),
        };
        let cache = cache.clone();
        S3FifoModel::new(capacity, admission, move |key| cache.__hash(&key))
    }

    fn bump(&mut self, key: u32) -> bool {
        let Some(f) = self.freq.get_mut(&key) else {
            return false;
        };
        *f = (*f + 1).min(S3_MAX_FREQ);
        true
    }

    fn count(&mut self, key: u32, times: u8) {
        let hash = (self.hash)(key);
        for _ in 0..times {
            self.sketch.increment(hash);
        }
    }

    fn estimate(&self, key: u32) -> u8 {
        self.sketch.frequency((self.hash)(key))
    }

    /// Remembers an evicted key; one already remembered keeps its place.
    fn remember(&mut self, key: u32) {
        if self.ghost.contains(&Some(key)) {
            return;
        }
        if self.ghost.len() >= self.ghost_capacity {
            self.ghost.pop_front();
        }
        self.ghost.push_back(Some(key));
    }

    /// Whether `key` was remembered; it is forgotten either way.
    fn forget(&mut self, key: u32) -> bool {
        match self.ghost.iter_mut().find(|slot| **slot == Some(key)) {
            Some(slot) => {
                *slot = None;
                true
            }
            None => false,
        }
    }

    /// Whether one more key in main still leaves the small queue over its target.
    fn main_has_room(&self) -> bool {
        self.main.len() + 1 + self.small_target < self.capacity
    }

    /// Second chances at main's back until its oldest key is unused; that key.
    fn main_victim(&mut self) -> Option<u32> {
        loop {
            let key = *self.main.back()?;
            let f = self.freq[&key];
            if f == 0 {
                return Some(key);
            }
            self.main.pop_back();
            self.second_chance(key, f);
        }
    }

    /// One use spent, back to the front; main keeps its space.
    fn second_chance(&mut self, key: u32, f: u8) {
        self.small_target = self
            .small_target
            .saturating_sub(S3_SHRINK_STEP)
            .max(self.min_target);
        self.fillers.remove(&key);
        self.freq.insert(key, f - 1);
        self.count(key, 1);
        self.main.push_front(key);
    }

    /// Into main, with its counter reset.
    fn promote(&mut self, key: u32) {
        self.returning.remove(&key);
        self.freq.insert(key, 0);
        self.main.push_front(key);
    }

    fn evict(&mut self) -> Option<u32> {
        self.filling = false;
        self.sketch.ensure_allocated();
        loop {
            if self.small.len() > self.small_target || self.main.is_empty() {
                if let Some(key) = self.small.pop_back() {
                    let f = self.freq[&key];
                    if f >= 1 {
                        // Used while on probation.
                        self.count(key, f);
                        self.promote(key);
                        continue;
                    }
                    if self.returning.contains(&key) {
                        if self.main_has_room() {
                            self.promote(key);
                            continue;
                        }
                        if let Some(victim) = self.main_victim() {
                            // Admitted only if seen more often than main's victim.
                            if self.estimate(key) > self.estimate(victim) {
                                let pos = position(&self.main, victim).expect("in main");
                                self.main.remove(pos);
                                self.freq.remove(&victim);
                                self.fillers.remove(&victim);
                                self.promote(key);
                                return Some(victim);
                            }
                        }
                    }
                    self.returning.remove(&key);
                    self.remember(key);
                    self.freq.remove(&key);
                    return Some(key);
                }
            }
            let key = self.main.pop_back()?;
            let f = self.freq[&key];
            if f > 0 {
                self.second_chance(key, f);
                continue;
            }
            // Evicted from main unused: the small queue gets more room, unless the key only
            // filled main.
            if !self.fillers.remove(&key) {
                self.small_target = (self.small_target + 1).min(self.max_target);
            }
            self.freq.remove(&key);
            return Some(key);
        }
    }
}

impl Model for S3FifoModel {
    fn get(&mut self, key: u32) -> bool {
        self.bump(key)
    }

    fn insert(&mut self, key: u32) -> Option<u32> {
        if self.bump(key) {
            return None;
        }
        let victim = if self.len() >= self.capacity {
            self.evict()
        } else {
            None
        };
        self.count(key, 1);
        self.freq.insert(key, 0);
        // A key evicted recently (still remembered) skips probation, once, if main has room;
        // otherwise it competes for main when it leaves the small queue. Before the first
        // eviction, main takes new keys up to its share.
        let returning = self.forget(key);
        let filler = self.filling && self.main.len() + 1 + self.small_target <= self.capacity;
        if filler || (returning && (!self.admission || self.main_has_room())) {
            if filler {
                self.fillers.insert(key);
            }
            self.main.push_front(key);
        } else {
            if returning {
                self.returning.insert(key);
            }
            self.small.push_front(key);
        }
        victim
    }

    fn invalidate(&mut self, key: u32) -> bool {
        if self.freq.remove(&key).is_none() {
            return false;
        }
        self.returning.remove(&key);
        self.fillers.remove(&key);
        for queue in [&mut self.small, &mut self.main] {
            if let Some(pos) = position(queue, key) {
                queue.remove(pos);
            }
        }
        true
    }

    fn clear(&mut self) {
        let hash = std::mem::replace(&mut self.hash, Box::new(|_| 0));
        *self = S3FifoModel::new(self.capacity, self.admission, hash);
    }

    fn contains(&self, key: u32) -> bool {
        self.freq.contains_key(&key)
    }

    fn len(&self) -> usize {
        self.freq.len()
    }
}

/// W-TinyLFU's use counters saturate here (two bits).
const W_MAX_USES: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WQueue {
    Window,
    Probation,
    Protected,
}

/// W-TinyLFU (`Policy::WTinyLfu`): window, probation and protected queues from newest (front)
/// to oldest (back), each a CLOCK over the keys' use counters. The window's target is 1% of the
/// capacity (at least 1): the tuner that moves it needs at least 1,000 sampled lookups per
/// period, more than these sequences hold, so it never moves here, nor turns admission's ghost
/// on. Protected holds at most 90% of the rest.
///
/// The sketch is memokit's own, used as a black box with the cache's key hashes, fed at the same
/// moments: each new key on insert (allocated once the cache is half full, or at the first
/// eviction), and the uses a key's counter collected when a hand passes it (at most 15).
struct WTinyLfuModel {
    capacity: usize,
    window_target: usize,
    window: VecDeque<u32>,
    probation: VecDeque<u32>,
    protected: VecDeque<u32>,
    uses: HashMap<u32, u8>,
    queue: HashMap<u32, WQueue>,
    sketch: FrequencySketch,
    hash: Box<dyn Fn(u32) -> u64>,
}

impl WTinyLfuModel {
    fn new(capacity: usize, hash: impl Fn(u32) -> u64 + 'static) -> Self {
        WTinyLfuModel {
            capacity,
            window_target: (capacity / 100).max(1),
            window: VecDeque::new(),
            probation: VecDeque::new(),
            protected: VecDeque::new(),
            uses: HashMap::new(),
            queue: HashMap::new(),
            // Sized as for at least 512 entries, as the policy's (`SKETCH_MIN_ENTRIES`).
            sketch: FrequencySketch::lazy_sized((capacity as u64).max(512), 8, 4),
            hash: Box::new(hash),
        }
    }

    fn of(cache: &Cache<u32, u64>, capacity: usize) -> Self {
        assert_eq!(cache.policy(), Policy::WTinyLfu);
        let cache = cache.clone();
        WTinyLfuModel::new(capacity, move |key| cache.__hash(&key))
    }

    fn main_len(&self) -> usize {
        self.probation.len() + self.protected.len()
    }

    fn estimate(&self, key: u32) -> u8 {
        self.sketch.frequency((self.hash)(key))
    }

    /// A hand passes `key`: its uses go to the sketch and its counter restarts.
    fn collect(&mut self, key: u32) {
        let uses = std::mem::take(self.uses.get_mut(&key).expect("resident"));
        let hash = (self.hash)(key);
        for _ in 0..uses {
            self.sketch.increment(hash);
        }
    }

    fn queue_of(&mut self, which: WQueue) -> &mut VecDeque<u32> {
        match which {
            WQueue::Window => &mut self.window,
            WQueue::Probation => &mut self.probation,
            WQueue::Protected => &mut self.protected,
        }
    }

    fn unlink(&mut self, key: u32) {
        let which = self.queue[&key];
        let queue = self.queue_of(which);
        let pos = position(queue, key).expect("in its queue");
        queue.remove(pos);
    }

    fn push(&mut self, key: u32, which: WQueue) {
        self.queue.insert(key, which);
        self.queue_of(which).push_front(key);
    }

    fn balance_protected(&mut self) {
        let target = (self.capacity - self.window_target) * 900 / 1000;
        let mut budget = 2 * self.protected.len() + 1;
        while self.protected.len() > target && budget > 0 {
            budget -= 1;
            let key = self.protected.pop_back().expect("over target");
            if self.uses[&key] > 0 {
                self.collect(key);
                self.protected.push_front(key);
            } else {
                self.push(key, WQueue::Probation);
            }
        }
    }

    fn main_victim(&mut self) -> Option<u32> {
        loop {
            self.balance_protected();
            if let Some(&key) = self.probation.back() {
                if self.uses[&key] == 0 {
                    return Some(key);
                }
                self.collect(key);
                self.probation.pop_back();
                self.push(key, WQueue::Protected);
                continue;
            }
            let key = *self.protected.back()?;
            if self.uses[&key] == 0 {
                return Some(key);
            }
            self.collect(key);
            self.protected.pop_back();
            self.protected.push_front(key);
        }
    }

    fn evict(&mut self) -> Option<u32> {
        self.sketch.ensure_allocated();
        loop {
            if self.window.len() >= self.window_target || self.main_len() == 0 {
                if let Some(&key) = self.window.back() {
                    self.window.pop_back();
                    if self.uses[&key] > 0 {
                        self.collect(key);
                        self.window.push_front(key);
                        continue;
                    }
                    if self.main_len() + 1 + self.window_target <= self.capacity {
                        self.push(key, WQueue::Probation);
                        continue;
                    }
                    let Some(victim) = self.main_victim() else {
                        return Some(key);
                    };
                    if self.estimate(key) > self.estimate(victim) + 1 {
                        self.unlink(victim);
                        self.push(key, WQueue::Probation);
                        return Some(victim);
                    }
                    return Some(key);
                }
            }
            let victim = self.main_victim()?;
            self.unlink(victim);
            return Some(victim);
        }
    }

    fn bump(&mut self, key: u32) -> bool {
        let Some(uses) = self.uses.get_mut(&key) else {
            return false;
        };
        *uses = (*uses + 1).min(W_MAX_USES);
        true
    }
}

impl Model for WTinyLfuModel {
    fn get(&mut self, key: u32) -> bool {
        self.bump(key)
    }

    fn insert(&mut self, key: u32) -> Option<u32> {
        if self.bump(key) {
            return None;
        }
        let victim = if self.len() >= self.capacity {
            let victim = self.evict().expect("a full cache has a victim");
            self.uses.remove(&victim);
            self.queue.remove(&victim);
            Some(victim)
        } else {
            None
        };
        if self.len() >= self.capacity / 2 {
            self.sketch.ensure_allocated();
        }
        self.sketch.increment((self.hash)(key));
        self.uses.insert(key, 0);
        self.push(key, WQueue::Window);
        victim
    }

    fn invalidate(&mut self, key: u32) -> bool {
        if !self.uses.contains_key(&key) {
            return false;
        }
        self.unlink(key);
        self.uses.remove(&key);
        self.queue.remove(&key);
        true
    }

    fn clear(&mut self) {
        let hash = std::mem::replace(&mut self.hash, Box::new(|_| 0));
        *self = WTinyLfuModel::new(self.capacity, hash);
    }

    fn contains(&self, key: u32) -> bool {
        self.uses.contains_key(&key)
    }

    fn len(&self) -> usize {
        self.uses.len()
    }
}

fn cache(policy: Policy, capacity: usize) -> Cache<u32, u64> {
    Cache::builder()
        .max_capacity(capacity as u64)
        .policy(policy)
        .shards(1)
        .build()
}

/// Runs `ops` against a single-shard cache and `model` side by side, comparing after each step.
fn check_against_model(
    policy: Policy,
    capacity: usize,
    key_space: u32,
    ops: &[Op],
    model: &mut impl Model,
) -> Result<(), TestCaseError> {
    check_cache_against_model(
        &cache(policy, capacity),
        policy,
        capacity,
        key_space,
        ops,
        model,
    )
}

/// [`check_against_model`] with a given cache (built by [`cache`]), for models that need its
/// key hashes.
fn check_cache_against_model(
    cache: &Cache<u32, u64>,
    policy: Policy,
    capacity: usize,
    key_space: u32,
    ops: &[Op],
    model: &mut impl Model,
) -> Result<(), TestCaseError> {
    let mut written: HashMap<u32, u64> = HashMap::new();
    let (mut hits, mut misses, mut evictions, mut invalidations) = (0u64, 0u64, 0u64, 0u64);
    for (step, &op) in ops.iter().enumerate() {
        match op {
            Op::Get(key) => {
                let got = cache.get(&key);
                let hit = model.get(key);
                prop_assert_eq!(
                    got.is_some(),
                    hit,
                    "{:?}: get({}) at step {}",
                    policy,
                    key,
                    step
                );
                if let Some(value) = got {
                    prop_assert_eq!(Some(&value), written.get(&key), "value of {}", key);
                    hits += 1;
                } else {
                    misses += 1;
                }
            }
            Op::Insert(key) => {
                cache.insert(key, step as u64);
                written.insert(key, step as u64);
                evictions += u64::from(model.insert(key).is_some());
            }
            Op::Invalidate(key) => {
                let was = model.invalidate(key);
                prop_assert_eq!(
                    cache.invalidate(&key),
                    was,
                    "{:?}: invalidate({}) at {}",
                    policy,
                    key,
                    step
                );
                invalidations += u64::from(was);
            }
            Op::Clear => {
                invalidations += model.len() as u64;
                cache.clear();
                model.clear();
            }
        }
        for key in 0..key_space {
            prop_assert_eq!(
                cache.contains_key(&key),
                model.contains(key),
                "{:?}: residency of {} after step {} ({:?})",
                policy,
                key,
                step,
                op
            );
        }
        prop_assert_eq!(
            cache.len(),
            model.len() as u64,
            "{:?}: len after step {}",
            policy,
            step
        );
        prop_assert!(model.len() <= capacity);
    }
    let stats = cache.stats();
    prop_assert_eq!(stats.hits, hits, "{:?}: hits", policy);
    prop_assert_eq!(stats.misses, misses, "{:?}: misses", policy);
    prop_assert_eq!(stats.evictions, evictions, "{:?}: evictions", policy);
    prop_assert_eq!(
        stats.invalidations,
        invalidations,
        "{:?}: invalidations",
        policy
    );
    Ok(())
}

/// Operations over keys `0..key_space`; `Clear` only when `with_clear`.
fn ops(key_space: u32, max_len: usize, with_clear: bool) -> BoxedStrategy<Vec<Op>> {
    let key = 0..key_space;
    let op = if with_clear {
        prop_oneof![
            10 => key.clone().prop_map(Op::Get),
            8 => key.clone().prop_map(Op::Insert),
            2 => key.prop_map(Op::Invalidate),
            1 => Just(Op::Clear),
        ]
        .boxed()
    } else {
        prop_oneof![
            10 => key.clone().prop_map(Op::Get),
            8 => key.clone().prop_map(Op::Insert),
            2 => key.prop_map(Op::Invalidate),
        ]
        .boxed()
    };
    proptest::collection::vec(op, 0..=max_len).boxed()
}

/// `(capacity, key_space, ops)`: small caches, small key spaces, up to `max_len` operations.
fn scenario(max_len: usize, with_clear: bool) -> impl Strategy<Value = (usize, u32, Vec<Op>)> {
    (1usize..=12, 1u32..=20).prop_flat_map(move |(capacity, key_space)| {
        (
            Just(capacity),
            Just(key_space),
            ops(key_space, max_len, with_clear),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn lru_matches_model((capacity, key_space, ops) in scenario(400, false)) {
        let mut model = OrderModel::lru(capacity);
        check_against_model(Policy::Lru, capacity, key_space, &ops, &mut model)?;
    }

    #[test]
    fn fifo_matches_model((capacity, key_space, ops) in scenario(400, false)) {
        let mut model = OrderModel::fifo(capacity);
        check_against_model(Policy::Fifo, capacity, key_space, &ops, &mut model)?;
    }

    #[test]
    fn lfu_matches_model((capacity, key_space, ops) in scenario(400, false)) {
        let mut model = LfuModel::new(capacity);
        check_against_model(Policy::Lfu, capacity, key_space, &ops, &mut model)?;
    }

    #[test]
    fn s3fifo_matches_model((capacity, key_space, ops) in scenario(400, false)) {
        let cache = cache(Policy::S3Fifo, capacity);
        let mut model = S3FifoModel::of(&cache, capacity);
        check_cache_against_model(&cache, Policy::S3Fifo, capacity, key_space, &ops, &mut model)?;
    }

    #[test]
    fn s3fifo_tinylfu_matches_model((capacity, key_space, ops) in scenario(400, false)) {
        let policy = Policy::S3FifoTinyLfu;
        let cache = cache(policy, capacity);
        let mut model = S3FifoModel::of(&cache, capacity);
        check_cache_against_model(&cache, policy, capacity, key_space, &ops, &mut model)?;
    }

    #[test]
    fn w_tinylfu_matches_model((capacity, key_space, ops) in scenario(400, false)) {
        let policy = Policy::WTinyLfu;
        let cache = cache(policy, capacity);
        let mut model = WTinyLfuModel::of(&cache, capacity);
        check_cache_against_model(&cache, policy, capacity, key_space, &ops, &mut model)?;
    }
}

proptest! {
    // Each case runs all six policies.
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// `clear` must leave every policy as a freshly built one (same ghost size, aging counter...).
    #[test]
    fn every_policy_matches_model_across_clears(
        (capacity, key_space, ops) in scenario(300, true),
    ) {
        check_against_model(Policy::Lru, capacity, key_space, &ops, &mut OrderModel::lru(capacity))?;
        check_against_model(Policy::Fifo, capacity, key_space, &ops, &mut OrderModel::fifo(capacity))?;
        check_against_model(Policy::Lfu, capacity, key_space, &ops, &mut LfuModel::new(capacity))?;
        let s3_cache = cache(Policy::S3Fifo, capacity);
        let mut s3 = S3FifoModel::of(&s3_cache, capacity);
        check_cache_against_model(&s3_cache, Policy::S3Fifo, capacity, key_space, &ops, &mut s3)?;
        let policy = Policy::S3FifoTinyLfu;
        let filtered_cache = cache(policy, capacity);
        let mut filtered = S3FifoModel::of(&filtered_cache, capacity);
        check_cache_against_model(&filtered_cache, policy, capacity, key_space, &ops, &mut filtered)?;
        let policy = Policy::WTinyLfu;
        let w_cache = cache(policy, capacity);
        let mut w = WTinyLfuModel::of(&w_cache, capacity);
        check_cache_against_model(&w_cache, policy, capacity, key_space, &ops, &mut w)?;
    }
}

/// The generated LFU sequences are long enough to age, and aging changes what gets evicted.
#[test]
fn lfu_model_ages_on_generated_sequences() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let strategy = scenario(400, false);
    let mut aged = 0;
    for _ in 0..64 {
        let (capacity, _, ops) = strategy.new_tree(&mut runner).unwrap().current();
        let mut model = LfuModel::new(capacity);
        for op in ops {
            match op {
                Op::Get(k) => {
                    model.get(k);
                }
                Op::Insert(k) => {
                    model.insert(k);
                }
                Op::Invalidate(k) => {
                    model.invalidate(k);
                }
                Op::Clear => model.clear(),
            }
        }
        aged += usize::from(model.agings > 0);
    }
    assert!(aged >= 16, "only {aged} of 64 generated sequences aged");
}

/// Reads through `cache`, inserting on a miss; whether it hit.
fn read_through(cache: &Cache<u32, u64>, key: u32) -> bool {
    if cache.get(&key).is_some() {
        return true;
    }
    cache.insert(key, u64::from(key));
    false
}

fn resident(cache: &Cache<u32, u64>, keys: impl IntoIterator<Item = u32>) -> Vec<u32> {
    keys.into_iter().filter(|k| cache.contains_key(k)).collect()
}

#[test]
fn lru_keeps_a_recently_read_key_that_fifo_evicts() {
    for (policy, survivors) in [(Policy::Lru, [1, 3, 4]), (Policy::Fifo, [2, 3, 4])] {
        let cache = cache(policy, 3);
        for key in 1..=3 {
            cache.insert(key, 0);
        }
        assert_eq!(cache.get(&1), Some(0));
        cache.insert(4, 0);
        assert_eq!(resident(&cache, 1..=4), survivors, "{policy:?}");
    }
}

#[test]
fn fifo_ignores_hits_and_replacements() {
    let cache = cache(Policy::Fifo, 3);
    for key in 1..=3 {
        cache.insert(key, 0);
    }
    for _ in 0..10 {
        assert!(cache.get(&1).is_some());
    }
    cache.insert(1, 1); // a replacement keeps its place too
    cache.insert(4, 0);
    assert_eq!(resident(&cache, 1..=4), [2, 3, 4]);
    cache.insert(5, 0);
    assert_eq!(resident(&cache, 1..=5), [3, 4, 5]);
}

#[test]
fn lfu_evicts_the_least_frequent_and_breaks_ties_by_age() {
    // LRU would evict key 1, read long ago; LFU keeps it for its six uses.
    let cache = cache(Policy::Lfu, 3);
    cache.insert(1, 0);
    for _ in 0..5 {
        cache.get(&1);
    }
    cache.insert(2, 0);
    cache.insert(3, 0);
    cache.get(&2); // 2 reaches frequency 2 first...
    cache.get(&3); // ...then 3: 2 is the older of the two.
    cache.insert(4, 0);
    assert_eq!(resident(&cache, 1..=4), [1, 3, 4]);
    // 4 has frequency 1, the lowest: it goes next, even though it is the newest.
    cache.insert(5, 0);
    assert_eq!(resident(&cache, 1..=5), [1, 3, 5]);
}

#[test]
fn lfu_aging_evicts_a_key_that_was_hot_long_ago() {
    let cache = cache(Policy::Lfu, 4);
    cache.insert(0, 0);
    for _ in 0..100 {
        cache.get(&0);
    }
    // Key 0 is never touched again; 1 and 2 stay warm while one-time keys stream through.
    cache.insert(1, 0);
    cache.insert(2, 0);
    let mut evicted_at = None;
    for round in 0..2000u32 {
        cache.insert(1000 + round, 0);
        cache.get(&1);
        cache.get(&2);
        if round < 20 {
            // Before any aging, the one-time keys are the victims.
            assert!(cache.contains_key(&0), "hot key evicted at round {round}");
        }
        if !cache.contains_key(&0) {
            evicted_at = Some(round);
            break;
        }
    }
    // Without aging its frequency (101) would keep it resident forever.
    let round = evicted_at.expect("a key hot long ago is eventually evicted");
    assert!(round >= 20, "{round}");
    assert!(cache.contains_key(&1) && cache.contains_key(&2));
}

#[test]
fn s3fifo_keeps_a_hot_set_through_a_scan_that_flushes_lru() {
    const HOT: std::ops::Range<u32> = 0..5;
    for (policy, expect_hot_hits) in [(Policy::S3Fifo, true), (Policy::Lru, false)] {
        let cache = cache(policy, 20);
        for _ in 0..3 {
            for key in HOT {
                read_through(&cache, key);
            }
        }
        // A scan of one-time keys, the hot set read again every 50 of them.
        let mut hot_hits = 0;
        let mut hot_reads = 0;
        for i in 0..1000u32 {
            read_through(&cache, 1000 + i);
            if i % 50 == 49 {
                for key in HOT {
                    hot_hits += u32::from(read_through(&cache, key));
                    hot_reads += 1;
                }
            }
        }
        if expect_hot_hits {
            assert_eq!(hot_hits, hot_reads, "{policy:?}");
            assert_eq!(resident(&cache, HOT), Vec::from_iter(HOT), "{policy:?}");
        } else {
            assert_eq!(hot_hits, 0, "{policy:?}");
        }
        assert_eq!(cache.len(), 20);
    }
}

/// Hit ratio of reading `keys` through `cache` (insert on a miss).
fn hit_ratio(cache: &Cache<u32, u64>, keys: impl IntoIterator<Item = u32>) -> f64 {
    let (mut hits, mut reads) = (0, 0);
    for key in keys {
        hits += u32::from(read_through(cache, key));
        reads += 1;
    }
    f64::from(hits) / f64::from(reads)
}

#[test]
fn w_tinylfu_keeps_most_of_a_loop_longer_than_the_cache() {
    // 50 passes over 1,100 keys through 1,000 entries: at most 91% can hit; LRU hits nothing.
    let lap = || (0..50).flat_map(|_| 0..1100u32);
    let w = hit_ratio(&cache(Policy::WTinyLfu, 1000), lap());
    let lru = hit_ratio(&cache(Policy::Lru, 1000), lap());
    assert!(w > 0.85, "{w}");
    assert_eq!(lru, 0.0);
    // The same with the default sharding (8 shards of 125 here, each its own policy).
    let sharded: Cache<u32, u64> = Cache::builder()
        .max_capacity(1000)
        .policy(Policy::WTinyLfu)
        .build();
    let w_sharded = hit_ratio(&sharded, lap());
    assert!(w_sharded > 0.8, "{w_sharded}");
}

#[test]
fn w_tinylfu_keeps_a_hot_set_through_a_scan() {
    // 50 hot keys, each read again after 150 one-time keys have gone by, in 100 entries: LRU
    // never hits them, W-TinyLFU keeps them in main once the sketch has counted them. The
    // sketch's hash seed is random: over 300 runs the hot ratio ranged 0.74–1.0 (median 0.97),
    // so the bound is 0.5, still far above the 0 that LRU gets.
    for (policy, min_hot_ratio, max_hot_ratio) in
        [(Policy::WTinyLfu, 0.5, 1.0), (Policy::Lru, 0.0, 0.0)]
    {
        let cache = cache(policy, 100);
        let (mut hot_hits, mut hot_reads) = (0, 0);
        for i in 0..30_000u32 {
            let hot = i % 50;
            let hit = read_through(&cache, hot);
            if i >= 15_000 {
                hot_hits += u32::from(hit);
                hot_reads += 1;
            }
            for j in 0..3 {
                read_through(&cache, 100 + 3 * i + j);
            }
        }
        let ratio = f64::from(hot_hits) / f64::from(hot_reads);
        assert!(
            (min_hot_ratio..=max_hot_ratio).contains(&ratio),
            "{policy:?}: {ratio}"
        );
    }
}

#[test]
fn w_tinylfu_on_pure_recency_ends_up_near_lru() {
    // Sweeps up and down 0..1000 through 100 entries: only recency helps (each key is reused
    // right after a turn). LRU hits about 99 keys a turn; W-TinyLFU's tuner grows its window
    // toward that, where a fixed 1% window would hit a few.
    let zigzag = || {
        (0..200).flat_map(|i| {
            let sweep: Box<dyn Iterator<Item = u32>> = if i % 2 == 0 {
                Box::new(0..1000)
            } else {
                Box::new((0..1000).rev())
            };
            sweep
        })
    };
    let lru = hit_ratio(&cache(Policy::Lru, 100), zigzag());
    let w = hit_ratio(&cache(Policy::WTinyLfu, 100), zigzag());
    assert!(lru > 0.09, "{lru}");
    assert!(w > 0.75 * lru, "{w} vs LRU {lru}");
}
