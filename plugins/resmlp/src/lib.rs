//! # resmlp: an example distill architecture plugin
//!
//! Architecture `resmlp`: a residual MLP described in the host's layer vocabulary, so distill
//! builds and trains it like a built-in model:
//!
//! ```text
//! dense(width) → act → blocks × [ residual( dense(width) → act → dropout → dense(width) ) → act ] → dense(classes)
//! ```
//!
//! Parameters: `width` (hidden units, default 64), `blocks` (residual blocks, default 2, may be
//! 0), `activation` (`relu` or `tanh`, default `relu`), `dropout` (in `[0, 1)`, default 0; no
//! dropout layer is emitted when 0).
//!
//! Not here: weights or any numerics; the host owns the network.

use distill_plugin::{export_plugin, Activation, ArchInput, Layer};

/// `resmlp`: see the crate docs.
pub fn resmlp(input: &ArchInput) -> Result<Vec<Layer>, String> {
    input.check_params(&["width", "blocks", "activation", "dropout"])?;
    let width = input.param_usize("width", 64)?;
    let blocks = input.param_usize("blocks", 2)?;
    let dropout = input.param_f64("dropout", 0.0)?;
    let act = match input.params.get("activation") {
        None => Activation::Relu,
        Some(v) => Activation::parse(v.as_str().ok_or_else(|| format!("`activation` must be a name, got {v}"))?)?,
    };
    if width == 0 {
        return Err("`width` must be at least 1".to_string());
    }
    if !(0.0..1.0).contains(&dropout) {
        return Err(format!("`dropout` must be in [0, 1), got {dropout}"));
    }
    let mut layers = vec![Layer::Dense(width), Layer::Activation(act)];
    for _ in 0..blocks {
        let mut inner = vec![Layer::Dense(width), Layer::Activation(act)];
        if dropout > 0.0 {
            inner.push(Layer::Dropout(dropout));
        }
        inner.push(Layer::Dense(width));
        layers.push(Layer::Residual(inner));
        layers.push(Layer::Activation(act));
    }
    layers.push(Layer::Dense(input.classes));
    Ok(layers)
}

export_plugin! {
    name: "resmlp",
    version: env!("CARGO_PKG_VERSION"),
    losses: [],
    architectures: [("resmlp", resmlp)],
}

#[cfg(test)]
mod tests {
    use super::*;
    use distill_plugin::serde_json::json;
    use distill_plugin::validate_layers;

    #[test]
    fn describes_a_valid_network() {
        let input = ArchInput { inputs: 64, classes: 10, params: json!({"width": 32, "blocks": 3, "dropout": 0.1}) };
        let layers = resmlp(&input).unwrap();
        validate_layers(64, 10, &layers).unwrap();
        assert_eq!(layers.iter().filter(|l| matches!(l, Layer::Residual(_))).count(), 3);
        assert_eq!(layers.last(), Some(&Layer::Dense(10)));
    }

    #[test]
    fn rejects_bad_params() {
        let bad = |params| resmlp(&ArchInput { inputs: 4, classes: 3, params }).unwrap_err();
        assert!(bad(json!({"width": 0})).contains("width"));
        assert!(bad(json!({"depth": 2})).contains("unknown parameter `depth`"));
        assert!(bad(json!({"activation": "gelu"})).contains("unknown activation"));
    }
}
