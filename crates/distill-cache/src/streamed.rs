//! Entries too large to hold twice in memory (the data snapshot: the prepared feature matrices):
//! written through a writer and read through a reader, hashed on the way, with the same record
//! and the same atomic rename as [`Cache::store`], so `verify` and `gc` treat them like any other.

use std::fs;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use crate::entries::{read_record_at, record_path, EntryProblem};
use crate::{Cache, CacheError};

/// Hashes and counts what passes through it.
struct Hashing<T> {
    inner: T,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl<T> Hashing<T> {
    fn new(inner: T) -> Self {
        Self { inner, hasher: blake3::Hasher::new(), bytes: 0 }
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

impl Cache {
    /// Writes the artifact of `kind`/`key` at `artifact` through `write` (to a temporary file,
    /// hashed as it goes), renames it into place and writes its record. A failed `write` leaves
    /// nothing behind. The temporary file is named by the process, so writers of one key hold
    /// its [`crate::ArtifactLock`] (as the stages do).
    pub fn store_streamed(
        &self,
        kind: &str,
        key: &str,
        artifact: &Path,
        pipeline: &str,
        write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<(), CacheError> {
        let dir = artifact.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(|e| CacheError::file(dir, format!("cannot create directory: {e}")))?;
        let name = artifact.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let result = (|| {
            let mut out = Hashing::new(BufWriter::new(fs::File::create(&tmp)?));
            write(&mut out)?;
            out.flush()?;
            let (hasher, bytes) = (out.hasher.clone(), out.bytes);
            let file = out.inner.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            fs::rename(&tmp, artifact)?;
            Ok((hasher.finalize().to_hex().to_string(), bytes))
        })();
        let (blake3, bytes) = result.map_err(|e: std::io::Error| {
            let _ = fs::remove_file(&tmp);
            CacheError::file(artifact, format!("cannot write: {e}"))
        })?;
        self.write_record(kind, key, artifact, &record_path(artifact), blake3, bytes, pipeline)
    }

    /// Reads the artifact at `artifact` through `read` and checks every byte of it against its
    /// record; `Ok(None)` when there is none. What `read` made is returned only when the bytes
    /// match the record.
    pub fn load_streamed<T>(&self, artifact: &Path, read: impl FnOnce(&mut dyn Read) -> std::io::Result<T>) -> Result<Option<T>, EntryProblem> {
        let file = match fs::File::open(artifact) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(EntryProblem::BadRecord(format!("cannot read the artifact: {e}"))),
        };
        let record = read_record_at(&record_path(artifact))?;
        let mut input = Hashing::new(BufReader::with_capacity(1 << 20, file));
        let made = read(&mut input);
        // The rest too, so a file longer than its reader needs is caught.
        std::io::copy(&mut input, &mut std::io::sink()).map_err(|e| EntryProblem::BadRecord(format!("cannot read the artifact: {e}")))?;
        let found = input.hasher.finalize().to_hex().to_string();
        if found != record.blake3 || input.bytes != record.bytes {
            return Err(EntryProblem::Corrupt { expected: record.blake3, found });
        }
        made.map(Some).map_err(|e| EntryProblem::Unloadable(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::tests::tempdir;

    #[test]
    fn streamed_entries_round_trip_and_corruption_is_caught() {
        let root = tempdir("streamed");
        let cache = Cache::new(&root, &crate::test_kinds());
        let path = cache.artifact("teacher", "big");
        cache.store_streamed("teacher", "big", &path, "p", |w: &mut dyn Write| w.write_all(b"hello world")).unwrap();
        let read = |r: &mut dyn Read| {
            let mut first = [0u8; 5];
            r.read_exact(&mut first)?;
            Ok(first.to_vec())
        };
        assert_eq!(cache.load_streamed(&path, read).unwrap(), Some(b"hello".to_vec()));
        assert_eq!(cache.load_verified(&path).unwrap().unwrap(), b"hello world", "the same record as `store`");
        fs::write(&path, b"hello World").unwrap();
        assert!(matches!(cache.load_streamed(&path, read), Err(EntryProblem::Corrupt { .. })), "a byte past what the reader read");
        assert_eq!(cache.load_streamed(&cache.artifact("teacher", "none"), read), Ok(None));
        let failed = cache.store_streamed("teacher", "bad", &cache.artifact("teacher", "bad"), "p", |_| Err(std::io::Error::other("no")));
        assert!(failed.is_err());
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 2, "the first entry and its record only: {path:?}");
        fs::remove_dir_all(root).unwrap();
    }
}
