//! Peak memory per stage: the kernel's high-water mark of the resident set (`VmHWM` in
//! `/proc/self/status`), reset before each stage through `/proc/self/clear_refs` where the
//! kernel allows it, so each figure is that stage's own peak; where it does not, each figure is
//! the process's peak so far. Logged after each stage and kept in `metrics.json` `peak_rss`.

use serde::Serialize;

/// One stage's peak resident set.
#[derive(Debug, Clone, Serialize)]
pub struct StagePeak {
    pub stage: String,
    pub peak_rss_mb: f64,
}

/// The stages' peaks and how to read them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PeakRss {
    /// `true`: each figure is its stage's own peak; `false`: the process's peak up to the end of
    /// that stage (the high-water mark could not be reset).
    pub per_stage: bool,
    pub stages: Vec<StagePeak>,
}

impl PeakRss {
    /// Starts measuring: resets the high-water mark where possible.
    pub(crate) fn start() -> Self {
        Self { per_stage: reset(), stages: Vec::new() }
    }

    /// Records the peak since the last stage under `stage`, then resets it for the next one.
    pub(crate) fn stage(&mut self, stage: &str) {
        if let Some(kb) = high_water_kb() {
            let mb = kb as f64 / 1024.0;
            tracing::info!(stage, peak_rss_mb = format!("{mb:.0}"), "peak memory");
            self.stages.push(StagePeak { stage: stage.to_string(), peak_rss_mb: (mb * 10.0).round() / 10.0 });
        }
        if self.per_stage {
            reset();
        }
    }

    pub(crate) fn extend(&mut self, other: PeakRss) {
        self.per_stage &= other.per_stage;
        self.stages.extend(other.stages);
    }
}

/// Resets the peak resident set to the present one (Linux ≥ 4.0, `5` to `clear_refs`).
fn reset() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// `VmHWM` in kB, where the system has `/proc`.
fn high_water_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_that_allocates_shows_its_peak() {
        if high_water_kb().is_none() {
            return; // no /proc here
        }
        let mut peaks = PeakRss::start();
        let big: Vec<u8> = vec![1; 64 << 20];
        std::hint::black_box(&big);
        drop(big);
        peaks.stage("big");
        assert!(peaks.stages[0].peak_rss_mb >= 64.0, "{peaks:?}");
    }
}
