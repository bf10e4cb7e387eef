//! Benchmarks of memokit against other Rust caches.
//!
//! Eight measurements, each in its own module: [hit latency](latency), [throughput],
//! [hit ratio](hit_ratio) (with [Bélády's optimum](belady) beside it), [memory], [coalescing],
//! [macro overhead](macro_overhead), the [shared tier](shared_tier) (Redis) and the
//! [disk tier](disk_tier). The caches compared are in [contenders], behind one
//! small trait; the request streams in [workloads]; the hit-ratio rows, which [targets] judges,
//! in [hit_rows]. The [report] runs them all, then renders `bench/results/REPORT.md` with
//! [plots] from what they measured:
//!
//! ```sh
//! cargo run -p memokit-bench --release -- report           # everything, under 10 minutes
//! cargo run -p memokit-bench --release -- report --quick   # reduced, under a minute
//! cargo run -p memokit-bench --release -- hit-ratio --trace my.keys   # replay your trace
//! cargo bench -p memokit-bench                             # criterion: latency, throughput, macro
//! ```

pub mod belady;
pub mod coalescing;
pub mod contenders;
pub mod disk_tier;
pub mod hit_ratio;
pub mod hit_rows;
pub mod key_shapes;
pub mod latency;
pub mod machine;
pub mod macro_overhead;
pub mod markdown;
pub mod memory;
pub mod plots;
pub mod report;
pub mod shared_tier;
pub mod targets;
pub mod throughput;
pub mod workloads;
