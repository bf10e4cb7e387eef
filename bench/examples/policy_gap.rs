//! How far memokit's default policy is from the best of the peers and exact LRU, and from
//! Bélády's optimum, on every row of the report, as the mean of five hashing seeds. The peers'
//! figures and the optimum do not change with memokit's policy, so they are measured once and
//! kept in a file (`--reference FILE`, measured when the file is missing).
//! `cargo run -p memokit-bench --release --example policy_gap [TRACE_DIR] [--reference FILE]`

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use memokit::Cache;
use memokit_bench::contenders::Kind;
use memokit_bench::hit_ratio::{self, workloads, HitRatioSizes, Workload};
use memokit_bench::hit_rows::Family;
use memokit_bench::workloads::default_trace_dir;

const SEEDS: [u64; 5] = [1, 2, 3, 4, 5];

/// The best peer's hit ratio (exact LRU among the peers), its name, and Bélády's, per row.
struct Reference {
    best: f64,
    best_peer: String,
    belady: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut dir = default_trace_dir();
    let mut reference_file = PathBuf::from("target/policy_gap_reference.tsv");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--reference" => reference_file = args.next().ok_or("--reference FILE")?.into(),
            _ => dir = arg.into(),
        }
    }
    let all = workloads(
        &HitRatioSizes::full(),
        dir.exists().then_some(dir.as_path()),
        &[],
    )?;
    let reference = reference_of(&all, &reference_file)?;
    let jobs: Vec<(&Workload, usize)> = all
        .iter()
        .flat_map(|w| w.capacities.iter().map(move |&c| (w, c)))
        .collect();
    let means: Vec<(f64, f64, f64)> = std::thread::scope(|scope| {
        let chunks: Vec<_> = (0..2)
            .map(|part| {
                let jobs = &jobs;
                scope.spawn(move || {
                    jobs.iter()
                        .skip(part)
                        .step_by(2)
                        .map(|&(w, capacity)| seeds_of(capacity, &w.requests))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let parts: Vec<Vec<_>> = chunks.into_iter().map(|c| c.join().unwrap()).collect();
        (0..jobs.len()).map(|i| parts[i % 2][i / 2]).collect()
    });
    let mut below_03 = 0;
    let mut below_05 = 0;
    let mut summed = 0.0;
    let (mut gap_sum, mut gap_rows, mut peer_gap_sum) = (0.0, 0, 0.0);
    let mut out = String::new();
    for (&(w, capacity), &(mean, low, high)) in jobs.iter().zip(&means) {
        let r = &reference[&(w.name.clone(), capacity)];
        let short = (r.best - mean) * 100.0;
        if short > 0.3 {
            below_03 += 1;
            summed += short;
            let _ = writeln!(
                out,
                "{:>14} @{:<6} {:6.2} ({:.2}–{:.2})  best {:6.2} {:<22} short {:5.2}  OPT {:6.2}",
                w.name,
                capacity,
                mean * 100.0,
                low * 100.0,
                high * 100.0,
                r.best * 100.0,
                r.best_peer,
                short,
                r.belady * 100.0
            );
        }
        if short > 0.5 {
            below_05 += 1;
        }
        if w.family == Family::Trace {
            gap_sum += (r.belady - mean) * 100.0;
            peer_gap_sum += (r.belady - r.best) * 100.0;
            gap_rows += 1;
        }
    }
    print!("{out}");
    if let Ok(dump) = std::env::var("POLICY_GAP_DUMP") {
        let rows: String = jobs
            .iter()
            .zip(&means)
            .map(|(&(w, c), m)| format!("{}\t{c}\t{}\n", w.name, m.0))
            .collect();
        std::fs::write(dump, rows)?;
    }
    println!(
        "rows {}; more than 0.3 below the best peer: {below_03} (summed {summed:.2}); more than \
         0.5: {below_05}; traces: mean gap to OPT {:.2} (best peer per row {:.2}); mean of all \
         rows {:.3}",
        jobs.len(),
        gap_sum / gap_rows.max(1) as f64,
        peer_gap_sum / gap_rows.max(1) as f64,
        100.0 * means.iter().map(|m| m.0).sum::<f64>() / means.len().max(1) as f64,
    );
    Ok(())
}

/// Mean, lowest and highest hit ratio of the default policy over [`SEEDS`].
fn seeds_of(capacity: usize, requests: &[u64]) -> (f64, f64, f64) {
    let ratios: Vec<f64> = SEEDS
        .iter()
        .map(|&seed| {
            let cache: Cache<u64, u64> = Cache::builder()
                .max_capacity(capacity as u64)
                .seed(seed)
                .build();
            let mut hits = 0usize;
            for &key in requests {
                if cache.get(&key).is_some() {
                    hits += 1;
                } else {
                    cache.insert(key, key);
                }
            }
            hits as f64 / requests.len().max(1) as f64
        })
        .collect();
    let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
    let low = ratios.iter().copied().fold(f64::MAX, f64::min);
    let high = ratios.iter().copied().fold(f64::MIN, f64::max);
    (mean, low, high)
}

fn reference_of(
    all: &[Workload],
    file: &PathBuf,
) -> Result<HashMap<(String, usize), Reference>, Box<dyn std::error::Error>> {
    if !file.exists() {
        let peers: Vec<Kind> = Kind::ALL.into_iter().filter(|k| !k.is_memokit()).collect();
        let rows = hit_ratio::run(all, &peers, &[], 2, |row| {
            eprintln!("reference {} @{}", row.workload, row.capacity)
        });
        let mut text = String::new();
        for row in rows {
            let (best_at, best) = row
                .ratios
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, &r)| (i, r))
                .unwrap_or((0, 0.0));
            let _ = writeln!(
                text,
                "{}\t{}\t{}\t{}\t{}",
                row.workload,
                row.capacity,
                best,
                peers[best_at].slug(),
                row.belady
            );
        }
        std::fs::write(file, text)?;
    }
    let mut reference = HashMap::new();
    for line in std::fs::read_to_string(file)?.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        reference.insert(
            (f[0].to_string(), f[1].parse()?),
            Reference {
                best: f[2].parse()?,
                best_peer: f[3].to_string(),
                belady: f[4].parse()?,
            },
        );
    }
    Ok(reference)
}
