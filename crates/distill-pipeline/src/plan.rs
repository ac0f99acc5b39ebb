//! `distill plan`: which stages a run would compute or take from the cache and why (which input
//! of the stage's fingerprint changed since the last recorded run), without training anything.
//! The same walk over the stage graph as `run`, in [`Mode::Plan`].

use std::path::Path;

use crate::load::{cache_for, data_stage, load_pipeline, load_plugins};
use crate::lock::last_lock;
use crate::run::RunOptions;
use crate::stages::{self, Context, EVALUATE};
use crate::walk::{walk, Mode, PlannedStage};
use crate::PipelineError;

/// Loads the data (checks included) and works out every stage's key and cache state.
pub fn plan(opts: &RunOptions) -> Result<Vec<PlannedStage>, PipelineError> {
    let loaded = load_pipeline(opts)?;
    let p = &loaded.pipeline;
    let plugins = load_plugins(p, &loaded.base_dir)?;
    let (prepared, report) = data_stage(&loaded)?;
    let failing: Vec<&str> = report.checks.iter().filter(|c| c.status == distill_data::CheckStatus::Error).map(|c| c.id.as_str()).collect();
    let data = match prepared {
        Some(data) if failing.is_empty() => data,
        _ => return Ok(vec![PlannedStage { stage: "data".into(), action: "stop", reason: format!("error-level checks fail: {}", failing.join(", ")) }]),
    };
    let last = last_lock(&p.name);
    let data_change = match &last {
        Some((dir, l)) if l.data_fingerprint == data.fingerprint => format!("unchanged since {}", dir.display()),
        Some((dir, _)) => format!("changed since {}: the rows, features or preprocessing", dir.display()),
        None => "no earlier run to compare with".into(),
    };
    let mut out = vec![PlannedStage { stage: "data".into(), action: "run", reason: format!("fingerprint {}; {data_change}", &data.fingerprint[..12]) }];
    let cache = cache_for(opts, &loaded);
    let cx = Context::new(&loaded, &data, &cache, &plugins, false)?;
    out.extend(walk(&cx, &stages::graph(&cx), &opts.force, Mode::Plan, last.as_ref())?.planned);
    out.push(PlannedStage { stage: EVALUATE.name.into(), action: "run", reason: "test metrics, latency, report (always)".into() });
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
