//! The `teacher:` and `student:` sections: models, losses, training budgets and optimisers.

use serde::{Deserialize, Serialize};
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


pub(crate) fn validate_model(path: &str, m: &ModelSpec, bad: &mut impl FnMut(&str, String)) {
    for (i, h) in m.hidden.iter().enumerate() {
        if *h == 0 {
            bad(&format!("{path}.hidden[{i}]"), "a layer needs at least one unit".into());
        }
    }
    if !(0.0..1.0).contains(&m.dropout) {
        bad(&format!("{path}.dropout"), format!("must be in [0, 1), got {}", m.dropout));
    }
}

pub(crate) fn validate_train(path: &str, t: &TrainSpec, bad: &mut impl FnMut(&str, String)) {
    if t.epochs == 0 {
        bad(&format!("{path}.epochs"), "must be at least 1".into());
    }
    if t.batch == 0 {
        bad(&format!("{path}.batch"), "must be at least 1".into());
    }
    let lr = t.optimizer.lr;
    if !(lr.is_finite() && lr > 0.0) {
        bad(&format!("{path}.optimizer.lr"), format!("must be > 0, got {lr}"));
    }
}
