//! Test-split metrics for each model and the recipe's targets.

use serde::{Deserialize, Serialize};

use distill_eval::{LatencyStats, ModelEvaluation};
use distill_nn::accuracy;
use distill_spec::Targets;

/// Metrics of one model. `accuracy` and `params` keep their names: scripts rely on them.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// Seconds spent training in this run (0 when the model came from the cache); summed over seeds.
    pub train_seconds: f64,
    /// Sample standard deviation of `accuracy` over seeds (when trained with several seeds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy_std: Option<f64>,
    /// Per-seed test accuracy (when trained with several seeds).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_seed: Vec<SeedAccuracy>,
    /// Which epoch's weights were kept: the recipe's `keep` rule and the epoch it chose (one per
    /// seed, in seed order); absent for a model that was not trained here (given weights).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept: Option<Kept>,
    /// Bytes of the saved weights (safetensors).
    pub size_bytes: u64,
    /// Inference latency at batch 1, when measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyStats>,
    /// Inference throughput at a large batch (rows/s), when measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput_rows_per_s: Option<f64>,
    /// Every test-split metric of the model (of the first seed's model when trained with
    /// several seeds): top-k accuracy, macro-F1, NLL, ECE and reliability bins, per-class
    /// precision/recall, the confusion matrix, agreement and KL with the teacher.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<ModelEvaluation>,
}

/// The `keep` rule a model trained under and the epochs it kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kept {
    /// `last` or `best_val`.
    pub rule: String,
    /// The kept epoch (1-based) of each seed's run.
    pub epochs: Vec<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeedAccuracy {
    pub seed: u64,
    pub accuracy: f64,
}

/// Mean and sample standard deviation (n - 1); the deviation is `None` for fewer than 2 values.
pub fn mean_std(values: &[f64]) -> (f64, Option<f64>) {
    let n = values.len() as f64;
    if values.is_empty() {
        return (0.0, None);
    }
    let mean = values.iter().sum::<f64>() / n;
    let std = (values.len() > 1).then(|| (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0)).sqrt());
    (mean, std)
}

impl ModelMetrics {
    pub fn new(test_logits: &[f32], labels: &[u32], classes: usize, params: usize) -> Self {
        Self {
            accuracy: accuracy(test_logits, labels, classes),
            params,
            val_accuracy: None,
            teacher_agreement: None,
            train_seconds: 0.0,
            accuracy_std: None,
            per_seed: Vec::new(),
            kept: None,
            size_bytes: 0,
            latency: None,
            throughput_rows_per_s: None,
            evaluation: None,
        }
    }

    /// One model trained under several seeds: means of the metrics, the spread of accuracy, and
    /// the per-seed accuracies. A single run is returned as it is.
    pub fn aggregate(runs: Vec<(u64, ModelMetrics)>) -> Self {
        if runs.len() == 1 {
            return runs.into_iter().map(|(_, m)| m).next().unwrap_or_else(|| ModelMetrics::new(&[], &[], 1, 0));
        }
        let first = runs.first().map(|(_, m)| m.clone()).unwrap_or_else(|| ModelMetrics::new(&[], &[], 1, 0));
        let mean = |f: &dyn Fn(&ModelMetrics) -> Option<f64>| -> Option<f64> {
            let v: Vec<f64> = runs.iter().filter_map(|(_, m)| f(m)).collect();
            (v.len() == runs.len() && !v.is_empty()).then(|| mean_std(&v).0)
        };
        let accuracies: Vec<f64> = runs.iter().map(|(_, m)| m.accuracy).collect();
        let (accuracy, accuracy_std) = mean_std(&accuracies);
        ModelMetrics {
            accuracy,
            params: runs.first().map(|(_, m)| m.params).unwrap_or(0),
            val_accuracy: mean(&|m| m.val_accuracy),
            teacher_agreement: mean(&|m| m.teacher_agreement),
            train_seconds: runs.iter().map(|(_, m)| m.train_seconds).sum(),
            accuracy_std,
            per_seed: runs.iter().map(|(seed, m)| SeedAccuracy { seed: *seed, accuracy: m.accuracy }).collect(),
            ..first
        }
    }
}

/// One target, its measured value, and whether the student met it.
#[derive(Debug, Clone, Serialize)]
pub struct TargetResult {
    pub name: String,
    pub limit: f64,
    pub value: f64,
    pub met: bool,
}

/// Student throughput over teacher throughput, when both were measured.
pub fn speedup(teacher: &ModelMetrics, student: &ModelMetrics) -> Option<f64> {
    Some(student.throughput_rows_per_s? / teacher.throughput_rows_per_s?)
}

/// The recipe's targets against the student; the teacher-relative ones need the teacher's
/// metrics (a target that cannot be measured counts as missed).
pub fn evaluate_targets(targets: &Targets, teacher: Option<&ModelMetrics>, student: &ModelMetrics) -> Vec<TargetResult> {
    let mut out = Vec::new();
    if let Some(max) = targets.max_latency_ms_p95 {
        let value = student.latency.as_ref().map(|l| l.p95_ms).unwrap_or(f64::INFINITY);
        out.push(TargetResult { name: "max_latency_ms_p95".into(), limit: max, value, met: value <= max });
    }
    if let Some(min) = targets.min_speedup {
        let value = teacher.and_then(|t| speedup(t, student)).unwrap_or(0.0);
        out.push(TargetResult { name: "min_speedup".into(), limit: min, value, met: value >= min });
    }
    if let Some(min) = targets.min_accuracy {
        out.push(TargetResult { name: "min_accuracy".into(), limit: min, value: student.accuracy, met: student.accuracy >= min });
    }
    if let Some(max) = targets.max_params {
        out.push(TargetResult { name: "max_params".into(), limit: max as f64, value: student.params as f64, met: student.params <= max });
    }
    if let Some(max) = targets.max_accuracy_drop {
        let drop = teacher.map_or(f64::INFINITY, |t| t.accuracy - student.accuracy);
        out.push(TargetResult { name: "max_accuracy_drop".into(), limit: max, value: drop, met: drop <= max });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_std() {
        let (m, s) = mean_std(&[0.80, 0.82, 0.84]);
        assert!((m - 0.82).abs() < 1e-12);
        assert!((s.unwrap() - 0.02).abs() < 1e-12);
        assert_eq!(mean_std(&[0.5]), (0.5, None));
    }

    #[test]
    fn aggregate_reports_means_and_per_seed_values() {
        let run = |acc: f64| ModelMetrics { accuracy: acc, teacher_agreement: Some(acc), ..ModelMetrics::new(&[], &[], 1, 7) };
        let m = ModelMetrics::aggregate(vec![(0, run(0.5)), (1, run(0.7))]);
        assert!((m.accuracy - 0.6).abs() < 1e-12);
        assert!((m.accuracy_std.unwrap() - 0.1414213562373095).abs() < 1e-12);
        assert_eq!(m.per_seed.len(), 2);
        assert_eq!(m.params, 7);
        assert!((m.teacher_agreement.unwrap() - 0.6).abs() < 1e-12);
    }
}
