//! Leases: a run in progress registers itself in the cache, so `gc` never removes what it uses.
//!
//! A lease is `leases/<pid>-<ms>-<n>.json` under the cache directory: the run's pid, its process
//! start time (so a reused pid is not taken for the run), when the lease began and the keys the
//! run holds. It is rewritten atomically as the run holds more keys and removed when the run ends
//! (the [`Lease`] is dropped). `gc` skips every key a live lease holds and every entry newer than
//! the oldest live lease; a lease whose process is gone is stale and ignored (and removed).
//!
//! Ordering: taking or extending a lease happens under a shared lock of `leases/.lock`, `gc`
//! under an exclusive one, so a key is either held before `gc` reads the leases or looked up
//! after `gc` is done (and then found missing and recomputed, never used half-deleted).

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::{write_atomic, Cache, CacheError};

const LEASE_DIR: &str = "leases";

/// What a lease file says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// The host the run is on (absent in leases written before hosts were recorded). A lease of
    /// another host cannot be checked from here, so it counts as live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub pid: u32,
    /// The process's start time as the OS counts it (Linux: clock ticks after boot); `None`
    /// where it cannot be read.
    pub proc_start: Option<u64>,
    /// Milliseconds since the Unix epoch when the lease began.
    pub started_ms: u64,
    /// The cache keys the run uses or is about to store.
    pub keys: Vec<String>,
}

/// A live run's registration in the cache; removed from the cache when dropped.
#[derive(Debug)]
pub struct Lease {
    root: PathBuf,
    path: PathBuf,
    record: LeaseRecord,
}

/// A lock on the cache's lease folder: shared while a lease is written, exclusive for `gc`.
/// Released when dropped (closing the file releases it).
pub(crate) struct LeaseLock(#[allow(dead_code)] File);

impl LeaseLock {
    fn open(root: &Path) -> Result<File, CacheError> {
        let dir = root.join(LEASE_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| CacheError::file(&dir, format!("cannot create directory: {e}")))?;
        let path = dir.join(".lock");
        // An empty file used only for its lock: nothing is written to it.
        OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|e| CacheError::file(&path, format!("cannot open the lease lock: {e}")))
    }

    pub(crate) fn shared(root: &Path) -> Result<Self, CacheError> {
        let f = Self::open(root)?;
        f.lock_shared().map_err(|e| CacheError::file(root, format!("cannot lock the cache's leases: {e}")))?;
        Ok(Self(f))
    }

    pub(crate) fn exclusive(root: &Path) -> Result<Self, CacheError> {
        let f = Self::open(root)?;
        f.lock().map_err(|e| CacheError::file(root, format!("cannot lock the cache's leases: {e}")))?;
        Ok(Self(f))
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Cache {
    /// Registers this process as a run using the cache; hold every key with [`Lease::hold`]
    /// before looking it up or storing it, and drop the lease when the run has ended (after its
    /// `lock.json` is written, so `gc` finds the keys in one place or the other).
    pub fn lease(&self) -> Result<Lease, CacheError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let pid = std::process::id();
        let record = LeaseRecord { host: Some(crate::lock::host_name()), pid, proc_start: process_start(pid), started_ms: now_ms(), keys: Vec::new() };
        let name = format!("{pid}-{}-{}.json", record.started_ms, COUNTER.fetch_add(1, Ordering::Relaxed));
        let lease = Lease { root: self.root.clone(), path: self.root.join(LEASE_DIR).join(name), record };
        lease.write()?;
        Ok(lease)
    }
}

impl Lease {
    /// Adds `key` to the keys this run holds (a no-op when held already).
    pub fn hold(&mut self, key: &str) -> Result<(), CacheError> {
        if self.record.keys.iter().any(|k| k == key) {
            return Ok(());
        }
        self.record.keys.push(key.to_string());
        self.write()
    }

    /// The keys held so far.
    pub fn keys(&self) -> &[String] {
        &self.record.keys
    }

    /// The lease file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&self) -> Result<(), CacheError> {
        let _lock = LeaseLock::shared(&self.root)?;
        let text = serde_json::to_string_pretty(&self.record).map_err(|e| CacheError::file(&self.path, e))?;
        write_atomic(&self.path, text.as_bytes())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove the cache lease; gc ignores it once this process has ended");
        }
    }
}

/// The leases of runs still alive, as `gc` sees them.
#[derive(Debug, Default)]
pub(crate) struct LiveLeases {
    pub keys: HashSet<String>,
    /// When the oldest live lease began.
    pub oldest: Option<SystemTime>,
    pub count: usize,
    /// Leases of processes that have ended.
    pub stale: Vec<PathBuf>,
}

/// Reads every lease under `root`; the caller holds the exclusive [`LeaseLock`].
pub(crate) fn live_leases(root: &Path) -> LiveLeases {
    let mut live = LiveLeases::default();
    let Ok(list) = std::fs::read_dir(root.join(LEASE_DIR)) else { return live };
    for path in list.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|e| e == "json")) {
        let record: LeaseRecord =
            match std::fs::read_to_string(&path).map_err(|e| e.to_string()).and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string())) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "unreadable cache lease; ignored");
                    continue;
                }
            };
        let elsewhere = record.host.as_ref().is_some_and(|h| *h != crate::lock::host_name());
        if !elsewhere && !alive(record.pid, record.proc_start) {
            live.stale.push(path);
            continue;
        }
        live.count += 1;
        let started = UNIX_EPOCH + Duration::from_millis(record.started_ms);
        live.oldest = Some(live.oldest.map_or(started, |o| o.min(started)));
        live.keys.extend(record.keys);
    }
    live
}

/// Whether process `pid` is running and, when `start` is known, is the process that took the
/// lease (not a later one given the same pid).
pub(crate) fn alive(pid: u32, start: Option<u64>) -> bool {
    #[cfg(target_os = "linux")]
    {
        match proc_stat(pid) {
            None => false,
            Some((state, found)) => state != 'Z' && start.is_none_or(|s| Some(s) == found),
        }
    }
    #[cfg(all(unix, not(target_os = "linux")))]
    {
        let _ = start;
        // Signal 0 only asks whether the process exists; EPERM means it does (another user's).
        // SAFETY: kill with signal 0 sends nothing.
        let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        // No way to ask here without a new dependency: taken as live, so gc keeps too much
        // rather than too little.
        let _ = (pid, start);
        true
    }
}

pub(crate) fn process_start(pid: u32) -> Option<u64> {
    proc_stat(pid).and_then(|(_, start)| start)
}

/// State letter and start time (field 22) from `/proc/<pid>/stat`; `None` if there is no such
/// process. The command name (field 2) may hold spaces and parentheses, so fields are counted
/// after its last `)`.
fn proc_stat(pid: u32) -> Option<(char, Option<u64>)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    Some((state, fields.get(19).and_then(|s| s.parse().ok())))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn a_lease_lists_its_keys_while_alive_and_is_gone_when_dropped() {
        let dir = tempdir("lease");
        let cache = Cache::new(&dir, &crate::test_kinds());
        let mut lease = cache.lease().unwrap();
        lease.hold("k1").unwrap();
        lease.hold("k1").unwrap();
        lease.hold("k2").unwrap();
        let live = live_leases(&dir);
        assert_eq!((live.count, live.keys.len()), (1, 2));
        assert!(live.oldest.is_some() && live.stale.is_empty());
        let path = lease.path().to_path_buf();
        drop(lease);
        assert!(!path.exists());
        assert_eq!(live_leases(&dir).count, 0);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_lease_of_an_ended_process_or_a_reused_pid_is_stale() {
        let dir = tempdir("stale");
        let me = std::process::id();
        assert!(alive(me, process_start(me)));
        assert!(!alive(me, process_start(me).map(|s| s + 1)), "same pid, another start time");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!alive(pid, None));
        let record = LeaseRecord { host: Some(crate::lock::host_name()), pid, proc_start: None, started_ms: 1, keys: vec!["old".into()] };
        write_atomic(&dir.join(LEASE_DIR).join("x.json"), serde_json::to_string(&record).unwrap().as_bytes()).unwrap();
        let live = live_leases(&dir);
        assert_eq!((live.count, live.stale.len()), (0, 1));
        assert!(live.keys.is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    pub(crate) fn tempdir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("distill-{name}-{}-{}", std::process::id(), now_ms()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
