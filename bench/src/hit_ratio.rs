//! Hit ratio, cache-aside (`get`, and `insert` on a miss), single thread: synthetic workloads,
//! the shared traces and any trace given on the command line, every contender beside
//! Bélády's optimum.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::belady::belady_hit_ratio;
use crate::contenders::{Contender, Kind, Measure};
use crate::hit_rows::{Family, Row};
use crate::workloads::{
    distinct_keys, loop_requests, read_trace, scan_mixed_requests, trace_files, zipf_requests,
    ScanMix, SplitMix64, SEED,
};

/// The sizes of the hit-ratio workloads.
#[derive(Debug, Clone)]
pub struct HitRatioSizes {
    /// Distinct keys of the Zipf workloads.
    pub zipf_keys: usize,
    /// Requests of each Zipf workload (scan-mixed: not counting scans).
    pub zipf_requests: usize,
    /// Scan-mixed: Zipf requests between two scans.
    pub scan_period: usize,
    /// Scan-mixed: keys per scan, all new.
    pub scan_length: usize,
    /// Requests of each loop workload.
    pub loop_requests: usize,
    /// Trace capacities, as fractions of the trace's distinct key count.
    pub trace_fractions: Vec<f64>,
    /// Replay only this many requests from the start of each trace (`None`: all of it).
    pub trace_limit: Option<usize>,
}

impl HitRatioSizes {
    /// The full report: 1M requests over 100k keys, traces at 5, 10, 25 and 50 %.
    pub fn full() -> Self {
        HitRatioSizes {
            zipf_keys: 100_000,
            zipf_requests: 1_000_000,
            scan_period: 50_000,
            // Twice the larger cache, so one scan alone could flush every resident entry.
            scan_length: 20_000,
            loop_requests: 500_000,
            trace_fractions: vec![0.05, 0.10, 0.25, 0.50],
            trace_limit: None,
        }
    }

    /// `--quick`: a tenth of the keys and a twentieth of the requests, the first 20,000
    /// requests of each trace at 10 % only.
    pub fn quick() -> Self {
        HitRatioSizes {
            zipf_keys: 10_000,
            zipf_requests: 50_000,
            scan_period: 5_000,
            scan_length: 2_000,
            loop_requests: 25_000,
            trace_fractions: vec![0.10],
            trace_limit: Some(20_000),
        }
    }

    /// Synthetic capacities: 1 % and 10 % of the Zipf key space.
    pub fn synthetic_capacities(&self) -> [usize; 2] {
        [self.zipf_keys / 100, self.zipf_keys / 10]
    }
}

/// One workload to replay at several capacities.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Its name in tables.
    pub name: String,
    /// Its family.
    pub family: Family,
    /// The requests, in order.
    pub requests: Vec<u64>,
    /// The capacities to replay it at.
    pub capacities: Vec<usize>,
}

/// Cache-aside replay of `requests` through a cache of `capacity` entries.
#[derive(Debug, Clone, Copy)]
pub struct Replay<'a> {
    /// Capacity in entries.
    pub capacity: usize,
    /// The requests, in order.
    pub requests: &'a [u64],
}

impl Measure for Replay<'_> {
    type Output = f64;

    fn measure<C: Contender>(self) -> f64 {
        replay(&C::with_capacity(self.capacity), self.requests)
    }
}

/// [`Replay`] through a cache seeded with `seed` ([`Contender::seeded`]): `None` for a
/// contender that takes no seed.
#[derive(Debug, Clone, Copy)]
pub struct SeededReplay<'a> {
    /// Capacity in entries.
    pub capacity: usize,
    /// The requests, in order.
    pub requests: &'a [u64],
    /// The seed its hashing is drawn from.
    pub seed: u64,
}

impl Measure for SeededReplay<'_> {
    type Output = Option<f64>;

    fn measure<C: Contender>(self) -> Option<f64> {
        Some(replay(&C::seeded(self.capacity, self.seed)?, self.requests))
    }
}

/// The seeds the report replays memokit's policies with: five, so that a row shows how far
/// its figure moves with the hashing alone.
pub const SEEDS: [u64; 5] = [1, 2, 3, 4, 5];

/// The hit ratio of `kind` on `requests` at `capacity`, once per seed of `seeds` when it takes
/// one (memokit's policies), else once as its users build it (the peers; also every contender
/// when `seeds` is empty).
pub fn replays(kind: Kind, capacity: usize, requests: &[u64], seeds: &[u64]) -> Vec<f64> {
    let seeded: Option<Vec<f64>> = seeds
        .iter()
        .map(|&seed| {
            kind.measure(SeededReplay {
                capacity,
                requests,
                seed,
            })
        })
        .collect();
    match seeded {
        Some(runs) if !runs.is_empty() => runs,
        _ => vec![kind.measure(Replay { capacity, requests })],
    }
}

/// Cache-aside hit ratio of `cache` on `requests`: a `get`, and an `insert` after a miss.
///
/// Each insert is settled (see [`Contender::settle`]) before the next request: moka keeps new
/// entries beyond its capacity until its batched maintenance weighs them (see
/// [`most_resident`]), and a hit ratio is only comparable between caches holding the same
/// number of entries.
pub fn replay<C: Contender>(cache: &C, requests: &[u64]) -> f64 {
    let mut hits = 0usize;
    for &key in requests {
        if cache.get(key).is_some() {
            hits += 1;
        } else {
            cache.insert(key, key);
            cache.settle();
        }
    }
    hits as f64 / requests.len().max(1) as f64
}

/// The most entries `cache` held at once while `requests` were replayed cache-aside without
/// settling, as its users run it: how far beyond its capacity it goes between maintenance runs.
pub fn most_resident<C: Contender>(cache: &C, requests: &[u64]) -> usize {
    let mut most = 0;
    for &key in requests {
        if cache.get(key).is_none() {
            cache.insert(key, key);
            most = most.max(cache.resident());
        }
    }
    most
}

/// [`most_resident`] for a cache of `capacity` entries.
#[derive(Debug, Clone, Copy)]
pub struct Overfill<'a> {
    /// Capacity in entries.
    pub capacity: usize,
    /// The requests, in order.
    pub requests: &'a [u64],
}

impl Measure for Overfill<'_> {
    type Output = usize;

    fn measure<C: Contender>(self) -> usize {
        most_resident(&C::with_capacity(self.capacity), self.requests)
    }
}

/// Per contender of `kinds`, the most entries held at once on the smallest-capacity row of
/// `workloads` (where a fixed excess weighs most), replayed without settling: `(workload,
/// capacity, entries per contender)`, or `None` without workloads.
pub fn overfill(workloads: &[Workload], kinds: &[Kind]) -> Option<(String, usize, Vec<usize>)> {
    let (workload, capacity) = workloads
        .iter()
        .flat_map(|w| w.capacities.iter().map(move |&c| (w, c)))
        .min_by_key(|&(_, c)| c)?;
    let requests = &workload.requests;
    let most = kinds
        .iter()
        .map(|kind| kind.measure(Overfill { capacity, requests }))
        .collect();
    Some((workload.name.clone(), capacity, most))
}

/// The synthetic workloads: Zipf 0.8 and 1.0, the same with scans, and a loop 10 % larger than
/// each cache.
pub fn synthetic_workloads(sizes: &HitRatioSizes) -> Vec<Workload> {
    let mut rng = SplitMix64(SEED);
    let capacities = sizes.synthetic_capacities().to_vec();
    let mut workloads = Vec::new();
    for exponent in [0.8, 1.0] {
        workloads.push(Workload {
            name: format!("zipf({exponent:.1})"),
            family: Family::Zipf,
            requests: zipf_requests(sizes.zipf_keys, exponent, sizes.zipf_requests, &mut rng),
            capacities: capacities.clone(),
        });
    }
    let mix = ScanMix {
        keys: sizes.zipf_keys,
        requests: sizes.zipf_requests,
        period: sizes.scan_period,
        scan_length: sizes.scan_length,
    };
    for exponent in [0.8, 1.0] {
        workloads.push(Workload {
            name: format!("zipf({exponent:.1})+scans"),
            family: Family::ScanMixed,
            requests: scan_mixed_requests(mix, exponent, &mut rng),
            capacities: capacities.clone(),
        });
    }
    for capacity in capacities {
        let len = capacity + capacity / 10;
        workloads.push(Workload {
            name: format!("loop({len})"),
            family: Family::Loop,
            requests: loop_requests(len, sizes.loop_requests),
            capacities: vec![capacity],
        });
    }
    workloads
}

/// A trace file (its first `limit` requests, if given) as a workload, at `fractions` of its
/// distinct key count.
pub fn trace_workload(
    path: &Path,
    family: Family,
    fractions: &[f64],
    limit: Option<usize>,
) -> Result<Workload, Box<dyn Error>> {
    let mut requests = read_trace(path)?;
    requests.truncate(limit.unwrap_or(usize::MAX));
    if requests.is_empty() {
        return Err(format!("{}: no keys", path.display()).into());
    }
    let distinct = distinct_keys(&requests);
    let mut capacities: Vec<usize> = fractions
        .iter()
        .map(|f| ((distinct as f64 * f).round() as usize).max(1))
        .collect();
    capacities.dedup();
    Ok(Workload {
        name: path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
        family,
        requests,
        capacities,
    })
}

/// Every workload: the synthetic ones, each `*.keys` file of `trace_dir` (if given), and each
/// of `user_traces`.
pub fn workloads(
    sizes: &HitRatioSizes,
    trace_dir: Option<&Path>,
    user_traces: &[PathBuf],
) -> Result<Vec<Workload>, Box<dyn Error>> {
    let mut all = synthetic_workloads(sizes);
    if let Some(dir) = trace_dir {
        for file in trace_files(dir)? {
            all.push(trace_workload(
                &file,
                Family::Trace,
                &sizes.trace_fractions,
                sizes.trace_limit,
            )?);
        }
    }
    for file in user_traces {
        all.push(trace_workload(
            file,
            Family::UserTrace,
            &sizes.trace_fractions,
            sizes.trace_limit,
        )?);
    }
    Ok(all)
}

/// Replays every workload at every capacity through every contender of `kinds` (see
/// [`replays`]: memokit's policies once per seed of `seeds`), on `threads` threads (a hit
/// ratio does not depend on timing, so rows can run side by side). Rows come back in workload
/// order; `progress` sees each as it is finished.
pub fn run(
    workloads: &[Workload],
    kinds: &[Kind],
    seeds: &[u64],
    threads: usize,
    progress: impl Fn(&Row) + Sync,
) -> Vec<Row> {
    let jobs: Vec<(&Workload, usize)> = workloads
        .iter()
        .flat_map(|w| w.capacities.iter().map(move |&c| (w, c)))
        .collect();
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<Option<Row>>> = Mutex::new(vec![None; jobs.len()]);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(workload, capacity)) = jobs.get(index) else {
                    break;
                };
                let requests = &workload.requests;
                let row = Row::from_runs(
                    workload.name.clone(),
                    workload.family,
                    capacity,
                    requests.len(),
                    kinds
                        .iter()
                        .map(|&kind| replays(kind, capacity, requests, seeds))
                        .collect(),
                    belady_hit_ratio(capacity, requests),
                );
                progress(&row);
                done.lock().unwrap_or_else(|e| e.into_inner())[index] = Some(row);
            });
        }
    });
    done.into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contenders::{LruMutex, Memokit, LRU};
    use memokit::{Cache, Policy};

    /// memokit LRU on one shard, so that the policy is exact.
    fn one_shard_lru(capacity: usize) -> Memokit<LRU> {
        Memokit(
            Cache::builder()
                .max_capacity(capacity as u64)
                .policy(Policy::Lru)
                .shards(1)
                .build(),
        )
    }

    #[test]
    fn replay_counts_cache_aside_hits() {
        let cache = LruMutex::with_capacity(2);
        // 1 2 1 (hit) 3 (evicts 2) 2 (miss, evicts 1) 1 (miss)
        assert_eq!(replay(&cache, &[1, 2, 1, 3, 2, 1]), 1.0 / 6.0);
    }

    #[test]
    fn belady_bounds_every_contender() {
        let mix = ScanMix {
            keys: 10_000,
            requests: 100_000,
            period: 5_000,
            scan_length: 2_000,
        };
        let mixed = scan_mixed_requests(mix, 0.8, &mut SplitMix64(1));
        // A loop of 80 keys through 40 entries: moka's pending inserts (up to 64) would hold it
        // all, unsettled, and hit above the optimum.
        let looped = loop_requests(80, 4_000);
        for (requests, capacity) in [(&mixed, 500), (&mixed, 40), (&looped, 40)] {
            let optimum = belady_hit_ratio(capacity, requests);
            for kind in Kind::ALL {
                let ratio = kind.measure(Replay { capacity, requests });
                // (LRU and FIFO never hit a loop larger than the cache.)
                if requests == &mixed {
                    assert!(ratio > 0.0, "{} @{capacity}: no hit at all", kind.name());
                }
                assert!(
                    ratio <= optimum,
                    "{} @{capacity}: {ratio} > {optimum}",
                    kind.name()
                );
            }
        }
    }

    #[test]
    fn unsettled_moka_holds_more_than_its_capacity() {
        let requests: Vec<u64> = (0..5_000u64).map(|i| i % 1_000).collect();
        let most = |kind: Kind| {
            kind.measure(Overfill {
                capacity: 40,
                requests: &requests,
            })
        };
        assert_eq!(most(Kind::MemokitWTinyLfu), 40);
        assert_eq!(most(Kind::MemokitS3Fifo), 40);
        assert_eq!(most(Kind::Lru), 40);
        assert!(most(Kind::MokaSync) > 40, "{}", most(Kind::MokaSync));
        let (workload, capacity, all) = overfill(
            &[Workload {
                name: "cycle".into(),
                family: Family::UserTrace,
                requests,
                capacities: vec![100, 40],
            }],
            &[Kind::MemokitWTinyLfu, Kind::MokaSync],
        )
        .expect("one workload");
        assert_eq!((workload.as_str(), capacity, all[0]), ("cycle", 40, 40));
        assert!(all[1] > 40);
    }

    #[test]
    fn one_shard_lru_is_exact() {
        // Exact LRU of 2 on 1 2 3 1 2 3 hits nothing; on 1 2 1 2 it hits twice.
        assert_eq!(replay(&one_shard_lru(2), &[1, 2, 3, 1, 2, 3]), 0.0);
        assert_eq!(replay(&one_shard_lru(2), &[1, 2, 1, 2]), 0.5);
    }

    #[test]
    fn synthetic_workloads_have_the_documented_shape() {
        let sizes = HitRatioSizes::quick();
        let all = synthetic_workloads(&sizes);
        let names: Vec<&str> = all.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "zipf(0.8)",
                "zipf(1.0)",
                "zipf(0.8)+scans",
                "zipf(1.0)+scans",
                "loop(110)",
                "loop(1100)"
            ]
        );
        assert_eq!(all[0].capacities, [100, 1_000]);
        assert_eq!(all[0].requests.len(), 50_000);
        assert_eq!(all[2].requests.len(), 50_000 + 9 * 2_000);
        assert_eq!(all[5].capacities, [1_000]);
    }

    #[test]
    fn rows_keep_workload_order_on_several_threads() {
        let sizes = HitRatioSizes::quick();
        let workloads: Vec<Workload> = synthetic_workloads(&sizes)
            .into_iter()
            .map(|mut w| {
                w.requests.truncate(5_000);
                w
            })
            .collect();
        let rows = run(&workloads, &[Kind::Lru], &SEEDS, 2, |_| {});
        let order: Vec<(String, usize)> = rows
            .iter()
            .map(|r| (r.workload.clone(), r.capacity))
            .collect();
        assert_eq!(order.len(), 10);
        assert_eq!(order[0], ("zipf(0.8)".to_string(), 100));
        assert_eq!(order[1], ("zipf(0.8)".to_string(), 1_000));
        assert_eq!(order[9], ("loop(1100)".to_string(), 1_000));
        // LRU on a loop larger than the cache never hits.
        assert_eq!(rows[9].ratios, [0.0]);
    }

    #[test]
    fn memokit_policies_replay_once_per_seed_and_peers_once() {
        let requests = zipf_requests(2_000, 0.8, 20_000, &mut SplitMix64(7));
        let workloads = [Workload {
            name: "z".into(),
            family: Family::Zipf,
            requests: requests.clone(),
            capacities: vec![200],
        }];
        let kinds = [Kind::MemokitWTinyLfu, Kind::MemokitLru, Kind::QuickCache];
        let rows = run(&workloads, &kinds, &SEEDS, 2, |_| {});
        let row = &rows[0];
        let counts: Vec<usize> = row.runs.iter().map(Vec::len).collect();
        assert_eq!(counts, [5, 5, 1]);
        for (at, kind) in kinds.into_iter().enumerate().take(2) {
            for (run, seed) in row.runs[at].iter().zip(SEEDS) {
                let alone = kind.measure(SeededReplay {
                    capacity: 200,
                    requests: &requests,
                    seed,
                });
                assert_eq!(Some(*run), alone, "{} seed {seed}", kind.name());
            }
            assert_eq!(row.ratios[at], row.runs[at].iter().sum::<f64>() / 5.0);
        }
        // The peer takes no seed: one replay as its users build it, no spread.
        let seeded_peer = Kind::QuickCache.measure(SeededReplay {
            capacity: 200,
            requests: &requests,
            seed: 1,
        });
        assert_eq!(seeded_peer, None);
        assert_eq!(row.ratios[2], row.runs[2][0]);
        assert!(row.spread(2).is_none() && row.spread(0).is_some());
        // Without seeds every contender runs once.
        let unseeded = run(&workloads, &kinds, &[], 1, |_| {});
        assert!(unseeded[0].runs.iter().all(|r| r.len() == 1));
    }

    #[test]
    fn trace_workloads_take_capacities_from_distinct_keys() {
        let path = std::env::temp_dir().join(format!("memokit-bench-{}.keys", std::process::id()));
        std::fs::write(&path, "1\n2\n3\n4\n1\n2\n9\n").unwrap();
        let whole = trace_workload(&path, Family::UserTrace, &[0.25, 0.5], None).unwrap();
        assert_eq!(whole.requests.len(), 7);
        // 5 distinct keys: 1.25 rounds to 1, 2.5 to 3.
        assert_eq!(whole.capacities, [1, 3]);
        let head = trace_workload(&path, Family::UserTrace, &[0.5], Some(4)).unwrap();
        assert_eq!(head.requests, [1, 2, 3, 4]);
        assert_eq!(head.capacities, [2]);
        std::fs::remove_file(&path).unwrap();
    }

    /// The LIRS paper's exact-LRU reference points for the gli trace, when the traces are here.
    #[test]
    fn lru_matches_published_gli_numbers() {
        let dir = crate::workloads::default_trace_dir();
        let Ok(requests) = read_trace(&dir.join("gli.keys")) else {
            eprintln!("gli.keys not found under {}: skipped", dir.display());
            return;
        };
        for (capacity, published) in [(1000, 11.21), (2000, 57.41)] {
            let ratio = replay(&one_shard_lru(capacity), &requests) * 100.0;
            assert!((ratio - published).abs() < 0.01, "{capacity}: {ratio}");
        }
    }
}
