//! Sharded teacher logits: shard I of N computes the logits of one contiguous range of the
//! training rows and stores it as `logits/<key>/part-I-of-N.parquet` (an ordinary logit file of
//! those rows, with its entry record `_part-I-of-N.parquet.entry.json`), under the same key as
//! the whole file. When every part is there, `_manifest.json` beside them lists each part's row
//! range and blake3, and the logits stage assembles the parts into `logits/<key>.parquet` instead
//! of running inference. Every other file in the folder starts with `_` or `.`, so
//! `pyarrow.dataset` reads the folder as one table.
//!
//! Ranges are whole inference blocks ([`distill_nn::PREDICT_BLOCK_ROWS`] rows), so every part
//! runs exactly the products a single process runs over the same rows: the parts together are
//! bitwise the single-process logits, and the assembled file has the same bytes (the same
//! blake3, so the students' keys are the same too).

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use distill_cache::{decode_logits, encode_logits, hash_bytes, write_atomic, ArtifactLock, CacheError, LogitMeta, LogitWriter};
use distill_data::{Split, Streamed};
use distill_nn::{predict_logits, PREDICT_BLOCK_ROWS};

use super::{Context, Output, LOGITS};
use crate::PipelineError;

/// Shard `index` (from 0) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// `I/N` with `0 <= I < N`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (i, n) = text.split_once('/').ok_or("expected I/N, e.g. 0/4")?;
        let number = |s: &str| s.trim().parse::<usize>().map_err(|_| format!("`{s}` is not a whole number"));
        Self::new(number(i)?, number(n)?)
    }

    pub fn new(index: usize, count: usize) -> Result<Self, String> {
        if count == 0 || index >= count {
            return Err(format!("the index must be in 0..{count} and the count at least 1"));
        }
        Ok(Self { index, count })
    }

    /// The shard a scheduler gave this task: Slurm's `SLURM_ARRAY_TASK_ID` (less
    /// `SLURM_ARRAY_TASK_MIN`) of `SLURM_ARRAY_TASK_COUNT`, or a Kubernetes Indexed Job's
    /// `JOB_COMPLETION_INDEX` of `count`; `count` (`--shards`) also overrides Slurm's count.
    /// `None` when neither scheduler's variable is set.
    pub fn from_env(var: impl Fn(&str) -> Option<String>, count: Option<usize>) -> Result<Option<Self>, String> {
        let number = |name: &str| var(name).map(|v| v.trim().parse::<usize>().map_err(|_| format!("${name} = `{v}` is not a whole number"))).transpose();
        if let Some(id) = number("SLURM_ARRAY_TASK_ID")? {
            let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let n = match count.map(Ok).or_else(|| number("SLURM_ARRAY_TASK_COUNT").transpose()).transpose()? {
                Some(n) => n,
                None => return Err("$SLURM_ARRAY_TASK_ID is set but not $SLURM_ARRAY_TASK_COUNT: pass --shards N".into()),
            };
            let index = id.checked_sub(min).ok_or_else(|| format!("$SLURM_ARRAY_TASK_ID {id} is below $SLURM_ARRAY_TASK_MIN {min}"))?;
            return Self::new(index, n).map(Some).map_err(|e| format!("shard {index} of {n} from Slurm: {e}"));
        }
        if let Some(index) = number("JOB_COMPLETION_INDEX")? {
            let n = count.ok_or("$JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job) but not the shard count: pass --shards N")?;
            return Self::new(index, n).map(Some).map_err(|e| format!("shard {index} of {n} from $JOB_COMPLETION_INDEX: {e}"));
        }
        Ok(None)
    }

    /// The rows of this shard among `rows`: whole inference blocks, spread as evenly as they go.
    pub fn rows(&self, rows: usize) -> Range<usize> {
        let blocks = rows.div_ceil(PREDICT_BLOCK_ROWS);
        let edge = |i: usize| (i * blocks / self.count * PREDICT_BLOCK_ROWS).min(rows);
        edge(self.index)..edge(self.index + 1)
    }
}

/// One part as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartEntry {
    pub index: usize,
    pub file: String,
    /// `[start, end)` over the training rows, in logit-file order.
    pub rows: [usize; 2],
    pub blake3: String,
    pub bytes: u64,
}

/// `logits/<key>/_manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub key: String,
    pub count: usize,
    pub rows: usize,
    pub teacher_fingerprint: String,
    pub data_fingerprint: String,
    pub parts: Vec<PartEntry>,
}

fn dir(cx: &Context, key: &str) -> PathBuf {
    cx.cache.logits(key).with_extension("")
}

pub(crate) fn part_path(cx: &Context, key: &str, shard: Shard) -> PathBuf {
    dir(cx, key).join(format!("part-{}-of-{}.parquet", shard.index, shard.count))
}

/// A part's entry record (and, with `.lock`, its lock): `_` + its name.
fn hidden(part: &Path, suffix: &str) -> PathBuf {
    let name = part.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    part.with_file_name(format!("_{name}{suffix}"))
}

/// Sharded logits are stored full: a top-k part cannot be re-encoded into the bytes one process
/// writes.
fn check_storage(meta: &LogitMeta) -> Result<(), PipelineError> {
    match meta.top_k {
        Some(_) => Err(PipelineError::key("teacher.cache.top_k", "sharded logits are stored full; remove top_k or compute the logits in one process")),
        None => Ok(()),
    }
}

/// The part's bytes when it is in the cache, intact, and of this teacher and these rows.
fn cached_part(cx: &Context, path: &Path, meta: &LogitMeta, ids: &[u64]) -> Option<(Vec<f32>, Vec<u8>)> {
    let bytes = match cx.cache.load_verified_at(path, &hidden(path, ".entry.json")) {
        Ok(found) => found?,
        Err(problem) => {
            tracing::warn!(path = %path.display(), %problem, "logit part is unusable; recomputing it");
            return None;
        }
    };
    match decode_logits(path, bytes.clone()) {
        Ok(file) if file.meta == *meta && file.row_ids == ids => Some((file.logits, bytes)),
        _ => {
            tracing::warn!(path = %path.display(), "logit part belongs to another teacher or other rows; recomputing it");
            None
        }
    }
}

/// What [`compute_part`] did.
pub struct PartOutcome {
    pub path: PathBuf,
    pub rows: Range<usize>,
    /// Already in the cache (stored by an earlier or a racing task).
    pub cached: bool,
    /// The manifest, once every part is there.
    pub manifest: Option<PathBuf>,
}

/// The training rows the logits are of: the prepared split in memory, or the source's rows
/// followed by the transfer file's, read a chunk at a time.
#[derive(Clone, Copy)]
pub(crate) enum TrainRows<'a> {
    Memory(&'a Split),
    Streamed(&'a Streamed),
}

impl TrainRows<'_> {
    pub(crate) fn len(&self) -> usize {
        match self {
            TrainRows::Memory(split) => split.len(),
            TrainRows::Streamed(s) => s.train_len(),
        }
    }

    fn row_ids(&self, rows: Range<usize>) -> Vec<u64> {
        match self {
            TrainRows::Memory(split) => split.row_ids[rows].to_vec(),
            TrainRows::Streamed(s) => s.row_ids(rows),
        }
    }

    /// The features of `rows`, `step` rows at a time from `rows.start`.
    fn for_each_chunk(
        &self,
        rows: Range<usize>,
        step: usize,
        mut f: impl FnMut(Range<usize>, &[f32]) -> Result<(), PipelineError>,
    ) -> Result<(), PipelineError> {
        match self {
            TrainRows::Streamed(s) => {
                // The caller's own error passes through the data crate's reader as it is.
                let mut failed = None;
                let read = s.for_each_chunk(rows, step, |chunk, x| {
                    f(chunk, x).map_err(|e| {
                        failed = Some(e);
                        distill_data::DataError::Invalid(String::new())
                    })
                });
                read.map_err(|e| failed.take().unwrap_or_else(|| crate::load::data_err("data.transfer.source".into())(e)))
            }
            TrainRows::Memory(split) => {
                let width = if split.is_empty() { 0 } else { split.x.len() / split.len() };
                let mut start = rows.start;
                while start < rows.end {
                    let end = (start + step).min(rows.end);
                    f(start..end, &split.x[start * width..end * width])?;
                    start = end;
                }
                Ok(())
            }
        }
    }
}

/// Rows per inference chunk: [`distill_data::chunk_rows`] rounded up to whole inference blocks,
/// so every chunk starts at a block edge (as a shard does) and runs the products one process runs.
fn chunk_step() -> usize {
    distill_data::chunk_rows().div_ceil(PREDICT_BLOCK_ROWS) * PREDICT_BLOCK_ROWS
}

/// Computes (or finds) one part of the logits of `teacher` over `train` under the logits key
/// `key`, under the part's lock; writes the manifest when this was the last part missing.
pub(crate) fn compute_part(cx: &Context, train: TrainRows, key: &str, meta: &LogitMeta, teacher: &Output, shard: Shard) -> Result<PartOutcome, PipelineError> {
    check_storage(meta)?;
    let path = part_path(cx, key, shard);
    let rows = shard.rows(train.len());
    let ids = train.row_ids(rows.clone());
    let mut cached = cached_part(cx, &path, meta, &ids).is_some();
    if !cached {
        let _lock = ArtifactLock::acquire(&path)?;
        cached = cached_part(cx, &path, meta, &ids).is_some();
        if !cached {
            tracing::info!(part = shard.index, of = shard.count, rows = rows.len(), chunk = chunk_step(), "teacher logits: computing part");
            let mut writer = LogitWriter::create(&path, meta)?;
            train.for_each_chunk(rows.clone(), chunk_step(), |chunk, x| {
                let logits = teacher_logits(cx, teacher, chunk.clone(), x)?;
                Ok(writer.write(&ids[chunk.start - rows.start..chunk.end - rows.start], logits)?)
            })?;
            cx.cache.store_file_at(LOGITS.name, key, &path, &hidden(&path, ".entry.json"), writer.finish()?, &cx.pipeline().name)?;
        }
    }
    let manifest = write_manifest(cx, key, meta, shard.count, train.len())?;
    Ok(PartOutcome { path, rows, cached, manifest })
}

/// The teacher's logits over training rows `rows` (features `x`); a model predicts them block by
/// block as one process does (the range starts at a block edge).
fn teacher_logits(cx: &Context, teacher: &Output, rows: Range<usize>, x: &[f32]) -> Result<Vec<f32>, PipelineError> {
    let classes = cx.data.classes();
    match teacher {
        Output::Model { trained, .. } => Ok(predict_logits(&trained.model, x)),
        Output::External(e) => Ok(e.train[rows.start * classes..rows.end * classes].to_vec()),
        Output::Logits(_) | Output::Features(_) | Output::Artifact(_) | Output::Evaluation(_) => {
            Err(PipelineError::Graph("the logits' input is not a teacher"))
        }
    }
}

/// Parts of `key` in the cache for each shard count: `(count, the indices present)`.
fn present(cx: &Context, key: &str) -> Vec<(usize, Vec<usize>)> {
    let Ok(list) = std::fs::read_dir(dir(cx, key)) else { return Vec::new() };
    let mut found: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for name in list.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().to_string()) {
        let Some(rest) = name.strip_prefix("part-").and_then(|r| r.strip_suffix(".parquet")) else { continue };
        let Some((i, n)) = rest.split_once("-of-") else { continue };
        if let (Ok(i), Ok(n)) = (i.parse::<usize>(), n.parse::<usize>()) {
            found.entry(n).or_default().push(i);
        }
    }
    found
        .into_iter()
        .map(|(n, mut v)| {
            v.sort_unstable();
            (n, v)
        })
        .collect()
}

/// The sharding with the most parts present, and the missing indices (none when complete).
pub(crate) fn status(cx: &Context, key: &str) -> Option<(usize, Vec<usize>)> {
    let (count, have) = present(cx, key).into_iter().max_by_key(|(n, have)| (have.len(), *n))?;
    Some((count, (0..count).filter(|i| !have.contains(i)).collect()))
}

/// "parts 3, 7 of 16 missing".
pub(crate) fn describe_missing(count: usize, missing: &[usize]) -> String {
    let list: Vec<String> = missing.iter().map(usize::to_string).collect();
    let noun = if missing.len() == 1 { "part" } else { "parts" };
    format!("{noun} {} of {count} missing", list.join(", "))
}

/// Every part of the `count`-way sharding as the manifest lists it, each verified against its
/// record; with `decode`, also their logits joined (checked against this teacher and these rows).
/// `None` when a part is missing or unusable.
fn parts(cx: &Context, key: &str, meta: &LogitMeta, count: usize, decode: bool, total: usize) -> Option<(Vec<f32>, Vec<PartEntry>)> {
    let (mut logits, mut entries) = (Vec::new(), Vec::new());
    for index in 0..count {
        let shard = Shard { index, count };
        let (path, rows) = (part_path(cx, key, shard), shard.rows(total));
        let bytes = if decode {
            let (values, bytes) = cached_part(cx, &path, meta, &cx.data.train.row_ids[rows.clone()])?;
            logits.extend(values);
            bytes
        } else {
            cx.cache.load_verified_at(&path, &hidden(&path, ".entry.json")).ok()??
        };
        let file = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        entries.push(PartEntry { index, file, rows: [rows.start, rows.end], blake3: hash_bytes(&bytes), bytes: bytes.len() as u64 });
    }
    Some((logits, entries))
}

/// Writes `manifest.json` when every part of the `count`-way sharding of `total` training rows
/// is there; its path.
fn write_manifest(cx: &Context, key: &str, meta: &LogitMeta, count: usize, total: usize) -> Result<Option<PathBuf>, PipelineError> {
    match parts(cx, key, meta, count, false, total) {
        Some((_, entries)) => Ok(Some(manifest_file(cx, key, meta, count, entries, total)?)),
        None => Ok(None),
    }
}

fn manifest_file(cx: &Context, key: &str, meta: &LogitMeta, count: usize, parts: Vec<PartEntry>, total: usize) -> Result<PathBuf, PipelineError> {
    let manifest = Manifest {
        key: key.to_string(),
        count,
        rows: total,
        teacher_fingerprint: meta.teacher_fingerprint.clone(),
        data_fingerprint: meta.data_fingerprint.clone(),
        parts,
    };
    let path = dir(cx, key).join("_manifest.json");
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| CacheError::file(&path, e))?;
    write_atomic(&path, text.as_bytes())?;
    Ok(path)
}

/// The bytes of the whole logit file from the parts in the cache: computes the missing parts of the sharding
/// with the most parts present (each under its lock), then joins them. `None` when there are no
/// parts at all (the caller computes the whole file).
pub(crate) fn from_parts(cx: &Context, key: &str, meta: &LogitMeta, teacher: &Output) -> Result<Option<Vec<u8>>, PipelineError> {
    let Some((count, missing)) = status(cx, key) else { return Ok(None) };
    check_storage(meta)?;
    if missing.is_empty() {
        tracing::info!(parts = count, "teacher logits: assembling the parts in the cache (no inference)");
    } else {
        tracing::info!(parts = count, "teacher logits: {}; computing them here", describe_missing(count, &missing));
    }
    let (train, total) = (TrainRows::Memory(&cx.data.train), cx.data.train.len());
    for index in missing {
        compute_part(cx, train, key, meta, teacher, Shard { index, count })?;
    }
    let Some((logits, entries)) = parts(cx, key, meta, count, true, total) else {
        return Err(PipelineError::key("logits", format!("the parts under {} changed while they were read", dir(cx, key).display())));
    };
    manifest_file(cx, key, meta, count, entries, total)?;
    Ok(Some(encode_logits(&cx.cache.logits(key), meta, &cx.data.train.row_ids, &logits)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_rows_in_whole_blocks() {
        let b = PREDICT_BLOCK_ROWS;
        let rows = 10 * b + 7;
        let ranges: Vec<_> = (0..4).map(|i| Shard::new(i, 4).unwrap().rows(rows)).collect();
        assert_eq!(ranges[0].start, 0);
        assert_eq!(ranges[3].end, rows);
        for w in ranges.windows(2) {
            assert_eq!(w[0].end, w[1].start);
            assert_eq!(w[0].end % b, 0);
        }
        assert_eq!(ranges.iter().map(|r| r.len().div_ceil(b)).collect::<Vec<_>>(), [2, 3, 3, 3]);
        assert_eq!(Shard::new(0, 1).unwrap().rows(5), 0..5);
        assert_eq!(Shard::new(3, 4).unwrap().rows(5), 0..5, "more shards than blocks: the last has the rows");
        assert_eq!(Shard::new(0, 4).unwrap().rows(5), 0..0);
    }

    #[test]
    fn shard_specs_are_checked() {
        assert_eq!(Shard::parse("2/4").unwrap(), Shard { index: 2, count: 4 });
        assert!(Shard::parse("4/4").unwrap_err().contains("0..4"));
        assert!(Shard::parse("x/4").unwrap_err().contains("`x` is not a whole number"));
        assert!(Shard::parse("3").unwrap_err().contains("I/N"));
        assert_eq!(describe_missing(16, &[3, 7]), "parts 3, 7 of 16 missing");
    }

    #[test]
    fn the_shard_comes_from_slurm_or_kubernetes() {
        let env = |pairs: &'static [(&'static str, &'static str)]| move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        let slurm = env(&[("SLURM_ARRAY_TASK_ID", "6"), ("SLURM_ARRAY_TASK_MIN", "4"), ("SLURM_ARRAY_TASK_COUNT", "4")]);
        assert_eq!(Shard::from_env(slurm, None).unwrap(), Some(Shard { index: 2, count: 4 }));
        let k8s = env(&[("JOB_COMPLETION_INDEX", "3")]);
        assert_eq!(Shard::from_env(k8s, Some(8)).unwrap(), Some(Shard { index: 3, count: 8 }));
        assert!(Shard::from_env(k8s, None).unwrap_err().contains("--shards"));
        assert_eq!(Shard::from_env(env(&[]), Some(4)).unwrap(), None);
        assert!(Shard::from_env(env(&[("SLURM_ARRAY_TASK_ID", "x")]), None).unwrap_err().contains("not a whole number"));
    }
}
