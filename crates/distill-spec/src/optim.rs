//! `train.optimizer` and `train.schedule`: one struct per optimiser and per schedule kind.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_yaml::Mapping;

use crate::tagged::{self, Family, Kind, Nested};

/// The optimiser: `adam` (the default when `kind` is left out), `adamw` or `sgd`.
///
/// ```yaml
/// optimizer: {kind: adamw, lr: 1.0e-3, weight_decay: 0.01}
/// optimizer: {kind: sgd, lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 5.0e-4}
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum OptimizerSpec {
    /// Adam (Kingma & Ba); `weight_decay` is L2 regularisation.
    Adam(AdamSpec),
    /// Adam with decoupled weight decay (Loshchilov & Hutter).
    AdamW(AdamSpec),
    /// Stochastic gradient descent, optionally with (Nesterov) momentum.
    Sgd(SgdSpec),
}

/// `adam` and `adamw`: Adam (Kingma & Ba), with L2 or decoupled weight decay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdamSpec {
    /// Learning rate (the peak rate when a `schedule` is given). Default 1.0e-3.
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Weight decay, ≥ 0. `adam` adds it to the gradient (L2 regularisation); `adamw` applies it
    /// to the weights directly (decoupled, Loshchilov & Hutter). Default: 0, and 0.01 for
    /// `adamw` (PyTorch's defaults). Applies to every parameter, biases included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
    /// The moment decay rates β1, β2, each in [0, 1). Default `[0.9, 0.999]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub betas: Option<[f64; 2]>,
    /// The denominator's ε, > 0. Default 1.0e-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eps: Option<f64>,
}

/// `sgd`: stochastic gradient descent, optionally with (Nesterov) momentum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SgdSpec {
    /// Learning rate (the peak rate when a `schedule` is given). Default 1.0e-3.
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Weight decay, ≥ 0, added to the gradient (L2 regularisation). Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
    /// Momentum in [0, 1). Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub momentum: Option<f64>,
    /// Nesterov momentum (needs `momentum` > 0). Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nesterov: Option<bool>,
}

fn default_lr() -> f64 {
    1e-3
}

impl Default for AdamSpec {
    fn default() -> Self {
        Self { lr: default_lr(), weight_decay: None, betas: None, eps: None }
    }
}

impl Default for OptimizerSpec {
    fn default() -> Self {
        OptimizerSpec::Adam(AdamSpec::default())
    }
}

static OPTIMIZERS: Family = Family {
    describe: |k| format!("the `{k}` optimizer"),
    kinds: &[
        Kind::noted::<AdamSpec>("adam", "Adam (Kingma & Ba); `weight_decay` is L2 regularisation added to the gradient."),
        Kind::noted::<AdamSpec>("adamw", "Adam with decoupled weight decay (Loshchilov & Hutter); `weight_decay` defaults to 0.01."),
        Kind::of::<SgdSpec>("sgd"),
    ],
    leading: &[],
    trailing: &[],
    tagged: true,
};

impl OptimizerSpec {
    pub fn as_str(&self) -> &'static str {
        match self {
            OptimizerSpec::Adam(_) => "adam",
            OptimizerSpec::AdamW(_) => "adamw",
            OptimizerSpec::Sgd(_) => "sgd",
        }
    }

    /// The (peak) learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            OptimizerSpec::Adam(a) | OptimizerSpec::AdamW(a) => a.lr,
            OptimizerSpec::Sgd(s) => s.lr,
        }
    }

    /// The weight decay in effect: the given one, else 0.01 for `adamw` and 0 otherwise.
    pub fn effective_weight_decay(&self) -> f64 {
        match self {
            OptimizerSpec::Adam(a) => a.weight_decay.unwrap_or(0.0),
            OptimizerSpec::AdamW(a) => a.weight_decay.unwrap_or(0.01),
            OptimizerSpec::Sgd(s) => s.weight_decay.unwrap_or(0.0),
        }
    }
}

impl JsonSchema for OptimizerSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "OptimizerSpec".into()
    }

    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        OPTIMIZERS.tagged_schema(
            g,
            &crate::schema::Shape {
                description: "The optimiser: `adam` (the default when `kind` is left out), `adamw` or `sgd`, with that kind's keys.",
                default_kind: Some("adam"),
                ..Default::default()
            },
        )
    }
}

impl<'de> Deserialize<'de> for OptimizerSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut map = tagged::mapping(d, "the optimizer")?;
        let read = |map: &mut Mapping| -> Result<Self, Nested> {
            let kind = tagged::take_kind(map)?.unwrap_or_else(|| "adam".into());
            let (f, rest) = (&OPTIMIZERS, std::mem::take(map));
            Ok(match kind.as_str() {
                "adam" => OptimizerSpec::Adam(f.body(&kind, rest)?),
                "adamw" => OptimizerSpec::AdamW(f.body(&kind, rest)?),
                "sgd" => OptimizerSpec::Sgd(f.body(&kind, rest)?),
                other => return Err(f.unknown_kind(other)),
            })
        };
        read(&mut map).map_err(serde::de::Error::custom)
    }
}

impl Serialize for OptimizerSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let kind = Some(self.as_str());
        match self {
            OptimizerSpec::Adam(o) | OptimizerSpec::AdamW(o) => tagged::serialize_tagged(s, Mapping::new(), kind, o, Mapping::new()),
            OptimizerSpec::Sgd(o) => tagged::serialize_tagged(s, Mapping::new(), kind, o, Mapping::new()),
        }
    }
}

/// A learning-rate schedule over the whole run, with an optional linear warm-up: `constant`
/// (the default when `kind` is left out), `step` or `cosine`.
///
/// ```yaml
/// schedule: {kind: cosine, warmup_epochs: 2, min_lr: 1.0e-5}
/// schedule: {kind: step, every: 30, gamma: 0.1}
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum ScheduleSpec {
    /// The rate stays at `lr` (after any warm-up).
    Constant(ConstantSchedule),
    /// Step decay: `lr * gamma^(epoch / every)`.
    Step(StepSchedule),
    /// Half a cosine from `lr` down to `min_lr` over the steps after the warm-up.
    Cosine(CosineSchedule),
}

/// `constant` (the default): the rate stays at `lr` after any warm-up.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConstantSchedule {
    /// Linear warm-up: the rate rises from `lr / warm-up steps` to `lr` over this many epochs
    /// (fractions allowed) before the schedule starts. Default 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub warmup_epochs: f64,
}

/// `step`: step decay, `lr * gamma^(epoch / every)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepSchedule {
    /// Linear warm-up epochs before the schedule starts (as for `constant`). Default 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub warmup_epochs: f64,
    /// Epochs between decays, ≥ 1 (required).
    pub every: usize,
    /// The factor applied at each decay, in (0, 1]. Default 0.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gamma: Option<f64>,
}

/// `cosine`: half a cosine from `lr` down to `min_lr` over the steps after the warm-up.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CosineSchedule {
    /// Linear warm-up epochs before the schedule starts (as for `constant`). Default 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub warmup_epochs: f64,
    /// The final learning rate, in [0, lr]. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_lr: Option<f64>,
}

pub(crate) fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

static SCHEDULES: Family = Family {
    describe: |k| format!("a `{k}` schedule"),
    kinds: &[Kind::of::<ConstantSchedule>("constant"), Kind::of::<StepSchedule>("step"), Kind::of::<CosineSchedule>("cosine")],
    leading: &[],
    trailing: &[],
    tagged: true,
};

impl ScheduleSpec {
    pub fn as_str(&self) -> &'static str {
        match self {
            ScheduleSpec::Constant(_) => "constant",
            ScheduleSpec::Step(_) => "step",
            ScheduleSpec::Cosine(_) => "cosine",
        }
    }

    /// Warm-up epochs before the schedule starts.
    pub fn warmup_epochs(&self) -> f64 {
        match self {
            ScheduleSpec::Constant(s) => s.warmup_epochs,
            ScheduleSpec::Step(s) => s.warmup_epochs,
            ScheduleSpec::Cosine(s) => s.warmup_epochs,
        }
    }
}

impl JsonSchema for ScheduleSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ScheduleSpec".into()
    }

    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        SCHEDULES.tagged_schema(
            g,
            &crate::schema::Shape {
                description: "A learning-rate schedule with an optional linear warm-up: `constant` (the default when `kind` is left out), `step` or `cosine`.",
                default_kind: Some("constant"),
                ..Default::default()
            },
        )
    }
}

impl<'de> Deserialize<'de> for ScheduleSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut map = tagged::mapping(d, "the schedule")?;
        let read = |map: &mut Mapping| -> Result<Self, Nested> {
            let kind = tagged::take_kind(map)?.unwrap_or_else(|| "constant".into());
            let (f, rest) = (&SCHEDULES, std::mem::take(map));
            Ok(match kind.as_str() {
                "constant" => ScheduleSpec::Constant(f.body(&kind, rest)?),
                "step" => ScheduleSpec::Step(f.body(&kind, rest)?),
                "cosine" => ScheduleSpec::Cosine(f.body(&kind, rest)?),
                other => return Err(f.unknown_kind(other)),
            })
        };
        read(&mut map).map_err(serde::de::Error::custom)
    }
}

impl Serialize for ScheduleSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let kind = Some(self.as_str());
        match self {
            ScheduleSpec::Constant(c) => tagged::serialize_tagged(s, Mapping::new(), kind, c, Mapping::new()),
            ScheduleSpec::Step(c) => tagged::serialize_tagged(s, Mapping::new(), kind, c, Mapping::new()),
            ScheduleSpec::Cosine(c) => tagged::serialize_tagged(s, Mapping::new(), kind, c, Mapping::new()),
        }
    }
}

/// Values of an optimiser (`path` is its key).
pub(crate) fn validate_optimizer(path: &str, o: &OptimizerSpec, bad: &mut impl FnMut(&str, String)) {
    let lr = o.lr();
    if !(lr.is_finite() && lr > 0.0) {
        bad(&format!("{path}.lr"), format!("must be > 0, got {lr}"));
    }
    let weight_decay = match o {
        OptimizerSpec::Adam(a) | OptimizerSpec::AdamW(a) => a.weight_decay,
        OptimizerSpec::Sgd(s) => s.weight_decay,
    };
    if let Some(wd) = weight_decay {
        if !(wd.is_finite() && wd >= 0.0) {
            bad(&format!("{path}.weight_decay"), format!("must be ≥ 0, got {wd}"));
        }
    }
    match o {
        OptimizerSpec::Adam(a) | OptimizerSpec::AdamW(a) => {
            for (i, b) in a.betas.iter().flatten().enumerate() {
                if !(0.0..1.0).contains(b) {
                    bad(&format!("{path}.betas[{i}]"), format!("must be in [0, 1), got {b}"));
                }
            }
            if let Some(eps) = a.eps {
                if !(eps.is_finite() && eps > 0.0) {
                    bad(&format!("{path}.eps"), format!("must be > 0, got {eps}"));
                }
            }
        }
        OptimizerSpec::Sgd(s) => {
            if let Some(m) = s.momentum {
                if !(0.0..1.0).contains(&m) {
                    bad(&format!("{path}.momentum"), format!("must be in [0, 1), got {m}"));
                }
            }
            if s.nesterov == Some(true) && s.momentum.unwrap_or(0.0) <= 0.0 {
                bad(&format!("{path}.nesterov"), "Nesterov momentum needs `momentum` > 0".into());
            }
        }
    }
}

/// Values of a schedule (`path` is its key); `lr` is the optimiser's.
pub(crate) fn validate_schedule(path: &str, s: &ScheduleSpec, lr: f64, bad: &mut impl FnMut(&str, String)) {
    let warmup = s.warmup_epochs();
    if !(warmup.is_finite() && warmup >= 0.0) {
        bad(&format!("{path}.warmup_epochs"), format!("must be ≥ 0, got {warmup}"));
    }
    match s {
        ScheduleSpec::Constant(_) => {}
        ScheduleSpec::Step(step) => {
            if step.every == 0 {
                bad(&format!("{path}.every"), "must be at least 1".into());
            }
            if let Some(g) = step.gamma {
                if !(g > 0.0 && g <= 1.0) {
                    bad(&format!("{path}.gamma"), format!("must be in (0, 1], got {g}"));
                }
            }
        }
        ScheduleSpec::Cosine(c) => {
            if let Some(m) = c.min_lr {
                if !(m.is_finite() && m >= 0.0 && m <= lr) {
                    bad(&format!("{path}.min_lr"), format!("must be in [0, lr = {lr}], got {m}"));
                }
            }
        }
    }
}
