//! Losses as plain functions of logits: each returns the mean loss over the batch and its
//! gradient with respect to the student logits. Training joins the gradient to dfdx's tape.

/// The label of a row that has none (a transfer-set row): such rows get no hard-label term.
pub const NO_LABEL: u32 = u32::MAX;

/// A loss value and its gradient, or an error message.
pub type LossResult = Result<(f64, Vec<f32>), String>;

/// A training loss over one batch of `n` rows and `k` classes (row-major `n × k` buffers).
pub trait Loss: Sync {
    /// Mean loss over the batch and d(loss)/d(student logits), or why it cannot be computed (a
    /// plugin loss can fail). `teacher` is present when the training targets carry teacher logits.
    fn value_and_grad(&self, student: &[f32], teacher: Option<&[f32]>, labels: &[u32], k: usize) -> LossResult;
    /// Whether the loss needs teacher logits.
    fn needs_teacher(&self) -> bool;
}

/// Softmax of `z / t` into `out`, computed in f64 for stability.
fn softmax_t(z: &[f32], t: f64, out: &mut [f64]) {
    let max = z.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let mut sum = 0.0;
    for (o, &v) in out.iter_mut().zip(z) {
        *o = ((v as f64 - max) / t).exp();
        sum += *o;
    }
    for o in out.iter_mut() {
        *o /= sum;
    }
}

/// Cross-entropy with the labels.
pub struct CrossEntropy;

impl Loss for CrossEntropy {
    fn value_and_grad(&self, student: &[f32], _: Option<&[f32]>, labels: &[u32], k: usize) -> LossResult {
        HintonKd { temperature: 1.0, alpha: 0.0 }.value_and_grad(student, None, labels, k)
    }
    fn needs_teacher(&self) -> bool {
        false
    }
}

/// Hinton et al. (2015): `alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y)`.
pub struct HintonKd {
    pub temperature: f64,
    pub alpha: f64,
}

impl Loss for HintonKd {
    fn value_and_grad(&self, student: &[f32], teacher: Option<&[f32]>, labels: &[u32], k: usize) -> LossResult {
        let n = labels.len();
        let (t, alpha) = (self.temperature, self.alpha);
        let soft = alpha > 0.0;
        let mut grad = vec![0f32; n * k];
        let (mut ps, mut pt, mut q) = (vec![0.0; k], vec![0.0; k], vec![0.0; k]);
        let mut total = 0.0;
        for i in 0..n {
            let s = &student[i * k..(i + 1) * k];
            let g = &mut grad[i * k..(i + 1) * k];
            // The hard-label term only where there is a label (the per-row mask of transfer sets);
            // the mean is still over the whole batch.
            let mut row_grad = vec![0.0f64; k];
            if labels[i] != NO_LABEL && alpha < 1.0 {
                let y = labels[i] as usize;
                softmax_t(s, 1.0, &mut q);
                total += (1.0 - alpha) * -q[y].max(1e-300).ln();
                for (j, g) in row_grad.iter_mut().enumerate() {
                    *g = (1.0 - alpha) * (q[j] - (j == y) as u8 as f64);
                }
            }
            if soft {
                let tl = match teacher {
                    Some(tl) => &tl[i * k..(i + 1) * k],
                    None => return Err("the KD loss needs teacher logits".into()),
                };
                softmax_t(s, t, &mut ps);
                softmax_t(tl, t, &mut pt);
                let kl: f64 = pt.iter().zip(&ps).filter(|(p, _)| **p > 0.0).map(|(p, s)| p * (p.ln() - s.max(1e-300).ln())).sum();
                total += alpha * t * t * kl;
                for j in 0..k {
                    row_grad[j] += alpha * t * (ps[j] - pt[j]);
                }
            }
            for j in 0..k {
                g[j] = (row_grad[j] / n as f64) as f32;
            }
        }
        Ok((total / n.max(1) as f64, grad))
    }
    fn needs_teacher(&self) -> bool {
        self.alpha > 0.0
    }
}

/// Cross-entropy against the teacher's top class on every row (pseudo-labels): the control that
/// separates what soft targets add from what the teacher's hard decisions add.
pub struct TeacherHard;

impl Loss for TeacherHard {
    fn value_and_grad(&self, student: &[f32], teacher: Option<&[f32]>, labels: &[u32], k: usize) -> LossResult {
        let pseudo: Vec<u32> = match teacher {
            Some(t) => t.chunks(k).map(|row| crate::train::argmax(row) as u32).collect(),
            None => labels.to_vec(),
        };
        CrossEntropy.value_and_grad(student, None, &pseudo, k)
    }
    fn needs_teacher(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central finite differences of the loss agree with the analytic gradient.
    fn check_gradient(loss: &dyn Loss, teacher: Option<&[f32]>) {
        let student = [0.3f32, -1.2, 2.0, 0.5, 0.1, 0.0, -0.7, 1.4];
        let labels = [2u32, 3];
        let k = 4;
        let (_, grad) = loss.value_and_grad(&student, teacher, &labels, k).unwrap();
        for idx in 0..student.len() {
            let h = 1e-3f32;
            let mut plus = student;
            plus[idx] += h;
            let mut minus = student;
            minus[idx] -= h;
            let numeric = (loss.value_and_grad(&plus, teacher, &labels, k).unwrap().0
                - loss.value_and_grad(&minus, teacher, &labels, k).unwrap().0)
                / (2.0 * h as f64);
            assert!((numeric - grad[idx] as f64).abs() < 1e-4, "index {idx}: numeric {numeric} vs analytic {}", grad[idx]);
        }
    }

    #[test]
    fn cross_entropy_gradient_matches_finite_differences() {
        check_gradient(&CrossEntropy, None);
    }

    #[test]
    fn kd_gradient_matches_finite_differences() {
        let teacher = [1.0f32, 0.0, 3.0, -1.0, 0.2, 0.2, -2.0, 2.5];
        check_gradient(&HintonKd { temperature: 2.0, alpha: 0.5 }, Some(&teacher));
        check_gradient(&HintonKd { temperature: 4.0, alpha: 1.0 }, Some(&teacher));
    }

    #[test]
    fn kd_is_zero_when_student_equals_teacher_and_alpha_is_one() {
        let logits = [1.0f32, 2.0, 3.0];
        let (v, g) = HintonKd { temperature: 3.0, alpha: 1.0 }.value_and_grad(&logits, Some(&logits), &[0], 3).unwrap();
        assert!(v.abs() < 1e-12);
        assert!(g.iter().all(|x| x.abs() < 1e-7));
    }

    #[test]
    fn unlabelled_rows_get_only_the_soft_term_exactly() {
        let student = [0.3f32, -1.2, 2.0, 0.5, 0.1, 0.0];
        let teacher = [1.0f32, 0.0, 3.0, -1.0, 0.2, 0.2];
        let kd = HintonKd { temperature: 2.0, alpha: 0.5 };
        let (v_masked, g_masked) = kd.value_and_grad(&student, Some(&teacher), &[NO_LABEL, 1], 3).unwrap();
        let (v_soft, g_soft) = HintonKd { temperature: 2.0, alpha: 1.0 }.value_and_grad(&student, Some(&teacher), &[NO_LABEL, 1], 3).unwrap();
        // Row 0 has no label: its gradient is exactly half the pure soft gradient (alpha = 0.5).
        for j in 0..3 {
            assert_eq!(g_masked[j], (g_soft[j] as f64 * 0.5) as f32);
        }
        // Any label value on row 0 is ignored when it is NO_LABEL; a real label changes things.
        let (v_labelled, _) = kd.value_and_grad(&student, Some(&teacher), &[0, 1], 3).unwrap();
        assert!(v_labelled > v_masked);
        assert!(v_soft > 0.0);
    }

    #[test]
    fn teacher_hard_uses_the_teachers_top_class() {
        let teacher = [0.0f32, 5.0, 0.0];
        let student = [0.1f32, 0.2, 0.3];
        let a = TeacherHard.value_and_grad(&student, Some(&teacher), &[NO_LABEL], 3);
        let b = CrossEntropy.value_and_grad(&student, None, &[1], 3);
        assert_eq!(a, b);
    }

    #[test]
    fn cross_entropy_of_uniform_logits_is_ln_k() {
        let (v, _) = CrossEntropy.value_and_grad(&[0.0; 10], None, &[3], 10).unwrap();
        assert!((v - 10f64.ln()).abs() < 1e-12);
    }
}
