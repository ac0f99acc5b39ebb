//! Teacher logits in Parquet: one row per training example and file-level key/value metadata
//! that says what produced them. Two layouts:
//!
//! - full: `row_id` (u64) and `logits` (fixed-size list of f32, one entry per class);
//! - top-k (`distill.top_k` = K): `row_id`, `topk_indices` (fixed-size list of u32, K class
//!   indices, largest logit first), `topk_values` (fixed-size list of f32, their logits) and
//!   `tail_logsumexp` (f32, log Σ exp over the other classes' logits; −∞ when K = classes).
//!
//! Reading a top-k file rebuilds every logit: the top K exactly, each of the other C − K set to
//! `tail_logsumexp − ln(C − K)`, so that at temperature 1 the softmax gives the top K their exact
//! probabilities and spreads the rest's exact total mass uniformly. A cache file whose metadata
//! does not match what the caller expects is never used.

use std::collections::HashMap;
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
    /// Stored as the `top_k` largest logits per row; `None`: every logit.
    pub top_k: Option<usize>,
}

/// Logits read back from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct LogitFile {
    pub meta: LogitMeta,
    pub row_ids: Vec<u64>,
    /// Row-major, `row_ids.len() × class_names.len()` (rebuilt from top-k when stored so).
    pub logits: Vec<f32>,
}

/// Logits made outside distill: the same schema, with every metadata key optional.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalLogits {
    pub row_ids: Vec<u64>,
    /// Row-major, `row_ids.len() × classes`.
    pub logits: Vec<f32>,
    /// `distill.class_names`, when the file has it.
    pub class_names: Option<Vec<String>>,
}

const KEYS: [&str; 7] = [
    "distill.schema_version",
    "distill.version",
    "distill.teacher_fingerprint",
    "distill.data_fingerprint",
    "distill.num_classes",
    "distill.class_names",
    "distill.top_k",
];

/// Writes logits atomically to `path`.
pub fn write_logits(path: &Path, meta: &LogitMeta, row_ids: &[u64], logits: &[f32]) -> Result<(), CacheError> {
    write_atomic(path, &encode_logits(path, meta, row_ids, logits)?)
}

pub(crate) fn fixed_list<T: polars_arrow::types::NativeType>(name: &str, dtype: &DataType, values: Vec<T>, width: usize, rows: usize) -> Column {
    let values = PrimitiveArray::<T>::from_vec(values).boxed();
    ArrayChunked::from_aligned_values(name.into(), dtype, width, vec![values], rows).into_series().into()
}

/// The `k` largest logits of one row (largest first, ties by class index) and the log-sum-exp of
/// the others (−∞ when there are none).
pub fn top_k_row(row: &[f32], k: usize) -> (Vec<u32>, Vec<f32>, f32) {
    let mut order: Vec<usize> = (0..row.len()).collect();
    order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    let rest = &order[k.min(row.len())..];
    let tail = match rest.iter().map(|&i| row[i]).fold(f32::NEG_INFINITY, f32::max) {
        m if m == f32::NEG_INFINITY => f32::NEG_INFINITY,
        m => m + rest.iter().map(|&i| ((row[i] - m) as f64).exp()).sum::<f64>().ln() as f32,
    };
    let top = &order[..k.min(row.len())];
    (top.iter().map(|&i| i as u32).collect(), top.iter().map(|&i| row[i]).collect(), tail)
}

/// One full row from its top-k form (see the module docs).
fn rebuild_row(indices: &[u32], values: &[f32], tail: f32, out: &mut [f32]) {
    let missing = out.len() - indices.len();
    let fill = if missing == 0 { 0.0 } else { tail - (missing as f32).ln() };
    out.iter_mut().for_each(|v| *v = fill);
    for (&i, &v) in indices.iter().zip(values) {
        out[i as usize] = v;
    }
}

/// The Parquet bytes of a logit file; `path` only names it in errors.
pub fn encode_logits(path: &Path, meta: &LogitMeta, row_ids: &[u64], logits: &[f32]) -> Result<Vec<u8>, CacheError> {
    let k = meta.class_names.len();
    let rows = row_ids.len();
    if k == 0 || logits.len() != rows * k {
        return Err(CacheError::file(path, format!("{} logits do not fill {rows} rows of {k} classes", logits.len())));
    }
    let mut columns = vec![Column::from(Series::new("row_id".into(), row_ids))];
    match meta.top_k {
        None => columns = full_columns(row_ids, logits.to_vec(), k),
        Some(top) => {
            if top == 0 || top > k {
                return Err(CacheError::file(path, format!("top_k {top} is not in 1..={k} (the class count)")));
            }
            let (mut indices, mut values, mut tails) = (Vec::with_capacity(rows * top), Vec::with_capacity(rows * top), Vec::with_capacity(rows));
            for row in logits.chunks(k) {
                let (i, v, t) = top_k_row(row, top);
                indices.extend(i);
                values.extend(v);
                tails.push(t);
            }
            columns.push(fixed_list("topk_indices", &DataType::UInt32, indices, top, rows));
            columns.push(fixed_list("topk_values", &DataType::Float32, values, top, rows));
            columns.push(Series::new("tail_logsumexp".into(), tails).into());
        }
    }
    let mut df = DataFrame::new_infer_height(columns).map_err(|e| CacheError::file(path, e))?;
    let mut buffer = Vec::new();
    ParquetWriter::new(&mut buffer).with_key_value_metadata(Some(footer_metadata(meta))).finish(&mut df).map_err(|e| CacheError::file(path, e))?;
    Ok(buffer)
}

/// The `distill.*` key/value metadata of a logit file's footer.
pub(crate) fn footer_metadata(meta: &LogitMeta) -> KeyValueMetadata {
    let class_names = serde_json::to_string(&meta.class_names).unwrap_or_else(|_| "[]".into());
    let mut values = vec![
        LOGIT_SCHEMA_VERSION.to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
        meta.teacher_fingerprint.clone(),
        meta.data_fingerprint.clone(),
        meta.class_names.len().to_string(),
        class_names,
    ];
    values.extend(meta.top_k.map(|t| t.to_string()));
    KeyValueMetadata::from_static(KEYS.iter().zip(values).map(|(k, v)| (k.to_string(), v)).collect())
}

/// The full layout's columns for `rows` rows of `k` logits each.
pub(crate) fn full_columns(row_ids: &[u64], logits: Vec<f32>, k: usize) -> Vec<Column> {
    vec![Column::from(Series::new("row_id".into(), row_ids)), fixed_list("logits", &DataType::Float32, logits, k, row_ids.len())]
}

/// Reads a logit file written by [`write_logits`] (or by another tool in the same schema).
pub fn read_logits(path: &Path) -> Result<LogitFile, CacheError> {
    let bytes = std::fs::read(path).map_err(|e| CacheError::file(path, format!("cannot read: {e}")))?;
    decode_logits(path, bytes)
}

/// A file parsed: its footer and its rows, rebuilt to `classes` logits each.
struct Parsed {
    kv: HashMap<String, String>,
    row_ids: Vec<u64>,
    logits: Vec<f32>,
    classes: usize,
    top_k: Option<usize>,
}

/// Every value of the column `name` as `rows × width` values of type `to`; lists of any length
/// are cast to `width` (a row of another length is an error).
pub(crate) fn list_values(df: &DataFrame, name: &str, width: usize, to: DataType, err: &dyn Fn(String) -> CacheError) -> Result<Series, CacheError> {
    let column = df.column(name).map_err(|_| err(format!("column `{name}` is missing")))?.as_materialized_series().clone();
    let array = match column.dtype() {
        DataType::Array(_, w) if *w != width => return Err(err(format!("column `{name}` has {w} values per row; expected {width} (the class count)"))),
        DataType::Array(..) | DataType::List(_) => column
            .cast(&DataType::Array(Box::new(to.clone()), width))
            .map_err(|_| err(format!("column `{name}`: not every row has {width} numeric values (the class count)")))?,
        other => return Err(err(format!("column `{name}` is {other}; expected a list of {width} numbers per row"))),
    };
    let array = array.array().map_err(|e| err(e.to_string()))?.clone();
    if array.null_count() > 0 {
        let row = (0..array.len()).find(|&i| array.get_as_series(i).is_none()).unwrap_or(0);
        return Err(err(format!("column `{name}`: row {row} is null")));
    }
    array.get_inner().cast(&to).map_err(|e| err(format!("column `{name}`: {e}")))
}

fn parse(path: &Path, bytes: Vec<u8>, classes_hint: Option<usize>) -> Result<Parsed, CacheError> {
    let err = |m: String| CacheError::file(path, m);
    let memory = distill_spec::memory::Memory::available().map_or(u64::MAX, |m| m.bytes);
    distill_parquet::check(&bytes, memory).map_err(|e| err(format!("not a readable Parquet file: {e}")))?;
    let mut reader = ParquetReader::new(Cursor::new(bytes));
    let kv: HashMap<String, String> = reader
        .get_metadata()
        .map_err(|e| err(format!("not a readable Parquet file: {e}")))?
        .key_value_metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|kv| (kv.key, kv.value.unwrap_or_default()))
        .collect();
    let number = |key: &str| kv.get(key).map(|v| v.parse::<usize>().map_err(|_| err(format!("metadata `{key}` is not a number: {v:?}")))).transpose();
    let top_k = number(KEYS[6])?;
    let classes = match (number(KEYS[4])?, classes_hint) {
        (Some(c), Some(hint)) if c != hint => return Err(err(format!("metadata `{}` says {c} classes; the data has {hint}", KEYS[4]))),
        (Some(c), _) | (None, Some(c)) => c,
        (None, None) => return Err(err(format!("metadata key `{}` is missing", KEYS[4]))),
    };
    let df = reader.finish().map_err(|e| err(format!("cannot read rows: {e}")))?;
    let ids = df.column("row_id").map_err(|_| err("column `row_id` is missing".into()))?.as_materialized_series().clone();
    let ids = ids.cast(&DataType::UInt64).map_err(|e| err(format!("column `row_id`: {e}")))?;
    let row_ids: Vec<u64> = ids
        .u64()
        .map_err(|e| err(e.to_string()))?
        .iter()
        .enumerate()
        .map(|(i, v)| v.ok_or_else(|| err(format!("row {i}: `row_id` is null or negative"))))
        .collect::<Result<_, _>>()?;
    let rows = row_ids.len();
    let non_finite = |i: usize| err(format!("row {} (row_id {}) has a non-finite logit", i, row_ids[i]));
    let logits = match top_k {
        None => {
            let inner = list_values(&df, "logits", classes, DataType::Float32, &err)?;
            let logits: Vec<f32> = inner.f32().map_err(|e| err(e.to_string()))?.iter().map(|v| v.unwrap_or(f32::NAN)).collect();
            if let Some(i) = logits.iter().position(|v| !v.is_finite()) {
                return Err(non_finite(i / classes));
            }
            logits
        }
        Some(k) => {
            if k == 0 || k > classes {
                return Err(err(format!("metadata `{}` = {k} is not in 1..={classes}", KEYS[6])));
            }
            let indices = list_values(&df, "topk_indices", k, DataType::UInt32, &err)?;
            let indices: Vec<u32> = indices.u32().map_err(|e| err(e.to_string()))?.iter().map(|v| v.unwrap_or(u32::MAX)).collect();
            let values = list_values(&df, "topk_values", k, DataType::Float32, &err)?;
            let values: Vec<f32> = values.f32().map_err(|e| err(e.to_string()))?.iter().map(|v| v.unwrap_or(f32::NAN)).collect();
            let tails = df
                .column("tail_logsumexp")
                .map_err(|_| err("column `tail_logsumexp` is missing".into()))?
                .as_materialized_series()
                .cast(&DataType::Float32)
                .map_err(|e| err(e.to_string()))?;
            let tails: Vec<f32> = tails.f32().map_err(|e| err(e.to_string()))?.iter().map(|v| v.unwrap_or(f32::NAN)).collect();
            let mut logits = vec![0.0; rows * classes];
            for (r, out) in logits.chunks_mut(classes).enumerate() {
                let (idx, val) = (&indices[r * k..(r + 1) * k], &values[r * k..(r + 1) * k]);
                let mut seen = vec![false; classes];
                for &i in idx {
                    if i as usize >= classes || std::mem::replace(&mut seen[i as usize], true) {
                        return Err(err(format!("row {r} (row_id {}): top-k class index {i} is out of range or repeated", row_ids[r])));
                    }
                }
                if val.iter().any(|v| !v.is_finite()) || (k < classes && !tails[r].is_finite()) {
                    return Err(non_finite(r));
                }
                rebuild_row(idx, val, tails[r], out);
            }
            logits
        }
    };
    Ok(Parsed { kv, row_ids, logits, classes, top_k })
}

/// Parses the bytes of a logit file; `path` only names it in errors.
pub fn decode_logits(path: &Path, bytes: Vec<u8>) -> Result<LogitFile, CacheError> {
    let err = |m: String| CacheError::file(path, m);
    let parsed = parse(path, bytes, None)?;
    let get = |key: &str| parsed.kv.get(key).cloned().ok_or_else(|| err(format!("metadata key `{key}` is missing")));
    let version = get(KEYS[0])?;
    if version != LOGIT_SCHEMA_VERSION {
        return Err(err(format!("logit schema version {version}; this distill reads {LOGIT_SCHEMA_VERSION}")));
    }
    let class_names: Vec<String> = serde_json::from_str(&get(KEYS[5])?).map_err(|e| err(format!("bad class names: {e}")))?;
    if parsed.classes != class_names.len() {
        return Err(err(format!("class count {} does not match {} class names", parsed.classes, class_names.len())));
    }
    let meta = LogitMeta { teacher_fingerprint: get(KEYS[2])?, data_fingerprint: get(KEYS[3])?, class_names, top_k: parsed.top_k };
    Ok(LogitFile { meta, row_ids: parsed.row_ids, logits: parsed.logits })
}

/// Parses logits made elsewhere for data with `classes` classes: `row_id` plus either `logits`
/// (a list of `classes` floats per row, fixed-size or not) or the top-k columns; `distill.*`
/// metadata is optional, but a class count or class names it gives must match.
pub fn decode_external_logits(path: &Path, bytes: Vec<u8>, classes: usize) -> Result<ExternalLogits, CacheError> {
    let parsed = parse(path, bytes, Some(classes))?;
    let class_names = match parsed.kv.get(KEYS[5]) {
        None => None,
        Some(text) => Some(serde_json::from_str::<Vec<String>>(text).map_err(|e| CacheError::file(path, format!("metadata `{}`: {e}", KEYS[5])))?),
    };
    Ok(ExternalLogits { row_ids: parsed.row_ids, logits: parsed.logits, class_names })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(top_k: Option<usize>) -> LogitMeta {
        LogitMeta { teacher_fingerprint: "t".into(), data_fingerprint: "d".into(), class_names: vec!["a".into(), "b".into(), "c".into()], top_k }
    }

    #[test]
    fn round_trip_keeps_ids_values_and_metadata() {
        let dir = std::env::temp_dir().join(format!("distill-logits-{}", std::process::id()));
        let path = dir.join("x.parquet");
        let ids = [4u64, 9];
        let logits = [0.5f32, -1.0, 2.25, 3.0, 0.0, -7.5];
        write_logits(&path, &meta(None), &ids, &logits).unwrap();
        let back = read_logits(&path).unwrap();
        assert_eq!(back, LogitFile { meta: meta(None), row_ids: ids.to_vec(), logits: logits.to_vec() });
        std::fs::write(&path, b"PAR1 not really").unwrap();
        assert!(read_logits(&path).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn top_k_with_every_class_is_exact_and_smaller_k_keeps_the_tail_mass() {
        let path = Path::new("x.parquet");
        let ids = [4u64, 9];
        let logits = [0.5f32, -1.0, 2.25, 3.0, 0.0, -7.5];
        let full = decode_logits(path, encode_logits(path, &meta(Some(3)), &ids, &logits).unwrap()).unwrap();
        assert_eq!(full.logits, logits, "top_k = classes rebuilds every logit exactly");
        assert_eq!(full.meta.top_k, Some(3));

        let one = decode_logits(path, encode_logits(path, &meta(Some(1)), &ids, &logits).unwrap()).unwrap();
        let softmax = |r: &[f32]| {
            let z: f64 = r.iter().map(|&v| (v as f64).exp()).sum();
            r.iter().map(|&v| (v as f64).exp() / z).collect::<Vec<f64>>()
        };
        for (orig, back) in logits.chunks(3).zip(one.logits.chunks(3)) {
            let (p, q) = (softmax(orig), softmax(back));
            let top = (0..3).max_by(|&a, &b| orig[a].total_cmp(&orig[b])).unwrap();
            assert!((p[top] - q[top]).abs() < 1e-6, "the kept class keeps its probability: {p:?} {q:?}");
            let rest: Vec<f64> = (0..3).filter(|&i| i != top).map(|i| q[i]).collect();
            assert!((rest[0] - rest[1]).abs() < 1e-9, "the rest is spread uniformly");
        }
    }

    #[test]
    fn external_files_need_only_row_ids_and_logits() {
        let path = Path::new("ext.parquet");
        let mut df = DataFrame::new_infer_height(vec![
            Series::new("row_id".into(), [1i64, 2]).into(),
            fixed_list("logits", &DataType::Float32, vec![1.0f32, 2.0, 3.0, 4.0], 2, 2),
        ])
        .unwrap();
        let mut bytes = Vec::new();
        ParquetWriter::new(&mut bytes).finish(&mut df).unwrap();
        let ext = decode_external_logits(path, bytes.clone(), 2).unwrap();
        assert_eq!(ext, ExternalLogits { row_ids: vec![1, 2], logits: vec![1.0, 2.0, 3.0, 4.0], class_names: None });
        let e = decode_external_logits(path, bytes, 3).unwrap_err().to_string();
        assert!(e.contains("ext.parquet") && e.contains("2 values per row; expected 3"), "{e}");
    }
}
