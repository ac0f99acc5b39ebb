//! Garbage collection: remove only what no run, finished or in progress, can still use.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::entries::record_path;
use crate::lease::{alive, live_leases, LeaseLock};
use crate::lock::{abandoned, held};
use crate::{ArtifactKind, Cache, CacheError};

/// Files written this close to the cut-off count as newer: file times can be coarse.
const CLOCK_SLACK: Duration = Duration::from_secs(2);

/// What a `gc` removed (or, on a dry run, would remove) and what it kept for runs in progress.
#[derive(Debug, Default)]
pub struct GcOutcome {
    pub removed: Vec<PathBuf>,
    /// Unused by finished runs, but held by a live run or newer than the oldest live run.
    pub kept_for_live_runs: Vec<PathBuf>,
    /// Runs in progress (live leases).
    pub live_runs: usize,
    /// Lease files of processes that have ended (removed unless a dry run).
    pub stale_leases: Vec<PathBuf>,
    /// Artifact locks whose owner, a process of this host, has ended (removed unless a dry run).
    pub stale_locks: Vec<PathBuf>,
    /// How many keys the finished runs use.
    pub keys_in_use: usize,
}

impl Cache {
    /// Removes entries whose key neither `keep` (the keys finished runs record) nor a live lease
    /// holds, and leftover temporary files of ended writers; with `dry_run`, removes nothing and
    /// reports the same lists. Entries newer than the oldest live lease are kept too: a run in
    /// progress may have written them.
    ///
    /// `keep` is called after the leases are read: a run that ends in between has written its
    /// `lock.json` before dropping its lease, so its keys are found in one or the other.
    pub fn gc(&self, keep: impl FnOnce() -> HashSet<String>, dry_run: bool) -> Result<GcOutcome, CacheError> {
        let _lock = LeaseLock::exclusive(&self.root)?;
        let live = live_leases(&self.root);
        let keep = keep();
        // Files written since the oldest live run began may be that run's: kept.
        let cutoff = live.oldest.map(|o| o.checked_sub(CLOCK_SLACK).unwrap_or(SystemTime::UNIX_EPOCH));
        let mut out = GcOutcome { live_runs: live.count, keys_in_use: keep.len(), ..Default::default() };
        for entry in self.entries() {
            if keep.contains(&entry.key) {
                continue;
            }
            let files: Vec<PathBuf> = [record_path(&entry.path), entry.path.clone()].into_iter().filter(|p| p.exists()).collect();
            if live.keys.contains(&entry.key) || held(&entry.path) || files.iter().any(|p| newer(p, cutoff)) {
                out.kept_for_live_runs.push(entry.path);
                continue;
            }
            for path in files {
                remove(&path, dry_run)?;
                out.removed.push(path);
            }
        }
        self.gc_parts(&keep, &live.keys, cutoff, dry_run, &mut out)?;
        // Files of part folders removed above are not listed twice.
        let temporaries: Vec<PathBuf> = self.temporaries().into_iter().filter(|p| !out.removed.contains(p)).collect();
        for path in temporaries {
            // A writer on another host has a pid this host cannot check, but holds the lock.
            if writer_alive(&path) || written_under_lock(&path) {
                out.kept_for_live_runs.push(path);
            } else {
                remove(&path, dry_run)?;
                out.removed.push(path);
            }
        }
        for path in live.stale {
            remove(&path, dry_run)?;
            out.stale_leases.push(path);
        }
        let stale_locks: Vec<PathBuf> = self.in_artifact_dirs(".lock").into_iter().filter(|p| abandoned(p) && !out.removed.contains(p)).collect();
        for path in stale_locks {
            remove(&path, dry_run)?;
            out.stale_locks.push(path);
        }
        Ok(out)
    }

    /// The part folders of sharded logits whose key no run uses and that no task is writing.
    fn gc_parts(
        &self,
        keep: &HashSet<String>,
        held_keys: &HashSet<String>,
        cutoff: Option<SystemTime>,
        dry_run: bool,
        out: &mut GcOutcome,
    ) -> Result<(), CacheError> {
        for dir in self.part_dirs() {
            let key = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            if keep.contains(&key) {
                continue;
            }
            let files: Vec<PathBuf> = std::fs::read_dir(&dir).map(|l| l.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
            let writing = files.iter().any(|f| newer(f, cutoff) || (f.to_string_lossy().ends_with(".lock") && !abandoned(f)));
            if held_keys.contains(&key) || writing {
                out.kept_for_live_runs.push(dir);
                continue;
            }
            for path in files {
                remove(&path, dry_run)?;
                out.removed.push(path);
            }
            if !dry_run {
                let _ = std::fs::remove_dir(&dir);
            }
        }
        Ok(())
    }

    /// Folders of sharded logits (`logits/<key>/`), named by their key.
    fn part_dirs(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for ArtifactKind { dir, .. } in &self.kinds {
            let Ok(list) = std::fs::read_dir(self.root.join(dir)) else { continue };
            out.extend(list.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()));
        }
        out.sort();
        out
    }

    /// Temporary files (`.<name>.<pid>.tmp`) in the artifact folders.
    fn temporaries(&self) -> Vec<PathBuf> {
        self.in_artifact_dirs(".tmp")
    }

    /// Files whose names end with `suffix` in the artifact folders and one level below (the
    /// parts of sharded logits).
    fn in_artifact_dirs(&self, suffix: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut dirs: Vec<PathBuf> = self.kinds.iter().map(|ArtifactKind { dir, .. }| self.root.join(dir)).collect();
        while let Some(dir) = dirs.pop() {
            let Ok(list) = std::fs::read_dir(&dir) else { continue };
            for path in list.filter_map(|e| e.ok().map(|e| e.path())) {
                if path.is_dir() && dir.parent().is_some_and(|p| p == self.root) {
                    dirs.push(path);
                } else if path.to_string_lossy().ends_with(suffix) {
                    out.push(path);
                }
            }
        }
        out.sort();
        out
    }
}

fn newer(path: &Path, cutoff: Option<SystemTime>) -> bool {
    cutoff.is_some_and(|c| std::fs::metadata(path).and_then(|m| m.modified()).is_ok_and(|t| t >= c))
}

/// Whether the process whose pid `write_atomic` put in a temporary file's name still runs
/// (where that cannot be told, see [`alive`], it is taken as running).
fn writer_alive(tmp: &Path) -> bool {
    let name = tmp.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let pid = name.strip_suffix(".tmp").and_then(|s| s.rsplit('.').next()).and_then(|p| p.parse::<u32>().ok());
    pid.is_some_and(|pid| alive(pid, None))
}

/// Whether the artifact a temporary file (`.<name>.<pid>.tmp`, or its record's
/// `.<name>.entry.json.<pid>.tmp`, `._<name>.entry.json.<pid>.tmp` for a logit part) becomes has
/// a held lock.
fn written_under_lock(tmp: &Path) -> bool {
    let name = tmp.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let artifact = name
        .strip_prefix('.')
        .and_then(|n| n.strip_suffix(".tmp"))
        .and_then(|n| n.rsplit_once('.'))
        .map(|(n, _pid)| n.trim_end_matches(".entry.json").trim_start_matches('_'));
    artifact.is_some_and(|a| held(&tmp.with_file_name(a)))
}

fn remove(path: &Path, dry_run: bool) -> Result<(), CacheError> {
    if dry_run {
        return Ok(());
    }
    match std::fs::remove_file(path) {
        // Another gc got there first.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r.map_err(|e| CacheError::file(path, format!("cannot remove: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::tests::tempdir;

    /// Backdates a file so it is older than any lease this test takes.
    fn age(path: &Path) {
        let old = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options().write(true).open(path).unwrap().set_modified(old).unwrap();
    }

    fn stored(cache: &Cache, key: &str) -> PathBuf {
        let path = cache.artifact("teacher", key);
        cache.store("teacher", key, &path, &crate::formats::tests::safetensors_bytes(), "p").unwrap();
        age(&path);
        age(&record_path(&path));
        path
    }

    #[test]
    fn gc_keeps_what_finished_and_live_runs_use_and_lists_the_rest_on_a_dry_run() {
        let dir = tempdir("gc");
        let cache = Cache::new(&dir, &crate::test_kinds());
        let (used, held, unused) = (stored(&cache, "used"), stored(&cache, "held"), stored(&cache, "unused"));
        let keep = || HashSet::from(["used".to_string()]);
        let mut lease = cache.lease().unwrap();
        lease.hold("held").unwrap();
        let fresh = cache.artifact("teacher", "fresh");
        cache.store("teacher", "fresh", &fresh, &crate::formats::tests::safetensors_bytes(), "p").unwrap();

        let dry = cache.gc(keep, true).unwrap();
        assert_eq!(dry.removed, vec![record_path(&unused), unused.clone()]);
        assert_eq!(dry.kept_for_live_runs, vec![fresh.clone(), held.clone()], "held by the lease, and newer than it");
        assert_eq!((dry.live_runs, dry.keys_in_use), (1, 1));
        assert!(unused.exists(), "a dry run removes nothing");

        cache.gc(keep, false).unwrap();
        assert!(used.exists() && held.exists() && fresh.exists() && !unused.exists());
        drop(lease);
        age(&fresh);
        age(&record_path(&fresh));
        let after = cache.gc(keep, false).unwrap();
        assert_eq!(after.live_runs, 0);
        assert!(used.exists() && !held.exists() && !fresh.exists(), "once the run has ended");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn temporaries_of_live_writers_are_kept_and_of_ended_ones_removed() {
        let dir = tempdir("gc-tmp");
        let cache = Cache::new(&dir, &crate::test_kinds());
        let folder = dir.join("teachers");
        std::fs::create_dir_all(&folder).unwrap();
        let mine = folder.join(format!(".k.safetensors.{}.tmp", std::process::id()));
        let ended = folder.join(".k.safetensors.4294967294.tmp");
        for p in [&mine, &ended] {
            std::fs::write(p, b"partial").unwrap();
            age(p);
        }
        let out = cache.gc(HashSet::new, false).unwrap();
        assert_eq!(out.removed, vec![ended.clone()]);
        assert!(mine.exists() && !ended.exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_temporary_under_a_held_lock_is_kept_whoever_wrote_it() {
        let dir = tempdir("gc-locked");
        let cache = Cache::new(&dir, &crate::test_kinds());
        let artifact = cache.artifact("teacher", "k");
        let lock = crate::ArtifactLock::acquire(&artifact).unwrap();
        // A pid this host does not have: a writer on another host.
        let remote = artifact.with_file_name(".k.safetensors.4294967294.tmp");
        std::fs::write(&remote, b"partial").unwrap();
        age(&remote);
        let out = cache.gc(HashSet::new, false).unwrap();
        assert!(remote.exists() && out.kept_for_live_runs == vec![remote.clone()], "{out:?}");
        drop(lock);
        let out = cache.gc(HashSet::new, false).unwrap();
        assert_eq!(out.removed, vec![remote]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_parts_folder_is_removed_when_unused_and_kept_while_a_part_is_locked() {
        let dir = tempdir("gc-parts");
        let cache = Cache::new(&dir, &crate::test_kinds());
        let parts = dir.join("logits").join("k");
        std::fs::create_dir_all(&parts).unwrap();
        let part = parts.join("part-0-of-2.parquet");
        std::fs::write(&part, b"part").unwrap();
        age(&part);
        let lock = crate::ArtifactLock::acquire(&parts.join("part-1-of-2.parquet")).unwrap();
        let out = cache.gc(HashSet::new, false).unwrap();
        assert!(part.exists() && out.kept_for_live_runs == vec![parts.clone()], "a task is writing part 1: {out:?}");
        drop(lock);
        assert!(cache.gc(|| HashSet::from(["k".to_string()]), false).unwrap().removed.is_empty(), "a run uses the key");
        let out = cache.gc(HashSet::new, false).unwrap();
        assert_eq!(out.removed, vec![part.clone()]);
        assert!(!parts.exists());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
