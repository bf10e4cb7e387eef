//! A warm restart: `report` is kept in a disk file (`#[cached(disk)]`), so a process started
//! again serves it from the file without computing it (see `examples/warm_restart.rs`).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use memokit::cached;

static COMPUTED: AtomicU64 = AtomicU64::new(0);

/// Stands in for an expensive computation: counted, so a run can say how many it did.
#[cached(size = 1_000, ttl = "1h", disk)]
pub fn report(day: u32) -> String {
    COMPUTED.fetch_add(1, SeqCst);
    format!("report of day {day}")
}

/// Opens the file at `path`, asks for the reports of days 1 to `days`, makes the file
/// durable, and returns how many were computed (the others came from the file).
pub fn run(path: &Path, days: u32) -> Result<u64, memokit::disk::Error> {
    memokit::disk::open(memokit::disk::Config::new(path))?;
    for day in 1..=days {
        assert_eq!(report(day), format!("report of day {day}"));
    }
    memokit::disk::flush()?;
    Ok(COMPUTED.load(SeqCst))
}
