//! `memokit-bench`: the benchmark report of memokit against other Rust caches.
//!
//! ```text
//! memokit-bench report [--quick] [--out DIR] [--traces DIR] [--trace FILE]...
//! memokit-bench hit-ratio [--quick] [--traces DIR] [--trace FILE]... [--only NAME,...]
//! memokit-bench one latency NAME [--quick]
//! memokit-bench one throughput NAME [--threads N] [--capacity N] [--quick]
//! memokit-bench one macro|shapes [--quick]
//! memokit-bench one shared [--quick]
//! memokit-bench one disk [--quick] [--open-entries N]
//! memokit-bench one coalescing [--runs N] [--only SUBSTRING]
//! ```
//!
//! `report` runs everything and writes `REPORT.md` and SVG plots into `--out` (default
//! `bench/results`). `hit-ratio` only replays the hit-ratio workloads and prints the table
//! (memokit's policies, as in the report, as the mean over five seeds ± the farthest seed), the
//! quick way to try your own trace (one unsigned integer key per line). `one` runs a single
//! timed measurement of one contender, for a profiler. The shared traces are
//! read from `../shared/traces` beside the repository (or `MEMOKIT_TRACE_DIR`) unless
//! `--traces` names another directory.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use memokit_bench::coalescing;
use memokit_bench::contenders::Kind;
use memokit_bench::disk_tier;
use memokit_bench::hit_ratio;
use memokit_bench::hit_rows::{shortfalls_of, Family, Row};
use memokit_bench::key_shapes;
use memokit_bench::macro_overhead;
use memokit_bench::markdown::{percent, percent_within, table};
use memokit_bench::memory::FillMemory;
use memokit_bench::report::{self, ReportOptions, Sizes};
use memokit_bench::shared_tier;
use memokit_bench::throughput::{self, Throughput};
use memokit_bench::workloads::default_trace_dir;

const USAGE: &str = "\
usage:
  memokit-bench report [--quick] [--out DIR] [--traces DIR] [--trace FILE]...
  memokit-bench hit-ratio [--quick] [--traces DIR] [--trace FILE]... [--only NAME,...]
  memokit-bench one latency NAME [--quick]
  memokit-bench one throughput NAME [--threads N] [--capacity N] [--quick]
  memokit-bench one macro|shapes [--quick]
  memokit-bench one shared [--quick]   (needs redis-server on PATH)
  memokit-bench one disk [--quick] [--open-entries N]
  memokit-bench one coalescing [--runs N] [--only SUBSTRING]

  --quick        reduced sizes (a check of the harness, under a minute)
  --out DIR      where REPORT.md and the plots go (default: bench/results)
  --traces DIR   the shared traces (default: ../shared/traces beside the repository)
  --trace FILE   also replay this trace: one unsigned integer key per line (repeatable)
  --capacity N   the throughput run's cache capacity, with ten times as many keys
                 (default: the report's 100,000)

`one` runs a single timed measurement (NAME: memokit-w-tinylfu, the default, memokit-s3fifo,
memokit-lru, memokit-lfu, memokit-fifo, memokit-s3fifo-tinylfu, quick-cache, moka-sync,
moka-future, mini-moka, cached, lru), e.g. to profile it:
  perf record -g target/release/memokit-bench one latency memokit-w-tinylfu
`hit-ratio --only NAME,...` replays only those contenders.";

/// Parsed options of `report` and `hit-ratio`.
struct Options {
    quick: bool,
    out: PathBuf,
    trace_dir: Option<PathBuf>,
    user_traces: Vec<PathBuf>,
    /// `hit-ratio --only SLUG,...`: replay only these contenders.
    only: Option<Vec<Kind>>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        quick: false,
        out: Path::new(env!("CARGO_MANIFEST_DIR")).join("results"),
        trace_dir: None,
        user_traces: Vec::new(),
        only: None,
    };
    let mut explicit_dir = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .map(PathBuf::from)
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--out" => options.out = value("--out")?,
            "--traces" => explicit_dir = Some(value("--traces")?),
            "--trace" => options.user_traces.push(value("--trace")?),
            "--only" => {
                let list = args.next().ok_or("--only needs a value")?;
                let kinds = list
                    .split(',')
                    .map(|slug| Kind::from_slug(slug).ok_or(format!("no contender named {slug}")))
                    .collect::<Result<Vec<_>, _>>()?;
                options.only = Some(kinds);
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    options.trace_dir = match explicit_dir {
        Some(dir) if dir.is_dir() => Some(dir),
        Some(dir) => return Err(format!("--traces {}: not a directory", dir.display())),
        None => {
            let dir = default_trace_dir();
            if dir.is_dir() {
                Some(dir)
            } else {
                eprintln!(
                    "no shared traces at {}: synthetic workloads only (use --traces DIR)",
                    dir.display()
                );
                None
            }
        }
    };
    Ok(options)
}

fn sizes(quick: bool) -> Sizes {
    if quick {
        Sizes::quick()
    } else {
        Sizes::full()
    }
}

fn report(args: &[String]) -> Result<(), Box<dyn Error>> {
    let options = parse(args)?;
    let mut command = "cargo run -p memokit-bench --release -- report".to_string();
    for arg in args {
        command.push(' ');
        command.push_str(arg);
    }
    let path = report::run(&ReportOptions {
        sizes: sizes(options.quick),
        out: options.out,
        trace_dir: options.trace_dir,
        user_traces: options.user_traces,
        command,
    })?;
    println!("wrote {}", path.display());
    Ok(())
}

fn hit_ratio_table(args: &[String]) -> Result<(), Box<dyn Error>> {
    let options = parse(args)?;
    let workloads = hit_ratio::workloads(
        &sizes(options.quick).hit_ratio,
        options.trace_dir.as_deref(),
        &options.user_traces,
    )?;
    let kinds = options.only.clone().unwrap_or_else(|| Kind::ALL.to_vec());
    let rows = hit_ratio::run(&workloads, &kinds, &hit_ratio::SEEDS, 2, |row| {
        eprintln!("{} @{}", row.workload, row.capacity);
    });
    let mut header = vec!["workload", "capacity"];
    header.extend(kinds.iter().map(|k| k.name()));
    header.push("Bélády");
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let mut cells = vec![row.workload.clone(), row.capacity.to_string()];
            cells.extend(
                row.ratios
                    .iter()
                    .enumerate()
                    .map(|(at, &r)| percent_within(r, row.spread(at).map(|s| s.within()))),
            );
            cells.push(percent(row.belady));
            cells
        })
        .collect();
    print!("{}", table(&header, &cells));
    for line in shortfall_summary(&rows, &kinds) {
        println!("{line}");
    }
    Ok(())
}

/// One line per memokit policy in `kinds`: on how many rows it is more than half a point below
/// the best peer, the worst such rows, and its mean hit ratio per family (peers' means follow on
/// one line each). Empty lines are never returned; with no peer in `kinds` there are no
/// shortfall counts.
fn shortfall_summary(rows: &[Row], kinds: &[Kind]) -> Vec<String> {
    let mut families: Vec<Family> = Vec::new();
    for row in rows {
        if !families.contains(&row.family) {
            families.push(row.family);
        }
    }
    let has_peer = kinds.iter().any(|k| !k.is_memokit());
    let mut lines = Vec::new();
    for (at, kind) in kinds.iter().enumerate() {
        let means: Vec<String> = families
            .iter()
            .map(|&family| {
                let ratios: Vec<f64> = rows
                    .iter()
                    .filter(|row| row.family == family)
                    .map(|row| row.ratios[at])
                    .collect();
                let mean = ratios.iter().sum::<f64>() / ratios.len().max(1) as f64;
                format!("{} {:.2}", family.name(), mean * 100.0)
            })
            .collect();
        let mut line = format!("{}: mean % {}", kind.name(), means.join(", "));
        if kind.is_memokit() && has_peer {
            let mut short = shortfalls_of(*kind, rows, kinds, 0.005);
            short.sort_by(|a, b| b.points().total_cmp(&a.points()));
            let worst: Vec<String> = short
                .iter()
                .take(5)
                .map(|s| format!("{} @{} -{:.2}", s.workload, s.capacity, s.points()))
                .collect();
            line.push_str(&format!(
                "; more than 0.5 points below the best peer on {} of {} rows (worst: {})",
                short.len(),
                rows.len(),
                worst.join(", ")
            ));
        }
        lines.push(line);
    }
    lines
}

/// `one latency NAME`, `one throughput NAME [--threads N] [--capacity N]`, `one macro|shapes`
/// and the others of [`USAGE`] (each with `--quick`): one measurement, for a profiler.
fn one(args: &[String]) -> Result<(), Box<dyn Error>> {
    let (what, rest) = args.split_first().ok_or(USAGE)?;
    let (kind, rest) = match (what.as_str(), rest) {
        ("macro" | "shapes" | "shared" | "disk" | "coalescing", rest) => (None, rest),
        (_, [name, rest @ ..]) => {
            let kind = Kind::from_slug(name).ok_or_else(|| format!("no contender named {name}"))?;
            (Some(kind), rest)
        }
        _ => return Err(USAGE.into()),
    };
    let mut threads = 1;
    let mut quick = false;
    let mut runs = None;
    let mut only = String::new();
    let mut open_entries = None;
    let mut capacity = None;
    let mut rest = rest.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--threads" => threads = rest.next().ok_or("--threads needs a value")?.parse()?,
            "--only" => only = rest.next().ok_or("--only needs a value")?.clone(),
            "--capacity" => {
                capacity = Some(rest.next().ok_or("--capacity needs a value")?.parse()?)
            }
            "--runs" => runs = Some(rest.next().ok_or("--runs needs a value")?.parse()?),
            "--open-entries" => {
                open_entries = Some(rest.next().ok_or("--open-entries needs a value")?.parse()?)
            }
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    let sizes = sizes(quick);
    match (what.as_str(), kind) {
        ("latency", Some(kind)) => {
            let result = kind.measure(sizes.latency);
            println!("{}: {:.1} ns per get", kind.name(), result.ns_per_get);
        }
        ("throughput", Some(kind)) => {
            let mut sizes = sizes;
            if let Some(capacity) = capacity {
                sizes.throughput.capacity = capacity;
                sizes.throughput.keys = 10 * capacity;
            }
            let streams = throughput::streams(&sizes.throughput, threads);
            let mops = kind.measure(Throughput {
                sizes: sizes.throughput,
                streams: &streams,
            });
            println!("{}: {mops:.2} Mops/s on {threads} thread(s)", kind.name());
        }
        ("macro", _) => {
            let result = macro_overhead::measure(sizes.macro_overhead);
            println!(
                "#[cached] hit {:.1} ns, Cache::get {:.1} ns",
                result.macro_ns, result.cache_get_ns
            );
        }
        ("shapes", _) => {
            for shape in key_shapes::measure(sizes.key_shapes) {
                println!(
                    "{}: #[cached] hit {:.1} ns, quick_cache get {:.1} ns, cached #[cached] {:.1} ns",
                    shape.shape, shape.memokit_ns, shape.quick_cache_ns, shape.cached_ns
                );
            }
        }
        ("shared", _) => {
            let result = shared_tier::measure(sizes.shared)?;
            for deployment in std::iter::once(&result.server).chain(result.cluster.as_ref().ok()) {
                println!(
                    "{}: plain GET {:.1} µs, L2 hit {:.1} µs ({:.2}×), L2 miss {:.1} µs, \
                     invalidation p50 {:.0} µs, p99 {:.0} µs",
                    deployment.name,
                    deployment.get_us,
                    deployment.l2_hit_us,
                    deployment.ratio(),
                    deployment.l2_miss_us,
                    deployment.invalidation_p50_us,
                    deployment.invalidation_p99_us,
                );
            }
            if let Err(why) = &result.cluster {
                println!("cluster: skipped: {why}");
            }
        }
        ("disk", _) => {
            let mut disk = sizes.disk;
            disk.open_entries = open_entries.unwrap_or(disk.open_entries);
            let r = disk_tier::measure(disk)?;
            println!("{}", disk_tier::summary(&r, disk));
        }
        ("coalescing", _) => {
            let mut coalescing = sizes.coalescing;
            coalescing.runs = runs.unwrap_or(coalescing.runs);
            println!("{}", coalescing::FutureSizes::measure());
            for result in coalescing::run_matching(coalescing, &only) {
                let after: Vec<String> = result
                    .runs
                    .iter()
                    .map(|r| format!("{:.3}", r.after_load.as_secs_f64() * 1e3))
                    .collect();
                println!(
                    "{:<42} {:<16} loads ≤ {}  load end → all served, ms: median {:.3} max {:.3}  [{}]",
                    result.name,
                    result.callers,
                    result.max_loads(),
                    result.median(|r| r.after_load).as_secs_f64() * 1e3,
                    result.max(|r| r.after_load).as_secs_f64() * 1e3,
                    after.join(" ")
                );
            }
        }
        (other, _) => {
            return Err(format!(
                "one {other}: latency, throughput, macro, shapes, shared, disk or coalescing"
            )
            .into())
        }
    }
    Ok(())
}

/// The child process of the memory measurement: `memory NAME [--entries N]`.
fn memory(args: &[String]) -> Result<(), Box<dyn Error>> {
    let name = args.first().ok_or("memory needs a contender name")?;
    let kind = Kind::from_slug(name).ok_or_else(|| format!("no contender named {name}"))?;
    let entries = match args.get(1..) {
        Some([flag, n]) if flag == "--entries" => n.parse()?,
        Some([]) => 1_000_000,
        _ => return Err("usage: memory NAME [--entries N]".into()),
    };
    let result = kind.measure(FillMemory { entries })?;
    println!("{}", result.to_line());
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("report") => report(&args[1..]),
        Some("hit-ratio") => hit_ratio_table(&args[1..]),
        Some("memory") => memory(&args[1..]),
        Some("one") => one(&args[1..]),
        // The child processes of the disk measurement.
        Some("disk-child") => disk_tier::child_main(&args[1..]).map_err(Into::into),
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(USAGE.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
