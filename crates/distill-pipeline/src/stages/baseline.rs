//! The baseline, once per seed: the student's network trained from scratch on the labelled rows
//! alone, with the same init and batch order and a budget matched by `student.baseline_budget`.

use distill_cache::Fingerprint;
use distill_data::LabelState;
use distill_nn::CrossEntropy;

use super::fit::{Fit, ModelJob};
use super::{per_seed_name, Context, Found, Output, Role, Stage, StageKind, BASELINE};
use crate::run::derive_seed;
use crate::{keys, PipelineError};

pub(crate) struct BaselineStage {
    pub seed: u64,
    pub several: bool,
}

impl BaselineStage {
    fn job<'a>(&self, cx: &'a Context, name: &'a str) -> ModelJob<'a> {
        let spec = &cx.pipeline().student.model;
        ModelJob { kind: &BASELINE, role: Role::Baseline, name, shape: &cx.student_shape, init_seed: derive_seed(self.seed, "student"), spec }
    }
}

impl Stage for BaselineStage {
    fn kind(&self) -> &'static StageKind {
        &BASELINE
    }

    fn name(&self) -> String {
        per_seed_name(&BASELINE, self.seed, self.several)
    }

    fn seed(&self) -> Option<u64> {
        Some(self.seed)
    }

    fn fingerprint(&self, cx: &Context, _: &[&Output]) -> Result<Fingerprint, PipelineError> {
        let (p, data) = (cx.pipeline(), cx.data);
        let (train, steps) = keys::baseline_budget(p, data);
        Ok(keys::baseline(p, data, &train, steps, derive_seed(self.seed, "student"), &cx.plugins_hash))
    }

    fn find(&self, cx: &Context, fp: &Fingerprint, _: &[&Output], forced: bool) -> Result<Option<Found>, PipelineError> {
        Ok(self.job(cx, &self.name()).find(cx, fp, forced))
    }

    fn compute(&self, cx: &Context, fp: &Fingerprint, _: &[&Output]) -> Result<Output, PipelineError> {
        let (p, data, name) = (cx.pipeline(), cx.data, self.name());
        let job = self.job(cx, &name);
        let rows = data.train.subset_or_all(|s| s == LabelState::Labelled);
        let (train, steps) = keys::baseline_budget(p, data);
        if rows.len() != data.train.len() {
            tracing::info!(rows = rows.len(), steps, epochs = train.epochs, rule = ?p.student.baseline_budget, "baseline: labelled rows only");
        }
        let fit = Fit {
            x: &rows.x,
            labels: &rows.y,
            teacher: None,
            loss: &CrossEntropy,
            spec: &train,
            seed: job.init_seed,
            name: &name,
            max_steps: Some(steps),
            hint: None,
        };
        job.train(cx, fp, rows.len(), &fit)
    }
}
