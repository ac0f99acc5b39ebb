//! `sweep:` — many students from one recipe: a grid (every combination) and/or a zip (lists
//! walked together) over any recipe keys, optionally a seeded random sample of the points. Each
//! point is the recipe with those keys set, checked like a `--set` (an unknown key or a value of
//! the wrong type is an error at the sweep key's line before anything runs).

use std::collections::BTreeMap;
use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_yaml::Value;

use crate::{Pipeline, SpecError, SpecErrors};

/// ```yaml
/// sweep:
///   grid:
///     student.model.hidden: [[8], [16], [32]]
///     student.loss.temperature: [1, 2, 4]
///   zip: {student.loss.alpha: [0.5, 0.9], student.train.epochs: [60, 120]}
///   sample: {n: 6, seed: 1}
///   objective: smallest
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// Recipe keys (dotted paths, as for `--set`) and their values; every combination is a point.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "BTreeMap<String, Vec<serde_json::Value>>", extend("propertyNames" = { "pattern": KEY_PATH, "not": { "pattern": SWEEP_KEY } }, "additionalProperties" = { "type": "array", "minItems": 1 }))]
    pub grid: BTreeMap<String, Vec<Value>>,
    /// Keys whose value lists (all the same length) are walked together; each position is
    /// combined with every grid combination.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "BTreeMap<String, Vec<serde_json::Value>>", extend("propertyNames" = { "pattern": KEY_PATH, "not": { "pattern": SWEEP_KEY } }, "additionalProperties" = { "type": "array", "minItems": 1 }))]
    pub zip: BTreeMap<String, Vec<Value>>,
    /// Run only a seeded random sample of `n` of the points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<SampleSpec>,
    /// What the recommendation minimises among the points that meet every target on the
    /// validation split: `smallest` (parameters, the default) or `fastest` (p95 latency; needs
    /// `evaluate.latency`).
    #[serde(default)]
    pub objective: Objective,
    /// Points trained at once (default 1). The machine's threads are shared out among them
    /// (`threads / parallel` each); the first point runs alone, so the shared teacher is trained
    /// once. Results do not depend on it: the products split their outputs among threads, never
    /// their sums.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub parallel: usize,
}

fn one() -> usize {
    1
}

/// A dotted recipe key, as `--set` takes it (`student.model.hidden`, `data.checks.0.min`).
const KEY_PATH: &str = r"^[^.]+(\.[^.]+)*$";
/// A sweep cannot sweep itself.
const SWEEP_KEY: &str = r"^sweep(\.|$)";

/// `sample`: a seeded random sample of the sweep's points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleSpec {
    /// How many points, ≥ 1 (all of them when there are fewer).
    #[schemars(range(min = 1))]
    pub n: usize,
    /// Seed of the sample (default 0).
    #[serde(default)]
    pub seed: u64,
}

/// What a sweep's recommendation minimises.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// The fewest parameters.
    #[default]
    Smallest,
    /// The lowest p95 latency (needs `evaluate.latency`).
    Fastest,
}

/// One point of a sweep: the keys it sets and the recipe with them set.
#[derive(Debug, Clone)]
pub struct SweepPoint {
    /// Position in the sweep's full list of points (before sampling); `sets` identify the point.
    pub index: usize,
    /// (key, value) in key order.
    pub sets: Vec<(String, Value)>,
    pub pipeline: Pipeline,
}

impl SweepPoint {
    /// `student.model.hidden=[16] student.loss.temperature=2`.
    pub fn label(&self) -> String {
        self.sets.iter().map(|(k, v)| format!("{k}={}", inline(v))).collect::<Vec<_>>().join(" ")
    }
}

/// A YAML value on one line (`[16, 16]`, `2`, `kd`).
pub fn inline(value: &Value) -> String {
    match value {
        Value::Sequence(items) => format!("[{}]", items.iter().map(inline).collect::<Vec<_>>().join(", ")),
        Value::Mapping(map) => format!("{{{}}}", map.iter().map(|(k, v)| format!("{}: {}", inline(k), inline(v))).collect::<Vec<_>>().join(", ")),
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        other => serde_yaml::to_string(other).map(|s| s.trim().to_string()).unwrap_or_default(),
    }
}

/// Problems of the section itself (empty lists, ragged zips, a sample of nothing).
pub(crate) fn validate(sweep: &SweepSpec) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if sweep.grid.is_empty() && sweep.zip.is_empty() {
        out.push(("sweep".into(), "a sweep needs `grid` or `zip` keys".into()));
    }
    for (section, keys) in [("grid", &sweep.grid), ("zip", &sweep.zip)] {
        for (key, values) in keys {
            if values.is_empty() {
                out.push((format!("sweep.{section}"), format!("`{key}` has no values")));
            }
            if key == "sweep" || key.starts_with("sweep.") {
                out.push((format!("sweep.{section}"), "a sweep cannot sweep itself".into()));
            }
        }
    }
    let lengths: Vec<usize> = sweep.zip.values().map(Vec::len).collect();
    if lengths.windows(2).any(|w| w[0] != w[1]) {
        out.push(("sweep.zip".into(), format!("zip lists must have one length, got {lengths:?}")));
    }
    if sweep.parallel == 0 {
        out.push(("sweep.parallel".into(), "must be at least 1".into()));
    }
    if sweep.sample.as_ref().is_some_and(|s| s.n == 0) {
        out.push(("sweep.sample.n".into(), "must be at least 1".into()));
    }
    out
}

/// Every point's key settings, grid combinations (last key fastest) times zip positions, then
/// the sample if one is asked for; each with its index in the full list.
pub fn expand(sweep: &SweepSpec) -> Vec<(usize, Vec<(String, Value)>)> {
    let mut combos: Vec<Vec<(String, Value)>> = vec![Vec::new()];
    for (key, values) in &sweep.grid {
        combos = combos.into_iter().flat_map(|c| values.iter().map(move |v| [c.clone(), vec![(key.clone(), v.clone())]].concat())).collect();
    }
    let zip_len = sweep.zip.values().map(Vec::len).min().unwrap_or(0);
    if zip_len > 0 {
        combos = combos
            .into_iter()
            .flat_map(|c| (0..zip_len).map(move |i| [c.clone(), sweep.zip.iter().map(|(k, v)| (k.clone(), v[i].clone())).collect()].concat()))
            .collect();
    }
    let mut points: Vec<(usize, Vec<(String, Value)>)> = combos
        .into_iter()
        .map(|mut c| {
            c.sort_by(|a, b| a.0.cmp(&b.0));
            c
        })
        .enumerate()
        .collect();
    if let Some(sample) = &sweep.sample {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(sample.seed);
        points.shuffle(&mut rng);
        points.truncate(sample.n);
        points.sort_by_key(|(i, _)| *i);
    }
    points
}

/// The recipe at every point of its sweep (none without one). `overrides` are the command
/// line's `--set` values, applied before the point's own. A point that does not load is an error
/// at its sweep key's line.
pub fn points(path: &Path, pipeline: &Pipeline, overrides: &[String]) -> Result<Vec<SweepPoint>, SpecErrors> {
    let Some(sweep) = &pipeline.sweep else { return Ok(Vec::new()) };
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = Vec::new();
    for (index, sets) in expand(sweep) {
        let mut all = overrides.to_vec();
        all.extend(sets.iter().map(|(k, v)| format!("{k}={}", inline_yaml(v))));
        all.push("sweep=null".into());
        let mut point = crate::load(path, &all).map_err(|e| at_sweep_key(path, &text, &sets, e))?;
        point.sweep = None;
        out.push(SweepPoint { index, sets, pipeline: point });
    }
    Ok(out)
}

/// A value as `--set` text: flow-style YAML on one line.
fn inline_yaml(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Moves a point's load errors to the line of the sweep key that caused them: the key of the
/// first error's path (or the first key of the point).
fn at_sweep_key(path: &Path, text: &str, sets: &[(String, Value)], errors: SpecErrors) -> SpecErrors {
    let mapped = errors
        .0
        .into_iter()
        .map(|e| {
            let culprit = sets.iter().find(|(k, _)| e.key.starts_with(k.as_str()) || k.starts_with(e.key.as_str()) && !e.key.is_empty());
            let (key, value) = culprit.or(sets.first()).map(|(k, v)| (k.as_str(), inline(v))).unwrap_or(("", String::new()));
            // The inner key is named only when it is not the sweep key itself.
            let inner = if e.key.is_empty() || e.key.starts_with(key) { e.message } else { format!("{}: {}", e.key, e.message) };
            SpecError::new(path, sweep_key_position(text, key), &format!("sweep.{key}"), format!("= {value}: {inner}"))
        })
        .collect();
    SpecErrors(mapped)
}

/// Line and column of `key:` inside the file's `sweep:` section.
fn sweep_key_position(text: &str, key: &str) -> Option<(usize, usize)> {
    let start = text.lines().position(|l| l.trim_start().starts_with("sweep:"))?;
    text.lines().enumerate().skip(start).find_map(|(i, line)| line.find(&format!("{key}:")).map(|col| (i + 1, col + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> SweepSpec {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn grids_combine_zips_walk_together_and_samples_are_seeded() {
        let s = spec("grid: {a: [1, 2], b: [x, y, z]}\nzip: {c: [10, 20], d: [p, q]}");
        let points = expand(&s);
        assert_eq!(points.len(), 12);
        assert_eq!(points[0].1, vec![("a".into(), Value::from(1)), ("b".into(), "x".into()), ("c".into(), Value::from(10)), ("d".into(), "p".into())]);
        assert_eq!(points[1].1[2..], [("c".into(), Value::from(20)), ("d".into(), "q".into())]);
        let sampled = expand(&spec("grid: {a: [1, 2, 3, 4, 5]}\nsample: {n: 2, seed: 3}"));
        assert_eq!(sampled.len(), 2);
        assert_eq!(sampled, expand(&spec("grid: {a: [1, 2, 3, 4, 5]}\nsample: {n: 2, seed: 3}")));
        assert!(sampled[0].0 < sampled[1].0);
    }

    #[test]
    fn the_section_is_checked() {
        assert_eq!(validate(&spec("{}")).len(), 1);
        assert!(validate(&spec("zip: {a: [1], b: [1, 2]}"))[0].1.contains("one length"));
        assert!(validate(&spec("grid: {a: []}"))[0].1.contains("no values"));
        assert!(validate(&spec("grid: {a: [1]}")).is_empty());
    }

    #[test]
    fn labels_are_one_line() {
        let p = SweepPoint {
            index: 0,
            sets: vec![("h".into(), serde_yaml::from_str("[16, 16]").unwrap()), ("t".into(), Value::from(2))],
            pipeline: crate::parse_str(
                "version: 1\nname: x\ndata: {source: {path: d.csv}, label: y}\nteacher: {model: {hidden: [8]}}\nstudent: {model: {hidden: [4]}}\n",
                "x.yaml".as_ref(),
                &[],
            )
            .unwrap(),
        };
        assert_eq!(p.label(), "h=[16, 16] t=2");
    }
}
