//! `student.loss`: one loss `kind` with that kind's keys, a plugin loss, or a weighted sum of
//! `terms` (a map of kind → term).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_yaml::{Mapping, Value};

use crate::tagged::{self, fields_of, Family, Kind, Nested};
use crate::HintTerm;

/// The student's loss: one `kind` with its parameters, or a weighted sum of `terms`.
///
/// Built-in kinds (means over the batch; hard-label terms count only rows with a label):
///
/// - `kd` (the default when `kind` is left out): Hinton et al. (2015),
///   `alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y)`.
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
#[derive(Debug, Clone, PartialEq)]
pub enum LossSpec {
    /// Hinton KD mixed with CE through `alpha`.
    Kd(KdLoss),
    /// Cross-entropy with the labels.
    Ce(CeLoss),
    /// Cross-entropy with the teacher's top class. No keys.
    TeacherHard,
    /// Cross-entropy against the teacher's softened distribution.
    SoftCe(SoftCeLoss),
    /// Mean squared error between logits. No keys.
    MseLogits,
    /// Decoupled KD.
    Dkd(DkdLoss),
    /// Provided by a plugin named in `plugins:`.
    Plugin(PluginLoss),
    /// A weighted sum of losses, keyed by kind, each with its `weight` and parameters, e.g.
    /// `{kd: {weight: 0.7, temperature: 4}, ce: {weight: 0.3}}`. Terms are added in key order.
    Terms(BTreeMap<String, LossTermSpec>),
}

/// `kd` (the default when `kind` is left out): Hinton et al. (2015),
/// `alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y)`, averaged over the
/// batch; the hard-label term counts only rows with a label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KdLoss {
    /// Softmax temperature T (> 0). Default 2.
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Weight of the soft term, in [0, 1]; the hard-label term gets `1 - alpha`. Default 0.5.
    #[serde(default = "default_alpha")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub alpha: f64,
}

/// `ce`: cross-entropy with the labels, with optional `label_smoothing` ε (target
/// `(1 - ε) * onehot(y) + ε / k`). Ignores the teacher (what the baseline uses).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CeLoss {
    /// Label smoothing ε in [0, 1). Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_smoothing: Option<f64>,
}

/// `soft_ce`: `T^2 * CE(softmax(t/T), softmax(s/T))`, cross-entropy against the teacher's
/// soft targets (the same gradients as `kd`'s soft part).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SoftCeLoss {
    /// Softmax temperature T (> 0). Default 2.
    #[serde(default = "default_temperature")]
    pub temperature: f64,
}

/// `dkd`: decoupled KD (Zhao et al., 2022), `T^2 * (dkd_alpha * TCKD + dkd_beta * NCKD)` at
/// temperature T: the target-class and the non-target-class parts of the KL. The target is the
/// label (the teacher's top class on rows without one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DkdLoss {
    /// Softmax temperature T (> 0). Default 2.
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Weight of the target-class term TCKD, ≥ 0. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dkd_alpha: Option<f64>,
    /// Weight of the non-target term NCKD, ≥ 0. Default 8 (the paper's CIFAR-100 value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dkd_beta: Option<f64>,
}

/// A loss from a plugin library named under `plugins:`: its name is the recipe's `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginLoss {
    /// The loss's name in its plugin (the recipe's `kind`).
    #[serde(skip)]
    pub name: String,
    /// Softmax temperature T (> 0), passed to the plugin. Default 2.
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Weight in [0, 1], passed to the plugin. Default 0.5.
    #[serde(default = "default_alpha")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub alpha: f64,
    /// Extra parameters, passed to the plugin as JSON with `temperature` and `alpha`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<serde_json::Map<String, serde_json::Value>>,
}

/// One term of a weighted-sum loss; its kind is its key in `terms`.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
pub struct LossTermSpec {
    /// The term's weight, ≥ 0.
    pub weight: f64,
    /// The term's loss and its keys.
    #[schemars(skip)]
    pub kind: LossKind,
}

/// The loss of a term.
#[derive(Debug, Clone, PartialEq)]
pub enum LossKind {
    /// The soft part of Hinton KD (`alpha: 1`): the CE part is a term of its own.
    Kd(KdTerm),
    Ce(CeLoss),
    TeacherHard,
    SoftCe(SoftCeLoss),
    MseLogits,
    Dkd(DkdLoss),
    Plugin(PluginTerm),
    /// A feature hint: not a loss on the logits but on a hidden layer (see [`HintTerm`]).
    Hint(HintTerm),
}

/// A `kd` term: the soft part of Hinton KD alone (`alpha: 1`); add a `ce` term for the labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KdTerm {
    /// Softmax temperature T (> 0). Default 2.
    #[serde(default = "default_temperature")]
    pub temperature: f64,
}

/// A term from a plugin library named under `plugins:`: its name is its key in `terms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginTerm {
    #[serde(skip)]
    pub name: String,
    /// Softmax temperature T (> 0), passed to the plugin. Default 2.
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Extra parameters, passed as JSON with `temperature` (and `alpha: 1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<serde_json::Map<String, serde_json::Value>>,
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

impl Default for KdLoss {
    fn default() -> Self {
        Self { temperature: default_temperature(), alpha: default_alpha() }
    }
}

impl Default for LossSpec {
    fn default() -> Self {
        LossSpec::Kd(KdLoss::default())
    }
}

/// The built-in losses; a loss's keys do not depend on whether it is alone or a term, except
/// `kd` (a term has no `alpha`).
static LOSSES: Family = Family {
    describe: |k| format!("the `{k}` loss"),
    kinds: &[
        Kind::of::<KdLoss>("kd"),
        Kind::of::<CeLoss>("ce"),
        Kind::unit("teacher_hard", TEACHER_HARD),
        Kind::of::<SoftCeLoss>("soft_ce"),
        Kind::unit("mse_logits", MSE_LOGITS),
        Kind::of::<DkdLoss>("dkd"),
    ],
    leading: &[],
    trailing: &[],
    tagged: true,
};

static TERMS: Family = Family {
    describe: |k| format!("the `{k}` term"),
    kinds: &[
        Kind::of::<KdTerm>("kd"),
        Kind::of::<CeLoss>("ce"),
        Kind::unit("teacher_hard", TEACHER_HARD),
        Kind::of::<SoftCeLoss>("soft_ce"),
        Kind::unit("mse_logits", MSE_LOGITS),
        Kind::of::<DkdLoss>("dkd"),
        Kind::of::<HintTerm>("hint"),
    ],
    leading: &["weight"],
    trailing: &[],
    tagged: false,
};

const TEACHER_HARD: &str =
    "`teacher_hard`: cross-entropy with the teacher's top class as the label on every row (pseudo-labelling, the control for soft targets). No keys.";
const MSE_LOGITS: &str = "`mse_logits`: the mean over classes of `(s - t)^2`, matching the logits directly (Ba & Caruana). No keys.";

impl LossSpec {
    /// The built-in loss kinds.
    pub const BUILT_IN: [&'static str; 6] = ["kd", "ce", "teacher_hard", "soft_ce", "mse_logits", "dkd"];

    /// The loss's `kind` (a plugin loss's name), or `terms` for a weighted sum.
    pub fn kind_name(&self) -> &str {
        match self {
            LossSpec::Kd(_) => "kd",
            LossSpec::Ce(_) => "ce",
            LossSpec::TeacherHard => "teacher_hard",
            LossSpec::SoftCe(_) => "soft_ce",
            LossSpec::MseLogits => "mse_logits",
            LossSpec::Dkd(_) => "dkd",
            LossSpec::Plugin(p) => &p.name,
            LossSpec::Terms(_) => "terms",
        }
    }

    /// Every plugin loss the recipe names, as (key path, name): the loss itself or its terms.
    pub fn plugin_losses(&self) -> Vec<(String, &str)> {
        match self {
            LossSpec::Plugin(p) => vec![("kind".into(), p.name.as_str())],
            LossSpec::Terms(terms) => {
                terms.iter().filter(|(_, t)| matches!(t.kind, LossKind::Plugin(_))).map(|(key, _)| (format!("terms.{key}"), key.as_str())).collect()
            }
            _ => Vec::new(),
        }
    }
}

impl PluginLoss {
    /// The parameters the plugin receives: `params` plus `temperature` and `alpha`.
    pub fn plugin_params(&self) -> serde_json::Value {
        let mut map = self.params.clone().unwrap_or_default();
        map.entry("temperature").or_insert(self.temperature.into());
        map.entry("alpha").or_insert(self.alpha.into());
        serde_json::Value::Object(map)
    }
}

impl PluginTerm {
    /// The parameters a plugin term receives: `params` plus `temperature` and `alpha: 1`
    /// (the weight is applied by the host).
    pub fn plugin_params(&self) -> serde_json::Value {
        let mut map = self.params.clone().unwrap_or_default();
        map.entry("temperature").or_insert(self.temperature.into());
        map.entry("alpha").or_insert(1.0.into());
        serde_json::Value::Object(map)
    }
}

impl LossKind {
    pub fn name(&self) -> &str {
        match self {
            LossKind::Kd(_) => "kd",
            LossKind::Ce(_) => "ce",
            LossKind::TeacherHard => "teacher_hard",
            LossKind::SoftCe(_) => "soft_ce",
            LossKind::MseLogits => "mse_logits",
            LossKind::Dkd(_) => "dkd",
            LossKind::Plugin(p) => &p.name,
            LossKind::Hint(_) => "hint",
        }
    }
}

impl JsonSchema for LossSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "LossSpec".into()
    }

    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        use crate::schema::Shape;
        let plugin = (PluginLoss::json_schema(g), "A loss from a plugin library named under `plugins:` (its name is the `kind`).");
        let mut schema = LOSSES.tagged_schema(
            g,
            &Shape {
                description: "The student's loss: one `kind` (default `kd`) with that kind's keys, a plugin's loss, or a weighted sum of `terms`.",
                default_kind: Some("kd"),
                plugin: Some(plugin),
                ..Default::default()
            },
        );
        let plugin_term = (PluginTerm::json_schema(g), "A term from a plugin library named under `plugins:` (its name is the key).");
        let shared = Some(LossTermSpec::json_schema(g));
        let terms = TERMS.keyed_schema(
            g,
            &Shape {
                description: "Loss kind → its term: `weight` and that loss's keys (a `kd` term has no `alpha`).",
                shared,
                plugin: Some(plugin_term),
                ..Default::default()
            },
        );
        let weighted = serde_json::json!({
            "title": "terms",
            "description": "A weighted sum of losses, keyed by kind, each with its `weight` and that loss's keys, e.g. `{kd: {weight: 0.7, temperature: 4}, ce: {weight: 0.3}}`. Terms are added in key order.",
            "type": "object",
            "properties": { "terms": terms },
            "required": ["terms"],
            "additionalProperties": false
        });
        if let Some(serde_json::Value::Array(kinds)) = schema.get_mut("oneOf") {
            kinds.push(weighted);
        }
        schema
    }
}

impl<'de> Deserialize<'de> for LossSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = tagged::mapping(d, "the loss")?;
        read_loss(map).map_err(serde::de::Error::custom)
    }
}

fn read_loss(mut map: Mapping) -> Result<LossSpec, Nested> {
    if map.contains_key("terms") {
        return read_terms(map);
    }
    let kind = tagged::take_kind(&mut map)?.unwrap_or_else(|| "kd".into());
    let f = &LOSSES;
    Ok(match kind.as_str() {
        "kd" => LossSpec::Kd(f.body(&kind, map)?),
        "ce" => LossSpec::Ce(f.body(&kind, map)?),
        "teacher_hard" => f.no_body(&kind, map).map(|_| LossSpec::TeacherHard)?,
        "soft_ce" => LossSpec::SoftCe(f.body(&kind, map)?),
        "mse_logits" => f.no_body(&kind, map).map(|_| LossSpec::MseLogits)?,
        "dkd" => LossSpec::Dkd(f.body(&kind, map)?),
        // Any other name is a plugin's loss (checked against the plugins once they load).
        name => LossSpec::Plugin(PluginLoss { name: name.to_string(), ..f.body_with(name, fields_of::<PluginLoss>(), map)? }),
    })
}

/// `{terms: {...}}`: every other key belongs inside a term.
fn read_terms(mut map: Mapping) -> Result<LossSpec, Nested> {
    let Some(terms) = map.remove("terms") else { return Ok(LossSpec::Terms(BTreeMap::new())) };
    if let Some(key) = map.keys().next() {
        let key = key.as_str().unwrap_or("?").to_string();
        return Err(match key.as_str() {
            "kind" => Nested::at("kind", "give either `kind` or `terms`, not both"),
            k if LOSSES.takes(k) || k == "params" => Nested::at(k, format!("with `terms`, `{k}` belongs inside the term it applies to")),
            k => Nested::at(k, format!("unknown field `{k}`, expected `kind` or `terms`")),
        });
    }
    let terms = match terms {
        Value::Mapping(m) => m,
        Value::Null => Mapping::new(),
        other => return Err(Nested::at("terms", format!("invalid type: {other:?}, expected a map of loss kind → term"))),
    };
    let mut out = BTreeMap::new();
    for (key, value) in terms {
        let Value::String(name) = key else { return Err(Nested::at("terms", "term names must be loss kinds (text)")) };
        let at = format!("terms.{name}");
        let Value::Mapping(term) = value else { return Err(Nested::at(at, "a term is a mapping with `weight` and its loss's keys")) };
        let term = read_term(&name, term).map_err(|e| e.within(&at))?;
        out.insert(name, term);
    }
    Ok(LossSpec::Terms(out))
}

/// One term: `weight` and the keys of the loss its name (`kind`) gives.
fn read_term(kind: &str, mut map: Mapping) -> Result<LossTermSpec, Nested> {
    let f = &TERMS;
    let weight = match map.remove("weight") {
        None => return Err(Nested::at("", format!("{} needs `weight`", (f.describe)(kind)))),
        Some(w) => f64::deserialize(w).map_err(|e| Nested::at("weight", e.to_string()))?,
    };
    let loss = match kind {
        "kd" => LossKind::Kd(f.body(kind, map)?),
        "ce" => LossKind::Ce(f.body(kind, map)?),
        "teacher_hard" => f.no_body(kind, map).map(|_| LossKind::TeacherHard)?,
        "soft_ce" => LossKind::SoftCe(f.body(kind, map)?),
        "mse_logits" => f.no_body(kind, map).map(|_| LossKind::MseLogits)?,
        "dkd" => LossKind::Dkd(f.body(kind, map)?),
        "hint" => LossKind::Hint(f.body(kind, map)?),
        name => LossKind::Plugin(PluginTerm { name: name.to_string(), ..f.body_with(name, fields_of::<PluginTerm>(), map)? }),
    };
    Ok(LossTermSpec { weight, kind: loss })
}

impl Serialize for LossSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (none, kind) = (Mapping::new, Some(self.kind_name()));
        match self {
            LossSpec::Kd(l) => tagged::serialize_tagged(s, none(), kind, l, none()),
            LossSpec::Ce(l) => tagged::serialize_tagged(s, none(), kind, l, none()),
            LossSpec::TeacherHard | LossSpec::MseLogits => tagged::serialize_tagged(s, none(), kind, &(), none()),
            LossSpec::SoftCe(l) => tagged::serialize_tagged(s, none(), kind, l, none()),
            LossSpec::Dkd(l) => tagged::serialize_tagged(s, none(), kind, l, none()),
            LossSpec::Plugin(l) => tagged::serialize_tagged(s, none(), kind, l, none()),
            LossSpec::Terms(terms) => {
                let mut out = Mapping::new();
                out.insert("terms".into(), serde_yaml::to_value(terms).map_err(serde::ser::Error::custom)?);
                out.serialize(s)
            }
        }
    }
}

impl Serialize for LossTermSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut weight = Mapping::new();
        weight.insert("weight".into(), self.weight.into());
        let none = Mapping::new;
        match &self.kind {
            LossKind::Kd(l) => tagged::serialize_tagged(s, weight, None, l, none()),
            LossKind::Ce(l) => tagged::serialize_tagged(s, weight, None, l, none()),
            LossKind::TeacherHard | LossKind::MseLogits => tagged::serialize_tagged(s, weight, None, &(), none()),
            LossKind::SoftCe(l) => tagged::serialize_tagged(s, weight, None, l, none()),
            LossKind::Dkd(l) => tagged::serialize_tagged(s, weight, None, l, none()),
            LossKind::Plugin(l) => tagged::serialize_tagged(s, weight, None, l, none()),
            LossKind::Hint(l) => tagged::serialize_tagged(s, weight, None, l, none()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate_loss;

    fn loss(text: &str) -> Vec<(String, String)> {
        let l: LossSpec = serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let mut out = Vec::new();
        validate_loss("l", &l, false, &mut |p: &str, m: String| out.push((p.to_string(), m)));
        out
    }

    fn parse_error(text: &str) -> String {
        serde_yaml::from_str::<LossSpec>(text).unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_kd_at_t2_alpha_half() {
        let kd = LossSpec::Kd(KdLoss { temperature: 2.0, alpha: 0.5 });
        assert_eq!(LossSpec::default(), kd);
        assert_eq!(serde_yaml::from_str::<LossSpec>("{}").unwrap(), kd, "a loss without `kind` is kd");
        assert_eq!(serde_yaml::from_str::<LossSpec>("{temperature: 4}").unwrap(), LossSpec::Kd(KdLoss { temperature: 4.0, alpha: 0.5 }));
        let dkd: LossSpec = serde_yaml::from_str("{kind: dkd}").unwrap();
        assert_eq!(dkd, LossSpec::Dkd(DkdLoss { temperature: 2.0, dkd_alpha: None, dkd_beta: None }));
    }

    #[test]
    fn losses_and_terms_are_checked() {
        assert!(loss("{kind: ce, label_smoothing: 0.1}").is_empty());
        assert!(loss("{kind: dkd, temperature: 4, dkd_alpha: 1, dkd_beta: 8}").is_empty());
        assert!(loss("{kind: soft_ce, temperature: 3}").is_empty());
        assert!(loss("{kind: mse_logits}").is_empty());
        assert_eq!(loss("{kind: ce, label_smoothing: 1.0}")[0].0, "l.label_smoothing");
        assert_eq!(loss("{kind: kd, temperature: -1}")[0].0, "l.temperature");
        assert_eq!(loss("{kind: kd, alpha: 2}")[0].0, "l.alpha");
        assert_eq!(loss("{kind: my_loss}")[0].0, "l.kind");
        assert!(loss("{kind: my_loss}")[0].1.contains("a plugin loss needs its library under `plugins:`"));
        let text = "{terms: {kd: {weight: 0.7, temperature: 4}, ce: {weight: 0.3, label_smoothing: 0.1}}}";
        assert!(loss(text).is_empty());
        let LossSpec::Terms(terms) = serde_yaml::from_str(text).unwrap() else { panic!("terms") };
        assert_eq!(terms.keys().collect::<Vec<_>>(), ["ce", "kd"]);
        assert_eq!(terms["kd"].kind, LossKind::Kd(KdTerm { temperature: 4.0 }));
        assert_eq!(loss("{terms: {ce: {weight: -1}}}")[0].0, "l.terms.ce.weight");
        assert_eq!(loss("{terms: {nope: {weight: 1}}}")[0].0, "l.terms.nope");
        assert_eq!(loss("{terms: {ce: {weight: 0}}}")[0].0, "l.terms");
        assert!(!loss("{terms: {}}").is_empty());
    }

    #[test]
    fn keys_of_another_kind_are_errors_at_their_key() {
        assert_eq!(parse_error("{kind: kd, temprature: 4}"), "temprature: unknown field `temprature`, expected one of `kind`, `temperature`, `alpha`");
        assert_eq!(
            parse_error("{kind: kd, label_smoothing: 0.1}"),
            "label_smoothing: `label_smoothing` does not apply to the `kd` loss; expected one of `kind`, `temperature`, `alpha`"
        );
        assert!(parse_error("{kind: ce, temperature: 3}").starts_with("temperature: `temperature` does not apply to the `ce` loss"));
        assert_eq!(parse_error("{kind: mse_logits, alpha: 1}"), "alpha: `alpha` does not apply to the `mse_logits` loss; expected `kind`");
        assert!(parse_error("{kind: cosine_kd, label_smoothing: 1}").starts_with("label_smoothing: `label_smoothing` does not apply to the `cosine_kd` loss"));
        assert_eq!(parse_error("{kind: ce, terms: {ce: {weight: 1}}}"), "kind: give either `kind` or `terms`, not both");
        assert_eq!(
            parse_error("{terms: {ce: {weight: 1}}, label_smoothing: 0.1}"),
            "label_smoothing: with `terms`, `label_smoothing` belongs inside the term it applies to"
        );
        assert_eq!(
            parse_error("{terms: {ce: {weight: 1, temperature: 3}}}"),
            "terms.ce.temperature: `temperature` does not apply to the `ce` term; expected `weight` or `label_smoothing`"
        );
        assert_eq!(parse_error("{terms: {ce: {weight: 1, alpha: 0.5}}}"), "terms.ce.alpha: unknown field `alpha`, expected `weight` or `label_smoothing`");
        assert_eq!(parse_error("{terms: {kd: {weight: 1, alpha: 0.5}}}"), "terms.kd.alpha: unknown field `alpha`, expected `weight` or `temperature`");
        assert_eq!(parse_error("{terms: {ce: {}}}"), "terms.ce: the `ce` term needs `weight`");
        assert!(parse_error("{terms: {ce: {weight: x}}}").starts_with("terms.ce.weight: invalid type: string \"x\", expected f64"));
        assert!(parse_error("kd").contains("expected the loss as a mapping"));
    }

    #[test]
    fn losses_serialise_in_the_recipes_form_and_read_back() {
        for (text, yaml) in [
            ("{kind: kd, temperature: 4, alpha: 0.9}", "kind: kd\ntemperature: 4.0\nalpha: 0.9\n"),
            ("{kind: ce}", "kind: ce\n"),
            ("{kind: ce, label_smoothing: 0.1}", "kind: ce\nlabel_smoothing: 0.1\n"),
            ("{kind: teacher_hard}", "kind: teacher_hard\n"),
            ("{kind: mse_logits}", "kind: mse_logits\n"),
            ("{kind: soft_ce}", "kind: soft_ce\ntemperature: 2.0\n"),
            ("{kind: dkd, dkd_beta: 4}", "kind: dkd\ntemperature: 2.0\ndkd_beta: 4.0\n"),
            ("{kind: cosine_kd, params: {margin: 0.1}}", "kind: cosine_kd\ntemperature: 2.0\nalpha: 0.5\nparams:\n  margin: 0.1\n"),
            (
                "{terms: {kd: {weight: 0.7, temperature: 4}, ce: {weight: 0.3}, mine: {weight: 1, params: {p: 1}}}}",
                "terms:\n  ce:\n    weight: 0.3\n  kd:\n    weight: 0.7\n    temperature: 4.0\n  mine:\n    weight: 1.0\n    temperature: 2.0\n    params:\n      p: 1\n",
            ),
        ] {
            let l: LossSpec = serde_yaml::from_str(text).unwrap();
            assert_eq!(serde_yaml::to_string(&l).unwrap(), yaml, "{text}");
            assert_eq!(serde_yaml::from_str::<LossSpec>(yaml).unwrap(), l, "{text} reads back");
        }
    }

    #[test]
    fn plugin_losses_get_their_parameters() {
        let LossSpec::Plugin(p) = serde_yaml::from_str("{kind: cosine_kd, alpha: 0.3, params: {margin: 0.1}}").unwrap() else { panic!("plugin") };
        assert_eq!(p.name, "cosine_kd");
        assert_eq!(p.plugin_params(), serde_json::json!({"margin": 0.1, "temperature": 2.0, "alpha": 0.3}));
        let l: LossSpec = serde_yaml::from_str("{terms: {ce: {weight: 1}, mine: {weight: 2}}}").unwrap();
        assert_eq!(l.plugin_losses(), [("terms.mine".to_string(), "mine")]);
    }
}
