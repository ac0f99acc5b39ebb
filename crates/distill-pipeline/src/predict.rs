//! `distill predict MODEL_OR_RUN_DIR --data FILE`: new rows through an exported model (run by
//! tract-onnx; its metadata names the feature columns, classes and label) or through a run's own
//! student (distill's network, with the run's scaling). The file must hold exactly the features
//! (and may hold the label, which then gives an accuracy), numeric and without nulls, or nothing
//! is written.

use std::path::{Path, PathBuf};

use polars::prelude::*;

use distill_data::{feature_matrix, load_table, run_checks_with_label, CheckReport};
use distill_export::{meta, OnnxRunner};
use distill_nn::{load_weights, predict_logits, Mlp};

use crate::deploy::predictions;
use crate::export_run::{run_model, run_recipe};
use crate::stages::Role;
use crate::PipelineError;

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct PredictOptions {
    /// An `.onnx` file distill exported, or a run directory (its student).
    pub model: PathBuf,
    pub data: PathBuf,
    /// `.csv` or `.parquet`; none: CSV on standard output.
    pub out: Option<PathBuf>,
    /// Run the recipe's row checks on the file first (needs a run directory).
    pub check: bool,
    /// Also write the logits (`logit_<class>` columns).
    pub logits: bool,
}

/// What a prediction did.
#[derive(Debug)]
pub struct Predicted {
    pub rows: usize,
    /// The table written, when there was no `--out`.
    pub csv: Option<String>,
    /// Accuracy on the rows that carry the label, and their number.
    pub accuracy: Option<(f64, usize)>,
    /// The checks' report (with `--check`); `Err` when an error-level check failed.
    pub checks: Option<CheckReport>,
    pub seconds: f64,
}

/// A model to predict with: an ONNX file through tract, or a run's own network.
enum Model {
    Onnx(Box<OnnxRunner>),
    Native { net: Box<Mlp>, scaling: Option<distill_data::Scaling> },
}

impl Model {
    fn logits(&self, mut x: Vec<f32>, what: &Path) -> Result<Vec<f32>, PipelineError> {
        match self {
            Model::Onnx(runner) => runner.logits(&x).map_err(|source| PipelineError::Export { what: format!("running {}", what.display()), source }),
            Model::Native { net, scaling } => {
                if let Some(s) = scaling {
                    let width = s.offset.len().max(1);
                    x.iter_mut().enumerate().for_each(|(i, v)| *v = (*v - s.offset[i % width]) * s.factor[i % width]);
                }
                Ok(predict_logits(net, &x))
            }
        }
    }
}

/// A run's student as distill trained it.
fn native(run_dir: &Path) -> Result<(Model, Names), PipelineError> {
    let m = run_model(run_dir, Role::Student)?;
    let mut net = Mlp::new(m.shape, 0);
    load_weights(&mut net, &m.weights)
        .map_err(|source| PipelineError::Checkpoint { context: format!("{}: student.safetensors", run_dir.display()), source })?;
    let names = Names { features: m.data.feature_names, classes: m.data.class_names, label: Some(m.loaded.pipeline.data.label) };
    Ok((Model::Native { net: Box::new(net), scaling: m.data.scaling }, names))
}

/// An ONNX file distill exported.
fn onnx(path: &Path) -> Result<(Model, Names), PipelineError> {
    let bytes = std::fs::read(path).map_err(|source| PipelineError::File { key: "MODEL".into(), path: path.to_path_buf(), source })?;
    let names = model_names(&bytes, path)?;
    let runner = OnnxRunner::from_bytes(&bytes).map_err(|source| PipelineError::Export { what: path.display().to_string(), source })?;
    Ok((Model::Onnx(Box::new(runner)), names))
}

/// The model's feature columns, classes and label.
struct Names {
    features: Vec<String>,
    classes: Vec<String>,
    label: Option<String>,
}

/// [`Names`] from a model's metadata.
fn model_names(bytes: &[u8], path: &Path) -> Result<Names, PipelineError> {
    let failed = |what: &str| PipelineError::key("MODEL", format!("{}: {what} (was it exported by distill?)", path.display()));
    let props = meta::props(bytes).map_err(|source| PipelineError::Export { what: path.display().to_string(), source })?;
    let get = |key: &str| props.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let list = |key: &str| get(key).and_then(|v| serde_json::from_str::<Vec<String>>(&v).ok()).ok_or_else(|| failed(&format!("no `{key}` metadata")));
    Ok(Names { features: list(meta::FEATURES)?, classes: list(meta::CLASSES)?, label: get(meta::LABEL) })
}

/// Runs the prediction; a bad file is an error naming its column and row, and nothing is written.
pub fn predict(opts: &PredictOptions) -> Result<Predicted, PipelineError> {
    let started = std::time::Instant::now();
    if let Some(out) = &opts.out {
        if !out.extension().is_some_and(|e| e == "csv" || e == "parquet") {
            return Err(PipelineError::key("--out", format!("{}: write `.csv` or `.parquet`", out.display())));
        }
    }
    let (model, names) = if opts.model.is_dir() { native(&opts.model)? } else { onnx(&opts.model)? };
    let shown = format!("--data {}", opts.data.display());
    let df = load_table(&opts.data, None).map_err(crate::load::data_err(shown.clone()))?;
    let checks = if opts.check { Some(check(opts, &df)?) } else { None };
    if checks.as_ref().is_some_and(CheckReport::has_errors) {
        return Ok(Predicted { rows: df.height(), csv: None, accuracy: None, checks, seconds: started.elapsed().as_secs_f64() });
    }
    let label = names.label.as_deref().filter(|l| df.column(l).is_ok());
    if let Some(extra) = df.get_column_names().iter().find(|c| !names.features.iter().any(|f| f == c.as_str()) && Some(c.as_str()) != label) {
        let message =
            format!("column `{extra}` is not a feature of the model (it reads {} features: {}…); remove it", names.features.len(), preview(&names.features));
        return Err(PipelineError::key(shown, message));
    }
    let x = feature_matrix(&df, &names.features, &shown).map_err(crate::load::data_err(shown.clone()))?;
    let logits = model.logits(x, &opts.model)?;
    let predicted = predictions(&logits, names.classes.len());
    let accuracy = label.map(|l| labelled_accuracy(&df, l, &predicted, &names.classes)).transpose()?.flatten();
    let mut table = output_table(&predicted, &logits, &names.classes, opts.logits)?;
    let csv = write_table(&mut table, opts.out.as_deref())?;
    Ok(Predicted { rows: predicted.len(), csv, accuracy, checks, seconds: started.elapsed().as_secs_f64() })
}

fn preview(names: &[String]) -> String {
    names.iter().take(5).map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// The recipe's table checks on the file (row checks on features; the label's are skipped when
/// the file has no label).
fn check(opts: &PredictOptions, df: &DataFrame) -> Result<CheckReport, PipelineError> {
    if !opts.model.is_dir() {
        return Err(PipelineError::key("--check", "needs a run directory (its recipe has the checks), not a model file"));
    }
    let p = run_recipe(&opts.model)?.pipeline;
    let checks: Vec<_> = p.data.checks.iter().filter(|c| !c.kind.needs_split()).cloned().collect();
    run_checks_with_label(df, &checks, Some(&p.data.label)).map_err(crate::load::data_err(format!("--data {}", opts.data.display())))
}

/// Accuracy on the rows whose label is one of the model's classes.
fn labelled_accuracy(df: &DataFrame, label: &str, predicted: &[usize], classes: &[String]) -> Result<Option<(f64, usize)>, PipelineError> {
    let col = df.column(label).map_err(|e| PipelineError::key(label, e.to_string()))?.as_materialized_series();
    let texts = distill_data::cell_texts(col).map_err(crate::load::data_err(format!("column `{label}`")))?;
    let (mut right, mut n) = (0usize, 0usize);
    for (t, &p) in texts.iter().zip(predicted) {
        if let Some(c) = t.as_deref().and_then(|t| classes.iter().position(|c| c == t)) {
            n += 1;
            right += (c == p) as usize;
        }
    }
    Ok((n > 0).then(|| (right as f64 / n as f64, n)))
}

/// `row_id`, `predicted` (the class name), `p_<class>` for each class (and `logit_<class>`).
fn output_table(predicted: &[usize], logits: &[f32], classes: &[String], with_logits: bool) -> Result<DataFrame, PipelineError> {
    let k = classes.len().max(1);
    let probabilities: Vec<f32> = logits.chunks(k).flat_map(softmax).collect();
    let mut columns: Vec<Column> = vec![
        Column::new("row_id".into(), (0..predicted.len() as u64).collect::<Vec<_>>()),
        Column::new("predicted".into(), predicted.iter().map(|&c| classes[c].as_str()).collect::<Vec<_>>()),
    ];
    for (j, class) in classes.iter().enumerate() {
        columns.push(Column::new(format!("p_{class}").into(), probabilities.iter().skip(j).step_by(k).copied().collect::<Vec<f32>>()));
    }
    if with_logits {
        for (j, class) in classes.iter().enumerate() {
            columns.push(Column::new(format!("logit_{class}").into(), logits.iter().skip(j).step_by(k).copied().collect::<Vec<f32>>()));
        }
    }
    DataFrame::new(predicted.len(), columns).map_err(|e| PipelineError::key("--out", e.to_string()))
}

/// A row's probabilities (the ONNX graph's `Softmax`, computed the same way for both engines).
fn softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = row.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.into_iter().map(|v| v / sum).collect()
}

/// Writes the table atomically to `out` (by its extension), or returns it as CSV text.
fn write_table(table: &mut DataFrame, out: Option<&Path>) -> Result<Option<String>, PipelineError> {
    let mut bytes = Vec::new();
    let parquet = out.and_then(|o| o.extension()).is_some_and(|e| e == "parquet");
    let written = if parquet { ParquetWriter::new(&mut bytes).finish(table).map(drop) } else { CsvWriter::new(&mut bytes).finish(table) };
    written.map_err(|e| PipelineError::key("--out", e.to_string()))?;
    match out {
        Some(path) => {
            distill_cache::write_atomic(path, &bytes)?;
            Ok(None)
        }
        None => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
    }
}
