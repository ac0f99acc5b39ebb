//! Test-split metrics for each model and the recipe's targets.

use serde::Serialize;

use distill_nn::{accuracy, argmax};
use distill_spec::Targets;

/// Metrics of one model. `accuracy` and `params` keep their names: scripts rely on them.
#[derive(Debug, Clone, Serialize)]
pub struct ModelMetrics {
    /// Test accuracy.
    pub accuracy: f64,
    pub params: usize,
    /// Validation accuracy after the last epoch, when there is a validation split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_accuracy: Option<f64>,
    /// Fraction of test rows where this model predicts the teacher's class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub teacher_agreement: Option<f64>,
    /// Seconds spent training in this run (0 when the model came from the cache).
    pub train_seconds: f64,
}

impl ModelMetrics {
    pub fn new(test_logits: &[f32], labels: &[u32], classes: usize, params: usize) -> Self {
        Self { accuracy: accuracy(test_logits, labels, classes), params, val_accuracy: None, teacher_agreement: None, train_seconds: 0.0 }
    }
}

/// Fraction of rows where two models pick the same class.
pub fn agreement(a: &[f32], b: &[f32], classes: usize) -> f64 {
    let n = a.len() / classes;
    if n == 0 {
        return 0.0;
    }
    let same = (0..n).filter(|&i| argmax(&a[i * classes..(i + 1) * classes]) == argmax(&b[i * classes..(i + 1) * classes])).count();
    same as f64 / n as f64
}

/// One target, its measured value, and whether the student met it.
#[derive(Debug, Clone, Serialize)]
pub struct TargetResult {
    pub name: String,
    pub limit: f64,
    pub value: f64,
    pub met: bool,
}

pub fn evaluate_targets(targets: &Targets, teacher: &ModelMetrics, student: &ModelMetrics) -> Vec<TargetResult> {
    let mut out = Vec::new();
    if let Some(min) = targets.min_accuracy {
        out.push(TargetResult { name: "min_accuracy".into(), limit: min, value: student.accuracy, met: student.accuracy >= min });
    }
    if let Some(max) = targets.max_params {
        out.push(TargetResult { name: "max_params".into(), limit: max as f64, value: student.params as f64, met: student.params <= max });
    }
    if let Some(max) = targets.max_accuracy_drop {
        let drop = teacher.accuracy - student.accuracy;
        out.push(TargetResult { name: "max_accuracy_drop".into(), limit: max, value: drop, met: drop <= max });
    }
    out
}
