//! The teacher's hidden-layer features over every training row, for a feature hint with
//! `features: cached`: computed once per teacher, rows and layer, and stored as Parquet beside
//! the logits, so the students of every seed (and later runs) read them instead of running the
//! teacher again.

use std::path::Path;
use std::sync::Arc;

use distill_cache::{decode_features, encode_features, hash_bytes, FeatureMeta, Fingerprint};

use super::fit::short;
use super::{Context, Found, Output, Stage, StageKind, FEATURES};
use crate::{keys, PipelineError};

/// The features as the student's hint reads them.
pub(crate) struct TeacherFeatures {
    /// Row-major `rows × width`, over the training rows in order.
    pub values: Arc<Vec<f32>>,
    pub width: usize,
    /// blake3 of the Parquet file.
    pub blake3: String,
}

/// The features of the first teacher at the hint's `teacher_layer`.
pub(crate) struct FeaturesStage {
    pub layer: usize,
}

const LAYER_KEY: &str = "student.loss.terms.hint.teacher_layer";

impl FeaturesStage {
    fn meta(&self, cx: &Context, teacher_id: &str, width: usize) -> FeatureMeta {
        FeatureMeta { teacher_fingerprint: teacher_id.to_string(), data_fingerprint: cx.data.fingerprint.clone(), layer: self.layer, width }
    }

    /// The features in `bytes` if they are for exactly this teacher, rows and layer.
    fn fitting(&self, cx: &Context, path: &Path, bytes: Vec<u8>, teacher_id: &str) -> Result<TeacherFeatures, String> {
        let blake3 = hash_bytes(&bytes);
        let file = decode_features(path, bytes).map_err(|e| format!("unreadable: {e}"))?;
        if file.meta != self.meta(cx, teacher_id, file.meta.width) || file.row_ids != cx.data.train.row_ids {
            return Err("they belong to another teacher, layer or other rows".into());
        }
        Ok(TeacherFeatures { values: Arc::new(file.features), width: file.meta.width, blake3 })
    }
}

impl Stage for FeaturesStage {
    fn kind(&self) -> &'static StageKind {
        &FEATURES
    }

    fn name(&self) -> String {
        FEATURES.name.into()
    }

    fn inputs(&self) -> Vec<String> {
        vec!["teacher".into()]
    }

    fn fingerprint(&self, cx: &Context, inputs: &[&Output]) -> Result<Fingerprint, PipelineError> {
        Ok(keys::features(&inputs[0].identity(), cx.data, self.layer))
    }

    fn find(&self, cx: &Context, fp: &Fingerprint, inputs: &[&Output], forced: bool) -> Result<Option<Found>, PipelineError> {
        if forced {
            return Ok(None);
        }
        let path = cx.cache.artifact(FEATURES.name, &fp.key);
        let found = match cx.cache.load_verified(&path) {
            Ok(found) => found.map(|bytes| self.fitting(cx, &path, bytes, &inputs[0].identity())),
            Err(problem) => Some(Err(problem.to_string())),
        };
        match found {
            Some(Ok(features)) => {
                tracing::info!(key = %short(&fp.key), "teacher features: cache hit");
                Ok(Some(Found::Cached(Output::Features(features))))
            }
            Some(Err(problem)) => {
                tracing::warn!(path = %path.display(), %problem, "cached teacher features are unusable; recomputing");
                Ok(None)
            }
            None => Ok(None),
        }
    }

    fn compute(&self, cx: &Context, fp: &Fingerprint, inputs: &[&Output]) -> Result<Output, PipelineError> {
        let Output::Model { trained, .. } = inputs[0] else {
            return Err(PipelineError::key("student.loss.terms.hint", "a hint needs the teacher's model (not external logits)"));
        };
        let data = cx.data;
        tracing::info!(key = %short(&fp.key), rows = data.train.len(), layer = self.layer, "teacher features: computing");
        let (values, width) = trained
            .model
            .hidden_features(&data.train.x, self.layer)
            .ok_or_else(|| PipelineError::key(LAYER_KEY, format!("the teacher has no hidden layer {}", self.layer)))?;
        let path = cx.cache.artifact(FEATURES.name, &fp.key);
        let teacher_id = inputs[0].identity();
        let bytes = encode_features(&path, &self.meta(cx, &teacher_id, width), &data.train.row_ids, &values)?;
        // An intact entry that loads but does not fit is why they were computed: replace it.
        if matches!(cx.cache.load_verified(&path), Ok(Some(old)) if self.fitting(cx, &path, old.clone(), &teacher_id).is_err()) {
            cx.cache.replace(FEATURES.name, &fp.key, &path, &bytes, &cx.pipeline().name)?;
        } else {
            cx.cache.store(FEATURES.name, &fp.key, &path, &bytes, &cx.pipeline().name)?;
        }
        Ok(Output::Features(TeacherFeatures { values: Arc::new(values), width, blake3: hash_bytes(&bytes) }))
    }
}
