//! Whether a gain is real: the paired comparison of two models trained under the same seeds
//! (mean difference, its 95% confidence interval, a paired t-test), with the Student-t
//! distribution computed here through the regularised incomplete beta function.

use serde::{Deserialize, Serialize};

/// A paired comparison of `a` against `b` over the same seeds: `a[i] - b[i]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedComparison {
    /// Number of pairs (seeds).
    pub n: usize,
    /// Mean of the differences.
    pub mean: f64,
    /// Sample standard deviation of the differences (n - 1).
    pub std: f64,
    /// Two-sided 95% confidence interval of the mean difference (Student t, n - 1 degrees).
    pub ci95: [f64; 2],
    /// The paired t statistic (mean / (std / √n)); infinite when every difference is the same
    /// non-zero value.
    pub t: f64,
    /// Two-sided p-value of the paired t-test against a mean difference of 0.
    pub p_value: f64,
}

/// The paired comparison of `a` and `b` (same length, same seed order); `None` with fewer than
/// two pairs (no spread to test against) or lengths that differ.
pub fn paired_comparison(a: &[f64], b: &[f64]) -> Option<PairedComparison> {
    if a.len() != b.len() || a.len() < 2 {
        return None;
    }
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let n = d.len() as f64;
    let mean = d.iter().sum::<f64>() / n;
    let std = (d.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0)).sqrt();
    let se = std / n.sqrt();
    let df = n - 1.0;
    let half = student_t_quantile(0.975, df) * se;
    // Identical differences: no spread, so any non-zero mean is as certain as it gets.
    let (t, p_value) = if se == 0.0 {
        if mean == 0.0 {
            (0.0, 1.0)
        } else {
            (mean.signum() * f64::INFINITY, 0.0)
        }
    } else {
        let t = mean / se;
        (t, (2.0 * (1.0 - student_t_cdf(t.abs(), df))).clamp(0.0, 1.0))
    };
    Some(PairedComparison { n: d.len(), mean, std, ci95: [mean - half, mean + half], t, p_value })
}

/// P(T ≤ t) for Student's t with `df` degrees of freedom (df > 0).
pub fn student_t_cdf(t: f64, df: f64) -> f64 {
    if t.is_infinite() {
        return if t > 0.0 { 1.0 } else { 0.0 };
    }
    // P(|T| > |t|) = I_{df / (df + t²)}(df / 2, 1 / 2).
    let tail = regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t * t));
    if t >= 0.0 {
        1.0 - tail / 2.0
    } else {
        tail / 2.0
    }
}

/// The `p` quantile of Student's t with `df` degrees of freedom (0 < p < 1), by bisection on
/// the CDF (monotone; 200 halvings reach f64 resolution for any df ≥ 1).
pub fn student_t_quantile(p: f64, df: f64) -> f64 {
    if p == 0.5 {
        return 0.0;
    }
    if p < 0.5 {
        return -student_t_quantile(1.0 - p, df);
    }
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    while student_t_cdf(hi, df) < p && hi < 1e12 {
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if student_t_cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// The regularised incomplete beta function I_x(a, b) for a, b > 0 and 0 ≤ x ≤ 1: the continued
/// fraction (modified Lentz), on whichever side of the symmetry I_x(a, b) = 1 - I_{1-x}(b, a)
/// converges fast.
pub fn regularized_incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    if x < (a + 1.0) / (a + b + 2.0) {
        ln_front.exp() * beta_continued_fraction(a, b, x) / a
    } else {
        1.0 - ln_front.exp() * beta_continued_fraction(b, a, 1.0 - x) / b
    }
}

fn beta_continued_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let fix = |v: f64| if v.abs() < TINY { TINY } else { v };
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 / fix(1.0 - qab * x / qap);
    let mut h = d;
    for m in 1..500 {
        let m = m as f64;
        let m2 = 2.0 * m;
        // Even step, then odd step of the fraction.
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 / fix(1.0 + aa * d);
        c = fix(1.0 + aa / c);
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 / fix(1.0 + aa * d);
        c = fix(1.0 + aa / c);
        let delta = d * c;
        h *= delta;
        if (delta - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms: about 15 significant digits).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 - x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + G + 0.5;
    let sum = C[1..].iter().enumerate().fold(C[0], |acc, (i, c)| acc + c / (x + i as f64 + 1.0));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() < tol, "{a} vs {b}");
    }

    #[test]
    fn gamma_and_incomplete_beta_match_closed_forms() {
        close(ln_gamma(5.0), 24f64.ln(), 1e-13);
        close(ln_gamma(0.5), std::f64::consts::PI.sqrt().ln(), 1e-13);
        close(ln_gamma(0.1), 2.252_712_651_734_206, 1e-12);
        // I_x(1, b) = 1 - (1 - x)^b and I_x(a, 1) = x^a.
        close(regularized_incomplete_beta(1.0, 3.0, 0.3), 1.0 - 0.7f64.powi(3), 1e-14);
        close(regularized_incomplete_beta(2.5, 1.0, 0.6), 0.6f64.powf(2.5), 1e-14);
        // I_x(2, 2) = 3x² - 2x³, on both sides of the symmetry switch.
        for x in [0.1, 0.45, 0.5, 0.8, 0.99] {
            close(regularized_incomplete_beta(2.0, 2.0, x), 3.0 * x * x - 2.0 * x * x * x, 1e-14);
        }
        // I_{1/2}(a, a) = 1/2.
        close(regularized_incomplete_beta(7.3, 7.3, 0.5), 0.5, 1e-13);
    }

    #[test]
    fn student_t_matches_known_values() {
        // df = 1 is Cauchy: F(t) = 1/2 + atan(t)/π; df = 2: F(t) = 1/2 + t / (2 √(2 + t²)).
        for t in [-3.0, -0.5, 0.0, 1.0, 7.0] {
            close(student_t_cdf(t, 1.0), 0.5 + f64::atan(t) / std::f64::consts::PI, 1e-13);
            close(student_t_cdf(t, 2.0), 0.5 + t / (2.0 * (2.0 + t * t).sqrt()), 1e-13);
        }
        // Two-sided 95% critical values from the t table.
        close(student_t_quantile(0.975, 1.0), (0.475 * std::f64::consts::PI).tan(), 1e-8);
        close(student_t_quantile(0.975, 2.0), 4.302_652_729_749_464, 1e-9);
        close(student_t_quantile(0.975, 4.0), 2.776_445_105_197_799, 1e-9);
        close(student_t_quantile(0.975, 30.0), 2.042_272_456_301_237, 1e-9);
        close(student_t_quantile(0.025, 9.0), -2.262_157_162_740_991, 1e-9);
        // Large df approaches the normal: Φ(1.96) = 0.975002.
        close(student_t_cdf(1.959_963_984_540_054, 1e7), 0.975, 1e-6);
    }

    #[test]
    fn paired_comparison_of_a_hand_computed_case() {
        // d = [0.07, 0.09, 0.07]: mean 0.0766…, sd 0.011547, se 0.0066667, t = 11.5, df = 2.
        // p = 2 (1 - F(11.5)) with F(t) = 1/2 + t / (2 √(2 + t²)) = 1 - 11.5 / √134.25;
        // CI = mean ± 4.302653 · se.
        let c = paired_comparison(&[0.95, 0.96, 0.97], &[0.88, 0.87, 0.90]).unwrap();
        assert_eq!(c.n, 3);
        close(c.mean, 0.23 / 3.0, 1e-12);
        close(c.std, (4e-4f64 / 3.0).sqrt(), 1e-12);
        close(c.t, 11.5, 1e-9);
        close(c.p_value, 1.0 - 11.5 / 134.25f64.sqrt(), 1e-10);
        close(c.p_value, 0.007_476_74, 1e-8);
        let half = 4.302_652_729_749_464 * (4e-4f64 / 3.0).sqrt() / 3f64.sqrt();
        close(c.ci95[0], 0.23 / 3.0 - half, 1e-9);
        close(c.ci95[1], 0.23 / 3.0 + half, 1e-9);
        close(c.ci95[0], 0.047_982, 1e-5);
        close(c.ci95[1], 0.105_351, 1e-5);
    }

    #[test]
    fn degenerate_comparisons() {
        assert!(paired_comparison(&[0.9], &[0.8]).is_none(), "one seed has no spread");
        assert!(paired_comparison(&[0.9, 0.8], &[0.8]).is_none());
        let same = paired_comparison(&[0.75, 0.5], &[0.5, 0.25]).unwrap();
        assert_eq!((same.p_value, same.ci95[0] == same.ci95[1]), (0.0, true));
        let none = paired_comparison(&[0.9, 0.8], &[0.9, 0.8]).unwrap();
        assert_eq!((none.t, none.p_value), (0.0, 1.0));
    }
}
