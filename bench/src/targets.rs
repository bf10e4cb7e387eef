//! The targets, checked against one run's figures.

use crate::contenders::Kind;
use crate::hit_ratio::Row;

/// One target and how this run fared.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The target as stated.
    pub goal: String,
    /// Whether this run met it.
    pub met: bool,
    /// The figures it was judged on.
    pub measured: String,
}

/// "`value` is at most `bound` times `reference`", for figures where less is better.
pub fn at_most(goal: &str, value: f64, reference: f64, bound: f64, unit: &str) -> Target {
    let ratio = value / reference;
    Target {
        goal: goal.to_string(),
        met: ratio <= bound,
        measured: format!("{value:.1} vs {reference:.1} {unit}: {ratio:.2}×"),
    }
}

/// "`value` is at least `bound` times `reference`", for figures where more is better.
pub fn at_least(goal: &str, value: f64, reference: f64, bound: f64, unit: &str) -> Target {
    let ratio = value / reference;
    Target {
        goal: goal.to_string(),
        met: ratio >= bound,
        measured: format!("{value:.2} vs {reference:.2} {unit}: {ratio:.2}×"),
    }
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

/// Every row where [`Kind::REFERENCE`] is more than `tolerance` below the best contender that
/// is not memokit. `kinds` gives the order of each row's ratios.
pub fn hit_ratio_shortfalls(rows: &[Row], kinds: &[Kind], tolerance: f64) -> Vec<Shortfall> {
    shortfalls_of(Kind::REFERENCE, rows, kinds, tolerance)
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
    use crate::hit_ratio::Family;

    fn row(ratios: Vec<f64>) -> Row {
        Row {
            workload: "w".to_string(),
            family: Family::Zipf,
            capacity: 10,
            requests: 100,
            ratios,
            belady: 1.0,
        }
    }

    #[test]
    fn bounds_in_both_directions() {
        assert!(at_most("latency", 10.0, 10.0, 1.0, "ns").met);
        assert!(!at_most("latency", 10.1, 10.0, 1.0, "ns").met);
        assert!(at_most("latency", 5.0, 10.0, 0.5, "ns").met);
        assert!(at_least("throughput", 20.0, 10.0, 2.0, "Mops/s").met);
        assert!(!at_least("throughput", 19.9, 10.0, 2.0, "Mops/s").met);
        assert_eq!(
            at_most("x", 12.0, 10.0, 1.0, "ns").measured,
            "12.0 vs 10.0 ns: 1.20×"
        );
    }

    #[test]
    fn shortfalls_compare_with_the_best_peer_only() {
        let kinds = [
            Kind::MemokitWTinyLfu,
            Kind::MemokitLru,
            Kind::MokaSync,
            Kind::Lru,
        ];
        let rows = [
            // memokit LRU is far better, but it is not a peer; the best peer is 0.4 points up.
            row(vec![0.500, 0.900, 0.504, 0.300]),
            // lru is 0.6 points up.
            row(vec![0.500, 0.100, 0.200, 0.506]),
        ];
        let shortfalls = hit_ratio_shortfalls(&rows, &kinds, 0.005);
        assert_eq!(shortfalls.len(), 1);
        assert_eq!(shortfalls[0].best_peer, Kind::Lru);
        assert!((shortfalls[0].points() - 0.6).abs() < 1e-9);
    }
}
