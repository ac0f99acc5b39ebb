//! One training job (rows, labels, optional teacher logits, loss, budget) and the model stages'
//! shared cache logic: find a trained model by its fingerprint, or train and store it.

use std::path::PathBuf;
use std::time::Instant;

use distill_cache::{Fingerprint, KeyBuilder};
use distill_nn::{train, Checkpointing, EpochStats, Loss, Mlp, MlpShape, TrainOptions, TrainTargets};
use distill_spec::{ModelSpec, TrainSpec};

use super::{Context, Found, Output, Role, StageKind};
use crate::trained;
use crate::PipelineError;

/// One training job.
pub(crate) struct Fit<'a> {
    pub x: &'a [f32],
    pub labels: &'a [u32],
    pub teacher: Option<&'a [f32]>,
    pub loss: &'a dyn Loss,
    pub spec: &'a TrainSpec,
    pub seed: u64,
    pub name: &'a str,
    pub max_steps: Option<usize>,
    /// A feature hint (students with `student.hint`).
    pub hint: Option<distill_nn::hint::HintTargets>,
}

/// Where training jobs keep their per-epoch checkpoints: in the cache, keyed by the whole
/// resolved recipe, the data, the job's name and seed, so `--resume` continues only the run that
/// was interrupted.
pub(crate) struct Checkpoints {
    pub dir: PathBuf,
    pub recipe: String,
    pub resume: bool,
}

impl Checkpoints {
    fn for_job(&self, name: &str, seed: u64) -> Checkpointing {
        let job = KeyBuilder::new("checkpoint-job/v1")
            .part("recipe", self.recipe.as_bytes())
            .part("name", name.as_bytes())
            .part("seed", &seed.to_le_bytes())
            .finish();
        Checkpointing { path: self.dir.join(format!("{job}.ckpt")), job, resume: self.resume }
    }
}

impl Fit<'_> {
    pub(crate) fn run(&self, cx: &Context, model: &mut Mlp) -> Result<Vec<EpochStats>, PipelineError> {
        let (spec, data) = (self.spec, cx.data);
        let options = TrainOptions {
            checkpoint: Some(cx.checkpoints.for_job(self.name, self.seed)),
            device: cx.pipeline().device,
            hint: self.hint.clone(),
            ..TrainOptions::from_spec(spec, self.seed, self.name, self.max_steps)
        };
        let targets = TrainTargets { x: self.x, labels: self.labels, teacher_logits: self.teacher };
        let validation = (!data.val.is_empty()).then_some((data.val.x.as_slice(), data.val.y.as_slice()));
        let t0 = Instant::now();
        let history =
            train(model, &targets, self.loss, &options, validation).map_err(|message| PipelineError::Training { model: self.name.to_string(), message })?;
        let seconds = t0.elapsed().as_secs_f64();
        let rows = self.labels.len();
        let steps = self.max_steps.unwrap_or(usize::MAX).min(spec.epochs * options.steps_per_epoch(rows));
        let samples = (steps * spec.batch).min(rows * spec.epochs) as f64;
        tracing::info!(
            model = self.name,
            rows,
            epochs = history.len(),
            seconds = format!("{seconds:.2}"),
            samples_per_s = format!("{:.0}", samples / seconds.max(1e-9)),
            "trained"
        );
        Ok(history)
    }
}

/// A trained-model stage: which kind and role, its network, init seed and spec.
pub(crate) struct ModelJob<'a> {
    pub kind: &'static StageKind,
    pub role: Role,
    pub name: &'a str,
    pub shape: &'a MlpShape,
    pub init_seed: u64,
    pub spec: &'a ModelSpec,
}

impl ModelJob<'_> {
    /// The model stored under `fp`, when it is there, intact and of this shape.
    pub(crate) fn find(&self, cx: &Context, fp: &Fingerprint, forced: bool) -> Option<Found> {
        let found = trained::cached(cx.cache, self.kind.name, &fp.key, self.shape, self.init_seed, forced)?;
        tracing::info!(key = %short(&fp.key), "{}: cache hit, skipped training", self.name);
        Some(Found::Cached(Output::Model { role: self.role, trained: found, seconds: 0.0 }))
    }

    /// Trains a fresh network with `fit` and stores it under `fp`.
    pub(crate) fn train(&self, cx: &Context, fp: &Fingerprint, rows: usize, fit: &Fit) -> Result<Output, PipelineError> {
        tracing::info!(key = %short(&fp.key), params = self.shape.param_count(), rows, "{}: training", self.name);
        let t0 = Instant::now();
        let mut model = Mlp::new(self.shape.clone(), self.init_seed);
        let history = fit.run(cx, &mut model)?;
        let seconds = t0.elapsed().as_secs_f64();
        let trained = trained::store(cx.cache, self.kind.name, &fp.key, self.spec, model, history, &cx.pipeline().name)?;
        Ok(Output::Model { role: self.role, trained, seconds })
    }
}

pub(crate) fn short(key: &str) -> &str {
    &key[..key.len().min(12)]
}
