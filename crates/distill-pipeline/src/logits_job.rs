//! `distill logits`: the teacher and its logits without the students, as one task of a job
//! array: the teacher is found in the cache or trained (under its lock, so racing tasks train it
//! once), then the whole logits file, or one shard of it, is computed and stored.

use distill_data::CheckReport;

use crate::load::{cache_for, data_stage, load_pipeline, load_plugins};
use crate::run::RunOptions;
use crate::stages::shards::{self, PartOutcome, Shard, TrainRows};
use crate::stages::{self, Context, LogitsStage, Stage, TEACHER};
use crate::walk::{walk, Mode, Walked};
use crate::PipelineError;
use distill_cache::Lease;

/// What `distill logits` computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitsJob {
    /// Only the teacher (the first job of a submitted recipe).
    TeacherOnly,
    /// The whole logits file, in this process.
    Whole,
    /// One part of the sharded logits.
    Shard(Shard),
}

/// What it did.
pub enum LogitsOutcome {
    /// An error-level data check failed; nothing was computed.
    ChecksFailed(CheckReport),
    /// The teacher (and, for `Whole`, the logits file) by stage: (name, key, found in the cache).
    Stages(Vec<(String, String, bool)>),
    /// One part, after the teacher's stage.
    Part { teacher: (String, String, bool), key: String, part: PartOutcome },
}

/// A swept key that gives every point its own teacher (and so its own logits), if any.
pub fn swept_teacher_key(points: &[distill_spec::SweepPoint]) -> Option<&str> {
    let first = points.first()?;
    first.sets.iter().map(|(k, _)| k.as_str()).find(|k| k.starts_with("teacher.") || k.starts_with("data.") || *k == "seed")
}

/// Runs `job` for the recipe of `opts` (a sweep's shared teacher for a sweep recipe).
pub fn logits(opts: &RunOptions, job: LogitsJob) -> Result<LogitsOutcome, PipelineError> {
    let loaded = load_pipeline(opts)?;
    if !loaded.pipeline.teachers.is_empty() {
        return Err(PipelineError::key(
            "teachers",
            "sharded logits and `submit` cover the one `teacher`; a recipe with `teachers` runs with `distill run` (each teacher's logits are cached on their own)",
        ));
    }
    let points = distill_spec::sweep::points(&opts.pipeline, &loaded.pipeline, &opts.overrides)?;
    if let Some(key) = swept_teacher_key(&points) {
        return Err(PipelineError::key(
            "sweep",
            format!("`{key}` is swept, so every point has a teacher of its own; run `distill logits` per point (--set {key}=... --set sweep=null)"),
        ));
    }
    let plugins = load_plugins(&loaded.pipeline, &loaded.base_dir)?;
    if let LogitsJob::Shard(shard) = job {
        if let Some(outcome) = crate::logits_stream::shard(opts, &loaded, &plugins, shard)? {
            return Ok(outcome);
        }
    }
    let (prepared, report) = data_stage(&loaded)?;
    let data = match prepared {
        Some(data) if !report.has_errors() => data,
        _ => return Ok(LogitsOutcome::ChecksFailed(report)),
    };
    let cache = cache_for(opts, &loaded);
    let cx = Context::new(&loaded, &data, &cache, &plugins, opts.resume)?;
    let mut lease = cache.lease()?;
    let graph = stages::graph(&cx);
    let upto = if job == LogitsJob::Whole { 2 } else { 1 };
    let walked = walk(&cx, &graph[..upto], &opts.force, Mode::Run, None, Some(&mut lease))?;
    let done: Vec<(String, String, bool)> = walked.records.iter().map(|r| (r.stage.clone(), r.fingerprint.clone(), r.cached)).collect();
    let LogitsJob::Shard(shard) = job else { return Ok(LogitsOutcome::Stages(done)) };
    part_after_teacher(&cx, TrainRows::Memory(&data.train), walked, done, &mut lease, shard)
}

/// Shard `shard` of the logits over `train`, once the teacher's stage is `walked`.
pub(crate) fn part_after_teacher(
    cx: &Context,
    train: TrainRows,
    walked: Walked,
    done: Vec<(String, String, bool)>,
    lease: &mut Lease,
    shard: Shard,
) -> Result<LogitsOutcome, PipelineError> {
    let teacher = walked.output(TEACHER.name).ok_or(PipelineError::Graph("the teacher stage gave no output"))?;
    let fp = LogitsStage { index: 0 }.fingerprint(cx, &[teacher])?;
    lease.hold(&fp.key)?;
    let meta = LogitsStage { index: 0 }.meta(cx, &teacher.identity());
    let part = shards::compute_part(cx, train, &fp.key, &meta, teacher, shard)?;
    let teacher = done.into_iter().next().ok_or(PipelineError::Graph("the teacher stage left no record"))?;
    Ok(LogitsOutcome::Part { teacher, key: fp.key, part })
}
