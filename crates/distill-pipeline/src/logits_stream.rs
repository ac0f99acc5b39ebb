//! One shard of teacher logits without the transfer file in memory: the source (and test file) is
//! loaded and checked as `run` does, the rows of `data.transfer.source` are read a chunk at a time
//! (distill-data's `prepare_streamed`: the scaling fitted on every training row, the same data
//! fingerprint), and the part is written a row group at a time, so a shard's memory is bounded by
//! the chunk size and the source, not by the transfer set.
//!
//! Used when the transfer file reads in row ranges (Parquet). The transfer file's checks need the
//! whole table, so when the recipe has checks that apply to it, a shard streams only with the
//! teacher already in the cache (trained by the submitted recipe's teacher job, which loaded and
//! checked every file on data of this fingerprint); without such checks it may also train the
//! teacher (on the source's labelled rows, as in memory). Otherwise the shard loads the data whole,
//! as before.

use distill_data::{prepare_streamed, TransferFile};
use distill_plugin_host::PluginRegistry;

use crate::load::{cache_for, data_err, load_and_check, Loaded};
use crate::logits_job::{part_after_teacher, LogitsOutcome};
use crate::run::RunOptions;
use crate::stages::shards::{Shard, TrainRows};
use crate::stages::{self, Context, TEACHER};
use crate::walk::{walk, Mode};
use crate::PipelineError;

/// Shard `shard` streamed, or `None` (with the reason logged) when it must load the data whole.
pub(crate) fn shard(opts: &RunOptions, loaded: &Loaded, plugins: &PluginRegistry, shard: Shard) -> Result<Option<LogitsOutcome>, PipelineError> {
    let p = &loaded.pipeline;
    let whole = |why: &str| {
        tracing::info!("teacher logits: the data is loaded whole ({why})");
        Ok(None)
    };
    let Some(source) = p.data.transfer.as_ref().and_then(|t| t.source.as_ref()) else { return whole("no data.transfer.source to stream") };
    if !p.data.augment.is_empty() {
        return whole("data.augment needs the training rows in memory");
    }
    if p.teacher.model.is_none() {
        return whole("the teacher is external logits");
    }
    let Some(file) = TransferFile::open(source, &loaded.base_dir).map_err(data_err("data.transfer.source".into()))? else {
        return whole("the transfer file is not a plain Parquet file, which reads in row ranges");
    };
    let (tables, report) = load_and_check(loaded, false)?;
    if report.has_errors() {
        return Ok(Some(LogitsOutcome::ChecksFailed(report)));
    }
    let streamed = prepare_streamed(&tables, file, &p.data, p.seed, distill_data::chunk_rows()).map_err(data_err("data".into()))?;
    drop(tables);
    let cache = cache_for(opts, loaded);
    let cx = Context::new(loaded, &streamed.prepared, &cache, plugins, opts.resume)?;
    let graph = stages::graph(&cx);
    // Training the teacher here would skip the transfer file's checks: only a teacher in the cache.
    let label = Some(p.data.label.as_str());
    let transfer_checks = p.data.checks.iter().any(|c| c.kind.column() != label);
    if transfer_checks && walk(&cx, &graph[..1], &opts.force, Mode::Plan, None, None)?.output(TEACHER.name).is_none() {
        return whole("the teacher is not in the cache and the transfer file's checks need it whole, so the teacher is trained after every check");
    }
    let mut lease = cache.lease()?;
    let walked = walk(&cx, &graph[..1], &opts.force, Mode::Run, None, Some(&mut lease))?;
    let done = walked.records.iter().map(|r| (r.stage.clone(), r.fingerprint.clone(), r.cached)).collect();
    tracing::info!(rows = streamed.train_len(), "teacher logits: streaming the transfer file");
    part_after_teacher(&cx, TrainRows::Streamed(&streamed), walked, done, &mut lease, shard).map(Some)
}
