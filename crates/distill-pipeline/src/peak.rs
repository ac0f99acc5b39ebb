//! Peak memory per stage: the kernel's high-water mark of the resident set (`VmHWM` in
//! `/proc/self/status`) and the resident set (`VmRSS`) at the end of each stage, logged and kept
//! in `metrics.json` `peak_rss`. The mark is not reset between stages (`/proc/self/clear_refs`
//! could): resetting it would also lower what `/usr/bin/time`, `getrusage` and schedulers
//! report for the whole process. A stage whose figure is above the previous one's raised the
//! peak to it.

use serde::Serialize;

/// The process's peak and present resident memory at the end of one stage.
#[derive(Debug, Clone, Serialize)]
pub struct StagePeak {
    pub stage: String,
    /// The highest resident set of the process up to the end of the stage.
    pub peak_rss_mb: f64,
    /// The resident set when the stage ended.
    pub rss_mb: f64,
}

/// The stages' peaks, in the order they ran.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PeakRss {
    pub stages: Vec<StagePeak>,
}

impl PeakRss {
    /// Records the process's figures at the end of `stage` (none where there is no `/proc`).
    pub(crate) fn stage(&mut self, stage: &str) {
        let (Some(peak), Some(now)) = (status_kb("VmHWM:"), status_kb("VmRSS:")) else { return };
        let mb = |kb: u64| (kb as f64 / 102.4).round() / 10.0;
        tracing::info!(stage, peak_rss_mb = mb(peak), rss_mb = mb(now), "memory");
        self.stages.push(StagePeak { stage: stage.to_string(), peak_rss_mb: mb(peak), rss_mb: mb(now) });
    }

    pub(crate) fn extend(&mut self, other: PeakRss) {
        self.stages.extend(other.stages);
    }
}

/// Hands memory freed so far back to the system: glibc's allocator keeps what the data stage's
/// tables (many column-sized blocks, on several threads' arenas) freed, so without this the
/// process would stay that large for the rest of the run.
pub(crate) fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free pages of the allocator's own heaps.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A `/proc/self/status` figure in kB (`VmHWM:`, `VmRSS:`), where the system has `/proc`.
fn status_kb(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.trim_start_matches(key).trim().trim_end_matches("kB").trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_that_allocates_shows_its_peak() {
        if status_kb("VmHWM:").is_none() {
            return; // no /proc here
        }
        let mut peaks = PeakRss::default();
        let big: Vec<u8> = vec![1; 64 << 20];
        std::hint::black_box(&big);
        peaks.stage("big");
        drop(big);
        peaks.stage("after");
        let [big, after] = [&peaks.stages[0], &peaks.stages[1]];
        assert!(big.rss_mb >= 64.0 && big.peak_rss_mb >= big.rss_mb, "{peaks:?}");
        // Other tests allocate on other threads meanwhile, and the kernel's per-thread RSS
        // counters lag by a little: only the 64 MB peak is certain to stay.
        assert!(after.peak_rss_mb >= 64.0, "the peak stays: {peaks:?}");
    }
}
