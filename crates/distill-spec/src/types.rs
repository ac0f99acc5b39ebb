//! The typed pipeline. Each struct is one section of the YAML file; the doc comment on each field
//! is its user documentation.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A whole recipe: data, teacher, student, evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// Format version of the file. Only `1` exists.
    pub version: u32,
    /// Name of the recipe; runs go to `runs/<name>/<run-id>/`.
    pub name: String,
    /// Free text shown in the report.
    #[serde(default)]
    pub description: Option<String>,
    /// Seed for splitting, initialisation, dropout and batch order.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Where tensors live: `cpu` (the only device in this build).
    #[serde(default)]
    pub device: Device,
    /// Directory of the content-addressed cache, relative to the pipeline file.
    /// Defaults to `.distill-cache` in the working directory (or `$DISTILL_CACHE_DIR`).
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// Plugin libraries whose losses and architectures the recipe may use by name.
    #[serde(default)]
    pub plugins: Vec<PluginSpec>,
    pub data: DataSpec,
    pub teacher: TeacherSpec,
    pub student: StudentSpec,
    #[serde(default)]
    pub evaluate: EvaluateSpec,
}

fn default_seed() -> u64 {
    0
}

/// A plugin library (a cdylib built against `distill-plugin`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSpec {
    /// Path of the `.so`/`.dylib`/`.dll`, relative to the pipeline file; `${VAR}` expands.
    pub path: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    #[default]
    Cpu,
}

/// The data stage: where rows come from, which column is the label, how to split and check them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    pub source: SourceSpec,
    /// Name of the label column. Integer or string classes; string classes are sorted by name.
    pub label: String,
    /// Which columns are features (default: every column but the label).
    #[serde(default)]
    pub features: FeatureSpec,
    #[serde(default)]
    pub split: SplitSpec,
    /// A separate file for the test split (same columns), e.g. Fashion-MNIST's t10k files.
    /// With it, `split.test` must be left out: every source row is for training and validation.
    #[serde(default)]
    pub test_source: Option<SourceSpec>,
    #[serde(default)]
    pub scale: ScaleSpec,
    /// Data-quality checks, run before anything is trained.
    #[serde(default)]
    pub checks: Vec<CheckSpec>,
    /// Unlabelled rows that only the teacher labels (the transfer set). Rows of `source` whose
    /// label is null always join it.
    #[serde(default)]
    pub transfer: Option<TransferSpec>,
}

/// The transfer set: training rows the student sees without their labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferSpec {
    /// Keep labels on only this many training rows (a whole number ≥ 1) or this fraction of them
    /// (a number in (0, 1)); the other training rows become unlabelled. Seeded.
    #[serde(default)]
    pub labelled: Option<f64>,
    /// Choose the labelled rows per class, in proportion.
    #[serde(default = "yes")]
    pub stratify: bool,
    /// Whether the teacher trains on the labels hidden from the student (`true`: the teacher had
    /// all labels, as when distilling a strong existing teacher; `false`: the strict setting where
    /// the teacher knows only the same few labels).
    #[serde(default = "yes")]
    pub teacher_sees_hidden: bool,
    /// Extra unlabelled rows from another file with the same feature columns (the label column
    /// may be absent). Relative to the pipeline file.
    #[serde(default)]
    pub source: Option<SourceSpec>,
}

/// A data file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// Path of the file, relative to the pipeline file. `${VAR}` and `${VAR:-default}` are
    /// replaced from the environment, so a recipe can point at data outside the repository.
    pub path: PathBuf,
    /// File format; inferred from the extension when absent (`.idx*-ubyte[.gz]` is IDX).
    #[serde(default)]
    pub format: Option<DataFormat>,
    /// IDX only: the labels file that goes with the images in `path` (becomes column `label`).
    #[serde(default)]
    pub labels: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataFormat {
    Csv,
    Parquet,
    /// MNIST-style IDX (u8 images, gzipped or not): pixels become columns `px0`, `px1`, ...
    Idx,
}

/// Feature columns: `include` (names or `*` globs) minus `exclude`. The label is never a feature.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    #[serde(default)]
    pub include: Option<Vec<String>>,
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// Train/validation/test split, seeded by the pipeline seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitSpec {
    /// Fraction of rows held out for the test split (default 0.2; none with `test_source`).
    #[serde(default)]
    pub test: Option<f64>,
    /// Fraction of rows held out for validation.
    #[serde(default)]
    pub val: f64,
    /// Keep class proportions equal across splits.
    #[serde(default = "yes")]
    pub stratify: bool,
}

/// The test fraction when the recipe gives none.
pub const DEFAULT_TEST_FRACTION: f64 = 0.2;

fn yes() -> bool {
    true
}

impl Default for SplitSpec {
    fn default() -> Self {
        Self { test: None, val: 0.0, stratify: true }
    }
}

/// Feature scaling; statistics are fitted on the training split only.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleSpec {
    #[serde(default)]
    pub kind: ScaleKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScaleKind {
    #[default]
    None,
    /// Map each feature's training range to [0, 1].
    Minmax,
    /// Zero mean, unit variance per feature.
    Standard,
}

/// One data-quality check. `kind` decides which other keys apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    /// Name shown in the report; defaults to the kind.
    #[serde(default)]
    pub id: Option<String>,
    pub kind: CheckKind,
    /// Columns to check (`not_null`, `range`): `all`, a name or `*` glob, or a list of them.
    #[serde(default)]
    pub columns: Option<ColumnSelection>,
    /// The column to check (`in_set`).
    #[serde(default)]
    pub column: Option<String>,
    /// Lower bound (`range`: value; `row_count`: rows).
    #[serde(default)]
    pub min: Option<f64>,
    /// Upper bound (`range`: value; `row_count`: rows).
    #[serde(default)]
    pub max: Option<f64>,
    /// Allowed values (`in_set`).
    #[serde(default)]
    pub values: Option<Vec<serde_yaml::Value>>,
    /// `error` stops the run; `warn` only reports.
    #[serde(default)]
    pub severity: Severity,
}

impl CheckSpec {
    pub fn name(&self) -> String {
        self.id.clone().unwrap_or_else(|| self.kind.as_str().to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// No null values in the selected columns.
    NotNull,
    /// Every value of the selected columns lies within [min, max].
    Range,
    /// Every value of `column` is one of `values`.
    InSet,
    /// The file has at least `min` (and at most `max`) rows.
    RowCount,
}

impl CheckKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::NotNull => "not_null",
            CheckKind::Range => "range",
            CheckKind::InSet => "in_set",
            CheckKind::RowCount => "row_count",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warn,
    #[default]
    Error,
}

/// `all`, one name or glob, or a list of names and globs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ColumnSelection {
    One(String),
    Many(Vec<String>),
}

impl ColumnSelection {
    /// The patterns; `all` is `*`.
    pub fn patterns(&self) -> Vec<String> {
        match self {
            ColumnSelection::One(s) if s == "all" => vec!["*".into()],
            ColumnSelection::One(s) => vec![s.clone()],
            ColumnSelection::Many(v) => v.clone(),
        }
    }
}

/// The teacher: trained here from `model` and `train`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeacherSpec {
    pub model: ModelSpec,
    #[serde(default)]
    pub train: TrainSpec,
}

/// The student, its distillation loss, and whether to train a from-scratch baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudentSpec {
    pub model: ModelSpec,
    #[serde(default)]
    pub loss: LossSpec,
    #[serde(default)]
    pub train: TrainSpec,
    /// Also train the same student on labels only, same seed and budget, for comparison.
    /// The baseline sees only labelled rows.
    #[serde(default)]
    pub baseline: bool,
    /// How the baseline's budget is matched to the student's when it has fewer rows:
    /// `steps` (the same number of optimiser steps) or `epochs` (the same epochs over its own rows).
    #[serde(default)]
    pub baseline_budget: BudgetRule,
    /// Train student and baseline once per seed and report mean ± standard deviation; the teacher
    /// is trained once. Default: the pipeline seed alone.
    #[serde(default)]
    pub seeds: Option<Vec<u64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetRule {
    #[default]
    Steps,
    Epochs,
}

/// A network. Input and output sizes come from the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    #[serde(default)]
    pub arch: Arch,
    /// Hidden layer widths, e.g. `[256, 256]`; `[]` is a linear model.
    pub hidden: Vec<usize>,
    #[serde(default)]
    pub activation: Activation,
    /// Dropout probability after each hidden activation (training only).
    #[serde(default)]
    pub dropout: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Fully connected layers.
    #[default]
    Mlp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    #[default]
    Relu,
    Tanh,
}

/// Training budget and optimiser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Rows per optimiser step.
    #[serde(default = "default_batch")]
    pub batch: usize,
    #[serde(default)]
    pub optimizer: OptimizerSpec,
}

fn default_epochs() -> usize {
    20
}

fn default_batch() -> usize {
    32
}

impl Default for TrainSpec {
    fn default() -> Self {
        Self { epochs: default_epochs(), batch: default_batch(), optimizer: OptimizerSpec::default() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerSpec {
    #[serde(default)]
    pub kind: OptimizerKind,
    /// Learning rate.
    #[serde(default = "default_lr")]
    pub lr: f64,
}

fn default_lr() -> f64 {
    1e-3
}

impl Default for OptimizerSpec {
    fn default() -> Self {
        Self { kind: OptimizerKind::Adam, lr: default_lr() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    #[default]
    Adam,
}

/// The student's loss.
///
/// `kd` is Hinton's: `alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y)`,
/// averaged over the batch; the CE term counts only rows with a label.
/// `ce` ignores the teacher (what the baseline uses).
/// `teacher_hard` is cross-entropy with the teacher's top class as the label on every row
/// (pseudo-labelling, the control for soft targets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossSpec {
    #[serde(default)]
    pub kind: LossKind,
    /// Softmax temperature T (> 0) for the soft term.
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Weight of the soft term, in [0, 1].
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Extra parameters for a plugin loss, passed to it as JSON with `temperature` and `alpha`.
    #[serde(default)]
    pub params: Option<serde_json::Map<String, serde_json::Value>>,
}

impl LossSpec {
    /// The parameters a plugin loss receives: `temperature`, `alpha` and `params`.
    pub fn plugin_params(&self) -> serde_json::Value {
        let mut map = self.params.clone().unwrap_or_default();
        map.entry("temperature").or_insert(self.temperature.into());
        map.entry("alpha").or_insert(self.alpha.into());
        serde_json::Value::Object(map)
    }
}

fn default_temperature() -> f64 {
    2.0
}

fn default_alpha() -> f64 {
    0.5
}

impl Default for LossSpec {
    fn default() -> Self {
        Self { kind: LossKind::Kd, temperature: default_temperature(), alpha: default_alpha(), params: None }
    }
}

/// A built-in loss, or the name of a loss a plugin provides.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum LossKind {
    #[default]
    Kd,
    Ce,
    TeacherHard,
    /// Provided by a plugin named in `plugins:`.
    Plugin(String),
}

impl LossKind {
    pub const BUILT_IN: [&'static str; 3] = ["kd", "ce", "teacher_hard"];
}

impl From<String> for LossKind {
    fn from(s: String) -> Self {
        match s.as_str() {
            "kd" => LossKind::Kd,
            "ce" => LossKind::Ce,
            "teacher_hard" => LossKind::TeacherHard,
            _ => LossKind::Plugin(s),
        }
    }
}

impl From<LossKind> for String {
    fn from(k: LossKind) -> String {
        match k {
            LossKind::Kd => "kd".into(),
            LossKind::Ce => "ce".into(),
            LossKind::TeacherHard => "teacher_hard".into(),
            LossKind::Plugin(name) => name,
        }
    }
}

/// What to report and which targets the student must meet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluateSpec {
    #[serde(default)]
    pub targets: Targets,
    /// k of the top-k accuracy.
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    /// Number of equal-width confidence bins of the expected calibration error.
    #[serde(default = "default_ece_bins")]
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
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
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
