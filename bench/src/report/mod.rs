//! The `report` command: runs every measurement, then writes `REPORT.md` and the SVG plots.
//!
//! Measuring and rendering are apart: [`measure`] runs everything and returns [`Results`],
//! plain data; [`render`] turns them into the Markdown and [`write_plots`] into the SVGs,
//! neither measuring nor reading anything more.

mod figures;
mod measure;
mod render;
mod results;
#[cfg(test)]
mod tests;

use std::error::Error;
use std::fs;
use std::path::PathBuf;
use std::time::Instant;

use crate::coalescing::CoalescingSizes;
use crate::disk_tier::DiskSizes;
use crate::hit_ratio::HitRatioSizes;
use crate::key_shapes::ShapeSizes;
use crate::latency::HitLatency;
use crate::macro_overhead::MacroSizes;
use crate::shared_tier::SharedSizes;
use crate::throughput::ThroughputSizes;

pub use figures::write_plots;
pub use measure::measure;
pub use render::{headline_table, render};
pub use results::{Paired, Results};

/// Every size of every measurement.
#[derive(Debug, Clone)]
pub struct Sizes {
    /// Whether these are the reduced `--quick` sizes.
    pub quick: bool,
    /// Hit latency.
    pub latency: HitLatency,
    /// Throughput.
    pub throughput: ThroughputSizes,
    /// Throughput of a small cache: the same workload at a fiftieth of the capacity, where
    /// evictions and the window tuner's simulation weigh more.
    pub small_throughput: ThroughputSizes,
    /// Thread counts for throughput.
    pub thread_counts: Vec<usize>,
    /// Hit ratio.
    pub hit_ratio: HitRatioSizes,
    /// Entries of the memory measurement.
    pub memory_entries: u64,
    /// Coalescing.
    pub coalescing: CoalescingSizes,
    /// Macro overhead.
    pub macro_overhead: MacroSizes,
    /// The `#[cached]` hit per key shape (in the macro overhead section).
    pub key_shapes: ShapeSizes,
    /// Shared tier (Redis).
    pub shared: SharedSizes,
    /// Disk tier.
    pub disk: DiskSizes,
}

impl Sizes {
    /// The sizes.
    pub fn full() -> Sizes {
        Sizes {
            quick: false,
            // Many short rounds rather than a few long ones: on a shared machine the best
            // round is likelier to have run undisturbed.
            latency: HitLatency {
                entries: 100_000,
                lookups: 1_000_000,
                rounds: 10,
            },
            throughput: ThroughputSizes {
                keys: 1_000_000,
                capacity: 100_000,
                ops_per_thread: 1_000_000,
                rounds: 10,
                exponent: 1.0,
                insert_share: 0.1,
            },
            small_throughput: ThroughputSizes {
                keys: 20_000,
                capacity: 2_000,
                ops_per_thread: 1_000_000,
                rounds: 10,
                exponent: 1.0,
                insert_share: 0.1,
            },
            thread_counts: vec![1, 2],
            hit_ratio: HitRatioSizes::full(),
            memory_entries: 1_000_000,
            coalescing: CoalescingSizes {
                tasks: 1_000,
                threads: 32,
                runs: 5,
            },
            macro_overhead: MacroSizes {
                entries: 50_000,
                lookups: 2_000_000,
                rounds: 9,
            },
            key_shapes: ShapeSizes {
                entries: 10_000,
                lookups: 1_000_000,
                rounds: 7,
            },
            shared: SharedSizes {
                keys: 2_000,
                rounds: 9,
                invalidations: 2_000,
            },
            disk: DiskSizes {
                keys: 20_000,
                rounds: 5,
                open_entries: 1_000_000,
            },
        }
    }

    /// `--quick`: everything a tenth or less, to check that the harness still works.
    pub fn quick() -> Sizes {
        Sizes {
            quick: true,
            latency: HitLatency {
                entries: 10_000,
                lookups: 50_000,
                rounds: 2,
            },
            throughput: ThroughputSizes {
                keys: 100_000,
                capacity: 10_000,
                ops_per_thread: 30_000,
                rounds: 2,
                exponent: 1.0,
                insert_share: 0.1,
            },
            small_throughput: ThroughputSizes {
                keys: 2_000,
                capacity: 200,
                ops_per_thread: 30_000,
                rounds: 2,
                exponent: 1.0,
                insert_share: 0.1,
            },
            thread_counts: vec![1, 2],
            hit_ratio: HitRatioSizes::quick(),
            memory_entries: 50_000,
            coalescing: CoalescingSizes {
                tasks: 1_000,
                threads: 32,
                runs: 2,
            },
            macro_overhead: MacroSizes {
                entries: 5_000,
                lookups: 100_000,
                rounds: 3,
            },
            key_shapes: ShapeSizes {
                entries: 1_000,
                lookups: 50_000,
                rounds: 2,
            },
            shared: SharedSizes {
                keys: 200,
                rounds: 3,
                invalidations: 200,
            },
            disk: DiskSizes {
                keys: 1_000,
                rounds: 2,
                open_entries: 10_000,
            },
        }
    }
}

/// What `report` was asked to do.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// The sizes to run.
    pub sizes: Sizes,
    /// Where REPORT.md and the plots go.
    pub out: PathBuf,
    /// The shared traces, if any.
    pub trace_dir: Option<PathBuf>,
    /// Traces given with `--trace`.
    pub user_traces: Vec<PathBuf>,
    /// The command line, as stated in the report.
    pub command: String,
}

/// Runs everything and writes `REPORT.md` and the plots into `options.out`.
pub fn run(options: &ReportOptions) -> Result<PathBuf, Box<dyn Error>> {
    let started = Instant::now();
    let results = measure(options)?;
    fs::create_dir_all(&options.out)?;
    write_plots(&results, &options.out)?;
    let text = render(&results, &options.command, started.elapsed());
    let path = options.out.join("REPORT.md");
    fs::write(&path, text)?;
    Ok(path)
}
