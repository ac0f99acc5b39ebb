//! The safe side of a plugin: the inputs and outputs of ordinary Rust functions that
//! [`export_plugin!`](crate::export_plugin) exposes through the C ABI.

use serde_json::{Map, Value};

/// One batch handed to a plugin loss. All buffers are row-major `n × k`.
#[derive(Debug)]
pub struct LossInput<'a> {
    /// Student logits, `n × k`.
    pub student: &'a [f32],
    /// Teacher logits, `n × k`, or `None` when the recipe has no teacher.
    pub teacher: Option<&'a [f32]>,
    /// Class index of each row, each `< k` (checked before your function runs).
    pub labels: &'a [u32],
    /// Rows in the batch (≥ 0; may be 0).
    pub n: usize,
    /// Classes.
    pub k: usize,
    /// The loss's parameters from the recipe, a JSON object (`{}` when there are none).
    pub params: Value,
}

impl<'a> LossInput<'a> {
    /// Student logits of row `i`.
    pub fn student_row(&self, i: usize) -> &'a [f32] {
        &self.student[i * self.k..(i + 1) * self.k]
    }

    /// Teacher logits, or an error saying that this loss needs a teacher.
    pub fn require_teacher(&self) -> Result<&'a [f32], String> {
        self.teacher.ok_or_else(|| "this loss needs teacher logits, but the recipe provides none".to_string())
    }

    /// Number parameter `key`, or `default` when absent. See [`param_f64`].
    pub fn param_f64(&self, key: &str, default: f64) -> Result<f64, String> {
        param_f64(&self.params, key, default)
    }

    /// Errors on parameters not in `allowed` (typos should not be silently ignored).
    pub fn check_params(&self, allowed: &[&str]) -> Result<(), String> {
        check_params(&self.params, allowed)
    }
}

/// What a plugin loss returns.
#[derive(Debug, Clone, PartialEq)]
pub struct LossOutput {
    /// The loss, normally the mean over the rows of the batch. Must be finite.
    pub value: f64,
    /// d(value)/d(student logits), `n × k`, row-major. Every entry must be finite.
    pub grad: Vec<f32>,
}

/// The question an architecture plugin answers: a network from `inputs` features to `classes`
/// logits.
#[derive(Debug)]
pub struct ArchInput {
    /// Number of input features.
    pub inputs: usize,
    /// Number of classes (the network's output width).
    pub classes: usize,
    /// The architecture's parameters from the recipe, a JSON object (`{}` when there are none).
    pub params: Value,
}

impl ArchInput {
    /// Number parameter `key`, or `default` when absent. See [`param_f64`].
    pub fn param_f64(&self, key: &str, default: f64) -> Result<f64, String> {
        param_f64(&self.params, key, default)
    }

    /// Whole-number parameter `key`, or `default` when absent. See [`param_usize`].
    pub fn param_usize(&self, key: &str, default: usize) -> Result<usize, String> {
        param_usize(&self.params, key, default)
    }

    /// Errors on parameters not in `allowed`.
    pub fn check_params(&self, allowed: &[&str]) -> Result<(), String> {
        check_params(&self.params, allowed)
    }
}

fn as_object(params: &Value) -> Result<Option<&Map<String, Value>>, String> {
    match params {
        Value::Null => Ok(None),
        Value::Object(map) => Ok(Some(map)),
        other => Err(format!("parameters must be a JSON object, got {other}")),
    }
}

/// Number parameter `key` of a JSON object, `default` when absent; an error naming the key when
/// it is present but not a number.
pub fn param_f64(params: &Value, key: &str, default: f64) -> Result<f64, String> {
    match as_object(params)?.and_then(|m| m.get(key)) {
        None => Ok(default),
        Some(v) => v.as_f64().ok_or_else(|| format!("parameter `{key}` must be a number, got {v}")),
    }
}

/// Whole-number parameter `key` of a JSON object, `default` when absent; an error naming the key
/// when it is present but not a non-negative integer.
pub fn param_usize(params: &Value, key: &str, default: usize) -> Result<usize, String> {
    match as_object(params)?.and_then(|m| m.get(key)) {
        None => Ok(default),
        Some(v) => v.as_u64().and_then(|u| usize::try_from(u).ok()).ok_or_else(|| format!("parameter `{key}` must be a whole number ≥ 0, got {v}")),
    }
}

/// Errors on keys of a JSON object that are not in `allowed`, listing the allowed ones.
pub fn check_params(params: &Value, allowed: &[&str]) -> Result<(), String> {
    if let Some(map) = as_object(params)? {
        if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(format!("unknown parameter `{unknown}`; expected one of: {}", allowed.join(", ")));
        }
    }
    Ok(())
}

/// `softmax(z / t)` computed in f64 with the max subtracted, the usual building block of KD
/// losses.
pub fn softmax_t(z: &[f32], t: f64) -> Vec<f64> {
    let max = z.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let mut out: Vec<f64> = z.iter().map(|&v| ((v as f64 - max) / t).exp()).collect();
    let sum: f64 = out.iter().sum();
    for o in &mut out {
        *o /= sum;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn params_helpers() {
        let p = json!({"temperature": 4, "blocks": 3});
        assert_eq!(param_f64(&p, "temperature", 1.0).unwrap(), 4.0);
        assert_eq!(param_f64(&p, "alpha", 0.5).unwrap(), 0.5);
        assert_eq!(param_usize(&p, "blocks", 1).unwrap(), 3);
        assert!(param_usize(&json!({"blocks": -1}), "blocks", 1).unwrap_err().contains("`blocks`"));
        assert!(check_params(&p, &["temperature"]).unwrap_err().contains("unknown parameter `blocks`"));
        assert!(check_params(&Value::Null, &[]).is_ok());
        assert!(param_f64(&json!([1]), "x", 0.0).is_err());
    }

    #[test]
    fn softmax_sums_to_one() {
        let p = softmax_t(&[1.0, 2.0, 1000.0], 2.0);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(p[2] > 0.99);
    }
}
