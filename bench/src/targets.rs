//! The targets, checked against one run's figures.

use crate::contenders::Kind;
use crate::hit_rows::{shortfalls_of, Row, Shortfall};

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

/// Every row where [`Kind::REFERENCE`] is more than `tolerance` below the best contender that
/// is not memokit. `kinds` gives the order of each row's ratios.
pub fn hit_ratio_shortfalls(rows: &[Row], kinds: &[Kind], tolerance: f64) -> Vec<Shortfall> {
    shortfalls_of(Kind::REFERENCE, rows, kinds, tolerance)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hit_rows::Family;

    fn row(ratios: Vec<f64>) -> Row {
        let runs = ratios.into_iter().map(|r| vec![r]).collect();
        Row::from_runs("w".to_string(), Family::Zipf, 10, 100, runs, 1.0)
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
