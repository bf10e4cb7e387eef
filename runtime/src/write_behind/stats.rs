//! [`WriteBehindStats`]: a buffer's counters.

use std::fmt;

/// Counters of a [`WriteBehind`](super::WriteBehind), from [`WriteBehind::stats`](super::WriteBehind::stats).
///
/// Every accepted write is, at any time, exactly one of: coalesced (replaced while queued),
/// flushed, failed, or pending, so `queued == coalesced + flushed + failed + pending`.
///
/// ```
/// let stats = memokit::write_behind::WriteBehindStats::default();
/// assert_eq!(
///     stats.to_string(),
///     "queued=0 coalesced=0 flushed=0 batches=0 retried=0 failed=0 pending=0"
/// );
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteBehindStats {
    /// Writes accepted (including coalesced ones).
    pub queued: u64,
    /// Writes that replaced a value still queued for their key (the sink never sees the
    /// replaced value).
    pub coalesced: u64,
    /// Entries delivered: in batches the sink accepted.
    pub flushed: u64,
    /// Batches the sink accepted.
    pub batches: u64,
    /// Sink calls that were repeats of a failed call.
    pub retried: u64,
    /// Entries given up after the last retry (handed to `on_failure`, if set).
    pub failed: u64,
    /// Entries queued or being delivered now.
    pub pending: u64,
    /// Calls of `on_failure` that panicked (caught: the buffer goes on). Shown by `Display`
    /// once non-zero.
    pub on_failure_panics: u64,
}

impl fmt::Display for WriteBehindStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "queued={} coalesced={} flushed={} batches={} retried={} failed={} pending={}",
            self.queued,
            self.coalesced,
            self.flushed,
            self.batches,
            self.retried,
            self.failed,
            self.pending
        )?;
        if self.on_failure_panics > 0 {
            write!(f, " on_failure_panics={}", self.on_failure_panics)?;
        }
        Ok(())
    }
}
