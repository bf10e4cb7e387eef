//! The rows a hit-ratio replay produces, and how far a contender falls short of the best peer
//! on them: plain data, measured by [`hit_ratio`](crate::hit_ratio), judged by
//! [`targets`](crate::targets) and rendered by the [report](crate::report). A leaf: it imports
//! nothing of this crate but [`Kind`].

use crate::contenders::Kind;

/// Which family a row belongs to (plots and averages are per family).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// Zipf over the key space.
    Zipf,
    /// Zipf interrupted by long scans of new keys.
    ScanMixed,
    /// A loop slightly larger than the cache.
    Loop,
    /// One of the shared traces.
    Trace,
    /// A trace given with `--trace`.
    UserTrace,
}

impl Family {
    /// The family's name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Family::Zipf => "zipf",
            Family::ScanMixed => "scan-mixed",
            Family::Loop => "loop",
            Family::Trace => "traces",
            Family::UserTrace => "your traces",
        }
    }
}

/// One workload at one capacity: the hit ratio of every contender and Bélády's.
#[derive(Debug, Clone)]
pub struct Row {
    /// The workload, e.g. `zipf(1.0)` or a trace's file stem.
    pub workload: String,
    /// Its family.
    pub family: Family,
    /// Capacity in entries.
    pub capacity: usize,
    /// Requests replayed.
    pub requests: usize,
    /// Hit ratio (0..=1) of each contender measured, in the order of `kinds` given to
    /// [`hit_ratio::run`](crate::hit_ratio::run).
    pub ratios: Vec<f64>,
    /// Bélády's optimum at this capacity.
    pub belady: f64,
}

/// A row where the reference contender's hit ratio is more than `tolerance` (a share, e.g.
/// 0.005 for half a point) below the best peer's.
#[derive(Debug, Clone, PartialEq)]
pub struct Shortfall {
    /// Workload name.
    pub workload: String,
    /// Capacity.
    pub capacity: usize,
    /// The reference's hit ratio.
    pub reference: f64,
    /// The best peer.
    pub best_peer: Kind,
    /// Its hit ratio.
    pub best: f64,
}

impl Shortfall {
    /// How far below the best peer, in percentage points.
    pub fn points(&self) -> f64 {
        (self.best - self.reference) * 100.0
    }
}

/// Every row where `of` is more than `tolerance` below the best contender that is not
/// memokit (none if `of` was not measured). `kinds` gives the order of each row's ratios.
pub fn shortfalls_of(of: Kind, rows: &[Row], kinds: &[Kind], tolerance: f64) -> Vec<Shortfall> {
    let Some(reference_at) = kinds.iter().position(|&k| k == of) else {
        return Vec::new();
    };
    rows.iter()
        .filter_map(|row| {
            let reference = row.ratios[reference_at];
            let (best_peer, best) = kinds
                .iter()
                .zip(&row.ratios)
                .filter(|(kind, _)| !kind.is_memokit())
                .max_by(|a, b| a.1.total_cmp(b.1))?;
            (best - reference > tolerance).then(|| Shortfall {
                workload: row.workload.clone(),
                capacity: row.capacity,
                reference,
                best_peer: *best_peer,
                best: *best,
            })
        })
        .collect()
}
