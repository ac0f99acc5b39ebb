//! The sweep's report: `sweep.md` (every point, the fronts, the recommendation) and the two
//! plots (accuracy against parameters, and against p95 latency when it was measured).

use distill_eval::{render_sweep_plot, SweepPlot, SweepPlotPoint};

use super::summary::{Split, SweepSummary};
use crate::rundir::RunDir;
use crate::PipelineError;

fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{:.2}", v * 100.0)).unwrap_or_else(|| "-".into())
}

fn pct_std(v: f64, std: Option<f64>) -> String {
    match std {
        Some(s) => format!("{:.2} ± {:.2}", v * 100.0, s * 100.0),
        None => format!("{:.2}", v * 100.0),
    }
}

impl SweepSummary {
    /// Writes `sweep.md` and the SVG plots into the sweep's run directory.
    pub(crate) fn write_report(&self, dir: &RunDir) -> Result<(), PipelineError> {
        let mut plots = vec![("sweep-params.svg", "parameters", self.plot_points(|r| Some(r.params as f64), &self.front_params))];
        if !self.front_latency.is_empty() {
            plots.push(("sweep-latency.svg", "p95 latency (ms, batch 1)", self.plot_points(|r| r.latency_p95_ms, &self.front_latency)));
        }
        let teacher = match self.decided_on {
            Split::Validation => self.teacher_val_accuracy,
            Split::Test => self.teacher_accuracy,
        };
        let y_label = format!("{:?} accuracy", self.decided_on).to_lowercase();
        for (file, x_label, points) in &plots {
            let title = format!("{}: accuracy against {}", self.pipeline, x_label.split(' ').next().unwrap_or(x_label));
            let svg = render_sweep_plot(&SweepPlot { title: &title, x_label, y_label: &y_label, points, teacher })?;
            dir.write(file, svg.as_bytes())?;
        }
        dir.write("sweep.md", self.markdown(&plots.iter().map(|p| p.0).collect::<Vec<_>>()).as_bytes())?;
        Ok(())
    }

    fn plot_points(&self, x: impl Fn(&super::PointResult) -> Option<f64>, front: &[usize]) -> Vec<SweepPlotPoint> {
        let baseline = |r: &super::PointResult| if self.decided_on == Split::Validation { r.baseline_val_accuracy } else { r.baseline_accuracy };
        let accuracy = |r: &super::PointResult| if self.decided_on == Split::Validation { r.val_accuracy.unwrap_or(0.0) } else { r.accuracy };
        self.points
            .iter()
            .filter_map(|r| Some(SweepPlotPoint { x: x(r)?, accuracy: accuracy(r), baseline: baseline(r), on_front: front.contains(&r.index) }))
            .collect()
    }

    /// The sweep as Markdown.
    pub(crate) fn markdown(&self, plots: &[&str]) -> String {
        let mut out =
            format!("# Sweep `{}`\n\n{} points; ranked on the **{:?}** split, test metrics reported.\n\n", self.pipeline, self.points.len(), self.decided_on);
        if let (Some(acc), Some(params)) = (self.teacher_accuracy, self.teacher_params) {
            out += &format!("Teacher: test accuracy {:.2} %, validation {} %, {params} parameters.\n\n", acc * 100.0, pct(self.teacher_val_accuracy));
        }
        out +=
            "| # | keys | val acc % | test acc % | baseline test % | params | size B | p95 ms | front | targets |\n|---|---|---|---|---|---|---|---|---|---|\n";
        for r in &self.points {
            let front = match (self.front_params.contains(&r.index), self.front_latency.contains(&r.index)) {
                (true, true) => "size, latency",
                (true, false) => "size",
                (false, true) => "latency",
                (false, false) => "",
            };
            out += &format!(
                "| {} | `{}` | {} | {} | {} | {} | {} | {} | {front} | {} |\n",
                r.index,
                r.label,
                pct(r.val_accuracy),
                pct_std(r.accuracy, r.accuracy_std),
                r.baseline_accuracy.map(|b| pct_std(b, r.baseline_accuracy_std)).unwrap_or_else(|| "-".into()),
                r.params,
                r.size_bytes,
                r.latency_p95_ms.map(|l| format!("{l:.3}")).unwrap_or_else(|| "-".into()),
                if r.meets_targets { "met" } else { "missed" },
            );
        }
        out += &match &self.recommendation {
            Some(rec) => format!(
                "\n**Recommendation:** point {} (`{}`): {}. Test accuracy {} %, {} parameters.\n",
                rec.index,
                rec.label,
                rec.why,
                pct_std(rec.test_accuracy, rec.test_accuracy_std),
                rec.params
            ),
            None => "\n**No point meets every target.**\n".into(),
        };
        for plot in plots {
            out += &format!("\n![{plot}]({plot})\n");
        }
        out
    }
}
