//! The setting of a W-TinyLFU cache, its window's share and whether admission keeps a ghost,
//! chosen by miniature simulation (Waldspurger, Saemundsson, Ahmad and Park, "Cache Modeling and
//! Optimization using Miniature Simulations", USENIX ATC '17).
//!
//! Once the cache's first shard is half full, the lookups of a hashed sample of the first shard's
//! keys (all of them up to [`MINI_ENTRIES`] entries of capacity, a proportional share beyond;
//! the first few shards whole where shards are small and many, [`SHARDS_PER_SAMPLED`]) are
//! replayed through scaled-down copies of those shards' policy, one per setting of
//! [`CANDIDATES`]. A key is sampled on every lookup or never, so each copy sees the reuse
//! pattern of the shard at its own scale, sharding included. The cache then follows the copy that
//! hits most: a copy replaces the one being followed only when it has hit more over the recent
//! periods by more than chance allows. The ghost is switched at once; the share moves by at most
//! [`STEP`] per period, which keeps a switch that turns out wrong cheap (jumping straight to the
//! winner's share lost up to 4 points on traces whose phases change faster than the simulation
//! can tell, and 9 points summed over the report's rows when only caches simulated whole jumped).
//!
//! Once neither the copy followed nor the share has changed for [`CALM_PERIODS`], the copies
//! rest: only the followed one runs, for at most [`REST_PERIODS`], and every copy runs again as
//! soon as its hits in a period move from their level by more than chance ([`WAKE_SIGMAS`]).
//! A settled workload then costs the writers a ninth of the simulation, and a changed one wakes
//! the copies within a period (unless it leaves the followed copy's hit ratio where it was).
//! The copies that rested missed the lookups of the rest and trail the followed one until they
//! have caught up, so right after a rest a switch needs a clearer lead: a cost on the side of
//! keeping the setting.
//!
//! A lookup of a sampled key stores its hash in a ring and moves the ring's head (a plain load
//! and store: a lost race loses a sample); other lookups pay one comparison. Writers drain the ring into the copies after they
//! release the shard's lock, a bounded number at a time; if lookups outrun the drains (a cache
//! whose hit ratio is far above 90 %), the oldest unread samples are overwritten, and the copies
//! see the lookups in stretches.
//!
//! This replaced a hill climber (Caffeine's), which moved the share by steps toward whatever had
//! raised the cache's hit ratio over the last period. It could only see the share it had, mixed
//! with the workload's own changes. Measured with `bench/examples/policy_gap.rs` (the report's
//! 70 rows, five seeds each): rows more than 0.3 points below the best of the peers and exact
//! LRU went from 30 to 25, their summed shortfall from 34.4 to 25.3 points, and the mean gap to
//! Bélády's optimum on the traces from 4.18 to 4.04 points (`sprite`: +1.2 to +3.0 points).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use hashbrown::HashTable;
use parking_lot::Mutex;

use super::wtinylfu::WTinyLfu;
use super::{shard_index, SlotInfo};

/// One setting of the policy that the copies simulate: the window's share of the capacity, and
/// whether main's admission keeps a ghost (the hashes of the last candidates it turned away, as
/// many as the shard holds), so that a key that comes back wins a tie against main's victim
/// instead of losing it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Setting {
    share: f64,
    ghost: bool,
}

const fn setting(share: f64, ghost: bool) -> Setting {
    Setting { share, ghost }
}

/// The settings simulated. Shares from 1 % (frequency wins: Zipf, loops, scans) to 99 % (recency
/// wins: LRU-friendly traces); measured one fixed share at a time on the report's rows, each of
/// these was the best of them on some. The ghost helps where keys come back soon after a small
/// window let them go and frequency still matters, and costs where admission's refusals are
/// what keeps a loop or a sweep resident: always on (and admitting a returning key without a
/// contest), it lost 6.7 points on `backf` at 376 entries and 4.8 on `zigzag` at 1,001. So it
/// is a setting the simulation chooses, at the small windows where it won. Measured with
/// `bench/examples/policy_gap.rs` (70 rows, five seeds) against the six shares alone: +4.1
/// points summed, no row lower by more than 0.1 (`cpp` at 122 +1.0, Zipf with scans +0.4,
/// `multi1` at 130 +0.4); admitting a returning key without a contest gave +4.8 but −1.5 on
/// `cpp` at 61; a ghost at every share instead of these three gave about as much as these.
const CANDIDATES: [Setting; 9] = [
    setting(0.01, false),
    setting(0.05, false),
    setting(0.2, false),
    setting(0.5, false),
    setting(0.8, false),
    setting(0.99, false),
    setting(0.01, true),
    setting(0.05, true),
    setting(0.2, true),
];
/// The share the window starts with, until the simulation has shown a better one; the ghost
/// starts off.
pub(super) const INITIAL_SHARE: f64 = CANDIDATES[0].share;
/// The most the share moves in one period. Measured at 0.02, 0.03, 0.05, 0.08, 0.1, 0.25 and 1
/// (a jump): 0.05 to 0.08 had the fewest rows below the best peer.
const STEP: f64 = 0.05;
/// The capacity of each copy, in entries: a first shard of up to this many is simulated whole.
const MINI_ENTRIES: u64 = 1024;
/// Shards that small are simulated whole, as many as fit in [`MINI_ENTRIES`] and at most one
/// in this many of the cache's shards (at least the first): each copy holds one miniature per
/// shard, so a cache of many small shards is simulated as sharded as it is, on as large a
/// part of its keys as a cache of fewer shards. Measured with `bench/examples/policy_gap.rs`
/// (70 rows, five seeds) when the shards per core went from four to eight (16 shards on two
/// cores): the first shard alone, half as large as before, lost 3.1 points summed over the
/// rows (`sprite` at 1,769 entries −1.0); the first two, each in a miniature, hit as four
/// shards per core had (+0.36 summed, no row lower by more than 0.22), for the same cost.
const SHARDS_PER_SAMPLED: u64 = 8;
/// Sampled lookups per period, per entry of a copy's capacity, and at least [`MIN_PERIOD`].
/// Measured at 2, 5 and 10 per entry, and at least 500 to 5,000: longer periods adapted too
/// late on short traces (`backf` has 9,000 lookups), and the rest changed nothing.
const PERIOD_PER_ENTRY: u64 = 2;
const MIN_PERIOD: u64 = 1_000;
/// Each period, the counts of the periods before weigh this much (about the last 50 count).
const DECAY: f64 = 0.98;
/// A copy replaces the one being followed only if it hit more by this many standard deviations
/// of chance (a sign test over the lookups where exactly one of the two hit). Measured at 1, 2,
/// 3 and 5: within half a point of each other in summed shortfall; 1 let noise decide.
const MARGIN: f64 = 2.0;
/// After this many periods in a row that changed nothing, the copies rest: only the one followed
/// runs, for at most [`REST_PERIODS`]. Simulating nine copies is most of what a small cache's
/// writers spend (on a cache of 2,000 entries with one writer in ten operations, 60 % of the
/// time), and on a settled workload it only confirms the setting.
const CALM_PERIODS: u64 = 16;
/// The longest rest, in periods. Measured at 32, 64 and 128 after 16 calm periods (and at 8
/// calm periods): the 70 rows of the report within 0.2 point summed of never resting, no row
/// lower by more than 0.15; 8 calm periods cost `sprite` at 3,538 entries 0.5 point.
const REST_PERIODS: u64 = 64;
/// A rest ends early when the followed copy's hits in a period differ from their level over
/// the calm periods by more than this many standard deviations of chance: the workload changed.
const WAKE_SIGMAS: f64 = 3.0;
/// Sampled lookups recorded and not yet simulated (a power of two).
const RING: usize = 1024;
/// A writer drains the ring once this many samples wait.
const DRAIN_BATCH: usize = 32;
/// The most samples one drain simulates, so that a writer does not wait long (nine copies,
/// about 50 ns each per sample).
const DRAIN_BUDGET: usize = 256;

/// Sets the window's share for every shard of one cache (see the module documentation).
#[derive(Debug)]
pub(crate) struct WindowTuner {
    /// The share, as an `f64`'s bits.
    share: AtomicU64,
    /// Whether main's admission remembers the candidates it turns away.
    ghost: AtomicBool,
    /// Lookups of keys whose hash's low 32 bits are below this are sampled: the first part of
    /// the first shard's keys (see `Cache::shard_of`), as large a part as the sampling rate, or
    /// the keys of the first few shards.
    /// Zero until the first shard is half full, and always for a tuner that only holds a share.
    /// One comparison on every lookup.
    threshold: AtomicU64,
    ring: OnceLock<Box<[AtomicU64]>>,
    cursors: RingCursors,
    /// The capacity of the cache's first shard, whose keys are the ones sampled; `None` for a
    /// fixed share.
    capacity: Option<u64>,
    /// The cache's shards: shard `i` holds the keys whose hash's low 32 bits times this, over
    /// 2^32, is `i` (see `Cache::shard_of`).
    shards: u64,
    copies: Mutex<Option<Copies>>,
}

impl WindowTuner {
    /// The tuner of a cache of `shards` shards, the first of `capacity`.
    pub(crate) fn new(capacity: u64, shards: usize) -> Self {
        WindowTuner {
            shards: shards.max(1) as u64,
            ..WindowTuner::with(Some(capacity), INITIAL_SHARE)
        }
    }

    /// A tuner that samples nothing: for the caches of the other policies, which have no window.
    pub(crate) fn inert() -> Arc<Self> {
        WindowTuner::fixed(INITIAL_SHARE)
    }

    /// A share that never moves, without the ghost: for a policy built outside a cache.
    pub(crate) fn fixed(share: f64) -> Arc<Self> {
        WindowTuner::fixed_setting(setting(share, false))
    }

    /// A setting that never moves: for the copies.
    fn fixed_setting(setting: Setting) -> Arc<Self> {
        let tuner = WindowTuner::with(None, setting.share);
        tuner.ghost.store(setting.ghost, Relaxed);
        Arc::new(tuner)
    }

    fn with(capacity: Option<u64>, share: f64) -> Self {
        WindowTuner {
            share: AtomicU64::new(share.to_bits()),
            ghost: AtomicBool::new(false),
            threshold: AtomicU64::new(0),
            ring: OnceLock::new(),
            cursors: RingCursors::default(),
            capacity,
            shards: 1,
            copies: Mutex::new(None),
        }
    }

    /// The window's current share of a shard's capacity.
    pub(crate) fn share(&self) -> f64 {
        f64::from_bits(self.share.load(Relaxed))
    }

    /// Whether main's admission remembers the candidates it turns away, so that one that comes
    /// back wins a tie against main's victim.
    pub(crate) fn ghost(&self) -> bool {
        self.ghost.load(Relaxed)
    }

    #[cfg(test)]
    pub(crate) fn set_ghost(&self, ghost: bool) {
        self.ghost.store(ghost, Relaxed);
    }

    #[cfg(test)]
    pub(crate) fn set_share(&self, share: f64) {
        self.share.store(share.to_bits(), Relaxed);
    }

    /// A lookup of the key hashed `hash`, hit or miss: recorded if the key is sampled.
    #[inline]
    pub(crate) fn observe(&self, hash: u64) {
        if hash & 0xFFFF_FFFF < self.threshold.load(Relaxed) {
            self.record(hash);
        }
    }

    #[inline(never)]
    fn record(&self, hash: u64) {
        if let Some(ring) = self.ring.get() {
            // A load and a store, not a locked increment: two lookups racing here may write one
            // slot, which loses a sample and costs nothing else.
            let at = self.cursors.head.load(Relaxed);
            self.cursors.head.store(at.wrapping_add(1), Relaxed);
            ring[at & (RING - 1)].store(hash, Relaxed);
        }
    }

    /// A shard is half full, holding `entries` entries in `weight`: sampling starts (once for
    /// the cache), with copies scaled to the entries the first shard holds at that density.
    /// Where that shard fits in the copies several times over, the first shards are sampled
    /// whole, each in a miniature of its own (see [`SHARDS_PER_SAMPLED`]).
    pub(crate) fn start(&self, entries: u64, weight: u64) {
        let Some(capacity) = self.capacity else {
            return;
        };
        if self.threshold.load(Relaxed) != 0 {
            return;
        }
        let mut copies = self.copies.lock();
        if copies.is_some() {
            return;
        }
        let resident = (capacity as f64 * entries as f64 / weight.max(1) as f64).max(1.0);
        let rate = (MINI_ENTRIES as f64 / resident).min(1.0);
        let mini = ((resident * rate).round() as u64).max(1);
        // Whole shards, as many as fit in the copies and a share of the keys; a part of the
        // first shard's keys if it does not fit.
        let whole = if rate < 1.0 {
            1
        } else {
            (MINI_ENTRIES / mini)
                .min(self.shards / SHARDS_PER_SAMPLED)
                .max(1)
        };
        *copies = Some(Copies::new(mini, whole, self.shards, self.share()));
        self.ring
            .get_or_init(|| (0..RING).map(|_| AtomicU64::new(0)).collect());
        self.cursors.head.store(0, Relaxed);
        self.cursors.tail.store(0, Relaxed);
        // The first key of shard `whole` (see `Cache::shard_of`).
        let shards_end = (whole << 32).div_ceil(self.shards);
        self.threshold
            .store(((shards_end as f64 * rate) as u64).max(1), Relaxed);
    }

    /// Simulates the samples recorded since the last drain, at most [`DRAIN_BUDGET`], once
    /// [`DRAIN_BATCH`] wait; moves the share at the end of a period. Called by writers outside
    /// the shard's lock; skipped while another writer drains.
    pub(crate) fn poll(&self) {
        if self.threshold.load(Relaxed) == 0 {
            return;
        }
        let head = self.cursors.head.load(Relaxed);
        if head.wrapping_sub(self.cursors.tail.load(Relaxed)) < DRAIN_BATCH {
            return;
        }
        let (Some(ring), Some(mut guard)) = (self.ring.get(), self.copies.try_lock()) else {
            return;
        };
        let Some(copies) = guard.as_mut() else {
            return;
        };
        let from = self
            .cursors
            .tail
            .load(Relaxed)
            .max(head.saturating_sub(RING));
        let to = head.min(from + DRAIN_BUDGET);
        for at in from..to {
            if let Some(setting) = copies.access(ring[at & (RING - 1)].load(Relaxed)) {
                self.share.store(setting.share.to_bits(), Relaxed);
                self.ghost.store(setting.ghost, Relaxed);
            }
        }
        self.cursors.tail.store(to, Relaxed);
    }

    /// Back to the initial share, waiting for a first eviction again.
    pub(crate) fn reset(&self) {
        let mut copies = self.copies.lock();
        *copies = None;
        self.threshold.store(0, Relaxed);
        self.share.store(INITIAL_SHARE.to_bits(), Relaxed);
        self.ghost.store(false, Relaxed);
    }
}

/// The ring's positions, apart from the fields every lookup reads: sampled lookups write `head`.
#[derive(Debug, Default)]
#[repr(align(128))]
struct RingCursors {
    /// Samples recorded, and samples drained (or overwritten before they could be).
    head: AtomicUsize,
    tail: AtomicUsize,
}

/// The simulated copies of one cache, one per candidate setting.
#[derive(Debug)]
struct Copies {
    copies: Vec<Miniature>,
    /// Per copy, its hits; per pair of copies, the lookups where exactly one of the two hit
    /// (upper triangle); older periods decayed.
    hits: [f64; CANDIDATES.len()],
    disagreements: [[f64; CANDIDATES.len()]; CANDIDATES.len()],
    /// The candidate whose setting the cache takes: its ghost at once, its share by steps.
    current: usize,
    /// The cache's share.
    live: f64,
    /// Sampled lookups until the period ends, and per period.
    left: u64,
    period: u64,
    calm: Calm,
}

impl Copies {
    /// Copies of the first `whole` of `shards` shards, each of `capacity` entries.
    fn new(capacity: u64, whole: u64, shards: u64, share: f64) -> Self {
        let period = (capacity * whole * PERIOD_PER_ENTRY).max(MIN_PERIOD);
        Copies {
            copies: CANDIDATES
                .iter()
                .map(|&setting| Miniature::new(capacity, whole, shards, setting))
                .collect(),
            hits: [0.0; CANDIDATES.len()],
            disagreements: [[0.0; CANDIDATES.len()]; CANDIDATES.len()],
            current: CANDIDATES
                .iter()
                .position(|&c| c == setting(share, false))
                .unwrap_or(0),
            live: share,
            left: period,
            period,
            calm: Calm::default(),
        }
    }

    /// Simulates one sampled lookup; at the end of a period, the setting to take, if it
    /// changed.
    fn access(&mut self, hash: u64) -> Option<Setting> {
        if self.calm.resting.is_some() {
            self.calm.period_hits += u64::from(self.copies[self.current].access(hash));
            if self.period_ends() {
                self.calm.end_rest_period(self.period);
            }
            return None;
        }
        let mut hit = [false; CANDIDATES.len()];
        for (k, copy) in self.copies.iter_mut().enumerate() {
            hit[k] = copy.access(hash);
            self.hits[k] += f64::from(u8::from(hit[k]));
        }
        self.calm.period_hits += u64::from(hit[self.current]);
        for i in 0..hit.len() {
            for j in i + 1..hit.len() {
                if hit[i] != hit[j] {
                    self.disagreements[i][j] += 1.0;
                }
            }
        }
        if !self.period_ends() {
            return None;
        }
        self.end_period()
    }

    /// Counts one sampled lookup; whether it ended a period.
    fn period_ends(&mut self) -> bool {
        self.left -= 1;
        if self.left > 0 {
            return false;
        }
        self.left = self.period;
        true
    }

    /// Follows the copy that hit more than the one followed by more than chance allows, decays
    /// the counts; the setting to take, if it changed.
    fn end_period(&mut self) -> Option<Setting> {
        let current = self.current;
        let best = (0..self.hits.len()).fold(current, |best, k| {
            if self.hits[k] > self.hits[best] {
                k
            } else {
                best
            }
        });
        let (i, j) = (best.min(current), best.max(current));
        let lead = self.hits[best] - self.hits[current];
        let switch = lead > MARGIN * self.disagreements[i][j].sqrt();
        for hits in &mut self.hits {
            *hits *= DECAY;
        }
        for row in &mut self.disagreements {
            for d in row {
                *d *= DECAY;
            }
        }
        let ghost_before = CANDIDATES[self.current].ghost;
        if switch {
            self.current = best;
        }
        let target = CANDIDATES[self.current];
        let live = self.live + (target.share - self.live).clamp(-STEP, STEP);
        self.calm.end_period(!switch && live == target.share);
        (live != self.live || target.ghost != ghost_before).then(|| {
            self.live = live;
            setting(live, target.ghost)
        })
    }
}

/// How long the setting has stood, and whether the copies rest (see [`CALM_PERIODS`]).
#[derive(Debug, Default)]
struct Calm {
    /// Periods in a row that changed nothing, and the followed copy's hits over them.
    periods: u64,
    hits: u64,
    /// The followed copy's hits in the current period.
    period_hits: u64,
    /// While the copies rest, the periods left.
    resting: Option<u64>,
}

impl Calm {
    /// At the end of a period of every copy: `settled` if it changed neither the copy followed
    /// nor the share.
    fn end_period(&mut self, settled: bool) {
        if settled {
            self.periods += 1;
            self.hits += self.period_hits;
        } else {
            *self = Calm::default();
        }
        self.period_hits = 0;
        if self.periods >= CALM_PERIODS {
            self.resting = Some(REST_PERIODS);
        }
    }

    /// At the end of a period of `period` sampled lookups while resting: every copy runs again
    /// after the last, or as soon as the followed copy's hits move.
    fn end_rest_period(&mut self, period: u64) {
        let level = self.hits as f64 / self.periods.max(1) as f64;
        let ratio = (level / period as f64).clamp(0.0, 1.0);
        let sigma = (period as f64 * ratio * (1.0 - ratio)).sqrt().max(1.0);
        let moved = (self.period_hits as f64 - level).abs() > WAKE_SIGMAS * sigma;
        self.period_hits = 0;
        match self.resting {
            Some(left) if left > 1 && !moved => self.resting = Some(left - 1),
            _ => *self = Calm::default(),
        }
    }
}

/// A scaled-down cache of hashes under the policy at one fixed setting, sharded as the cache
/// is: one [`MiniShard`] per sampled shard.
#[derive(Debug)]
struct Miniature {
    shards: Vec<MiniShard>,
    /// The cache's shards, which tell a hash's shard.
    of: u64,
}

impl Miniature {
    fn new(capacity: u64, whole: u64, of: u64, setting: Setting) -> Self {
        Miniature {
            shards: (0..whole)
                .map(|_| MiniShard::new(capacity, setting))
                .collect(),
            of,
        }
    }

    /// Whether the lookup of `hash` hits; on a miss, it is inserted.
    fn access(&mut self, hash: u64) -> bool {
        let last = self.shards.len() - 1;
        self.shards[shard_index(hash, self.of).min(last)].access(hash)
    }
}

/// One shard of a [`Miniature`]: unit weights, no values.
#[derive(Debug)]
struct MiniShard {
    policy: WTinyLfu,
    table: HashTable<u32>,
    slots: Slots,
    free: Vec<u32>,
    capacity: u64,
}

#[derive(Debug, Default)]
struct Slots(Vec<(u64, AtomicU8)>);

impl SlotInfo for Slots {
    fn weight(&self, _idx: u32) -> u64 {
        1
    }
    fn hash(&self, idx: u32) -> u64 {
        self.0[idx as usize].0
    }
    fn bits(&self, idx: u32) -> &AtomicU8 {
        &self.0[idx as usize].1
    }
}

impl MiniShard {
    fn new(capacity: u64, setting: Setting) -> Self {
        MiniShard {
            policy: WTinyLfu::new(capacity, WindowTuner::fixed_setting(setting)),
            table: HashTable::new(),
            slots: Slots::default(),
            free: Vec::new(),
            capacity,
        }
    }

    /// Whether the lookup of `hash` hits; on a miss, it is inserted.
    fn access(&mut self, hash: u64) -> bool {
        // Sampling fixed the hash's leading bits, which the table and the sketch need mixed.
        let hash = hash.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (hash >> 29);
        let slots = &self.slots;
        if let Some(&idx) = self.table.find(hash, |&i| slots.hash(i) == hash) {
            WTinyLfu::on_hit(slots.bits(idx));
            return true;
        }
        if self.table.len() as u64 >= self.capacity {
            if let Some(victim) = self.policy.evict(&self.slots) {
                let victim_hash = self.slots.hash(victim);
                if let Ok(entry) = self.table.find_entry(victim_hash, |&i| i == victim) {
                    entry.remove();
                }
                self.free.push(victim);
            }
        }
        let idx = match self.free.pop() {
            Some(idx) => {
                self.slots.0[idx as usize] = (hash, AtomicU8::new(0));
                idx
            }
            None => {
                self.slots.0.push((hash, AtomicU8::new(0)));
                (self.slots.0.len() - 1) as u32
            }
        };
        let slots = &self.slots;
        self.table.insert_unique(hash, idx, |&i| slots.hash(i));
        self.policy.on_insert(idx, hash, 1, self.slots.bits(idx));
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hash whose high and low 32 bits are `high` and `low`.
    fn hash(high: u32, low: u32) -> u64 {
        (u64::from(high) << 32) | u64::from(low)
    }

    #[test]
    fn samples_only_the_first_shards_keys_under_the_rate() {
        // Ten shards: the first holds the keys whose low 32 bits are below 2^32 / 10.
        let tuner = WindowTuner::new(2048, 10);
        tuner.observe(hash(0, 1));
        assert_eq!(
            tuner.cursors.head.load(Relaxed),
            0,
            "nothing before the shard is half full"
        );
        // 1,024 entries in 1,024 of weight: 2,048 resident, so half the shard's keys are sampled.
        tuner.start(1024, 1024);
        let (first_shard_end, sampled_end) = (429_496_730, 214_748_365);
        for (h, sampled) in [
            (hash(0, 1), true),
            (hash(u32::MAX, sampled_end - 1), true),
            (hash(0, sampled_end), false),
            (hash(0, first_shard_end - 1), false),
            (hash(0, u32::MAX), false),
        ] {
            let before = tuner.cursors.head.load(Relaxed);
            tuner.observe(h);
            assert_eq!(
                tuner.cursors.head.load(Relaxed) - before,
                usize::from(sampled),
                "{h:#x}"
            );
        }
    }

    #[test]
    fn a_small_shard_is_simulated_whole() {
        let tuner = WindowTuner::new(100, 1);
        tuner.start(50, 50);
        assert_eq!(tuner.threshold.load(Relaxed), 1 << 32);
        assert_eq!(tuner.shards, 1);
        assert_eq!(
            tuner.copies.lock().as_ref().unwrap().copies[0].shards[0].capacity,
            100
        );
    }

    #[test]
    fn small_shards_are_simulated_whole_one_in_eight_each_in_a_miniature_of_its_own() {
        // Twenty shards of 100: two are sampled whole (an eighth of twenty, rounded down).
        let tuner = WindowTuner::new(100, 20);
        tuner.start(50, 50);
        let (second_shard_start, third_shard_start) = (214_748_365u32, 429_496_730u32);
        assert_eq!(tuner.threshold.load(Relaxed), u64::from(third_shard_start));
        let keys = (0..40u64).map(|i| hash(i as u32, i as u32));
        let in_second = (0..40u64).map(|i| hash(i as u32, second_shard_start + i as u32));
        for h in keys.chain(in_second) {
            tuner.observe(h);
        }
        tuner.observe(hash(0, third_shard_start));
        tuner.poll();
        let copies = tuner.copies.lock();
        let shards = &copies.as_ref().unwrap().copies[0].shards;
        let held: Vec<usize> = shards.iter().map(|s| s.table.len()).collect();
        assert_eq!(held, [40, 40], "each shard's keys in its own miniature");
        assert_eq!(shards[0].capacity, 100);

        // Shards that fit in the copies only one at a time: the first alone.
        let tuner = WindowTuner::new(600, 64);
        tuner.start(300, 300);
        assert_eq!(tuner.threshold.load(Relaxed), (1u64 << 32).div_ceil(64));
        assert_eq!(
            tuner.copies.lock().as_ref().unwrap().copies[0].shards.len(),
            1
        );
    }

    /// Feeds `keys` to a tuner of one shard of `capacity` as a cache would (every lookup seen,
    /// a drain after every miss); returns the shares it took, in order.
    fn shares_on(capacity: u64, keys: impl IntoIterator<Item = u64>) -> Vec<f64> {
        let tuner = WindowTuner::new(capacity, 1);
        tuner.start(capacity / 2, capacity / 2);
        let mut shares = vec![tuner.share()];
        for key in keys {
            feed(&tuner, key);
            if tuner.share() != *shares.last().unwrap() {
                shares.push(tuner.share());
            }
        }
        shares
    }

    /// A lookup of `key` as a cache shows it to its tuner, with a drain after it.
    fn feed(tuner: &WindowTuner, key: u64) {
        tuner.observe(key.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        tuner.poll();
    }

    /// Every key of `keys` read twice and never again, 1 to 40 new keys apart: only recency
    /// hits.
    fn read_twice(keys: std::ops::Range<u64>) -> impl Iterator<Item = u64> {
        keys.flat_map(|i| [i, i.saturating_sub(1 + i * 7919 % 40)])
    }

    #[test]
    fn recency_moves_the_share_up_by_steps() {
        let shares = shares_on(100, read_twice(0..100_000));
        assert!(*shares.last().unwrap() > 0.5, "{shares:?}");
        for pair in shares.windows(2) {
            assert!((pair[1] - pair[0]).abs() <= STEP + 1e-9, "{shares:?}");
        }
    }

    #[test]
    fn a_loop_keeps_the_smallest_window() {
        // 110 keys in turn through 100 entries: admission keeps most of them, recency none.
        let shares = shares_on(100, (0..200_000u64).map(|i| i % 110));
        assert_eq!(shares, [INITIAL_SHARE]);
    }

    #[test]
    fn lookups_outrunning_the_drains_overwrite_the_oldest_samples() {
        let tuner = WindowTuner::new(100, 1);
        tuner.start(50, 50);
        for key in 0..3 * RING as u64 {
            tuner.observe(key);
        }
        tuner.poll();
        // One drain: the oldest sample still in the ring, then at most a budget.
        assert_eq!(tuner.cursors.tail.load(Relaxed), 2 * RING + DRAIN_BUDGET);
        while tuner.cursors.tail.load(Relaxed) < tuner.cursors.head.load(Relaxed) {
            tuner.poll();
        }
        assert_eq!(tuner.cursors.tail.load(Relaxed), 3 * RING);
        // Fewer than a batch waiting: no drain.
        tuner.observe(1);
        tuner.poll();
        assert_eq!(tuner.cursors.tail.load(Relaxed), 3 * RING);
    }

    /// Copies of 100 entries whose counts say that candidate `leader` hit `lead` more often than
    /// the one followed, over `disagreements` lookups where exactly one of the two hit.
    fn copies_led_by(leader: usize, lead: f64, disagreements: f64) -> Copies {
        let mut copies = Copies::new(100, 1, 1, INITIAL_SHARE);
        copies.hits[0] = 1_000.0;
        copies.hits[leader] = 1_000.0 + lead;
        copies.disagreements[0][leader] = disagreements;
        copies
    }

    #[test]
    fn the_ghost_follows_the_copy_at_once_and_the_share_by_steps() {
        let ghost_at_1 = CANDIDATES
            .iter()
            .position(|&c| c == setting(0.01, true))
            .unwrap();
        let ghost_at_20 = CANDIDATES
            .iter()
            .position(|&c| c == setting(0.2, true))
            .unwrap();
        // Ahead by 10 standard deviations of chance: followed.
        assert_eq!(
            copies_led_by(ghost_at_1, 100.0, 100.0).end_period(),
            Some(setting(0.01, true))
        );
        assert_eq!(
            copies_led_by(ghost_at_20, 100.0, 100.0).end_period(),
            Some(setting(0.01 + STEP, true))
        );
        // Ahead by one standard deviation: chance, not followed.
        assert_eq!(copies_led_by(ghost_at_1, 10.0, 100.0).end_period(), None);
        // Back to a copy without the ghost: off at once.
        let mut copies = copies_led_by(ghost_at_1, 100.0, 100.0);
        copies.end_period();
        copies.hits[0] = copies.hits[ghost_at_1] + 100.0;
        copies.disagreements[0][ghost_at_1] = 100.0;
        assert_eq!(copies.end_period(), Some(setting(0.01, false)));
    }

    /// `periods` periods of `copies` on a loop of `keys` distinct hashes from `first`.
    fn loop_through(copies: &mut Copies, periods: u64, first: u64, keys: u64) {
        for i in 0..periods * copies.period {
            copies.access(first + i % keys);
        }
    }

    #[test]
    fn a_settled_setting_rests_all_copies_but_the_followed_one_until_its_hits_move() {
        let mut copies = Copies::new(100, 1, 1, INITIAL_SHARE);
        // 50 keys through copies of 100: every copy hits the same, so nothing ever changes.
        loop_through(&mut copies, CALM_PERIODS - 1, 0, 50);
        assert_eq!(copies.calm.resting, None);
        loop_through(&mut copies, 1, 0, 50);
        assert_eq!(copies.calm.resting, Some(REST_PERIODS));
        let counts = copies.hits;
        loop_through(&mut copies, 2, 0, 50);
        assert_eq!(copies.calm.resting, Some(REST_PERIODS - 2));
        assert_eq!(copies.hits, counts, "the other copies stood still");
        // A period of new keys: the followed copy's hits drop to none, and every copy runs.
        loop_through(&mut copies, 1, 1_000_000, u64::MAX);
        assert_eq!(copies.calm.resting, None);
        loop_through(&mut copies, 1, 0, 50);
        assert_ne!(copies.hits, counts);
    }

    #[test]
    fn a_rest_ends_after_its_periods_on_a_steady_workload() {
        let mut copies = Copies::new(100, 1, 1, INITIAL_SHARE);
        loop_through(&mut copies, CALM_PERIODS, 0, 50);
        loop_through(&mut copies, REST_PERIODS - 1, 0, 50);
        assert_eq!(copies.calm.resting, Some(1));
        loop_through(&mut copies, 1, 0, 50);
        assert_eq!(copies.calm.resting, None);
        assert_eq!(
            copies.calm.periods, 0,
            "calm is counted again before the next rest"
        );
    }

    #[test]
    fn a_workload_that_changes_during_a_rest_moves_the_share_before_the_rest_would_end() {
        let tuner = WindowTuner::new(100, 1);
        tuner.start(50, 50);
        // A loop longer than the cache: the smallest window, settled, then resting.
        let mut key = 0;
        while tuner.copies.lock().as_ref().unwrap().calm.resting.is_none() {
            feed(&tuner, key % 110);
            key += 1;
        }
        assert_eq!(tuner.share(), INITIAL_SHARE);
        // Only recency hits, for a quarter of a rest.
        let period = tuner.copies.lock().as_ref().unwrap().period;
        for key in read_twice(1_000_000..1_000_000 + REST_PERIODS * period / 8) {
            feed(&tuner, key);
        }
        assert!(tuner.share() > 0.2, "{}", tuner.share());
    }

    #[test]
    fn reset_starts_over_at_the_initial_share() {
        let tuner = WindowTuner::new(100, 1);
        tuner.start(50, 50);
        tuner.set_share(0.5);
        tuner.set_ghost(true);
        tuner.reset();
        assert!(!tuner.ghost());
        assert_eq!(tuner.share(), INITIAL_SHARE);
        tuner.observe(1);
        assert_eq!(tuner.threshold.load(Relaxed), 0);
        assert!(tuner.copies.lock().is_none());
    }

    #[test]
    fn racing_lookups_and_drains_lose_samples_but_nothing_else() {
        let tuner = Arc::new(WindowTuner::new(100, 1));
        tuner.start(50, 50);
        std::thread::scope(|scope| {
            for t in 0..4u64 {
                let tuner = &tuner;
                scope.spawn(move || {
                    for i in 0..50_000u64 {
                        tuner
                            .observe((t * 1_000_003 + i % 300).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                        if i % 8 == 0 {
                            tuner.poll();
                        }
                    }
                });
            }
        });
        let recorded = tuner.cursors.head.load(Relaxed);
        assert!(recorded > 0 && recorded <= 200_000, "{recorded}");
        while tuner.cursors.tail.load(Relaxed) + DRAIN_BATCH <= tuner.cursors.head.load(Relaxed) {
            tuner.poll();
        }
        let share = tuner.share();
        assert!((INITIAL_SHARE..=0.99).contains(&share), "{share}");
    }
}
