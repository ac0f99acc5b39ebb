//! The transfer file a chunk of rows at a time, for teacher inference over data sets larger than
//! memory: the source (the labelled rows) is prepared in memory as [`prepare`](crate::prepare)
//! does; the rows of `data.transfer.source` (a Parquet file, read by row ranges) are read in
//! chunks to fit the scaling (on every training row, transfer rows included), to hash the data's
//! fingerprint and to feed inference, and are never all in memory. The statistics, the fingerprint
//! and every scaled value are bit for bit those of the prepared matrices.

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::file::{compression_of, regular_file};
use crate::load::{infer_format, parquet_guarded};
use crate::prepare::{apply_scale, feature_matrix_at, image_of, log_prepared, source_splits, DataHash, ScaleFit, Scaling, Sourced};
use crate::{DataError, LabelState, Prepared, Split, Tables, TRANSFER_ROW_ID_BASE};
use distill_spec::{DataFormat, DataSpec, ScaleKind, SourceSpec};

/// Rows per chunk: `$DISTILL_STREAM_CHUNK_ROWS` (tests use tiny chunks), else this.
pub const DEFAULT_CHUNK_ROWS: usize = 65_536;

/// The chunk size streamed reads use.
pub fn chunk_rows() -> usize {
    std::env::var("DISTILL_STREAM_CHUNK_ROWS").ok().and_then(|v| v.trim().parse().ok()).filter(|&n: &usize| n > 0).unwrap_or(DEFAULT_CHUNK_ROWS)
}

/// A transfer file read a range of rows at a time.
pub struct TransferFile {
    path: PathBuf,
    rows: usize,
    metadata: FileMetadataRef,
}

impl TransferFile {
    /// The transfer file of `spec` when it reads in row ranges (a plain Parquet file); `None`
    /// for one that is loaded whole (CSV, compressed bytes).
    pub fn open(spec: &SourceSpec, base_dir: &Path) -> Result<Option<Self>, DataError> {
        let path = crate::resolve_path(base_dir, &spec.path)?;
        let format = match spec.format {
            Some(f) => f,
            None => infer_format(&path)?,
        };
        if format != DataFormat::Parquet || spec.has_csv_options() {
            return Ok(None);
        }
        let err = |message: String| DataError::Load { path: path.display().to_string(), message };
        regular_file(&path).map_err(err)?;
        if compression_of(&path).is_some() {
            return Ok(None);
        }
        crate::load::check_parquet_file(&path).map_err(err)?;
        let mut reader = ParquetReader::new(File::open(&path).map_err(|e| err(format!("cannot read it: {e}")))?);
        let metadata = guarded(|| reader.get_metadata().cloned()).map_err(|e| err(e.to_string()))?;
        let rows = metadata.num_rows;
        if rows == 0 {
            return Err(err("the file has no rows".into()));
        }
        tracing::info!(path = %path.display(), rows, "transfer file: read in chunks");
        Ok(Some(Self { path, rows, metadata }))
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The raw (unscaled) features `names` of rows `rows`, row-major.
    fn features(&self, rows: Range<usize>, names: &[String]) -> Result<Vec<f32>, DataError> {
        let shown = self.path.display().to_string();
        let err = |message: String| DataError::Load { path: shown.clone(), message };
        let file = File::open(&self.path).map_err(|e| err(format!("cannot read it: {e}")))?;
        let mut reader = ParquetReader::new(file).with_columns(Some(names.to_vec())).with_slice(Some((rows.start, rows.len())));
        reader.set_metadata(self.metadata.clone());
        let df = parquet_guarded(|| reader.finish()).map_err(|e| err(e.to_string()))?;
        if df.height() != rows.len() {
            return Err(err(format!("rows {}..{}: read {} rows", rows.start, rows.end, df.height())));
        }
        feature_matrix_at(&df, names, &format!("data.transfer.source ({shown})"), rows.start)
    }
}

fn guarded<T>(read: impl FnOnce() -> PolarsResult<T>) -> PolarsResult<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read))
        .unwrap_or_else(|_| Err(PolarsError::ComputeError("the Parquet file is corrupt (its metadata does not decode)".into())))
}

/// The prepared data with the transfer file's rows left in the file: `prepared.train` holds the
/// source's training rows, the training split goes on with every row of the transfer file.
pub struct Streamed {
    /// Everything as [`prepare`](crate::prepare) makes it (the fingerprint covers the transfer
    /// rows), except that the training split stops before the transfer rows.
    pub prepared: Prepared,
    transfer: TransferFile,
    scale: Option<Scaling>,
    scale_kind: ScaleKind,
    file: String,
}

impl Streamed {
    /// Training rows, the transfer file's included.
    pub fn train_len(&self) -> usize {
        self.prepared.train.len() + self.transfer.rows
    }

    /// The row ids of training rows `rows`.
    pub fn row_ids(&self, rows: Range<usize>) -> Vec<u64> {
        let own = &self.prepared.train.row_ids;
        rows.map(|r| own.get(r).copied().unwrap_or_else(|| TRANSFER_ROW_ID_BASE + (r - own.len()) as u64)).collect()
    }

    /// The scaled features of training rows `rows`, `step` rows at a time from `rows.start`,
    /// each chunk checked for values that are not finite: `f(chunk rows, row-major features)`.
    pub fn for_each_chunk<E: From<DataError>>(
        &self,
        rows: Range<usize>,
        step: usize,
        mut f: impl FnMut(Range<usize>, &[f32]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut start = rows.start;
        while start < rows.end {
            let end = (start + step.max(1)).min(rows.end);
            let x = self.scaled(start..end)?;
            self.refuse_non_finite(start..end, &x, Some(self.scale_kind))?;
            f(start..end, &x)?;
            start = end;
        }
        Ok(())
    }

    /// Scaled features of training rows `rows`: the source's from memory (scaled there), the
    /// transfer file's read and scaled here.
    fn scaled(&self, rows: Range<usize>) -> Result<Vec<f32>, DataError> {
        let (own, width) = (self.prepared.train.len(), self.prepared.features());
        let mut x = Vec::with_capacity(rows.len() * width);
        if rows.start < own {
            x.extend_from_slice(&self.prepared.train.x[rows.start * width..rows.end.min(own) * width]);
        }
        if rows.end > own {
            let from = rows.start.max(own) - own;
            let mut read = self.transfer.features(from..rows.end - own, &self.prepared.feature_names)?;
            apply_scale(self.scale.as_ref(), &mut read, width);
            x.extend(read);
        }
        Ok(x)
    }

    fn refuse_non_finite(&self, rows: Range<usize>, x: &[f32], scaled: Option<ScaleKind>) -> Result<(), DataError> {
        if x.iter().all(|v| v.is_finite()) {
            return Ok(());
        }
        let n = rows.len();
        let chunk = Split { row_ids: self.row_ids(rows), x: x.to_vec(), y: vec![0; n], state: vec![LabelState::Unlabelled; n] };
        let empty = Split::default();
        crate::feature_health::refuse_non_finite([&chunk, &empty, &empty], &self.prepared.feature_names, &self.file, scaled)
    }

    /// The transfer file's raw rows in chunks (the statistics' passes).
    fn transfer_chunks(&self, step: usize, mut f: impl FnMut(&[f32])) -> Result<(), DataError> {
        let own = self.prepared.train.len();
        let mut start = 0;
        while start < self.transfer.rows {
            let end = (start + step).min(self.transfer.rows);
            let x = self.transfer.features(start..end, &self.prepared.feature_names)?;
            self.refuse_non_finite(own + start..own + end, &x, None)?;
            f(&x);
            start = end;
        }
        Ok(())
    }
}

/// [`prepare`](crate::prepare) with the rows of `transfer` read `chunk` rows at a time (its
/// `tables.transfer` is not used). `data.augment` needs the training rows in memory: refused.
pub fn prepare_streamed(tables: &Tables, transfer: TransferFile, spec: &DataSpec, seed: u64, chunk: usize) -> Result<Streamed, DataError> {
    if !spec.augment.is_empty() {
        return Err(DataError::Invalid("data.augment: augmentation needs the training rows in memory; the transfer file cannot be streamed".into()));
    }
    let file = spec.source.path.display().to_string();
    let Sourced { feature_names, classes, warnings, splits: [train, val, test] } = source_splits(tables, spec, seed)?;
    let width = feature_names.len();
    crate::feature_health::refuse_non_finite([&train, &val, &test], &feature_names, &file, None)?;
    let image = image_of(spec, &feature_names);
    let test_raw_x = test.x.clone();
    let prepared =
        Prepared { feature_names, class_names: classes.names, train, val, test, fingerprint: String::new(), image, warnings, scaling: None, test_raw_x };
    let mut s = Streamed { prepared, transfer, scale: None, scale_kind: spec.scale.kind, file };

    // Statistics over the source's training rows, then the transfer rows: the matrix's row order.
    let mut fit = ScaleFit::new(spec.scale.kind, width);
    fit.add(&s.prepared.train.x);
    s.transfer_chunks(chunk, |x| fit.add(x))?;
    if fit.second_pass() {
        fit.add_second(&s.prepared.train.x);
        s.transfer_chunks(chunk, |x| fit.add_second(x))?;
    }
    s.scale = fit.finish();
    s.prepared.scaling = s.scale.clone();
    for split in [&mut s.prepared.train, &mut s.prepared.val, &mut s.prepared.test] {
        apply_scale(s.scale.as_ref(), &mut split.x, width);
    }
    let p = &s.prepared;
    crate::feature_health::refuse_non_finite([&p.train, &p.val, &p.test], &p.feature_names, &s.file, Some(spec.scale.kind))?;
    s.prepared.fingerprint = fingerprint(&s, chunk)?;
    log_prepared(&s.prepared.train, s.prepared.val.len(), s.prepared.test.len(), width, s.prepared.classes());
    tracing::info!(transfer_rows = s.transfer.rows, chunk, "transfer rows streamed");
    s.prepared.warnings.iter().for_each(|w| tracing::warn!("{w}"));
    Ok(s)
}

/// The fingerprint [`prepare`](crate::prepare) computes, with the transfer rows hashed a chunk
/// at a time.
fn fingerprint(s: &Streamed, chunk: usize) -> Result<String, DataError> {
    let p = &s.prepared;
    let (own, total) = (p.train.len(), s.train_len());
    let mut hash = DataHash::new(&p.class_names, &p.feature_names);
    hash.split(total, (0..total).map(|r| p.train.row_ids.get(r).copied().unwrap_or_else(|| TRANSFER_ROW_ID_BASE + (r - own) as u64)));
    hash.values(&p.train.x);
    s.for_each_chunk(own..total, chunk, |_, x| {
        hash.values(x);
        Ok::<(), DataError>(())
    })?;
    hash.labels(&p.train.y, &p.train.state);
    let unlabelled = (vec![0u32; chunk], vec![LabelState::Unlabelled; chunk]);
    let mut left = s.transfer.rows;
    while left > 0 {
        let n = left.min(chunk);
        hash.labels(&unlabelled.0[..n], &unlabelled.1[..n]);
        left -= n;
    }
    for split in [&p.val, &p.test] {
        hash.split(split.len(), split.row_ids.iter().copied());
        hash.values(&split.x);
        hash.labels(&split.y, &split.state);
    }
    Ok(hash.finish())
}
