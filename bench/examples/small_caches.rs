//! Hit ratios of small caches (16–100 entries) on the shared traces, for every contender:
//! `cargo run -p memokit-bench --release --example small_caches [TRACE_DIR]`. Each row is one
//! trace at one capacity; the last columns are the best other crate and exact LRU.

use memokit_bench::contenders::Kind;
use memokit_bench::hit_ratio::Replay;
use memokit_bench::workloads::{default_trace_dir, read_trace, trace_files};

const CAPACITIES: [usize; 6] = [16, 20, 32, 50, 64, 100];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map(Into::into)
        .unwrap_or_else(default_trace_dir);
    let kinds = [
        Kind::MemokitWTinyLfu,
        Kind::MemokitS3Fifo,
        Kind::MemokitLru,
        Kind::QuickCache,
        Kind::MokaSync,
        Kind::MiniMoka,
        Kind::Lru,
    ];
    print!("{:<10} {:>5}", "trace", "cap");
    for kind in kinds {
        print!(" {:>9}", short(kind));
    }
    println!("  default-best");
    for file in trace_files(&dir)? {
        let requests = read_trace(&file)?;
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        for capacity in CAPACITIES {
            let ratios: Vec<f64> = kinds
                .iter()
                .map(|kind| {
                    100.0
                        * kind.measure(Replay {
                            capacity,
                            requests: &requests,
                        })
                })
                .collect();
            let best_other = ratios[3..].iter().copied().fold(f64::MIN, f64::max);
            print!("{name:<10} {capacity:>5}");
            for ratio in &ratios {
                print!(" {ratio:>9.2}");
            }
            println!("  {:+.2}", ratios[0] - best_other);
        }
    }
    Ok(())
}

fn short(kind: Kind) -> &'static str {
    match kind {
        Kind::MemokitWTinyLfu => "default",
        Kind::MemokitS3Fifo => "s3fifo",
        Kind::MemokitLru => "mk-lru",
        Kind::QuickCache => "quick",
        Kind::MokaSync => "moka",
        Kind::MiniMoka => "minimoka",
        Kind::Lru => "lru",
        _ => "?",
    }
}
