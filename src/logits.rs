//! `distill logits`: the teacher and its logits (whole, or one shard) as a task of its own.

use std::path::PathBuf;

use distill_pipeline::{LogitsJob, LogitsOutcome, RunOptions, Shard};

use crate::{error_chain, exit};

/// Which shard this task computes: `--shard I/N`, else the scheduler's index (with `--shards N`
/// as the count where the scheduler does not give one), else none.
fn job(shard: Option<&str>, shards: Option<usize>, teacher_only: bool) -> Result<LogitsJob, String> {
    if teacher_only {
        return Ok(LogitsJob::TeacherOnly);
    }
    if let Some(text) = shard {
        return Shard::parse(text).map(LogitsJob::Shard).map_err(|e| format!("--shard {text}: {e}"));
    }
    match Shard::from_env(|k| std::env::var(k).ok(), shards)? {
        Some(s) => Ok(LogitsJob::Shard(s)),
        None if shards.is_some() => {
            Err("--shards N takes the index from $SLURM_ARRAY_TASK_ID or $JOB_COMPLETION_INDEX, and neither is set (or give --shard I/N)".into())
        }
        None => Ok(LogitsJob::Whole),
    }
}

fn hit(cached: bool) -> &'static str {
    if cached {
        "in the cache"
    } else {
        "computed"
    }
}

pub(crate) fn command(options: RunOptions, shard: Option<&str>, shards: Option<usize>, teacher_only: bool, cache_dir: Option<PathBuf>) -> Result<u8, String> {
    let job = job(shard, shards, teacher_only)?;
    let options = RunOptions { cache_dir, ..options };
    match distill_pipeline::logits(&options, job).map_err(|e| error_chain(&e))? {
        LogitsOutcome::ChecksFailed(report) => {
            eprint!("{}", report.table());
            eprintln!("error: data checks failed; nothing was computed");
            return Ok(exit::CHECKS_FAILED);
        }
        LogitsOutcome::Stages(stages) => {
            for (stage, key, cached) in stages {
                println!("{stage}: key {} ({})", &key[..key.len().min(12)], hit(cached));
            }
        }
        LogitsOutcome::Part { teacher: (stage, key, cached), key: logits_key, part } => {
            println!("{stage}: key {} ({})", &key[..key.len().min(12)], hit(cached));
            println!("logits: key {}, rows {}..{}: {} ({})", &logits_key[..12], part.rows.start, part.rows.end, part.path.display(), hit(part.cached));
            match part.manifest {
                Some(m) => println!("every part is in the cache: {}", m.display()),
                None => println!("other parts are not in the cache yet"),
            }
        }
    }
    Ok(0)
}
