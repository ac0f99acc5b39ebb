//! A full logit file written a row group at a time into a temporary file beside its artifact, so
//! writing N rows holds one chunk of logits, not N; [`Cache::store_file_at`] then moves it into
//! place under its entry record. The file decodes as one [`encode_logits`](crate::encode_logits)
//! writes (the same columns and footer metadata), in more row groups.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::logits::{footer_metadata, full_columns};
use crate::{CacheError, LogitMeta};

/// A logit file being written.
pub struct LogitWriter {
    path: PathBuf,
    tmp: PathBuf,
    writer: polars::io::parquet::write::BatchedWriter<File>,
    classes: usize,
    rows: usize,
}

/// A complete logit file in its temporary place, with its checksum.
pub struct WrittenFile {
    pub(crate) tmp: PathBuf,
    pub blake3: String,
    pub bytes: u64,
}

impl LogitWriter {
    /// Starts the file that will become `path` (full layout only: top-k rows are not streamed).
    pub fn create(path: &Path, meta: &LogitMeta) -> Result<Self, CacheError> {
        let classes = meta.class_names.len();
        if meta.top_k.is_some() || classes == 0 {
            return Err(CacheError::file(path, "only full logits of at least one class are written a chunk at a time"));
        }
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| CacheError::file(dir, format!("cannot create directory: {e}")))?;
        let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let file = File::create(&tmp).map_err(|e| CacheError::file(&tmp, format!("cannot write: {e}")))?;
        let schema = Schema::from_iter([
            Field::new("row_id".into(), DataType::UInt64),
            Field::new("logits".into(), DataType::Array(Box::new(DataType::Float32), classes)),
        ]);
        let writer = ParquetWriter::new(file).with_key_value_metadata(Some(footer_metadata(meta))).batched(&schema).map_err(|e| CacheError::file(path, e))?;
        Ok(Self { path: path.to_path_buf(), tmp, writer, classes, rows: 0 })
    }

    /// Appends rows (`logits`: row-major, one row per id) as a row group.
    pub fn write(&mut self, row_ids: &[u64], logits: Vec<f32>) -> Result<(), CacheError> {
        if logits.len() != row_ids.len() * self.classes {
            return Err(CacheError::file(&self.path, format!("{} logits do not fill {} rows of {} classes", logits.len(), row_ids.len(), self.classes)));
        }
        let df = DataFrame::new_infer_height(full_columns(row_ids, logits, self.classes)).map_err(|e| CacheError::file(&self.path, e))?;
        self.writer.write_batch(&df).map_err(|e| self.fail(e))?;
        self.rows += row_ids.len();
        Ok(())
    }

    /// Writes the footer, syncs the file and hashes it (a file of no rows has one empty group).
    pub fn finish(mut self) -> Result<WrittenFile, CacheError> {
        if self.rows == 0 {
            self.write(&[], Vec::new())?;
        }
        self.writer.finish().map_err(|e| self.fail(e))?;
        let synced = File::open(&self.tmp).and_then(|f| f.sync_all());
        synced.map_err(|e| self.fail(e))?;
        let (blake3, bytes) = hash_file(&self.tmp).map_err(|e| self.fail(e))?;
        Ok(WrittenFile { tmp: self.tmp.clone(), blake3, bytes })
    }

    fn fail(&self, e: impl std::fmt::Display) -> CacheError {
        let _ = std::fs::remove_file(&self.tmp);
        CacheError::file(&self.path, format!("cannot write: {e}"))
    }
}

/// blake3 and size of a file, read in pieces.
pub(crate) fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let (mut hasher, mut file, mut buf, mut bytes) = (blake3::Hasher::new(), File::open(path)?, vec![0u8; 1 << 20], 0u64);
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok((hasher.finalize().to_hex().to_string(), bytes));
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
}
