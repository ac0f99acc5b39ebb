//! The report's "Deployment" section: each exported model as it ran back in a runtime.

use serde::{Deserialize, Serialize};

use super::tables::{bytes, f4, Grid, NONE};

/// The exported models of a run and what was measured on them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentReport {
    /// Lines shown above the table: the runtime, where the targets were checked, what int8 lost.
    pub notes: Vec<String>,
    pub artifacts: Vec<DeploymentRow>,
}

/// One exported model on the test split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentRow {
    /// Its file in the run directory.
    pub file: String,
    /// `onnx` or `onnx_int8`.
    pub format: String,
    pub size_bytes: u64,
    pub accuracy: f64,
    /// Fraction of test rows where it predicts what distill's own model predicts.
    pub agreement: f64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub throughput_rows_per_s: Option<f64>,
}

pub(super) fn grid(d: &DeploymentReport) -> Grid {
    let mut g = Grid::new(
        &["file", "format", "size", "accuracy", "agreement with distill", "latency p50 (ms)", "latency p95 (ms)", "rows/s"],
        &[false, false, true, true, true, true, true, true],
    );
    let ms = |v: Option<f64>| v.map_or(NONE.to_string(), |v| format!("{v:.3}"));
    g.rows = d
        .artifacts
        .iter()
        .map(|a| {
            let rate = a.throughput_rows_per_s.map_or(NONE.to_string(), |r| format!("{r:.0}"));
            vec![a.file.clone(), a.format.clone(), bytes(a.size_bytes), f4(a.accuracy), f4(a.agreement), ms(a.latency_p50_ms), ms(a.latency_p95_ms), rate]
        })
        .collect();
    g
}
