//! Request streams: a seeded random generator, an exact Zipf sampler, the scan-mixed and loop
//! generators, and trace files (one unsigned integer key per line).
//!
//! Everything is seeded, so every run replays the same requests.

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};

/// Seed of every synthetic workload, so runs are reproducible.
pub const SEED: u64 = 0x5eed_cafe;

/// SplitMix64 (Steele, Lea & Flood 2014): tiny, seedable and good enough for workloads.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1), from the top 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..bound` (`bound > 0`), by multiply-shift: bias below 2^-32 for the bounds
    /// used here.
    pub fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }
}

/// Zipf over ranks `0..n`: rank `k` is drawn with probability proportional to `1 / (k + 1)^s`.
/// Exact, by binary search in the precomputed cumulative distribution.
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// The distribution over `n` ranks (`n > 0`) with exponent `exponent`.
    pub fn new(n: usize, exponent: f64) -> Self {
        assert!(n > 0, "Zipf needs at least one rank");
        let mut total = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|rank| {
                total += (rank as f64).powf(-exponent);
                total
            })
            .collect();
        for c in &mut cdf {
            *c /= total;
        }
        Zipf { cdf }
    }

    /// One rank, `0` being the most frequent.
    pub fn sample(&self, rng: &mut SplitMix64) -> u64 {
        let u = rng.next_f64();
        // Rounding can leave the last cumulative value a hair under 1.
        self.cdf
            .partition_point(|&c| c <= u)
            .min(self.cdf.len() - 1) as u64
    }
}

/// `count` Zipf(`exponent`) requests over the keys `0..keys`.
pub fn zipf_requests(keys: usize, exponent: f64, count: usize, rng: &mut SplitMix64) -> Vec<u64> {
    let zipf = Zipf::new(keys, exponent);
    (0..count).map(|_| zipf.sample(rng)).collect()
}

/// The shape of a scan-mixed workload.
#[derive(Debug, Clone, Copy)]
pub struct ScanMix {
    /// Distinct keys of the Zipf hot set (`0..keys`).
    pub keys: usize,
    /// Zipf requests, not counting scans.
    pub requests: usize,
    /// Zipf requests between two scans.
    pub period: usize,
    /// Keys per scan; every scan key is new and never requested again.
    pub scan_length: usize,
}

/// Zipf requests over the hot key space, interrupted every `mix.period` requests by a scan of
/// `mix.scan_length` keys that occur nowhere else.
pub fn scan_mixed_requests(mix: ScanMix, exponent: f64, rng: &mut SplitMix64) -> Vec<u64> {
    let zipf = Zipf::new(mix.keys, exponent);
    let mut next_scan_key = mix.keys as u64;
    let scans = mix.requests.saturating_sub(1) / mix.period;
    let mut requests = Vec::with_capacity(mix.requests + scans * mix.scan_length);
    for served in 0..mix.requests {
        if served > 0 && served % mix.period == 0 {
            requests.extend(next_scan_key..next_scan_key + mix.scan_length as u64);
            next_scan_key += mix.scan_length as u64;
        }
        requests.push(zipf.sample(rng));
    }
    requests
}

/// Keys `0..len` in order, over and over, `count` requests in all.
pub fn loop_requests(len: usize, count: usize) -> Vec<u64> {
    (0..len as u64).cycle().take(count).collect()
}

/// Number of distinct keys among `requests`.
pub fn distinct_keys(requests: &[u64]) -> usize {
    let mut keys = requests.to_vec();
    keys.sort_unstable();
    keys.dedup();
    keys.len()
}

/// Reads a trace: one unsigned integer key per line; blank lines are skipped. Errors name the
/// file and line.
pub fn read_trace(path: &Path) -> Result<Vec<u64>, Box<dyn Error>> {
    let text =
        fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_trace(&text).map_err(|(line, e)| format!("{}:{line}: {e}", path.display()).into())
}

/// Parses trace text; on error, the 1-based line number and the parse error.
pub fn parse_trace(text: &str) -> Result<Vec<u64>, (usize, std::num::ParseIntError)> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| line.trim().parse().map_err(|e| (n + 1, e)))
        .collect()
}

/// The `*.keys` files of a trace directory, sorted by name.
pub fn trace_files(dir: &Path) -> Result<Vec<PathBuf>, Box<dyn Error>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|ext| ext == "keys"));
    files.sort();
    Ok(files)
}

/// The shared trace directory of a normal checkout: `../shared/traces` beside the repository
/// root, unless `MEMOKIT_TRACE_DIR` names another.
pub fn default_trace_dir() -> PathBuf {
    std::env::var_os("MEMOKIT_TRACE_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/traces"),
        PathBuf::from,
    )
}

/// One operation of a throughput stream: a `get`, or an `insert` of the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Look the key up.
    Get(u64),
    /// Store a value under the key.
    Insert(u64),
}

/// `count` operations on keys drawn from `zipf`, each an insert with probability `insert_share`
/// and a get otherwise.
pub fn mixed_ops(zipf: &Zipf, insert_share: f64, count: usize, rng: &mut SplitMix64) -> Vec<Op> {
    (0..count)
        .map(|_| {
            let key = zipf.sample(rng);
            if rng.next_f64() < insert_share {
                Op::Insert(key)
            } else {
                Op::Get(key)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_is_seeded_and_uniform() {
        let mut a = SplitMix64(42);
        let mut b = SplitMix64(42);
        let first: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        assert_eq!(first, (0..4).map(|_| b.next_u64()).collect::<Vec<_>>());
        assert_ne!(first[0], SplitMix64(43).next_u64());
        let mut rng = SplitMix64(1);
        let mut buckets = [0u32; 10];
        for _ in 0..100_000 {
            let x = rng.next_f64();
            assert!((0.0..1.0).contains(&x));
            buckets[(x * 10.0) as usize] += 1;
        }
        assert!(
            buckets.iter().all(|&n| (9_500..10_500).contains(&n)),
            "{buckets:?}"
        );
        assert!((0..1000).all(|_| rng.below(7) < 7));
    }

    #[test]
    fn zipf_rank_frequencies_follow_the_exponent() {
        let zipf = Zipf::new(1_000, 1.0);
        let mut rng = SplitMix64(7);
        let mut counts = [0u32; 3];
        for _ in 0..200_000 {
            if let Some(c) = counts.get_mut(zipf.sample(&mut rng) as usize) {
                *c += 1;
            }
        }
        // With exponent 1, rank 1 is drawn twice and three times as often as ranks 2 and 3.
        let ratio_2 = f64::from(counts[0]) / f64::from(counts[1]);
        let ratio_3 = f64::from(counts[0]) / f64::from(counts[2]);
        assert!((ratio_2 - 2.0).abs() < 0.1, "{ratio_2}");
        assert!((ratio_3 - 3.0).abs() < 0.15, "{ratio_3}");
    }

    #[test]
    fn zipf_stays_in_range() {
        let zipf = Zipf::new(10, 0.8);
        let mut rng = SplitMix64(3);
        let requests: Vec<u64> = (0..10_000).map(|_| zipf.sample(&mut rng)).collect();
        assert!(requests.iter().all(|&k| k < 10));
        assert_eq!(distinct_keys(&requests), 10);
    }

    #[test]
    fn scans_are_periodic_and_never_repeat() {
        let mix = ScanMix {
            keys: 100,
            requests: 1_000,
            period: 300,
            scan_length: 50,
        };
        let requests = scan_mixed_requests(mix, 1.0, &mut SplitMix64(5));
        // Scans after 300, 600 and 900 Zipf requests.
        assert_eq!(requests.len(), 1_000 + 3 * 50);
        assert_eq!(requests[300..350], (100..150).collect::<Vec<u64>>()[..]);
        assert!(requests[..300].iter().all(|&k| k < 100));
        let scan_keys: Vec<u64> = requests.iter().copied().filter(|&k| k >= 100).collect();
        assert_eq!(scan_keys.len(), 150);
        assert_eq!(distinct_keys(&scan_keys), 150);
    }

    #[test]
    fn loops_repeat_in_order() {
        assert_eq!(loop_requests(3, 7), [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn traces_parse_and_name_bad_lines() {
        assert_eq!(parse_trace("1\n 22 \n\n333\n"), Ok(vec![1, 22, 333]));
        let (line, _) = parse_trace("1\nx\n").unwrap_err();
        assert_eq!(line, 2);
        assert!(parse_trace("-1\n").is_err());
    }

    #[test]
    fn mixed_ops_respect_the_insert_share() {
        let zipf = Zipf::new(1_000, 1.0);
        let ops = mixed_ops(&zipf, 0.1, 100_000, &mut SplitMix64(9));
        let inserts = ops.iter().filter(|op| matches!(op, Op::Insert(_))).count();
        assert!((9_000..11_000).contains(&inserts), "{inserts}");
    }
}
