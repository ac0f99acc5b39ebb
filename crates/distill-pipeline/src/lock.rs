//! `lock.json`: every hash a run used, so a run can be reproduced, `distill plan` can say what
//! changed since, and `distill cache gc` knows which entries are still in use.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use distill_cache::Fingerprint;

/// One stage as a run carried it out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageRecord {
    /// The stage's kind: `data`, `teacher`, `logits`, `features`, `student`, `baseline`, `export`,
    /// `quantize` or `evaluate`.
    pub stage: String,
    /// Its name where a recipe has several of a kind (`teacher2`, `logits3`); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The seed of a student or baseline (one record per seed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The stage's cache key.
    pub fingerprint: String,
    /// What the fingerprint was built from: input → blake3.
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// blake3 of the stage's artifact (weights, logits file, stored evaluation); for `data`, the
    /// prepared data's fingerprint (its key is that of the snapshot).
    #[serde(default)]
    pub artifact: String,
    /// Whether the artifact came from the cache.
    #[serde(default)]
    pub cached: bool,
}

impl StageRecord {
    /// The record of stage `name` of kind `stage`.
    pub(crate) fn new(stage: &str, name: &str, seed: Option<u64>, fp: &Fingerprint, artifact: String, cached: bool) -> Self {
        // Per-seed names (`student@3`) are the kind and the seed, both recorded already.
        let name = (name != stage && !name.starts_with(&format!("{stage}@"))).then(|| name.to_string());
        Self { stage: stage.to_string(), name, seed, fingerprint: fp.key.clone(), inputs: fp.inputs.clone(), artifact, cached }
    }
}

/// The hashes a run used, written as `lock.json`. The flat keys predate `stages` and stay for
/// scripts that read them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lock {
    pub distill_version: String,
    /// blake3 of the pipeline file.
    pub pipeline_sha: String,
    /// blake3 of the resolved pipeline (after `--set`).
    #[serde(default)]
    pub resolved_sha: String,
    pub data_fingerprint: String,
    pub teacher_key: String,
    /// blake3 of the teacher weights, or of the external logit file.
    pub teacher_weights: String,
    pub logits_key: String,
    pub logits_file: String,
    pub logits_blake3: String,
    pub cache_dir: String,
    pub cache_hits: Vec<String>,
    #[serde(default)]
    pub stages: Vec<StageRecord>,
    /// The `keep` rule (`last` | `best_val`) of each trained model, by role.
    #[serde(default)]
    pub keep: BTreeMap<String, String>,
    /// The folder the recipe's relative paths were read from (absolute), for `distill rerun`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub recipe_dir: String,
}

impl Lock {
    /// The record of the stage of kind `stage` named `name` (see [`StageRecord::name`]).
    pub fn stage(&self, stage: &str, name: &str, seed: Option<u64>) -> Option<&StageRecord> {
        let named = |s: &&StageRecord| s.name.as_deref().unwrap_or(&s.stage) == name || s.name.is_none() && name.starts_with(&format!("{stage}@"));
        self.stages.iter().filter(|s| s.stage == stage && s.seed == seed).find(named)
    }
}

/// The newest `lock.json` among the runs of pipeline `name` under `runs/`.
pub(crate) fn last_lock(name: &str) -> Option<(PathBuf, Lock)> {
    let dir = PathBuf::from("runs").join(name);
    let mut runs: Vec<PathBuf> = std::fs::read_dir(&dir).ok()?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.join("lock.json").is_file()).collect();
    runs.sort();
    let last = runs.pop()?;
    let lock = serde_json::from_str(&std::fs::read_to_string(last.join("lock.json")).ok()?).ok()?;
    Some((last, lock))
}

/// The cache keys recorded by every run under `runs_dir` (their `lock.json` files, any depth).
pub fn keys_in_use(runs_dir: &Path) -> HashSet<String> {
    let mut keys = HashSet::new();
    let mut stack = vec![runs_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(list) = std::fs::read_dir(&dir) else { continue };
        for path in list.filter_map(|e| e.ok().map(|e| e.path())) {
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == "lock.json") {
                // Untyped, so a lock written by another distill version still protects its keys.
                let lock: serde_json::Value = std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
                let stages = lock["stages"].as_array().into_iter().flatten().map(|s| &s["fingerprint"]);
                keys.extend([&lock["teacher_key"], &lock["logits_key"]].into_iter().chain(stages).filter_map(|k| k.as_str().map(str::to_string)));
            }
        }
    }
    keys
}
