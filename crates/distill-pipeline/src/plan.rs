//! `distill plan`: which stages a run would compute and why, without training anything.

use std::path::{Path, PathBuf};

use distill_cache::{hash_bytes, Cache};
use distill_data::prepare;

use crate::run::{cache_root, load_and_check, load_pipeline, logits_key, teacher_key, RunOptions, Stage};
use crate::PipelineError;

/// One stage of the plan.
#[derive(Debug, Clone)]
pub struct PlannedStage {
    pub stage: &'static str,
    /// `run` or `cached`.
    pub action: &'static str,
    pub reason: String,
}

/// What the most recent run of this pipeline recorded, for "what changed".
fn last_lock(name: &str) -> Option<(PathBuf, serde_json::Value)> {
    let dir = PathBuf::from("runs").join(name);
    let mut runs: Vec<PathBuf> = std::fs::read_dir(&dir).ok()?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.join("lock.json").is_file()).collect();
    runs.sort();
    let last = runs.pop()?;
    let lock = serde_json::from_str(&std::fs::read_to_string(last.join("lock.json")).ok()?).ok()?;
    Some((last, lock))
}

fn changed(lock: &Option<(PathBuf, serde_json::Value)>, key: &str, now: &str) -> String {
    match lock {
        Some((dir, l)) if l[key].as_str() == Some(now) => format!("same {key} as {}", dir.display()),
        Some((dir, l)) => format!("{key} changed since {} ({} → {})", dir.display(), short(l[key].as_str().unwrap_or("-")), short(now)),
        None => "no earlier run to compare with".into(),
    }
}

fn short(s: &str) -> &str {
    &s[..s.len().min(12)]
}

/// Loads the data (checks included) and works out every stage's key and cache state.
pub fn plan(opts: &RunOptions) -> Result<Vec<PlannedStage>, PipelineError> {
    let loaded = load_pipeline(opts)?;
    let p = &loaded.pipeline;
    let (tables, report) = load_and_check(&loaded)?;
    let last = last_lock(&p.name);
    let mut out = Vec::new();
    let failing: Vec<&str> = report.checks.iter().filter(|c| c.status == distill_data::CheckStatus::Error).map(|c| c.id.as_str()).collect();
    if !failing.is_empty() {
        out.push(PlannedStage { stage: "data", action: "stop", reason: format!("error-level checks fail: {}", failing.join(", ")) });
        return Ok(out);
    }
    let data = prepare(&tables, &p.data, p.seed).map_err(|source| PipelineError::Data { context: "data".into(), source })?;
    out.push(PlannedStage { stage: "data", action: "run", reason: format!("fingerprint {}; {}", short(&data.fingerprint), changed(&last, "data_fingerprint", &data.fingerprint)) });

    let cache = Cache::new(cache_root(opts, &loaded));
    let key = teacher_key(p, &data);
    let weights: Option<Vec<u8>> = if opts.force.includes(Stage::Teacher) { None } else { cache.load_verified(&cache.teacher_weights(&key)).ok().flatten() };
    let teacher_reason = format!("key {}; {}", short(&key), changed(&last, "teacher_key", &key));
    match &weights {
        Some(_) => out.push(PlannedStage { stage: "teacher", action: "cached", reason: teacher_reason }),
        None => out.push(PlannedStage { stage: "teacher", action: "run", reason: format!("{teacher_reason}; not in the cache{}", if opts.force.includes(Stage::Teacher) { " (--force)" } else { "" }) }),
    }
    match weights {
        None => out.push(PlannedStage { stage: "logits", action: "run", reason: "the teacher will be trained, so its logits are new".into() }),
        Some(bytes) => {
            let key = logits_key(&hash_bytes(&bytes), &data);
            let cached = !opts.force.includes(Stage::Logits) && matches!(cache.load_verified(&cache.logits(&key)), Ok(Some(_)));
            let reason = format!("key {}; {}", short(&key), changed(&last, "logits_key", &key));
            out.push(PlannedStage { stage: "logits", action: if cached { "cached" } else { "run" }, reason });
        }
    }
    let seeds = p.student.seeds.as_ref().map(Vec::len).unwrap_or(1);
    out.push(PlannedStage { stage: "student", action: "run", reason: format!("{seeds} seed(s), {} epochs; students are always trained", p.student.train.epochs) });
    if p.student.baseline {
        out.push(PlannedStage { stage: "baseline", action: "run", reason: "labelled rows only, from scratch".into() });
    }
    out.push(PlannedStage { stage: "evaluate", action: "run", reason: "test metrics, latency, report".into() });
    Ok(out)
}

/// The plan as a table.
pub fn plan_table(stages: &[PlannedStage], pipeline: &Path) -> String {
    let mut out = format!("plan for {}\n", pipeline.display());
    for s in stages {
        out += &format!("  {:<9} {:<7} {}\n", s.stage, s.action, s.reason);
    }
    out
}

/// The cache keys recorded by every run under `runs_dir` (their `lock.json` files, any depth).
pub fn keys_in_use(runs_dir: &Path) -> std::collections::HashSet<String> {
    let mut keys = std::collections::HashSet::new();
    let mut stack = vec![runs_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(list) = std::fs::read_dir(&dir) else { continue };
        for path in list.filter_map(|e| e.ok().map(|e| e.path())) {
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == "lock.json") {
                let lock: serde_json::Value = std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
                for key in ["teacher_key", "logits_key"] {
                    if let Some(k) = lock[key].as_str() {
                        keys.insert(k.to_string());
                    }
                }
            }
        }
    }
    keys
}
