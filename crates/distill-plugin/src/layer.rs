//! The host's layer vocabulary: what an architecture plugin may ask the host to build.
//!
//! The host builds and differentiates the network itself (plugins never see tensors), so a
//! plugin architecture is a list of these layers applied in order, from the input features to
//! the class logits. In JSON, each layer is an object with exactly one key:
//!
//! | JSON                          | meaning                                                       |
//! |-------------------------------|---------------------------------------------------------------|
//! | `{"dense": 64}`               | affine layer `x W + b` with 64 outputs                        |
//! | `{"activation": "relu"}`      | element-wise `relu` or `tanh`                                 |
//! | `{"dropout": 0.1}`            | dropout with drop probability in `[0, 1)` (training only)     |
//! | `{"residual": [ ...layers ]}` | `x + f(x)` where `f` is the inner list; it must keep the width |
//!
//! A valid network ends with `classes` outputs and has at least one `dense` layer; see
//! [`validate_layers`].

use serde_json::{json, Map, Value};

/// Element-wise nonlinearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `max(x, 0)`; JSON `"relu"`.
    Relu,
    /// `tanh(x)`; JSON `"tanh"`.
    Tanh,
}

impl Activation {
    /// The JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
        }
    }

    /// Parses a JSON name (`relu`, `tanh`).
    pub fn parse(name: &str) -> Result<Activation, String> {
        match name {
            "relu" => Ok(Activation::Relu),
            "tanh" => Ok(Activation::Tanh),
            other => Err(format!("unknown activation `{other}`; expected one of: relu, tanh")),
        }
    }
}

/// One layer of a network described in the host's vocabulary (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    /// Affine layer with this many outputs.
    Dense(usize),
    /// Element-wise nonlinearity.
    Activation(Activation),
    /// Dropout with this drop probability, in `[0, 1)`.
    Dropout(f64),
    /// Skip connection `x + f(x)` around the inner layers, which must keep the width.
    Residual(Vec<Layer>),
}

impl Layer {
    /// The layer as a one-key JSON object, e.g. `{"dense": 64}`.
    pub fn to_json(&self) -> Value {
        match self {
            Layer::Dense(units) => json!({ "dense": units }),
            Layer::Activation(a) => json!({ "activation": a.as_str() }),
            Layer::Dropout(p) => json!({ "dropout": p }),
            Layer::Residual(inner) => json!({ "residual": inner.iter().map(Layer::to_json).collect::<Vec<_>>() }),
        }
    }

    /// Parses a one-key JSON object. Unknown keys, extra keys and wrong value types are errors.
    pub fn from_json(value: &Value) -> Result<Layer, String> {
        let obj: &Map<String, Value> = value.as_object().ok_or_else(|| format!("a layer must be a one-key object, got {value}"))?;
        let mut entries = obj.iter();
        let (key, v) = match (entries.next(), entries.next()) {
            (Some(kv), None) => kv,
            _ => return Err(format!("a layer must be an object with exactly one key, got {value}")),
        };
        match key.as_str() {
            "dense" => {
                v.as_u64().and_then(|u| usize::try_from(u).ok()).map(Layer::Dense).ok_or_else(|| format!("`dense` takes a whole number of units, got {v}"))
            }
            "activation" => {
                let name = v.as_str().ok_or_else(|| format!("`activation` takes a name, got {v}"))?;
                Activation::parse(name).map(Layer::Activation)
            }
            "dropout" => v.as_f64().map(Layer::Dropout).ok_or_else(|| format!("`dropout` takes a probability, got {v}")),
            "residual" => {
                let items = v.as_array().ok_or_else(|| format!("`residual` takes a list of layers, got {v}"))?;
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| Layer::from_json(item).map_err(|e| format!("residual layer {i}: {e}")))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Layer::Residual)
            }
            other => Err(format!("unknown layer `{other}`; expected one of: dense, activation, dropout, residual")),
        }
    }
}

/// A layer list as a JSON array string (what an architecture function sends to the host).
pub fn layers_to_json(layers: &[Layer]) -> String {
    Value::Array(layers.iter().map(Layer::to_json).collect()).to_string()
}

/// Parses a JSON array of layers (what the host receives). Does not check widths; see
/// [`validate_layers`].
pub fn layers_from_json(text: &str) -> Result<Vec<Layer>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("layer list is not valid JSON: {e}"))?;
    let items = value.as_array().ok_or_else(|| "layer list must be a JSON array".to_string())?;
    items.iter().enumerate().map(|(i, item)| Layer::from_json(item).map_err(|e| format!("layer {i}: {e}"))).collect()
}

/// Width after applying `layers` to `inputs` features, checking every layer on the way:
/// dense units > 0, dropout in `[0, 1)`, residual blocks non-empty and width-preserving.
pub fn output_width(inputs: usize, layers: &[Layer]) -> Result<usize, String> {
    let mut width = inputs;
    for (i, layer) in layers.iter().enumerate() {
        width = match layer {
            Layer::Dense(0) => return Err(format!("layer {i}: `dense` needs at least 1 unit")),
            Layer::Dense(units) => *units,
            Layer::Activation(_) => width,
            Layer::Dropout(p) if !(0.0..1.0).contains(p) => return Err(format!("layer {i}: dropout probability {p} is outside [0, 1)")),
            Layer::Dropout(_) => width,
            Layer::Residual(inner) if inner.is_empty() => return Err(format!("layer {i}: empty `residual` block")),
            Layer::Residual(inner) => {
                let out = output_width(width, inner).map_err(|e| format!("layer {i} (residual): {e}"))?;
                if out != width {
                    return Err(format!("layer {i}: a residual block must keep the width, but it maps {width} to {out}"));
                }
                width
            }
        };
    }
    Ok(width)
}

/// Checks that `layers` is a buildable network from `inputs` features to `classes` logits:
/// every layer valid (see [`output_width`]), at least one `dense` layer, `classes` outputs.
pub fn validate_layers(inputs: usize, classes: usize, layers: &[Layer]) -> Result<(), String> {
    fn has_dense(layers: &[Layer]) -> bool {
        layers.iter().any(|l| match l {
            Layer::Dense(_) => true,
            Layer::Residual(inner) => has_dense(inner),
            _ => false,
        })
    }
    if !has_dense(layers) {
        return Err("the network has no `dense` layer, so nothing to train".to_string());
    }
    let out = output_width(inputs, layers)?;
    if out != classes {
        return Err(format!("the network ends with {out} outputs but the data has {classes} classes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip() {
        let layers = vec![
            Layer::Dense(8),
            Layer::Activation(Activation::Relu),
            Layer::Residual(vec![Layer::Dense(8), Layer::Activation(Activation::Tanh), Layer::Dropout(0.25), Layer::Dense(8)]),
            Layer::Dense(3),
        ];
        let text = layers_to_json(&layers);
        assert_eq!(layers_from_json(&text).unwrap(), layers);
        assert!(validate_layers(4, 3, &layers).is_ok());
    }

    #[test]
    fn rejects_bad_layers() {
        assert!(layers_from_json(r#"[{"conv": 3}]"#).unwrap_err().contains("unknown layer `conv`"));
        assert!(layers_from_json(r#"[{"dense": 3, "dropout": 0.1}]"#).unwrap_err().contains("exactly one key"));
        assert!(layers_from_json(r#"[{"activation": "gelu"}]"#).unwrap_err().contains("unknown activation"));
        assert!(validate_layers(4, 3, &[Layer::Dense(5)]).unwrap_err().contains("5 outputs"));
        assert!(validate_layers(4, 4, &[Layer::Activation(Activation::Relu)]).unwrap_err().contains("no `dense`"));
        let bad_residual = [Layer::Dense(8), Layer::Residual(vec![Layer::Dense(4)]), Layer::Dense(3)];
        assert!(validate_layers(4, 3, &bad_residual).unwrap_err().contains("keep the width"));
        assert!(validate_layers(4, 3, &[Layer::Dropout(1.0), Layer::Dense(3)]).unwrap_err().contains("[0, 1)"));
    }
}
