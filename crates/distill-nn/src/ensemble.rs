//! Several teachers' logits combined into one set of soft targets: the weighted mean of their
//! probabilities at the distillation temperature, or of their logits.

use distill_spec::EnsembleRule;

use crate::soft_targets::softmax_t;

/// Combines `teachers` (each row-major `n × k`, the same rows) by `rule` with `weights` (one per
/// teacher, normalised here; equal when `None`). For `mean_probs` the result is
/// `T · ln(Σ w_i softmax(t_i / T))`, whose `softmax(· / T)` is exactly the mean of the teachers'
/// soft targets at `temperature` T — so a KD loss at T reads the mean the rule names.
pub fn combine(teachers: &[&[f32]], k: usize, rule: EnsembleRule, weights: Option<&[f64]>, temperature: f64) -> Result<Vec<f32>, String> {
    let len = teachers.first().map_or(0, |t| t.len());
    if let Some(t) = teachers.iter().find(|t| t.len() != len) {
        return Err(format!("teachers' logits differ in size: {} and {len} values", t.len()));
    }
    let equal = vec![1.0; teachers.len()];
    let weights = weights.unwrap_or(&equal);
    let total: f64 = weights.iter().sum();
    if weights.len() != teachers.len() || total <= 0.0 {
        return Err(format!("{} weights for {} teachers (summing to {total})", weights.len(), teachers.len()));
    }
    let w: Vec<f64> = weights.iter().map(|v| v / total).collect();
    let mut out = vec![0f32; len];
    let (mut p, mut mean) = (vec![0.0; k], vec![0.0; k]);
    for (r, row) in out.chunks_exact_mut(k.max(1)).enumerate() {
        let span = r * k..(r + 1) * k;
        mean.iter_mut().for_each(|m| *m = 0.0);
        for (t, wi) in teachers.iter().zip(&w) {
            match rule {
                EnsembleRule::MeanLogits => mean.iter_mut().zip(&t[span.clone()]).for_each(|(m, &z)| *m += wi * z as f64),
                EnsembleRule::MeanProbs => {
                    softmax_t(&t[span.clone()], temperature, &mut p);
                    mean.iter_mut().zip(&p).for_each(|(m, q)| *m += wi * q);
                }
            }
        }
        for (o, m) in row.iter_mut().zip(&mean) {
            *o = match rule {
                EnsembleRule::MeanLogits => *m as f32,
                // A probability that underflowed stays finite: far below every other logit.
                EnsembleRule::MeanProbs => (temperature * m.max(1e-30).ln()) as f32,
            };
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensemble_soft_targets_of_a_hand_computed_case() {
        // Two teachers, two classes: softmax [1/4, 3/4] and [3/4, 1/4] at T = 1.
        let ln3 = 3f32.ln();
        let (a, b) = ([0.0f32, ln3], [ln3, 0.0f32]);
        let equal = combine(&[&a, &b], 2, EnsembleRule::MeanProbs, None, 1.0).unwrap();
        assert!((equal[0] - equal[1]).abs() < 1e-6, "mean of [1/4, 3/4] and [3/4, 1/4] is uniform: {equal:?}");
        // Weights 3 : 1 → [3/4 · 1/4 + 1/4 · 3/4, 3/4 · 3/4 + 1/4 · 1/4] = [0.375, 0.625].
        let z = combine(&[&a, &b], 2, EnsembleRule::MeanProbs, Some(&[3.0, 1.0]), 1.0).unwrap();
        let mut p = [0.0; 2];
        softmax_t(&z, 1.0, &mut p);
        assert!((p[0] - 0.375).abs() < 1e-6 && (p[1] - 0.625).abs() < 1e-6, "{p:?}");
        // At T = 2 the soft targets are the mean of the teachers' softmax(t / 2): with t = [0, ln 9]
        // and [ln 9, 0], softmax(t / 2) = [1/4, 3/4] and [3/4, 1/4] again.
        let ln9 = 9f32.ln();
        let z = combine(&[&[0.0, ln9], &[ln9, 0.0]], 2, EnsembleRule::MeanProbs, Some(&[3.0, 1.0]), 2.0).unwrap();
        softmax_t(&z, 2.0, &mut p);
        assert!((p[0] - 0.375).abs() < 1e-6 && (p[1] - 0.625).abs() < 1e-6, "{p:?}");
        // Mean of logits, weights 1 : 3: [0.25 · 1 + 0.75 · 3, 0.25 · 2 + 0.75 · (−2)] = [2.5, −1].
        let z = combine(&[&[1.0, 2.0], &[3.0, -2.0]], 2, EnsembleRule::MeanLogits, Some(&[1.0, 3.0]), 4.0).unwrap();
        assert_eq!(z, [2.5, -1.0]);
        assert!(combine(&[&a, &[0.0]], 2, EnsembleRule::MeanLogits, None, 1.0).is_err());
        assert!(combine(&[&a, &b], 2, EnsembleRule::MeanLogits, Some(&[1.0]), 1.0).is_err());
    }
}
