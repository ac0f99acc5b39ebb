//! The run directory: `runs/<pipeline>/<run-id>/` unless `--out` says otherwise.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use distill_cache::{write_atomic, CacheError};

/// A run id that sorts by time: `YYYYMMDD-HHMMSS-<pid>` in UTC.
pub fn new_run_id() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}-{}", rem / 3600, rem / 60 % 60, rem % 60, std::process::id())
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + (m <= 2) as i64, m, d)
}

pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub fn create(path: PathBuf) -> Result<Self, CacheError> {
        std::fs::create_dir_all(&path).map_err(|e| CacheError::file(&path, format!("cannot create the run directory: {e}")))?;
        Ok(Self { path })
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<(), CacheError> {
        write_atomic(&self.path.join(name), bytes)
    }

    pub fn write_json(&self, name: &str, value: &impl serde::Serialize) -> Result<(), CacheError> {
        let text = serde_json::to_string_pretty(value).map_err(|e| CacheError::file(&self.path.join(name), e))?;
        self.write(name, format!("{text}\n").as_bytes())
    }
}

/// `base/relative` unless `relative` is absolute.
pub fn resolve(base: &Path, relative: &Path) -> PathBuf {
    if relative.is_absolute() {
        relative.to_path_buf()
    } else {
        base.join(relative)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(20_785), (2026, 11, 28));
        assert_eq!(super::civil_from_days(11_016), (2000, 2, 29));
    }
}
