//! Several teachers' cached logits combined into the student's soft targets (`teachers:` and
//! `ensemble:`). Cheap and derived from cached inputs, so it is combined on every run, never
//! stored; its identity (the students' input) covers the rule, weights, temperature and every
//! teacher's logits file.

use distill_cache::{hash_bytes, Fingerprint, FingerprintBuilder};
use distill_nn::ensemble::combine;
use distill_spec::Pipeline;

use super::logits::{logits_name, Logits};
use super::{Context, Found, Output, Stage, StageKind, ENSEMBLE};
use crate::PipelineError;

pub(crate) struct EnsembleStage {
    /// How many teachers (`teacher` and `teachers`).
    pub teachers: usize,
}

/// The ensemble's rule, normalised weights and the temperature its mean of probabilities uses
/// (the student loss's first soft-target temperature; 1 without one).
pub(crate) fn settings(p: &Pipeline, cx_temperatures: &[f64]) -> (distill_spec::EnsembleRule, Vec<f64>, f64) {
    let n = 1 + p.teachers.len();
    let spec = p.ensemble.clone().unwrap_or(distill_spec::EnsembleSpec { rule: Default::default(), weights: None });
    let weights = spec.weights.unwrap_or_else(|| vec![1.0; n]);
    let total: f64 = weights.iter().sum();
    (spec.rule, weights.iter().map(|w| w / total).collect(), cx_temperatures.first().copied().unwrap_or(1.0))
}

impl EnsembleStage {
    fn combined(&self, cx: &Context, inputs: &[&Output]) -> Result<Vec<f32>, PipelineError> {
        let all: Vec<&[f32]> = inputs
            .iter()
            .map(|o| match o {
                Output::Logits(l) => Ok(l.values.as_slice()),
                _ => Err(PipelineError::Graph("an ensemble input is not a teacher's logits")),
            })
            .collect::<Result<_, _>>()?;
        let (rule, weights, t) = settings(cx.pipeline(), &cx.student_loss.soft_target_temperatures());
        combine(&all, cx.data.classes(), rule, Some(&weights), t).map_err(|m| PipelineError::key("ensemble", m))
    }
}

impl Stage for EnsembleStage {
    fn kind(&self) -> &'static StageKind {
        &ENSEMBLE
    }

    fn name(&self) -> String {
        "ensemble".into()
    }

    fn inputs(&self) -> Vec<String> {
        (0..self.teachers).map(logits_name).collect()
    }

    fn fingerprint(&self, cx: &Context, inputs: &[&Output]) -> Result<Fingerprint, PipelineError> {
        let (rule, weights, t) = settings(cx.pipeline(), &cx.student_loss.soft_target_temperatures());
        let mut b = FingerprintBuilder::new("ensemble/v1")
            .part("ensemble.rule", rule.as_str().as_bytes())
            .part("ensemble.weights", format!("{weights:?}").as_bytes())
            .part("temperature", &t.to_le_bytes());
        for (i, input) in inputs.iter().enumerate() {
            b = b.part(&logits_name(i), input.identity().as_bytes());
        }
        Ok(b.finish())
    }

    fn find(&self, cx: &Context, fp: &Fingerprint, inputs: &[&Output], _: bool) -> Result<Option<Found>, PipelineError> {
        let values = self.combined(cx, inputs)?;
        let (rule, _, t) = settings(cx.pipeline(), &cx.student_loss.soft_target_temperatures());
        let what = format!("{} of {} teachers' logits (T = {t})", rule.as_str(), self.teachers);
        let logits = Logits { values, blake3: hash_bytes(fp.key.as_bytes()), key: fp.key.clone(), path: Default::default() };
        Ok(Some(Found::Given(Output::Logits(logits), what)))
    }

    fn compute(&self, _: &Context, _: &Fingerprint, _: &[&Output]) -> Result<Output, PipelineError> {
        Err(PipelineError::Graph("the ensemble is combined in `find`, never computed"))
    }
}
