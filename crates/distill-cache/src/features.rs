//! A teacher's hidden-layer features (for feature hints) in Parquet: `row_id` (u64) and
//! `features` (fixed-size list of f32, `width` per row), with footer metadata that says which
//! teacher, rows and layer they are. Files are named `<key>.features.parquet`; a file whose
//! metadata does not match what the caller expects is never used.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::Path;

use polars::prelude::*;

use crate::logits::{fixed_list, list_values};
use crate::CacheError;

/// Version of the layout; bump it when the columns or metadata change.
pub const FEATURE_SCHEMA_VERSION: &str = "1";

/// The file name ending that tells a feature file from a logit file.
pub const FEATURES_EXT: &str = ".features.parquet";

/// What the features belong to, stored in the Parquet footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureMeta {
    pub teacher_fingerprint: String,
    pub data_fingerprint: String,
    /// The teacher's hidden layer (0-based).
    pub layer: usize,
    /// Features per row.
    pub width: usize,
}

/// Features read back from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureFile {
    pub meta: FeatureMeta,
    pub row_ids: Vec<u64>,
    /// Row-major, `row_ids.len() × width`.
    pub features: Vec<f32>,
}

const KEYS: [&str; 6] =
    ["distill.feature_schema_version", "distill.version", "distill.teacher_fingerprint", "distill.data_fingerprint", "distill.layer", "distill.width"];

/// The Parquet bytes of a feature file; `path` only names it in errors.
pub fn encode_features(path: &Path, meta: &FeatureMeta, row_ids: &[u64], features: &[f32]) -> Result<Vec<u8>, CacheError> {
    let (rows, width) = (row_ids.len(), meta.width);
    if width == 0 || features.len() != rows * width {
        return Err(CacheError::file(path, format!("{} features do not fill {rows} rows of width {width}", features.len())));
    }
    let columns = vec![Column::from(Series::new("row_id".into(), row_ids)), fixed_list("features", &DataType::Float32, features.to_vec(), width, rows)];
    let mut df = DataFrame::new_infer_height(columns).map_err(|e| CacheError::file(path, e))?;
    let values = [
        FEATURE_SCHEMA_VERSION.to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
        meta.teacher_fingerprint.clone(),
        meta.data_fingerprint.clone(),
        meta.layer.to_string(),
        width.to_string(),
    ];
    let kv = KEYS.iter().zip(values).map(|(k, v)| (k.to_string(), v)).collect();
    let mut buffer = Vec::new();
    ParquetWriter::new(&mut buffer).with_key_value_metadata(Some(KeyValueMetadata::from_static(kv))).finish(&mut df).map_err(|e| CacheError::file(path, e))?;
    Ok(buffer)
}

/// Parses the bytes of a feature file; `path` only names it in errors.
pub fn decode_features(path: &Path, bytes: Vec<u8>) -> Result<FeatureFile, CacheError> {
    let err = |m: String| CacheError::file(path, m);
    let mut reader = ParquetReader::new(Cursor::new(bytes));
    let metadata = reader.get_metadata().map_err(|e| err(format!("not a readable Parquet file: {e}")))?;
    let kv: HashMap<String, String> =
        metadata.key_value_metadata().clone().unwrap_or_default().into_iter().map(|kv| (kv.key, kv.value.unwrap_or_default())).collect();
    let get = |key: &str| kv.get(key).cloned().ok_or_else(|| err(format!("metadata key `{key}` is missing")));
    let number = |key: &str| get(key)?.parse::<usize>().map_err(|_| err(format!("metadata `{key}` is not a number")));
    let version = get(KEYS[0])?;
    if version != FEATURE_SCHEMA_VERSION {
        return Err(err(format!("feature schema version {version}; this distill reads {FEATURE_SCHEMA_VERSION}")));
    }
    let meta = FeatureMeta { teacher_fingerprint: get(KEYS[2])?, data_fingerprint: get(KEYS[3])?, layer: number(KEYS[4])?, width: number(KEYS[5])? };
    let df = reader.finish().map_err(|e| err(format!("cannot read rows: {e}")))?;
    let ids = df.column("row_id").map_err(|_| err("column `row_id` is missing".into()))?.as_materialized_series().clone();
    let row_ids: Vec<u64> = ids.u64().map_err(|e| err(format!("column `row_id`: {e}")))?.iter().map(|v| v.unwrap_or(u64::MAX)).collect();
    let inner = list_values(&df, "features", meta.width, DataType::Float32, &err)?;
    let features: Vec<f32> = inner.f32().map_err(|e| err(e.to_string()))?.iter().map(|v| v.unwrap_or(f32::NAN)).collect();
    if let Some(i) = features.iter().position(|v| !v.is_finite()) {
        return Err(err(format!("row {} has a non-finite feature", i / meta.width)));
    }
    Ok(FeatureFile { meta, row_ids, features })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_round_trip_and_bad_files_are_refused() {
        let path = Path::new("/c/features/k.features.parquet");
        let meta = FeatureMeta { teacher_fingerprint: "t".into(), data_fingerprint: "d".into(), layer: 1, width: 3 };
        let values = [0.5, -1.0, 2.0, 0.0, 3.5, -0.25];
        let bytes = encode_features(path, &meta, &[7, 9], &values).unwrap();
        let back = decode_features(path, bytes.clone()).unwrap();
        assert_eq!(back, FeatureFile { meta: meta.clone(), row_ids: vec![7, 9], features: values.to_vec() });
        assert!(encode_features(path, &meta, &[7], &values).is_err(), "rows × width must match");
        let cut = decode_features(path, bytes[..bytes.len() / 2].to_vec()).unwrap_err().to_string();
        assert!(cut.contains("/c/features/k.features.parquet"), "{cut}");
        let nan = encode_features(path, &meta, &[7, 9], &[0.0, f32::NAN, 0.0, 0.0, 0.0, 0.0]).unwrap();
        assert!(decode_features(path, nan).unwrap_err().to_string().contains("row 0 has a non-finite feature"));
    }
}
