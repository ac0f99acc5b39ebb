//! With `teachers:`, every teacher and their ensemble measured on the test (and validation)
//! split: each teacher's accuracy and the accuracy of the combined logits the student learns from.

use serde::Serialize;

use distill_data::Prepared;
use distill_nn::ensemble::combine;
use distill_nn::{accuracy, predict_logits};

use crate::stages::{ensemble_settings, teacher_name, Context, Output};
use crate::walk::Walked;

/// One teacher of an ensemble.
#[derive(Debug, Clone, Serialize)]
pub struct TeacherEval {
    /// Its stage name: `teacher`, `teacher2`, …
    pub name: String,
    /// Test accuracy; absent for external logits without the test rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_accuracy: Option<f64>,
    /// 0 for external logits.
    pub params: usize,
}

/// The ensemble: its rule, weights (normalised), temperature, every teacher and its own accuracy.
#[derive(Debug, Clone, Serialize)]
pub struct EnsembleSummary {
    pub rule: &'static str,
    pub weights: Vec<f64>,
    pub temperature: f64,
    pub teachers: Vec<TeacherEval>,
    /// Test accuracy of the combined logits (when every teacher has test logits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_accuracy: Option<f64>,
}

/// Test and validation logits of one teacher output (none for what has no model or test rows).
fn split_logits(output: &Output, data: &Prepared) -> (Option<Vec<f32>>, Option<Vec<f32>>, usize) {
    match output {
        Output::Model { trained, .. } => {
            let val = (!data.val.is_empty()).then(|| predict_logits(&trained.model, &data.val.x));
            (Some(predict_logits(&trained.model, &data.test.x)), val, trained.model.param_count())
        }
        Output::External(e) => (e.test.clone(), None, 0),
        Output::Logits(_) | Output::Features(_) | Output::Artifact(_) | Output::Evaluation(_) => (None, None, 0),
    }
}

/// The ensemble's summary, for a recipe with `teachers`.
pub(crate) fn evaluate(cx: &Context, walked: &Walked) -> Option<EnsembleSummary> {
    let (p, data) = (cx.pipeline(), cx.data);
    if p.teachers.is_empty() {
        return None;
    }
    let k = data.classes();
    let (rule, weights, temperature) = ensemble_settings(p, &cx.student_loss.soft_target_temperatures());
    let (mut teachers, mut tests, mut vals) = (Vec::new(), Vec::new(), Vec::new());
    for index in 0..=p.teachers.len() {
        let name = teacher_name(index);
        let (test, val, params) = walked.output(&name).map(|o| split_logits(o, data)).unwrap_or((None, None, 0));
        teachers.push(TeacherEval {
            name,
            accuracy: test.as_ref().map(|t| accuracy(t, &data.test.y, k)),
            val_accuracy: val.as_ref().map(|v| accuracy(v, &data.val.y, k)),
            params,
        });
        tests.push(test);
        vals.push(val);
    }
    let combined = |all: &[Option<Vec<f32>>], y: &[u32]| -> Option<f64> {
        let all: Option<Vec<&[f32]>> = all.iter().map(|v| v.as_deref()).collect();
        combine(&all?, k, rule, Some(&weights), temperature).ok().map(|z| accuracy(&z, y, k))
    };
    let (accuracy, val_accuracy) = (combined(&tests, &data.test.y), combined(&vals, &data.val.y));
    Some(EnsembleSummary { rule: rule.as_str(), weights: weights.clone(), temperature, teachers, accuracy, val_accuracy })
}

impl EnsembleSummary {
    /// One line per teacher and one for the ensemble, as the summary table and report print them.
    pub fn lines(&self) -> Vec<(String, String)> {
        let acc = |a: Option<f64>| a.map_or("-".to_string(), |a| format!("{a:.4}"));
        let mut out: Vec<(String, String)> = self
            .teachers
            .iter()
            .zip(&self.weights)
            .map(|(t, w)| (format!("{} (weight {w:.3})", t.name), format!("test accuracy {}, {} params", acc(t.accuracy), t.params)))
            .collect();
        // The temperature matters to the mean of probabilities only.
        let rule = if self.rule == "mean_probs" { format!("{}, T = {}", self.rule, self.temperature) } else { self.rule.to_string() };
        out.push((format!("ensemble ({rule})"), format!("test accuracy {}", acc(self.accuracy))));
        out
    }
}
