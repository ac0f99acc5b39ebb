//! # cosine-kd: an example distill loss plugin
//!
//! Two losses over a batch of `n` rows and `k` classes, both the mean over rows:
//!
//! - `cosine_kd`: `alpha * (1 - cos(softmax(s/T), softmax(t/T))) + (1 - alpha) * CE(s, y)`.
//!   The soft term compares the *direction* of the two probability vectors, which is bounded
//!   in `[0, 1]` and so needs no `T²` rescaling.
//! - `plugin_hinton_kd`: Hinton et al. (2015),
//!   `alpha * T² * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y)`; the same
//!   numbers as distill's built-in `kd` loss, so the host can check that plugin losses train
//!   exactly like built-in ones.
//!
//! Parameters (both losses): `temperature` (T > 0, default 2) and `alpha` (in `[0, 1]`,
//! default 0.5). Teacher logits are required when `alpha > 0`.
//!
//! Not here: anything about loading or training; this crate only computes numbers.

use distill_plugin::{export_plugin, softmax_t, LossInput, LossOutput};

/// Temperature and weight shared by both losses, validated.
struct Params {
    temperature: f64,
    alpha: f64,
}

fn params(input: &LossInput) -> Result<Params, String> {
    input.check_params(&["temperature", "alpha"])?;
    let temperature = input.param_f64("temperature", 2.0)?;
    let alpha = input.param_f64("alpha", 0.5)?;
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(format!("`temperature` must be > 0, got {temperature}"));
    }
    if !(0.0..=1.0).contains(&alpha) {
        return Err(format!("`alpha` must be in [0, 1], got {alpha}"));
    }
    Ok(Params { temperature, alpha })
}

/// Adds `weight * CE(s, y)` to `row_grad` (as `weight * (softmax(s) - onehot(y))`) and returns
/// the CE term's contribution to the loss.
fn cross_entropy(s: &[f32], y: usize, weight: f64, row_grad: &mut [f64]) -> f64 {
    if weight == 0.0 {
        return 0.0;
    }
    let q = softmax_t(s, 1.0);
    for (j, (g, qj)) in row_grad.iter_mut().zip(&q).enumerate() {
        *g += weight * (qj - if j == y { 1.0 } else { 0.0 });
    }
    weight * -q[y].max(1e-300).ln()
}

/// Runs `row` over every row and averages loss and gradient over the batch.
fn mean_over_rows(input: &LossInput, mut row: impl FnMut(usize, &mut [f64]) -> Result<f64, String>) -> Result<LossOutput, String> {
    let (n, k) = (input.n, input.k);
    let mut grad = vec![0f32; n * k];
    let mut total = 0.0;
    let mut row_grad = vec![0f64; k];
    for i in 0..n {
        row_grad.iter_mut().for_each(|g| *g = 0.0);
        total += row(i, &mut row_grad)?;
        for (g, rg) in grad[i * k..(i + 1) * k].iter_mut().zip(&row_grad) {
            *g = (rg / n as f64) as f32;
        }
    }
    let value = if n == 0 { 0.0 } else { total / n as f64 };
    Ok(LossOutput { value, grad })
}

/// `cosine_kd`: see the crate docs.
pub fn cosine_kd(input: &LossInput) -> Result<LossOutput, String> {
    let Params { temperature: t, alpha } = params(input)?;
    let teacher = if alpha > 0.0 { Some(input.require_teacher()?) } else { None };
    let k = input.k;
    mean_over_rows(input, |i, row_grad| {
        let s = input.student_row(i);
        let mut loss = cross_entropy(s, input.labels[i] as usize, 1.0 - alpha, row_grad);
        if let Some(teacher) = teacher {
            let p = softmax_t(s, t);
            let q = softmax_t(&teacher[i * k..(i + 1) * k], t);
            let norm_p = p.iter().map(|v| v * v).sum::<f64>().sqrt();
            let norm_q = q.iter().map(|v| v * v).sum::<f64>().sqrt();
            let cos = p.iter().zip(&q).map(|(a, b)| a * b).sum::<f64>() / (norm_p * norm_q);
            loss += alpha * (1.0 - cos);
            // g = d(1 - cos)/dp, then through softmax(s/T): dL/ds_j = p_j (g_j - p·g) / T.
            let g: Vec<f64> = p.iter().zip(&q).map(|(pj, qj)| -(qj / (norm_p * norm_q) - cos * pj / (norm_p * norm_p))).collect();
            let pg: f64 = p.iter().zip(&g).map(|(a, b)| a * b).sum();
            for j in 0..k {
                row_grad[j] += alpha * p[j] * (g[j] - pg) / t;
            }
        }
        Ok(loss)
    })
}

/// `plugin_hinton_kd`: see the crate docs. Gradient per row:
/// `alpha * T * (softmax(s/T) - softmax(t/T)) + (1 - alpha) * (softmax(s) - onehot(y))`, over `n`.
pub fn plugin_hinton_kd(input: &LossInput) -> Result<LossOutput, String> {
    let Params { temperature: t, alpha } = params(input)?;
    let teacher = if alpha > 0.0 { Some(input.require_teacher()?) } else { None };
    let k = input.k;
    mean_over_rows(input, |i, row_grad| {
        let s = input.student_row(i);
        let mut loss = cross_entropy(s, input.labels[i] as usize, 1.0 - alpha, row_grad);
        if let Some(teacher) = teacher {
            let ps = softmax_t(s, t);
            let pt = softmax_t(&teacher[i * k..(i + 1) * k], t);
            let kl: f64 = pt.iter().zip(&ps).filter(|(p, _)| **p > 0.0).map(|(p, q)| p * (p.ln() - q.max(1e-300).ln())).sum();
            loss += alpha * t * t * kl;
            for j in 0..k {
                row_grad[j] += alpha * t * (ps[j] - pt[j]);
            }
        }
        Ok(loss)
    })
}

export_plugin! {
    name: "cosine-kd",
    version: env!("CARGO_PKG_VERSION"),
    losses: [("cosine_kd", cosine_kd), ("plugin_hinton_kd", plugin_hinton_kd)],
    architectures: [],
}

#[cfg(test)]
mod tests {
    use super::*;
    use distill_plugin::serde_json::{json, Value};

    const STUDENT: [f32; 8] = [0.3, -1.2, 2.0, 0.5, 0.1, 0.0, -0.7, 1.4];
    const TEACHER: [f32; 8] = [1.0, 0.2, -0.5, 3.0, -1.0, 2.5, 0.0, 0.3];
    const LABELS: [u32; 2] = [2, 3];

    fn call(f: distill_plugin::LossImpl, student: &[f32], params: &Value) -> LossOutput {
        let input = LossInput { student, teacher: Some(&TEACHER), labels: &LABELS, n: 2, k: 4, params: params.clone() };
        f(&input).unwrap()
    }

    /// Central finite differences agree with the analytic gradient.
    fn check_gradient(f: distill_plugin::LossImpl, params: Value) {
        let out = call(f, &STUDENT, &params);
        assert!(out.value.is_finite());
        assert_eq!(out.grad.len(), STUDENT.len());
        for idx in 0..STUDENT.len() {
            let h = 1e-3f32;
            let mut plus = STUDENT;
            plus[idx] += h;
            let mut minus = STUDENT;
            minus[idx] -= h;
            let numeric = (call(f, &plus, &params).value - call(f, &minus, &params).value) / (2.0 * h as f64);
            let analytic = out.grad[idx] as f64;
            assert!((numeric - analytic).abs() < 1e-4, "{params} index {idx}: numeric {numeric} vs analytic {analytic}");
        }
    }

    #[test]
    fn cosine_kd_gradient_matches_finite_differences() {
        check_gradient(cosine_kd, json!({"temperature": 2.0, "alpha": 0.5}));
        check_gradient(cosine_kd, json!({"temperature": 4.0, "alpha": 1.0}));
        check_gradient(cosine_kd, json!({"temperature": 1.0, "alpha": 0.0}));
    }

    #[test]
    fn hinton_kd_gradient_matches_finite_differences() {
        check_gradient(plugin_hinton_kd, json!({"temperature": 2.0, "alpha": 0.5}));
        check_gradient(plugin_hinton_kd, json!({"temperature": 4.0, "alpha": 1.0}));
        check_gradient(plugin_hinton_kd, json!({}));
    }

    #[test]
    fn cosine_kd_is_zero_when_student_equals_teacher() {
        let input = LossInput { student: &TEACHER, teacher: Some(&TEACHER), labels: &LABELS, n: 2, k: 4, params: json!({"alpha": 1.0}) };
        let out = cosine_kd(&input).unwrap();
        assert!(out.value.abs() < 1e-12);
        assert!(out.grad.iter().all(|g| g.abs() < 1e-6));
    }

    #[test]
    fn bad_params_and_missing_teacher_are_errors() {
        let mut input = LossInput { student: &STUDENT, teacher: None, labels: &LABELS, n: 2, k: 4, params: json!({}) };
        assert!(cosine_kd(&input).unwrap_err().contains("teacher"));
        input.params = json!({"alpha": 0.0});
        assert!(cosine_kd(&input).is_ok(), "alpha = 0 is plain cross-entropy and needs no teacher");
        input.params = json!({"temprature": 2.0});
        assert!(cosine_kd(&input).unwrap_err().contains("unknown parameter `temprature`"));
        input.params = json!({"temperature": 0.0, "alpha": 0.0});
        assert!(plugin_hinton_kd(&input).unwrap_err().contains("temperature"));
    }
}
