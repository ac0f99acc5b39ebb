//! Confidence-aware transfer sets: how sure the teacher is of each row (its largest softmax
//! probability, or one minus its normalised entropy), and a loss wrapper that weighs each
//! unlabelled row's term by it.

use distill_spec::TransferWeight;

use crate::loss::{Loss, LossResult, SoftBatch, NO_LABEL};
use crate::soft_targets::softmax_t;

/// The teacher's largest softmax probability (at T = 1) of each row of `logits` (`k` wide).
pub fn teacher_confidence(logits: &[f32], k: usize) -> Vec<f64> {
    let mut p = vec![0.0; k];
    logits
        .chunks_exact(k.max(1))
        .map(|row| {
            softmax_t(row, 1.0, &mut p);
            p.iter().copied().fold(0.0, f64::max)
        })
        .collect()
}

/// 1 - H(softmax(t)) / ln k of each row: 1 for a one-hot teacher, 0 for a uniform one.
pub fn teacher_certainty(logits: &[f32], k: usize) -> Vec<f64> {
    let mut p = vec![0.0; k];
    let max_entropy = (k as f64).ln();
    logits
        .chunks_exact(k.max(1))
        .map(|row| {
            softmax_t(row, 1.0, &mut p);
            let h: f64 = p.iter().filter(|&&q| q > 0.0).map(|&q| -q * q.ln()).sum();
            if max_entropy > 0.0 {
                (1.0 - h / max_entropy).clamp(0.0, 1.0)
            } else {
                1.0
            }
        })
        .collect()
}

/// The per-row weight a rule gives rows with teacher logits `logits`.
pub fn row_weights(rule: TransferWeight, logits: &[f32], k: usize) -> Vec<f64> {
    match rule {
        TransferWeight::Confidence => teacher_confidence(logits, k),
        TransferWeight::Entropy => teacher_certainty(logits, k),
    }
}

/// `inner`, with each unlabelled row's term (`NO_LABEL`) weighted by `rule` from the batch's
/// teacher logits; labelled rows weigh 1. The loss is `(1/n) Σ w_i ℓ_i`, so each row is evaluated
/// on its own (`ℓ_i` is `inner` on that row) and its gradient is `w_i ∇ℓ_i / n`.
pub struct RowWeighted<'a> {
    pub inner: &'a dyn Loss,
    pub rule: TransferWeight,
}

impl Loss for RowWeighted<'_> {
    fn value_and_grad(&self, student: &[f32], teacher: Option<&[f32]>, labels: &[u32], k: usize) -> LossResult {
        let teacher = teacher.ok_or("confidence weighting needs teacher logits")?;
        let n = labels.len();
        if student.len() != n * k || teacher.len() != n * k {
            return Err(format!("{} student and {} teacher logits for {n} rows × {k} classes", student.len(), teacher.len()));
        }
        let weights = row_weights(self.rule, teacher, k);
        let (mut total, mut grad) = (0.0, vec![0f32; n * k]);
        for i in 0..n {
            let w = if labels[i] == NO_LABEL { weights[i] } else { 1.0 };
            let rows = i * k..(i + 1) * k;
            let (v, g) = self.inner.value_and_grad(&student[rows.clone()], Some(&teacher[rows.clone()]), &labels[i..i + 1], k)?;
            total += w * v;
            for (out, gi) in grad[rows].iter_mut().zip(g) {
                *out = (w * gi as f64 / n as f64) as f32;
            }
        }
        Ok((total / n.max(1) as f64, grad))
    }
    fn needs_teacher(&self) -> bool {
        true
    }
    // Rows are evaluated one by one through `value_and_grad` (the same values as precomputed
    // soft targets), so none are precomputed.
    fn value_and_grad_soft(&self, student: &[f32], teacher: Option<&[f32]>, _: &SoftBatch, labels: &[u32], k: usize) -> LossResult {
        self.value_and_grad(student, teacher, labels, k)
    }
}

/// The rows a student trains on under `min_teacher_confidence`: every labelled row, and the
/// unlabelled rows (`unlabelled[i]`) whose confidence is at least `min`; in row order.
pub fn confident_rows(confidence: &[f64], unlabelled: &[bool], min: f64) -> Vec<usize> {
    (0..confidence.len()).filter(|&i| !unlabelled[i] || confidence[i] >= min).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HintonKd;

    #[test]
    fn confidence_and_certainty_of_known_rows() {
        let ln3 = 3f32.ln();
        // Row 0: probabilities [2/3, 1/6, 1/6] (logits ln 4, 0, 0); row 1: uniform.
        let logits = [4f32.ln(), 0.0, 0.0, ln3, ln3, ln3];
        let c = teacher_confidence(&logits, 3);
        assert!((c[0] - 2.0 / 3.0).abs() < 1e-6 && (c[1] - 1.0 / 3.0).abs() < 1e-6, "{c:?}");
        let h0 = -(2.0 / 3.0 * (2.0f64 / 3.0).ln() + 2.0 / 6.0 * (1.0f64 / 6.0).ln());
        let e = teacher_certainty(&logits, 3);
        assert!((e[0] - (1.0 - h0 / 3f64.ln())).abs() < 1e-6 && e[1].abs() < 1e-6, "{e:?}");
    }

    #[test]
    fn the_filter_keeps_labelled_rows_and_confident_unlabelled_ones() {
        let confidence = [0.2, 0.59, 0.6, 0.61, 0.95, 0.1];
        let unlabelled = [true, true, true, true, true, false];
        assert_eq!(confident_rows(&confidence, &unlabelled, 0.6), [2, 3, 4, 5]);
    }

    #[test]
    fn weighted_gradient_matches_finite_differences_and_weights_only_unlabelled_rows() {
        let kd = HintonKd { temperature: 2.0, alpha: 0.5 };
        let teacher = [1.0f32, 0.0, 3.0, -1.0, 0.2, 0.2, -2.0, 2.5];
        let student = [0.3f32, -1.2, 2.0, 0.5, 0.1, 0.0, -0.7, 1.4];
        for rule in [TransferWeight::Confidence, TransferWeight::Entropy] {
            let loss = RowWeighted { inner: &kd, rule };
            let labels = [NO_LABEL, 1];
            let (value, grad) = loss.value_and_grad(&student, Some(&teacher), &labels, 4).unwrap();
            for idx in 0..student.len() {
                let h = 1e-3f32;
                let (mut plus, mut minus) = (student, student);
                plus[idx] += h;
                minus[idx] -= h;
                let f = |s: &[f32]| loss.value_and_grad(s, Some(&teacher), &labels, 4).unwrap().0;
                let numeric = (f(&plus) - f(&minus)) / (2.0 * h as f64);
                assert!((numeric - grad[idx] as f64).abs() < 1e-4, "{rule:?} index {idx}: {numeric} vs {}", grad[idx]);
            }
            // By hand: (w_0 ℓ_0 + ℓ_1) / 2, with ℓ_i the KD loss of row i alone.
            let w0 = row_weights(rule, &teacher[..4], 4)[0];
            let l0 = kd.value_and_grad(&student[..4], Some(&teacher[..4]), &[NO_LABEL], 4).unwrap().0;
            let l1 = kd.value_and_grad(&student[4..], Some(&teacher[4..]), &[1], 4).unwrap().0;
            assert!((value - (w0 * l0 + l1) / 2.0).abs() < 1e-12);
            assert!(w0 > 0.0 && w0 < 1.0);
        }
    }
}
