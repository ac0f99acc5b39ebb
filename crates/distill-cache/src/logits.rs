//! Teacher logits in Parquet: one row per training example, `row_id` (u64) and `logits`
//! (fixed-size list of f32, one entry per class), with file-level key/value metadata that
//! says what produced them. A file whose metadata does not match what the caller expects is
//! never used.

use std::io::Cursor;
use std::path::Path;

use polars::prelude::*;
use polars_arrow::array::PrimitiveArray;

use crate::{write_atomic, CacheError};

/// Version of the layout below; bump it when the columns or metadata change.
pub const LOGIT_SCHEMA_VERSION: &str = "1";

/// What the logits belong to, stored in the Parquet footer.
#[derive(Debug, Clone, PartialEq)]
pub struct LogitMeta {
    pub teacher_fingerprint: String,
    pub data_fingerprint: String,
    pub class_names: Vec<String>,
}

/// Logits read back from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct LogitFile {
    pub meta: LogitMeta,
    pub row_ids: Vec<u64>,
    /// Row-major, `row_ids.len() × class_names.len()`.
    pub logits: Vec<f32>,
}

const KEYS: [&str; 6] = [
    "distill.schema_version",
    "distill.version",
    "distill.teacher_fingerprint",
    "distill.data_fingerprint",
    "distill.num_classes",
    "distill.class_names",
];

/// Writes logits atomically to `path`.
pub fn write_logits(path: &Path, meta: &LogitMeta, row_ids: &[u64], logits: &[f32]) -> Result<(), CacheError> {
    write_atomic(path, &encode_logits(path, meta, row_ids, logits)?)
}

/// The Parquet bytes of a logit file; `path` only names it in errors.
pub fn encode_logits(path: &Path, meta: &LogitMeta, row_ids: &[u64], logits: &[f32]) -> Result<Vec<u8>, CacheError> {
    let k = meta.class_names.len();
    if k == 0 || logits.len() != row_ids.len() * k {
        return Err(CacheError::file(path, format!("{} logits do not fill {} rows of {k} classes", logits.len(), row_ids.len())));
    }
    let values = PrimitiveArray::<f32>::from_vec(logits.to_vec()).boxed();
    let array = ArrayChunked::from_aligned_values("logits".into(), &DataType::Float32, k, vec![values], row_ids.len());
    let mut df = DataFrame::new_infer_height(vec![
        Series::new("row_id".into(), row_ids).into(),
        array.into_series().into(),
    ])
    .map_err(|e| CacheError::file(path, e))?;
    let class_names = serde_json_string(&meta.class_names);
    let values = [
        LOGIT_SCHEMA_VERSION.to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
        meta.teacher_fingerprint.clone(),
        meta.data_fingerprint.clone(),
        k.to_string(),
        class_names,
    ];
    let kv = KEYS.iter().zip(values).map(|(k, v)| (k.to_string(), v)).collect();
    let mut buffer = Vec::new();
    ParquetWriter::new(&mut buffer)
        .with_key_value_metadata(Some(KeyValueMetadata::from_static(kv)))
        .finish(&mut df)
        .map_err(|e| CacheError::file(path, e))?;
    Ok(buffer)
}

fn serde_json_string(names: &[String]) -> String {
    serde_json::to_string(names).unwrap_or_else(|_| "[]".into())
}

/// Reads a logit file written by [`write_logits`] (or by another tool in the same schema).
pub fn read_logits(path: &Path) -> Result<LogitFile, CacheError> {
    let bytes = std::fs::read(path).map_err(|e| CacheError::file(path, format!("cannot read: {e}")))?;
    decode_logits(path, bytes)
}

/// Parses the bytes of a logit file; `path` only names it in errors.
pub fn decode_logits(path: &Path, bytes: Vec<u8>) -> Result<LogitFile, CacheError> {
    let err = |m: String| CacheError::file(path, m);
    let mut reader = ParquetReader::new(Cursor::new(bytes));
    let kv: Vec<(String, String)> = reader
        .get_metadata()
        .map_err(|e| err(format!("not a readable Parquet file: {e}")))?
        .key_value_metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|kv| (kv.key, kv.value.unwrap_or_default()))
        .collect();
    let get = |key: &str| kv.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).ok_or_else(|| err(format!("metadata key `{key}` is missing")));
    let version = get(KEYS[0])?;
    if version != LOGIT_SCHEMA_VERSION {
        return Err(err(format!("logit schema version {version}; this distill reads {LOGIT_SCHEMA_VERSION}")));
    }
    let class_names: Vec<String> = serde_json::from_str(&get(KEYS[5])?).map_err(|e| err(format!("bad class names: {e}")))?;
    let k: usize = get(KEYS[4])?.parse().map_err(|_| err("bad class count".into()))?;
    if k != class_names.len() {
        return Err(err(format!("class count {k} does not match {} class names", class_names.len())));
    }
    let meta = LogitMeta { teacher_fingerprint: get(KEYS[2])?, data_fingerprint: get(KEYS[3])?, class_names };
    let df = reader.finish().map_err(|e| err(format!("cannot read rows: {e}")))?;
    let ids = df.column("row_id").map_err(|e| err(e.to_string()))?.as_materialized_series().cast(&DataType::UInt64).map_err(|e| err(e.to_string()))?;
    let row_ids: Vec<u64> = ids.u64().map_err(|e| err(e.to_string()))?.iter().map(|v| v.ok_or_else(|| err("null row_id".into()))).collect::<Result<_, _>>()?;
    let array = df.column("logits").map_err(|e| err(e.to_string()))?.array().map_err(|e| err(format!("column `logits`: {e}")))?.clone();
    if array.width() != k {
        return Err(err(format!("column `logits` has width {}; metadata says {k} classes", array.width())));
    }
    if array.null_count() > 0 {
        return Err(err("column `logits` has null rows".into()));
    }
    let inner = array.get_inner().cast(&DataType::Float32).map_err(|e| err(e.to_string()))?;
    let logits: Vec<f32> = inner.f32().map_err(|e| err(e.to_string()))?.iter().map(|v| v.ok_or_else(|| err("null logit value".into()))).collect::<Result<_, _>>()?;
    if logits.len() != row_ids.len() * k {
        return Err(err(format!("{} logit values for {} rows of {k} classes", logits.len(), row_ids.len())));
    }
    if let Some(i) = logits.iter().position(|v| !v.is_finite()) {
        return Err(err(format!("row {} has a non-finite logit", i / k)));
    }
    Ok(LogitFile { meta, row_ids, logits })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_ids_values_and_metadata() {
        let dir = std::env::temp_dir().join(format!("distill-logits-{}", std::process::id()));
        let path = dir.join("x.parquet");
        let meta = LogitMeta { teacher_fingerprint: "t".into(), data_fingerprint: "d".into(), class_names: vec!["a".into(), "b".into(), "c".into()] };
        let ids = [4u64, 9];
        let logits = [0.5f32, -1.0, 2.25, 3.0, 0.0, -7.5];
        write_logits(&path, &meta, &ids, &logits).unwrap();
        let back = read_logits(&path).unwrap();
        assert_eq!(back, LogitFile { meta, row_ids: ids.to_vec(), logits: logits.to_vec() });
        std::fs::write(&path, b"PAR1 not really").unwrap();
        assert!(read_logits(&path).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
