//! Adaptive W-TinyLFU (Einziger, Eytan, Friedman and Manes, "Adaptive Software Cache
//! Management", Middleware 2018; the policy of Caffeine), with CLOCK queues so that a hit only
//! touches the entry's own policy bits.
//!
//! New entries enter an admission *window*. An entry leaving the window is a *candidate* for the
//! *main* space, a segmented queue of *probation* and *protected* entries (protected holds up to
//! 90% of main). Main's *victim* is the entry at probation's tail. A count-min sketch of recent
//! key frequencies (4-bit counters, eight per entry of capacity, halved every four additions per
//! entry) decides
//! between the two: the candidate replaces the victim only if the sketch counts it strictly more
//! often by more than [`ADMIT_MARGIN`]; otherwise the candidate is evicted. On a loop longer than
//! the cache every key counts about the same, near-ties keep the incumbent, and main stays
//! resident; one-time keys (scans) never out-count main's entries.
//!
//! Recency is approximated with use counters instead of moving entries on hits: a hit only
//! increments a counter in the entry's policy bits (under the shard's shared lock). The queues are
//! CLOCKs: an entry at the window's tail that was used since it got there goes around again (the
//! window works like an LRU of recent keys); a used entry at probation's tail moves to protected
//! (Caffeine moves it on the hit itself); protected, when over its share, demotes its tail to
//! probation unless it was used, in which case it goes around again. The sketch is fed only on
//! the exclusive path: each key on its insert (a miss), and the uses an entry's counter recorded
//! when a hand passes it.
//!
//! The window's share of the capacity adapts with a hill climber (as Caffeine's): every sample
//! period the hit ratio of the period is compared with the previous one's; if it got worse, the
//! direction of the window's moves reverses; the window then moves by a step that starts at
//! 6.25% of the capacity and decays by 2% a period (and restarts when the hit ratio jumps by 5
//! points, a change of workload). Recency-heavy patterns (zigzags) grow the window; frequency-
//! heavy ones shrink it toward its floor of one entry. The window starts at 1%.
//!
//! There is one climber per cache, not per shard ([`WindowClimber`]): it reads the cache's own
//! hit and miss counters (the ones [`crate::Stats`] reports, kept per thread; hits write
//! nothing else) and every shard takes the share it sets. Per shard, the hit ratio of a period
//! moved by a point or two by chance alone and the window wandered; climbing on use counters
//! collected by the hands, as this policy first did, measured its own queues more than the
//! hit ratio. Measured in replays of the benchmark's table: the shortfall against the best
//! other crate, summed over the rows where it exceeds half a point, went from 55 to 46 points.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::Mutex;

use super::list::{Links, List};
use super::sketch::FrequencySketch;
use super::SlotInfo;
use crate::cache::stats::LookupTotals;

/// The low bits of an entry's policy bits: uses since a hand last passed it (saturating).
const USES_MASK: u8 = 0b0000_0011;
/// Use counters saturate here. A hit stores to the entry only until its counter is full, and
/// a hot entry is read far more often than a hand passes it: with six bits (63) nearly every
/// hit wrote to its entry's cache line, which two threads reading the same hot keys then passed
/// back and forth (measured in interleaved runs before and after: two thirds of the
/// single-thread throughput of two bits, with the same hit ratios; at most this many uses per
/// pass reach the sketch).
pub(super) const MAX_USES: u8 = USES_MASK;
/// The high bits: which queue the entry is in. Changed only under the exclusive lock; hits
/// change only the counter.
const QUEUE_MASK: u8 = 0b1100_0000;
const WINDOW: u8 = 0;
const PROBATION: u8 = 0b0100_0000;
const PROTECTED: u8 = 0b1000_0000;

/// Counters of the sketch per entry of capacity (four bytes). With two (one byte), keys
/// collided so often that estimates were mostly noise: measured in replays of the benchmark's
/// table, eight halved the summed shortfall against the best other crate (109 to 55 points) and
/// took the worst row from 7.4 points below it to 4.2. Sixteen took another sixth off the sum
/// but would cost 8 bytes per entry, more than memokit's margin under quick_cache's memory.
const SKETCH_COUNTERS_PER_ENTRY: u64 = 8;
/// The sketch halves its counters every this many additions per entry of capacity. Measured at
/// 4 against 8, 16 and 32: the same averages within half a point; 8 and more lost 1 to 4 points
/// on `sprite`, whose popular keys change (an aged favourite keeps its place too long).
const SKETCH_SAMPLE_PER_ENTRY: u64 = 4;
/// The sketch of a smaller shard is sized as for this many entries (4,096 counters, 2 KiB,
/// halved every 2,048 additions). Sized for its own 16 entries, a shard's 128 counters were
/// halved every 64 additions: collisions, not frequencies, decided admissions, and a loop or a
/// scan longer than the cache churned main down to 0 % hits where LRU's peers kept 1–2 %.
/// Measured with `bench/examples/small_caches.rs` (`bench/results/SMALL_CACHES.md`).
const SKETCH_MIN_ENTRIES: u64 = 512;
/// Protected's share of main, per mille. Measured against Caffeine's 800: the same averages,
/// a few rows each way, the summed shortfall 2 points smaller.
const PROTECTED_PER_MILLE: u64 = 900;
/// The window's initial share of the capacity.
const INITIAL_WINDOW_SHARE: f64 = 0.01;
/// The climber's first step, as a share of the capacity (6.25%).
const STEP_SHARE: f64 = 0.0625;
/// The step shrinks by this factor every period.
const STEP_DECAY: f64 = 0.98;
/// A change of the hit ratio this large restarts the climber with a full step.
const RESTART_THRESHOLD: f64 = 0.05;
/// A period's hit ratio counts as better or worse than the previous one's only if the two
/// differ by this many standard deviations of chance (see [`chance_difference`]); otherwise
/// the window drifts back toward its initial share. Caffeine's climber reads any difference
/// as a signal: on Zipf, where moving the window changes the hit ratio less than chance does
/// over a period, the window wandered up to a third of the cache and the hit ratio lost up to
/// 4 points. Measured on the benchmark's table against 1 and 3: 2 had the fewest rows below the
/// best peer with the smallest worst row.
const SIGNIFICANCE: f64 = 2.0;
/// Sample period, in lookups per unit of the cache's capacity (Caffeine's).
const SAMPLE_PER_ENTRY: u64 = 10;
/// The shortest sample period, in lookups: over fewer, the hit ratio of a small cache moves by
/// a point by chance alone. Measured against 2,000, 3,000 and 5,000: each lost 5 to 8 points of
/// the summed shortfall, on `sprite`, `backf` and `ps`; 20,000 (before the significance test)
/// kept the window from growing in time on `sprite`.
const MIN_SAMPLE: u64 = 10_000;
/// Each shard asks the climber whether a period ended every this many inserts (reading the
/// cache's counters adds up every thread's stripe).
const POLL_INTERVAL: u32 = 32;
/// A candidate must out-count main's victim by more than this to replace it. Its count includes
/// the miss that brought it in, while the victim's last uses are still in its counter, not yet
/// in the sketch (hands collect them when they pass): on a loop this one-count head start let
/// each returning key push out the next one due, as in LRU. Measured: 1 kept 2 rows more within
/// half a point of the best peer than 0, with slightly better loop and trace averages.
const ADMIT_MARGIN: u8 = 1;

#[derive(Debug)]
pub(crate) struct WTinyLfu {
    links: Links,
    window: List,
    probation: List,
    protected: List,
    window_weight: u64,
    probation_weight: u64,
    protected_weight: u64,
    /// The window's target weight: the climber's share of this shard's capacity.
    window_target: u64,
    capacity: u64,
    sketch: FrequencySketch,
    /// Shared by the cache's shards.
    climber: Arc<WindowClimber>,
    /// Inserts until this shard next asks the climber whether a period ended.
    poll_in: u32,
    /// Whether this shard has evicted (and told the climber so).
    evicting: bool,
}

impl WTinyLfu {
    /// The policy of one shard of `capacity`, taking its window's share from `climber`.
    pub(crate) fn new(capacity: u64, climber: Arc<WindowClimber>) -> Self {
        WTinyLfu {
            links: Links::default(),
            window: List::default(),
            probation: List::default(),
            protected: List::default(),
            window_weight: 0,
            probation_weight: 0,
            protected_weight: 0,
            window_target: window_target(capacity, climber.share()),
            capacity,
            sketch: FrequencySketch::lazy_sized(
                capacity.max(SKETCH_MIN_ENTRIES),
                SKETCH_COUNTERS_PER_ENTRY,
                SKETCH_SAMPLE_PER_ENTRY,
            ),
            climber,
            poll_in: POLL_INTERVAL,
            evicting: false,
        }
    }

    #[cfg(test)]
    pub(crate) fn window_target(&self) -> u64 {
        self.window_target
    }

    fn main_weight(&self) -> u64 {
        self.probation_weight + self.protected_weight
    }

    fn protected_target(&self) -> u64 {
        per_mille(self.capacity - self.window_target, PROTECTED_PER_MILLE)
    }

    #[inline]
    pub(crate) fn on_hit(bits: &AtomicU8) {
        super::bump_uses(bits, MAX_USES);
    }

    pub(crate) fn on_insert(&mut self, idx: u32, hash: u64, weight: u64, bits: &AtomicU8) {
        // Counting starts once the shard is half full: early enough that the entries main
        // holds when admission starts to decide have been counted too (otherwise every newcomer
        // out-counts them), late enough that small caches of large capacity allocate nothing.
        if self.window_weight + self.main_weight() >= self.capacity / 2 {
            self.sketch.ensure_allocated();
        }
        self.sketch.increment(hash);
        bits.store(WINDOW, Relaxed);
        self.window.push_head(&mut self.links, idx);
        self.window_weight += weight;
        self.maybe_climb();
    }

    pub(crate) fn on_update(&mut self, old: u64, new: u64, bits: &AtomicU8) {
        let weight = match bits.load(Relaxed) & QUEUE_MASK {
            WINDOW => &mut self.window_weight,
            PROBATION => &mut self.probation_weight,
            _ => &mut self.protected_weight,
        };
        *weight = *weight - old + new;
        Self::on_hit(bits);
    }

    pub(crate) fn on_remove(&mut self, idx: u32, weight: u64, bits: &AtomicU8) {
        match bits.load(Relaxed) & QUEUE_MASK {
            WINDOW => {
                self.window.unlink(&mut self.links, idx);
                self.window_weight -= weight;
            }
            PROBATION => {
                self.probation.unlink(&mut self.links, idx);
                self.probation_weight -= weight;
            }
            _ => {
                self.protected.unlink(&mut self.links, idx);
                self.protected_weight -= weight;
            }
        }
    }

    /// Takes the uses recorded in slot `idx`'s counter: they reach the sketch, and the counter
    /// restarts from zero (the queue bits are kept).
    fn collect(&mut self, idx: u32, b: u8, slots: &(impl SlotInfo + ?Sized)) {
        let uses = b & USES_MASK;
        if uses > 0 {
            self.sketch.increment_by(slots.hash(idx), uses);
        }
        slots.bits(idx).store(b & QUEUE_MASK, Relaxed);
    }

    /// Every [`POLL_INTERVAL`] inserts, lets the climber end its period if it is complete; on
    /// every insert, takes the window's current share.
    fn maybe_climb(&mut self) {
        self.poll_in -= 1;
        if self.poll_in == 0 {
            self.poll_in = POLL_INTERVAL;
            self.climber.poll();
        }
        self.window_target = window_target(self.capacity, self.climber.share());
    }

    /// Demotes protected's unused tail entries to probation while protected is over its share.
    fn balance_protected(&mut self, slots: &(impl SlotInfo + ?Sized)) {
        let target = self.protected_target();
        // Each entry is passed at most twice (a used one loses its uses the first time).
        let mut budget = 2 * self.protected.len() + 1;
        while self.protected_weight > target && budget > 0 {
            budget -= 1;
            let Some(idx) = self.protected.pop_tail(&mut self.links) else {
                break;
            };
            let b = slots.bits(idx).load(Relaxed);
            if b & USES_MASK > 0 {
                self.collect(idx, b, slots);
                self.protected.push_head(&mut self.links, idx);
                continue;
            }
            let weight = slots.weight(idx);
            self.protected_weight -= weight;
            slots.bits(idx).store(PROBATION, Relaxed);
            self.probation.push_head(&mut self.links, idx);
            self.probation_weight += weight;
        }
    }

    /// Runs main's hands until probation's tail (or, with probation empty, protected's) is an
    /// entry unused since a hand last passed it; returns it, still linked.
    fn main_victim(&mut self, slots: &(impl SlotInfo + ?Sized)) -> Option<u32> {
        loop {
            self.balance_protected(slots);
            if let Some(idx) = self.probation.tail() {
                let b = slots.bits(idx).load(Relaxed);
                if b & USES_MASK == 0 {
                    return Some(idx);
                }
                // Used on probation: protected.
                self.collect(idx, b, slots);
                self.probation.unlink(&mut self.links, idx);
                let weight = slots.weight(idx);
                self.probation_weight -= weight;
                slots.bits(idx).store(PROTECTED, Relaxed);
                self.protected.push_head(&mut self.links, idx);
                self.protected_weight += weight;
                continue;
            }
            let idx = self.protected.tail()?;
            let b = slots.bits(idx).load(Relaxed);
            if b & USES_MASK == 0 {
                return Some(idx);
            }
            self.collect(idx, b, slots);
            self.protected.move_to_head(&mut self.links, idx);
        }
    }

    /// Unlinks main's entry `idx` (probation or protected).
    fn unlink_main(&mut self, idx: u32, slots: &(impl SlotInfo + ?Sized)) {
        let weight = slots.weight(idx);
        if slots.bits(idx).load(Relaxed) & QUEUE_MASK == PROTECTED {
            self.protected.unlink(&mut self.links, idx);
            self.protected_weight -= weight;
        } else {
            self.probation.unlink(&mut self.links, idx);
            self.probation_weight -= weight;
        }
    }

    fn admit_to_probation(&mut self, idx: u32, weight: u64, bits: &AtomicU8) {
        bits.store(PROBATION, Relaxed);
        self.probation.push_head(&mut self.links, idx);
        self.probation_weight += weight;
    }

    pub(crate) fn evict(&mut self, slots: &(impl SlotInfo + ?Sized)) -> Option<u32> {
        self.sketch.ensure_allocated();
        if !self.evicting {
            self.evicting = true;
            self.climber.start();
        }
        loop {
            // The entry about to be inserted goes to the window: at its target, the window
            // hands a candidate to main.
            if self.window_weight >= self.window_target || self.main_weight() == 0 {
                if let Some(idx) = self.window.tail() {
                    let b = slots.bits(idx).load(Relaxed);
                    if b & USES_MASK > 0 {
                        // Used in the window: it goes around again, like an LRU's hit.
                        self.collect(idx, b, slots);
                        self.window.move_to_head(&mut self.links, idx);
                        continue;
                    }
                    self.window.unlink(&mut self.links, idx);
                    let weight = slots.weight(idx);
                    self.window_weight -= weight;
                    let bits = slots.bits(idx);
                    // While main holds less than its share, candidates join it unopposed.
                    if self.main_weight() + weight + self.window_target <= self.capacity {
                        self.admit_to_probation(idx, weight, bits);
                        continue;
                    }
                    let Some(victim) = self.main_victim(slots) else {
                        return Some(idx);
                    };
                    // Ties keep the incumbent: on a loop every key counts the same, and
                    // keeping main as it is keeps most of the loop resident.
                    if self.sketch.frequency(slots.hash(idx))
                        > self.sketch.frequency(slots.hash(victim)) + ADMIT_MARGIN
                    {
                        self.unlink_main(victim, slots);
                        self.admit_to_probation(idx, weight, bits);
                        return Some(victim);
                    }
                    return Some(idx);
                }
            }
            let victim = self.main_victim(slots)?;
            self.unlink_main(victim, slots);
            return Some(victim);
        }
    }

    /// Empties the shard's queues and sketch, and starts the cache's climber over (every shard
    /// of a cleared cache asks; the first does it).
    pub(crate) fn clear(&mut self) {
        self.climber.reset();
        *self = WTinyLfu::new(self.capacity, self.climber.clone());
    }
}

/// A shard's window target for the window's `share` of its `capacity`: at least one entry, and
/// less than the whole shard.
fn window_target(capacity: u64, share: f64) -> u64 {
    let most = capacity.saturating_sub(1).max(1);
    ((capacity as f64 * share) as u64).clamp(1, most)
}

/// The hill climber of one cache: it moves the window's share of every shard's capacity (see
/// the module documentation). Shards ask it to [`poll`](WindowClimber::poll) on their miss
/// path and read the share it sets; it measures hit ratios on the cache's own lookup counters.
#[derive(Debug)]
pub(crate) struct WindowClimber {
    lookups: LookupTotals,
    /// The window's share of each shard's capacity, as an `f64`'s bits.
    share: AtomicU64,
    /// The lookup count at which the current period ends; `u64::MAX` until a shard first
    /// evicts (the hit ratio of a cache still filling up says nothing about its window).
    period_end: AtomicU64,
    state: Mutex<ClimberState>,
}

#[derive(Debug)]
struct ClimberState {
    /// The whole cache's capacity, to start over from.
    capacity: u64,
    /// The smallest and largest share: one entry, and all but one, of the whole capacity.
    least: f64,
    most: f64,
    /// Lookups per period.
    sample: u64,
    /// The cache's hits and lookups when the current period started.
    start: (u64, u64),
    /// The share before rounding, moved by each period.
    share: f64,
    /// The previous period's hit ratio, if there was one.
    previous: Option<f64>,
    /// The next move of the share (negative: shrink).
    step: f64,
}

impl WindowClimber {
    /// The climber of a cache of `capacity` whose lookups `lookups` counts.
    pub(crate) fn new(capacity: u64, lookups: LookupTotals) -> Self {
        let state = ClimberState::new(capacity);
        WindowClimber {
            lookups,
            share: AtomicU64::new(state.share.to_bits()),
            period_end: AtomicU64::new(u64::MAX),
            state: Mutex::new(state),
        }
    }

    /// A climber for a policy built outside a cache: it never moves the window, as nothing
    /// counts its lookups.
    pub(crate) fn detached(capacity: u64) -> Arc<Self> {
        Arc::new(WindowClimber::new(capacity, LookupTotals::detached()))
    }

    /// The window's current share of a shard's capacity.
    pub(crate) fn share(&self) -> f64 {
        f64::from_bits(self.share.load(Relaxed))
    }

    /// A shard evicts for the first time: periods start counting (once for the cache).
    fn start(&self) {
        if self.period_end.load(Relaxed) != u64::MAX {
            return;
        }
        let mut state = self.state.lock();
        if self.period_end.load(Relaxed) == u64::MAX {
            state.start = self.lookups.hits_and_lookups();
            self.period_end.store(state.start.1 + state.sample, Relaxed);
        }
    }

    /// Ends the period if it is complete, moving the share. Cheap when it is not: one load,
    /// and a sum of the lookup counters.
    fn poll(&self) {
        let end = self.period_end.load(Relaxed);
        if end == u64::MAX {
            return;
        }
        let (hits, lookups) = self.lookups.hits_and_lookups();
        if lookups < end {
            return;
        }
        // Another shard may be ending this period right now.
        let Some(mut state) = self.state.try_lock() else {
            return;
        };
        if self.period_end.load(Relaxed) != end {
            return;
        }
        let period = (lookups - state.start.1).max(1);
        let ratio = (hits - state.start.0) as f64 / period as f64;
        let share = state.next_share(ratio, period);
        state.start = (hits, lookups);
        self.share.store(share.to_bits(), Relaxed);
        self.period_end.store(lookups + state.sample, Relaxed);
    }

    /// Back to the initial share, waiting for a first eviction again.
    fn reset(&self) {
        let mut state = self.state.lock();
        *state = ClimberState::new(state.capacity);
        self.share.store(state.share.to_bits(), Relaxed);
        self.period_end.store(u64::MAX, Relaxed);
    }
}

impl ClimberState {
    fn new(capacity: u64) -> Self {
        let least = 1.0 / capacity.max(1) as f64;
        ClimberState {
            capacity,
            least,
            most: (1.0 - least).max(least),
            sample: capacity.saturating_mul(SAMPLE_PER_ENTRY).max(MIN_SAMPLE),
            start: (0, 0),
            share: INITIAL_WINDOW_SHARE.max(least),
            previous: None,
            // Caffeine's first move grows the window.
            step: STEP_SHARE,
        }
    }

    /// Ends a period of `lookups` whose hit ratio was `ratio`: returns the new share.
    fn next_share(&mut self, ratio: f64, lookups: u64) -> f64 {
        let amount = match self.previous.replace(ratio) {
            // No period to compare with yet: the first move is a probe.
            None => self.step,
            Some(previous) => {
                let change = ratio - previous;
                if change.abs() < SIGNIFICANCE * chance_difference(ratio, lookups) {
                    // No evidence either way: back toward the initial share, which suits
                    // skewed workloads best, by at most a step, which keeps decaying. The step
                    // takes the direction of the move, so that if the hit ratio then falls,
                    // the next period reverses this move.
                    let home = INITIAL_WINDOW_SHARE.max(self.least) - self.share;
                    let amount = home.clamp(-self.step.abs(), self.step.abs());
                    let direction = if amount == 0.0 { self.step } else { amount };
                    self.step = (self.step.abs() * STEP_DECAY).copysign(direction);
                    amount
                } else {
                    // Worse than before: the last move was the wrong way.
                    let amount = if change >= 0.0 { self.step } else { -self.step };
                    self.step = if change.abs() >= RESTART_THRESHOLD {
                        STEP_SHARE.copysign(amount)
                    } else {
                        amount * STEP_DECAY
                    };
                    amount
                }
            }
        };
        self.share = (self.share + amount).clamp(self.least, self.most);
        self.share
    }
}

/// The standard deviation of the difference between the hit ratios of two periods of `lookups`
/// each, around `ratio`, when only chance differs between them.
fn chance_difference(ratio: f64, lookups: u64) -> f64 {
    let p = ratio.clamp(0.001, 0.999);
    (2.0 * p * (1.0 - p) / lookups.max(1) as f64).sqrt()
}

/// `capacity * n / 1000`, rounded down, without overflow.
fn per_mille(capacity: u64, n: u64) -> u64 {
    (u128::from(capacity) * u128::from(n) / 1000) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::stats::LookupCounters;

    /// Slots for driving the policy directly: unit weights, a mixed index as hash.
    struct TestSlots(Vec<AtomicU8>);

    impl SlotInfo for TestSlots {
        fn weight(&self, _idx: u32) -> u64 {
            1
        }
        fn hash(&self, idx: u32) -> u64 {
            u64::from(idx).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5555
        }
        fn bits(&self, idx: u32) -> &AtomicU8 {
            &self.0[idx as usize]
        }
    }

    /// Replays `keys` cache-aside through a policy over `capacity` unit-weight slots (slot =
    /// key), counting lookups for its climber as a cache does; returns the policy and the hit
    /// count.
    fn replay(capacity: u64, keys: impl IntoIterator<Item = u32>) -> (WTinyLfu, usize) {
        let lookups = LookupCounters::new();
        let climber = Arc::new(WindowClimber::new(capacity, lookups.totals()));
        let mut policy = WTinyLfu::new(capacity, climber);
        let mut resident = std::collections::HashSet::new();
        let slots = TestSlots((0..300_000).map(|_| AtomicU8::new(0)).collect());
        let mut hits = 0;
        for key in keys {
            let hit = resident.contains(&key);
            lookups.record(hit);
            if hit {
                WTinyLfu::on_hit(slots.bits(key));
                hits += 1;
                continue;
            }
            if resident.len() as u64 >= capacity {
                let victim = policy.evict(&slots).expect("a full cache has a victim");
                assert!(resident.remove(&victim));
            }
            policy.on_insert(key, slots.hash(key), 1, slots.bits(key));
            resident.insert(key);
        }
        (policy, hits)
    }

    #[test]
    fn admission_keeps_most_of_a_loop_resident() {
        // 200 passes over 1,100 keys through 1,000 entries: at most 1000/1100 = 91% can hit.
        let (policy, hits) = replay(1000, (0..200 * 1100).map(|i| i % 1100));
        let ratio = hits as f64 / (200.0 * 1100.0);
        // Measured: 89% (plain S3-FIFO: 79%, LRU: 0%).
        assert!(ratio > 0.85, "{ratio}");
        assert!(policy.main_weight() > 900, "{}", policy.main_weight());
    }

    #[test]
    fn a_tiny_cache_keeps_part_of_a_loop() {
        // 100 passes over 1,000 keys through 16 entries: at most 1.6 % can hit, LRU hits none.
        // With a sketch sized for 16 entries (128 counters, halved every 64 additions) the
        // collisions let about every twentieth candidate in, which churned main: 0 %.
        let (_, hits) = replay(16, (0..100 * 1000).map(|i| i % 1000));
        let ratio = hits as f64 / (100.0 * 1000.0);
        assert!(ratio > 0.012, "{ratio}");
    }

    #[test]
    fn a_scan_does_not_flush_the_hot_set() {
        // 100 hot keys read in turn, with two one-time keys of a scan after each: a hot key comes
        // back after 300 distinct keys, more than the 200 entries, so LRU would never hit.
        let hot = (0..20).flat_map(|_| 0..100u32);
        let mixed = (0..10_000u32).flat_map(|i| [i % 100, 1000 + 2 * i, 1001 + 2 * i]);
        let (_, warm) = replay(200, hot.clone().chain(mixed.clone().take(15_000)));
        let (_, all) = replay(200, hot.chain(mixed));
        // Hits of the last 5,000 hot reads (scan keys never hit).
        let late = all - warm;
        assert!(late > 4_500, "{late}");
    }

    #[test]
    fn window_grows_when_recency_pays() {
        // Every key is read twice and never again, its second read 1 to 40 new keys after the
        // first: the larger the window, the more second reads it still holds (a one-entry
        // window hands each new key to an admission it loses to main's entries, read twice
        // too), up to an LRU of 100 entries, which hits every second read.
        let reads = (0..150_000u32).flat_map(|i| [i, i.saturating_sub(1 + i * 7919 % 40)]);
        let (policy, hits) = replay(100, reads);
        // Measured: the window grows from 1 to 32 entries and 38% of reads hit (with the
        // window held at one entry, 0.3%).
        assert!(policy.window_target > 20, "{}", policy.window_target);
        assert!(hits > 90_000, "{hits}");
    }

    #[test]
    fn climber_keeps_its_direction_while_the_hit_ratio_improves() {
        let mut state = ClimberState::new(1000);
        let initial = state.share;
        // Periods of 10,000 lookups: at a hit ratio of 50%, chance alone moves it by about
        // 0.7 points between two periods, so it takes 1.4 to count.
        let moved = |state: &mut ClimberState, ratio: f64| {
            let before = state.share;
            state.next_share(ratio, 10_000) - before
        };
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        // The first period has nothing to compare with: a probe that grows the window.
        assert!(close(moved(&mut state, 0.50), STEP_SHARE));
        // Better (52% > 50%): the same direction again; the step decays from then on.
        assert!(close(moved(&mut state, 0.52), STEP_SHARE));
        assert!(close(state.step, STEP_SHARE * STEP_DECAY));
        // Worse: the direction reverses.
        assert!(close(moved(&mut state, 0.50), -STEP_SHARE * STEP_DECAY));
        // Better again: keeps shrinking the window, by a smaller step.
        let next = moved(&mut state, 0.52);
        assert!(next < 0.0 && next > -STEP_SHARE * STEP_DECAY, "{next}");
        // A jump of more than 5 points restarts with a full step (in the current direction).
        assert!(moved(&mut state, 0.60) < 0.0);
        assert!(close(state.step, -STEP_SHARE));
        // The share stays between one entry and all but one of the whole capacity.
        state.step = -10.0;
        assert!(close(state.next_share(0.9, 10_000), 0.001));
        state.step = 10.0;
        assert!(close(state.next_share(0.95, 10_000), 0.999));
        assert!(close(initial, INITIAL_WINDOW_SHARE));
    }

    #[test]
    fn climber_reads_changes_within_chance_as_no_evidence() {
        let mut state = ClimberState::new(1000);
        state.next_share(0.50, 10_000);
        let probed = state.share;
        assert!(probed > INITIAL_WINDOW_SHARE);
        // 0.5 points over 10,000 lookups is within chance: no direction is learnt, and the
        // window goes back to its initial share, by at most a step.
        let step = state.step;
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(state.next_share(0.495, 10_000), INITIAL_WINDOW_SHARE));
        assert!(
            state.step < 0.0 && state.step.abs() < step,
            "the step keeps decaying"
        );
        // If going back then costs hits, the next period reverses that move.
        assert!(state.next_share(0.40, 10_000) > INITIAL_WINDOW_SHARE);
        // Over a million lookups the same difference is evidence: better, so the window keeps
        // growing.
        let mut state = ClimberState::new(1000);
        state.next_share(0.50, 1_000_000);
        let probed = state.share;
        assert!(state.next_share(0.505, 1_000_000) > probed);
        // At the initial share, no evidence leaves the window where it is.
        let mut state = ClimberState::new(1000);
        state.previous = Some(0.5);
        assert_eq!(state.next_share(0.5, 10_000), INITIAL_WINDOW_SHARE);
    }

    #[test]
    fn climber_counts_periods_from_the_first_eviction_on_the_cache_lookups() {
        let lookups = LookupCounters::new();
        let climber = WindowClimber::new(100, lookups.totals());
        // 100 × 10 lookups per period would be too few to judge: at least MIN_SAMPLE.
        assert_eq!(climber.state.lock().sample, MIN_SAMPLE);
        let lookups_of = |n: u64, hit: bool| (0..n).for_each(|_| lookups.record(hit));
        // Lookups before the first eviction do not count, however many.
        lookups_of(2 * MIN_SAMPLE, true);
        climber.poll();
        assert_eq!(climber.share(), INITIAL_WINDOW_SHARE);
        climber.start();
        lookups_of(MIN_SAMPLE - 1, false);
        climber.poll();
        assert_eq!(
            climber.share(),
            INITIAL_WINDOW_SHARE,
            "the period is not over"
        );
        lookups_of(1, true);
        climber.poll();
        let probed = climber.share();
        assert_eq!(probed, INITIAL_WINDOW_SHARE + STEP_SHARE);
        // The first period's hit ratio, 1 in MIN_SAMPLE, is the one the next compares with:
        // a better one keeps growing the window.
        lookups_of(MIN_SAMPLE, true);
        climber.poll();
        assert!(climber.share() > probed);
        // A cleared cache starts over, and waits for an eviction again.
        climber.reset();
        assert_eq!(climber.share(), INITIAL_WINDOW_SHARE);
        lookups_of(2 * MIN_SAMPLE, true);
        climber.poll();
        assert_eq!(climber.share(), INITIAL_WINDOW_SHARE);
    }

    #[test]
    fn shards_take_the_share_of_their_own_capacity() {
        let climber = WindowClimber::detached(1000);
        let mut policy = WTinyLfu::new(250, climber.clone());
        assert_eq!(policy.window_target, 2, "1% of 250");
        climber.share.store(0.5f64.to_bits(), Relaxed);
        policy.maybe_climb();
        assert_eq!(policy.window_target, 125);
        // At least one entry, and never the whole shard.
        assert_eq!(window_target(250, 0.0001), 1);
        assert_eq!(window_target(250, 0.9999), 249);
        assert_eq!(window_target(1, 0.5), 1);
    }

    #[test]
    fn sketch_ages_so_old_favourites_can_leave() {
        // 500 keys read 20 times each (with one one-time key after each read), then another 500
        // read the same way: without the sketch's halving the first set would keep counts the
        // second can never strictly beat, and the second would stay out of main.
        let phase =
            |base: u32, scan: u32| (0..20 * 500u32).flat_map(move |i| [base + i % 500, scan + i]);
        let first = phase(0, 100_000);
        let second = phase(10_000, 200_000);
        let (_, before) = replay(1000, first.clone().chain(second.clone().take(19 * 1000)));
        let (_, all) = replay(1000, first.chain(second));
        // Hits of the last round of the second set.
        let late = all - before;
        assert!(late > 450, "{late}");
    }

    #[test]
    fn clear_keeps_the_configured_capacity() {
        let climber = WindowClimber::detached(1000);
        let mut policy = WTinyLfu::new(1000, climber.clone());
        climber.share.store(0.5f64.to_bits(), Relaxed);
        policy.maybe_climb();
        assert_eq!(policy.window_target, 500);
        policy.clear();
        assert_eq!((policy.capacity, policy.window_target), (1000, 10));
        assert_eq!(climber.share(), INITIAL_WINDOW_SHARE);
    }
}
