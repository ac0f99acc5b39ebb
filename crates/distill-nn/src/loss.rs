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
            // The hint is a loss on a hidden layer, applied by the trainer (`hint.rs`).
            for term in terms.values().filter(|t| !matches!(t.kind, LossKind::Hint(_))) {
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
        LossKind::Hint(_) => return Err("a hint is not a loss on the logits".into()),
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
#[path = "loss_tests.rs"]
mod tests;
