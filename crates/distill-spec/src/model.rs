//! The `teacher:` and `student:` sections and their models (the loss is in `loss.rs`, the
//! training budget in `train.rs`).
//!
//! Keys added after the first release are left out when serialised at their defaults, so the
//! resolved YAML (and every cache key hashed from it) of an older recipe does not change.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::train::validate_train;
use crate::{ConvSpec, LossSpec, PoolSpec, TrainSpec};

/// The teacher: trained here from `model` and `train`, loaded from `weights`, or given only as
/// its `logits` (a Parquet file computed elsewhere).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TeacherSpec {
    /// The teacher's network. Required unless `logits` is given (then leave it out: the file is
    /// the teacher).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelSpec>,
    /// Trained weights to load instead of training (safetensors, relative to the pipeline file;
    /// `${VAR}` expands): a previous run's `teacher.safetensors`, or a PyTorch MLP exported with
    /// `layers.N.weight` (out, in) and `layers.N.bias` names. `train` is then ignored.
    #[serde(default)]
    pub weights: Option<std::path::PathBuf>,
    /// Teacher logits computed elsewhere (PyTorch, an API, an earlier run), used instead of a
    /// teacher model: a Parquet file in the logit schema (see the README), one row per training
    /// row, matched by `row_id`. Excludes `model`, `weights` and `train`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logits: Option<ExternalLogitsSpec>,
    /// How the teacher's logits are kept in the cache (default: every logit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<LogitCacheSpec>,
    /// The teacher's budget and optimiser (it is trained with cross-entropy on the labels).
    #[serde(default)]
    pub train: TrainSpec,
}

/// `teacher.logits`: a logit file made outside this pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExternalLogitsSpec {
    /// The Parquet file, relative to the pipeline file; `${VAR}` expands. Its content (blake3)
    /// is part of the logits' cache key.
    pub path: std::path::PathBuf,
}

/// `teacher.cache`: the storage of the teacher's logits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogitCacheSpec {
    /// Keep only the `top_k` largest logits of each row (their class indices and values, plus
    /// the log-sum-exp of the rest) instead of all of them: for large class counts. Training
    /// rebuilds every logit: the top k exactly, the others all equal, carrying the rest's
    /// probability mass (exact at temperature 1; see the README).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<usize>,
}

/// The student, its distillation loss, and whether to train a from-scratch baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StudentSpec {
    /// The student's network.
    pub model: ModelSpec,
    /// The distillation loss (default: `kd` with `temperature: 2`, `alpha: 0.5`).
    #[serde(default)]
    pub loss: LossSpec,
    /// The student's budget and optimiser (the baseline uses the same).
    #[serde(default)]
    pub train: TrainSpec,
    /// Also train the same student on labels only, same seed and budget, for comparison.
    /// The baseline sees only labelled rows.
    #[serde(default)]
    pub baseline: bool,
    /// How the baseline's budget is matched to the student's when it has fewer rows:
    /// `steps` (the same number of optimiser steps) or `epochs` (the same epochs over its own rows).
    #[serde(default)]
    pub baseline_budget: BudgetRule,
    /// Train student and baseline once per seed and report mean ± standard deviation; the teacher
    /// is trained once. Default: the pipeline seed alone.
    #[serde(default)]
    pub seeds: Option<Vec<u64>>,
    /// Where a feature hint used to be: it is the loss term `student.loss.terms.hint` now, and
    /// this key is an error that says so.
    #[serde(default, skip_serializing)]
    #[schemars(skip)]
    pub hint: Option<serde_yaml::Value>,
}

/// How a baseline's budget is matched to the student's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BudgetRule {
    /// The same number of optimiser steps.
    #[default]
    Steps,
    /// The same number of epochs over the baseline's own rows.
    Epochs,
}

/// A network. Input and output sizes come from the data.
///
/// Either an MLP (`hidden`, `activation`, `norm`, `dropout`):
///
/// ```yaml
/// model: {hidden: [256, 256], activation: gelu, norm: layer, dropout: 0.1}
/// ```
///
/// or a small convolutional network (`arch: cnn`: conv blocks, each followed by `activation` and
/// `pool`, then the `hidden` dense layers) on image-shaped data (`data.image`):
///
/// ```yaml
/// model: {arch: cnn, conv: [{filters: 8, kernel: 3, padding: 1}], pool: 2, hidden: [32]}
/// ```
///
/// or a list of `layers` (the output layer, one unit per class, is added after them):
///
/// ```yaml
/// model:
///   layers:
///     - {dense: 64}
///     - {activation: relu}
///     - {residual: [{dense: 64}, {norm: layer}, {activation: gelu}, {dropout: 0.1}]}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// The architecture family: `mlp` (the default) covers both forms above; `cnn` conv layers
    /// (given by `conv` or `layers`); any other name is an architecture from a plugin library
    /// listed under `plugins:`, configured by `params`.
    #[serde(default)]
    pub arch: Arch,
    /// Hidden layer widths, e.g. `[256, 256]`; `[]` (the default) is a linear model.
    /// Leave out when `layers` is given.
    #[serde(default)]
    pub hidden: Vec<usize>,
    /// Nonlinearity after each hidden layer: `relu` (default), `tanh` or `gelu` (tanh approximation).
    /// Not used with `layers`, where activations are layers of their own.
    #[serde(default)]
    pub activation: Activation,
    /// Dropout probability after each hidden activation (training only). Leave out with `layers`.
    #[serde(default)]
    pub dropout: f64,
    /// Normalisation between each hidden dense layer and its activation: `layer` (layer
    /// normalisation over the features, with a learnable scale and shift). Default: none.
    /// Leave out with `layers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub norm: Option<Norm>,
    /// The network as a list of layers, applied in order from the input features; the output
    /// layer (one unit per class) is added after the last one. Replaces `hidden`, `activation`,
    /// `norm` and `dropout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<LayerSpec>>,
    /// `arch: cnn` only: the conv blocks, input first; each is followed by `activation` and, when
    /// given, `pool`. Then come the `hidden` dense layers (which read the feature map flattened).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conv: Option<Vec<ConvSpec>>,
    /// `arch: cnn` with `conv` only: pooling after each conv block, `2` (max over 2×2 windows)
    /// or `{size: 2, kind: max|avg}`. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolSpec>,
    /// Parameters of a plugin architecture, passed to it as JSON, e.g. `{width: 64, blocks: 2}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The architecture family: `mlp`, or the name of an architecture a plugin provides.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(from = "String", into = "String")]
#[schemars(extend("examples" = ["mlp", "cnn"]))]
pub enum Arch {
    /// Fully connected layers (given by `hidden` or `layers`).
    #[default]
    Mlp,
    /// Conv layers (im2col + matrix product) and pooling on image-shaped inputs, then dense
    /// layers (given by `conv`, `pool` and `hidden`, or by `layers`).
    Cnn,
    /// Provided by a plugin named in `plugins:`; its parameters are `model.params`.
    Plugin(String),
}

impl Arch {
    pub const BUILT_IN: [&'static str; 2] = ["mlp", "cnn"];
}

impl From<String> for Arch {
    fn from(s: String) -> Self {
        match s.as_str() {
            "mlp" => Arch::Mlp,
            "cnn" => Arch::Cnn,
            _ => Arch::Plugin(s),
        }
    }
}

impl From<Arch> for String {
    fn from(a: Arch) -> String {
        match a {
            Arch::Mlp => "mlp".into(),
            Arch::Cnn => "cnn".into(),
            Arch::Plugin(name) => name,
        }
    }
}

/// An element-wise nonlinearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `max(x, 0)`.
    #[default]
    Relu,
    /// `tanh(x)`.
    Tanh,
    /// `x * Φ(x)` in its tanh approximation, `0.5 x (1 + tanh(sqrt(2/π) (x + 0.044715 x^3)))`,
    /// as PyTorch's `nn.GELU(approximate="tanh")`.
    Gelu,
}

/// A normalisation layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// Layer normalisation over the features of each row (epsilon 1e-5), then a learnable
    /// per-feature scale (initially 1) and shift (initially 0), as PyTorch's `nn.LayerNorm`.
    Layer,
}

/// One layer of a `layers:` list; each is a one-key map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "LayerMap", into = "LayerMap")]
pub enum LayerSpec {
    /// `{dense: 64}`: an affine layer `x W + b` with this many outputs.
    Dense(usize),
    /// `{activation: relu}`: `relu`, `tanh` or `gelu`.
    Activation(Activation),
    /// `{dropout: 0.1}`: dropout with this drop probability in [0, 1) (training only).
    Dropout(f64),
    /// `{norm: layer}`: layer normalisation with a learnable scale and shift.
    Norm(Norm),
    /// `{residual: [...]}`: `x + f(x)`, where `f` is the inner list; it must keep the width.
    Residual(Vec<LayerSpec>),
    /// `{conv: {filters: 8, kernel: 3, stride: 1, padding: 1}}` (`arch: cnn`): a 2-D convolution.
    Conv(ConvSpec),
    /// `{pool: 2}` or `{pool: {size: 2, kind: avg}}` (`arch: cnn`): pooling over square windows.
    Pool(PoolSpec),
}

/// One layer: a map with exactly one of these keys.
///
/// (The YAML form of a [`LayerSpec`]: serde_yaml 0.9 wants `!tags` for enums, recipes use
/// one-key maps. Its field docs are the schema's.)
#[derive(Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
struct LayerMap {
    /// `{dense: 64}`: an affine layer `x W + b` with this many outputs (≥ 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "usize")]
    dense: Option<usize>,
    /// `{activation: relu}`: `relu`, `tanh` or `gelu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Activation")]
    activation: Option<Activation>,
    /// `{dropout: 0.1}`: dropout with this drop probability in [0, 1) (training only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "f64")]
    dropout: Option<f64>,
    /// `{norm: layer}`: layer normalisation with a learnable scale and shift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Norm")]
    norm: Option<Norm>,
    /// `{residual: [...]}`: `x + f(x)`, where `f` is the inner layer list; it must keep the width.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Vec<LayerSpec>")]
    residual: Option<Vec<LayerSpec>>,
    /// `{conv: {filters: 8, kernel: 3, stride: 1, padding: 1}}` (`arch: cnn`): a 2-D convolution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "ConvSpec")]
    conv: Option<ConvSpec>,
    /// `{pool: 2}` or `{pool: {size: 2, kind: avg}}` (`arch: cnn`): pooling over square windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "PoolSpec")]
    pool: Option<PoolSpec>,
}

impl TryFrom<LayerMap> for LayerSpec {
    type Error = String;
    fn try_from(m: LayerMap) -> Result<Self, String> {
        let mut found = Vec::new();
        if let Some(u) = m.dense {
            found.push(LayerSpec::Dense(u));
        }
        if let Some(a) = m.activation {
            found.push(LayerSpec::Activation(a));
        }
        if let Some(p) = m.dropout {
            found.push(LayerSpec::Dropout(p));
        }
        if let Some(n) = m.norm {
            found.push(LayerSpec::Norm(n));
        }
        if let Some(inner) = m.residual {
            found.push(LayerSpec::Residual(inner));
        }
        found.extend(m.conv.map(LayerSpec::Conv));
        found.extend(m.pool.map(LayerSpec::Pool));
        match found.len() {
            1 => Ok(found.remove(0)),
            _ => Err("a layer is a map with exactly one of the keys dense, activation, dropout, norm, residual, conv, pool".into()),
        }
    }
}

impl From<LayerSpec> for LayerMap {
    fn from(l: LayerSpec) -> Self {
        match l {
            LayerSpec::Dense(u) => LayerMap { dense: Some(u), ..Default::default() },
            LayerSpec::Activation(a) => LayerMap { activation: Some(a), ..Default::default() },
            LayerSpec::Dropout(p) => LayerMap { dropout: Some(p), ..Default::default() },
            LayerSpec::Norm(n) => LayerMap { norm: Some(n), ..Default::default() },
            LayerSpec::Residual(inner) => LayerMap { residual: Some(inner), ..Default::default() },
            LayerSpec::Conv(c) => LayerMap { conv: Some(c), ..Default::default() },
            LayerSpec::Pool(p) => LayerMap { pool: Some(p), ..Default::default() },
        }
    }
}

/// The teacher's source: a model (trained or with `weights`) or external `logits`, never both.
pub(crate) fn validate_teacher(t: &TeacherSpec, plugins_listed: bool, bad: &mut impl FnMut(&str, String)) {
    validate_teacher_at("teacher", t, plugins_listed, bad);
}

/// [`validate_teacher`] for the teacher at `key` (`teacher` or `teachers[N]`).
pub(crate) fn validate_teacher_at(key: &str, t: &TeacherSpec, plugins_listed: bool, bad: &mut impl FnMut(&str, String)) {
    match (&t.model, &t.logits) {
        (Some(model), None) => {
            validate_model(&format!("{key}.model"), model, plugins_listed, bad);
            validate_train(&format!("{key}.train"), &t.train, bad);
        }
        (None, None) => bad(&format!("{key}.model"), "the teacher needs a `model` (trained here or loaded from `weights`), or its `logits` from a file".into()),
        (Some(_), Some(_)) => bad(&format!("{key}.model"), "leave `model` out with `logits`: the logit file is the teacher".into()),
        (None, Some(_)) => {}
    }
    if t.logits.is_some() {
        if t.weights.is_some() {
            bad(&format!("{key}.logits"), "`logits` and `weights` are two teacher sources; give one".into());
        }
        if t.train != TrainSpec::default() {
            bad(&format!("{key}.train"), "leave `train` out with `logits`: nothing is trained".into());
        }
        if t.logits.as_ref().is_some_and(|l| l.path.as_os_str().is_empty()) {
            bad(&format!("{key}.logits.path"), "must name a Parquet file".into());
        }
    }
    if let Some(0) = t.cache.as_ref().and_then(|c| c.top_k) {
        bad(&format!("{key}.cache.top_k"), "must be at least 1".into());
    }
}

pub(crate) fn validate_model(path: &str, m: &ModelSpec, plugins_listed: bool, bad: &mut impl FnMut(&str, String)) {
    if let Arch::Plugin(name) = &m.arch {
        if !plugins_listed {
            bad(
                &format!("{path}.arch"),
                format!(
                    "unknown architecture `{name}`: the built-in ones are {}; a plugin architecture needs its library under `plugins:`",
                    Arch::BUILT_IN.join(", ")
                ),
            );
        }
        // The plugin describes the whole network from `params`.
        for (key, given) in [
            ("hidden", !m.hidden.is_empty()),
            ("layers", m.layers.is_some()),
            ("dropout", m.dropout != 0.0),
            ("norm", m.norm.is_some()),
            ("conv", m.conv.is_some()),
            ("pool", m.pool.is_some()),
        ] {
            if given {
                bad(&format!("{path}.{key}"), format!("a plugin architecture takes its settings in `params`, not `{key}`"));
            }
        }
        return;
    }
    if m.params.is_some() {
        bad(&format!("{path}.params"), "`params` is only for plugin architectures".into());
    }
    for (i, h) in m.hidden.iter().enumerate() {
        if *h == 0 {
            bad(&format!("{path}.hidden[{i}]"), "a layer needs at least one unit".into());
        }
    }
    if !(0.0..1.0).contains(&m.dropout) {
        bad(&format!("{path}.dropout"), format!("must be in [0, 1), got {}", m.dropout));
    }
    if let Some(layers) = &m.layers {
        if !m.hidden.is_empty() {
            bad(&format!("{path}.hidden"), "give either `hidden` or `layers`, not both".into());
        }
        if m.dropout != 0.0 {
            bad(&format!("{path}.dropout"), "with `layers`, dropout is a layer: `{dropout: p}`".into());
        }
        if m.norm.is_some() {
            bad(&format!("{path}.norm"), "with `layers`, normalisation is a layer: `{norm: layer}`".into());
        }
        // The input width is unknown here (it comes from the data), hence `None` at the start.
        validate_layers(&format!("{path}.layers"), layers, None, bad);
    }
}

/// Checks a layer list and returns the width after it (`None` while it still equals the unknown
/// input width).
fn validate_layers(path: &str, layers: &[LayerSpec], mut width: Option<usize>, bad: &mut impl FnMut(&str, String)) -> Option<usize> {
    for (i, layer) in layers.iter().enumerate() {
        let at = format!("{path}[{i}]");
        match layer {
            LayerSpec::Dense(0) => bad(&format!("{at}.dense"), "a layer needs at least one unit".into()),
            LayerSpec::Dense(units) => width = Some(*units),
            LayerSpec::Dropout(p) if !(0.0..1.0).contains(p) => bad(&format!("{at}.dropout"), format!("must be in [0, 1), got {p}")),
            LayerSpec::Residual(inner) => {
                let out = validate_layers(&format!("{at}.residual"), inner, width, bad);
                match (width, out) {
                    (Some(a), Some(b)) if a != b => {
                        bad(&format!("{at}.residual"), format!("a residual block must keep the width: it takes {a} features and returns {b}"))
                    }
                    (None, Some(_)) => bad(
                        &format!("{at}.residual"),
                        "put a `dense` layer before a residual block that contains dense layers: the input width is not known when the recipe is checked"
                            .into(),
                    ),
                    _ => {}
                }
            }
            // The width after a conv or pool depends on the image shape (checked by `validate_cnn`).
            LayerSpec::Conv(_) | LayerSpec::Pool(_) => width = None,
            LayerSpec::Activation(_) | LayerSpec::Dropout(_) | LayerSpec::Norm(_) => {}
        }
    }
    width
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems<T>(value: &T, check: impl Fn(&T, &mut dyn FnMut(&str, String))) -> Vec<(String, String)> {
        let mut out = Vec::new();
        check(value, &mut |p: &str, m: String| out.push((p.to_string(), m)));
        out
    }

    fn model(text: &str) -> Vec<(String, String)> {
        let m: ModelSpec = serde_yaml::from_str(text).unwrap();
        problems(&m, |m, bad| validate_model("m", m, false, &mut |p: &str, s: String| bad(p, s)))
    }

    #[test]
    fn plugin_architectures_take_params_and_need_a_plugin() {
        let m: ModelSpec = serde_yaml::from_str("{arch: resmlp, params: {width: 8}}").unwrap();
        assert_eq!(m.arch, Arch::Plugin("resmlp".into()));
        assert_eq!(serde_yaml::to_string(&m).unwrap(), "arch: resmlp\nhidden: []\nactivation: relu\ndropout: 0.0\nparams:\n  width: 8\n");
        let with_plugins = |text: &str| {
            let m: ModelSpec = serde_yaml::from_str(text).unwrap();
            problems(&m, |m, bad| validate_model("m", m, true, &mut |p: &str, s: String| bad(p, s)))
        };
        assert!(with_plugins("{arch: resmlp, params: {width: 8}}").is_empty());
        assert_eq!(with_plugins("{arch: resmlp, hidden: [4]}")[0].0, "m.hidden");
        assert!(model("{arch: resmlp}")[0].1.contains("unknown architecture `resmlp`"));
        assert_eq!(model("{hidden: [4], params: {width: 8}}")[0].0, "m.params");
    }

    #[test]
    fn a_teacher_has_exactly_one_source() {
        let check = |text: &str| {
            let t: TeacherSpec = serde_yaml::from_str(text).unwrap();
            let mut out = Vec::new();
            validate_teacher(&t, false, &mut |k: &str, m: String| out.push((k.to_string(), m)));
            out.into_iter().map(|(k, _)| k).collect::<Vec<_>>()
        };
        assert!(check("{model: {hidden: [4]}}").is_empty());
        assert!(check("{logits: {path: t.parquet}, cache: {top_k: 5}}").is_empty());
        assert_eq!(check("{}"), ["teacher.model"]);
        assert_eq!(check("{model: {hidden: [4]}, logits: {path: t.parquet}}"), ["teacher.model"]);
        assert_eq!(check("{logits: {path: t.parquet}, weights: w.safetensors, train: {epochs: 3}}"), ["teacher.logits", "teacher.train"]);
        assert_eq!(check("{model: {hidden: [4]}, cache: {top_k: 0}}"), ["teacher.cache.top_k"]);
        assert!(serde_yaml::from_str::<TeacherSpec>("{logits: {path: t.parquet, format: csv}}").is_err(), "unknown keys are errors");
        // A teacher with a model serialises as before (old cache keys and resolved recipes hold).
        let t: TeacherSpec = serde_yaml::from_str("{model: {hidden: [4]}}").unwrap();
        assert!(!serde_yaml::to_string(&t).unwrap().contains("logits") && !serde_yaml::to_string(&t).unwrap().contains("cache"));
    }

    #[test]
    fn old_recipes_parse_and_serialise_as_before() {
        let t: TrainSpec = serde_yaml::from_str("{epochs: 5, batch: 8, optimizer: {kind: adam, lr: 0.01}}").unwrap();
        assert_eq!(serde_yaml::to_string(&t).unwrap(), "epochs: 5\nbatch: 8\noptimizer:\n  kind: adam\n  lr: 0.01\n");
        let m: ModelSpec = serde_yaml::from_str("{arch: mlp, hidden: [4], activation: tanh, dropout: 0.1}").unwrap();
        assert_eq!(serde_yaml::to_string(&m).unwrap(), "arch: mlp\nhidden:\n- 4\nactivation: tanh\ndropout: 0.1\n");
    }

    #[test]
    fn layer_lists_parse_and_widths_are_checked() {
        let text = "{layers: [{dense: 8}, {norm: layer}, {activation: gelu}, {residual: [{dense: 8}, {activation: relu}, {dropout: 0.1}]}]}";
        let m: ModelSpec = serde_yaml::from_str(text).unwrap();
        assert_eq!(
            m.layers.as_ref().unwrap()[3],
            LayerSpec::Residual(vec![LayerSpec::Dense(8), LayerSpec::Activation(Activation::Relu), LayerSpec::Dropout(0.1)])
        );
        assert!(model(text).is_empty());
        let p = model("{layers: [{dense: 8}, {residual: [{dense: 4}]}]}");
        assert_eq!(p[0].0, "m.layers[1].residual");
        assert!(p[0].1.contains("takes 8 features and returns 4"), "{p:?}");
        assert_eq!(model("{layers: [{residual: [{dense: 4}]}]}")[0].0, "m.layers[0].residual");
        assert!(model("{layers: [{residual: [{activation: tanh}]}, {dense: 3}]}").is_empty());
        assert_eq!(model("{hidden: [4], layers: [{dense: 3}]}")[0].0, "m.hidden");
        assert_eq!(model("{layers: [{dropout: 1.5}]}")[0].0, "m.layers[0].dropout");
        assert!(serde_yaml::from_str::<ModelSpec>("{layers: [{conv: 3}]}").is_err());
        assert!(serde_yaml::from_str::<ModelSpec>("{hidden: [4], norm: batch}").is_err());
        assert!(model("{hidden: [4], norm: layer, activation: gelu}").is_empty());
        assert!(serde_yaml::from_str::<ModelSpec>("{layers: [{dense: 3, dropout: 0.1}]}").is_err());
        let back: ModelSpec = serde_yaml::from_str(&serde_yaml::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }
}
