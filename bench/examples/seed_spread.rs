//! The hit ratio of memokit's default policy over the report's five hashing seeds, on every
//! workload of the report at every capacity: mean, lowest and highest of the five (the report's
//! hit-ratio section shows the same for every policy, as the mean ± the farthest seed). A row
//! whose spread is wide moves with the hashing, not with the policy: compare two builds by
//! their means.
//! `cargo run -p memokit-bench --release --example seed_spread [TRACE_DIR]`

use memokit_bench::contenders::Kind;
use memokit_bench::hit_ratio::{run, workloads, HitRatioSizes, SEEDS};
use memokit_bench::workloads::default_trace_dir;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map(Into::into)
        .unwrap_or_else(default_trace_dir);
    let sizes = HitRatioSizes::full();
    let all = workloads(&sizes, dir.exists().then_some(dir.as_path()), &[])?;
    let rows = run(&all, &[Kind::REFERENCE], &SEEDS, 2, |_| {});
    println!("| workload | capacity | mean % | lowest | highest |");
    println!("|---|---|---|---|---|");
    for row in &rows {
        let spread = row.spread(0).expect("memokit is replayed once per seed");
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.2} |",
            row.workload,
            row.capacity,
            spread.mean * 100.0,
            spread.low * 100.0,
            spread.high * 100.0
        );
    }
    let mean = rows.iter().map(|row| row.ratios[0]).sum::<f64>() / rows.len().max(1) as f64;
    println!("mean over {} rows: {:.3}", rows.len(), mean * 100.0);
    Ok(())
}
