//! Detailed evaluation (distill-eval metrics, latency, size), the run report and run comparison.

use std::collections::BTreeMap;
use std::path::Path;

use distill_data::{CheckReport, Prepared};
use distill_eval::report::{DataCheckRow, EpochRecord, ModelReport, TargetRow};
use distill_eval::{compare_runs, evaluate_model, measure_latency, measure_throughput, render_html, render_markdown, render_plots, Comparison, ReportInput};
use distill_nn::{predict_logits, EpochStats, Mlp};
use distill_spec::{EvaluateSpec, Pipeline};

use crate::evaluate::ModelMetrics;
use crate::run::Summary;
use crate::rundir::RunDir;
use crate::PipelineError;

/// What the detailed evaluation of a model needs.
pub struct Detail<'a> {
    pub data: &'a Prepared,
    /// The teacher's test logits, when there are any (an external teacher may have none).
    pub teacher_test: Option<&'a [f32]>,
    pub spec: &'a EvaluateSpec,
}

impl Detail<'_> {
    /// Adds the full metric set, size, and (when asked) latency and throughput to `metrics`.
    pub fn add(&self, model: &Mlp, size_bytes: usize, metrics: &mut ModelMetrics, against_teacher: bool) -> Result<(), PipelineError> {
        let (x, y) = (&self.data.test.x, &self.data.test.y);
        self.add_logits(&predict_logits(model, x), metrics, against_teacher)?;
        metrics.size_bytes = size_bytes as u64;
        if self.spec.latency && !y.is_empty() {
            let width = model.shape.inputs();
            let one = &x[..width];
            metrics.latency = Some(measure_latency(
                || {
                    std::hint::black_box(predict_logits(model, one));
                },
                20,
                200,
            ));
            let rows = y.len();
            metrics.throughput_rows_per_s = Some(measure_throughput(
                || {
                    std::hint::black_box(predict_logits(model, x));
                    rows
                },
                0.2,
            ));
        }
        Ok(())
    }

    /// The full metric set from test logits alone (what an external teacher has).
    pub fn add_logits(&self, logits: &[f32], metrics: &mut ModelMetrics, against_teacher: bool) -> Result<(), PipelineError> {
        let (y, classes) = (&self.data.test.y, &self.data.class_names);
        let mut evaluation = evaluate_model(logits, y, classes, self.spec.ece_bins, self.spec.top_k)?;
        if against_teacher {
            evaluation.teacher_agreement = self.teacher_test.and_then(|t| distill_eval::metrics::agreement(t, logits, classes.len()).ok());
        }
        metrics.evaluation = Some(evaluation);
        Ok(())
    }
}

fn model_report(m: &ModelMetrics, history: Option<&Vec<EpochStats>>) -> Option<ModelReport> {
    Some(ModelReport {
        evaluation: m.evaluation.clone()?,
        params: m.params as u64,
        size_bytes: m.size_bytes,
        latency: m.latency,
        history: history
            .map(|h| h.iter().map(|e| EpochRecord { epoch: e.epoch, train_loss: e.train_loss, val_loss: None, val_accuracy: e.val_accuracy }).collect())
            .unwrap_or_default(),
    })
}

/// The teacher in one line: its network and budget, or its logit file.
fn teacher_line(p: &Pipeline) -> String {
    match (&p.teacher.logits, &p.teacher.model) {
        (Some(l), _) => format!("external logits {}", l.path.display()),
        (None, Some(m)) if p.teacher.weights.is_some() => format!("mlp {:?}, given weights", m.hidden),
        (None, Some(m)) => format!("mlp {:?}, {} epochs", m.hidden, p.teacher.train.epochs),
        (None, None) => "-".into(),
    }
}

fn join(values: &[usize]) -> String {
    values.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
}

/// Everything the report shows, saved as `report-input.json` so `distill report` can redraw it.
pub fn report_input(p: &Pipeline, checks: &CheckReport, s: &Summary, history: &BTreeMap<String, Vec<EpochStats>>) -> Option<ReportInput> {
    let mut recipe = vec![
        ("seed".to_string(), p.seed.to_string()),
        ("data".to_string(), p.data.source.path.display().to_string()),
        ("rows (train / val / test)".to_string(), format!("{} / {} / {}", s.rows["train"], s.rows["val"], s.rows["test"])),
        ("teacher".to_string(), teacher_line(p)),
        ("student".to_string(), format!("mlp {:?}, {} epochs", p.student.model.hidden, p.student.train.epochs)),
        ("loss".to_string(), p.student.loss.to_string()),
    ];
    if let Some(compression) = s.compression {
        recipe.push(("compression".to_string(), format!("{compression:.1}x")));
    }
    if let Some(speedup) = s.speedup {
        recipe.push(("speed-up (throughput)".to_string(), format!("{speedup:.1}x")));
    }
    if let Some(rule) = &s.baseline_budget {
        recipe.push(("baseline budget".to_string(), rule.clone()));
    }
    if let Some(h) = p.student.loss.hint() {
        let (t, features) = (h.term, format!("{:?}", h.term.features).to_lowercase());
        let what = format!(
            "teacher layer {} ← student layer {} through a learned projection, {:?}, weight {}, features {features}",
            t.teacher_layer, t.student_layer, t.measure, h.weight
        );
        recipe.push(("feature hint".to_string(), what.to_lowercase()));
    }
    if let Some(gain) = &s.gain {
        recipe.push(("student vs baseline (paired by seed, 95% interval, paired t-test)".to_string(), gain.text.clone()));
    }
    if let Some(t) = &s.transfer_confidence {
        recipe.extend(t.report_lines());
    }
    if let Some(e) = &s.ensemble {
        recipe.extend(e.lines());
    }
    let kept: Vec<String> =
        s.models.0.iter().filter_map(|m| m.metrics.kept.as_ref().map(|k| format!("{} {} (epoch {})", m.role.key(), k.rule, join(&k.epochs)))).collect();
    if !kept.is_empty() {
        recipe.push(("weights kept".to_string(), kept.join("; ")));
    }
    if !s.cache_hits.is_empty() {
        recipe.push(("cache hits".to_string(), s.cache_hits.join(", ")));
    }
    let first = |prefix: &str| history.iter().find(|(k, _)| k.as_str() == prefix || k.starts_with(&format!("{prefix}@"))).map(|(_, v)| v);
    Some(ReportInput {
        pipeline_name: p.name.clone(),
        description: p.description.clone().unwrap_or_default(),
        recipe,
        data_checks: checks
            .checks
            .iter()
            .map(|c| DataCheckRow {
                id: c.id.clone(),
                kind: c.kind.clone(),
                status: format!("{:?}", c.status).to_lowercase(),
                failing: c.failing as u64,
                fraction: c.fraction,
                message: c.message.clone(),
                samples: c.samples.iter().map(|r| format!("row {} column {}: {}", r.row, r.column, r.value)).collect(),
            })
            .collect(),
        teacher: match s.teacher() {
            Some(t) => Some(model_report(t, first("teacher"))?),
            None => None,
        },
        student: model_report(s.student()?, first("student"))?,
        baseline: s.baseline().and_then(|b| model_report(b, first("baseline"))),
        targets: s.targets.iter().map(|t| TargetRow { name: t.name.clone(), limit: t.limit, value: t.value, met: t.met }).collect(),
        deployment: s.deployment.as_ref().map(crate::deploy::report),
    })
}

/// (Re)writes `report.md`, `report.html` and the SVG plots beside them from the run's `report-input.json`.
pub fn write_report(run_dir: &Path) -> Result<(), PipelineError> {
    let input_path = run_dir.join("report-input.json");
    let input: Option<ReportInput> = read_run_json(&input_path)?;
    let Some(input) = input else {
        return Err(PipelineError::RunFile { path: input_path, hint: "", source: "the run has no evaluation to report".into() });
    };
    let dir = RunDir { path: run_dir.to_path_buf() };
    for (name, svg) in render_plots(&input)? {
        dir.write(&name, svg.as_bytes())?;
    }
    dir.write("report.md", render_markdown(&input).as_bytes())?;
    dir.write("report.html", render_html(&input)?.as_bytes())?;
    tracing::info!(path = %run_dir.join("report.html").display(), "report written");
    Ok(())
}

/// Compares runs by their `metrics.json` and resolved recipes.
pub fn compare(run_dirs: &[&Path]) -> Result<Comparison, PipelineError> {
    let mut runs = Vec::new();
    for dir in run_dirs {
        let metrics: serde_json::Value = read_run_json(&dir.join("metrics.json"))?;
        let path = dir.join("pipeline.resolved.yaml");
        let recipe: serde_json::Value =
            serde_yaml::from_str(&read_run_file(&path)?).map_err(|e| PipelineError::RunFile { path, hint: "", source: e.into() })?;
        runs.push((dir.display().to_string(), metrics, recipe));
    }
    Ok(compare_runs(&runs))
}

/// A run directory's file as text; a missing one asks whether this is a run directory at all.
fn read_run_file(path: &Path) -> Result<String, PipelineError> {
    std::fs::read_to_string(path).map_err(|e| PipelineError::RunFile {
        path: path.to_path_buf(),
        hint: " (is this a distill run directory?)",
        source: e.into(),
    })
}

pub(crate) fn read_run_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, PipelineError> {
    serde_json::from_str(&read_run_file(path)?).map_err(|e| PipelineError::RunFile { path: path.to_path_buf(), hint: "", source: e.into() })
}
