//! `sweep:` recipes: every point of the sweep is the recipe with some keys set, run as an ordinary
//! run in `points/NNN/` of the sweep's run directory over the one shared cache — so the data,
//! the teacher and its logits are computed once and every later point finds them, and an
//! interrupted or extended sweep computes only the points it lacks. The sweep's own
//! `metrics.json` holds every point, the Pareto fronts and the recommendation.

mod report;
mod summary;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use distill_plugin_host::PluginRegistry;
use distill_spec::SweepPoint;

pub use summary::{PointResult, Recommendation, SweepSummary};

use crate::load::Loaded;
use crate::run::{run_in, RunOptions, RunOutcome};
use crate::rundir::RunDir;
use crate::PipelineError;

/// Runs every point (the first alone, the rest `sweep.parallel` at a time), then writes the
/// sweep's summary, report and plots.
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
    let parallel = p.sweep.as_ref().map_or(1, |s| s.parallel).clamp(1, points.len().max(1));
    tracing::info!(pipeline = %p.name, points = points.len(), parallel, run_dir = %run_dir.path.display(), "sweep started");
    let run = |n: usize| -> Result<Ran, PipelineError> {
        let point = &points[n];
        tracing::info!(point = point.index, "sweep point {} of {}: {}", n + 1, points.len(), point.label());
        let relative = format!("points/{:03}", point.index);
        let dir = RunDir::create(run_dir.path.join(&relative))?;
        let point_loaded = Loaded { pipeline: point.pipeline.clone(), base_dir: loaded.base_dir.clone() };
        Ok(match run_in(opts, &point_loaded, plugins, &dir)? {
            RunOutcome::Completed { summary, .. } => Ran::Point(Box::new(PointResult::new(point, relative, &summary))),
            RunOutcome::ChecksFailed { report, .. } => Ran::ChecksFailed(report),
            RunOutcome::Swept { .. } => return Err(PipelineError::Graph("a sweep point is itself a sweep")),
        })
    };
    let mut results = Vec::new();
    for ran in in_parallel(points.len(), parallel, run)? {
        match ran {
            Ran::Point(r) => results.push(*r),
            Ran::ChecksFailed(report) => return Ok(RunOutcome::ChecksFailed { run_dir: run_dir.path.clone(), report }),
        }
    }
    let summary = SweepSummary::new(p, results, started.elapsed().as_secs_f64());
    run_dir.write_json("metrics.json", &summary)?;
    summary.write_report(run_dir)?;
    tracing::info!(seconds = summary.seconds, "sweep finished");
    Ok(RunOutcome::Swept { run_dir: run_dir.path.clone(), summary: Box::new(summary) })
}

/// What one point's run gave.
enum Ran {
    Point(Box<PointResult>),
    ChecksFailed(distill_data::CheckReport),
}

/// `run(0)` alone on every thread, then the rest on `parallel` workers that share the machine's
/// threads; results in point order. The first error stops the sweep.
fn in_parallel<T: Send>(n: usize, parallel: usize, run: impl Fn(usize) -> Result<T, PipelineError> + Sync) -> Result<Vec<T>, PipelineError> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let first = run(0)?;
    if parallel <= 1 {
        return std::iter::once(Ok(first)).chain((1..n).map(&run)).collect();
    }
    let threads = (rayon::current_num_threads() / parallel).max(1);
    let next = AtomicUsize::new(1);
    let slots: Mutex<Vec<Option<Result<T, PipelineError>>>> = Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..parallel {
            scope.spawn(|| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= n {
                        break;
                    }
                    let result = match &pool {
                        Ok(pool) => pool.install(|| run(i)),
                        Err(e) => {
                            Err(PipelineError::Graph(if e.to_string().is_empty() { "no thread pool" } else { "cannot start a thread pool for a sweep point" }))
                        }
                    };
                    let failed = result.is_err();
                    slots.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(result);
                    if failed {
                        next.store(n, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    let mut out = vec![first];
    for slot in slots.into_inner().unwrap_or_else(|e| e.into_inner()).into_iter().skip(1) {
        // A slot left empty was skipped after an error, which comes first in point order.
        match slot {
            Some(result) => out.push(result?),
            None => continue,
        }
    }
    Ok(out)
}
