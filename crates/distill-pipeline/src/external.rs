//! A teacher given only as its logits (`teacher.logits`): the file read in the logit schema,
//! its rows matched to the training rows by row id, and the test rows' logits when it has them.

use std::collections::HashMap;
use std::path::Path;

use distill_cache::{decode_external_logits, hash_bytes};
use distill_data::{resolve_path, Prepared};

use crate::PipelineError;

const KEY: &str = "teacher.logits.path";

/// External logits aligned to this run's rows.
pub(crate) struct ExternalTeacher {
    /// blake3 of the file: the teacher's fingerprint.
    pub blake3: String,
    /// One row per training row, in training order.
    pub train: Vec<f32>,
    /// One row per test row, when the file has every test row's id.
    pub test: Option<Vec<f32>>,
}

/// Reads and aligns the file; a missing training row, a wrong class count, other class names or
/// a non-finite value is an error naming the key, the file and the row.
pub(crate) fn load(base_dir: &Path, path: &Path, data: &Prepared) -> Result<ExternalTeacher, PipelineError> {
    let path = resolve_path(base_dir, path).map_err(|source| PipelineError::Data { context: KEY.into(), source })?;
    let fail = |m: String| PipelineError::key(KEY, format!("{}: {m}", path.display()));
    let bytes = std::fs::read(&path).map_err(|source| PipelineError::File { key: KEY.into(), path: path.clone(), source })?;
    let blake3 = hash_bytes(&bytes);
    let k = data.classes();
    let file = decode_external_logits(&path, bytes, k).map_err(|e| PipelineError::key(KEY, e.to_string()))?;
    if let Some(names) = &file.class_names {
        if *names != data.class_names {
            return Err(fail(format!("class names {names:?} differ from the data's {:?}", data.class_names)));
        }
    }
    let mut index: HashMap<u64, usize> = HashMap::with_capacity(file.row_ids.len());
    for (i, &id) in file.row_ids.iter().enumerate() {
        if index.insert(id, i).is_some() {
            return Err(fail(format!("row_id {id} appears more than once (row {i})")));
        }
    }
    let gather = |ids: &[u64]| -> Result<Vec<f32>, u64> {
        let mut out = Vec::with_capacity(ids.len() * k);
        for &id in ids {
            let &i = index.get(&id).ok_or(id)?;
            out.extend_from_slice(&file.logits[i * k..(i + 1) * k]);
        }
        Ok(out)
    };
    let train = gather(&data.train.row_ids).map_err(|id| {
        let missing = data.train.row_ids.iter().filter(|i| !index.contains_key(i)).count();
        fail(format!("no logits for training row_id {id} ({missing} of {} training rows missing; rows are matched by `row_id`)", data.train.len()))
    })?;
    let test = gather(&data.test.row_ids).ok().filter(|t| !t.is_empty());
    tracing::info!(path = %path.display(), rows = file.row_ids.len(), test_rows = test.is_some(), "teacher: external logits, no model");
    Ok(ExternalTeacher { blake3, train, test })
}
