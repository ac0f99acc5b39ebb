//! `distill plan`: which stages a run would compute or take from the cache and why (which input
//! of the stage's fingerprint changed since the last recorded run), without training anything.
//! The same walk over the stage graph as `run`, in [`Mode::Plan`]; a sweep is planned point by
//! point.

use std::collections::HashSet;
use std::path::Path;

use distill_plugin_host::PluginRegistry;

use crate::load::{cache_for, load_pipeline, load_plugins, Loaded};
use crate::lock::last_lock;
use crate::run::RunOptions;
use crate::snapshot::{data_stage_cached, SnapshotUse};
use crate::stages::{self, Context, DATA};
use crate::walk::{walk, Mode, PlannedStage};
use crate::PipelineError;

fn line(stage: impl Into<String>, action: &'static str, reason: impl Into<String>) -> PlannedStage {
    PlannedStage { stage: stage.into(), action, reason: reason.into(), key: None }
}

/// Loads the data (checks included) and works out every stage's key and cache state.
pub fn plan(opts: &RunOptions) -> Result<Vec<PlannedStage>, PipelineError> {
    let loaded = load_pipeline(opts)?;
    let points = distill_spec::sweep::points(&opts.pipeline, &loaded.pipeline, &opts.overrides)?;
    let plugins = load_plugins(&loaded.pipeline, &loaded.base_dir)?;
    if points.is_empty() {
        return plan_one(opts, &loaded, &plugins);
    }
    let mut out = Vec::new();
    if let Some(key) = crate::logits_job::swept_teacher_key(&points) {
        out.push(line("sweep", "note", format!("`{key}` is swept: the teacher is trained (and its logits computed) once per value")));
    }
    let mut planned: HashSet<String> = HashSet::new();
    for point in &points {
        out.push(line(format!("point {}", point.index), "", point.label()));
        let point_loaded = Loaded { pipeline: point.pipeline.clone(), base_dir: loaded.base_dir.clone() };
        for mut stage in plan_one(opts, &point_loaded, &plugins)? {
            // A stage an earlier point computes is found by the later ones.
            if let Some(key) = stage.key.clone().filter(|_| stage.action == "run") {
                if !planned.insert(key) {
                    (stage.action, stage.reason) = ("shared", "computed by an earlier point".into());
                }
            }
            out.push(stage);
        }
    }
    Ok(out)
}

fn plan_one(opts: &RunOptions, loaded: &Loaded, plugins: &PluginRegistry) -> Result<Vec<PlannedStage>, PipelineError> {
    let p = &loaded.pipeline;
    let cache = cache_for(opts, loaded);
    let forced = opts.force.includes(&DATA);
    let outcome = data_stage_cached(loaded, SnapshotUse { cache: &cache, forced, store: false, lease: None })?;
    let failing: Vec<&str> = outcome.report.checks.iter().filter(|c| c.status == distill_data::CheckStatus::Error).map(|c| c.id.as_str()).collect();
    let data = match outcome.prepared {
        Some(data) if failing.is_empty() => data,
        _ => return Ok(vec![line("data", "stop", format!("error-level checks fail: {}", failing.join(", ")))]),
    };
    let last = last_lock(&p.name);
    let data_change = match &last {
        Some((dir, l)) if l.data_fingerprint == data.fingerprint => format!("unchanged since {}", dir.display()),
        Some((dir, _)) => format!("changed since {}: the rows, features or preprocessing", dir.display()),
        None => "no earlier run to compare with".into(),
    };
    let key = outcome.fingerprint.as_ref().map(|f| f.key.clone());
    let snapshot = key.as_deref().map(|k| &k[..12]).unwrap_or("-");
    let data_line = match (outcome.cached, forced) {
        (true, _) => line(
            "data",
            "cached",
            format!("snapshot {snapshot} in the cache (the source files' bytes are unchanged); fingerprint {}; {data_change}", &data.fingerprint[..12]),
        ),
        (false, true) => line("data", "run", format!("snapshot {snapshot} --force; fingerprint {}; {data_change}", &data.fingerprint[..12])),
        (false, false) => line("data", "run", format!("snapshot {snapshot} not in the cache; fingerprint {}; {data_change}", &data.fingerprint[..12])),
    };
    let mut out = vec![PlannedStage { key, ..data_line }];
    let cx = Context::new(loaded, &data, &cache, plugins, false)?;
    out.extend(walk(&cx, &stages::graph(&cx), &opts.force, Mode::Plan, last.as_ref(), None)?.planned);
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
