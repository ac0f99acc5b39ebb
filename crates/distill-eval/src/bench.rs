//! Wall-clock latency and throughput of a closure.
//!
//! These helpers time whatever the closure does, on the calling thread, with
//! [`std::time::Instant`]. They are meant for the report's "how fast is the student"
//! numbers, not for statistically careful benchmarking: no outlier rejection, no
//! confidence intervals. Keep the closure's result observable (return it, or pass it
//! through [`std::hint::black_box`]) so the optimiser cannot delete the work.

use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// Summary of per-call latencies, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencyStats {
    /// Median call time (nearest-rank).
    pub p50_ms: f64,
    /// 95th-percentile call time (nearest-rank); never below `p50_ms`.
    pub p95_ms: f64,
    /// Mean call time.
    pub mean_ms: f64,
    /// Number of timed calls (warm-up calls excluded).
    pub runs: usize,
}

/// Calls `f` `warmup` times untimed, then `runs` times timed, and summarises the timings.
///
/// At least one timed call is always made, so `runs = 0` behaves like `runs = 1`.
/// Percentiles use the nearest-rank method on the sorted timings.
pub fn measure_latency(mut f: impl FnMut(), warmup: usize, runs: usize) -> LatencyStats {
    for _ in 0..warmup {
        f();
    }
    let runs = runs.max(1);
    let mut ms: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    LatencyStats { p50_ms: nearest_rank(&ms, 0.50), p95_ms: nearest_rank(&ms, 0.95), mean_ms: ms.iter().sum::<f64>() / ms.len() as f64, runs }
}

/// Nearest-rank percentile of a sorted, non-empty slice.
fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Calls `f` repeatedly for at least `min_seconds` and returns rows processed per second.
///
/// `f` returns how many rows it processed in that call. At least one call is made, and
/// calls continue until some measurable time has passed, so the result is finite.
/// A non-positive or NaN `min_seconds` means "one call".
pub fn measure_throughput(mut f: impl FnMut() -> usize, min_seconds: f64) -> f64 {
    let min = if min_seconds.is_finite() && min_seconds > 0.0 { Duration::from_secs_f64(min_seconds) } else { Duration::ZERO };
    let start = Instant::now();
    let mut rows: u128 = 0;
    loop {
        rows += f() as u128;
        let elapsed = start.elapsed();
        if elapsed >= min && elapsed > Duration::ZERO {
            return rows as f64 / elapsed.as_secs_f64();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hint::black_box;

    fn work() -> u64 {
        (0..2_000u64).map(black_box).sum()
    }

    #[test]
    fn latency_stats_are_finite_and_ordered() {
        let mut calls = 0;
        let s = measure_latency(
            || {
                calls += 1;
                black_box(work());
            },
            3,
            20,
        );
        assert_eq!(calls, 23);
        assert_eq!(s.runs, 20);
        for v in [s.p50_ms, s.p95_ms, s.mean_ms] {
            assert!(v.is_finite() && v >= 0.0);
        }
        assert!(s.p50_ms <= s.p95_ms);
    }

    #[test]
    fn zero_runs_still_measures_once() {
        let s = measure_latency(|| {}, 0, 0);
        assert_eq!(s.runs, 1);
        assert!(s.p50_ms <= s.p95_ms);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(nearest_rank(&v, 0.5), 10.0);
        assert_eq!(nearest_rank(&v, 0.95), 19.0);
        assert_eq!(nearest_rank(&[7.0], 0.95), 7.0);
    }

    #[test]
    fn throughput_is_finite_and_positive() {
        let r = measure_throughput(
            || {
                black_box(work());
                64
            },
            0.01,
        );
        assert!(r.is_finite() && r > 0.0);
        let r = measure_throughput(|| 1, f64::NAN);
        assert!(r.is_finite() && r > 0.0);
    }
}
