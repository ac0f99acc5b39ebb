//! Cache entries: every artifact has a record beside it (`<artifact>.entry.json`) holding its
//! checksum. The record is written after the artifact, so an artifact without a record is an
//! interrupted write; an artifact whose bytes do not match the record is corrupt; one whose bytes
//! match but do not parse as their format is unloadable. None is ever used: the caller recomputes
//! and `store` overwrites it (atomically, artifact first, record last).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic_then;
use crate::formats::check_loads;
use crate::logit_writer::WrittenFile;
use crate::{hash_bytes, write_atomic, Cache, CacheError};

/// What the record beside an artifact says about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryRecord {
    /// `teacher` or `logits`.
    pub kind: String,
    pub key: String,
    /// blake3 of the artifact's bytes.
    pub blake3: String,
    pub bytes: u64,
    /// Seconds since the Unix epoch.
    pub created: u64,
    /// The pipeline whose run created it.
    pub pipeline: String,
    pub distill_version: String,
}

/// Why a cached artifact cannot be used.
#[derive(Debug, Clone, PartialEq)]
pub enum EntryProblem {
    /// The artifact exists but its record does not: a write was interrupted.
    Unrecorded,
    /// The record cannot be read.
    BadRecord(String),
    /// The bytes do not match the recorded checksum or size.
    Corrupt { expected: String, found: String },
    /// The bytes match the record but do not load as the artifact's format (written by another
    /// tool, or a bug).
    Unloadable(String),
}

impl std::fmt::Display for EntryProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EntryProblem::Unrecorded => write!(f, "no entry record (an interrupted write)"),
            EntryProblem::BadRecord(e) => write!(f, "unreadable entry record: {e}"),
            EntryProblem::Corrupt { expected, found } => write!(f, "checksum mismatch: recorded {}, file has {}", short(expected), short(found)),
            EntryProblem::Unloadable(why) => write!(f, "the checksum matches but the file does not load: {why}"),
        }
    }
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// One artifact found in the cache directory.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: PathBuf,
    pub kind: String,
    pub key: String,
    pub bytes: u64,
    pub record: Result<EntryRecord, EntryProblem>,
}

pub(crate) fn record_path(artifact: &Path) -> PathBuf {
    let mut name = artifact.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".entry.json");
    artifact.with_file_name(name)
}

fn read_record(artifact: &Path) -> Result<EntryRecord, EntryProblem> {
    read_record_at(&record_path(artifact))
}

pub(crate) fn read_record_at(record: &Path) -> Result<EntryRecord, EntryProblem> {
    let text = match std::fs::read_to_string(record) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(EntryProblem::Unrecorded),
        Err(e) => return Err(EntryProblem::BadRecord(e.to_string())),
    };
    serde_json::from_str(&text).map_err(|e| EntryProblem::BadRecord(e.to_string()))
}

fn check(bytes: &[u8], record: &EntryRecord) -> Result<(), EntryProblem> {
    let found = hash_bytes(bytes);
    if found != record.blake3 || bytes.len() as u64 != record.bytes {
        return Err(EntryProblem::Corrupt { expected: record.blake3.clone(), found });
    }
    Ok(())
}

/// One kind of artifact: its name (the stage that makes it), its directory and file extension.
/// The list comes from the stage registry of distill-pipeline; the cache only stores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArtifactKind {
    pub kind: &'static str,
    pub dir: &'static str,
    pub ext: &'static str,
}

/// Test hook: `DISTILL_TEST_PAUSE_BEFORE_RENAME=kind:ms` sleeps `ms` milliseconds after an
/// artifact of `kind` is written to its temporary file and before the rename, so a test can kill
/// the process at the worst moment. Only in builds with the `test-hooks` feature (the workspace's
/// tests), never in a user's binary.
fn pause_hook(kind: &str) {
    if !cfg!(feature = "test-hooks") {
        return;
    }
    let Ok(v) = std::env::var("DISTILL_TEST_PAUSE_BEFORE_RENAME") else { return };
    if let Some(ms) = v.strip_prefix(kind).and_then(|r| r.strip_prefix(':')).and_then(|ms| ms.parse::<u64>().ok()) {
        eprintln!("DISTILL_TEST_PAUSE_BEFORE_RENAME: pausing {ms} ms before renaming the {kind} artifact");
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

impl Cache {
    /// Writes an artifact and then its record, both atomically. Write-once for good entries: when
    /// an intact entry that loads is already there (another run sharing the cache stored it), it
    /// is kept as it is; one that is corrupt or does not load is replaced.
    pub fn store(&self, kind: &str, key: &str, artifact: &Path, bytes: &[u8], pipeline: &str) -> Result<(), CacheError> {
        self.store_at(kind, key, artifact, &record_path(artifact), bytes, pipeline)
    }

    /// [`Cache::store`] with the record at `record` instead of beside the artifact (the parts of
    /// sharded logits keep theirs under names other readers skip).
    pub fn store_at(&self, kind: &str, key: &str, artifact: &Path, record: &Path, bytes: &[u8], pipeline: &str) -> Result<(), CacheError> {
        match self.load_verified_at(artifact, record) {
            Ok(Some(existing)) => match check_loads(artifact, &existing) {
                Ok(()) => {
                    tracing::debug!(path = %artifact.display(), "already in the cache; kept");
                    return Ok(());
                }
                Err(why) => tracing::warn!(path = %artifact.display(), problem = %why, "replacing a cached artifact that does not load"),
            },
            Ok(None) => {}
            Err(problem) => tracing::debug!(path = %artifact.display(), %problem, "replacing an unusable cached artifact"),
        }
        self.write_entry(kind, key, artifact, record, bytes, pipeline)
    }

    /// Writes an artifact and its record even when an intact entry is there: for a caller whose
    /// own load of the existing artifact failed (e.g. weights that do not fit the model), so a
    /// bad artifact is never kept because its bytes happen to match their record.
    pub fn replace(&self, kind: &str, key: &str, artifact: &Path, bytes: &[u8], pipeline: &str) -> Result<(), CacheError> {
        self.write_entry(kind, key, artifact, &record_path(artifact), bytes, pipeline)
    }

    /// [`Cache::store_at`] for an artifact already written to its temporary file (by a
    /// [`LogitWriter`](crate::LogitWriter)): renamed into place, then its record; the temporary
    /// file is removed when an intact entry is kept.
    pub fn store_file_at(&self, kind: &str, key: &str, artifact: &Path, record: &Path, file: WrittenFile, pipeline: &str) -> Result<(), CacheError> {
        if let Ok(Some(existing)) = self.load_verified_at(artifact, record) {
            if check_loads(artifact, &existing).is_ok() {
                let _ = std::fs::remove_file(&file.tmp);
                return Ok(());
            }
        }
        pause_hook(kind);
        std::fs::rename(&file.tmp, artifact).map_err(|e| {
            let _ = std::fs::remove_file(&file.tmp);
            CacheError::file(artifact, format!("cannot write: {e}"))
        })?;
        self.write_record(kind, key, artifact, record, file.blake3, file.bytes, pipeline)
    }

    fn write_entry(&self, kind: &str, key: &str, artifact: &Path, record_at: &Path, bytes: &[u8], pipeline: &str) -> Result<(), CacheError> {
        write_atomic_then(artifact, bytes, || pause_hook(kind))?;
        self.write_record(kind, key, artifact, record_at, hash_bytes(bytes), bytes.len() as u64, pipeline)
    }

    /// The record of an artifact just written (its blake3 and size), written last.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn write_record(
        &self,
        kind: &str,
        key: &str,
        artifact: &Path,
        record_at: &Path,
        blake3: String,
        bytes: u64,
        pipeline: &str,
    ) -> Result<(), CacheError> {
        let record = EntryRecord {
            kind: kind.to_string(),
            key: key.to_string(),
            blake3,
            bytes,
            created: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            pipeline: pipeline.to_string(),
            distill_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let text = serde_json::to_string_pretty(&record).map_err(|e| CacheError::file(artifact, e))?;
        write_atomic(record_at, text.as_bytes())
    }

    /// The artifact's bytes if it exists and matches its record; `Ok(None)` if it does not exist.
    pub fn load_verified(&self, artifact: &Path) -> Result<Option<Vec<u8>>, EntryProblem> {
        self.load_verified_at(artifact, &record_path(artifact))
    }

    /// [`Cache::load_verified`] against the record at `record`.
    pub fn load_verified_at(&self, artifact: &Path, record: &Path) -> Result<Option<Vec<u8>>, EntryProblem> {
        let bytes = match std::fs::read(artifact) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(EntryProblem::BadRecord(format!("cannot read the artifact: {e}"))),
        };
        check(&bytes, &read_record_at(record)?)?;
        Ok(Some(bytes))
    }

    /// Every artifact in the cache, with its record (or why it has none).
    pub fn entries(&self) -> Vec<Entry> {
        let mut out = Vec::new();
        for &ArtifactKind { kind, dir, ext } in &self.kinds {
            let Ok(list) = std::fs::read_dir(self.root.join(dir)) else { continue };
            let mut paths: Vec<PathBuf> = list.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.to_string_lossy().ends_with(ext)).collect();
            paths.sort();
            for path in paths {
                let key = path.file_name().map(|n| n.to_string_lossy().trim_end_matches(ext).to_string()).unwrap_or_default();
                let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                out.push(Entry { record: read_record(&path), path, kind: kind.to_string(), key, bytes });
            }
        }
        out
    }

    /// Re-hashes every artifact and checks that it loads (a logit file's Parquet footer, schema
    /// and metadata; a safetensors header and its tensors' extents); returns each entry with its
    /// problem, if any.
    pub fn verify(&self) -> Vec<(Entry, Option<EntryProblem>)> {
        self.entries()
            .into_iter()
            .map(|entry| {
                let problem = match (&entry.record, std::fs::read(&entry.path)) {
                    (Err(p), _) => Some(p.clone()),
                    (Ok(_), Err(e)) => Some(EntryProblem::BadRecord(format!("cannot read the artifact: {e}"))),
                    (Ok(record), Ok(bytes)) => check(&bytes, record).and_then(|()| check_loads(&entry.path, &bytes).map_err(EntryProblem::Unloadable)).err(),
                };
                (entry, problem)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::tests::safetensors_bytes;
    use crate::lease::tests::tempdir;

    #[test]
    fn store_verify_and_detect_corruption() {
        let root = tempdir("entries");
        let cache = Cache::new(&root, &crate::test_kinds());
        let a = cache.teacher_weights("aaa");
        let b = cache.artifact("student", "bbb");
        let weights = safetensors_bytes();
        cache.store("teacher", "aaa", &a, &weights, "p").unwrap();
        cache.store("student", "bbb", &b, &weights, "p").unwrap();
        assert_eq!(cache.load_verified(&a).unwrap().unwrap(), weights);
        assert_eq!(cache.load_verified(&cache.logits("none")).unwrap(), None);
        assert_eq!(cache.entries().len(), 2);
        assert!(cache.verify().iter().all(|(_, p)| p.is_none()));

        // Truncation and bit flips are caught; so is an artifact without a record.
        std::fs::write(&b, &weights[1..]).unwrap();
        assert!(matches!(cache.load_verified(&b), Err(EntryProblem::Corrupt { .. })));
        std::fs::remove_file(record_path(&a)).unwrap();
        assert_eq!(cache.load_verified(&a), Err(EntryProblem::Unrecorded));
        assert_eq!(cache.verify().iter().filter(|(_, p)| p.is_some()).count(), 2);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn an_entry_whose_record_matches_but_that_does_not_load_is_reported_and_replaced() {
        let root = tempdir("unloadable");
        let cache = Cache::new(&root, &crate::test_kinds());
        let a = cache.teacher_weights("aaa");
        // Bad bytes with a matching record, as another tool (or a bug) could leave them.
        cache.replace("teacher", "aaa", &a, b"not weights", "p").unwrap();
        assert_eq!(cache.load_verified(&a).unwrap().unwrap(), b"not weights", "the checksum alone cannot tell");
        let verified = cache.verify();
        assert!(matches!(&verified[0].1, Some(EntryProblem::Unloadable(why)) if why.contains("safetensors")), "{verified:?}");

        let good = safetensors_bytes();
        cache.store("teacher", "aaa", &a, &good, "p").unwrap();
        assert_eq!(cache.load_verified(&a).unwrap().unwrap(), good, "store replaced it");
        assert!(cache.verify()[0].1.is_none());

        // A good entry is kept by store (write-once) and overwritten only by replace.
        let mut other = good.clone();
        other[good.len() - 1] = 1;
        cache.store("teacher", "aaa", &a, &other, "p").unwrap();
        assert_eq!(cache.load_verified(&a).unwrap().unwrap(), good);
        cache.replace("teacher", "aaa", &a, &other, "p").unwrap();
        assert_eq!(cache.load_verified(&a).unwrap().unwrap(), other);
        std::fs::remove_dir_all(root).unwrap();
    }
}
