//! Evaluation for `distill`: metrics, latency measurement, reports and run comparison.
//!
//! This crate is a set of pure functions over plain buffers. Logits arrive as row-major
//! `&[f32]` (`n` rows × `k` classes), labels as `&[u32]`, class names as `&[String]`.
//! The pipeline calls it after training; nothing here trains models, reads datasets,
//! touches the file system or knows about the YAML recipe format.
//!
//! * [`metrics`]: accuracy, top-k, per-class precision/recall/F1, macro-F1, confusion
//!   matrix, negative log-likelihood, expected calibration error, teacher–student
//!   agreement, all bundled by [`metrics::evaluate_model`] into a [`ModelEvaluation`].
//! * [`bench`](mod@bench): wall-clock latency percentiles and throughput of a closure.
//! * [`report`]: `report.md`, a self-contained `report.html` and SVG plots from a
//!   [`report::ReportInput`].
//! * [`stats`]: the paired comparison of two models over the same seeds (mean
//!   difference, 95% confidence interval, paired t-test; the Student-t CDF via the
//!   regularised incomplete beta).
//! * [`compare`]: side-by-side comparison of several runs' `metrics.json` and resolved
//!   pipelines.
//!
//! It is not a plotting library, a benchmark harness (no statistics beyond percentiles and
//! the paired t-test)
//! nor a storage layer: callers decide where the strings it returns are written.

pub mod bench;
pub mod compare;
pub mod metrics;
pub mod report;
pub mod stats;

pub use bench::{measure_latency, measure_throughput, LatencyStats};
pub use compare::{compare_runs, Comparison};
pub use metrics::{evaluate_model, EvalError, ModelEvaluation};
pub use report::{
    render_html, render_markdown, render_plots, render_sweep_plot, DeploymentReport, DeploymentRow, ReportError, ReportInput, SweepPlot, SweepPlotPoint,
};
