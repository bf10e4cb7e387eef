//! The hit ratio of memokit's default policy over five hashing seeds, on every workload of the
//! report at every capacity: mean, lowest and highest of the five. A row whose spread is wide
//! moves with the hashing, not with the policy: compare two builds by their means.
//! `cargo run -p memokit-bench --release --example seed_spread [TRACE_DIR]`

use memokit::Cache;
use memokit_bench::hit_ratio::{workloads, HitRatioSizes};
use memokit_bench::workloads::default_trace_dir;

const SEEDS: [u64; 5] = [1, 2, 3, 4, 5];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map(Into::into)
        .unwrap_or_else(default_trace_dir);
    let sizes = HitRatioSizes::full();
    let all = workloads(&sizes, dir.exists().then_some(dir.as_path()), &[])?;
    println!("| workload | capacity | mean % | lowest | highest |");
    println!("|---|---|---|---|---|");
    let (mut sum, mut rows) = (0.0, 0);
    for workload in &all {
        for &capacity in &workload.capacities {
            let ratios: Vec<f64> = std::thread::scope(|scope| {
                let runs: Vec<_> = SEEDS
                    .iter()
                    .map(|&seed| {
                        let requests = &workload.requests;
                        scope.spawn(move || replay(capacity, seed, requests))
                    })
                    .collect();
                runs.into_iter().map(|run| run.join().unwrap()).collect()
            });
            let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
            let low = ratios.iter().copied().fold(f64::MAX, f64::min);
            let high = ratios.iter().copied().fold(f64::MIN, f64::max);
            println!(
                "| {} | {capacity} | {mean:.2} | {low:.2} | {high:.2} |",
                workload.name
            );
            sum += mean;
            rows += 1;
        }
    }
    println!("mean over {rows} rows: {:.3}", sum / rows.max(1) as f64);
    Ok(())
}

/// Cache-aside hit ratio, in percent, of a default cache seeded with `seed`.
fn replay(capacity: usize, seed: u64, requests: &[u64]) -> f64 {
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
    100.0 * hits as f64 / requests.len().max(1) as f64
}
