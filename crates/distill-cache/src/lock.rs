//! Artifact locks: when many tasks (Slurm array tasks, Kubernetes pods, local processes) share a
//! cache directory, the task that is about to compute an artifact first creates
//! `_<artifact>.lock` exclusively (`O_CREAT | O_EXCL`); every other task that needs the artifact
//! waits, then finds it in the cache. So two tasks never compute the same artifact.
//!
//! The lock file holds its owner (host, pid, process start time) and a heartbeat the owner
//! rewrites through its open file every few seconds. A waiter takes a lock over when it is
//! stale: its owner is a process of this host that has ended, or its heartbeat has not changed
//! for the stale period by the waiter's own clock (so hosts need not agree on the time). A
//! takeover goes through a second exclusive file (`_<artifact>.lock.takeover`), so two waiters
//! never both remove a lock. An owner whose lock was taken over (it was thought dead) writes its
//! heartbeat into the old, unlinked file and never removes the new owner's lock.
//!
//! The lock only saves work: what is stored stays correct without it (writes are atomic and
//! write-once, and training is deterministic), so a task whose lock was taken over still stores
//! the same bytes.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::lease::{alive, process_start};
use crate::{Cache, CacheError};

/// Seconds without a heartbeat after which a lock is stale (`DISTILL_LOCK_STALE_SECS`).
const DEFAULT_STALE_SECS: f64 = 30.0;

/// Who holds a lock, as its file says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockOwner {
    pub host: String,
    pub pid: u32,
    /// The process's start time (Linux clock ticks after boot), so a reused pid is not the owner.
    pub proc_start: Option<u64>,
    /// Milliseconds since the Unix epoch when the lock was taken.
    pub started_ms: u64,
    /// Incremented at every heartbeat.
    pub beat: u64,
}

/// A held artifact lock; released (the file removed, if still this task's) when dropped.
#[derive(Debug)]
pub struct ArtifactLock {
    path: PathBuf,
    file: File,
    stop: Option<mpsc::Sender<()>>,
    heart: Option<JoinHandle<()>>,
    /// How long this task waited for another task's lock before taking it.
    pub waited: Duration,
}

/// How long a lock may go without a heartbeat before it is taken over.
pub fn stale_after() -> Duration {
    let secs = std::env::var("DISTILL_LOCK_STALE_SECS").ok().and_then(|v| v.parse::<f64>().ok()).filter(|s| *s > 0.0).unwrap_or(DEFAULT_STALE_SECS);
    Duration::from_secs_f64(secs)
}

/// This machine's host name (`gethostname`), or `unknown`.
pub fn host_name() -> String {
    #[cfg(unix)]
    {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
        if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            return String::from_utf8_lossy(&buf[..end]).into_owned();
        }
    }
    std::env::var("HOSTNAME").unwrap_or_else(|_| "unknown".into())
}

/// The lock file of an artifact: `_<name>.lock` beside it (the leading `_` keeps it out of what
/// pyarrow.dataset reads in a folder of logit parts).
pub fn lock_path(artifact: &Path) -> PathBuf {
    let name = artifact.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    artifact.with_file_name(format!("_{name}.lock"))
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn read_text(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// Whether a lock's owner is a process of this host that has ended (then the lock is stale at
/// once, without waiting for the heartbeat to age).
fn owner_ended(text: &str) -> bool {
    let Ok(owner) = serde_json::from_str::<LockOwner>(text) else { return false };
    owner.host == host_name() && !alive(owner.pid, owner.proc_start)
}

/// Whether the lock of `artifact` is held by a task that may still be writing it, as `gc` sees
/// it at one moment: the file exists, and its owner is neither an ended process of this host nor
/// silent (file not modified) for longer than the stale period.
pub(crate) fn held(artifact: &Path) -> bool {
    let path = lock_path(artifact);
    let Some(text) = read_text(&path) else { return false };
    if owner_ended(&text) {
        return false;
    }
    let age = std::fs::metadata(&path).and_then(|m| m.modified()).ok().and_then(|t| SystemTime::now().duration_since(t).ok());
    age.is_none_or(|a| a < stale_after() + Duration::from_secs(2))
}

/// Whether a lock file is provably abandoned: its owner, a process of this host, has ended.
pub(crate) fn abandoned(lock: &Path) -> bool {
    read_text(lock).is_some_and(|t| owner_ended(&t))
}

impl Cache {
    /// Takes the lock of the artifact of `kind` with `key`, waiting while another live task holds
    /// it (see the module docs).
    pub fn lock(&self, kind: &str, key: &str) -> Result<ArtifactLock, CacheError> {
        ArtifactLock::acquire(&self.artifact(kind, key))
    }
}

impl ArtifactLock {
    /// Takes the lock of `artifact` (any file in the cache), waiting while another task holds it.
    pub fn acquire(artifact: &Path) -> Result<Self, CacheError> {
        Self::acquire_with(artifact, stale_after())
    }

    /// [`ArtifactLock::acquire`] with a stale period of its own.
    pub fn acquire_with(artifact: &Path, stale: Duration) -> Result<Self, CacheError> {
        let path = lock_path(artifact);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| CacheError::file(dir, format!("cannot create directory: {e}")))?;
        }
        let started = Instant::now();
        let poll = (stale / 20).clamp(Duration::from_millis(20), Duration::from_millis(500));
        // The content last seen and when it was first seen so: unchanged for `stale` is stale.
        let mut seen: Option<(String, Instant)> = None;
        loop {
            match OpenOptions::new().read(true).write(true).create_new(true).open(&path) {
                Ok(file) => return Self::start(path, file, started.elapsed(), stale / 6),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(CacheError::file(&path, format!("cannot create the lock: {e}"))),
            }
            let Some(text) = read_text(&path) else { continue }; // released meanwhile
            let since = match &seen {
                Some((t, at)) if *t == text => *at,
                _ => {
                    if seen.is_none() {
                        tracing::info!(lock = %path.display(), owner = %text.trim(), "another task is computing this artifact; waiting for it");
                    }
                    seen = Some((text.clone(), Instant::now()));
                    Instant::now()
                }
            };
            if owner_ended(&text) || since.elapsed() >= stale {
                take_over(&path, &text, stale)?;
                seen = None;
                continue;
            }
            std::thread::sleep(poll);
        }
    }

    fn start(path: PathBuf, mut file: File, waited: Duration, every: Duration) -> Result<Self, CacheError> {
        let pid = std::process::id();
        let mut owner = LockOwner { host: host_name(), pid, proc_start: process_start(pid), started_ms: now_ms(), beat: 0 };
        write_owner(&mut file, &owner).map_err(|e| CacheError::file(&path, format!("cannot write the lock: {e}")))?;
        let mut beating = file.try_clone().map_err(|e| CacheError::file(&path, e))?;
        let (stop, stopped) = mpsc::channel::<()>();
        let watched = path.clone();
        let heart = std::thread::spawn(move || {
            let mut warned = false;
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                owner.beat += 1;
                let lost = write_owner(&mut beating, &owner).is_err() || !same_file(&beating, &watched);
                if lost && !warned {
                    tracing::warn!(lock = %watched.display(), "another task took this lock over (it thought this one dead); both store the same bytes");
                    warned = true;
                }
            }
        });
        Ok(Self { path, file, stop: Some(stop), heart: Some(heart), waited })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ArtifactLock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.heart.take() {
            let _ = h.join();
        }
        // Only this task's own lock: after a takeover the path is another task's file.
        if same_file(&self.file, &self.path) {
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!(lock = %self.path.display(), error = %e, "cannot remove the lock; other tasks take it over once it is stale");
            }
        }
    }
}

/// Rewrites the owner record in place through the lock's own open file (after a takeover that
/// file is unlinked, so the new owner's lock is never touched).
fn write_owner(file: &mut File, owner: &LockOwner) -> std::io::Result<()> {
    let text = serde_json::to_string(owner).map_err(std::io::Error::other)?;
    file.rewind()?;
    file.write_all(text.as_bytes())?;
    file.set_len(text.len() as u64)?;
    file.sync_data()
}

/// Whether the open `file` is the file now at `path`.
fn same_file(file: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), std::fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (file, path);
        true
    }
}

/// Removes the stale lock at `path` if it still says `seen`, under the exclusive takeover file.
fn take_over(path: &Path, seen: &str, stale: Duration) -> Result<(), CacheError> {
    let mut guard_name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    guard_name.push(".takeover");
    let guard = path.with_file_name(guard_name);
    match OpenOptions::new().write(true).create_new(true).open(&guard) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Another waiter is taking over; a guard left by one that died is removed once old.
            let old = std::fs::metadata(&guard).and_then(|m| m.modified()).ok().and_then(|t| SystemTime::now().duration_since(t).ok());
            if old.is_some_and(|a| a > stale) {
                let _ = std::fs::remove_file(&guard);
            }
            std::thread::sleep(Duration::from_millis(20));
            return Ok(());
        }
        Err(e) => return Err(CacheError::file(&guard, format!("cannot create the takeover guard: {e}"))),
    }
    let mut now = String::new();
    let still = File::open(path).and_then(|mut f| f.read_to_string(&mut now)).is_ok() && now == seen;
    if still {
        tracing::warn!(lock = %path.display(), owner = %seen.trim(), "taking over a stale lock (its owner ended or stopped its heartbeat)");
        let _ = std::fs::remove_file(path);
    }
    let _ = std::fs::remove_file(&guard);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::tests::tempdir;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn one_holder_at_a_time_and_released_on_drop() {
        let dir = tempdir("lock");
        let artifact = dir.join("logits").join("k.parquet");
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (artifact, inside, most) = (artifact.clone(), inside.clone(), most.clone());
                std::thread::spawn(move || {
                    let _lock = ArtifactLock::acquire(&artifact).unwrap();
                    let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(n, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(30));
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(most.load(Ordering::SeqCst), 1);
        assert!(!lock_path(&artifact).exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_lock_of_an_ended_process_is_taken_over_at_once_and_gc_sees_it_abandoned() {
        let dir = tempdir("lock-stale");
        let artifact = dir.join("k.safetensors");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let dead = LockOwner { host: host_name(), pid, proc_start: None, started_ms: 1, beat: 0 };
        std::fs::write(lock_path(&artifact), serde_json::to_string(&dead).unwrap()).unwrap();
        assert!(!held(&artifact) && abandoned(&lock_path(&artifact)));
        let lock = ArtifactLock::acquire(&artifact).unwrap();
        assert!(lock.waited < Duration::from_secs(5), "no need to wait out the heartbeat");
        assert!(held(&artifact), "now held by this live process");
        let owner: LockOwner = serde_json::from_str(&std::fs::read_to_string(lock.path()).unwrap()).unwrap();
        assert_eq!(owner.pid, std::process::id());
        drop(lock);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_lock_whose_heartbeat_stops_is_taken_over_after_the_stale_period() {
        let dir = tempdir("lock-silent");
        let artifact = dir.join("k.parquet");
        // Another host's owner that never beats: only silence can tell it is gone.
        let silent = LockOwner { host: "elsewhere".into(), pid: 1, proc_start: None, started_ms: 1, beat: 0 };
        std::fs::write(lock_path(&artifact), serde_json::to_string(&silent).unwrap()).unwrap();
        let lock = ArtifactLock::acquire_with(&artifact, Duration::from_millis(300)).unwrap();
        assert!(lock.waited >= Duration::from_millis(300), "{:?}", lock.waited);
        drop(lock);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
