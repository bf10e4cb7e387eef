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
    /// [`hit_ratio::run`](crate::hit_ratio::run): the mean of its `runs`, the figure every
    /// table, summary and plot uses.
    pub ratios: Vec<f64>,
    /// Each contender's hit ratio in each of its replays, in the same order: one per seed for
    /// memokit's policies, one for the peers (which take no seed).
    pub runs: Vec<Vec<f64>>,
    /// Bélády's optimum at this capacity.
    pub belady: f64,
}

impl Row {
    /// A row from each contender's replays; its ratio is their mean (NaN without any).
    pub fn from_runs(
        workload: String,
        family: Family,
        capacity: usize,
        requests: usize,
        runs: Vec<Vec<f64>>,
        belady: f64,
    ) -> Row {
        Row {
            workload,
            family,
            capacity,
            requests,
            ratios: runs.iter().map(|r| mean(r)).collect(),
            runs,
            belady,
        }
    }

    /// How far the replays of the contender at `at` spread, when it ran more than once.
    pub fn spread(&self, at: usize) -> Option<Spread> {
        Spread::of(self.runs.get(at)?)
    }
}

/// The lowest and highest of several replays of one contender (or of a mean over rows taken
/// per seed), and their mean.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The lowest.
    pub low: f64,
    /// The highest.
    pub high: f64,
    /// The mean of all of them.
    pub mean: f64,
}

impl Spread {
    /// The spread of `runs`, or `None` for fewer than two (a single run has none to show).
    pub fn of(runs: &[f64]) -> Option<Spread> {
        (runs.len() > 1).then(|| Spread {
            low: runs.iter().copied().fold(f64::INFINITY, f64::min),
            high: runs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            mean: mean(runs),
        })
    }

    /// Highest minus lowest.
    pub fn width(&self) -> f64 {
        self.high - self.low
    }

    /// The largest distance of a run from the mean: every run lies within the mean ± this.
    pub fn within(&self) -> f64 {
        (self.mean - self.low).max(self.high - self.mean)
    }
}

/// The mean of `values` (NaN for none).
pub fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ratio_is_the_mean_of_its_runs_and_spreads_over_them() {
        let runs = vec![vec![0.25, 0.25, 1.0], vec![0.5], vec![]];
        let row = Row::from_runs("w".into(), Family::Zipf, 10, 100, runs, 1.0);
        assert_eq!(row.ratios[..2], [0.5, 0.5]);
        assert!(row.ratios[2].is_nan(), "no run, no figure");
        let spread = row.spread(0).expect("three runs");
        assert_eq!((spread.low, spread.high, spread.mean), (0.25, 1.0, 0.5));
        assert_eq!(spread.width(), 0.75);
        // 0.25 below the mean, 0.5 above it: every run is within ±0.5.
        assert_eq!(spread.within(), 0.5);
        assert_eq!(row.spread(1), None, "a single run has no spread");
        assert_eq!(row.spread(3), None, "no such contender");
    }
}
