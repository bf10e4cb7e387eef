//! SVG plots of the report (plotters): hit ratio against capacity per workload, throughput per
//! thread count, and bars per contender.

use std::error::Error;
use std::path::Path;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use crate::contenders::Kind;

/// The colour of each contender: memokit in reds, the peers in other hues.
pub fn color_of(kind: Kind) -> RGBColor {
    match kind {
        Kind::MemokitWTinyLfu => RGBColor(214, 39, 40),
        Kind::MemokitS3Fifo => RGBColor(23, 190, 207),
        Kind::MemokitLru => RGBColor(255, 152, 150),
        Kind::MemokitLfu => RGBColor(227, 119, 194),
        Kind::MemokitFifo => RGBColor(188, 189, 34),
        Kind::MemokitS3FifoTinyLfu => RGBColor(255, 127, 14),
        Kind::QuickCache => RGBColor(31, 119, 180),
        Kind::MokaSync => RGBColor(44, 160, 44),
        Kind::MokaFuture => RGBColor(152, 223, 138),
        Kind::MiniMoka => RGBColor(148, 103, 189),
        Kind::CachedLru => RGBColor(140, 86, 75),
        Kind::Lru => RGBColor(127, 127, 127),
    }
}

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Line {
    /// Its legend.
    pub name: String,
    /// Its colour.
    pub color: RGBColor,
    /// Drawn thicker (memokit's default).
    pub bold: bool,
    /// The points, in x order.
    pub points: Vec<(f64, f64)>,
}

/// One panel of a grid.
#[derive(Debug, Clone)]
pub struct Panel {
    /// Its caption.
    pub title: String,
    /// Its lines.
    pub lines: Vec<Line>,
}

const FONT: &str = "sans-serif";

fn style(line: &Line) -> ShapeStyle {
    ShapeStyle {
        color: line.color.to_rgba(),
        filled: false,
        stroke_width: if line.bold { 3 } else { 1 },
    }
}

/// Hit ratio (%) against capacity (log scale), one panel per workload, and a last cell with the
/// legend (taken from the first panel's lines).
pub fn hit_ratio_grid(path: &Path, title: &str, panels: &[Panel]) -> Result<(), Box<dyn Error>> {
    let cells_needed = panels.len() + 1;
    let cols = cells_needed.clamp(1, 4);
    let rows = cells_needed.div_ceil(cols);
    let root =
        SVGBackend::new(path, (cols as u32 * 330, rows as u32 * 260 + 40)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, (FONT, 22))?;
    let cells = root.split_evenly((rows, cols));
    for (cell, panel) in cells.iter().zip(panels) {
        let xs = panel
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.0));
        let (lo, hi) = xs.fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(x), hi.max(x)));
        let (lo, hi) = if lo <= hi { (lo, hi) } else { (1.0, 10.0) };
        let mut chart = ChartBuilder::on(cell)
            .caption(&panel.title, (FONT, 15))
            .margin(6)
            .x_label_area_size(28)
            .y_label_area_size(34)
            .build_cartesian_2d((lo * 0.8..hi * 1.25).log_scale(), 0.0..100.0)?;
        chart
            .configure_mesh()
            .x_labels(4)
            .y_labels(6)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .x_desc("capacity")
            .y_desc("hit %")
            .label_style((FONT, 11))
            .draw()?;
        // In reverse, so that the first line (memokit's default) is drawn on top.
        for line in panel.lines.iter().rev() {
            chart.draw_series(LineSeries::new(line.points.iter().copied(), style(line)))?;
            chart.draw_series(
                line.points
                    .iter()
                    .map(|&p| Circle::new(p, 2, style(line).filled())),
            )?;
        }
    }
    if let (Some(cell), Some(first)) = (cells.get(panels.len()), panels.first()) {
        legend(cell, &first.lines)?;
    }
    root.present()?;
    Ok(())
}

/// A legend: a short stroke and the name of each line.
fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    lines: &[Line],
) -> Result<(), Box<dyn Error>>
where
    DB::ErrorType: 'static,
{
    for (i, line) in lines.iter().enumerate() {
        let y = 20 + i as i32 * 18;
        let stroke = ShapeStyle {
            stroke_width: 3,
            ..style(line)
        };
        area.draw(&PathElement::new(vec![(10, y), (34, y)], stroke))?;
        area.draw(&Text::new(line.name.clone(), (40, y - 6), (FONT, 12)))?;
    }
    Ok(())
}

/// Million operations per second against threads, one line per contender, legend beside.
pub fn throughput_chart(path: &Path, title: &str, lines: &[Line]) -> Result<(), Box<dyn Error>> {
    let root = SVGBackend::new(path, (820, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let (plot, side) = root.split_horizontally(580);
    let max_x = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let max_y = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, (FONT, 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(45)
        .build_cartesian_2d(0.8..max_x + 0.2, 0.0..max_y * 1.1)?;
    chart
        .configure_mesh()
        .x_labels(max_x as usize)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .x_desc("threads")
        .y_desc("Mops/s")
        .draw()?;
    for line in lines.iter().rev() {
        chart.draw_series(LineSeries::new(line.points.iter().copied(), style(line)))?;
        chart.draw_series(
            line.points
                .iter()
                .map(|&p| Circle::new(p, 3, style(line).filled())),
        )?;
    }
    legend(&side.margin(40, 0, 0, 0), lines)?;
    root.present()?;
    Ok(())
}

/// One horizontal bar per entry `(name, value, colour)`, top to bottom in the order given,
/// with its value written beside it.
pub fn bar_chart(
    path: &Path,
    title: &str,
    unit: &str,
    bars: &[(String, f64, RGBColor)],
) -> Result<(), Box<dyn Error>> {
    let n = bars.len() as i32;
    let root = SVGBackend::new(path, (820, 80 + 32 * n.max(1) as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let max = bars
        .iter()
        .map(|b| b.1)
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE);
    // Segment 0 is at the bottom: bar `i` goes to segment `n - 1 - i`.
    let names: Vec<String> = bars.iter().rev().map(|b| b.0.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(200)
        .build_cartesian_2d(0.0..max * 1.18, (0..n).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(bars.len())
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => names.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc(unit)
        .draw()?;
    chart.draw_series(bars.iter().enumerate().map(|(i, (_, value, color))| {
        let segment = n - 1 - i as i32;
        let mut bar = Rectangle::new(
            [
                (0.0, SegmentValue::Exact(segment)),
                (*value, SegmentValue::Exact(segment + 1)),
            ],
            color.filled(),
        );
        bar.set_margin(4, 4, 0, 0);
        bar
    }))?;
    chart.draw_series(bars.iter().enumerate().map(|(i, (_, value, _))| {
        let segment = n - 1 - i as i32;
        Text::new(
            format!(" {value:.1}"),
            (*value, SegmentValue::CenterOf(segment)),
            (FONT, 12),
        )
    }))?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_written_as_svg() {
        let dir = std::env::temp_dir().join(format!("memokit-bench-plots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let line = |kind: Kind, y: f64| Line {
            name: kind.name().to_string(),
            color: color_of(kind),
            bold: kind == Kind::REFERENCE,
            points: vec![(10.0, y), (100.0, y + 10.0)],
        };
        let panel = Panel {
            title: "zipf(1.0)".to_string(),
            lines: vec![line(Kind::MemokitWTinyLfu, 50.0), line(Kind::Lru, 40.0)],
        };
        hit_ratio_grid(&dir.join("grid.svg"), "hit ratio", &[panel]).unwrap();
        throughput_chart(&dir.join("tp.svg"), "throughput", &[line(Kind::Lru, 5.0)]).unwrap();
        bar_chart(
            &dir.join("bars.svg"),
            "latency",
            "ns",
            &[("lru".to_string(), 12.5, color_of(Kind::Lru))],
        )
        .unwrap();
        for file in ["grid.svg", "tp.svg", "bars.svg"] {
            let svg = std::fs::read_to_string(dir.join(file)).unwrap();
            assert!(svg.starts_with("<svg"), "{file}");
        }
        let grid = std::fs::read_to_string(dir.join("grid.svg")).unwrap();
        assert!(grid.contains("zipf(1.0)") && grid.contains("lru+Mutex"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
