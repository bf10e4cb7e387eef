//! A count-min sketch of 4-bit counters with periodic halving (TinyLFU's frequency filter,
//! Einziger et al., "TinyLFU: A Highly Efficient Cache Admission Policy", 2017).
//!
//! It estimates how often a key hash was seen recently, in a fixed amount of memory: four
//! counters per hash, and the estimate is the smallest of the four (collisions only ever
//! overestimate). After `sample` additions every counter is halved, so keys that were popular
//! long ago fade. Everything is a pure function of the hashes fed in, so a test can replay the
//! same hashes and expect the same estimates.
//!
//! The four counters of a hash lie in one 64-byte block of the table (as in Caffeine's sketch),
//! one in each quarter of the block, so an increment or an estimate touches one cache line
//! instead of four: the table of a large cache is far bigger than the CPU's caches, and the miss
//! path reads it for the new key and for the entry it competes with.

/// Counters saturate at 15 (four bits).
const MAX_COUNT: u64 = 15;
/// Four counters per hash.
const DEPTH: usize = 4;
/// 16 counters per word, 8 words per block.
const COUNTERS_PER_BLOCK: u64 = 128;
/// At most 2^22 counters (2 MiB) per sketch.
const MAX_COUNTERS: u64 = 1 << 22;
/// Odd multipliers: one picks a hash's block, the other its counter in each quarter of it.
const BLOCK_SEED: u64 = 0x9E37_79B9_7F4A_7C15;
const COUNTER_SEED: u64 = 0xC2B2_AE3D_27D4_EB4F;

/// Counter `row` of a hash whose counter bits are `picks` (see `FrequencySketch::locate`): its
/// word in the block, two per row (below 8 by construction, so indexing needs no check), and
/// its shift in the word.
#[inline(always)]
fn counter(picks: u64, row: usize) -> (usize, u32) {
    let pick = (picks >> (8 * row)) as usize;
    ((row * 2 + (pick & 1)) & 7, ((pick >> 1) & 15) as u32 * 4)
}

/// One cache line of counters.
#[derive(Debug, Clone, Copy, Default)]
#[repr(align(64))]
struct Block([u64; 8]);

/// A frequency sketch; see the module documentation.
///
/// ```
/// use memokit::__private::FrequencySketch;
///
/// let mut sketch = FrequencySketch::new(64);
/// for _ in 0..3 {
///     sketch.increment(42);
/// }
/// assert_eq!(sketch.frequency(42), 3);
/// ```
#[derive(Debug, Clone)]
pub struct FrequencySketch {
    /// Empty until [`FrequencySketch::ensure_allocated`].
    blocks: Vec<Block>,
    /// The number of blocks, for sizing when allocated.
    block_count: usize,
    additions: u64,
    sample: u64,
}

impl FrequencySketch {
    /// A sketch for about `entries` distinct keys with two counters per entry (one byte; at
    /// least 128 counters, at most 2^22), counters halved every `10 × entries` additions.
    /// Allocated at once.
    pub fn new(entries: u64) -> Self {
        let mut sketch = Self::lazy(entries);
        sketch.ensure_allocated();
        sketch
    }

    /// Like [`FrequencySketch::new`], but allocates nothing until
    /// [`FrequencySketch::ensure_allocated`]; until then it records nothing and estimates 0.
    pub fn lazy(entries: u64) -> Self {
        Self::lazy_sized(entries, 2, 10)
    }

    /// Like [`FrequencySketch::lazy`], with `counters_per_entry` counters per entry (rounded up
    /// to whole 64-byte blocks, not to a power of two: a block is picked by multiplying, so a
    /// large sketch takes the memory it asked for) and counters halved every
    /// `sample_per_entry × entries` additions.
    pub fn lazy_sized(entries: u64, counters_per_entry: u64, sample_per_entry: u64) -> Self {
        let counters = entries
            .saturating_mul(counters_per_entry)
            .clamp(COUNTERS_PER_BLOCK, MAX_COUNTERS);
        FrequencySketch {
            blocks: Vec::new(),
            block_count: counters.div_ceil(COUNTERS_PER_BLOCK) as usize,
            additions: 0,
            sample: entries.saturating_mul(sample_per_entry).max(16),
        }
    }

    /// Allocates the counters if they are not yet.
    pub fn ensure_allocated(&mut self) {
        if self.blocks.is_empty() {
            self.blocks = vec![Block::default(); self.block_count];
        }
    }

    /// The block of `hash` (an allocated sketch's) and the positions of its four counters in
    /// it (see [`counter`]).
    #[inline]
    fn locate(&self, hash: u64) -> (usize, u64) {
        // The block from the high 32 bits of one mix scaled to the block count, the counters
        // from eight bits each of another, so that the two choices are independent.
        let mixed = (hash ^ (hash >> 29)).wrapping_mul(BLOCK_SEED);
        let block = (((mixed >> 32) * self.blocks.len() as u64) >> 32) as usize;
        (block, hash.wrapping_mul(COUNTER_SEED) >> 32)
    }

    /// Estimated recent count of `hash` (0 to 15).
    pub fn frequency(&self, hash: u64) -> u8 {
        if self.blocks.is_empty() {
            return 0;
        }
        let (block, picks) = self.locate(hash);
        let words = &self.blocks[block].0;
        let mut least = MAX_COUNT;
        for row in 0..DEPTH {
            let (word, shift) = counter(picks, row);
            least = least.min((words[word] >> shift) & MAX_COUNT);
        }
        least as u8
    }

    /// Counts one occurrence of `hash`; every `sample` additions, halves all counters.
    pub fn increment(&mut self, hash: u64) {
        self.increment_by(hash, 1);
    }

    /// Counts `n` occurrences of `hash`: the same as `n` calls of
    /// [`increment`](Self::increment), one pass over the hash's block between halvings.
    pub fn increment_by(&mut self, hash: u64, n: u8) {
        if self.blocks.is_empty() {
            return;
        }
        let (block, picks) = self.locate(hash);
        let mut left = u64::from(n);
        while left > 0 {
            // One increment counts as an addition while one of the four counters is below 15,
            // so this run of them adds at most `run`: no halving falls inside it.
            let run = left.min(self.sample - self.additions);
            let words = &mut self.blocks[block].0;
            let mut least = MAX_COUNT;
            for row in 0..DEPTH {
                let (word, shift) = counter(picks, row);
                let count = (words[word] >> shift) & MAX_COUNT;
                least = least.min(count);
                words[word] += ((count + run).min(MAX_COUNT) - count) << shift;
            }
            self.additions += run.min(MAX_COUNT - least);
            if self.additions >= self.sample {
                self.halve();
            }
            left -= run;
        }
    }

    /// Halves every counter (TinyLFU's reset), so old popularity fades.
    fn halve(&mut self) {
        for word in self.blocks.iter_mut().flat_map(|b| b.0.iter_mut()) {
            *word = (*word >> 1) & 0x7777_7777_7777_7777;
        }
        self.additions /= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_saturate_at_fifteen() {
        let mut sketch = FrequencySketch::new(1000);
        for _ in 0..40 {
            sketch.increment(7);
        }
        assert_eq!(sketch.frequency(7), 15);
        assert_eq!(sketch.frequency(8), 0);
    }

    #[test]
    fn halving_fades_old_counts() {
        let mut sketch = FrequencySketch::new(16); // halves every 160 additions
        for _ in 0..10 {
            sketch.increment(1);
        }
        assert_eq!(sketch.frequency(1), 10);
        // 150 other keys complete the 160 additions; in 16 counters a row they collide with
        // key 1 now and then, which only adds to its counters before they are halved.
        for key in 100..250u64 {
            sketch.increment(key.wrapping_mul(0x2545_F491_4F6C_DD1D));
        }
        assert_eq!(sketch.additions, 80);
        let halved = sketch.frequency(1);
        assert!((5..10).contains(&halved), "{halved}");
    }

    /// TinyLFU's increment as the paper has it, one occurrence at a time: each counter below 15
    /// goes up, and the occurrence counts as an addition if any did.
    fn increment_one_by_one(sketch: &mut FrequencySketch, hash: u64) {
        let (block, picks) = sketch.locate(hash);
        let mut added = false;
        for row in 0..DEPTH {
            let (word, shift) = counter(picks, row);
            let word = &mut sketch.blocks[block].0[word];
            if (*word >> shift) & MAX_COUNT < MAX_COUNT {
                *word += 1 << shift;
                added = true;
            }
        }
        if added {
            sketch.additions += 1;
            if sketch.additions >= sketch.sample {
                sketch.halve();
            }
        }
    }

    #[test]
    fn increment_by_is_that_many_increments() {
        // Small sketches (halving every 160 additions) fed the same runs of each key, across
        // many halvings and saturated counters: identical counters, additions and estimates.
        let mut one_by_one = FrequencySketch::new(16);
        let mut batched = FrequencySketch::new(16);
        let mut rng = 0x1234_5678_u64;
        for _ in 0..5_000 {
            rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let hash = (rng >> 40) % 50;
            let n = ((rng >> 20) % 18) as u8;
            for _ in 0..n {
                increment_one_by_one(&mut one_by_one, hash);
            }
            if n == 1 {
                batched.increment(hash);
            } else {
                batched.increment_by(hash, n);
            }
            assert_eq!(batched.additions, one_by_one.additions);
        }
        assert_eq!(
            batched.blocks.iter().map(|b| b.0).collect::<Vec<_>>(),
            one_by_one.blocks.iter().map(|b| b.0).collect::<Vec<_>>()
        );
        assert!((0..50).any(|hash| batched.frequency(hash) == 15));
    }

    #[test]
    fn a_sketch_takes_whole_blocks_not_a_power_of_two_and_uses_them_all() {
        // 1,000 entries × 8 counters: 63 blocks (8,064 counters), where a power of two would
        // take 128.
        let mut sketch = FrequencySketch::lazy_sized(1_000, 8, 1_000);
        sketch.ensure_allocated();
        assert_eq!(sketch.blocks.len(), 63);
        let mut rng = 0x9E37_79B9_u64;
        for _ in 0..6_300 {
            rng = rng
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1442695040888963407);
            sketch.increment(rng);
        }
        // About 100 keys per block: every block is reached, none by more than twice its share.
        let per_block: Vec<u64> = sketch
            .blocks
            .iter()
            .map(|b| b.0.iter().map(|w| w.count_ones() as u64).sum())
            .collect();
        let (least, most) = (per_block.iter().min(), per_block.iter().max());
        assert!(
            least > Some(&0) && most < Some(&(2 * 4 * 100)),
            "{per_block:?}"
        );
    }

    #[test]
    fn a_lazy_sketch_counts_only_once_allocated() {
        let mut sketch = FrequencySketch::lazy(100);
        sketch.increment(3);
        assert_eq!(sketch.frequency(3), 0);
        sketch.ensure_allocated();
        sketch.increment(3);
        assert_eq!(sketch.frequency(3), 1);
    }

    #[test]
    fn estimates_of_distinct_keys_are_mostly_exact() {
        // 500 keys in a sketch sized for 1000: collisions may only overestimate, and rarely.
        let mut sketch = FrequencySketch::new(1000);
        let keys: Vec<u64> = (0..500u64)
            .map(|k| k.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x1234)
            .collect();
        for (i, &key) in keys.iter().enumerate() {
            for _ in 0..(i % 4) {
                sketch.increment(key);
            }
        }
        let exact = keys
            .iter()
            .enumerate()
            .filter(|&(i, &key)| {
                let f = sketch.frequency(key);
                assert!(f as usize >= i % 4);
                f as usize == i % 4
            })
            .count();
        assert!(exact > 450, "{exact}");
    }
}
