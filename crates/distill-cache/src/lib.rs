//! The content-addressed cache of distill: stable hashes of what a stage depends on, atomic file
//! writes, and the teacher-logit Parquet files that let a second run skip the teacher.
//!
//! Layout of a cache directory:
//!
//! ```text
//! teachers/<key>.safetensors   trained teacher weights, key = hash(teacher config, data, seed)
//! logits/<key>.parquet         teacher logits, key = hash(teacher weights or external file, data rows, top-k)
//! students/<key>.safetensors   a trained student (one per seed), key = hash(student config, logits, data, seed)
//! features/<key>.features.parquet  a teacher's hidden-layer features for feature hints, key = hash(teacher weights, data rows, layer)
//! baselines/<key>.safetensors  a trained baseline (one per seed), key = hash(student model and budget, data, seed)
//! data/<key>.snapshot          the prepared data (splits, checks), key = hash(the source files' bytes, data spec, seed)
//! evaluations/<key>.yaml       every model's test metrics and latency, key = hash(the models, data, evaluation settings)
//! <artifact>.entry.json        its record: kind, key, blake3 checksum, size, creator
//! leases/<pid>-<ms>-<n>.json   a run in progress and the keys it holds (gc keeps them)
//! _<artifact>.lock             the task computing it: owner and heartbeat (others wait)
//! logits/<key>/part-I-of-N.parquet  one shard of sharded logits (records and _manifest.json beside)
//! ```
//!
//! Writes are atomic (temporary file + rename) and write-once per key for entries that are
//! intact and load, so runs sharing a cache directory never see a half-written artifact; the
//! record is written last and checked on every read, so an interrupted or corrupted artifact is
//! recomputed, never used, and replaced by the next store. `gc` removes only what neither a
//! finished run (its `lock.json`) nor a run in progress (its [`Lease`]) can use, nor what a task
//! holding an [`ArtifactLock`] may be writing. Tasks on many machines may share one directory
//! (see the README for what the file system must do).
//!
//! Not here: what a stage computes (distill-pipeline) or how (distill-nn, distill-data).

mod atomic;
mod entries;
mod features;
mod fingerprint;
mod formats;
mod gc;
mod lease;
mod lock;
mod logit_writer;
mod logits;
mod streamed;

pub use atomic::write_atomic;
pub use entries::{ArtifactKind, Entry, EntryProblem, EntryRecord};
pub use features::{decode_features, encode_features, FeatureFile, FeatureMeta, FEATURES_EXT, FEATURE_SCHEMA_VERSION};
pub use fingerprint::{Fingerprint, FingerprintBuilder};
pub use gc::GcOutcome;
pub use lease::{Lease, LeaseRecord};
pub use lock::{host_name, lock_path, stale_after, ArtifactLock, LockOwner};
pub use logit_writer::{LogitWriter, WrittenFile};
pub use logits::{
    decode_external_logits, decode_logits, encode_logits, read_logits, top_k_row, write_logits, ExternalLogits, LogitFile, LogitMeta, LOGIT_SCHEMA_VERSION,
};

use std::path::{Path, PathBuf};

/// Errors from the cache, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
}

impl CacheError {
    pub fn file(path: &Path, message: impl ToString) -> Self {
        CacheError::File { path: path.to_path_buf(), message: message.to_string() }
    }
}

/// Builds a hex blake3 key from labelled parts; the labels keep `("ab", "c")` and `("a", "bc")` apart.
#[derive(Default)]
pub struct KeyBuilder(blake3::Hasher);

impl KeyBuilder {
    pub fn new(domain: &str) -> Self {
        let mut k = Self(blake3::Hasher::new());
        k.part("domain", domain.as_bytes());
        k
    }

    pub fn part(&mut self, label: &str, bytes: &[u8]) -> &mut Self {
        for chunk in [label.as_bytes(), bytes] {
            self.0.update(&(chunk.len() as u64).to_le_bytes());
            self.0.update(chunk);
        }
        self
    }

    pub fn finish(&self) -> String {
        self.0.finalize().to_hex().to_string()
    }
}

/// Hex blake3 of some bytes.
pub fn hash_bytes(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// A cache directory and the kinds of artifact it holds (each in its own directory).
#[derive(Debug, Clone)]
pub struct Cache {
    pub root: PathBuf,
    kinds: Vec<ArtifactKind>,
}

impl Cache {
    pub fn new(root: impl Into<PathBuf>, kinds: &[ArtifactKind]) -> Self {
        Self { root: root.into(), kinds: kinds.to_vec() }
    }

    /// Where the artifact of `kind` (one of the cache's kinds) with `key` lives.
    pub fn artifact(&self, kind: &str, key: &str) -> PathBuf {
        let (dir, ext) = self.kinds.iter().find(|k| k.kind == kind).map(|k| (k.dir, k.ext)).unwrap_or((kind, ""));
        self.root.join(dir).join(format!("{key}{ext}"))
    }

    pub fn teacher_weights(&self, key: &str) -> PathBuf {
        self.artifact("teacher", key)
    }

    pub fn logits(&self, key: &str) -> PathBuf {
        self.artifact("logits", key)
    }
}

/// The artifact kinds distill's stage registry declares, for this crate's own tests.
#[cfg(test)]
pub(crate) fn test_kinds() -> Vec<ArtifactKind> {
    [
        ("teacher", "teachers", ".safetensors"),
        ("logits", "logits", ".parquet"),
        ("student", "students", ".safetensors"),
        ("baseline", "baselines", ".safetensors"),
    ]
    .into_iter()
    .map(|(kind, dir, ext)| ArtifactKind { kind, dir, ext })
    .collect()
}
