//! Trained models in the cache (teacher, student, baseline): safetensors weights whose one
//! header metadata entry also holds the training history, so a cache hit restores the history
//! the run directory reports, and the metrics of a hit equal those of a miss.

use std::collections::HashMap;
use std::path::Path;

use distill_cache::Cache;
use distill_nn::{load_weights, save_weights, EpochStats, Mlp, MlpShape};
use distill_spec::ModelSpec;

use crate::PipelineError;

/// A model found in the cache (or just trained), with its artifact's bytes.
pub(crate) struct Trained {
    pub model: Mlp,
    pub history: Vec<EpochStats>,
    pub bytes: Vec<u8>,
}

/// Safetensors header metadata. One entry only: the header's map is a `HashMap`, and several
/// entries would be written in random order, making identical weights hash differently.
pub(crate) fn metadata(key: &str, model: &ModelSpec, history: Option<&[EpochStats]>) -> HashMap<String, String> {
    let mut value = serde_json::json!({"key": key, "model": model});
    if let Some(h) = history {
        value["history"] = serde_json::json!(h);
    }
    HashMap::from([("distill".to_string(), value.to_string())])
}

/// The `history` stored in a safetensors header by [`metadata`] (header: u64 LE length + JSON).
/// The entry's JSON is read as YAML (a superset of it): serde_json's float parsing may be off by
/// one unit in the last place, and a cache hit must report the very losses the miss did.
fn history_of(bytes: &[u8]) -> Option<Vec<EpochStats>> {
    let len = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let header: serde_json::Value = serde_json::from_slice(bytes.get(8..8usize.checked_add(len)?)?).ok()?;
    let distill: serde_yaml::Value = serde_yaml::from_str(header["__metadata__"]["distill"].as_str()?).ok()?;
    serde_yaml::from_value(distill.get("history")?.clone()).ok()
}

/// Saves `model` with its history as the cache artifact of `kind`/`key`; returns its bytes.
pub(crate) fn store(
    cache: &Cache,
    kind: &str,
    key: &str,
    spec: &ModelSpec,
    model: Mlp,
    history: Vec<EpochStats>,
    pipeline: &str,
) -> Result<Trained, PipelineError> {
    let bytes = save_weights(&model, metadata(key, spec, Some(&history)))
        .map_err(|source| PipelineError::Checkpoint { context: format!("saving the {kind}"), source })?;
    let path = cache.artifact(kind, key);
    // An intact entry that loads but does not fit this model (another shape, no history) is why
    // it was retrained: replace it, or every run would retrain and keep it.
    if matches!(cache.load_verified(&path), Ok(Some(old)) if usable(&old, &model.shape, 0).is_err()) {
        tracing::warn!(path = %path.display(), "replacing cached {kind} weights that do not fit the model");
        cache.replace(kind, key, &path, &bytes, pipeline)?;
    } else {
        cache.store(kind, key, &path, &bytes, pipeline)?;
    }
    Ok(Trained { model, history, bytes })
}

/// The cached model of `kind`/`key` if present, intact and of this shape; anything else is
/// reported and retrained. `what` names it in the log (e.g. `teacher weights`).
pub(crate) fn cached(cache: &Cache, kind: &str, key: &str, shape: &MlpShape, seed: u64, forced: bool) -> Option<Trained> {
    let path = cache.artifact(kind, key);
    if forced {
        tracing::info!("{kind}: --force, retraining");
        return None;
    }
    let unusable = |path: &Path, why: String| {
        tracing::warn!(path = %path.display(), problem = %why, "cached {kind} weights are unusable; retraining");
        None
    };
    let bytes = match cache.load_verified(&path) {
        Ok(found) => found?,
        Err(problem) => return unusable(&path, problem.to_string()),
    };
    match usable(&bytes, shape, seed) {
        Ok((model, history)) => Some(Trained { model, history, bytes }),
        Err(why) => unusable(&path, why),
    }
}

/// The model of `shape` and its history from an artifact's bytes, or why they do not fit.
fn usable(bytes: &[u8], shape: &MlpShape, seed: u64) -> Result<(Mlp, Vec<EpochStats>), String> {
    let mut model = Mlp::new(shape.clone(), seed);
    load_weights(&mut model, bytes).map_err(|e| format!("they do not fit the model: {e}"))?;
    let history = history_of(bytes).ok_or("no training history in the header")?;
    Ok((model, history))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_round_trips_through_the_header() {
        let spec: ModelSpec = serde_yaml::from_str("{hidden: [3]}").unwrap();
        let model = Mlp::new(MlpShape::from_spec(&spec, 2, 2), 1);
        // 1.0227739928784443 is one that serde_json reads back as 1.0227739928784445.
        let history = vec![
            EpochStats { epoch: 1, train_loss: 0.5, val_accuracy: Some(0.25) },
            EpochStats { epoch: 2, train_loss: 1.0227739928784443, val_accuracy: None },
        ];
        let bytes = save_weights(&model, metadata("k", &spec, Some(&history))).unwrap();
        assert_eq!(history_of(&bytes), Some(history));
        assert_eq!(history_of(&bytes[..4]), None);
    }
}
