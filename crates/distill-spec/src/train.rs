//! `train:`: the budget, optimiser, schedule, clipping and early stopping of one model.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::optim::{is_zero, validate_optimizer, validate_schedule};
use crate::{OptimizerSpec, ScheduleSpec};

/// Training budget, optimiser, learning-rate schedule, clipping and early stopping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    /// Passes over the training rows (default 20).
    #[serde(default = "default_epochs")]
    #[schemars(range(min = 1))]
    pub epochs: usize,
    /// Rows per optimiser step (default 32).
    #[serde(default = "default_batch")]
    #[schemars(range(min = 1))]
    pub batch: usize,
    /// The optimiser (default: Adam, `lr: 1.0e-3`).
    #[serde(default)]
    pub optimizer: OptimizerSpec,
    /// How the learning rate changes over training. Default: constant `optimizer.lr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleSpec>,
    /// Rescale the gradients so that their global L2 norm (over all parameters together) is at
    /// most this value, before each step. Default: no clipping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_grad_norm: Option<f64>,
    /// Stop when validation accuracy has not improved for a while, and keep the best weights.
    /// Needs validation rows (`data.split.val`); without them training runs the full budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stopping: Option<EarlyStoppingSpec>,
    /// Which epoch's weights training ends with: `last`, or `best_val` (the epoch with the
    /// highest validation accuracy; needs `data.split.val`; the test split is never looked at).
    /// Default: `best_val` with `early_stopping`, else `last`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<KeepRule>,
}

/// Which epoch's weights a training run keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeepRule {
    /// The weights after the last epoch run.
    Last,
    /// The weights of the epoch with the highest validation accuracy (the first such epoch).
    BestVal,
}

impl KeepRule {
    pub fn as_str(self) -> &'static str {
        match self {
            KeepRule::Last => "last",
            KeepRule::BestVal => "best_val",
        }
    }
}

impl TrainSpec {
    /// The keep rule in force: the declared one, else `best_val` under early stopping (which has
    /// always restored its best epoch), else `last`.
    pub fn effective_keep(&self) -> KeepRule {
        self.keep.unwrap_or(if self.early_stopping.is_some() { KeepRule::BestVal } else { KeepRule::Last })
    }
}

fn default_epochs() -> usize {
    20
}

fn default_batch() -> usize {
    32
}

impl Default for TrainSpec {
    fn default() -> Self {
        Self {
            epochs: default_epochs(),
            batch: default_batch(),
            optimizer: OptimizerSpec::default(),
            schedule: None,
            clip_grad_norm: None,
            early_stopping: None,
            keep: None,
        }
    }
}

/// Early stopping on validation accuracy; the weights of the best epoch are restored at the end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EarlyStoppingSpec {
    /// Stop after this many epochs (≥ 1) without an improvement.
    #[schemars(range(min = 1))]
    pub patience: usize,
    /// The smallest rise in validation accuracy that counts as an improvement, ≥ 0. Default 0
    /// (any strict rise).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_delta: f64,
}

pub(crate) fn validate_train(path: &str, t: &TrainSpec, bad: &mut impl FnMut(&str, String)) {
    if t.epochs == 0 {
        bad(&format!("{path}.epochs"), "must be at least 1".into());
    }
    if t.batch == 0 {
        bad(&format!("{path}.batch"), "must be at least 1".into());
    }
    validate_optimizer(&format!("{path}.optimizer"), &t.optimizer, bad);
    if let Some(s) = &t.schedule {
        validate_schedule(&format!("{path}.schedule"), s, t.optimizer.lr(), bad);
    }
    if let Some(c) = t.clip_grad_norm {
        if !(c.is_finite() && c > 0.0) {
            bad(&format!("{path}.clip_grad_norm"), format!("must be > 0, got {c}"));
        }
    }
    if let Some(e) = &t.early_stopping {
        if e.patience == 0 {
            bad(&format!("{path}.early_stopping.patience"), "must be at least 1".into());
        }
        if !(e.min_delta.is_finite() && e.min_delta >= 0.0) {
            bad(&format!("{path}.early_stopping.min_delta"), format!("must be ≥ 0, got {}", e.min_delta));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn train(text: &str) -> Vec<(String, String)> {
        let t: TrainSpec = serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let mut out = Vec::new();
        validate_train("t", &t, &mut |p: &str, m: String| out.push((p.to_string(), m)));
        out
    }

    /// The error `distill validate` prints for a recipe whose student trains with `text`.
    fn parse_error(text: &str) -> String {
        let recipe = format!("version: 1\nname: x\ndata: {{source: {{path: a.csv}}, label: y}}\nteacher: {{model: {{hidden: [8]}}}}\nstudent:\n  model: {{hidden: [4]}}\n  train: {text}\n");
        crate::parse_str(&recipe, "x.yaml".as_ref(), &[]).unwrap_err().to_string()
    }

    #[test]
    fn optimiser_schedule_and_stopping_are_checked() {
        assert!(train("{optimizer: {kind: sgd, lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 5.0e-4}}").is_empty());
        assert!(train("{optimizer: {kind: adamw, lr: 0.001, betas: [0.9, 0.99], eps: 1.0e-7}}").is_empty());
        assert_eq!(train("{optimizer: {kind: sgd, nesterov: true}}")[0].0, "t.optimizer.nesterov");
        assert_eq!(train("{optimizer: {kind: adam, betas: [0.9, 1.5]}}")[0].0, "t.optimizer.betas[1]");
        assert_eq!(train("{optimizer: {lr: 0}}")[0].0, "t.optimizer.lr");
        assert!(train("{schedule: {kind: cosine, warmup_epochs: 1.5, min_lr: 0.0}, clip_grad_norm: 1.0, early_stopping: {patience: 3}}").is_empty());
        assert!(train("{schedule: {kind: step, every: 10, gamma: 0.5}}").is_empty());
        assert_eq!(train("{schedule: {kind: step, every: 0}}")[0].0, "t.schedule.every");
        assert_eq!(train("{schedule: {kind: cosine, min_lr: 1}}")[0].0, "t.schedule.min_lr");
        assert_eq!(train("{clip_grad_norm: 0}")[0].0, "t.clip_grad_norm");
        assert_eq!(train("{early_stopping: {patience: 0}}")[0].0, "t.early_stopping.patience");
        assert!(serde_yaml::from_str::<TrainSpec>("{early_stopping: {patience: 2, monitor: loss}}").is_err());
        let keep = |text: &str| serde_yaml::from_str::<TrainSpec>(text).unwrap().effective_keep();
        assert_eq!(keep("{}"), KeepRule::Last);
        assert_eq!(keep("{early_stopping: {patience: 2}}"), KeepRule::BestVal);
        assert_eq!(keep("{keep: last, early_stopping: {patience: 2}}"), KeepRule::Last);
        assert_eq!(keep("{keep: best_val}"), KeepRule::BestVal);
        assert!(serde_yaml::from_str::<TrainSpec>("{keep: best_test}").is_err());
        let adamw: OptimizerSpec = serde_yaml::from_str("{kind: adamw}").unwrap();
        assert_eq!(adamw.effective_weight_decay(), 0.01);
        assert_eq!(serde_yaml::from_str::<OptimizerSpec>("{lr: 0.5}").unwrap().lr(), 0.5, "adam without `kind`");
    }

    #[test]
    fn keys_of_another_kind_are_errors_at_their_key() {
        assert_eq!(
            parse_error("{optimizer: {kind: adam, momentum: 0.9}}"),
            "x.yaml:7:35: student.train.optimizer.momentum: `momentum` does not apply to the `adam` optimizer; expected one of `kind`, `lr`, `weight_decay`, `betas`, `eps`"
        );
        assert!(parse_error("{optimizer: {kind: sgd, betas: [0.9, 0.9]}}")
            .contains(":7:34: student.train.optimizer.betas: `betas` does not apply to the `sgd` optimizer"));
        assert_eq!(parse_error("{schedule: {kind: step}}"), "x.yaml:7:10: student.train.schedule: a `step` schedule needs `every`");
        assert!(parse_error("{schedule: {kind: cosine, gamma: 0.5}}")
            .contains(":7:36: student.train.schedule.gamma: `gamma` does not apply to a `cosine` schedule"));
        assert!(parse_error("{optimizer: {kind: adamx}}")
            .contains(":7:23: student.train.optimizer.kind: unknown kind `adamx`, expected one of `adam`, `adamw`, `sgd`"));
        assert!(parse_error("{optimizer: {lrate: 1}}").contains("student.train.optimizer.lrate: unknown field `lrate`"));
        assert!(parse_error("{optimizer: }").contains("student.train.optimizer: the optimizer is empty"));
    }
}
