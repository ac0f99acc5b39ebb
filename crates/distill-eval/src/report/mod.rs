//! `report.md`, `report.html` and SVG plots for one pipeline run.
//!
//! Build a [`ReportInput`] from the run's results, then:
//!
//! * [`render_plots`] returns `(file name, SVG text)` pairs to write next to the report,
//! * [`render_markdown`] returns `report.md`, which links those files by relative name,
//! * [`render_html`] returns one self-contained page with the same content and the SVGs
//!   inlined (no external resources), so it can be mailed or archived on its own.
//!
//! Both documents have the sections Recipe, Data checks, Metrics, Targets, (with exported
//! models) Deployment, Training curves, Calibration and Confusion matrix. In HTML they carry the ids `recipe`,
//! `checks`, `metrics`, `targets`, `curves`, `calibration` and `confusion`, and every
//! plot sits in a `<figure id="plot-NAME">` where `NAME.svg` is its file name.
//!
//! Plots that would be empty are left out: a model without epochs gets no loss plot,
//! and the validation-accuracy plot needs at least one recorded validation accuracy.

mod deployment;
mod html;
mod markdown;
mod plots;
mod sweep_plot;
mod tables;

pub use deployment::{DeploymentReport, DeploymentRow};
pub use html::render_html;
pub use markdown::render_markdown;
pub use plots::render_plots;
pub use sweep_plot::{render_sweep_plot, SweepPlot, SweepPlotPoint};

use crate::bench::LatencyStats;
use crate::metrics::ModelEvaluation;
use serde::{Deserialize, Serialize};

/// Why a report could not be rendered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReportError {
    #[error("drawing plot `{plot}` failed: {message}")]
    Plot { plot: String, message: String },
}

/// Everything a report shows. Serde-friendly so it can be saved and re-rendered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportInput {
    /// Pipeline name, used as the title.
    pub pipeline_name: String,
    /// Free-text description from the recipe; may be empty.
    #[serde(default)]
    pub description: String,
    /// Recipe summary as `(key, value)` pairs, shown in order.
    #[serde(default)]
    pub recipe: Vec<(String, String)>,
    /// Results of the data checks, in order.
    #[serde(default)]
    pub data_checks: Vec<DataCheckRow>,
    /// The teacher model; absent when the teacher was given as logits without the test rows.
    #[serde(default)]
    pub teacher: Option<ModelReport>,
    /// The distilled student.
    pub student: ModelReport,
    /// The same architecture as the student trained without distillation, if any.
    #[serde(default)]
    pub baseline: Option<ModelReport>,
    /// Acceptance targets and whether they were met.
    #[serde(default)]
    pub targets: Vec<TargetRow>,
    /// The exported models (ONNX) run back in a runtime, when the run exported any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<DeploymentReport>,
}

impl ReportInput {
    /// The models present, as `(role, report)`: teacher, student, then baseline.
    pub fn models(&self) -> Vec<(&'static str, &ModelReport)> {
        let mut out: Vec<(&'static str, &ModelReport)> = self.teacher.iter().map(|t| ("teacher", t)).collect();
        out.push(("student", &self.student));
        if let Some(b) = &self.baseline {
            out.push(("baseline", b));
        }
        out
    }
}

/// One data check's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataCheckRow {
    /// Check id from the recipe.
    pub id: String,
    /// Check kind, e.g. `nulls` or `range`.
    pub kind: String,
    /// Outcome as text, e.g. `pass`, `warn`, `fail`.
    pub status: String,
    /// Number of failing rows.
    pub failing: u64,
    /// Failing rows as a fraction of all rows, in `[0, 1]`.
    pub fraction: f64,
    /// Human-readable explanation.
    pub message: String,
    /// A few offending values or row descriptions.
    #[serde(default)]
    pub samples: Vec<String>,
}

/// One model's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelReport {
    /// Metrics on the evaluation split.
    pub evaluation: ModelEvaluation,
    /// Number of trainable parameters.
    pub params: u64,
    /// Size of the saved weights in bytes.
    pub size_bytes: u64,
    /// Inference latency, when it was measured.
    #[serde(default)]
    pub latency: Option<LatencyStats>,
    /// Per-epoch training history; empty for models that were not trained by epochs.
    #[serde(default)]
    pub history: Vec<EpochRecord>,
}

/// Losses and validation accuracy after one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch number as the trainer counts it (usually from 1).
    pub epoch: usize,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
    /// Validation loss, when a validation split exists.
    #[serde(default)]
    pub val_loss: Option<f64>,
    /// Validation accuracy, when a validation split exists.
    #[serde(default)]
    pub val_accuracy: Option<f64>,
}

/// One acceptance target, e.g. "student accuracy ≥ 0.9".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetRow {
    /// What is measured, e.g. `student.accuracy >=`.
    pub name: String,
    /// The threshold.
    pub limit: f64,
    /// The measured value.
    pub value: f64,
    /// Whether the target was met.
    pub met: bool,
}

/// What a plot shows; decides its file name and the section it belongs to.
#[derive(Debug, Clone, Copy, PartialEq)]
enum PlotKind {
    /// Train/validation loss of one model (index into `ReportInput::models`).
    Loss(usize),
    ValAccuracy,
    Reliability,
    Confusion,
}

/// A plot the report will contain.
#[derive(Debug, Clone)]
struct PlotSpec {
    kind: PlotKind,
    /// File stem and figure id suffix, e.g. `loss-student`.
    name: String,
    /// Caption.
    title: String,
}

impl PlotSpec {
    fn file(&self) -> String {
        format!("{}.svg", self.name)
    }
}

/// The plots of a report, in display order. The single source of truth for file names,
/// so markdown links, HTML figures and written files always agree.
fn plan(input: &ReportInput) -> Vec<PlotSpec> {
    let models = input.models();
    let mut out = Vec::new();
    for (i, (role, m)) in models.iter().enumerate() {
        if !m.history.is_empty() {
            out.push(PlotSpec { kind: PlotKind::Loss(i), name: format!("loss-{role}"), title: format!("{} loss per epoch", capitalize(role)) });
        }
    }
    let any_val_acc = models.iter().any(|(_, m)| m.history.iter().any(|e| e.val_accuracy.is_some()));
    if any_val_acc {
        out.push(PlotSpec { kind: PlotKind::ValAccuracy, name: "val-accuracy".into(), title: "Validation accuracy per epoch".into() });
    }
    out.push(PlotSpec { kind: PlotKind::Reliability, name: "reliability".into(), title: "Reliability diagram".into() });
    out.push(PlotSpec { kind: PlotKind::Confusion, name: "confusion-student".into(), title: "Student confusion matrix".into() });
    out
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests;
