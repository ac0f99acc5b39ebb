//! A distilled student, once per seed: every training row, the teacher's logits as stored, labels
//! only where the student may see them.

use std::sync::Arc;

use distill_cache::Fingerprint;
use distill_data::LabelState;
use distill_nn::confidence::RowWeighted;
use distill_nn::hint::{HintKind, HintTargets};
use distill_nn::NO_LABEL;

use super::fit::{Fit, ModelJob};
use super::{per_seed_name, Context, Found, Output, Role, Stage, StageKind, STUDENT};
use crate::run::derive_seed;
use crate::{keys, PipelineError};

pub(crate) struct StudentStage {
    /// The recipe seed this student is trained under (`student.seeds`).
    pub seed: u64,
    /// Whether the recipe trains several seeds (names carry `@seed` then).
    pub several: bool,
    /// Whether it learns from an ensemble of teachers.
    pub ensemble: bool,
    /// With a feature hint, the stage its teacher features come from: `features` (cached) or
    /// `teacher` (computed from its model).
    pub hint: Option<&'static str>,
}

impl StudentStage {
    fn job<'a>(&self, cx: &'a Context, name: &'a str) -> ModelJob<'a> {
        let spec = &cx.pipeline().student.model;
        ModelJob { kind: &STUDENT, role: Role::Student, name, shape: &cx.student_shape, init_seed: derive_seed(self.seed, "student"), spec }
    }
}

/// The teacher's features at the hint's `teacher_layer` for the student's training rows: read
/// from the features stage, or computed from the teacher's model (`features: computed`);
/// `rows`: the confidence filter's.
fn hint_targets(
    p: &distill_spec::Pipeline,
    source: Option<&Output>,
    data: &distill_data::Prepared,
    rows: Option<&[usize]>,
) -> Result<Option<HintTargets>, PipelineError> {
    let Some(hint) = p.student.loss.hint() else { return Ok(None) };
    let h = hint.term;
    let (features, width) = match source {
        Some(Output::Features(f)) => (f.values.clone(), f.width),
        Some(Output::Model { trained, .. }) => {
            let (values, width) = trained
                .model
                .hidden_features(&data.train.x, h.teacher_layer)
                .ok_or_else(|| PipelineError::key("student.loss.terms.hint.teacher_layer", format!("the teacher has no hidden layer {}", h.teacher_layer)))?;
            (Arc::new(values), width)
        }
        _ => return Err(PipelineError::key("student.loss.terms.hint", "a hint needs the teacher's model (not external logits)")),
    };
    let features = match rows {
        Some(rows) => Arc::new(rows.iter().flat_map(|&r| features[r * width..(r + 1) * width].iter().copied()).collect()),
        None => features,
    };
    let kind = match h.measure {
        distill_spec::HintMeasure::Mse => HintKind::Mse,
        distill_spec::HintMeasure::Cosine => HintKind::Cosine,
    };
    Ok(Some(HintTargets { features, width, student_layer: h.student_layer, kind, weight: hint.weight }))
}

impl Stage for StudentStage {
    fn kind(&self) -> &'static StageKind {
        &STUDENT
    }

    fn name(&self) -> String {
        per_seed_name(&STUDENT, self.seed, self.several)
    }

    fn seed(&self) -> Option<u64> {
        Some(self.seed)
    }

    fn inputs(&self) -> Vec<String> {
        // Several teachers: the ensemble's combined logits; one: its logits.
        let mut inputs = vec![if self.ensemble { "ensemble" } else { "logits" }.to_string()];
        inputs.extend(self.hint.map(String::from));
        inputs
    }

    fn fingerprint(&self, cx: &Context, inputs: &[&Output]) -> Result<Fingerprint, PipelineError> {
        Ok(keys::student(cx.pipeline(), cx.data, &inputs[0].identity(), derive_seed(self.seed, "student"), &cx.plugins_hash))
    }

    fn find(&self, cx: &Context, fp: &Fingerprint, _: &[&Output], forced: bool) -> Result<Option<Found>, PipelineError> {
        Ok(self.job(cx, &self.name()).find(cx, fp, forced))
    }

    fn compute(&self, cx: &Context, fp: &Fingerprint, inputs: &[&Output]) -> Result<Output, PipelineError> {
        let Output::Logits(logits) = inputs[0] else { return Err(PipelineError::Graph("the student's input is not the teachers' logits")) };
        let (data, name) = (cx.data, self.name());
        let job = self.job(cx, &name);
        let p = cx.pipeline();
        let labels: Vec<u32> = data.train.y.iter().zip(&data.train.state).map(|(&y, &s)| if s == LabelState::Labelled { y } else { NO_LABEL }).collect();
        let filtered = crate::transfer::filter(p, data, &labels, &logits.values);
        let weighted = p.data.transfer.as_ref().and_then(|t| t.weight).map(|rule| RowWeighted { inner: cx.student_loss.as_ref(), rule });
        let fit = Fit {
            x: filtered.as_ref().map_or(&data.train.x, |f| &f.x),
            labels: filtered.as_ref().map_or(&labels, |f| &f.labels),
            teacher: Some(filtered.as_ref().map_or(&logits.values, |f| &f.teacher)),
            loss: weighted.as_ref().map_or(cx.student_loss.as_ref(), |w| w as &dyn distill_nn::Loss),
            spec: filtered.as_ref().map_or(&p.student.train, |f| &f.train),
            seed: job.init_seed,
            name: &name,
            max_steps: filtered.as_ref().map(|f| f.max_steps),
            hint: hint_targets(p, inputs.get(1).copied(), data, filtered.as_ref().map(|f| f.rows.as_slice()))?,
        };
        job.train(cx, fp, fit.labels.len(), &fit)
    }
}
