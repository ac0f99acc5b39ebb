//! The typed pipeline. Each struct is one section of the YAML file; the doc comment on each field
//! is its user documentation.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::data::DataSpec;
use crate::model::{StudentSpec, TeacherSpec};

/// A whole recipe: data, teacher, student, evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// Format version of the file. Only `1` exists.
    #[schemars(extend("const" = 1))]
    pub version: u32,
    /// Name of the recipe; runs go to `runs/<name>/<run-id>/`.
    pub name: String,
    /// Free text shown in the report.
    #[serde(default)]
    pub description: Option<String>,
    /// Seed for splitting, initialisation, dropout and batch order.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Where training runs: `cpu` (default), or `cuda` / `cuda:N` (a GPU; needs distill built
    /// with `--features cuda`, and MLP-style layers: conv and pool layers train on the CPU only).
    #[serde(default)]
    pub device: Device,
    /// Directory of the content-addressed cache, relative to the pipeline file.
    /// Defaults to `.distill-cache` in the working directory (or `$DISTILL_CACHE_DIR`).
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// Plugin libraries whose losses and architectures the recipe may use by name.
    #[serde(default)]
    pub plugins: Vec<PluginSpec>,
    /// The data: source files, label, features, split, scaling, checks, transfer set.
    pub data: DataSpec,
    /// The teacher: a model trained here (or loaded from `weights`), or logits from a file.
    pub teacher: TeacherSpec,
    /// More teachers besides `teacher`, each one trained here, given as `weights` or as `logits`
    /// (the keys of `teacher`). With any, the student learns from the `ensemble` of all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teachers: Vec<TeacherSpec>,
    /// How several teachers' logits become the student's soft targets (default: the mean of
    /// their probabilities, equal weights).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ensemble: Option<EnsembleSpec>,
    /// The student: its model, distillation loss, training, and the from-scratch baseline.
    pub student: StudentSpec,
    /// What to measure on the test split, and the targets the student must meet.
    #[serde(default)]
    pub evaluate: EvaluateSpec,
    /// Many students from this recipe: a grid and/or zip over recipe keys, each point an
    /// ordinary run over one shared cache, ranked on the validation split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<crate::sweep::SweepSpec>,
    /// The student (and on request the teacher) as ONNX files in the run directory: f32 and/or
    /// int8, checked by running them back (see `evaluate.targets.checked_on`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<crate::ExportSpec>,
}

/// `ensemble:`: how the teachers' logits are combined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnsembleSpec {
    /// `mean_probs` (default): the weighted mean of the teachers' `softmax(t / T)` at the
    /// student loss's temperature T; `mean_logits`: the weighted mean of their logits.
    #[serde(default)]
    pub rule: EnsembleRule,
    /// One weight per teacher (`teacher` first, then `teachers` in order), ≥ 0, not all 0;
    /// normalised to sum 1. Default: equal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<Vec<f64>>,
}

/// The combination rule of an ensemble of teachers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnsembleRule {
    #[default]
    MeanProbs,
    MeanLogits,
}

impl EnsembleRule {
    pub fn as_str(self) -> &'static str {
        match self {
            EnsembleRule::MeanProbs => "mean_probs",
            EnsembleRule::MeanLogits => "mean_logits",
        }
    }
}

/// serde default for flags that are on unless turned off.
pub(crate) fn yes() -> bool {
    true
}

fn default_seed() -> u64 {
    0
}

/// A plugin library (a cdylib built against `distill-plugin`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginSpec {
    /// Path of the `.so`/`.dylib`/`.dll`, relative to the pipeline file; `${VAR}` expands.
    pub path: PathBuf,
}

/// Where training runs: `cpu`, `cuda` (the first GPU) or `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
#[schemars(extend("pattern" = "^(cpu|cuda(:[0-9]+)?)$", "examples" = ["cpu", "cuda", "cuda:1"]))]
pub enum Device {
    #[default]
    Cpu,
    /// A CUDA GPU by ordinal.
    Cuda(usize),
}

impl TryFrom<String> for Device {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Device::Cuda)
                .ok_or_else(|| format!("unknown device `{other}`, expected `cpu`, `cuda` or `cuda:N`")),
        }
    }
}

impl From<Device> for String {
    fn from(d: Device) -> String {
        match d {
            Device::Cpu => "cpu".into(),
            Device::Cuda(n) => format!("cuda:{n}"),
        }
    }
}

/// Why this build cannot train on `device`, if it cannot.
pub fn device_unavailable(device: Device) -> Option<String> {
    match device {
        Device::Cuda(_) if !cfg!(feature = "cuda") => Some(format!(
            "`{}` needs distill built with CUDA support (`cargo build --release --features cuda`, with the CUDA toolkit); this build trains on the CPU only",
            String::from(device)
        )),
        Device::Cpu | Device::Cuda(_) => None,
    }
}

/// What to report and which targets the student must meet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluateSpec {
    /// Pass/fail targets; a missed one makes `distill run` exit with code 3.
    #[serde(default)]
    pub targets: Targets,
    /// k of the top-k accuracy.
    #[serde(default = "default_top_k")]
    #[schemars(range(min = 1))]
    pub top_k: usize,
    /// Number of equal-width confidence bins of the expected calibration error.
    #[serde(default = "default_ece_bins")]
    #[schemars(range(min = 1))]
    pub ece_bins: usize,
    /// Measure inference latency (batch 1, p50/p95) and throughput of teacher and student.
    #[serde(default = "yes")]
    pub latency: bool,
}

fn default_top_k() -> usize {
    3
}

fn default_ece_bins() -> usize {
    10
}

impl Default for EvaluateSpec {
    fn default() -> Self {
        Self { targets: Targets::default(), top_k: default_top_k(), ece_bins: default_ece_bins(), latency: true }
    }
}

/// Pass/fail targets for the distilled student; a missed target makes `distill run` exit with code 3.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    /// Lowest acceptable test accuracy.
    #[serde(default)]
    pub min_accuracy: Option<f64>,
    /// Most parameters the student may have.
    #[serde(default)]
    pub max_params: Option<usize>,
    /// Largest acceptable drop from teacher to student accuracy.
    #[serde(default)]
    pub max_accuracy_drop: Option<f64>,
    /// Slowest acceptable 95th-percentile latency of the student at batch 1, in milliseconds.
    #[serde(default)]
    pub max_latency_ms_p95: Option<f64>,
    /// Smallest acceptable speed-up of the student over the teacher (throughput ratio).
    #[serde(default)]
    pub min_speedup: Option<f64>,
    /// Where the targets are checked: on distill's own model (default), or on an exported
    /// artifact (`onnx`, `onnx_int8`, one of `export.formats`) run in-process with tract-onnx
    /// on the test split, its latency and throughput measured on that runtime too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_on: Option<crate::ExportFormat>,
}

/// The text of a YAML scalar as it would appear in a data file (`3` → "3", `3.0` → "3", `a` → "a").
pub fn scalar_text(v: &serde_yaml::Value) -> Option<String> {
    match v {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Some(i.to_string()),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e15 => Some((f as i64).to_string()),
            (None, Some(f)) => Some(f.to_string()),
            _ => None,
        },
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}
