//! One line for a model and for a loss, as the recipe describes them: what the summary and the
//! report print (`mlp 256-256, relu, dropout 0.2`; `0.3·ce + 0.7·kd(T=4)`).

use std::fmt::{self, Display, Formatter};

use crate::{Activation, Arch, LayerSpec, LossKind, LossSpec, ModelSpec, Norm, PoolKind};

impl Display for ModelSpec {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write_model(f, self, None)
    }
}

/// A model with its input and output widths (from the data): `mlp 64-16-10, relu`.
pub struct ModelWithSizes<'a> {
    pub model: &'a ModelSpec,
    pub inputs: usize,
    pub classes: usize,
}

impl ModelSpec {
    /// The model's line with the data's input and output widths.
    pub fn with_sizes(&self, inputs: usize, classes: usize) -> ModelWithSizes<'_> {
        ModelWithSizes { model: self, inputs, classes }
    }
}

impl Display for ModelWithSizes<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write_model(f, self.model, Some((self.inputs, self.classes)))
    }
}

fn write_model(f: &mut Formatter<'_>, m: &ModelSpec, sizes: Option<(usize, usize)>) -> fmt::Result {
    if let Arch::Plugin(name) = &m.arch {
        write!(f, "plugin {name}")?;
        if let Some(params) = m.params.as_ref().filter(|p| !p.is_empty()) {
            let items: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", json_text(v))).collect();
            write!(f, "({})", items.join(", "))?;
        }
        return write_sizes(f, sizes);
    }
    let layers = m.layers.clone().or_else(|| m.cnn_layers());
    if let Some(layers) = layers {
        write!(f, "{}: ", if m.arch == Arch::Cnn { "cnn" } else { "layers" })?;
        write_layers(f, &layers)?;
        return write_sizes(f, sizes);
    }
    let mut widths: Vec<String> = m.hidden.iter().map(usize::to_string).collect();
    if let Some((inputs, classes)) = sizes {
        widths.insert(0, inputs.to_string());
        widths.push(classes.to_string());
    }
    if m.hidden.is_empty() {
        return match sizes {
            Some(_) => write!(f, "linear {}", widths.join("-")),
            None => f.write_str("linear"),
        };
    }
    write!(f, "mlp {}, {}", widths.join("-"), activation(m.activation))?;
    if m.norm == Some(Norm::Layer) {
        f.write_str(", layernorm")?;
    }
    if m.dropout > 0.0 {
        write!(f, ", dropout {}", m.dropout)?;
    }
    Ok(())
}

fn write_sizes(f: &mut Formatter<'_>, sizes: Option<(usize, usize)>) -> fmt::Result {
    match sizes {
        Some((inputs, classes)) => write!(f, " ({inputs} inputs, {classes} classes)"),
        None => Ok(()),
    }
}

fn write_layers(f: &mut Formatter<'_>, layers: &[LayerSpec]) -> fmt::Result {
    for (i, layer) in layers.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        match layer {
            LayerSpec::Dense(units) => write!(f, "dense {units}")?,
            LayerSpec::Activation(a) => f.write_str(activation(*a))?,
            LayerSpec::Dropout(p) => write!(f, "dropout {p}")?,
            LayerSpec::Norm(Norm::Layer) => f.write_str("layernorm")?,
            LayerSpec::Residual(inner) => {
                f.write_str("residual(")?;
                write_layers(f, inner)?;
                f.write_str(")")?;
            }
            LayerSpec::Conv(c) => {
                write!(f, "conv({}, {k}×{k}", c.filters, k = c.kernel)?;
                if c.stride != 1 {
                    write!(f, ", stride {}", c.stride)?;
                }
                if c.padding != 0 {
                    write!(f, ", pad {}", c.padding)?;
                }
                f.write_str(")")?;
            }
            LayerSpec::Pool(p) => write!(f, "{}pool {}", if p.kind == PoolKind::Avg { "avg" } else { "max" }, p.size)?,
        }
    }
    Ok(())
}

fn activation(a: Activation) -> &'static str {
    match a {
        Activation::Relu => "relu",
        Activation::Tanh => "tanh",
        Activation::Gelu => "gelu",
    }
}

/// A JSON value as a recipe would write it: strings without quotes.
fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `name(k=v, ...)`, or just `name` without parameters.
fn call(f: &mut Formatter<'_>, name: &str, args: &[(&str, String)]) -> fmt::Result {
    f.write_str(name)?;
    if !args.is_empty() {
        let items: Vec<String> = args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        write!(f, "({})", items.join(", "))?;
    }
    Ok(())
}

fn plugin_args(temperature: f64, alpha: Option<f64>, params: Option<&serde_json::Map<String, serde_json::Value>>) -> Vec<(&str, String)> {
    let mut args = vec![("T", temperature.to_string())];
    args.extend(alpha.map(|a| ("alpha", a.to_string())));
    args.extend(params.into_iter().flatten().map(|(k, v)| (k.as_str(), json_text(v))));
    args
}

impl Display for LossSpec {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            LossSpec::Kd(l) => call(f, "kd", &[("T", l.temperature.to_string()), ("alpha", l.alpha.to_string())]),
            LossSpec::Ce(l) => call(f, "ce", &l.label_smoothing.map(|e| ("label_smoothing", e.to_string())).into_iter().collect::<Vec<_>>()),
            LossSpec::TeacherHard => f.write_str("teacher_hard"),
            LossSpec::SoftCe(l) => call(f, "soft_ce", &[("T", l.temperature.to_string())]),
            LossSpec::MseLogits => f.write_str("mse_logits"),
            LossSpec::Dkd(l) => LossKind::Dkd(l.clone()).fmt(f),
            LossSpec::Plugin(p) => {
                call(f, &p.name, &plugin_args(p.temperature, Some(p.alpha), p.params.as_ref()))?;
                f.write_str(" [plugin]")
            }
            LossSpec::Terms(terms) => {
                for (i, term) in terms.values().enumerate() {
                    write!(f, "{}{}·{}", if i > 0 { " + " } else { "" }, term.weight, term.kind)?;
                }
                Ok(())
            }
        }
    }
}

impl Display for LossKind {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            LossKind::Kd(t) => call(f, "kd", &[("T", t.temperature.to_string())]),
            LossKind::Ce(l) => LossSpec::Ce(l.clone()).fmt(f),
            LossKind::TeacherHard => f.write_str("teacher_hard"),
            LossKind::SoftCe(l) => LossSpec::SoftCe(l.clone()).fmt(f),
            LossKind::MseLogits => f.write_str("mse_logits"),
            LossKind::Dkd(l) => {
                let alpha = l.dkd_alpha.unwrap_or(crate::DEFAULT_DKD_ALPHA);
                let beta = l.dkd_beta.unwrap_or(crate::DEFAULT_DKD_BETA);
                call(f, "dkd", &[("T", l.temperature.to_string()), ("dkd_alpha", alpha.to_string()), ("dkd_beta", beta.to_string())])
            }
            LossKind::Plugin(p) => {
                call(f, &p.name, &plugin_args(p.temperature, None, p.params.as_ref()))?;
                f.write_str(" [plugin]")
            }
            LossKind::Hint(h) => {
                let measure = match h.measure {
                    crate::HintMeasure::Mse => "mse",
                    crate::HintMeasure::Cosine => "cosine",
                };
                call(f, "hint", &[("teacher_layer", h.teacher_layer.to_string()), ("student_layer", h.student_layer.to_string()), ("measure", measure.into())])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(text: &str) -> String {
        serde_yaml::from_str::<ModelSpec>(text).unwrap().to_string()
    }

    fn loss(text: &str) -> String {
        serde_yaml::from_str::<LossSpec>(text).unwrap().to_string()
    }

    #[test]
    fn models_read_as_their_recipe() {
        assert_eq!(model("{hidden: [256, 256], dropout: 0.2}"), "mlp 256-256, relu, dropout 0.2");
        assert_eq!(model("{hidden: [16], activation: gelu, norm: layer}"), "mlp 16, gelu, layernorm");
        assert_eq!(model("{hidden: []}"), "linear");
        let m: ModelSpec = serde_yaml::from_str("{hidden: [16]}").unwrap();
        assert_eq!(m.with_sizes(64, 10).to_string(), "mlp 64-16-10, relu");
        let linear: ModelSpec = serde_yaml::from_str("{}").unwrap();
        assert_eq!(linear.with_sizes(4, 3).to_string(), "linear 4-3");
        assert_eq!(
            model("{arch: cnn, conv: [{filters: 16, kernel: 3, padding: 1}, {filters: 32, kernel: 5, stride: 2}], pool: 2, hidden: [64], dropout: 0.2}"),
            "cnn: conv(16, 3×3, pad 1), relu, maxpool 2, conv(32, 5×5, stride 2), relu, maxpool 2, dense 64, relu, dropout 0.2"
        );
        assert_eq!(
            model("{arch: cnn, layers: [{conv: {filters: 8, kernel: 3}}, {pool: {size: 2, kind: avg}}, {dense: 32}]}"),
            "cnn: conv(8, 3×3), avgpool 2, dense 32"
        );
        assert_eq!(
            model("{layers: [{dense: 64}, {activation: tanh}, {residual: [{dense: 64}, {norm: layer}, {dropout: 0.1}]}]}"),
            "layers: dense 64, tanh, residual(dense 64, layernorm, dropout 0.1)"
        );
        let plugin: ModelSpec = serde_yaml::from_str("{arch: resmlp, params: {width: 24, blocks: 1, activation: relu}}").unwrap();
        assert_eq!(plugin.to_string(), "plugin resmlp(activation=relu, blocks=1, width=24)");
        assert_eq!(plugin.with_sizes(64, 10).to_string(), "plugin resmlp(activation=relu, blocks=1, width=24) (64 inputs, 10 classes)");
    }

    #[test]
    fn losses_read_as_their_recipe() {
        assert_eq!(loss("{}"), "kd(T=2, alpha=0.5)");
        assert_eq!(loss("{kind: kd, temperature: 4, alpha: 0.9}"), "kd(T=4, alpha=0.9)");
        assert_eq!(loss("{kind: ce}"), "ce");
        assert_eq!(loss("{kind: ce, label_smoothing: 0.1}"), "ce(label_smoothing=0.1)");
        assert_eq!(loss("{kind: teacher_hard}"), "teacher_hard");
        assert_eq!(loss("{kind: soft_ce, temperature: 3}"), "soft_ce(T=3)");
        assert_eq!(loss("{kind: mse_logits}"), "mse_logits");
        assert_eq!(loss("{kind: dkd, temperature: 4}"), "dkd(T=4, dkd_alpha=1, dkd_beta=8)");
        assert_eq!(loss("{kind: cosine_kd, params: {margin: 0.1}}"), "cosine_kd(T=2, alpha=0.5, margin=0.1) [plugin]");
        assert_eq!(loss("{terms: {kd: {weight: 0.7, temperature: 4}, ce: {weight: 0.3}}}"), "0.3·ce + 0.7·kd(T=4)");
        assert_eq!(
            loss("{terms: {dkd: {weight: 1, dkd_beta: 4}, mine: {weight: 0.5, params: {p: x}}}}"),
            "1·dkd(T=2, dkd_alpha=1, dkd_beta=4) + 0.5·mine(T=2, p=x) [plugin]"
        );
    }
}
