//! The `teacher:` and `student:` sections: models, losses, training budgets and optimisers.
//!
//! Keys added after the first release are left out when serialised at their defaults, so the
//! resolved YAML (and every cache key hashed from it) of an older recipe does not change.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{ConvSpec, PoolSpec};

/// The teacher: trained here from `model` and `train`, loaded from `weights`, or given only as
/// its `logits` (a Parquet file computed elsewhere).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalLogitsSpec {
    /// The Parquet file, relative to the pipeline file; `${VAR}` expands. Its content (blake3)
    /// is part of the logits' cache key.
    pub path: std::path::PathBuf,
}

/// `teacher.cache`: the storage of the teacher's logits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

/// How a baseline's budget is matched to the student's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// Layer normalisation over the features of each row (epsilon 1e-5), then a learnable
    /// per-feature scale (initially 1) and shift (initially 0), as PyTorch's `nn.LayerNorm`.
    Layer,
}

/// One layer of a `layers:` list; each is a one-key map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// The YAML form of a layer: serde_yaml 0.9 wants `!tags` for enums, recipes use one-key maps.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LayerMap {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dense: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    activation: Option<Activation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dropout: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    norm: Option<Norm>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    residual: Option<Vec<LayerSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    conv: Option<ConvSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

/// Training budget, optimiser, learning-rate schedule, clipping and early stopping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    /// Passes over the training rows (default 20).
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Rows per optimiser step (default 32).
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// The optimiser (default: Adam, `lr: 1.0e-3`).
    #[serde(default)]
    pub optimizer: OptimizerSpec,
    /// How the learning rate changes over training. Default: constant `optimizer.lr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleSpec>,
    /// Rescale the gradients so that their global L2 norm (over all parameters together) is at
    /// most this value, before each step. Default: no clipping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_grad_norm: Option<f64>,
    /// Stop when validation accuracy has not improved for a while, and keep the best weights.
    /// Needs validation rows (`data.split.val`); without them training runs the full budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stopping: Option<EarlyStoppingSpec>,
}

fn default_epochs() -> usize {
    20
}

fn default_batch() -> usize {
    32
}

impl Default for TrainSpec {
    fn default() -> Self {
        Self {
            epochs: default_epochs(),
            batch: default_batch(),
            optimizer: OptimizerSpec::default(),
            schedule: None,
            clip_grad_norm: None,
            early_stopping: None,
        }
    }
}

/// The optimiser.
///
/// ```yaml
/// optimizer: {kind: adamw, lr: 1.0e-3, weight_decay: 0.01}
/// optimizer: {kind: sgd, lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 5.0e-4}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerSpec {
    /// `adam` (default), `adamw` or `sgd`.
    #[serde(default)]
    pub kind: OptimizerKind,
    /// Learning rate (the peak rate when a `schedule` is given). Default 1.0e-3.
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Weight decay, ≥ 0. `adam` and `sgd` add it to the gradient (L2 regularisation); `adamw`
    /// applies it to the weights directly (decoupled, Loshchilov & Hutter). Default: 0, and 0.01
    /// for `adamw` (PyTorch's defaults). Applies to every parameter, biases included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
    /// `sgd` only: momentum in [0, 1). Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub momentum: Option<f64>,
    /// `sgd` only: Nesterov momentum (needs `momentum` > 0). Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nesterov: Option<bool>,
    /// `adam`/`adamw` only: the moment decay rates β1, β2, each in [0, 1). Default `[0.9, 0.999]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub betas: Option<[f64; 2]>,
    /// `adam`/`adamw` only: the denominator's ε, > 0. Default 1.0e-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eps: Option<f64>,
}

fn default_lr() -> f64 {
    1e-3
}

impl Default for OptimizerSpec {
    fn default() -> Self {
        Self { kind: OptimizerKind::Adam, lr: default_lr(), weight_decay: None, momentum: None, nesterov: None, betas: None, eps: None }
    }
}

impl OptimizerSpec {
    /// The weight decay in effect: the given one, else 0.01 for `adamw` and 0 otherwise.
    pub fn effective_weight_decay(&self) -> f64 {
        self.weight_decay.unwrap_or(match self.kind {
            OptimizerKind::AdamW => 0.01,
            OptimizerKind::Adam | OptimizerKind::Sgd => 0.0,
        })
    }
}

/// An optimiser kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam (Kingma & Ba); `weight_decay` is L2 regularisation.
    #[default]
    Adam,
    /// Adam with decoupled weight decay (Loshchilov & Hutter).
    #[serde(rename = "adamw")]
    AdamW,
    /// Stochastic gradient descent, optionally with (Nesterov) momentum.
    Sgd,
}

/// A learning-rate schedule over the whole run, with an optional linear warm-up.
///
/// ```yaml
/// schedule: {kind: cosine, warmup_epochs: 2, min_lr: 1.0e-5}
/// schedule: {kind: step, every: 30, gamma: 0.1}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// `constant` (default), `step` (multiply by `gamma` every `every` epochs) or `cosine`
    /// (half a cosine from `lr` down to `min_lr` over the steps after the warm-up).
    #[serde(default)]
    pub kind: ScheduleKind,
    /// Linear warm-up: the rate rises from `lr / warm-up steps` to `lr` over this many epochs
    /// (fractions allowed) before the schedule starts. Default 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub warmup_epochs: f64,
    /// `step` only: epochs between decays, ≥ 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<usize>,
    /// `step` only: the factor applied at each decay, in (0, 1]. Default 0.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gamma: Option<f64>,
    /// `cosine` only: the final learning rate, in [0, lr]. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_lr: Option<f64>,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// A schedule kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// The rate stays at `lr` (after any warm-up).
    #[default]
    Constant,
    /// Step decay: `lr * gamma^(epoch / every)`.
    Step,
    /// Cosine annealing to `min_lr`.
    Cosine,
}

/// Early stopping on validation accuracy; the weights of the best epoch are restored at the end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyStoppingSpec {
    /// Stop after this many epochs (≥ 1) without an improvement.
    pub patience: usize,
    /// The smallest rise in validation accuracy that counts as an improvement, ≥ 0. Default 0
    /// (any strict rise).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_delta: f64,
}

/// The student's loss: one `kind` with its parameters, or a weighted sum of `terms`.
///
/// Built-in kinds (means over the batch; hard-label terms count only rows with a label):
///
/// - `kd`: Hinton et al. (2015), `alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y)`.
///   As a term, `kd` is the soft part alone (`alpha: 1`).
/// - `ce`: cross-entropy with the labels, with optional `label_smoothing` ε (target
///   `(1 - ε) * onehot(y) + ε / k`). Ignores the teacher (what the baseline uses).
/// - `soft_ce`: `T^2 * CE(softmax(t/T), softmax(s/T))`, cross-entropy against the teacher's soft
///   targets. It differs from `kd`'s soft part by the teacher's entropy, a constant, so the
///   gradients are the same; the `T^2` keeps the gradient scale independent of `T`.
/// - `mse_logits`: the mean over classes of `(s - t)^2`, matching logits directly (Ba & Caruana).
/// - `dkd`: decoupled KD (Zhao et al., 2022): `T^2 * (dkd_alpha * TCKD + dkd_beta * NCKD)`, where
///   TCKD is the binary KL between teacher and student on "target class vs the rest" and NCKD the
///   KL between their distributions over the non-target classes, at temperature `T`. The target
///   is the label; on rows without one, the teacher's top class. The paper adds CE; write it as
///   `terms: {ce: {weight: 1}, dkd: {weight: 1, temperature: 4, dkd_alpha: 1, dkd_beta: 8}}`.
/// - `teacher_hard`: cross-entropy with the teacher's top class as the label on every row
///   (pseudo-labelling, the control for soft targets).
///
/// Any other `kind` is a loss from a plugin named in `plugins:`.
///
/// ```yaml
/// loss: {kind: kd, temperature: 4, alpha: 0.9}
/// loss: {kind: ce, label_smoothing: 0.1}
/// loss:
///   terms:
///     kd: {weight: 0.7, temperature: 4}
///     ce: {weight: 0.3, label_smoothing: 0.1}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossSpec {
    /// The loss kind (default `kd`); leave out when `terms` is given.
    #[serde(default)]
    pub kind: LossKind,
    /// Softmax temperature T (> 0) of the soft terms (`kd`, `soft_ce`, `dkd`). Default 2.
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// `kd` only: weight of the soft term, in [0, 1]; the hard-label term gets `1 - alpha`.
    /// Default 0.5.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// `ce` only: label smoothing ε in [0, 1). Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_smoothing: Option<f64>,
    /// `dkd` only: weight of the target-class term TCKD, ≥ 0. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dkd_alpha: Option<f64>,
    /// `dkd` only: weight of the non-target term NCKD, ≥ 0. Default 8 (the paper's CIFAR-100 value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dkd_beta: Option<f64>,
    /// Extra parameters for a plugin loss, passed to it as JSON with `temperature` and `alpha`.
    #[serde(default)]
    pub params: Option<serde_json::Map<String, serde_json::Value>>,
    /// A weighted sum of losses, keyed by kind, each with its `weight` and parameters, e.g.
    /// `{kd: {weight: 0.7, temperature: 4}, ce: {weight: 0.3}}`. Terms are added in key order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms: Option<BTreeMap<String, LossTermSpec>>,
}

impl LossSpec {
    /// The parameters a plugin loss receives: `temperature`, `alpha` and `params`.
    pub fn plugin_params(&self) -> serde_json::Value {
        let mut map = self.params.clone().unwrap_or_default();
        map.entry("temperature").or_insert(self.temperature.into());
        map.entry("alpha").or_insert(self.alpha.into());
        serde_json::Value::Object(map)
    }
}

fn default_temperature() -> f64 {
    2.0
}

fn default_alpha() -> f64 {
    0.5
}

/// Default `dkd_alpha`.
pub const DEFAULT_DKD_ALPHA: f64 = 1.0;
/// Default `dkd_beta`.
pub const DEFAULT_DKD_BETA: f64 = 8.0;

impl Default for LossSpec {
    fn default() -> Self {
        Self {
            kind: LossKind::Kd,
            temperature: default_temperature(),
            alpha: default_alpha(),
            label_smoothing: None,
            dkd_alpha: None,
            dkd_beta: None,
            params: None,
            terms: None,
        }
    }
}

/// One term of a weighted-sum loss; its kind is its key in `terms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossTermSpec {
    /// The term's weight, ≥ 0.
    pub weight: f64,
    /// Softmax temperature (> 0) for `kd`, `soft_ce` and `dkd`. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// `ce` only: label smoothing ε in [0, 1). Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_smoothing: Option<f64>,
    /// `dkd` only: weight of TCKD, ≥ 0. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dkd_alpha: Option<f64>,
    /// `dkd` only: weight of NCKD, ≥ 0. Default 8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dkd_beta: Option<f64>,
    /// Plugin terms only: extra parameters, passed as JSON with `temperature`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<serde_json::Map<String, serde_json::Value>>,
}

impl LossTermSpec {
    /// The temperature in effect.
    pub fn temperature(&self) -> f64 {
        self.temperature.unwrap_or_else(default_temperature)
    }

    /// The parameters a plugin term receives: `params` plus `temperature` and `alpha: 1`
    /// (the weight is applied by the host).
    pub fn plugin_params(&self) -> serde_json::Value {
        let mut map = self.params.clone().unwrap_or_default();
        map.entry("temperature").or_insert(self.temperature().into());
        map.entry("alpha").or_insert(1.0.into());
        serde_json::Value::Object(map)
    }
}

/// A built-in loss, or the name of a loss a plugin provides.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum LossKind {
    /// Hinton KD mixed with CE through `alpha`.
    #[default]
    Kd,
    /// Cross-entropy with the labels.
    Ce,
    /// Cross-entropy with the teacher's top class.
    TeacherHard,
    /// Cross-entropy against the teacher's softened distribution.
    SoftCe,
    /// Mean squared error between logits.
    MseLogits,
    /// Decoupled KD.
    Dkd,
    /// Provided by a plugin named in `plugins:`.
    Plugin(String),
}

impl LossKind {
    pub const BUILT_IN: [&'static str; 6] = ["kd", "ce", "teacher_hard", "soft_ce", "mse_logits", "dkd"];
}

impl From<String> for LossKind {
    fn from(s: String) -> Self {
        match s.as_str() {
            "kd" => LossKind::Kd,
            "ce" => LossKind::Ce,
            "teacher_hard" => LossKind::TeacherHard,
            "soft_ce" => LossKind::SoftCe,
            "mse_logits" => LossKind::MseLogits,
            "dkd" => LossKind::Dkd,
            _ => LossKind::Plugin(s),
        }
    }
}

impl From<LossKind> for String {
    fn from(k: LossKind) -> String {
        match k {
            LossKind::Kd => "kd".into(),
            LossKind::Ce => "ce".into(),
            LossKind::TeacherHard => "teacher_hard".into(),
            LossKind::SoftCe => "soft_ce".into(),
            LossKind::MseLogits => "mse_logits".into(),
            LossKind::Dkd => "dkd".into(),
            LossKind::Plugin(name) => name,
        }
    }
}

/// The teacher's source: a model (trained or with `weights`) or external `logits`, never both.
pub(crate) fn validate_teacher(t: &TeacherSpec, plugins_listed: bool, bad: &mut impl FnMut(&str, String)) {
    match (&t.model, &t.logits) {
        (Some(model), None) => {
            validate_model("teacher.model", model, plugins_listed, bad);
            validate_train("teacher.train", &t.train, bad);
        }
        (None, None) => bad("teacher.model", "the teacher needs a `model` (trained here or loaded from `weights`), or its `logits` from a file".into()),
        (Some(_), Some(_)) => bad("teacher.model", "leave `model` out with `teacher.logits`: the logit file is the teacher".into()),
        (None, Some(_)) => {}
    }
    if t.logits.is_some() {
        if t.weights.is_some() {
            bad("teacher.logits", "`logits` and `weights` are two teacher sources; give one".into());
        }
        if t.train != TrainSpec::default() {
            bad("teacher.train", "leave `train` out with `teacher.logits`: nothing is trained".into());
        }
        if t.logits.as_ref().is_some_and(|l| l.path.as_os_str().is_empty()) {
            bad("teacher.logits.path", "must name a Parquet file".into());
        }
    }
    if let Some(0) = t.cache.as_ref().and_then(|c| c.top_k) {
        bad("teacher.cache.top_k", "must be at least 1".into());
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

pub(crate) fn validate_train(path: &str, t: &TrainSpec, bad: &mut impl FnMut(&str, String)) {
    if t.epochs == 0 {
        bad(&format!("{path}.epochs"), "must be at least 1".into());
    }
    if t.batch == 0 {
        bad(&format!("{path}.batch"), "must be at least 1".into());
    }
    let o = &t.optimizer;
    let opt = format!("{path}.optimizer");
    let lr = o.lr;
    if !(lr.is_finite() && lr > 0.0) {
        bad(&format!("{opt}.lr"), format!("must be > 0, got {lr}"));
    }
    let kind = match o.kind {
        OptimizerKind::Adam => "adam",
        OptimizerKind::AdamW => "adamw",
        OptimizerKind::Sgd => "sgd",
    };
    let is_sgd = o.kind == OptimizerKind::Sgd;
    for (key, set, applies) in [
        ("momentum", o.momentum.is_some(), is_sgd),
        ("nesterov", o.nesterov.is_some(), is_sgd),
        ("betas", o.betas.is_some(), !is_sgd),
        ("eps", o.eps.is_some(), !is_sgd),
    ] {
        if set && !applies {
            bad(&format!("{opt}.{key}"), format!("`{key}` does not apply to the `{kind}` optimizer"));
        }
    }
    if let Some(wd) = o.weight_decay {
        if !(wd.is_finite() && wd >= 0.0) {
            bad(&format!("{opt}.weight_decay"), format!("must be ≥ 0, got {wd}"));
        }
    }
    if let Some(m) = o.momentum {
        if !(0.0..1.0).contains(&m) {
            bad(&format!("{opt}.momentum"), format!("must be in [0, 1), got {m}"));
        }
    }
    if o.nesterov == Some(true) && o.momentum.unwrap_or(0.0) <= 0.0 {
        bad(&format!("{opt}.nesterov"), "Nesterov momentum needs `momentum` > 0".into());
    }
    if let Some(betas) = o.betas {
        for (i, b) in betas.iter().enumerate() {
            if !(0.0..1.0).contains(b) {
                bad(&format!("{opt}.betas[{i}]"), format!("must be in [0, 1), got {b}"));
            }
        }
    }
    if let Some(eps) = o.eps {
        if !(eps.is_finite() && eps > 0.0) {
            bad(&format!("{opt}.eps"), format!("must be > 0, got {eps}"));
        }
    }
    if let Some(s) = &t.schedule {
        let sp = format!("{path}.schedule");
        let kind = match s.kind {
            ScheduleKind::Constant => "constant",
            ScheduleKind::Step => "step",
            ScheduleKind::Cosine => "cosine",
        };
        for (key, set, applies) in [
            ("every", s.every.is_some(), s.kind == ScheduleKind::Step),
            ("gamma", s.gamma.is_some(), s.kind == ScheduleKind::Step),
            ("min_lr", s.min_lr.is_some(), s.kind == ScheduleKind::Cosine),
        ] {
            if set && !applies {
                bad(&format!("{sp}.{key}"), format!("`{key}` does not apply to a `{kind}` schedule"));
            }
        }
        if !(s.warmup_epochs.is_finite() && s.warmup_epochs >= 0.0) {
            bad(&format!("{sp}.warmup_epochs"), format!("must be ≥ 0, got {}", s.warmup_epochs));
        }
        if s.kind == ScheduleKind::Step {
            match s.every {
                None => bad(&format!("{sp}.every"), "a `step` schedule needs `every` (epochs between decays)".into()),
                Some(0) => bad(&format!("{sp}.every"), "must be at least 1".into()),
                Some(_) => {}
            }
        }
        if let Some(g) = s.gamma {
            if !(g > 0.0 && g <= 1.0) {
                bad(&format!("{sp}.gamma"), format!("must be in (0, 1], got {g}"));
            }
        }
        if let Some(m) = s.min_lr {
            if !(m.is_finite() && m >= 0.0 && m <= lr) {
                bad(&format!("{sp}.min_lr"), format!("must be in [0, lr = {lr}], got {m}"));
            }
        }
    }
    if let Some(c) = t.clip_grad_norm {
        if !(c.is_finite() && c > 0.0) {
            bad(&format!("{path}.clip_grad_norm"), format!("must be > 0, got {c}"));
        }
    }
    if let Some(e) = &t.early_stopping {
        if e.patience == 0 {
            bad(&format!("{path}.early_stopping.patience"), "must be at least 1".into());
        }
        if !(e.min_delta.is_finite() && e.min_delta >= 0.0) {
            bad(&format!("{path}.early_stopping.min_delta"), format!("must be ≥ 0, got {}", e.min_delta));
        }
    }
}

/// Checks a loss: ranges, keys that do not apply to its kind, and the terms of a weighted sum.
/// `plugins_listed` says whether the recipe names any plugin library (unknown kinds need one).
/// Replaces the loss checks that `validate.rs` made inline (same messages for those).
pub fn validate_loss(path: &str, loss: &LossSpec, plugins_listed: bool, bad: &mut impl FnMut(&str, String)) {
    let unknown =
        |name: &str| format!("unknown loss `{name}`: built-in losses are {}; a plugin loss needs its library under `plugins:`", LossKind::BUILT_IN.join(", "));
    if !(loss.temperature.is_finite() && loss.temperature > 0.0) {
        bad(&format!("{path}.temperature"), format!("must be > 0, got {}", loss.temperature));
    }
    if !(0.0..=1.0).contains(&loss.alpha) {
        bad(&format!("{path}.alpha"), format!("must be in [0, 1], got {}", loss.alpha));
    }
    if let Some(terms) = &loss.terms {
        if loss.kind != LossKind::Kd {
            bad(&format!("{path}.kind"), "give either `kind` or `terms`, not both".into());
        }
        for (key, set) in [
            ("label_smoothing", loss.label_smoothing.is_some()),
            ("dkd_alpha", loss.dkd_alpha.is_some()),
            ("dkd_beta", loss.dkd_beta.is_some()),
            ("params", loss.params.is_some()),
        ] {
            if set {
                bad(&format!("{path}.{key}"), format!("with `terms`, `{key}` belongs inside the term it applies to"));
            }
        }
        if terms.is_empty() {
            bad(&format!("{path}.terms"), "must list at least one term".into());
        }
        if !terms.is_empty() && terms.values().all(|t| t.weight == 0.0) {
            bad(&format!("{path}.terms"), "at least one term needs a weight > 0".into());
        }
        for (name, term) in terms {
            let tp = format!("{path}.terms.{name}");
            let kind = LossKind::from(name.clone());
            if matches!(kind, LossKind::Plugin(_)) && !plugins_listed {
                bad(&tp, unknown(name));
            }
            if !(term.weight.is_finite() && term.weight >= 0.0) {
                bad(&format!("{tp}.weight"), format!("must be ≥ 0, got {}", term.weight));
            }
            check_loss_keys(&tp, &kind, term.temperature.is_some(), term.label_smoothing, term.dkd_alpha, term.dkd_beta, term.params.is_some(), bad);
            if let Some(t) = term.temperature {
                if !(t.is_finite() && t > 0.0) {
                    bad(&format!("{tp}.temperature"), format!("must be > 0, got {t}"));
                }
            }
        }
        return;
    }
    if let LossKind::Plugin(name) = &loss.kind {
        if !plugins_listed {
            bad(&format!("{path}.kind"), unknown(name));
        }
    }
    // temperature and alpha have defaults, so only the newer optional keys can be checked for kind.
    check_loss_keys(path, &loss.kind, false, loss.label_smoothing, loss.dkd_alpha, loss.dkd_beta, loss.params.is_some(), bad);
}

#[allow(clippy::too_many_arguments)]
fn check_loss_keys(
    path: &str,
    kind: &LossKind,
    temperature: bool,
    label_smoothing: Option<f64>,
    dkd_alpha: Option<f64>,
    dkd_beta: Option<f64>,
    params: bool,
    bad: &mut impl FnMut(&str, String),
) {
    let name = String::from(kind.clone());
    let plugin = matches!(kind, LossKind::Plugin(_));
    let soft = matches!(kind, LossKind::Kd | LossKind::SoftCe | LossKind::Dkd) || plugin;
    for (key, set, applies) in [
        ("temperature", temperature, soft),
        ("label_smoothing", label_smoothing.is_some(), *kind == LossKind::Ce),
        ("dkd_alpha", dkd_alpha.is_some(), *kind == LossKind::Dkd),
        ("dkd_beta", dkd_beta.is_some(), *kind == LossKind::Dkd),
    ] {
        if set && !applies {
            bad(&format!("{path}.{key}"), format!("`{key}` does not apply to the `{name}` loss"));
        }
    }
    if params && !plugin {
        bad(&format!("{path}.params"), "`params` is only for plugin losses".into());
    }
    if let Some(e) = label_smoothing {
        if !(0.0..1.0).contains(&e) {
            bad(&format!("{path}.label_smoothing"), format!("must be in [0, 1), got {e}"));
        }
    }
    for (key, v) in [("dkd_alpha", dkd_alpha), ("dkd_beta", dkd_beta)] {
        if let Some(v) = v {
            if !(v.is_finite() && v >= 0.0) {
                bad(&format!("{path}.{key}"), format!("must be ≥ 0, got {v}"));
            }
        }
    }
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

    fn train(text: &str) -> Vec<(String, String)> {
        let t: TrainSpec = serde_yaml::from_str(text).unwrap();
        problems(&t, |t, bad| validate_train("t", t, &mut |p: &str, s: String| bad(p, s)))
    }

    fn loss(text: &str) -> Vec<(String, String)> {
        let l: LossSpec = serde_yaml::from_str(text).unwrap();
        problems(&l, |l, bad| validate_loss("l", l, false, &mut |p: &str, s: String| bad(p, s)))
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
        let l: LossSpec = serde_yaml::from_str("{kind: kd, temperature: 4, alpha: 0.9}").unwrap();
        assert_eq!(serde_yaml::to_string(&l).unwrap(), "kind: kd\ntemperature: 4.0\nalpha: 0.9\nparams: null\n");
        assert!(loss("{kind: kd, temperature: 4, alpha: 0.9}").is_empty());
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

    #[test]
    fn optimiser_schedule_and_stopping_are_checked() {
        assert!(train("{optimizer: {kind: sgd, lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 5.0e-4}}").is_empty());
        assert!(train("{optimizer: {kind: adamw, lr: 0.001, betas: [0.9, 0.99], eps: 1.0e-7}}").is_empty());
        assert_eq!(train("{optimizer: {kind: adam, momentum: 0.9}}")[0].0, "t.optimizer.momentum");
        assert_eq!(train("{optimizer: {kind: sgd, nesterov: true}}")[0].0, "t.optimizer.nesterov");
        assert_eq!(train("{optimizer: {kind: sgd, betas: [0.9, 0.9]}}")[0].0, "t.optimizer.betas");
        assert!(train("{schedule: {kind: cosine, warmup_epochs: 1.5, min_lr: 0.0}, clip_grad_norm: 1.0, early_stopping: {patience: 3}}").is_empty());
        assert_eq!(train("{schedule: {kind: step}}")[0].0, "t.schedule.every");
        assert!(train("{schedule: {kind: step, every: 10, gamma: 0.5}}").is_empty());
        assert_eq!(train("{schedule: {kind: cosine, gamma: 0.5}}")[0].0, "t.schedule.gamma");
        assert_eq!(train("{clip_grad_norm: 0}")[0].0, "t.clip_grad_norm");
        assert_eq!(train("{early_stopping: {patience: 0}}")[0].0, "t.early_stopping.patience");
        assert!(serde_yaml::from_str::<TrainSpec>("{early_stopping: {patience: 2, monitor: loss}}").is_err());
        let adamw: OptimizerSpec = serde_yaml::from_str("{kind: adamw}").unwrap();
        assert_eq!(adamw.effective_weight_decay(), 0.01);
    }

    #[test]
    fn losses_and_terms_are_checked() {
        assert!(loss("{kind: ce, label_smoothing: 0.1}").is_empty());
        assert!(loss("{kind: dkd, temperature: 4, dkd_alpha: 1, dkd_beta: 8}").is_empty());
        assert!(loss("{kind: soft_ce, temperature: 3}").is_empty());
        assert!(loss("{kind: mse_logits}").is_empty());
        assert_eq!(loss("{kind: kd, label_smoothing: 0.1}")[0].0, "l.label_smoothing");
        assert_eq!(loss("{kind: ce, label_smoothing: 1.0}")[0].0, "l.label_smoothing");
        assert_eq!(loss("{kind: my_loss}")[0].0, "l.kind");
        let text = "{terms: {kd: {weight: 0.7, temperature: 4}, ce: {weight: 0.3, label_smoothing: 0.1}}}";
        assert!(loss(text).is_empty());
        let l: LossSpec = serde_yaml::from_str(text).unwrap();
        let terms = l.terms.unwrap();
        assert_eq!(terms.keys().collect::<Vec<_>>(), ["ce", "kd"]);
        assert_eq!(terms["kd"].temperature(), 4.0);
        assert_eq!(loss("{terms: {ce: {weight: 1, temperature: 3}}}")[0].0, "l.terms.ce.temperature");
        assert_eq!(loss("{terms: {ce: {weight: -1}}}")[0].0, "l.terms.ce.weight");
        assert_eq!(loss("{terms: {nope: {weight: 1}}}")[0].0, "l.terms.nope");
        assert_eq!(loss("{kind: ce, terms: {ce: {weight: 1}}}")[0].0, "l.kind");
        assert!(!loss("{terms: {}}").is_empty());
        assert!(serde_yaml::from_str::<LossSpec>("{terms: {ce: {weight: 1, alpha: 0.5}}}").is_err());
        assert!(serde_yaml::from_str::<LossSpec>("{terms: {ce: {}}}").is_err());
    }
}
