//! `sweep:` recipes: every point of the sweep is the recipe with some keys set, run as an ordinary
//! run in `points/NNN/` of the sweep's run directory over the one shared cache — so the data,
//! the teacher and its logits are computed once and every later point finds them, and an
//! interrupted or extended sweep computes only the points it lacks. The sweep's own
//! `metrics.json` holds every point, the Pareto fronts and the recommendation.

mod report;
mod summary;

use std::time::Instant;

use distill_plugin_host::PluginRegistry;
use distill_spec::SweepPoint;

pub use summary::{PointResult, Recommendation, SweepSummary};

use crate::load::Loaded;
use crate::run::{run_in, RunOptions, RunOutcome};
use crate::rundir::RunDir;
use crate::PipelineError;

/// Runs every point in order, then writes the sweep's summary, report and plots.
pub(crate) fn run_sweep(
    opts: &RunOptions,
    loaded: &Loaded,
    plugins: &PluginRegistry,
    run_dir: &RunDir,
    points: &[SweepPoint],
) -> Result<RunOutcome, PipelineError> {
    let started = Instant::now();
    let p = &loaded.pipeline;
    let resolved = serde_yaml::to_string(p).map_err(PipelineError::Resolved)?;
    run_dir.write("pipeline.resolved.yaml", resolved.as_bytes())?;
    tracing::info!(pipeline = %p.name, points = points.len(), run_dir = %run_dir.path.display(), "sweep started");
    let mut results = Vec::new();
    for (n, point) in points.iter().enumerate() {
        tracing::info!(point = point.index, "sweep point {} of {}: {}", n + 1, points.len(), point.label());
        let relative = format!("points/{:03}", point.index);
        let dir = RunDir::create(run_dir.path.join(&relative))?;
        let point_loaded = Loaded { pipeline: point.pipeline.clone(), base_dir: loaded.base_dir.clone() };
        match run_in(opts, &point_loaded, plugins, &dir)? {
            RunOutcome::Completed { summary, .. } => results.push(PointResult::new(point, relative, &summary)),
            RunOutcome::ChecksFailed { report, .. } => return Ok(RunOutcome::ChecksFailed { run_dir: run_dir.path.clone(), report }),
            RunOutcome::Swept { .. } => return Err(PipelineError::Graph("a sweep point is itself a sweep")),
        }
    }
    let summary = SweepSummary::new(p, results, started.elapsed().as_secs_f64());
    run_dir.write_json("metrics.json", &summary)?;
    summary.write_report(run_dir)?;
    tracing::info!(seconds = summary.seconds, "sweep finished");
    Ok(RunOutcome::Swept { run_dir: run_dir.path.clone(), summary: Box::new(summary) })
}
