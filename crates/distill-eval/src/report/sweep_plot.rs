//! The sweep plot: every point's accuracy against its size (or latency), the Pareto front drawn
//! through the points no other point beats on both, the teacher as a dashed line and the
//! baselines as crosses.

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use super::plots::{role_color, svg, DrawResult, FONT, GREY};
use super::ReportError;

/// One point of a sweep as the plot shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepPlotPoint {
    /// x: parameters or p95 latency (ms); > 0 (log scale).
    pub x: f64,
    /// The student's accuracy on the split that ranks points.
    pub accuracy: f64,
    /// The baseline's accuracy at the same point, when one was trained.
    pub baseline: Option<f64>,
    pub on_front: bool,
}

/// What the plot draws: its points, the axis name, the teacher's accuracy.
#[derive(Debug, Clone)]
pub struct SweepPlot<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub points: &'a [SweepPlotPoint],
    pub teacher: Option<f64>,
}

/// Renders the plot as SVG text.
pub fn render_sweep_plot(plot: &SweepPlot) -> Result<String, ReportError> {
    draw(plot).map_err(|e| ReportError::Plot { plot: plot.title.to_string(), message: e.to_string() })
}

fn draw(plot: &SweepPlot) -> DrawResult<String> {
    let xs: Vec<f64> = plot.points.iter().map(|p| p.x).filter(|x| *x > 0.0 && x.is_finite()).collect();
    let (lo, hi) = xs.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    let (lo, hi) = if xs.is_empty() { (1.0, 10.0) } else { (lo / 1.5, hi * 1.5) };
    let ys = plot.points.iter().flat_map(|p| [Some(p.accuracy), p.baseline]).flatten().chain(plot.teacher);
    let (y_lo, y_hi) = ys.fold((1.0f64, 0.0f64), |(a, b), y| (a.min(y), b.max(y)));
    let pad = ((y_hi - y_lo) * 0.1).max(0.01);
    let (y_lo, y_hi) = ((y_lo - pad).max(0.0), (y_hi + pad).min(1.0));
    svg((760, 460), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(plot.title, (FONT, 22))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d((lo..hi).log_scale(), y_lo..y_hi)?;
        chart
            .configure_mesh()
            .x_desc(plot.x_label)
            .y_desc(plot.y_label)
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .light_line_style(WHITE)
            .x_labels(8)
            .x_label_formatter(&|v| if *v >= 10.0 { format!("{v:.0}") } else { format!("{v:.2}") })
            .y_label_formatter(&|v| format!("{v:.2}"))
            .draw()?;
        let student = role_color("student");
        if let Some(t) = plot.teacher {
            chart
                .draw_series(DashedLineSeries::new(vec![(lo, t), (hi, t)], 6, 4, role_color("teacher").stroke_width(2)))?
                .label("teacher")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], role_color("teacher")));
        }
        let mut front: Vec<(f64, f64)> = plot.points.iter().filter(|p| p.on_front).map(|p| (p.x, p.accuracy)).collect();
        front.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(front, student.stroke_width(2)))?
            .label("Pareto front")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], student.stroke_width(2)));
        chart
            .draw_series(
                plot.points.iter().map(|p| Circle::new((p.x, p.accuracy), 4, if p.on_front { student.filled() } else { student.mix(0.5).stroke_width(1) })),
            )?
            .label("student (distilled)")
            .legend(move |(x, y)| Circle::new((x + 9, y), 4, student.filled()));
        let baseline = role_color("baseline");
        if plot.points.iter().any(|p| p.baseline.is_some()) {
            chart
                .draw_series(plot.points.iter().filter_map(|p| Some(Cross::new((p.x, p.baseline?), 4, baseline.stroke_width(2)))))?
                .label("baseline (from scratch)")
                .legend(move |(x, y)| Cross::new((x + 9, y), 4, baseline.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(GREY)
            .label_font((FONT, 14))
            .position(SeriesLabelPosition::LowerRight)
            .draw()?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plot_has_the_points_the_front_and_the_teacher() {
        let points = [
            SweepPlotPoint { x: 100.0, accuracy: 0.8, baseline: Some(0.75), on_front: true },
            SweepPlotPoint { x: 1000.0, accuracy: 0.9, baseline: Some(0.88), on_front: true },
            SweepPlotPoint { x: 2000.0, accuracy: 0.85, baseline: None, on_front: false },
        ];
        let svg =
            render_sweep_plot(&SweepPlot { title: "t", x_label: "parameters", y_label: "validation accuracy", points: &points, teacher: Some(0.95) }).unwrap();
        assert!(svg.contains("Pareto front") && svg.contains("teacher") && svg.contains("baseline"));
        assert_eq!(svg.matches("<circle").count(), 3 + 1, "three points and the legend's");
    }
}
