//! Per-epoch training checkpoints, so an interrupted run continues exactly where it stopped.
//!
//! A checkpoint holds everything [`train`](crate::train) carries from one epoch to the next:
//! parameters, optimiser state (Adam's moments or SGD's velocity), the step counter, the shuffled
//! row order (each epoch reshuffles the previous one), the RNG position (shuffling and dropout
//! masks draw from it), the early-stopping state and the history so far. Restoring all of it
//! makes a resumed run bit-identical to an uninterrupted one on CPU.
//!
//! The file is safetensors: flat f32 tensors `param.{i}`, `optim.{slot}.{i}`, `best.{i}` and a
//! u64 tensor `order`, with one metadata entry `distill.checkpoint` (JSON: job, epoch, step, RNG
//! position, history, early-stopping state). Written to a temporary file and renamed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::train::EpochStats;

/// Where a training run keeps its per-epoch checkpoint, and whether to continue from it.
#[derive(Debug, Clone)]
pub struct Checkpointing {
    /// The checkpoint file (rewritten after every epoch, removed when training completes).
    pub path: PathBuf,
    /// What the checkpoint belongs to (a hash of the recipe, data, model name and seed): a file
    /// written for another job is never resumed.
    pub job: String,
    /// Continue from the file when it exists; otherwise it is ignored and overwritten.
    pub resume: bool,
}

/// The training loop's state after a completed epoch.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TrainState {
    /// Epochs completed.
    pub epoch: usize,
    /// Optimiser steps taken.
    pub step: i32,
    /// True when training had ended (budget, step limit or early stopping).
    pub done: bool,
    pub order: Vec<usize>,
    /// Position of the ChaCha stream (`get_word_pos`).
    pub rng_word_pos: u128,
    pub history: Vec<EpochStats>,
    /// Best epoch so far for early stopping: (epoch, validation accuracy, parameters).
    pub best: Option<(usize, f64, Vec<Vec<f32>>)>,
    /// Epochs since the best one.
    pub stale: usize,
    pub params: Vec<Vec<f32>>,
    /// Optimiser buffers, slot by slot, each in parameter order.
    pub optimizer: Vec<Vec<Vec<f32>>>,
    /// The trainee's other state by name (a feature hint's projection), kept as f64.
    pub extra: Vec<(String, Vec<f64>)>,
}

/// The JSON metadata entry: everything that is not a tensor.
#[derive(Serialize, Deserialize)]
struct Meta {
    job: String,
    epoch: usize,
    step: i32,
    done: bool,
    rng_word_pos: String,
    history: Vec<EpochStats>,
    best: Option<(usize, f64)>,
    stale: usize,
    params: usize,
    optimizer_slots: usize,
    /// Names of the `extra.{name}` tensors (f64).
    #[serde(default)]
    extra: Vec<String>,
}

const META_KEY: &str = "distill.checkpoint";

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Writes `state` for `job` to `path` atomically (temporary file in the same folder + rename).
pub(crate) fn save(path: &Path, job: &str, state: &TrainState) -> Result<(), String> {
    let meta = Meta {
        job: job.to_string(),
        epoch: state.epoch,
        step: state.step,
        done: state.done,
        rng_word_pos: state.rng_word_pos.to_string(),
        history: state.history.clone(),
        best: state.best.as_ref().map(|(e, a, _)| (*e, *a)),
        stale: state.stale,
        params: state.params.len(),
        optimizer_slots: state.optimizer.len(),
        extra: state.extra.iter().map(|(name, _)| name.clone()).collect(),
    };
    let mut buffers: Vec<(String, Dtype, Vec<u8>, usize)> = Vec::new();
    let mut push = |name: String, values: &[f32]| buffers.push((name, Dtype::F32, f32_bytes(values), values.len()));
    for (i, p) in state.params.iter().enumerate() {
        push(format!("param.{i}"), p);
    }
    for (slot, buffers) in state.optimizer.iter().enumerate() {
        for (i, b) in buffers.iter().enumerate() {
            push(format!("optim.{slot}.{i}"), b);
        }
    }
    if let Some((_, _, weights)) = &state.best {
        for (i, w) in weights.iter().enumerate() {
            push(format!("best.{i}"), w);
        }
    }
    for (name, values) in &state.extra {
        buffers.push((format!("extra.{name}"), Dtype::F64, values.iter().flat_map(|v| v.to_le_bytes()).collect(), values.len()));
    }
    let order: Vec<u8> = state.order.iter().flat_map(|&r| (r as u64).to_le_bytes()).collect();
    buffers.push(("order".into(), Dtype::U64, order, state.order.len()));
    let views = buffers
        .iter()
        .map(|(name, dtype, bytes, len)| TensorView::new(*dtype, vec![*len], bytes).map(|v| (name.clone(), v)).map_err(|e| format!("{e:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    let json = serde_json::to_string(&meta).map_err(|e| e.to_string())?;
    let bytes = safetensors::serialize(views, &Some(HashMap::from([(META_KEY.to_string(), json)]))).map_err(|e| format!("{e:?}"))?;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, path)).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("writing checkpoint {}: {e}", path.display())
    })
}

/// Reads the checkpoint at `path` if it belongs to `job`. `Ok(None)` when there is none; an error
/// when the file exists but is unreadable or belongs to another job.
pub(crate) fn load(path: &Path, job: &str) -> Result<Option<TrainState>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let bad = |why: String| format!("checkpoint {}: {why}", path.display());
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(format!("not a safetensors file: {e:?}")))?;
    let json = header.metadata().as_ref().and_then(|m| m.get(META_KEY)).ok_or_else(|| bad(format!("no `{META_KEY}` metadata")))?;
    let meta: Meta = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
    if meta.job != job {
        return Err(bad("it was written by another recipe, data or model; remove it or run without --resume".into()));
    }
    let file = SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("{e:?}")))?;
    let floats = |name: String| -> Result<Vec<f32>, String> {
        let view = file.tensor(&name).map_err(|_| bad(format!("tensor `{name}` is missing")))?;
        if view.dtype() != Dtype::F32 {
            return Err(bad(format!("tensor `{name}` is not f32")));
        }
        Ok(view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    };
    let params = (0..meta.params).map(|i| floats(format!("param.{i}"))).collect::<Result<Vec<_>, _>>()?;
    let optimizer = (0..meta.optimizer_slots)
        .map(|slot| (0..meta.params).map(|i| floats(format!("optim.{slot}.{i}"))).collect::<Result<Vec<_>, _>>())
        .collect::<Result<Vec<_>, _>>()?;
    let best = match meta.best {
        None => None,
        Some((epoch, acc)) => Some((epoch, acc, (0..meta.params).map(|i| floats(format!("best.{i}"))).collect::<Result<Vec<_>, _>>()?)),
    };
    let extra = meta
        .extra
        .iter()
        .map(|name| {
            let view = file.tensor(&format!("extra.{name}")).map_err(|_| bad(format!("tensor `extra.{name}` is missing")))?;
            if view.dtype() != Dtype::F64 {
                return Err(bad(format!("tensor `extra.{name}` is not f64")));
            }
            Ok((name.clone(), view.data().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or_default())).collect()))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let order_view = file.tensor("order").map_err(|_| bad("tensor `order` is missing".into()))?;
    if order_view.dtype() != Dtype::U64 {
        return Err(bad("tensor `order` is not u64".into()));
    }
    let order = order_view.data().chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()) as usize).collect();
    let rng_word_pos = meta.rng_word_pos.parse().map_err(|_| bad(format!("bad RNG position `{}`", meta.rng_word_pos)))?;
    Ok(Some(TrainState {
        epoch: meta.epoch,
        step: meta.step,
        done: meta.done,
        order,
        rng_word_pos,
        history: meta.history,
        best,
        stale: meta.stale,
        params,
        optimizer,
        extra,
    }))
}

/// Stops the process right after the checkpoint of `model`'s `epoch` was written, when
/// `DISTILL_TEST_INTERRUPT_AFTER=model:epoch` is set: a test hook that stands in for a kill at
/// a known point: `exit` unwinds nothing, so no cleanup runs, as after SIGKILL (exit code 137).
/// Only in builds with the `test-hooks` feature (the workspace's tests), never in a user's binary.
pub(crate) fn interrupt_hook(model: &str, epoch: usize) {
    if cfg!(feature = "test-hooks") && std::env::var("DISTILL_TEST_INTERRUPT_AFTER").is_ok_and(|v| v == format!("{model}:{epoch}")) {
        eprintln!("DISTILL_TEST_INTERRUPT_AFTER: stopping after {model} epoch {epoch}");
        std::process::exit(137);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_round_trips_and_refuses_another_job() {
        let dir = tempfile_dir();
        let path = dir.join("job.ckpt");
        let state = TrainState {
            epoch: 3,
            step: 42,
            done: false,
            order: vec![2, 0, 1],
            rng_word_pos: u128::MAX - 5,
            history: vec![EpochStats { epoch: 1, train_loss: 0.5, val_accuracy: Some(0.75) }],
            best: Some((1, 0.75, vec![vec![1.0, 2.0], vec![3.0]])),
            stale: 2,
            params: vec![vec![0.5, -0.5], vec![0.25]],
            optimizer: vec![vec![vec![0.1, 0.2], vec![0.3]], vec![vec![0.4, 0.5], vec![0.6]]],
            extra: vec![("hint.w".into(), vec![0.1f64, -1.0 / 3.0])],
        };
        save(&path, "job-a", &state).unwrap();
        assert_eq!(load(&path, "job-a").unwrap(), Some(state));
        assert!(load(&path, "job-b").unwrap_err().contains("another recipe"));
        assert_eq!(load(&dir.join("none.ckpt"), "job-a").unwrap(), None);
        std::fs::write(&path, b"garbage").unwrap();
        assert!(load(&path, "job-a").unwrap_err().contains("not a safetensors file"));
        let _ = std::fs::remove_dir_all(dir);
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("distill-resume-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
