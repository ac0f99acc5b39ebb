//! Side-by-side comparison of several runs.
//!
//! Each run is a label, its `metrics.json` and its resolved pipeline (the recipe after
//! defaults were applied), both as [`serde_json::Value`]. [`compare_runs`] lines up
//!
//! * every numeric metric, by dotted path (`student.accuracy`), with its change relative
//!   to the **first** run, and
//! * every pipeline setting whose value is not the same in all runs
//!   (`student.loss.temperature`).
//!
//! Paths join object keys with `.` and array positions with `[i]`. Metric paths only
//! follow objects: array-valued metrics (confusion matrices, reliability bins,
//! per-class tables) are skipped because a position in them is not a summary number
//! worth a row. Pipeline paths follow arrays of objects element by element, while an
//! array of plain values (such as a list of layer widths) is compared as one value.
//! Numbers compare by value, so `2` and `2.0` are the same setting.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

/// One numeric metric across runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    /// Dotted path in `metrics.json`, e.g. `student.accuracy`.
    pub path: String,
    /// Value per run, `None` where the run lacks the metric.
    pub values: Vec<Option<f64>>,
    /// `value − first run's value` per run (so 0 for the first); `None` when either is
    /// missing.
    pub deltas: Vec<Option<f64>>,
}

/// One pipeline setting that is not identical in every run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyDiff {
    /// Dotted path in the resolved pipeline, e.g. `student.loss.temperature`.
    pub path: String,
    /// Value per run, `None` where the run lacks the key.
    pub values: Vec<Option<Value>>,
}

/// Result of [`compare_runs`]; serialize it for a JSON rendering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Run labels, in input order; the first is the reference for deltas.
    pub runs: Vec<String>,
    /// Numeric metrics, in order of first appearance.
    pub metrics: Vec<MetricRow>,
    /// Pipeline keys whose values differ, in order of first appearance.
    pub differing_keys: Vec<KeyDiff>,
}

/// Compares runs given as `(label, metrics.json, resolved pipeline as JSON)`.
pub fn compare_runs(runs: &[(String, Value, Value)]) -> Comparison {
    let n = runs.len();

    let mut metrics = Table::default();
    for (i, (_, m, _)) in runs.iter().enumerate() {
        walk(m, String::new(), false, &mut |path, v| {
            if let Some(x) = v.as_f64() {
                metrics.set(path, i, n, x);
            }
        });
    }
    let metrics = metrics
        .rows
        .into_iter()
        .map(|(path, values)| {
            let base = values.first().copied().flatten();
            let deltas = values.iter().map(|v| Some((*v)? - base?)).collect();
            MetricRow { path, values, deltas }
        })
        .collect();

    let mut keys = Table::default();
    for (i, (_, _, p)) in runs.iter().enumerate() {
        walk(p, String::new(), true, &mut |path, v| keys.set(path, i, n, v.clone()));
    }
    let differing_keys = keys.rows.into_iter().filter(|(_, values)| !all_same(values)).map(|(path, values)| KeyDiff { path, values }).collect();

    Comparison { runs: runs.iter().map(|(label, _, _)| label.clone()).collect(), metrics, differing_keys }
}

/// Rows keyed by path, kept in first-seen order.
struct Table<T> {
    rows: Vec<(String, Vec<Option<T>>)>,
    index: HashMap<String, usize>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Self { rows: Vec::new(), index: HashMap::new() }
    }
}

impl<T: Clone> Table<T> {
    fn set(&mut self, path: String, run: usize, runs: usize, value: T) {
        let row = match self.index.get(&path) {
            Some(&r) => r,
            None => {
                self.index.insert(path.clone(), self.rows.len());
                self.rows.push((path, vec![None; runs]));
                self.rows.len() - 1
            }
        };
        self.rows[row].1[run] = Some(value);
    }
}

/// Calls `leaf` for every leaf under `v`. With `into_arrays`, arrays holding any object
/// or array are followed per element; other arrays are leaves. Without it, arrays are
/// skipped entirely.
fn walk(v: &Value, path: String, into_arrays: bool, leaf: &mut dyn FnMut(String, &Value)) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, child) in map {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                walk(child, p, into_arrays, leaf);
            }
        }
        // Array-valued metrics are not summary numbers.
        Value::Array(_) if !into_arrays => {}
        Value::Array(items) if items.iter().any(|x| x.is_object() || x.is_array()) => {
            for (i, child) in items.iter().enumerate() {
                walk(child, format!("{path}[{i}]"), into_arrays, leaf);
            }
        }
        _ => leaf(path, v),
    }
}

fn all_same(values: &[Option<Value>]) -> bool {
    values.windows(2).all(|w| match (&w[0], &w[1]) {
        (Some(a), Some(b)) => json_eq(a, b),
        (None, None) => true,
        _ => false,
    })
}

/// JSON equality where numbers compare by value (`2 == 2.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b)),
        (Value::Object(x), Value::Object(y)) => x.len() == y.len() && x.iter().all(|(k, a)| y.get(k).is_some_and(|b| json_eq(a, b))),
        _ => a == b,
    }
}

/// Integers without decimals, everything else with four.
fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}

fn fmt_delta(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:+.0}")
    } else {
        format!("{v:+.4}")
    }
}

/// Strings without quotes, other JSON values as compact JSON.
fn fmt_value(v: &Option<Value>) -> String {
    match v {
        None => "(absent)".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Header and cells of the metrics table: path, every run's value, then one delta
/// column per run after the first.
fn metric_grid(c: &Comparison) -> (Vec<String>, Vec<Vec<String>>) {
    let mut header = vec!["metric".to_string()];
    header.extend(c.runs.iter().cloned());
    header.extend(c.runs.iter().skip(1).map(|r| format!("Δ {r}")));
    let rows = c
        .metrics
        .iter()
        .map(|m| {
            let mut row = vec![m.path.clone()];
            row.extend(m.values.iter().map(|v| v.map_or("-".into(), fmt_num)));
            row.extend(m.deltas.iter().skip(1).map(|d| d.map_or("-".into(), fmt_delta)));
            row
        })
        .collect();
    (header, rows)
}

fn key_grid(c: &Comparison) -> (Vec<String>, Vec<Vec<String>>) {
    let mut header = vec!["key".to_string()];
    header.extend(c.runs.iter().cloned());
    let rows = c
        .differing_keys
        .iter()
        .map(|k| {
            let mut row = vec![k.path.clone()];
            row.extend(k.values.iter().map(fmt_value));
            row
        })
        .collect();
    (header, rows)
}

fn aligned(header: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            // Left-align the path column, right-align numbers.
            .map(|(i, (c, &w))| if i == 0 { format!("{c:<w$}") } else { format!("{c:>w$}") })
            .collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(header);
    let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
    out += &line(&rule);
    for row in rows {
        out += &line(row);
    }
    out
}

/// Aligned plain-text rendering: a metrics table, then the differing pipeline keys.
pub fn to_table(c: &Comparison) -> String {
    let (h, rows) = metric_grid(c);
    let mut out = String::from("Metrics\n\n");
    out += &if rows.is_empty() { "(no numeric metrics)\n".to_string() } else { aligned(&h, &rows) };
    out += "\nPipeline differences\n\n";
    let (h, rows) = key_grid(c);
    out += &if rows.is_empty() { "(pipelines are identical)\n".to_string() } else { aligned(&h, &rows) };
    out
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn md_table(header: &[String], rows: &[Vec<String>]) -> String {
    let row = |cells: &[String]| {
        let cells: Vec<String> = cells.iter().map(|c| md_cell(c)).collect();
        format!("| {} |\n", cells.join(" | "))
    };
    let mut out = row(header);
    let align: Vec<String> = (0..header.len()).map(|i| if i == 0 { "---".into() } else { "---:".into() }).collect();
    out += &format!("|{}|\n", align.join("|"));
    for r in rows {
        out += &row(r);
    }
    out
}

/// Markdown rendering: `## Metrics` and `## Pipeline differences` tables.
pub fn to_markdown(c: &Comparison) -> String {
    let (h, rows) = metric_grid(c);
    let mut out = String::from("## Metrics\n\n");
    out += &if rows.is_empty() { "No numeric metrics.\n".to_string() } else { md_table(&h, &rows) };
    out += "\n## Pipeline differences\n\n";
    let (h, rows) = key_grid(c);
    out += &if rows.is_empty() { "The pipelines are identical.\n".to_string() } else { md_table(&h, &rows) };
    out
}

#[cfg(test)]
mod tests;
