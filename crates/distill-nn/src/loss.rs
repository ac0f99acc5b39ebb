//! Losses as plain functions of logits: each returns the mean loss over the batch and its
//! gradient with respect to the student logits. Training joins the gradient to dfdx's tape.

use distill_spec::{DkdLoss, LossKind, LossSpec, DEFAULT_DKD_ALPHA, DEFAULT_DKD_BETA};

use crate::soft_targets::softmax_t;
pub use crate::soft_targets::SoftBatch;

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
    /// Temperatures at which the loss reads the teacher's soft targets `softmax(t / T)`; training
    /// computes them once for every row instead of per batch and epoch.
    fn soft_target_temperatures(&self) -> Vec<f64> {
        Vec::new()
    }
    /// [`Loss::value_and_grad`] with the batch's soft targets precomputed (same values, bit for
    /// bit); losses that read none ignore them.
    fn value_and_grad_soft(&self, student: &[f32], teacher: Option<&[f32]>, _soft: &SoftBatch, labels: &[u32], k: usize) -> LossResult {
        self.value_and_grad(student, teacher, labels, k)
    }
}

/// The teacher's soft targets of row `i`: precomputed, or computed into `scratch`.
fn soft_row<'a>(pre: Option<&'a [f64]>, teacher: &[f32], i: usize, k: usize, t: f64, scratch: &'a mut [f64]) -> &'a [f64] {
    match pre {
        Some(p) => &p[i * k..(i + 1) * k],
        None => {
            softmax_t(&teacher[i * k..(i + 1) * k], t, scratch);
            scratch
        }
    }
}

/// Checks that precomputed soft targets cover the batch.
fn check_soft(pre: Option<&[f64]>, n: usize, k: usize) -> Result<(), String> {
    match pre {
        Some(p) if p.len() != n * k => Err(format!("{} soft targets for {n} rows × {k} classes", p.len())),
        _ => Ok(()),
    }
}

/// Checks buffer sizes against `labels.len() × k`, so a bad caller gets an error, not a panic.
fn check_sizes(student: &[f32], teacher: Option<&[f32]>, labels: &[u32], k: usize) -> Result<(), String> {
    let n = labels.len();
    if student.len() != n * k {
        return Err(format!("{} student logits for {n} rows × {k} classes", student.len()));
    }
    if let Some(t) = teacher {
        if t.len() != n * k {
            return Err(format!("{} teacher logits for {n} rows × {k} classes", t.len()));
        }
    }
    if let Some(&y) = labels.iter().find(|&&y| y != NO_LABEL && y as usize >= k) {
        return Err(format!("label {y} is out of range for {k} classes"));
    }
    Ok(())
}

fn need_teacher<'a>(teacher: Option<&'a [f32]>, name: &str) -> Result<&'a [f32], String> {
    teacher.ok_or_else(|| format!("the {name} loss needs teacher logits"))
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

/// Cross-entropy with label smoothing ε: the target is `(1 - ε) * onehot(y) + ε / k`. Rows
/// without a label add nothing (the mean is still over the whole batch). ε = 0 is [`CrossEntropy`].
pub struct SmoothedCrossEntropy {
    pub label_smoothing: f64,
}

impl Loss for SmoothedCrossEntropy {
    fn value_and_grad(&self, student: &[f32], _: Option<&[f32]>, labels: &[u32], k: usize) -> LossResult {
        check_sizes(student, None, labels, k)?;
        let n = labels.len();
        let eps = self.label_smoothing;
        let mut grad = vec![0f32; n * k];
        let mut q = vec![0.0; k];
        let mut total = 0.0;
        for (i, &y) in labels.iter().enumerate() {
            if y == NO_LABEL {
                continue;
            }
            let s = &student[i * k..(i + 1) * k];
            softmax_t(s, 1.0, &mut q);
            for j in 0..k {
                let target = (1.0 - eps) * (j == y as usize) as u8 as f64 + eps / k as f64;
                if target > 0.0 {
                    total -= target * q[j].max(1e-300).ln();
                }
                grad[i * k + j] = ((q[j] - target) / n as f64) as f32;
            }
        }
        Ok((total / n.max(1) as f64, grad))
    }
    fn needs_teacher(&self) -> bool {
        false
    }
}

/// Cross-entropy against the teacher's soft targets, `T^2 * CE(softmax(t/T), softmax(s/T))`,
/// on every row. It differs from Hinton's soft term by the teacher's entropy (a constant in the
/// student), so the gradient `T * (softmax(s/T) - softmax(t/T))` is the same; `T^2` keeps the
/// gradient's scale independent of `T` (Hinton et al., 2015).
pub struct SoftTargetCrossEntropy {
    pub temperature: f64,
}

impl SoftTargetCrossEntropy {
    fn compute(&self, student: &[f32], teacher: Option<&[f32]>, pre: Option<&[f64]>, labels: &[u32], k: usize) -> LossResult {
        let teacher = need_teacher(teacher, "soft_ce")?;
        check_sizes(student, Some(teacher), labels, k)?;
        let (n, t) = (labels.len(), self.temperature);
        check_soft(pre, n, k)?;
        let mut grad = vec![0f32; n * k];
        let (mut ps, mut scratch) = (vec![0.0; k], vec![0.0; k]);
        let mut total = 0.0;
        for i in 0..n {
            softmax_t(&student[i * k..(i + 1) * k], t, &mut ps);
            let pt = soft_row(pre, teacher, i, k, t, &mut scratch);
            total -= t * t * pt.iter().zip(&ps).filter(|(p, _)| **p > 0.0).map(|(p, s)| p * s.max(1e-300).ln()).sum::<f64>();
            for j in 0..k {
                grad[i * k + j] = (t * (ps[j] - pt[j]) / n as f64) as f32;
            }
        }
        Ok((total / n.max(1) as f64, grad))
    }
}

impl Loss for SoftTargetCrossEntropy {
    fn value_and_grad(&self, student: &[f32], teacher: Option<&[f32]>, labels: &[u32], k: usize) -> LossResult {
        self.compute(student, teacher, None, labels, k)
    }
    fn needs_teacher(&self) -> bool {
        true
    }
    fn soft_target_temperatures(&self) -> Vec<f64> {
        vec![self.temperature]
    }
    fn value_and_grad_soft(&self, student: &[f32], teacher: Option<&[f32]>, soft: &SoftBatch, labels: &[u32], k: usize) -> LossResult {
        self.compute(student, teacher, soft.at(self.temperature), labels, k)
    }
}

/// Mean squared error between student and teacher logits (Ba & Caruana, 2014): per row the mean
/// over classes of `(s - t)^2`, then the mean over rows.
pub struct MseLogits;

impl Loss for MseLogits {
    fn value_and_grad(&self, student: &[f32], teacher: Option<&[f32]>, labels: &[u32], k: usize) -> LossResult {
        let teacher = need_teacher(teacher, "mse_logits")?;
        check_sizes(student, Some(teacher), labels, k)?;
        let n = labels.len();
        let scale = (n * k).max(1) as f64;
        let mut total = 0.0;
        let grad = student
            .iter()
            .zip(teacher)
            .map(|(&s, &t)| {
                let d = s as f64 - t as f64;
                total += d * d;
                (2.0 * d / scale) as f32
            })
            .collect();
        Ok((total / scale, grad))
    }
    fn needs_teacher(&self) -> bool {
        true
    }
}

/// Decoupled knowledge distillation (Zhao et al., CVPR 2022), without its CE term:
/// `T^2 * (alpha * TCKD + beta * NCKD)` per row, averaged over the batch. With `p = softmax(z/T)`
/// and target class `y`: TCKD = KL([p_t(y), 1 - p_t(y)] || [p_s(y), 1 - p_s(y)]); NCKD = KL of the
/// teacher's and student's distributions renormalised over the classes other than `y`. The target
/// is the label, or on rows without one ([`NO_LABEL`]) the teacher's top class: the decomposition
/// needs a target, and no hard-label term is added either way.
pub struct Dkd {
    pub temperature: f64,
    pub alpha: f64,
    pub beta: f64,
}

impl Loss for Dkd {
    fn value_and_grad(&self, student: &[f32], teacher: Option<&[f32]>, labels: &[u32], k: usize) -> LossResult {
        let teacher = need_teacher(teacher, "dkd")?;
        check_sizes(student, Some(teacher), labels, k)?;
        let (n, t) = (labels.len(), self.temperature);
        let mut grad = vec![0f32; n * k];
        let (mut ps, mut pt) = (vec![0.0; k], vec![0.0; k]);
        let (mut qs, mut qt) = (vec![0.0; k], vec![0.0; k]);
        let mut total = 0.0;
        for i in 0..n {
            let s = &student[i * k..(i + 1) * k];
            let tl = &teacher[i * k..(i + 1) * k];
            let y = if labels[i] == NO_LABEL { crate::train::argmax(tl) } else { labels[i] as usize };
            softmax_t(s, t, &mut ps);
            softmax_t(tl, t, &mut pt);
            // Non-target distributions computed directly (softmax over j != y), not as p / (1 - p_y),
            // which loses everything when p_y rounds to 1.
            non_target_softmax(s, y, t, &mut qs);
            non_target_softmax(tl, y, t, &mut qt);
            let (bs, bt) = (ps[y], pt[y]);
            // 1 - p_y as the sum of the others, accurate when p_y is close to 1.
            let (rs, rt) = (sum_except(&ps, y), sum_except(&pt, y));
            let kl2 = |p: f64, q: f64| if p > 0.0 { p * (p.ln() - q.max(1e-300).ln()) } else { 0.0 };
            let tckd = kl2(bt, bs) + kl2(rt, rs);
            let nckd: f64 = (0..k).filter(|&j| j != y).map(|j| kl2(qt[j], qs[j])).sum();
            total += t * t * (self.alpha * tckd + self.beta * nckd);
            // d/du (u = s/T): TCKD gives p_y - b_t at y and (b_t - p_y) * q_j elsewhere; NCKD gives
            // q_s - q_t off the target and 0 at it. The chain rule through u = s/T adds 1/T.
            for j in 0..k {
                let g = if j == y { self.alpha * (bs - bt) } else { self.alpha * (bt - bs) * qs[j] + self.beta * (qs[j] - qt[j]) };
                grad[i * k + j] = (t * g / n as f64) as f32;
            }
        }
        Ok((total / n.max(1) as f64, grad))
    }
    fn needs_teacher(&self) -> bool {
        true
    }
}

/// Softmax of `z / t` over the classes other than `y`; `out[y]` is 0.
fn non_target_softmax(z: &[f32], y: usize, t: f64, out: &mut [f64]) {
    let max = z.iter().enumerate().filter(|(j, _)| *j != y).fold(f64::NEG_INFINITY, |m, (_, &v)| m.max(v as f64));
    let mut sum = 0.0;
    for (j, (o, &v)) in out.iter_mut().zip(z).enumerate() {
        *o = if j == y { 0.0 } else { ((v as f64 - max) / t).exp() };
        sum += *o;
    }
    if sum > 0.0 {
        for o in out.iter_mut() {
            *o /= sum;
        }
    }
}

fn sum_except(p: &[f64], y: usize) -> f64 {
    p.iter().enumerate().filter(|(j, _)| *j != y).map(|(_, v)| v).sum()
}

/// A weighted sum of losses, `Σ w_i * L_i`, gradients summed the same way. Terms are evaluated in
/// order, so the sum is deterministic.
pub struct WeightedSum {
    pub terms: Vec<(f64, Box<dyn Loss>)>,
}

impl WeightedSum {
    /// Σ w_i · term_i, each term evaluated by `eval`.
    fn combine(&self, len: usize, mut eval: impl FnMut(&dyn Loss) -> LossResult) -> LossResult {
        let mut total = 0.0;
        let mut grad = vec![0f64; len];
        for (w, loss) in &self.terms {
            if *w == 0.0 {
                continue;
            }
            let (v, g) = eval(loss.as_ref())?;
            if g.len() != grad.len() {
                return Err(format!("a loss term returned {} gradient values for {} logits", g.len(), grad.len()));
            }
            total += w * v;
            for (acc, gi) in grad.iter_mut().zip(g) {
                *acc += w * gi as f64;
            }
        }
        Ok((total, grad.into_iter().map(|g| g as f32).collect()))
    }
}

impl Loss for WeightedSum {
    fn value_and_grad(&self, student: &[f32], teacher: Option<&[f32]>, labels: &[u32], k: usize) -> LossResult {
        self.combine(student.len(), |loss| loss.value_and_grad(student, teacher, labels, k))
    }
    fn needs_teacher(&self) -> bool {
        self.terms.iter().any(|(w, l)| *w != 0.0 && l.needs_teacher())
    }
    fn soft_target_temperatures(&self) -> Vec<f64> {
        self.terms.iter().filter(|(w, _)| *w != 0.0).flat_map(|(_, l)| l.soft_target_temperatures()).collect()
    }
    fn value_and_grad_soft(&self, student: &[f32], teacher: Option<&[f32]>, soft: &SoftBatch, labels: &[u32], k: usize) -> LossResult {
        self.combine(student.len(), |loss| loss.value_and_grad_soft(student, teacher, soft, labels, k))
    }
}

/// Hinton et al. (2015): `alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y)`.
pub struct HintonKd {
    pub temperature: f64,
    pub alpha: f64,
}

impl HintonKd {
    fn compute(&self, student: &[f32], teacher: Option<&[f32]>, pre: Option<&[f64]>, labels: &[u32], k: usize) -> LossResult {
        check_sizes(student, teacher, labels, k)?;
        let n = labels.len();
        check_soft(pre, n, k)?;
        let (t, alpha) = (self.temperature, self.alpha);
        let soft = alpha > 0.0;
        let mut grad = vec![0f32; n * k];
        let (mut ps, mut scratch, mut q) = (vec![0.0; k], vec![0.0; k], vec![0.0; k]);
        let mut row_grad = vec![0.0f64; k];
        let mut total = 0.0;
        for i in 0..n {
            let s = &student[i * k..(i + 1) * k];
            let g = &mut grad[i * k..(i + 1) * k];
            // The hard-label term only where there is a label (the per-row mask of transfer sets);
            // the mean is still over the whole batch.
            row_grad.fill(0.0);
            if labels[i] != NO_LABEL && alpha < 1.0 {
                let y = labels[i] as usize;
                softmax_t(s, 1.0, &mut q);
                total += (1.0 - alpha) * -q[y].max(1e-300).ln();
                for (j, g) in row_grad.iter_mut().enumerate() {
                    *g = (1.0 - alpha) * (q[j] - (j == y) as u8 as f64);
                }
            }
            if soft {
                let Some(tl) = teacher else { return Err("the KD loss needs teacher logits".into()) };
                softmax_t(s, t, &mut ps);
                let pt = soft_row(pre, tl, i, k, t, &mut scratch);
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
}

impl Loss for HintonKd {
    fn value_and_grad(&self, student: &[f32], teacher: Option<&[f32]>, labels: &[u32], k: usize) -> LossResult {
        self.compute(student, teacher, None, labels, k)
    }
    fn needs_teacher(&self) -> bool {
        self.alpha > 0.0
    }
    fn soft_target_temperatures(&self) -> Vec<f64> {
        if self.alpha > 0.0 {
            vec![self.temperature]
        } else {
            Vec::new()
        }
    }
    fn value_and_grad_soft(&self, student: &[f32], teacher: Option<&[f32]>, soft: &SoftBatch, labels: &[u32], k: usize) -> LossResult {
        self.compute(student, teacher, soft.at(self.temperature), labels, k)
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

/// Supplies a plugin loss by name with its JSON parameters (for [`build_loss_with`]).
pub type PluginLossFactory<'a> = dyn FnMut(&str, serde_json::Value) -> Result<Box<dyn Loss>, String> + 'a;

/// The loss a recipe's `loss:` describes, flat or as `terms`, when every kind in it is built in;
/// `None` when a plugin loss is involved (use [`build_loss_with`]).
pub fn build_loss(spec: &LossSpec) -> Option<Box<dyn Loss>> {
    build_loss_with(spec, &mut |_, _| Err(String::new())).ok()
}

/// The loss a recipe's `loss:` describes; `plugin(name, params)` supplies plugin losses, whether
/// the loss itself (params: [`distill_spec::PluginLoss::plugin_params`]) or a term (params:
/// [`distill_spec::PluginTerm::plugin_params`]; the host applies the term's weight). Errors come from `plugin`.
pub fn build_loss_with(spec: &LossSpec, plugin: &mut PluginLossFactory<'_>) -> Result<Box<dyn Loss>, String> {
    Ok(match spec {
        LossSpec::Kd(l) => Box::new(HintonKd { temperature: l.temperature, alpha: l.alpha }),
        LossSpec::Ce(l) => cross_entropy(l.label_smoothing),
        LossSpec::TeacherHard => Box::new(TeacherHard),
        LossSpec::SoftCe(l) => Box::new(SoftTargetCrossEntropy { temperature: l.temperature }),
        LossSpec::MseLogits => Box::new(MseLogits),
        LossSpec::Dkd(l) => Box::new(dkd(l)),
        LossSpec::Plugin(p) => plugin(&p.name, p.plugin_params())?,
        LossSpec::Terms(terms) => {
            let mut built = Vec::with_capacity(terms.len());
            for term in terms.values() {
                built.push((term.weight, build_term(&term.kind, plugin)?));
            }
            Box::new(WeightedSum { terms: built })
        }
    })
}

/// One term of a weighted sum (its weight is applied by [`WeightedSum`]).
fn build_term(kind: &LossKind, plugin: &mut PluginLossFactory<'_>) -> Result<Box<dyn Loss>, String> {
    Ok(match kind {
        // As a term, `kd` is the soft part alone: the CE part is a term of its own.
        LossKind::Kd(t) => Box::new(HintonKd { temperature: t.temperature, alpha: 1.0 }),
        LossKind::Ce(l) => cross_entropy(l.label_smoothing),
        LossKind::TeacherHard => Box::new(TeacherHard),
        LossKind::SoftCe(l) => Box::new(SoftTargetCrossEntropy { temperature: l.temperature }),
        LossKind::MseLogits => Box::new(MseLogits),
        LossKind::Dkd(l) => Box::new(dkd(l)),
        LossKind::Plugin(p) => plugin(&p.name, p.plugin_params())?,
    })
}

fn cross_entropy(label_smoothing: Option<f64>) -> Box<dyn Loss> {
    match label_smoothing {
        // Without smoothing, the exact loss the pipeline always used (bitwise the same results).
        Some(e) if e > 0.0 => Box::new(SmoothedCrossEntropy { label_smoothing: e }),
        _ => Box::new(CrossEntropy),
    }
}

fn dkd(spec: &DkdLoss) -> Dkd {
    Dkd { temperature: spec.temperature, alpha: spec.dkd_alpha.unwrap_or(DEFAULT_DKD_ALPHA), beta: spec.dkd_beta.unwrap_or(DEFAULT_DKD_BETA) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central finite differences of the loss agree with the analytic gradient.
    fn check_gradient(loss: &dyn Loss, teacher: Option<&[f32]>) {
        check_gradient_labels(loss, teacher, &[2, 3]);
        check_gradient_labels(loss, teacher, &[NO_LABEL, 1]);
    }

    fn check_gradient_labels(loss: &dyn Loss, teacher: Option<&[f32]>, labels: &[u32]) {
        let student = [0.3f32, -1.2, 2.0, 0.5, 0.1, 0.0, -0.7, 1.4];
        let labels = [labels[0], labels[1]];
        let k = 4;
        let (_, grad) = loss.value_and_grad(&student, teacher, &labels, k).unwrap();
        for idx in 0..student.len() {
            let h = 1e-3f32;
            let mut plus = student;
            plus[idx] += h;
            let mut minus = student;
            minus[idx] -= h;
            let numeric =
                (loss.value_and_grad(&plus, teacher, &labels, k).unwrap().0 - loss.value_and_grad(&minus, teacher, &labels, k).unwrap().0) / (2.0 * h as f64);
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

    const TEACHER: [f32; 8] = [1.0, 0.0, 3.0, -1.0, 0.2, 0.2, -2.0, 2.5];

    #[test]
    fn label_smoothing_gradient_and_limits() {
        check_gradient(&SmoothedCrossEntropy { label_smoothing: 0.1 }, None);
        let s = [0.3f32, -1.2, 2.0, 0.5, 0.1, 0.0, -0.7, 1.4];
        let (a, ga) = SmoothedCrossEntropy { label_smoothing: 0.0 }.value_and_grad(&s, None, &[2, NO_LABEL], 4).unwrap();
        let (b, gb) = CrossEntropy.value_and_grad(&s, None, &[2, NO_LABEL], 4).unwrap();
        assert!((a - b).abs() < 1e-12);
        for (x, y) in ga.iter().zip(&gb) {
            assert!((x - y).abs() < 1e-7);
        }
        // The unlabelled row gets no gradient at all.
        assert!(ga[4..].iter().all(|g| *g == 0.0));
        let (_, g) = SmoothedCrossEntropy { label_smoothing: 0.3 }.value_and_grad(&s, None, &[NO_LABEL, NO_LABEL], 4).unwrap();
        assert!(g.iter().all(|g| *g == 0.0));
    }

    #[test]
    fn soft_ce_matches_kd_soft_term_up_to_the_teacher_entropy() {
        check_gradient(&SoftTargetCrossEntropy { temperature: 3.0 }, Some(&TEACHER));
        let s = [0.3f32, -1.2, 2.0, 0.5, 0.1, 0.0, -0.7, 1.4];
        let t = 3.0;
        let (v_ce, g_ce) = SoftTargetCrossEntropy { temperature: t }.value_and_grad(&s, Some(&TEACHER), &[NO_LABEL, 0], 4).unwrap();
        let (v_kd, g_kd) = HintonKd { temperature: t, alpha: 1.0 }.value_and_grad(&s, Some(&TEACHER), &[NO_LABEL, 0], 4).unwrap();
        for (a, b) in g_ce.iter().zip(&g_kd) {
            assert!((a - b).abs() < 1e-7);
        }
        let mut entropy = 0.0;
        let mut p = vec![0.0; 4];
        for row in TEACHER.chunks(4) {
            softmax_t(row, t, &mut p);
            entropy -= p.iter().map(|p| p * p.ln()).sum::<f64>();
        }
        assert!((v_ce - v_kd - t * t * entropy / 2.0).abs() < 1e-9);
    }

    #[test]
    fn mse_logits_gradient_and_value() {
        check_gradient(&MseLogits, Some(&TEACHER));
        let (v, _) = MseLogits.value_and_grad(&[1.0, 2.0], Some(&[0.0, 0.0]), &[NO_LABEL], 2).unwrap();
        assert!((v - 2.5).abs() < 1e-12);
    }

    #[test]
    fn dkd_gradient_matches_finite_differences() {
        check_gradient(&Dkd { temperature: 4.0, alpha: 1.0, beta: 8.0 }, Some(&TEACHER));
        check_gradient(&Dkd { temperature: 1.0, alpha: 0.5, beta: 2.0 }, Some(&TEACHER));
    }

    #[test]
    fn dkd_decomposes_kd_as_in_the_paper() {
        // KD = TCKD + (1 - p_t(y)) * NCKD (Zhao et al., eq. 5), per row.
        let s = [0.3f32, -1.2, 2.0, 0.5];
        let t_logits = [1.0f32, 0.0, 3.0, -1.0];
        for (label, temp) in [(2u32, 1.0), (0, 2.0), (NO_LABEL, 4.0)] {
            let y = if label == NO_LABEL { 2 } else { label as usize };
            let (tckd, _) = Dkd { temperature: temp, alpha: 1.0, beta: 0.0 }.value_and_grad(&s, Some(&t_logits), &[label], 4).unwrap();
            let (nckd, _) = Dkd { temperature: temp, alpha: 0.0, beta: 1.0 }.value_and_grad(&s, Some(&t_logits), &[label], 4).unwrap();
            let (kd, _) = HintonKd { temperature: temp, alpha: 1.0 }.value_and_grad(&s, Some(&t_logits), &[label], 4).unwrap();
            let mut pt = vec![0.0; 4];
            softmax_t(&t_logits, temp, &mut pt);
            assert!((kd - (tckd + (1.0 - pt[y]) * nckd)).abs() < 1e-9, "label {label}: {kd} vs {tckd} + ... {nckd}");
        }
    }

    #[test]
    fn dkd_is_finite_on_saturated_logits() {
        let s = [0.0f32, 0.0, 200.0];
        let t = [0.0f32, 1.0, 300.0];
        let (v, g) = Dkd { temperature: 1.0, alpha: 1.0, beta: 8.0 }.value_and_grad(&s, Some(&t), &[2], 3).unwrap();
        assert!(v.is_finite() && g.iter().all(|g| g.is_finite()), "{v} {g:?}");
        // The non-target part still sees the non-target classes, though p_y rounds to 1.
        assert!(g[1] < 0.0);
    }

    #[test]
    fn precomputed_soft_targets_give_bitwise_the_same_loss() {
        let student = [0.3f32, -1.2, 2.0, 0.5, 0.1, 0.0, -0.7, 1.4, 0.9, -0.3, 0.2, 0.0];
        let teacher = [1.0f32, 0.2, -0.5, 2.0, 0.0, 3.0, 0.1, -1.0, 0.4, 0.4, 0.4, 0.5];
        let labels = [2, NO_LABEL, 0];
        let terms: Vec<(f64, Box<dyn Loss>)> = vec![
            (0.7, Box::new(HintonKd { temperature: 4.0, alpha: 1.0 })),
            (0.3, Box::new(SoftTargetCrossEntropy { temperature: 2.0 })),
            (1.0, Box::new(CrossEntropy)),
        ];
        let losses: Vec<Box<dyn Loss>> =
            vec![Box::new(HintonKd { temperature: 3.0, alpha: 0.5 }), Box::new(SoftTargetCrossEntropy { temperature: 2.5 }), Box::new(WeightedSum { terms })];
        for loss in &losses {
            let temperatures = loss.soft_target_temperatures();
            assert!(!temperatures.is_empty());
            // Precomputed over a larger set (a spare row first), gathered for the batch's rows.
            let all: Vec<f32> = [0.0f32; 4].iter().chain(&teacher).copied().collect();
            let soft = crate::soft_targets::SoftTargets::new(&all, 4, &temperatures).gather(&[1, 2, 3]);
            let plain = loss.value_and_grad(&student, Some(&teacher), &labels, 4).unwrap();
            let fast = loss.value_and_grad_soft(&student, Some(&teacher), &soft, &labels, 4).unwrap();
            assert_eq!(plain.0.to_bits(), fast.0.to_bits());
            assert_eq!(plain.1, fast.1);
            // Soft targets for the wrong number of rows are an error, not a panic.
            let short = crate::soft_targets::SoftTargets::new(&all, 4, &temperatures).gather(&[1]);
            assert!(loss.value_and_grad_soft(&student, Some(&teacher), &short, &labels, 4).is_err());
        }
        assert!(CrossEntropy.soft_target_temperatures().is_empty());
        assert!(HintonKd { temperature: 2.0, alpha: 0.0 }.soft_target_temperatures().is_empty());
    }

    #[test]
    fn weighted_sum_adds_values_and_gradients() {
        let sum = WeightedSum {
            terms: vec![(0.7, Box::new(HintonKd { temperature: 4.0, alpha: 1.0 })), (0.3, Box::new(SmoothedCrossEntropy { label_smoothing: 0.1 }))],
        };
        check_gradient(&sum, Some(&TEACHER));
        assert!(sum.needs_teacher());
        let s = [0.3f32, -1.2, 2.0, 0.5, 0.1, 0.0, -0.7, 1.4];
        let (v, _) = sum.value_and_grad(&s, Some(&TEACHER), &[1, NO_LABEL], 4).unwrap();
        let (a, _) = HintonKd { temperature: 4.0, alpha: 1.0 }.value_and_grad(&s, Some(&TEACHER), &[1, NO_LABEL], 4).unwrap();
        let (b, _) = SmoothedCrossEntropy { label_smoothing: 0.1 }.value_and_grad(&s, Some(&TEACHER), &[1, NO_LABEL], 4).unwrap();
        assert!((v - (0.7 * a + 0.3 * b)).abs() < 1e-12);
        let no_teacher = WeightedSum { terms: vec![(1.0, Box::new(CrossEntropy)), (0.0, Box::new(MseLogits))] };
        assert!(!no_teacher.needs_teacher());
    }

    #[test]
    fn bad_buffers_are_errors_not_panics() {
        assert!(CrossEntropy.value_and_grad(&[0.0; 3], None, &[5], 3).is_err());
        assert!(HintonKd { temperature: 2.0, alpha: 0.5 }.value_and_grad(&[0.0; 3], Some(&[0.0; 2]), &[0], 3).is_err());
        assert!(Dkd { temperature: 2.0, alpha: 1.0, beta: 1.0 }.value_and_grad(&[0.0; 3], None, &[0], 3).is_err());
        assert!(MseLogits.value_and_grad(&[0.0; 4], Some(&[0.0; 4]), &[0], 3).is_err());
    }

    #[test]
    fn recipes_build_the_right_losses() {
        let spec = |text: &str| -> LossSpec { serde_yaml::from_str(text).unwrap() };
        let s = [0.3f32, -1.2, 2.0, 0.5, 0.1, 0.0, -0.7, 1.4];
        let labels = [1u32, NO_LABEL];
        let eval = |l: &dyn Loss| l.value_and_grad(&s, Some(&TEACHER), &labels, 4).unwrap();
        let flat = build_loss(&spec("{kind: kd, temperature: 4, alpha: 0.9}")).unwrap();
        assert_eq!(eval(flat.as_ref()), eval(&HintonKd { temperature: 4.0, alpha: 0.9 }));
        assert_eq!(eval(build_loss(&spec("{kind: ce}")).unwrap().as_ref()), eval(&CrossEntropy));
        assert_eq!(eval(build_loss(&spec("{kind: ce, label_smoothing: 0.2}")).unwrap().as_ref()), eval(&SmoothedCrossEntropy { label_smoothing: 0.2 }));
        assert_eq!(eval(build_loss(&spec("{kind: dkd, temperature: 3}")).unwrap().as_ref()), eval(&Dkd { temperature: 3.0, alpha: 1.0, beta: 8.0 }));
        assert_eq!(eval(build_loss(&spec("{kind: soft_ce, temperature: 3}")).unwrap().as_ref()), eval(&SoftTargetCrossEntropy { temperature: 3.0 }));
        assert_eq!(eval(build_loss(&spec("{kind: mse_logits}")).unwrap().as_ref()), eval(&MseLogits));
        assert_eq!(eval(build_loss(&spec("{kind: teacher_hard}")).unwrap().as_ref()), eval(&TeacherHard));
        let terms = build_loss(&spec("{terms: {kd: {weight: 0.7, temperature: 4}, ce: {weight: 0.3}}}")).unwrap();
        let by_hand = WeightedSum { terms: vec![(0.3, Box::new(CrossEntropy)), (0.7, Box::new(HintonKd { temperature: 4.0, alpha: 1.0 }))] };
        assert_eq!(eval(terms.as_ref()), eval(&by_hand));
        assert!(build_loss(&spec("{kind: cosine_kd}")).is_none());
        assert!(build_loss(&spec("{terms: {ce: {weight: 1}, cosine_kd: {weight: 1}}}")).is_none());
        // A plugin term gets its parameters with `alpha: 1`; the host applies the weight.
        let mut seen = Vec::new();
        let built = build_loss_with(&spec("{terms: {ce: {weight: 0.5}, my_kd: {weight: 2, temperature: 3, params: {p: 1}}}}"), &mut |name, params| {
            seen.push((name.to_string(), params));
            Ok(Box::new(MseLogits) as Box<dyn Loss>)
        })
        .unwrap();
        assert_eq!(seen, [("my_kd".to_string(), serde_json::json!({"p": 1, "temperature": 3.0, "alpha": 1.0}))]);
        let expected = WeightedSum { terms: vec![(0.5, Box::new(CrossEntropy)), (2.0, Box::new(MseLogits))] };
        assert_eq!(eval(built.as_ref()), eval(&expected));
    }
}
