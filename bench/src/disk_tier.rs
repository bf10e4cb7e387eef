//! The disk tier (`#[cached(disk)]`), on one thread, against the `cached` crate's disk store
//! (`RedbCache`, its feature `redb_store`; `DiskCache` of older versions), with a value of about
//! 100 bytes whose computation takes 50 µs:
//!
//! - a **memory hit** of the `#[cached(disk)]` function (the key in the process);
//! - a **disk hit**: each timed call first drops its key from the in-process tier (a local
//!   `Cache::invalidate`, which leaves the file alone), so that the call reads the file; the
//!   `disk_hits` counter is checked to have grown by the number of calls;
//! - a **recompute**: the 50 µs body called directly;
//! - **writes per second**: `insert` of fresh keys through the function's handle, one redb
//!   transaction each (durable every `flush_every`, 100 ms);
//! - **bytes on disk per entry** and the **time to open** a file of `open_entries` entries:
//!   each filled by a child process that then exits without closing anything (as a service
//!   killed or stopped does), and opened by another child, which times `memokit::disk::open`
//!   and its first disk hit.
//!
//! The `cached` crate's store gets the same: `cache_get` of stored keys (it has no in-process
//! tier), `cache_set` of fresh keys (`durable(false)`, the closest to the tier's commits),
//! its file's bytes per entry and the time to build it on a file filled (and dropped) by a
//! child. foyer is not measured: its hybrid cache is async-only and keeps its own
//! block-device format with no expiry across restarts; it is not the same kind of store, and
//! its large dependency tree would be carried for one row.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cached::ConcurrentCached;

use crate::latency::best_latency;

/// The cost of one computation.
pub const COMPUTE: Duration = Duration::from_micros(50);

/// The body: 50 µs of work, then a value of about 100 bytes.
pub fn compute(key: u64) -> String {
    let started = Instant::now();
    while started.elapsed() < COMPUTE {
        std::hint::spin_loop();
    }
    value(key)
}

fn value(key: u64) -> String {
    format!("{key:020}:{}", "x".repeat(79))
}

/// The function measured; its file is the one the bench opens first.
#[memokit::cached(size = 1_000_000, disk, name = "bench.disk")]
pub fn disk_payload(key: u64) -> String {
    compute(key)
}

/// The function the child processes fill and open (small in memory: the file holds it all).
#[memokit::cached(size = 1_000, disk, name = "bench.disk_fill")]
pub fn fill_payload(key: u64) -> String {
    value(key)
}

/// The measurement's sizes.
#[derive(Debug, Clone, Copy)]
pub struct DiskSizes {
    /// Keys timed per round and way, and fresh keys written for the writes per second.
    pub keys: usize,
    /// Rounds per way, alternating; the best of each way is reported.
    pub rounds: usize,
    /// Entries of the file whose size and opening are measured.
    pub open_entries: usize,
}

/// The figures of one store.
#[derive(Debug, Clone, PartialEq)]
pub struct Store {
    /// A hit in the file, µs (with memokit, the in-process copy dropped first).
    pub disk_hit_us: f64,
    /// Fresh keys written, one transaction each, per second.
    pub writes_per_sec: f64,
    /// Bytes of the file of `open_entries` entries, per entry.
    pub bytes_per_entry: f64,
    /// Time to fill that file (in its child), s.
    pub fill_s: f64,
    /// Time to open it in a fresh process, ms.
    pub open_ms: f64,
}

/// What [`measure`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskResult {
    /// The 50 µs body called directly, µs.
    pub compute_us: f64,
    /// A `#[cached(disk)]` call that finds its key in the process, µs.
    pub memory_hit_us: f64,
    /// memokit's disk tier.
    pub memokit: Store,
    /// Disk hits counted during memokit's timed disk-hit rounds, and the calls timed.
    pub disk_hits: u64,
    /// Calls timed in those rounds.
    pub calls: u64,
    /// The `cached` crate's `RedbCache`, or why it was not measured.
    pub cached: Result<Store, String>,
    /// Bytes of one encoded value (memokit's codec).
    pub value_bytes: usize,
}

impl DiskResult {
    /// Disk hit over memory hit.
    pub fn disk_over_memory(&self) -> f64 {
        self.memokit.disk_hit_us / self.memory_hit_us
    }

    /// Recompute over disk hit: how many times faster the file is than the computation.
    pub fn compute_over_disk(&self) -> f64 {
        self.compute_us / self.memokit.disk_hit_us
    }
}

/// A fresh folder for the run's files.
fn folder() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("memokit-bench-disk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs every measurement; the files are removed at the end.
pub fn measure(sizes: DiskSizes) -> Result<DiskResult, String> {
    let dir = folder();
    let result = measure_in(&dir, sizes);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn measure_in(dir: &Path, sizes: DiskSizes) -> Result<DiskResult, String> {
    memokit::disk::open(memokit::disk::Config::new(dir.join("timed.redb")))
        .map_err(|e| e.to_string())?;
    let memo = disk_payload_cache();
    let keys: Vec<u64> = (0..sizes.keys as u64).collect();
    for &key in &keys {
        black_box(disk_payload(key));
    }
    let hits_before = memo.stats().disk_hits;
    let (mut memory, mut disk, mut recompute) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..=sizes.rounds {
        let m = per_call(&keys, |key| {
            black_box(disk_payload(key));
        });
        let d = per_call(&keys, |key| {
            memo.cache().invalidate(&key);
            black_box(disk_payload(key));
        });
        let c = per_call(&keys, |key| {
            black_box(compute(key));
        });
        // The first round warms up.
        if round > 0 {
            memory.push(m);
            disk.push(d);
            recompute.push(c);
        }
    }
    let disk_hits = memo.stats().disk_hits - hits_before;
    let calls = (sizes.keys * (sizes.rounds + 1)) as u64;
    let fresh = sizes.keys as u64;
    let started = Instant::now();
    for key in fresh..2 * fresh {
        memo.insert(key, value(key));
    }
    let writes_per_sec = fresh as f64 / started.elapsed().as_secs_f64();
    let (fill_s, bytes_per_entry, open_ms) = file_figures(dir, "memokit", sizes.open_entries)?;
    let memokit = Store {
        disk_hit_us: best_latency(&disk),
        writes_per_sec,
        bytes_per_entry,
        fill_s,
        open_ms,
    };
    let cached = measure_cached(dir, sizes);
    Ok(DiskResult {
        compute_us: best_latency(&recompute),
        memory_hit_us: best_latency(&memory),
        memokit,
        disk_hits,
        calls,
        cached,
        value_bytes: memokit_value_bytes(),
    })
}

fn memokit_value_bytes() -> usize {
    // postcard's length prefix, the string, and the codec's header (version, fingerprint).
    value(0).len() + 1 + 9
}

/// µs per call of `call` over `keys`.
fn per_call(keys: &[u64], mut call: impl FnMut(u64)) -> f64 {
    let started = Instant::now();
    for &key in keys {
        call(key);
    }
    started.elapsed().as_secs_f64() * 1e6 / keys.len() as f64
}

/// The `cached` crate's store: hits, writes, then its file's figures.
fn measure_cached(dir: &Path, sizes: DiskSizes) -> Result<Store, String> {
    let store = cached_store(&dir.join("cached-timed"))?;
    let keys: Vec<u64> = (0..sizes.keys as u64).collect();
    for &key in &keys {
        store
            .cache_set(key, value(key))
            .map_err(|e| e.to_string())?;
    }
    let mut hits = Vec::new();
    for round in 0..=sizes.rounds {
        let h = per_call(&keys, |key| {
            black_box(store.cache_get(&key).ok().flatten().expect("stored"));
        });
        if round > 0 {
            hits.push(h);
        }
    }
    let fresh = sizes.keys as u64;
    let started = Instant::now();
    for key in fresh..2 * fresh {
        store
            .cache_set(key, value(key))
            .map_err(|e| e.to_string())?;
    }
    let writes_per_sec = fresh as f64 / started.elapsed().as_secs_f64();
    drop(store);
    let (fill_s, bytes_per_entry, open_ms) = file_figures(dir, "cached", sizes.open_entries)?;
    Ok(Store {
        disk_hit_us: best_latency(&hits),
        writes_per_sec,
        bytes_per_entry,
        fill_s,
        open_ms,
    })
}

fn cached_store(dir: &Path) -> Result<cached::RedbCache<u64, String>, String> {
    cached::RedbCache::builder("bench")
        .disk_dir(dir)
        .durable(false)
        .build()
        .map_err(|e| e.to_string())
}

/// Fills a file of `entries` in one child process, opens it in another: the fill's seconds,
/// the file's bytes per entry, and the open's milliseconds.
fn file_figures(dir: &Path, store: &str, entries: usize) -> Result<(f64, f64, f64), String> {
    let path = dir.join(format!("{store}-open"));
    let fill = child(&[
        "fill",
        store,
        &path.display().to_string(),
        &entries.to_string(),
    ])?;
    let fill_s: f64 = fill.parse().map_err(|_| format!("fill printed {fill:?}"))?;
    let bytes = size_of_path(&path);
    let open = child(&[
        "open",
        store,
        &path.display().to_string(),
        &entries.to_string(),
    ])?;
    let open_ms: f64 = open.parse().map_err(|_| format!("open printed {open:?}"))?;
    Ok((fill_s, bytes as f64 / entries as f64, open_ms))
}

/// The bytes of a file, or of every file under a folder.
fn size_of_path(path: &Path) -> u64 {
    match std::fs::read_dir(path) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|entry| size_of_path(&entry.path()))
            .sum(),
        Err(_) => std::fs::metadata(path).map_or(0, |m| m.len()),
    }
}

/// Runs `memokit-bench disk-child ARGS` and returns the last line it printed.
fn child(args: &[&str]) -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let output = Command::new(exe)
        .arg("disk-child")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(format!(
            "disk-child {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let out = String::from_utf8_lossy(&output.stdout);
    Ok(out.lines().last().unwrap_or_default().trim().to_string())
}

/// The child processes: `fill STORE PATH N` writes N entries in batches of 1,000 (one
/// transaction each; for the `cached` crate, which has no batch, one each) and prints the
/// seconds it took; `open STORE PATH N` opens the file and reads one entry, and prints the
/// milliseconds.
pub fn child_main(args: &[String]) -> Result<(), String> {
    let [what, store, path, entries] = args else {
        return Err("usage: disk-child fill|open memokit|cached PATH ENTRIES".into());
    };
    let entries: u64 = entries.parse().map_err(|_| "ENTRIES: a number")?;
    let path = PathBuf::from(path);
    let started = Instant::now();
    match (what.as_str(), store.as_str()) {
        ("fill", "memokit") => {
            open_memokit(&path)?;
            let memo = fill_payload_cache();
            for start in (0..entries).step_by(1_000) {
                let batch: Vec<(u64, String)> = (start..(start + 1_000).min(entries))
                    .map(|key| (key, value(key)))
                    .collect();
                memo.insert_many(batch);
            }
            memokit::disk::flush().map_err(|e| e.to_string())?;
            println!("{}", started.elapsed().as_secs_f64());
        }
        ("open", "memokit") => {
            open_memokit(&path)?;
            let opened = started.elapsed();
            let key = entries / 2;
            if fill_payload(key) != value(key) || fill_payload_cache().stats().disk_hits != 1 {
                return Err("the opened file did not serve its entry".into());
            }
            eprintln!("first disk hit after {:?}", started.elapsed());
            println!("{}", opened.as_secs_f64() * 1e3);
        }
        ("fill", "cached") => {
            let store = cached_store(&path)?;
            for key in 0..entries {
                store
                    .cache_set(key, value(key))
                    .map_err(|e| e.to_string())?;
            }
            store.flush().map_err(|e| e.to_string())?;
            println!("{}", started.elapsed().as_secs_f64());
        }
        ("open", "cached") => {
            let store = cached_store(&path)?;
            let opened = started.elapsed();
            let key = entries / 2;
            if store.cache_get(&key).ok().flatten() != Some(value(key)) {
                return Err("the opened store did not serve its entry".into());
            }
            println!("{}", opened.as_secs_f64() * 1e3);
        }
        _ => return Err("usage: disk-child fill|open memokit|cached PATH ENTRIES".into()),
    }
    Ok(())
}

fn open_memokit(path: &Path) -> Result<(), String> {
    memokit::disk::open(memokit::disk::Config::new(path)).map_err(|e| e.to_string())
}

/// The figures as lines of text (`one disk`, and the report's progress).
pub fn summary(r: &DiskResult, sizes: DiskSizes) -> String {
    let mut lines = vec![
        format!(
            "memory hit {:.2} µs, disk hit {:.2} µs ({:.1}× memory; {} disk hits of {} calls), \
             recompute {:.1} µs ({:.1}× the disk hit)",
            r.memory_hit_us,
            r.memokit.disk_hit_us,
            r.disk_over_memory(),
            r.disk_hits,
            r.calls,
            r.compute_us,
            r.compute_over_disk()
        ),
        store_line("memokit disk tier", &r.memokit, sizes),
    ];
    match &r.cached {
        Ok(store) => lines.push(store_line("cached RedbCache", store, sizes)),
        Err(why) => lines.push(format!("cached RedbCache: not measured: {why}")),
    }
    lines.join("\n")
}

fn store_line(name: &str, s: &Store, sizes: DiskSizes) -> String {
    format!(
        "{name}: hit {:.2} µs, {:.0} writes/s, {:.0} bytes on disk per entry, file of {} \
         entries filled in {:.1} s and opened in {:.1} ms",
        s.disk_hit_us, s.writes_per_sec, s.bytes_per_entry, sizes.open_entries, s.fill_s, s.open_ms
    )
}
