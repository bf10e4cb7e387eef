//! Memory: resident set growth per entry for `u64 -> u64` entries, one contender per process.
//!
//! The report runs its own executable again as `memory NAME --entries N` for each contender, so
//! that no contender's freed memory (which the allocator keeps) is counted for another.

use std::error::Error;
use std::process::Command;

use crate::contenders::{Contender, Kind, Measure};

/// The resident set size of this process in bytes, from `/proc/self/statm`.
pub fn rss_bytes() -> Result<u64, Box<dyn Error>> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .ok_or("/proc/self/statm has no resident field")?
        .parse()?;
    Ok(pages * page_size())
}

/// The page size; 4 KiB unless `getconf` says otherwise.
fn page_size() -> u64 {
    Command::new("getconf")
        .arg("PAGESIZE")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(4096)
}

/// What one child process measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryResult {
    /// Entries inserted (and the capacity).
    pub entries: u64,
    /// Entries still present afterwards.
    pub resident: u64,
    /// RSS before the cache was built.
    pub rss_before: u64,
    /// RSS after it was built and filled.
    pub rss_after: u64,
}

impl MemoryResult {
    /// RSS growth per resident entry.
    pub fn bytes_per_entry(&self) -> f64 {
        self.rss_after.saturating_sub(self.rss_before) as f64 / self.resident.max(1) as f64
    }

    /// The line the child prints and the parent parses.
    pub fn to_line(&self) -> String {
        format!(
            "entries={} resident={} rss_before={} rss_after={}",
            self.entries, self.resident, self.rss_before, self.rss_after
        )
    }

    /// Parses [`to_line`](Self::to_line)'s output.
    pub fn from_line(line: &str) -> Option<MemoryResult> {
        let field = |name: &str| -> Option<u64> {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))?
                .parse()
                .ok()
        };
        Some(MemoryResult {
            entries: field("entries")?,
            resident: field("resident")?,
            rss_before: field("rss_before")?,
            rss_after: field("rss_after")?,
        })
    }
}

/// The capacity of the cache that pages the contender's code in before the measurement: small
/// enough that the memory it frees and the measured cache reuses is negligible (a few KB).
const WARM_UP_ENTRIES: u64 = 64;

/// Builds a cache of capacity `entries`, fills it, settles it; RSS before and after. Keys are
/// made on the fly, so nothing else is allocated in between.
#[derive(Debug, Clone, Copy)]
pub struct FillMemory {
    /// Entries to insert, and the capacity.
    pub entries: u64,
}

impl Measure for FillMemory {
    type Output = Result<MemoryResult, Box<dyn Error>>;

    fn measure<C: Contender>(self) -> Self::Output {
        // The contender's code is paged in by a small cache first (filled twice over, so that
        // eviction runs too): the executable's pages are resident once per process, not per
        // entry, and at 1M entries they would add about 0.8 bytes to every entry's figure.
        {
            let warm = C::with_capacity(WARM_UP_ENTRIES as usize);
            for key in 0..2 * WARM_UP_ENTRIES {
                warm.insert(key, key);
            }
            warm.settle();
            std::hint::black_box(warm.get(0));
        }
        let rss_before = rss_bytes()?;
        let cache = C::with_capacity(self.entries as usize);
        for key in 0..self.entries {
            cache.insert(key, key);
        }
        cache.settle();
        let rss_after = rss_bytes()?;
        let resident = (0..self.entries)
            .filter(|&key| cache.get(key).is_some())
            .count() as u64;
        std::hint::black_box(&cache);
        Ok(MemoryResult {
            entries: self.entries,
            resident,
            rss_before,
            rss_after,
        })
    }
}

/// Runs `memory SLUG --entries N` in a child process of this executable and parses its line.
pub fn measure_in_child(kind: Kind, entries: u64) -> Result<MemoryResult, Box<dyn Error>> {
    let exe = std::env::current_exe()?;
    let output = Command::new(exe)
        .args(["memory", kind.slug(), "--entries", &entries.to_string()])
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "memory {} failed ({}): {}",
            kind.slug(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    stdout
        .lines()
        .find_map(MemoryResult::from_line)
        .ok_or_else(|| format!("memory {}: no result in {stdout:?}", kind.slug()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_line_round_trips() {
        let result = MemoryResult {
            entries: 1_000,
            resident: 990,
            rss_before: 4096,
            rss_after: 4096 + 99_000,
        };
        assert_eq!(MemoryResult::from_line(&result.to_line()), Some(result));
        assert_eq!(result.bytes_per_entry(), 100.0);
        assert_eq!(MemoryResult::from_line("entries=1 resident=x"), None);
    }

    #[test]
    fn fill_keeps_every_entry_and_reads_rss() {
        // Only what does not depend on other tests' allocations running at the same time.
        let result = Kind::Lru.measure(FillMemory { entries: 20_000 }).unwrap();
        assert_eq!(result.resident, 20_000);
        assert!(result.rss_before > 0 && result.rss_after > 0, "{result:?}");
    }
}
