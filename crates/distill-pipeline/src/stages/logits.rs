//! The teacher's logits over every training row (transfer set included), keyed by the teacher,
//! the rows and the storage (`full` or `top_k=K`): read from the cache, or predicted (aligned, for
//! external logits) and stored as Parquet.

use std::path::{Path, PathBuf};

use distill_cache::{decode_logits, encode_logits, hash_bytes, Fingerprint, LogitMeta};
use distill_nn::predict_logits;

use super::fit::short;
use super::teacher::teacher_name;
use super::{shards, Context, Found, Output, Stage, StageKind, LOGITS};
use crate::{keys, PipelineError};

/// The teacher's logits as the students use them.
pub(crate) struct Logits {
    /// Row-major over the training rows, as stored (top-k rebuilt).
    pub values: Vec<f32>,
    /// blake3 of the Parquet file: the students' input.
    pub blake3: String,
    pub key: String,
    pub path: PathBuf,
}

/// The logits of teacher `index` (see [`TeacherStage`](super::teacher::TeacherStage)).
pub(crate) struct LogitsStage {
    pub index: usize,
}

impl LogitsStage {
    pub(crate) fn meta(&self, cx: &Context, teacher_id: &str) -> LogitMeta {
        let data = cx.data;
        let top_k = cx.teacher_at(self.index).0.cache.as_ref().and_then(|c| c.top_k);
        LogitMeta { teacher_fingerprint: teacher_id.to_string(), data_fingerprint: data.fingerprint.clone(), class_names: data.class_names.clone(), top_k }
    }
}

impl Stage for LogitsStage {
    fn kind(&self) -> &'static StageKind {
        &LOGITS
    }

    fn name(&self) -> String {
        logits_name(self.index)
    }

    fn hit_name(&self) -> String {
        format!("{}_logits", teacher_name(self.index))
    }

    fn inputs(&self) -> Vec<String> {
        vec![teacher_name(self.index)]
    }

    fn fingerprint(&self, cx: &Context, inputs: &[&Output]) -> Result<Fingerprint, PipelineError> {
        let classes = cx.data.classes();
        let (spec, key, _) = cx.teacher_at(self.index);
        if let Some(k) = spec.cache.as_ref().and_then(|c| c.top_k).filter(|&k| k > classes) {
            return Err(PipelineError::key(format!("{key}.cache.top_k"), format!("{k} is more than the {classes} classes")));
        }
        Ok(keys::logits(&inputs[0].identity(), cx.data, &keys::storage(spec)))
    }

    fn find(&self, cx: &Context, fp: &Fingerprint, inputs: &[&Output], forced: bool) -> Result<Option<Found>, PipelineError> {
        let path = cx.cache.logits(&fp.key);
        let found = cached_logits(cx, &path, &self.meta(cx, &inputs[0].identity()), forced);
        Ok(found.map(|(values, bytes)| {
            tracing::info!(key = %short(&fp.key), "teacher logits: cache hit, skipped inference");
            Found::Cached(Output::Logits(Logits { values, blake3: hash_bytes(&bytes), key: fp.key.clone(), path }))
        }))
    }

    fn pending(&self, cx: &Context, fp: &Fingerprint) -> Option<String> {
        match shards::status(cx, &fp.key)? {
            (count, missing) if missing.is_empty() => Some(format!("all {count} parts are in the cache: assembled, no inference")),
            (count, missing) => Some(format!("{}: computed here", shards::describe_missing(count, &missing))),
        }
    }

    fn compute(&self, cx: &Context, fp: &Fingerprint, inputs: &[&Output]) -> Result<Output, PipelineError> {
        let data = cx.data;
        let path = cx.cache.logits(&fp.key);
        let meta = self.meta(cx, &inputs[0].identity());
        let bytes = match shards::from_parts(cx, &fp.key, &meta, inputs[0])? {
            Some(bytes) => bytes,
            None => {
                tracing::info!(key = %short(&fp.key), rows = data.train.len(), storage = keys::storage(cx.teacher_at(self.index).0), "teacher logits: computing");
                let logits = match inputs[0] {
                    Output::Model { trained, .. } => predict_logits(&trained.model, &data.train.x),
                    Output::External(e) => e.train.clone(),
                    Output::Logits(_) | Output::Features(_) | Output::Artifact(_) | Output::Evaluation(_) => {
                        return Err(PipelineError::Graph("the logits' input is not a teacher"))
                    }
                };
                encode_logits(&path, &meta, &data.train.row_ids, &logits)?
            }
        };
        // An intact entry that loads but is for another teacher or other rows is why they were
        // computed: replace it, or every run would recompute and keep it.
        if matches!(cx.cache.load_verified(&path), Ok(Some(old)) if fitting(cx, &path, old.clone(), &meta).is_err()) {
            tracing::warn!(path = %path.display(), "replacing cached logits that do not fit this teacher and these rows");
            cx.cache.replace(LOGITS.name, &fp.key, &path, &bytes, &cx.pipeline().name)?;
        } else {
            cx.cache.store(LOGITS.name, &fp.key, &path, &bytes, &cx.pipeline().name)?;
        }
        // Train on what was stored (top-k rebuilt), so a later cache hit trains the same.
        let values = decode_logits(&path, bytes.clone())?.logits;
        Ok(Output::Logits(Logits { values, blake3: hash_bytes(&bytes), key: fp.key.clone(), path }))
    }
}

/// The stage name of teacher `index`'s logits: `logits`, `logits2`, …
pub(crate) fn logits_name(index: usize) -> String {
    if index == 0 {
        "logits".into()
    } else {
        format!("logits{}", index + 1)
    }
}

/// Reads cached logits if present, intact, and for exactly this teacher and these rows.
fn cached_logits(cx: &Context, path: &Path, meta: &LogitMeta, forced: bool) -> Option<(Vec<f32>, Vec<u8>)> {
    if forced {
        tracing::info!("teacher logits: --force, recomputing");
        return None;
    }
    let bytes = match cx.cache.load_verified(path) {
        Ok(found) => found?,
        Err(problem) => {
            tracing::warn!(path = %path.display(), %problem, "cached logits are unusable; recomputing");
            return None;
        }
    };
    match fitting(cx, path, bytes.clone(), meta) {
        Ok(logits) => Some((logits, bytes)),
        Err(why) => {
            tracing::warn!(path = %path.display(), problem = %why, "cached logits are unusable; recomputing");
            None
        }
    }
}

/// The logits in `bytes` if they are for exactly this teacher and these rows, else why not.
fn fitting(cx: &Context, path: &Path, bytes: Vec<u8>, meta: &LogitMeta) -> Result<Vec<f32>, String> {
    match decode_logits(path, bytes) {
        Ok(file) if file.meta == *meta && file.row_ids == cx.data.train.row_ids => Ok(file.logits),
        Ok(_) => Err("they belong to another teacher or other rows".into()),
        Err(e) => Err(format!("unreadable: {e}")),
    }
}
