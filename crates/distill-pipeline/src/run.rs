//! `distill run` and `distill check`: the data stage, the walk over the stage graph (each stage
//! found in the cache or computed), the evaluation, and the run directory's files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use distill_cache::{hash_bytes, Fingerprint, KeyBuilder};
use distill_data::{CheckReport, LabelState};
use distill_spec::Pipeline;

use crate::evaluate::{speedup, ModelMetrics, TargetResult};
use crate::load::{cache_for, data_stage, load_pipeline, load_plugins, Loaded};
use crate::lock::{Lock, StageRecord};
use crate::peak::PeakRss;
use crate::report::write_report;
use crate::results::{self, ModelOutput, ModelResults};
use crate::rundir::{new_run_id, RunDir};
use crate::snapshot::{data_stage_cached, DataOutcome, SnapshotUse};
use crate::stages::{self, Context, Force, Output, Role, DATA, EVALUATE, LOGITS, TEACHER};
use crate::walk::{walk, Mode, Walked};
use crate::PipelineError;

/// What the user asked for on the command line.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub pipeline: PathBuf,
    /// `key.path=value` overrides.
    pub overrides: Vec<String>,
    /// Run directory; default `runs/<name>/<run-id>`.
    pub out: Option<PathBuf>,
    /// Cache directory; default from the pipeline, `$DISTILL_CACHE_DIR` or `.distill-cache`.
    pub cache_dir: Option<PathBuf>,
    /// Stages to recompute even when the cache holds their output.
    pub force: Force,
    /// Continue training jobs from the checkpoints an interrupted run of the same recipe left.
    pub resume: bool,
    /// The folder the recipe's relative paths mean (default: the pipeline file's); `rerun` runs
    /// a run directory's resolved recipe with its original recipe's folder.
    pub base_dir: Option<PathBuf>,
}

/// How a run ended when nothing went wrong with the inputs.
#[derive(Debug)]
pub enum RunOutcome {
    /// Everything ran; `targets` says whether the student met the recipe's targets.
    Completed { run_dir: PathBuf, summary: Box<Summary> },
    /// An error-level data check failed; nothing was trained.
    ChecksFailed { run_dir: PathBuf, report: CheckReport },
    /// A `sweep:` recipe ran every point; `recommendation` is absent when none met the targets.
    Swept { run_dir: PathBuf, summary: Box<crate::sweep::SweepSummary> },
}

/// The result of `distill check`.
pub struct CheckOutcome {
    pub pipeline: Pipeline,
    pub report: CheckReport,
}

/// What `metrics.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub pipeline: String,
    /// Every model by role (`teacher`, `student`, `baseline`); the teacher is absent when it is
    /// external logits without the test rows.
    #[serde(flatten)]
    pub models: ModelResults,
    pub targets: Vec<TargetResult>,
    pub targets_met: bool,
    pub classes: usize,
    pub rows: BTreeMap<String, usize>,
    /// Stages that were found in the cache instead of being computed.
    pub cache_hits: Vec<String>,
    /// Teacher parameters over student parameters (absent without a teacher model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<f64>,
    /// Student throughput over teacher throughput (rows/s at a large batch), when measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speedup: Option<f64>,
    /// Student minus baseline accuracy paired by seed, with its 95% interval and p-value (with
    /// at least two seeds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gain: Option<crate::gain::Gain>,
    /// The teacher's confidence on labelled and unlabelled training rows, and what the
    /// confidence filter kept (with a transfer set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer_confidence: Option<crate::transfer::TransferConfidence>,
    /// With `teachers`: every teacher and their ensemble (rule, weights, test accuracies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ensemble: Option<crate::teachers::EnsembleSummary>,
    /// How the baseline's budget was matched to the student's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_budget: Option<String>,
    /// What the recipe, the data and the warn-level checks said that did not stop the run.
    pub warnings: Vec<distill_spec::Warning>,
    /// The exported models run back on the test split (with `export:`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<crate::deploy::Deployment>,
    /// Each stage's peak resident memory.
    pub peak_rss: PeakRss,
    pub seconds: f64,
}

impl Summary {
    pub fn teacher(&self) -> Option<&ModelMetrics> {
        self.models.get(Role::Teacher)
    }

    pub fn student(&self) -> Option<&ModelMetrics> {
        self.models.get(Role::Student)
    }

    pub fn baseline(&self) -> Option<&ModelMetrics> {
        self.models.get(Role::Baseline)
    }
}

/// Runs only the data stage and its checks.
pub fn check(opts: &RunOptions) -> Result<CheckOutcome, PipelineError> {
    let loaded = load_pipeline(opts)?;
    let (_, report) = data_stage(&loaded)?;
    Ok(CheckOutcome { pipeline: loaded.pipeline, report })
}

/// Runs the whole pipeline. `on_run_dir` is called as soon as the run directory exists (the
/// binary uses it to start the run's log file).
pub fn run(opts: &RunOptions, on_run_dir: &dyn Fn(&Path)) -> Result<RunOutcome, PipelineError> {
    let loaded = load_pipeline(opts)?;
    // Every point is checked before anything runs.
    let points = distill_spec::sweep::points(&opts.pipeline, &loaded.pipeline, &opts.overrides)?;
    let plugins = load_plugins(&loaded.pipeline, &loaded.base_dir)?;
    let path = opts.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&loaded.pipeline.name).join(new_run_id()));
    let fresh = !path.exists();
    let run_dir = RunDir::create(path)?;
    on_run_dir(&run_dir.path);
    let result =
        if points.is_empty() { run_in(opts, &loaded, &plugins, &run_dir) } else { crate::sweep::run_sweep(opts, &loaded, &plugins, &run_dir, &points) };
    if result.is_err() && fresh {
        // A failed run leaves no partial outputs behind (the error is printed instead).
        let _ = std::fs::remove_dir_all(&run_dir.path);
    }
    result
}

pub(crate) fn run_in(opts: &RunOptions, loaded: &Loaded, plugins: &distill_plugin_host::PluginRegistry, run_dir: &RunDir) -> Result<RunOutcome, PipelineError> {
    let started = Instant::now();
    let p = &loaded.pipeline;
    tracing::info!(pipeline = %p.name, run_dir = %run_dir.path.display(), "run started");
    let resolved = serde_yaml::to_string(p).map_err(PipelineError::Resolved)?;
    run_dir.write("pipeline.resolved.yaml", resolved.as_bytes())?;

    let cache = cache_for(opts, loaded);
    // Held until lock.json is written: `cache gc` finds the run's keys in one or the other.
    let mut lease = cache.lease()?;
    let mut peaks = PeakRss::default();
    let using = SnapshotUse { cache: &cache, forced: opts.force.includes(&DATA), store: true, lease: Some(&mut lease) };
    let DataOutcome { prepared, report, fingerprint, cached: data_cached } = data_stage_cached(loaded, using)?;
    crate::peak::return_freed_memory();
    peaks.stage(DATA.name);
    run_dir.write_json("checks.json", &report)?;
    let data = match prepared {
        Some(data) if !report.has_errors() => data,
        _ => {
            tracing::error!("an error-level data check failed; nothing will be trained");
            return Ok(RunOutcome::ChecksFailed { run_dir: run_dir.path.clone(), report });
        }
    };

    let cx = Context::new(loaded, &data, &cache, plugins, opts.resume)?;
    let warnings = crate::warnings::of_run(&cx, &report);
    let mut walked = walk(&cx, &stages::graph(&cx), &opts.force, Mode::Run, None, Some(&mut lease))?;
    let data_fp = fingerprint.unwrap_or_else(|| Fingerprint { key: data.fingerprint.clone(), inputs: Default::default() });
    walked.records.insert(0, StageRecord::new(DATA.name, DATA.name, None, &data_fp, data.fingerprint.clone(), data_cached));
    if data_cached {
        walked.hits.insert(0, DATA.name.to_string());
    }
    peaks.extend(std::mem::take(&mut walked.peaks));

    let models: Vec<ModelOutput> = walked.outputs.iter().map(|o| (o.name.as_str(), o.seed, &o.output)).collect();
    let Some(Output::Evaluation(evaluation)) = walked.output(EVALUATE.name) else { return Err(PipelineError::Graph("the run has no evaluation")) };
    let measured = results::with_train_seconds(evaluation.models.clone(), &models);
    let history = results::write_models(&models, p, run_dir)?;
    crate::deploy::write_files(&walked, run_dir)?;
    let deployment = evaluation.deployment.clone();
    let mut summary = Summary { warnings, peak_rss: peaks, ..summarize(&cx, &walked, measured, started)? };
    crate::deploy::apply(&mut summary, deployment, p);
    run_dir.write_json("history.json", &history)?;
    run_dir.write_json("metrics.json", &summary)?;
    let input = crate::report::report_input(p, &report, &summary, &history);
    run_dir.write_json("report-input.json", &input)?;
    write_report(&run_dir.path)?;
    run_dir.write_json("lock.json", &lock(opts, &cx, &resolved, walked)?)?;
    drop(lease);
    tracing::info!(seconds = summary.seconds, "run finished");
    Ok(RunOutcome::Completed { run_dir: run_dir.path.clone(), summary: Box::new(summary) })
}

/// The run's summary from its models' metrics.
fn summarize(cx: &Context, walked: &Walked, models: ModelResults, started: Instant) -> Result<Summary, PipelineError> {
    let (p, data) = (cx.pipeline(), cx.data);
    let targets = results::targets(&p.evaluate.targets, &models)?;
    let (teacher, student) = (models.get(Role::Teacher), models.get(Role::Student));
    let compression = teacher.zip(student).filter(|(t, _)| t.params > 0).map(|(t, s)| t.params as f64 / s.params.max(1) as f64);
    let speedup = teacher.zip(student).and_then(|(t, s)| speedup(t, s));
    let (_, baseline_steps) = crate::keys::baseline_budget(p, data);
    Ok(Summary {
        pipeline: p.name.clone(),
        targets_met: targets.iter().all(|t| t.met),
        targets,
        classes: data.classes(),
        rows: row_counts(cx),
        cache_hits: walked.hits.clone(),
        compression,
        speedup,
        gain: student.zip(models.get(Role::Baseline)).and_then(|(s, b)| crate::gain::gain(s, b)),
        ensemble: crate::teachers::evaluate(cx, walked),
        transfer_confidence: match walked.output("ensemble").or(walked.output(LOGITS.name)) {
            Some(Output::Logits(l)) => crate::transfer::confidence(p, data, &l.values),
            _ => None,
        },
        baseline_budget: p.student.baseline.then(|| format!("{:?} ({baseline_steps} optimiser steps)", p.student.baseline_budget).to_lowercase()),
        models,
        warnings: Vec::new(),
        deployment: None,
        peak_rss: PeakRss::default(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// How many rows each split and each model saw.
fn row_counts(cx: &Context) -> BTreeMap<String, usize> {
    let (p, data) = (cx.pipeline(), cx.data);
    let teacher_rows = data.train.state.iter().filter(|&&s| cx.teacher_sees(s)).count();
    [
        ("train", data.train.len()),
        ("train_labelled", data.train.count(LabelState::Labelled)),
        ("train_hidden", data.train.count(LabelState::Hidden)),
        ("train_unlabelled", data.train.count(LabelState::Unlabelled)),
        ("teacher_train", if p.teacher.logits.is_some() { 0 } else { teacher_rows }),
        ("baseline_train", data.train.count(LabelState::Labelled)),
        ("val", data.val.len()),
        ("test", data.test.len()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// `lock.json`: every stage's fingerprint and artifact, and the flat keys scripts know.
fn lock(opts: &RunOptions, cx: &Context, resolved: &str, walked: Walked) -> Result<Lock, PipelineError> {
    let teacher = walked.records.iter().find(|r| r.stage == TEACHER.name);
    let logits = walked.output(LOGITS.name);
    let Some(Output::Logits(logits)) = logits else { return Err(PipelineError::Graph("the run has no teacher logits")) };
    let pipeline_text = std::fs::read(&opts.pipeline).unwrap_or_default();
    Ok(Lock {
        distill_version: env!("CARGO_PKG_VERSION").to_string(),
        pipeline_sha: hash_bytes(&pipeline_text),
        resolved_sha: hash_bytes(resolved.as_bytes()),
        data_fingerprint: cx.data.fingerprint.clone(),
        teacher_key: teacher.map(|t| t.fingerprint.clone()).unwrap_or_default(),
        teacher_weights: teacher.map(|t| t.artifact.clone()).unwrap_or_default(),
        logits_key: logits.key.clone(),
        logits_file: logits.path.display().to_string(),
        logits_blake3: logits.blake3.clone(),
        cache_dir: cx.cache.root.display().to_string(),
        cache_hits: walked.hits,
        stages: walked.records,
        keep: keep_rules(cx.pipeline()),
        recipe_dir: std::fs::canonicalize(Path::new(".").join(&cx.loaded.base_dir)).map(|d| d.display().to_string()).unwrap_or_default(),
    })
}

/// The `keep` rule of every model the recipe trains, by role.
fn keep_rules(p: &Pipeline) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if p.teacher.logits.is_none() && p.teacher.weights.is_none() {
        out.insert("teacher".to_string(), p.teacher.train.effective_keep().as_str().to_string());
    }
    out.insert("student".to_string(), p.student.train.effective_keep().as_str().to_string());
    if p.student.baseline {
        out.insert("baseline".to_string(), p.student.train.effective_keep().as_str().to_string());
    }
    out
}

/// A per-role seed, so teacher and student do not share random streams.
pub(crate) fn derive_seed(seed: u64, role: &str) -> u64 {
    let key = KeyBuilder::new("seed").part("seed", &seed.to_le_bytes()).part("role", role.as_bytes()).finish();
    u64::from_str_radix(&key[..16], 16).unwrap_or(seed)
}
