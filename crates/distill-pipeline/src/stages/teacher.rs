//! The teacher: given as logits (`teacher.logits`, no model), given as weights
//! (`teacher.weights`), or trained on the training rows it may see and cached.

use std::path::Path;

use distill_cache::{hash_bytes, Fingerprint, FingerprintBuilder};
use distill_data::resolve_path;
use distill_nn::{load_weights, CrossEntropy, Mlp, MlpShape};

use super::fit::{short, Fit, ModelJob};
use super::{Context, Found, Output, Role, Stage, StageKind, TEACHER};
use crate::run::derive_seed;
use crate::trained::Trained;
use crate::{external, keys, PipelineError};

pub(crate) struct TeacherStage;

/// Where the recipe's teacher comes from.
enum Source<'a> {
    Logits(&'a Path),
    Weights(&'a Path, &'a MlpShape),
    Trained(&'a MlpShape),
}

fn source<'a>(cx: &'a Context) -> Result<Source<'a>, PipelineError> {
    let p = cx.pipeline();
    match (&p.teacher.logits, &p.teacher.weights, &cx.teacher_shape) {
        (Some(ext), _, _) => Ok(Source::Logits(&ext.path)),
        (None, Some(path), Some(shape)) => Ok(Source::Weights(path, shape)),
        (None, None, Some(shape)) => Ok(Source::Trained(shape)),
        _ => Err(PipelineError::key("teacher.model", "the teacher needs a `model` or `logits`")),
    }
}

/// Reads a file the recipe names; errors name the key and the file.
fn read_given(cx: &Context, key: &str, path: &Path) -> Result<Vec<u8>, PipelineError> {
    let path = resolve_path(&cx.loaded.base_dir, path).map_err(|source| PipelineError::Data { context: key.into(), source })?;
    std::fs::read(&path).map_err(|source| PipelineError::File { key: key.into(), path, source })
}

fn given(key: &str, id: &str) -> Fingerprint {
    FingerprintBuilder::new("teacher/given").part(key, id.as_bytes()).finish()
}

impl TeacherStage {
    fn job<'a>(cx: &'a Context, shape: &'a MlpShape) -> Result<ModelJob<'a>, PipelineError> {
        let spec = cx.pipeline().teacher.model.as_ref().ok_or_else(|| PipelineError::key("teacher.model", "missing"))?;
        Ok(ModelJob { kind: &TEACHER, role: Role::Teacher, name: "teacher", shape, init_seed: derive_seed(cx.pipeline().seed, "teacher"), spec })
    }
}

impl Stage for TeacherStage {
    fn kind(&self) -> &'static StageKind {
        &TEACHER
    }

    fn name(&self) -> String {
        "teacher".into()
    }

    fn fingerprint(&self, cx: &Context, _: &[&Output]) -> Result<Fingerprint, PipelineError> {
        Ok(match source(cx)? {
            Source::Logits(path) => given("teacher.logits", &hash_bytes(&read_given(cx, "teacher.logits.path", path)?)),
            Source::Weights(path, _) => given("teacher.weights", &hash_bytes(&read_given(cx, "teacher.weights", path)?)),
            Source::Trained(_) => keys::teacher(cx.pipeline(), cx.data, &cx.plugins_hash),
        })
    }

    fn find(&self, cx: &Context, fp: &Fingerprint, _: &[&Output], forced: bool) -> Result<Option<Found>, PipelineError> {
        Ok(match source(cx)? {
            Source::Logits(path) => {
                let e = external::load(&cx.loaded.base_dir, path, cx.data)?;
                let what = format!("external logits {} (blake3 {})", path.display(), short(&e.blake3));
                Some(Found::Given(Output::External(e), what))
            }
            Source::Weights(path, shape) => {
                let bytes = read_given(cx, "teacher.weights", path)?;
                let mut model = Mlp::new(shape.clone(), cx.pipeline().seed);
                load_weights(&mut model, &bytes)
                    .map_err(|source| PipelineError::Checkpoint { context: format!("teacher.weights: {}", path.display()), source })?;
                tracing::info!(path = %path.display(), "teacher: loaded given weights, no training");
                let what = format!("weights {} (blake3 {})", path.display(), short(&hash_bytes(&bytes)));
                Some(Found::Given(Output::Model { role: Role::Teacher, trained: Trained { model, history: Vec::new(), bytes }, seconds: 0.0 }, what))
            }
            Source::Trained(shape) => Self::job(cx, shape)?.find(cx, fp, forced),
        })
    }

    fn compute(&self, cx: &Context, fp: &Fingerprint, _: &[&Output]) -> Result<Output, PipelineError> {
        let Source::Trained(shape) = source(cx)? else { return Err(PipelineError::Graph("a given teacher is never computed")) };
        let job = Self::job(cx, shape)?;
        let rows = cx.data.train.subset(|s| cx.teacher_sees(s));
        let p = cx.pipeline();
        let fit = Fit {
            x: &rows.x,
            labels: &rows.y,
            teacher: None,
            loss: &CrossEntropy,
            spec: &p.teacher.train,
            seed: job.init_seed,
            name: "teacher",
            max_steps: None,
        };
        job.train(cx, fp, rows.len(), &fit)
    }
}
