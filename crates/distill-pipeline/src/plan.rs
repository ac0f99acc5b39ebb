//! `distill plan`: which stages a run would compute or take from the cache and why (which input
//! of the stage's fingerprint changed since the last recorded run), without training anything.

use std::path::Path;

use distill_cache::{hash_bytes, Cache, Fingerprint};
use distill_data::{prepare, resolve_path};

use crate::keys;
use crate::lock::{last_lock, Lock};
use crate::run::{cache_root, derive_seed, load_and_check, load_pipeline, RunOptions, Stage};
use crate::PipelineError;

/// One stage of the plan.
#[derive(Debug, Clone)]
pub struct PlannedStage {
    /// `data`, `teacher`, `logits`, `student`, `baseline`, `evaluate` (`student@seed` with several seeds).
    pub stage: String,
    /// `run`, `cached` (skipped: its output is in the cache), `given` (from the recipe) or `stop`.
    pub action: &'static str,
    pub reason: String,
}

fn short(s: &str) -> &str {
    &s[..s.len().min(12)]
}

/// "unchanged since DIR" / "changed since DIR: input, input" / "no earlier run".
fn since(last: &Option<(std::path::PathBuf, Lock)>, stage: &str, seed: Option<u64>, fp: &Fingerprint) -> String {
    let Some((dir, lock)) = last else { return "no earlier run to compare with".into() };
    match lock.stage(stage, seed) {
        None => format!("not in the last run ({})", dir.display()),
        Some(r) if r.fingerprint == fp.key => format!("unchanged since {}", dir.display()),
        Some(r) => format!("changed since {}: {}", dir.display(), fp.changed_since(&r.inputs).join(", ")),
    }
}

/// Builds the plan's line for a cached stage.
fn cached_stage(out: &mut Vec<PlannedStage>, name: String, hit: bool, forced: bool, fp: &Fingerprint, why: String) {
    let (action, state) = match (hit, forced) {
        (_, true) => ("run", "--force"),
        (true, false) => ("cached", "in the cache"),
        (false, false) => ("run", "not in the cache"),
    };
    out.push(PlannedStage { stage: name, action, reason: format!("key {} {state}; {why}", short(&fp.key)) });
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
        out.push(PlannedStage { stage: "data".into(), action: "stop", reason: format!("error-level checks fail: {}", failing.join(", ")) });
        return Ok(out);
    }
    let data = prepare(&tables, &p.data, p.seed).map_err(|source| PipelineError::Data { context: "data".into(), source })?;
    let data_change = match &last {
        Some((dir, l)) if l.data_fingerprint == data.fingerprint => format!("unchanged since {}", dir.display()),
        Some((dir, _)) => format!("changed since {}: the rows, features or preprocessing", dir.display()),
        None => "no earlier run to compare with".into(),
    };
    out.push(PlannedStage { stage: "data".into(), action: "run", reason: format!("fingerprint {}; {data_change}", short(&data.fingerprint)) });

    let cache = Cache::new(cache_root(opts, &loaded));
    let verified = |kind: &str, key: &str| cache.load_verified(&cache.artifact(kind, key)).ok().flatten();
    let plugins = keys::plugins_hash(p, &loaded.base_dir);
    let given = |key: &str, path: &Path| -> Result<String, PipelineError> {
        let path = resolve_path(&loaded.base_dir, path).map_err(|source| PipelineError::Data { context: key.into(), source })?;
        std::fs::read(&path).map(|b| hash_bytes(&b)).map_err(|e| PipelineError::Other(format!("{key}: {}: {e}", path.display())))
    };

    // Teacher: its identity (weights or file hash) when known without training.
    let teacher_id = if let Some(l) = &p.teacher.logits {
        let id = given("teacher.logits.path", &l.path)?;
        out.push(PlannedStage { stage: "teacher".into(), action: "given", reason: format!("external logits {} (blake3 {})", l.path.display(), short(&id)) });
        Some(format!("external:{id}"))
    } else if let Some(w) = &p.teacher.weights {
        let id = given("teacher.weights", w)?;
        out.push(PlannedStage { stage: "teacher".into(), action: "given", reason: format!("weights {} (blake3 {})", w.display(), short(&id)) });
        Some(id)
    } else {
        let fp = keys::teacher(p, &data, &plugins);
        let forced = opts.force.includes(Stage::Teacher);
        let bytes = verified("teacher", &fp.key).filter(|_| !forced);
        cached_stage(&mut out, "teacher".into(), bytes.is_some(), forced, &fp, since(&last, "teacher", None, &fp));
        bytes.map(|b| hash_bytes(&b))
    };

    // Logits: keyed by the teacher; their file's hash is the students' input.
    let logits_hash = match &teacher_id {
        None => {
            out.push(PlannedStage { stage: "logits".into(), action: "run", reason: "the teacher will be trained, so its logits are new".into() });
            None
        }
        Some(id) => {
            let fp = keys::logits(id, &data, &keys::storage(p));
            let forced = opts.force.includes(Stage::Logits);
            let bytes = verified("logits", &fp.key).filter(|_| !forced);
            cached_stage(&mut out, "logits".into(), bytes.is_some(), forced, &fp, since(&last, "logits", None, &fp));
            bytes.map(|b| hash_bytes(&b))
        }
    };

    let seeds = p.student.seeds.clone().unwrap_or_else(|| vec![p.seed]);
    let (baseline_train, baseline_steps) = keys::baseline_budget(p, &data);
    for &seed in &seeds {
        let suffix = if seeds.len() > 1 { format!("@{seed}") } else { String::new() };
        let seed_for = derive_seed(seed, "student");
        match &logits_hash {
            None => out.push(PlannedStage {
                stage: format!("student{suffix}"),
                action: "run",
                reason: "its input, the teacher logits, will be computed first".into(),
            }),
            Some(h) => {
                let fp = keys::student(p, &data, h, seed_for, &plugins);
                let forced = opts.force.includes(Stage::Student);
                cached_stage(
                    &mut out,
                    format!("student{suffix}"),
                    verified("student", &fp.key).is_some(),
                    forced,
                    &fp,
                    since(&last, "student", Some(seed), &fp),
                );
            }
        }
        if p.student.baseline {
            let fp = keys::baseline(p, &data, &baseline_train, baseline_steps, seed_for, &plugins);
            let forced = opts.force.includes(Stage::Baseline);
            cached_stage(
                &mut out,
                format!("baseline{suffix}"),
                verified("baseline", &fp.key).is_some(),
                forced,
                &fp,
                since(&last, "baseline", Some(seed), &fp),
            );
        }
    }
    out.push(PlannedStage { stage: "evaluate".into(), action: "run", reason: "test metrics, latency, report (always)".into() });
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
