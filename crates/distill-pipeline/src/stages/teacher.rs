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

/// The teacher at `index`: 0 is `teacher`, 1.. are `teachers[index - 1]`.
pub(crate) struct TeacherStage {
    pub index: usize,
}

/// The stage name of teacher `index`: `teacher`, `teacher2`, `teacher3`, …
pub(crate) fn teacher_name(index: usize) -> String {
    if index == 0 {
        "teacher".into()
    } else {
        format!("teacher{}", index + 1)
    }
}

/// Where the recipe's teacher comes from.
enum Source<'a> {
    Logits(&'a Path),
    Weights(&'a Path, &'a MlpShape),
    Trained(&'a MlpShape),
}

fn source<'a>(cx: &'a Context, index: usize) -> Result<Source<'a>, PipelineError> {
    let (spec, key, shape) = cx.teacher_at(index);
    match (&spec.logits, &spec.weights, shape) {
        (Some(ext), _, _) => Ok(Source::Logits(&ext.path)),
        (None, Some(path), Some(shape)) => Ok(Source::Weights(path, shape)),
        (None, None, Some(shape)) => Ok(Source::Trained(shape)),
        _ => Err(PipelineError::key(format!("{key}.model"), "the teacher needs a `model` or `logits`")),
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
    fn job<'a>(&self, cx: &'a Context, shape: &'a MlpShape, name: &'a str) -> Result<ModelJob<'a>, PipelineError> {
        let (spec, key, _) = cx.teacher_at(self.index);
        let spec = spec.model.as_ref().ok_or_else(|| PipelineError::key(format!("{key}.model"), "missing"))?;
        Ok(ModelJob { kind: &TEACHER, role: Role::Teacher, name, shape, init_seed: derive_seed(cx.pipeline().seed, name), spec })
    }
}

impl Stage for TeacherStage {
    fn kind(&self) -> &'static StageKind {
        &TEACHER
    }

    fn name(&self) -> String {
        teacher_name(self.index)
    }

    fn fingerprint(&self, cx: &Context, _: &[&Output]) -> Result<Fingerprint, PipelineError> {
        let (spec, key, _) = cx.teacher_at(self.index);
        Ok(match source(cx, self.index)? {
            Source::Logits(path) => given("teacher.logits", &hash_bytes(&read_given(cx, &format!("{key}.logits.path"), path)?)),
            Source::Weights(path, _) => given("teacher.weights", &hash_bytes(&read_given(cx, &format!("{key}.weights"), path)?)),
            Source::Trained(_) => keys::teacher(cx.pipeline(), spec, &self.name(), cx.data, &cx.plugins_hash),
        })
    }

    fn find(&self, cx: &Context, fp: &Fingerprint, _: &[&Output], forced: bool) -> Result<Option<Found>, PipelineError> {
        let (name, key) = (self.name(), cx.teacher_at(self.index).1);
        Ok(match source(cx, self.index)? {
            Source::Logits(path) => {
                let e = external::load(&cx.loaded.base_dir, path, cx.data)?;
                let what = format!("external logits {} (blake3 {})", path.display(), short(&e.blake3));
                Some(Found::Given(Output::External(e), what))
            }
            Source::Weights(path, shape) => {
                let bytes = read_given(cx, &format!("{key}.weights"), path)?;
                let mut model = Mlp::new(shape.clone(), cx.pipeline().seed);
                load_weights(&mut model, &bytes)
                    .map_err(|source| PipelineError::Checkpoint { context: format!("{key}.weights: {}", path.display()), source })?;
                tracing::info!(path = %path.display(), "{name}: loaded given weights, no training");
                let what = format!("weights {} (blake3 {})", path.display(), short(&hash_bytes(&bytes)));
                Some(Found::Given(Output::Model { role: Role::Teacher, trained: Trained { model, history: Vec::new(), bytes }, seconds: 0.0 }, what))
            }
            Source::Trained(shape) => self.job(cx, shape, &name)?.find(cx, fp, forced),
        })
    }

    fn compute(&self, cx: &Context, fp: &Fingerprint, _: &[&Output]) -> Result<Output, PipelineError> {
        let Source::Trained(shape) = source(cx, self.index)? else { return Err(PipelineError::Graph("a given teacher is never computed")) };
        let name = self.name();
        let job = self.job(cx, shape, &name)?;
        let rows = cx.data.train.subset_or_all(|s| cx.teacher_sees(s));
        let fit = Fit {
            x: &rows.x,
            labels: &rows.y,
            teacher: None,
            loss: &CrossEntropy,
            spec: &cx.teacher_at(self.index).0.train,
            seed: job.init_seed,
            name: &name,
            max_steps: None,
            hint: None,
        };
        job.train(cx, fp, rows.len(), &fit)
    }
}
