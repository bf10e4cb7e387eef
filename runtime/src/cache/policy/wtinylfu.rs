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
//! The window's share of the capacity, and whether admission keeps a *ghost*, are set for every
//! shard of a cache by its [`WindowTuner`], which simulates scaled-down copies of this policy in
//! several settings on a sample of the keys and gives the cache the setting of the copy that
//! hits most: a small window on skewed and looping workloads, a large one on recency-only ones.
//! The window starts at 1 %, without the ghost. With the ghost, a candidate admission turns away
//! leaves its hash in a FIFO of as many hashes as the shard holds; if its key comes back while
//! the hash is there, it wins a tie against main's victim when it leaves the window again (a key
//! that comes back soon after it was turned away is worth a place). Never a contest it would
//! lose by count: a key that returns to a loop or a sweep is no more frequent than main's
//! entries, and letting it in without a contest churned them (see `tuner::CANDIDATES`).

use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::Arc;

use super::ghost::LazyGhost;
use super::list::{Links, List};
use super::sketch::FrequencySketch;
use super::tuner::WindowTuner;
use super::SlotInfo;

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
/// Set on a window entry whose key main's admission turned away not long ago (its hash was in
/// the ghost when it came back): it wins a tie against main's victim when it leaves the window.
const RETURNED: u8 = 0b0010_0000;
/// What a hand keeps of an entry's bits when it collects its uses.
const KEPT_BY_HANDS: u8 = QUEUE_MASK | RETURNED;

/// Counters of the sketch per entry of capacity (four bytes). With two (one byte), keys
/// collided so often that estimates were mostly noise: measured in replays of the benchmark's
/// table, eight halved the summed shortfall against the best other crate (109 to 55 points) and
/// took the worst row from 7.4 points below it to 4.2. Sixteen took another sixth off the sum
/// but would cost 8 bytes per entry, more than memokit's margin under quick_cache's memory.
/// The sketch takes exactly these (in whole blocks): rounded up to a power of two, as before,
/// a shard got 8 to 16 an entry, 1.2 bytes an entry more at 1M entries, for 0.1 to 0.2 points
/// on Zipf at 10,000 entries and no change on any other row of the report.
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
    /// The window's target weight: the tuner's share of this shard's capacity.
    window_target: u64,
    capacity: u64,
    sketch: FrequencySketch,
    /// Shared by the cache's shards.
    tuner: Arc<WindowTuner>,
    /// Whether this shard has been half full (and told the tuner so).
    tuning: bool,
    /// The candidates admission turned away, fed and read only while the tuner has the ghost on
    /// (see `tuner::CANDIDATES`); made when first fed, for as many hashes as the shard then
    /// holds entries.
    ghost: LazyGhost,
}

impl WTinyLfu {
    /// The policy of one shard of `capacity`, taking its window's share from `tuner`.
    pub(crate) fn new(capacity: u64, tuner: Arc<WindowTuner>) -> Self {
        WTinyLfu {
            links: Links::default(),
            window: List::default(),
            probation: List::default(),
            protected: List::default(),
            window_weight: 0,
            probation_weight: 0,
            protected_weight: 0,
            window_target: window_target(capacity, tuner.share()),
            capacity,
            sketch: FrequencySketch::lazy_sized(
                capacity.max(SKETCH_MIN_ENTRIES),
                SKETCH_COUNTERS_PER_ENTRY,
                SKETCH_SAMPLE_PER_ENTRY,
            ),
            tuner,
            tuning: false,
            ghost: LazyGhost::default(),
        }
    }

    #[cfg(test)]
    pub(crate) fn links(&self) -> &Links {
        &self.links
    }

    #[cfg(test)]
    pub(crate) fn window_target(&self) -> u64 {
        self.window_target
    }

    /// Entries in the window and main.
    fn entries(&self) -> u32 {
        self.window.len() + self.probation.len() + self.protected.len()
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
            if !self.tuning {
                // The copies start empty: the sooner they start, the sooner they have filled
                // up as the cache has.
                self.tuning = true;
                self.tuner.start(
                    u64::from(self.entries()),
                    self.window_weight + self.main_weight(),
                );
            }
        }
        self.sketch.increment(hash);
        // While the ghost is off it is neither read nor fed, but kept: the tuner switches it
        // on and off as the copy it follows changes, and the copy's ghost is never emptied.
        let returned = self.tuner.ghost() && self.ghost.remove(hash);
        bits.store(if returned { WINDOW | RETURNED } else { WINDOW }, Relaxed);
        self.window.push_head(&mut self.links, idx);
        self.window_weight += weight;
        self.take_share();
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
        slots.bits(idx).store(b & KEPT_BY_HANDS, Relaxed);
    }

    /// Takes the window's current share (on every insert).
    fn take_share(&mut self) {
        self.window_target = window_target(self.capacity, self.tuner.share());
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
                    let (candidate, incumbent) = (
                        self.sketch.frequency(slots.hash(idx)),
                        self.sketch.frequency(slots.hash(victim)),
                    );
                    if candidate > incumbent + ADMIT_MARGIN
                        || (b & RETURNED != 0 && candidate >= incumbent)
                    {
                        self.unlink_main(victim, slots);
                        self.admit_to_probation(idx, weight, bits);
                        return Some(victim);
                    }
                    if self.tuner.ghost() {
                        let entries = self.entries() as usize;
                        self.ghost.insert(slots.hash(idx), || entries);
                    }
                    return Some(idx);
                }
            }
            let victim = self.main_victim(slots)?;
            self.unlink_main(victim, slots);
            return Some(victim);
        }
    }

    /// Room in the per-slot links for `slots` slots.
    pub(crate) fn reserve(&mut self, slots: usize) {
        self.links.reserve(slots);
    }

    /// Empties the shard's queues and sketch, and starts the cache's tuner over (every shard
    /// of a cleared cache asks).
    pub(crate) fn clear(&mut self) {
        self.tuner.reset();
        *self = WTinyLfu::new(self.capacity, self.tuner.clone());
    }
}

/// A shard's window target for the window's `share` of its `capacity`: at least one entry, and
/// less than the whole shard.
fn window_target(capacity: u64, share: f64) -> u64 {
    let most = capacity.saturating_sub(1).max(1);
    ((capacity as f64 * share) as u64).clamp(1, most)
}

/// `capacity * n / 1000`, rounded down, without overflow.
fn per_mille(capacity: u64, n: u64) -> u64 {
    (u128::from(capacity) * u128::from(n) / 1000) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

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
    /// key), showing each lookup to its tuner as a cache does; returns the policy and the hit
    /// count.
    fn replay(capacity: u64, keys: impl IntoIterator<Item = u32>) -> (WTinyLfu, usize) {
        let tuner = Arc::new(WindowTuner::new(capacity, 1));
        let mut policy = WTinyLfu::new(capacity, tuner.clone());
        let mut resident = std::collections::HashSet::new();
        let slots = TestSlots((0..300_000).map(|_| AtomicU8::new(0)).collect());
        let mut hits = 0;
        for key in keys {
            let hit = resident.contains(&key);
            tuner.observe(slots.hash(key));
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
            tuner.poll();
        }
        (policy, hits)
    }

    /// Replays `keys` cache-aside through a policy of `capacity` unit-weight slots at a fixed 1 %
    /// window, with the ghost on or off; returns the keys resident at the end.
    fn resident_after(ghost: bool, capacity: u64, keys: &[u32]) -> Vec<u32> {
        let tuner = WindowTuner::fixed(0.01);
        tuner.set_ghost(ghost);
        let mut policy = WTinyLfu::new(capacity, tuner);
        let slots = TestSlots((0..1_000).map(|_| AtomicU8::new(0)).collect());
        let mut resident = Vec::new();
        for &key in keys {
            if resident.contains(&key) {
                WTinyLfu::on_hit(slots.bits(key));
                continue;
            }
            if resident.len() as u64 >= capacity {
                let victim = policy.evict(&slots).expect("a full cache has a victim");
                resident.retain(|&k| k != victim);
            }
            policy.on_insert(key, slots.hash(key), 1, slots.bits(key));
            resident.push(key);
        }
        resident.sort_unstable();
        resident
    }

    #[test]
    fn with_the_ghost_a_key_turned_away_wins_a_tie_when_it_comes_back() {
        // Ten keys fill the cache and are read three more times each: main's victim, key 0, is
        // counted three times. Key 50 is read twice, then turned away by admission (counted
        // twice, against 0's three); it comes back (three) and is pushed to main's door by 52.
        // A tie: without the ghost, 50 would have to out-count 0 by more than the margin and is
        // turned away again; with it, 50 came back and takes 0's place.
        let mut keys: Vec<u32> = (0..10).cycle().take(40).collect();
        keys.extend([50, 50, 51, 51, 50, 52]);
        let without = resident_after(false, 10, &keys);
        let with = resident_after(true, 10, &keys);
        assert!(
            !without.contains(&50) && without.contains(&0),
            "{without:?}"
        );
        assert!(with.contains(&50) && !with.contains(&0), "{with:?}");
        // Nothing else changed.
        let others = |keys: &[u32]| -> Vec<u32> {
            keys.iter()
                .copied()
                .filter(|&k| k != 0 && k != 50)
                .collect()
        };
        assert_eq!(others(&without), others(&with));
    }

    #[test]
    fn the_ghost_remembers_as_many_keys_as_the_shard_holds_not_its_weight() {
        /// Every entry weighs 100: a capacity of 1,000 holds ten.
        struct Heavy(TestSlots);
        impl SlotInfo for Heavy {
            fn weight(&self, _idx: u32) -> u64 {
                100
            }
            fn hash(&self, idx: u32) -> u64 {
                self.0.hash(idx)
            }
            fn bits(&self, idx: u32) -> &AtomicU8 {
                self.0.bits(idx)
            }
        }
        let tuner = WindowTuner::fixed(0.01);
        tuner.set_ghost(true);
        let mut policy = WTinyLfu::new(1000, tuner);
        let slots = Heavy(TestSlots((0..1_000).map(|_| AtomicU8::new(0)).collect()));
        let mut weight = 0;
        for key in 0..500 {
            if weight >= 1000 {
                policy.evict(&slots).expect("a full cache has a victim");
                weight -= 100;
            }
            policy.on_insert(key, slots.hash(key), 100, slots.bits(key));
            weight += 100;
        }
        let ghost = policy.ghost.capacity().expect("admission turned keys away");
        assert!((1..=10).contains(&ghost), "{ghost}");
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
    fn shards_take_the_share_of_their_own_capacity() {
        let tuner = WindowTuner::fixed(0.01);
        let mut policy = WTinyLfu::new(250, tuner.clone());
        assert_eq!(policy.window_target, 2, "1% of 250");
        tuner.set_share(0.5);
        policy.take_share();
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
        let tuner = Arc::new(WindowTuner::new(1000, 1));
        let mut policy = WTinyLfu::new(1000, tuner.clone());
        tuner.set_share(0.5);
        policy.take_share();
        assert_eq!(policy.window_target, 500);
        policy.clear();
        assert_eq!((policy.capacity, policy.window_target), (1000, 10));
        assert_eq!(tuner.share(), super::super::tuner::INITIAL_SHARE);
    }
}
