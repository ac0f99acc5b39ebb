//! The one loop over the stage graph that both `run` and `plan` use: for each stage, its inputs'
//! outputs → its fingerprint → found (cached or given) or computed (`run`) or to be computed
//! (`plan`) → recorded.

use std::path::PathBuf;

use distill_cache::{Fingerprint, Lease};

use crate::lock::{Lock, StageRecord};
use crate::peak::PeakRss;
use crate::stages::{Context, Force, Found, Output, Stage};
use crate::PipelineError;

/// Whether the walk computes what the cache lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Run,
    Plan,
}

/// One stage of the plan.
#[derive(Debug, Clone)]
pub struct PlannedStage {
    /// `data`, `teacher`, `logits`, `student`, `baseline`, `evaluate` (`student@seed` with several seeds).
    pub stage: String,
    /// `run`, `cached` (skipped: its output is in the cache), `given` (from the recipe), `shared`
    /// (a sweep point's stage that an earlier point computes) or `stop`.
    pub action: &'static str,
    pub reason: String,
    /// The stage's cache key, when it has one.
    pub key: Option<String>,
}

/// What a walk found and made.
#[derive(Default)]
pub(crate) struct Walked {
    /// Each stage's output, in graph order (`plan`: only what was found).
    pub outputs: Vec<Produced>,
    pub records: Vec<StageRecord>,
    /// Stages found in the cache (`cache_hits`).
    pub hits: Vec<String>,
    pub planned: Vec<PlannedStage>,
    /// Each stage's peak memory (`run`).
    pub peaks: PeakRss,
}

/// One stage's output.
pub(crate) struct Produced {
    /// The stage's name (`student@3`).
    pub name: String,
    /// The recipe seed of a per-seed stage.
    pub seed: Option<u64>,
    pub output: Output,
}

impl Walked {
    pub(crate) fn output(&self, name: &str) -> Option<&Output> {
        self.outputs.iter().find(|o| o.name == name).map(|o| &o.output)
    }
}

/// Walks `stages` in order. `last` is the last recorded run, for "what changed since". A run
/// holds every stage's key in its cache `lease` before looking it up, so `cache gc` leaves what
/// the run is using or about to store.
pub(crate) fn walk(
    cx: &Context,
    stages: &[Box<dyn Stage>],
    force: &Force,
    mode: Mode,
    last: Option<&(PathBuf, Lock)>,
    mut lease: Option<&mut Lease>,
) -> Result<Walked, PipelineError> {
    let mut walked = Walked::default();
    for stage in stages {
        let (name, wanted) = (stage.name(), stage.inputs());
        let inputs: Vec<&Output> = wanted.iter().filter_map(|n| walked.output(n)).collect();
        if inputs.len() < wanted.len() {
            // Only in a plan: an input is not in the cache, so it will be computed first.
            let missing: Vec<&str> = wanted.iter().filter(|n| walked.output(n).is_none()).map(String::as_str).collect();
            let reason = format!("its input ({}) will be computed first", missing.join(", "));
            walked.planned.push(PlannedStage { stage: name, action: "run", reason, key: None });
            continue;
        }
        let fp = stage.fingerprint(cx, &inputs)?;
        if let Some(lease) = lease.as_deref_mut() {
            lease.hold(&fp.key)?;
        }
        let forced = force.includes(stage.kind());
        let why = since(last, stage.kind().name, &stage.name(), stage.seed(), &fp);
        let (output, action, reason) = match stage.find(cx, &fp, &inputs, forced)? {
            Some(Found::Given(output, what)) => (Some(output), "given", what),
            Some(Found::Cached(output)) => (Some(output), "cached", format!("key {} in the cache; {why}", short(&fp.key))),
            None => {
                let state = if forced { "--force" } else { "not in the cache" };
                match mode {
                    Mode::Run => match compute_locked(cx, stage.as_ref(), &fp, &inputs, forced)? {
                        (output, true) => (Some(output), "cached", format!("key {} computed by another task while this one waited; {why}", short(&fp.key))),
                        (output, false) => (Some(output), "run", format!("key {} {state}; {why}", short(&fp.key))),
                    },
                    Mode::Plan => {
                        (None, "run", format!("key {} {state}{}; {why}", short(&fp.key), stage.pending(cx, &fp).map(|p| format!(" ({p})")).unwrap_or_default()))
                    }
                }
            }
        };
        walked.planned.push(PlannedStage { stage: name.clone(), action, reason, key: Some(fp.key.clone()) });
        if action == "cached" {
            walked.hits.push(stage.hit_name());
        }
        if mode == Mode::Run {
            walked.peaks.stage(&name);
        }
        if let Some(output) = output {
            walked.records.push(StageRecord::new(stage.kind().name, &stage.name(), stage.seed(), &fp, output.artifact(), action == "cached"));
            walked.outputs.push(Produced { name, seed: stage.seed(), output });
        }
    }
    Ok(walked)
}

/// Computes a cached stage under its artifact's lock, so tasks sharing the cache compute it
/// once: one that another task computed while this one waited for the lock is found in the cache
/// instead (`true`).
fn compute_locked(cx: &Context, stage: &dyn Stage, fp: &Fingerprint, inputs: &[&Output], forced: bool) -> Result<(Output, bool), PipelineError> {
    let Some(artifact) = stage.kind().artifact else { return Ok((stage.compute(cx, fp, inputs)?, false)) };
    let lock = cx.cache.lock(artifact.kind, &fp.key)?;
    if !forced {
        if let Some(Found::Cached(output)) = stage.find(cx, fp, inputs, false)? {
            tracing::info!(waited_s = format!("{:.1}", lock.waited.as_secs_f64()), "{}: computed by another task while this one waited", stage.name());
            return Ok((output, true));
        }
    }
    let output = stage.compute(cx, fp, inputs)?;
    drop(lock);
    Ok((output, false))
}

fn short(s: &str) -> &str {
    &s[..s.len().min(12)]
}

/// "unchanged since DIR" / "changed since DIR: input, input" / "no earlier run".
fn since(last: Option<&(PathBuf, Lock)>, stage: &str, name: &str, seed: Option<u64>, fp: &Fingerprint) -> String {
    let Some((dir, lock)) = last else { return "no earlier run to compare with".into() };
    match lock.stage(stage, name, seed) {
        None => format!("not in the last run ({})", dir.display()),
        Some(r) if r.fingerprint == fp.key => format!("unchanged since {}", dir.display()),
        Some(r) => format!("changed since {}: {}", dir.display(), fp.changed_since(&r.inputs).join(", ")),
    }
}
