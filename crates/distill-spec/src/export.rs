//! `export:`: the deployable artifacts a run writes beside its weights.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An exported model's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// ONNX (opset 17), f32, with the recipe's feature scaling in the graph.
    Onnx,
    /// The same graph quantized to int8 (QDQ): weights per output channel, symmetric;
    /// activations uint8 with ranges calibrated on training rows.
    OnnxInt8,
}

impl ExportFormat {
    /// Its name in the recipe, on the command line and in file names.
    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::Onnx => "onnx",
            ExportFormat::OnnxInt8 => "onnx_int8",
        }
    }

    /// The file it is written to in the run directory (`student.onnx`, `student.int8.onnx`).
    pub fn file_name(self, role: &str) -> String {
        match self {
            ExportFormat::Onnx => format!("{role}.onnx"),
            ExportFormat::OnnxInt8 => format!("{role}.int8.onnx"),
        }
    }

    /// From its name.
    pub fn parse(name: &str) -> Option<Self> {
        [ExportFormat::Onnx, ExportFormat::OnnxInt8].into_iter().find(|f| f.name() == name)
    }
}

/// `export:`: the student (and on request the teacher) as ONNX files in the run directory,
/// taking raw feature values in the recipe's column order (the scaling fitted on the training
/// split is in the graph) and returning `logits` and `probabilities`.
/// ```yaml
/// export: {formats: [onnx, onnx_int8], calibration_rows: 512}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportSpec {
    /// Formats to write (default `[onnx]`): `onnx` (f32) and/or `onnx_int8`.
    #[serde(default = "default_formats")]
    pub formats: Vec<ExportFormat>,
    /// Also export the teacher in the same formats (`teacher.onnx`, `teacher.int8.onnx`; it
    /// needs a teacher model, not `logits`).
    #[serde(default)]
    pub teacher: bool,
    /// Training rows (the first ones of the training split) whose activations calibrate the
    /// int8 ranges (default 512; fewer when the split is smaller), ≥ 1.
    #[serde(default = "default_calibration_rows")]
    #[schemars(range(min = 1))]
    pub calibration_rows: usize,
}

fn default_formats() -> Vec<ExportFormat> {
    vec![ExportFormat::Onnx]
}

fn default_calibration_rows() -> usize {
    512
}

impl Default for ExportSpec {
    fn default() -> Self {
        Self { formats: default_formats(), teacher: false, calibration_rows: default_calibration_rows() }
    }
}

/// `export:` and `evaluate.targets.checked_on`: the artifact the targets are checked on must be one the
/// run writes; a teacher export needs a teacher model.
pub(crate) fn validate_export(p: &crate::Pipeline, bad: &mut impl FnMut(&str, String)) {
    if let Some(e) = &p.export {
        if e.formats.is_empty() {
            bad("export.formats", "must list at least one format (`onnx`, `onnx_int8`)".into());
        }
        if e.calibration_rows == 0 {
            bad("export.calibration_rows", "must be at least 1".into());
        }
        if e.teacher && p.teacher.model.is_none() {
            bad("export.teacher", "needs a teacher model; with `teacher.logits` there is none to export".into());
        }
    }
    if let Some(on) = p.evaluate.targets.checked_on {
        if !p.export.as_ref().is_some_and(|e| e.formats.contains(&on)) {
            bad(
                "evaluate.targets.checked_on",
                format!("`{}` is not exported: add it to `export.formats` (e.g. `export: {{formats: [{}]}}`)", on.name(), on.name()),
            );
        }
    }
}
