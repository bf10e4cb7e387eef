//! Small helpers for the report's markdown: tables, numbers and ratios.

/// A markdown table; every row must have as many cells as `header`.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let line = |cells: &[&str]| format!("| {} |\n", cells.join(" | "));
    let mut out = line(header);
    out.push_str(&line(&vec!["---"; header.len()]));
    for row in rows {
        assert_eq!(
            row.len(),
            header.len(),
            "a row with the wrong number of cells"
        );
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        out.push_str(&line(&cells));
    }
    out
}

/// `value / reference`, or `None` when the reference is zero (or either is not finite).
pub fn ratio(value: f64, reference: f64) -> Option<f64> {
    let r = value / reference;
    (reference != 0.0 && r.is_finite()).then_some(r)
}

/// A ratio as `1.23×`, or `–` when there is none.
pub fn fmt_ratio(ratio: Option<f64>) -> String {
    match ratio {
        Some(r) if r >= 10.0 => format!("{r:.1}×"),
        Some(r) => format!("{r:.2}×"),
        None => "–".to_string(),
    }
}

/// A figure followed by its ratio to the reference: `12.3 (1.05×)`.
pub fn with_ratio(value: f64, reference: f64, decimals: usize) -> String {
    format!(
        "{value:.decimals$} ({})",
        fmt_ratio(ratio(value, reference))
    )
}

/// A share (0..=1) as a percentage with two decimals, without the sign: `12.34`.
pub fn percent(share: f64) -> String {
    format!("{:.2}", share * 100.0)
}

/// A share as [`percent`] does, followed by `±within` (a share too) when there is one:
/// `12.34 ±0.56`.
pub fn percent_within(share: f64, within: Option<f64>) -> String {
    match within {
        Some(w) => format!("{} ±{}", percent(share), percent(w)),
        None => percent(share),
    }
}

/// Met or missed, in bold when missed.
pub fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**missed**"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_have_a_header_rule_and_rows() {
        let rows = vec![vec!["a".to_string(), "1".to_string()]];
        assert_eq!(
            table(&["name", "n"], &rows),
            "| name | n |\n| --- | --- |\n| a | 1 |\n"
        );
    }

    #[test]
    #[should_panic(expected = "wrong number of cells")]
    fn tables_reject_ragged_rows() {
        table(&["a", "b"], &[vec!["x".to_string()]]);
    }

    #[test]
    fn ratios_and_their_format() {
        assert_eq!(ratio(3.0, 2.0), Some(1.5));
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(0.0, 0.0), None);
        assert_eq!(fmt_ratio(Some(1.5)), "1.50×");
        assert_eq!(fmt_ratio(Some(12.345)), "12.3×");
        assert_eq!(fmt_ratio(None), "–");
        assert_eq!(with_ratio(25.0, 20.0, 1), "25.0 (1.25×)");
        assert_eq!(with_ratio(5.0, 0.0, 0), "5 (–)");
        assert_eq!(percent(0.12345), "12.35");
        assert_eq!(percent_within(0.5, Some(0.0123)), "50.00 ±1.23");
        assert_eq!(percent_within(0.5, None), "50.00");
        assert_eq!(verdict(false), "**missed**");
    }
}
