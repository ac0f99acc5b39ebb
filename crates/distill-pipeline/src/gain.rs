//! The student's gain over the baseline when both trained under several seeds: each seed's
//! student and baseline share initialisation and batch order, so the seeds pair them, and the
//! gain is the mean paired difference with its 95% interval and a paired t-test.

use serde::Serialize;

use distill_eval::stats::{paired_comparison, PairedComparison};

use crate::evaluate::ModelMetrics;

/// Student minus baseline test accuracy over the seeds both trained with (fractions, like
/// `accuracy`; the text says percentage points).
#[derive(Debug, Clone, Serialize)]
pub struct Gain {
    /// The seeds paired, in order.
    pub seeds: Vec<u64>,
    #[serde(flatten)]
    pub comparison: PairedComparison,
    /// The line the summary table and the report print.
    pub text: String,
}

/// The paired gain of `student` over `baseline`; `None` unless at least two seeds trained both.
pub fn gain(student: &ModelMetrics, baseline: &ModelMetrics) -> Option<Gain> {
    let pairs: Vec<(u64, f64, f64)> =
        student.per_seed.iter().filter_map(|s| baseline.per_seed.iter().find(|b| b.seed == s.seed).map(|b| (s.seed, s.accuracy, b.accuracy))).collect();
    let (a, b): (Vec<f64>, Vec<f64>) = pairs.iter().map(|&(_, s, b)| (s, b)).unzip();
    let comparison = paired_comparison(&a, &b)?;
    Some(Gain { seeds: pairs.iter().map(|p| p.0).collect(), text: describe(&comparison), comparison })
}

/// "gain +7.8 pt [6.9, 8.7], p = 0.002, 3 seeds".
pub fn describe(c: &PairedComparison) -> String {
    let pt = |v: f64| 100.0 * v;
    let p = if c.p_value < 0.001 { "p < 0.001".to_string() } else { format!("p = {:.3}", c.p_value) };
    format!("gain {:+.1} pt [{:.1}, {:.1}], {p}, {} seeds", pt(c.mean), pt(c.ci95[0]), pt(c.ci95[1]), c.n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::SeedAccuracy;

    fn model(accs: &[(u64, f64)]) -> ModelMetrics {
        ModelMetrics { per_seed: accs.iter().map(|&(seed, accuracy)| SeedAccuracy { seed, accuracy }).collect(), ..ModelMetrics::new(&[], &[], 1, 0) }
    }

    #[test]
    fn pairs_by_seed_and_prints_points() {
        // The hand-computed case of distill-eval's stats tests, baseline listed in another order.
        let g = gain(&model(&[(0, 0.95), (1, 0.96), (2, 0.97)]), &model(&[(2, 0.90), (0, 0.88), (1, 0.87)])).unwrap();
        assert_eq!(g.seeds, [0, 1, 2]);
        assert!((g.comparison.t - 11.5).abs() < 1e-9);
        assert_eq!(g.text, "gain +7.7 pt [4.8, 10.5], p = 0.007, 3 seeds");
        assert!(gain(&model(&[(0, 0.9)]), &model(&[(0, 0.8)])).is_none(), "one seed: no interval");
        assert!(gain(&model(&[(0, 0.9), (1, 0.8)]), &model(&[(0, 0.8), (5, 0.7)])).is_none(), "one shared seed");
    }
}
