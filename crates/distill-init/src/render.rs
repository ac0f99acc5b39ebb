//! The recipe text: every section with a comment on what was detected, guessed or chosen.

use crate::columns::Column;
use crate::sniff::{Kind, Sniffed};

/// What the recipe is written from.
pub struct Facts<'a> {
    pub command: String,
    /// The recipe's file name, for the next commands.
    pub recipe: String,
    /// The data path as the recipe writes it (relative to the recipe).
    pub path: String,
    pub sniffed: Sniffed,
    pub rows: usize,
    pub cols: &'a [Column],
    pub label: usize,
    pub label_note: Option<String>,
    pub features: &'a [usize],
    pub left_out: &'a [(usize, String)],
    /// `distill profile`'s `checks:` block for the data.
    pub checks: &'a str,
    pub name: String,
    /// A JSON Schema for the recipe (`schema/distill.schema.json` in its folder or one above),
    /// relative to the recipe, for the editor's modeline.
    pub schema: Option<String>,
}

/// Model sizes and budgets that follow from the data's shape.
#[derive(Debug, PartialEq)]
pub struct Sizing {
    pub teacher_width: usize,
    pub student_width: usize,
    pub dropout: f64,
    pub batch: usize,
    pub epochs: usize,
    pub teacher_lr: &'static str,
    pub student_lr: &'static str,
    pub val: bool,
}

/// Teacher width about 4× the features (32..512, a power of two), two layers; the student 1/16
/// of that (4..64); batches and epochs for roughly 3,000 optimiser steps (10..100 epochs).
pub fn sizing(features: usize, rows: usize, test: f64) -> Sizing {
    let teacher_width = (4 * features).next_power_of_two().clamp(32, 512);
    let train_rows = ((rows as f64) * (1.0 - test)).max(1.0) as usize;
    let batch = match train_rows {
        0..500 => 16,
        500..20_000 => 32,
        _ => 128,
    };
    let steps_per_epoch = train_rows.div_ceil(batch).max(1);
    let small = rows < 500;
    Sizing {
        teacher_width,
        student_width: (teacher_width / 16).clamp(4, 64),
        dropout: if rows >= 1000 { 0.2 } else { 0.1 },
        batch,
        epochs: (3000 / steps_per_epoch).clamp(10, 100),
        teacher_lr: if small { "1.0e-2" } else { "1.0e-3" },
        student_lr: if small { "1.0e-2" } else { "3.0e-3" },
        val: rows >= 500,
    }
}

/// A YAML scalar for a name: plain when that reads back as the same string, else JSON-quoted.
pub fn q(s: &str) -> String {
    let plain = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && !matches!(s.to_ascii_lowercase().as_str(), "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null" | "nan" | "inf");
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
    }
}

/// Comments of the lines this writes start at this column.
const COMMENT_COLUMN: usize = 44;

/// `text` and a comment, lined up.
fn commented(text: String, comment: &str) -> String {
    format!("{text:<width$} # {comment}\n", width = COMMENT_COLUMN - 2)
}

/// A path as a YAML scalar: plain when it is made of safe characters, else JSON-quoted.
fn path_scalar(p: &str) -> String {
    let plain = !p.is_empty() && !p.starts_with('-') && p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'));
    if plain {
        p.to_string()
    } else {
        serde_json::to_string(p).unwrap_or_else(|_| format!("{p:?}"))
    }
}

/// The whole recipe.
pub fn recipe(f: &Facts) -> String {
    let test = if f.rows >= 500 { 0.2 } else { 0.25 };
    let size = sizing(f.features.len(), f.rows, test);
    let label = &f.cols[f.label];
    let classes = label.distinct;
    let mut out = match &f.schema {
        Some(schema) => format!("# yaml-language-server: $schema={schema}\n"),
        None => String::new(),
    };
    out += &format!(
        "# Written by `{}` from {} rows × {} columns.\n# Review it (the checks describe this file, not the domain), then:\n#   distill check {recipe} && distill run {recipe}\n",
        f.command,
        f.rows,
        f.cols.len(),
        recipe = f.recipe
    );
    if f.schema.is_none() {
        out += "# Editor help (descriptions, completion, unknown keys): `distill schema > distill.schema.json`, then\n#   make this file's first line `# yaml-language-server: $schema=distill.schema.json`.\n";
    }
    out += &format!("version: 1\nname: {}\n", q(&f.name));
    out += &commented("seed: 0".into(), "split, initialisation, dropout, batch order");
    out += "\ndata:\n";
    out += &source(f);
    if let Some(note) = &f.label_note {
        out += &format!("  # The label `{}` was {note}; if it is wrong, change it here.\n", label.name);
    }
    out += &commented(format!("  label: {}", q(&label.name)), &format!("{classes} classes"));
    out += &features(f);
    let val = if size.val { ", val: 0.1" } else { "" };
    out += &commented(format!("  split: {{test: {test}{val}, stratify: true}}"), "held-out fractions, drawn per class");
    out += &commented("  scale: {kind: standard}".into(), "fitted on the training split only");
    if label.nulls > 0 {
        out += &format!("  # {} rows have no label: they join training as a transfer set (the teacher labels them).\n  transfer: {{}}\n", label.nulls);
    }
    for line in f.checks.lines() {
        out += &format!("  {line}\n");
    }
    out += &models(f, &size, classes);
    out
}

fn source(f: &Facts) -> String {
    let path = path_scalar(&f.path);
    match f.sniffed.kind {
        Kind::Parquet => format!("  source: {{path: {path}, format: parquet}}\n"),
        Kind::Csv { delimiter, header } => {
            let mut keys = vec![format!("path: {path}"), "format: csv".to_string()];
            let mut notes = vec![if header { "a header line" } else { "no header line (columns column_1, column_2, ...)" }.to_string()];
            if !header {
                keys.push("header: false".into());
            }
            let shown = match delimiter {
                b'\t' => "\"\\t\"".to_string(),
                d => serde_json::to_string(&(d as char).to_string()).unwrap_or_default(),
            };
            notes.push(format!("delimiter {shown}"));
            if delimiter != b',' {
                keys.push(format!("delimiter: {shown}"));
            }
            if f.sniffed.gzip {
                notes.push("gzip-compressed".into());
            }
            format!("  # Detected: CSV, {}.\n  source: {{{}}}\n", notes.join(", "), keys.join(", "))
        }
    }
}

fn features(f: &Facts) -> String {
    if f.left_out.is_empty() {
        return format!("  # Features: every other column ({}, all numeric).\n", f.features.len());
    }
    let mut out = format!("  # Features: the {} numeric columns without nulls; left out:\n", f.features.len());
    for (j, why) in f.left_out {
        out += &format!("  #   {}: {why}\n", f.cols[*j].name);
    }
    let names: Vec<String> = f.left_out.iter().map(|(j, _)| q(&f.cols[*j].name)).collect();
    out + &format!("  features: {{exclude: [{}]}}\n", names.join(", "))
}

fn models(f: &Facts, s: &Sizing, classes: usize) -> String {
    let d = f.features.len();
    let (t, w) = (s.teacher_width, s.student_width);
    let student_params = d * w + w + w * classes + classes;
    format!(
        "\n# Sized from {d} features, {classes} classes and {rows} rows: a {d}-{t}-{t}-{classes} teacher and a\n\
         # {d}-{w}-{classes} student ({student_params} parameters), about 3,000 optimiser steps each.\n\
         teacher:\n  model: {{arch: mlp, hidden: [{t}, {t}], activation: relu, dropout: {dropout}}}\n\
         \x20 train: {{epochs: {epochs}, batch: {batch}, optimizer: {{kind: adam, lr: {tlr}}}}}\n\n\
         student:\n  model: {{arch: mlp, hidden: [{w}]}}\n\
         \x20 # Hinton's KD: alpha * T^2 * KL(teacher || student at temperature T) + (1 - alpha) * cross-entropy.\n\
         \x20 loss: {{kind: kd, temperature: 2, alpha: 0.5}}\n\
         \x20 train: {{epochs: {epochs}, batch: {batch}, optimizer: {{kind: adam, lr: {slr}}}}}\n\
         \x20 baseline: true                           # the same student from scratch, to show what distillation adds\n\n\
         evaluate:\n  # Exit code 3 when the distilled student is more than 5 accuracy points below the teacher.\n\
         \x20 targets: {{max_accuracy_drop: 0.05}}\n",
        rows = f.rows,
        dropout = s.dropout,
        epochs = s.epochs,
        batch = s.batch,
        tlr = s.teacher_lr,
        slr = s.student_lr,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_data() {
        let digits = sizing(64, 1797, 0.2);
        assert_eq!((digits.teacher_width, digits.student_width, digits.batch, digits.epochs), (256, 16, 32, 66));
        let iris = sizing(4, 150, 0.25);
        assert_eq!((iris.teacher_width, iris.student_width, iris.batch, iris.epochs, iris.val), (32, 4, 16, 100, false));
        let big = sizing(784, 60_000, 0.2);
        assert_eq!((big.teacher_width, big.student_width, big.batch, big.epochs), (512, 32, 128, 10));
        assert_eq!(q("label"), "label");
        assert_eq!(q("y"), "\"y\"");
        assert_eq!(q("my col"), "\"my col\"");
        assert_eq!(path_scalar("../data/x.csv"), "../data/x.csv");
        assert_eq!(path_scalar("a b.csv"), "\"a b.csv\"");
    }
}
