//! The SVG plots of [`Results`], drawn with [`plots`](crate::plots).

use std::collections::BTreeMap;
use std::error::Error;
use std::path::Path;

use crate::contenders::Kind;
use crate::hit_rows::{Family, Row};
use crate::plots::{self, color_of, Line, Panel};

use super::Results;

/// The panel a hit-ratio row is drawn in: one per workload, the loops (one capacity each)
/// together.
fn panel_of(row: &Row) -> String {
    match row.family {
        Family::Loop => "loop (10% over capacity)".to_string(),
        _ => row.workload.clone(),
    }
}

fn hit_ratio_panels(results: &Results, family: &[Family]) -> Vec<Panel> {
    let mut order: Vec<String> = Vec::new();
    let mut by_panel: BTreeMap<String, Vec<&Row>> = BTreeMap::new();
    for row in results
        .hit_rows
        .iter()
        .filter(|r| family.contains(&r.family))
    {
        let name = panel_of(row);
        if !order.contains(&name) {
            order.push(name.clone());
        }
        by_panel.entry(name).or_default().push(row);
    }
    order
        .into_iter()
        .map(|title| {
            let rows = &by_panel[&title];
            let mut lines: Vec<Line> = results
                .kinds
                .iter()
                .enumerate()
                .map(|(i, &kind)| Line {
                    name: kind.name().to_string(),
                    color: color_of(kind),
                    bold: kind == Kind::REFERENCE,
                    points: rows
                        .iter()
                        .map(|r| (r.capacity as f64, r.ratios[i] * 100.0))
                        .collect(),
                })
                .collect();
            lines.push(Line {
                name: "Bélády (optimum)".to_string(),
                color: plotters::style::RGBColor(0, 0, 0),
                bold: false,
                points: rows
                    .iter()
                    .map(|r| (r.capacity as f64, r.belady * 100.0))
                    .collect(),
            });
            Panel { title, lines }
        })
        .collect()
}

/// Writes every SVG into `out`.
pub fn write_plots(results: &Results, out: &Path) -> Result<(), Box<dyn Error>> {
    let bars =
        |values: &dyn Fn(Kind) -> Option<f64>| -> Vec<(String, f64, plotters::style::RGBColor)> {
            results
                .kinds
                .iter()
                .filter_map(|&k| Some((k.name().to_string(), values(k)?, color_of(k))))
                .collect()
        };
    plots::bar_chart(
        &out.join("latency.svg"),
        "Hit latency, 1 thread, full cache (ns per get, lower is better)",
        "ns per get",
        &bars(&|k| results.latency_of(k)),
    )?;
    plots::bar_chart(
        &out.join("memory.svg"),
        "Memory (bytes per u64 -> u64 entry, lower is better)",
        "bytes per entry",
        &bars(&|k| results.bytes_of(k)),
    )?;
    let lines: Vec<Line> = results
        .kinds
        .iter()
        .map(|&kind| Line {
            name: kind.name().to_string(),
            color: color_of(kind),
            bold: kind == Kind::REFERENCE,
            points: results
                .throughput
                .iter()
                .filter_map(|(t, _)| Some((*t as f64, results.throughput_of(kind, *t)?)))
                .collect(),
        })
        .collect();
    plots::throughput_chart(
        &out.join("throughput.svg"),
        "Throughput, Zipf(1.0), 90% get / 10% insert",
        &lines,
    )?;
    let groups: [(&str, &str, &[Family]); 3] = [
        (
            "hit_ratio_synthetic.svg",
            "Hit ratio, synthetic workloads",
            &[Family::Zipf, Family::ScanMixed, Family::Loop],
        ),
        (
            "hit_ratio_traces.svg",
            "Hit ratio, traces",
            &[Family::Trace],
        ),
        (
            "hit_ratio_your_traces.svg",
            "Hit ratio, traces given with --trace",
            &[Family::UserTrace],
        ),
    ];
    for (file, title, families) in groups {
        let panels = hit_ratio_panels(results, families);
        if !panels.is_empty() {
            plots::hit_ratio_grid(&out.join(file), title, &panels)?;
        }
    }
    Ok(())
}
