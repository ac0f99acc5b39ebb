//! The teacher's logits over every training row (transfer set included), keyed by the teacher,
//! the rows and the storage (`full` or `top_k=K`): read from the cache, or predicted (aligned, for
//! external logits) and stored as Parquet.

use std::path::{Path, PathBuf};

use distill_cache::{decode_logits, encode_logits, hash_bytes, Fingerprint, LogitMeta};
use distill_nn::predict_logits;

use super::fit::short;
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

pub(crate) struct LogitsStage;

impl LogitsStage {
    pub(crate) fn meta(cx: &Context, teacher_id: &str) -> LogitMeta {
        let data = cx.data;
        let top_k = cx.pipeline().teacher.cache.as_ref().and_then(|c| c.top_k);
        LogitMeta { teacher_fingerprint: teacher_id.to_string(), data_fingerprint: data.fingerprint.clone(), class_names: data.class_names.clone(), top_k }
    }
}

impl Stage for LogitsStage {
    fn kind(&self) -> &'static StageKind {
        &LOGITS
    }

    fn name(&self) -> String {
        "logits".into()
    }

    fn hit_name(&self) -> String {
        "teacher_logits".into()
    }

    fn inputs(&self) -> Vec<String> {
        vec!["teacher".into()]
    }

    fn fingerprint(&self, cx: &Context, inputs: &[&Output]) -> Result<Fingerprint, PipelineError> {
        let classes = cx.data.classes();
        if let Some(k) = cx.pipeline().teacher.cache.as_ref().and_then(|c| c.top_k).filter(|&k| k > classes) {
            return Err(PipelineError::key("teacher.cache.top_k", format!("{k} is more than the {classes} classes")));
        }
        Ok(keys::logits(&inputs[0].identity(), cx.data, &keys::storage(cx.pipeline())))
    }

    fn find(&self, cx: &Context, fp: &Fingerprint, inputs: &[&Output], forced: bool) -> Result<Option<Found>, PipelineError> {
        let path = cx.cache.logits(&fp.key);
        let found = cached_logits(cx, &path, &Self::meta(cx, &inputs[0].identity()), forced);
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
        let meta = Self::meta(cx, &inputs[0].identity());
        let bytes = match shards::from_parts(cx, &fp.key, &meta, inputs[0])? {
            Some(bytes) => bytes,
            None => {
                tracing::info!(key = %short(&fp.key), rows = data.train.len(), storage = keys::storage(cx.pipeline()), "teacher logits: computing");
                let logits = match inputs[0] {
                    Output::Model { trained, .. } => predict_logits(&trained.model, &data.train.x),
                    Output::External(e) => e.train.clone(),
                    Output::Logits(_) => return Err(PipelineError::Graph("the logits' input is not a teacher")),
                };
                encode_logits(&path, &meta, &data.train.row_ids, &logits)?
            }
        };
        cx.cache.store(LOGITS.name, &fp.key, &path, &bytes, &cx.pipeline().name)?;
        // Train on what was stored (top-k rebuilt), so a later cache hit trains the same.
        let values = decode_logits(&path, bytes.clone())?.logits;
        Ok(Output::Logits(Logits { values, blake3: hash_bytes(&bytes), key: fp.key.clone(), path }))
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
    match decode_logits(path, bytes.clone()) {
        Ok(file) if file.meta == *meta && file.row_ids == cx.data.train.row_ids => Some((file.logits, bytes)),
        Ok(_) => {
            tracing::warn!(path = %path.display(), "cached logits belong to another teacher or other rows; recomputing");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "cached logits are unreadable; recomputing");
            None
        }
    }
}
