//! The executor: stages in order, each skipped when the cache already holds its output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use distill_cache::{decode_logits, encode_logits, hash_bytes, Cache, Fingerprint, FingerprintBuilder, KeyBuilder, LogitMeta};
use distill_data::{load_source, prepare_and_check, resolve_path, run_checks_with_label, CheckReport, LabelState, Prepared, Tables};
use distill_nn::{
    accuracy, load_weights, predict_logits, save_weights, train, Checkpointing, CrossEntropy, EpochStats, Loss, LossResult, Mlp, MlpShape, TrainOptions,
    TrainTargets, NO_LABEL,
};
use distill_plugin_host::{PluginLoss, PluginRegistry};
use polars::prelude::DataFrame;

use crate::external::{self, ExternalTeacher};
use crate::keys;
use crate::lock::{Lock, StageRecord};
use crate::models::model_shape;
use crate::trained::{self, metadata, Trained};
use distill_spec::{Device, ModelSpec, Pipeline, SourceSpec, TrainSpec};

use crate::evaluate::{evaluate_targets, speedup, ModelMetrics, TargetResult};
use crate::report::{write_report, Detail};
use crate::rundir::{new_run_id, resolve, RunDir};
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
}

/// The cached stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Teacher,
    Logits,
    Student,
    Baseline,
}

impl Stage {
    /// The artifact kind in the cache (and the stage's name in lock.json).
    pub fn kind(self) -> &'static str {
        match self {
            Stage::Teacher => "teacher",
            Stage::Logits => "logits",
            Stage::Student => "student",
            Stage::Baseline => "baseline",
        }
    }
}

impl std::str::FromStr for Stage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "teacher" => Ok(Stage::Teacher),
            "logits" => Ok(Stage::Logits),
            "student" => Ok(Stage::Student),
            "baseline" => Ok(Stage::Baseline),
            other => Err(format!("unknown stage `{other}` (all, teacher, logits, student, baseline)")),
        }
    }
}

/// Which cached stages `--force` recomputes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Force {
    #[default]
    None,
    All,
    Only(Vec<Stage>),
}

impl Force {
    /// `--force` values (`all` or stage names, comma-separated or repeated).
    pub fn parse(values: &[String]) -> Result<Self, String> {
        let names: Vec<&str> = values.iter().flat_map(|v| v.split(',')).map(str::trim).filter(|v| !v.is_empty()).collect();
        if names.contains(&"all") {
            return Ok(Force::All);
        }
        let stages = names.iter().map(|n| n.parse()).collect::<Result<Vec<Stage>, String>>()?;
        Ok(if stages.is_empty() { Force::None } else { Force::Only(stages) })
    }

    /// Retraining the teacher recomputes its logits too; later stages follow their fingerprints.
    pub fn includes(&self, stage: Stage) -> bool {
        match self {
            Force::None => false,
            Force::All => true,
            Force::Only(stages) => stages.contains(&stage) || (stage == Stage::Logits && stages.contains(&Stage::Teacher)),
        }
    }
}

/// How a run ended when nothing went wrong with the inputs.
#[derive(Debug)]
pub enum RunOutcome {
    /// Everything ran; `targets` says whether the student met the recipe's targets.
    Completed { run_dir: PathBuf, summary: Box<Summary> },
    /// An error-level data check failed; nothing was trained.
    ChecksFailed { run_dir: PathBuf, report: CheckReport },
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
    /// Absent when the teacher is external logits without the test rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub teacher: Option<ModelMetrics>,
    pub student: ModelMetrics,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<ModelMetrics>,
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
    /// How the baseline's budget was matched to the student's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_budget: Option<String>,
    pub seconds: f64,
}

fn data_err(context: String) -> impl FnOnce(distill_data::DataError) -> PipelineError {
    move |source| PipelineError::Data { context, source }
}

pub(crate) struct Loaded {
    pub(crate) pipeline: Pipeline,
    pub(crate) base_dir: PathBuf,
}

pub(crate) fn load_pipeline(opts: &RunOptions) -> Result<Loaded, PipelineError> {
    let pipeline = distill_spec::load(&opts.pipeline, &opts.overrides)?;
    let base_dir = opts.pipeline.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(Loaded { pipeline, base_dir })
}

/// Loads the recipe's plugins; errors name the `plugins[i].path` key.
pub fn load_plugins(pipeline: &Pipeline, base_dir: &Path) -> Result<PluginRegistry, PipelineError> {
    let mut registry = PluginRegistry::new();
    for (i, plugin) in pipeline.plugins.iter().enumerate() {
        let path = resolve_path(base_dir, &plugin.path).map_err(data_err(format!("plugins[{i}].path")))?;
        registry.load(&path).map_err(|e| PipelineError::Other(format!("plugins[{i}].path: {e}")))?;
        tracing::info!(path = %path.display(), "plugin loaded");
    }
    Ok(registry)
}

/// A plugin's loss as a training loss. Plugin losses (ABI v1) need a label on every row.
struct PluginLossAdapter {
    loss: PluginLoss,
    params: serde_json::Value,
}

impl Loss for PluginLossAdapter {
    fn value_and_grad(&self, student: &[f32], teacher: Option<&[f32]>, labels: &[u32], k: usize) -> LossResult {
        if labels.contains(&NO_LABEL) {
            return Err("plugin losses (ABI v1) need a label on every row; unlabelled transfer rows need a built-in loss".into());
        }
        self.loss.value_and_grad(student, teacher, labels, k, &self.params).map_err(|e| e.to_string())
    }
    fn needs_teacher(&self) -> bool {
        true
    }
}

/// The student's loss from the recipe, built in or from a plugin; a plugin loss is tried once on
/// a small batch so a broken plugin fails before the teacher is trained.
fn student_loss(p: &Pipeline, plugins: &PluginRegistry, classes: usize) -> Result<Box<dyn Loss>, PipelineError> {
    distill_nn::build_loss_with(&p.student.loss, &mut |name, params| {
        let loss = plugins.require_loss(name).map_err(|e| format!("kind: {e}"))?;
        let adapter = PluginLossAdapter { loss, params };
        let probe: Vec<f32> = (0..2 * classes).map(|i| (i % 3) as f32 - 1.0).collect();
        let teacher: Vec<f32> = probe.iter().rev().copied().collect();
        adapter.value_and_grad(&probe, Some(&teacher), &[0, (classes as u32).saturating_sub(1)], classes).map_err(|e| format!("kind `{name}`: {e}"))?;
        Ok(Box::new(adapter) as Box<dyn Loss>)
    })
    .map_err(|e| PipelineError::Other(format!("student.loss.{e}")))
}

/// Loads the source (and the test and transfer files, if any) and runs the checks on each; label
/// checks do not apply to the transfer file.
pub(crate) fn load_and_check(loaded: &Loaded) -> Result<(Tables, CheckReport), PipelineError> {
    let p = &loaded.pipeline;
    let base = &loaded.base_dir;
    // A `sql` predicate that does not parse is a recipe error: report it before reading any data.
    if let Some((key, message)) = distill_data::predicate_problems(&p.data.checks).into_iter().next() {
        return Err(data_err(key)(distill_data::DataError::Invalid(message)));
    }
    let source = load_source(&p.data.source, base).map_err(data_err("data.source".into()))?;
    let label = Some(p.data.label.as_str());
    let mut report = run_checks_with_label(&source, &p.data.checks, label).map_err(data_err("data.source".into()))?;
    let mut extra = |key: &str, spec: Option<&SourceSpec>, label_checks: bool| -> Result<Option<DataFrame>, PipelineError> {
        let Some(spec) = spec else { return Ok(None) };
        let table = load_source(spec, base).map_err(data_err(key.into()))?;
        let checks: Vec<_> = p.data.checks.iter().filter(|c| label_checks || c.kind.column() != Some(p.data.label.as_str())).cloned().collect();
        let part = run_checks_with_label(&table, &checks, label).map_err(data_err(key.into()))?;
        let prefix = key.trim_start_matches("data.").trim_end_matches(".source");
        report.checks.extend(part.checks.into_iter().map(|mut c| {
            c.id = format!("{prefix}:{}", c.id);
            c
        }));
        Ok(Some(table))
    };
    let test = extra("data.test_source", p.data.test_source.as_ref(), true)?;
    let transfer = extra("data.transfer.source", p.data.transfer.as_ref().and_then(|t| t.source.as_ref()), false)?;
    Ok((Tables { source, test, transfer }, report))
}

/// Runs only the data stage and its checks.
pub fn check(opts: &RunOptions) -> Result<CheckOutcome, PipelineError> {
    let loaded = load_pipeline(opts)?;
    let (tables, mut report) = load_and_check(&loaded)?;
    let p = &loaded.pipeline;
    prepare_and_check(&tables, &p.data, p.seed, &mut report).map_err(data_err("data".into()))?;
    Ok(CheckOutcome { pipeline: loaded.pipeline, report })
}

/// Runs the whole pipeline. `on_run_dir` is called as soon as the run directory exists (the
/// binary uses it to start the run's log file).
pub fn run(opts: &RunOptions, on_run_dir: &dyn Fn(&Path)) -> Result<RunOutcome, PipelineError> {
    let loaded = load_pipeline(opts)?;
    let plugins = load_plugins(&loaded.pipeline, &loaded.base_dir)?;
    let path = opts.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&loaded.pipeline.name).join(new_run_id()));
    let fresh = !path.exists();
    let run_dir = RunDir::create(path)?;
    on_run_dir(&run_dir.path);
    let result = run_in(opts, &loaded, &plugins, &run_dir);
    if result.is_err() && fresh {
        // A failed run leaves no partial outputs behind (the error is printed instead).
        let _ = std::fs::remove_dir_all(&run_dir.path);
    }
    result
}

fn run_in(opts: &RunOptions, loaded: &Loaded, plugins: &PluginRegistry, run_dir: &RunDir) -> Result<RunOutcome, PipelineError> {
    let started = Instant::now();
    let p = &loaded.pipeline;
    tracing::info!(pipeline = %p.name, run_dir = %run_dir.path.display(), "run started");
    let resolved = serde_yaml::to_string(p).map_err(|e| PipelineError::Other(format!("cannot write the resolved pipeline: {e}")))?;
    run_dir.write("pipeline.resolved.yaml", resolved.as_bytes())?;

    // Data.
    // Table checks, then the split and the checks that compare splits (leakage, drift): every
    // check runs before the run stops, so the report is complete.
    let (tables, mut report) = load_and_check(loaded)?;
    let prepared = prepare_and_check(&tables, &p.data, p.seed, &mut report).map_err(data_err("data".into()))?;
    drop(tables);
    run_dir.write_json("checks.json", &report)?;
    let data = match prepared {
        Some(data) if !report.has_errors() => data,
        _ => {
            tracing::error!("an error-level data check failed; nothing will be trained");
            return Ok(RunOutcome::ChecksFailed { run_dir: run_dir.path.clone(), report });
        }
    };

    let cache = Cache::new(cache_root(opts, loaded));
    let checkpoints = Checkpoints {
        dir: cache.root.join("checkpoints"),
        recipe: KeyBuilder::new("checkpoint/v1").part("recipe", resolved.as_bytes()).part("data", data.fingerprint.as_bytes()).finish(),
        resume: opts.resume,
    };
    let kd = student_loss(p, plugins, data.classes())?;
    // Both networks before any training, so a bad plugin architecture fails first.
    let teacher_shape = p.teacher.model.as_ref().map(|m| model_shape(m, "teacher.model", plugins, &data)).transpose()?;
    let student_shape = model_shape(&p.student.model, "student.model", plugins, &data)?;
    let plugins_hash = keys::plugins_hash(p, &loaded.base_dir);
    let mut stages = Stages { cache: &cache, force: &opts.force, pipeline: &p.name, hits: Vec::new(), records: Vec::new() };
    let data_fp = Fingerprint { key: data.fingerprint.clone(), inputs: Default::default() };
    stages.records.push(StageRecord::new("data", None, &data_fp, String::new(), false));

    // Teacher: weights keyed by everything that decides them, or given (weights or logits).
    let teacher_rows = data.train.subset(|s| s == LabelState::Labelled || (keys::teacher_sees_hidden(p) && s == LabelState::Hidden));
    let teacher_seed = derive_seed(p.seed, "teacher");
    let (teacher, teacher_id, teacher_fp) =
        teacher_stage(&mut stages, loaded, &data, teacher_shape.as_ref(), &plugins_hash, teacher_seed, teacher_rows.len(), |model| {
            Fit {
                x: &teacher_rows.x,
                labels: &teacher_rows.y,
                teacher: None,
                loss: &CrossEntropy,
                spec: &p.teacher.train,
                seed: teacher_seed,
                name: "teacher",
                max_steps: None,
                checkpoints: &checkpoints,
                device: p.device,
            }
            .run(model, &data)
        })?;
    if let Teacher::Model(t, _) = &teacher {
        run_dir.write("teacher.safetensors", &t.bytes)?;
    }
    let logits = logits_stage(&mut stages, p, &data, &teacher, &teacher_id)?;
    let (teacher_logits, logits_blake3) = (logits.values, logits.blake3);

    // Student (distilled) on every training row, labels only where the student may see them;
    // baseline on the labelled rows alone. Once per seed; each found in the cache when unchanged.
    let classes = data.classes();
    let student_labels: Vec<u32> = data.train.y.iter().zip(&data.train.state).map(|(&y, &s)| if s == LabelState::Labelled { y } else { NO_LABEL }).collect();
    let baseline_rows = data.train.subset(|s| s == LabelState::Labelled);
    let (baseline_train, baseline_steps) = keys::baseline_budget(p, &data);
    if p.student.baseline && baseline_rows.len() != data.train.len() {
        tracing::info!(rows = baseline_rows.len(), steps = baseline_steps, epochs = baseline_train.epochs, rule = ?p.student.baseline_budget, "baseline: labelled rows only");
    }
    let seeds = p.student.seeds.clone().unwrap_or_else(|| vec![p.seed]);
    let teacher_test: Option<Vec<f32>> = match &teacher {
        Teacher::Model(t, _) => Some(predict_logits(&t.model, &data.test.x)),
        Teacher::External(e) => e.test.clone(),
    };
    let measure = |model: &Mlp, seconds: f64| {
        let logits = predict_logits(model, &data.test.x);
        let mut m = ModelMetrics::new(&logits, &data.test.y, classes, model.param_count());
        m.val_accuracy = (!data.val.is_empty()).then(|| accuracy(&predict_logits(model, &data.val.x), &data.val.y, classes));
        m.teacher_agreement = teacher_test.as_ref().and_then(|t| distill_eval::metrics::agreement(t, &logits, classes).ok()).map(|a| a.agreement);
        m.train_seconds = seconds;
        m
    };
    let (mut student_runs, mut baseline_runs) = (Vec::new(), Vec::new());
    let mut history = BTreeMap::new();
    let mut first_models: Vec<(&str, Mlp)> = Vec::new();
    for (i, &seed) in seeds.iter().enumerate() {
        let seed_for = derive_seed(seed, "student");
        let suffix = if seeds.len() > 1 { format!("@{seed}") } else { String::new() };
        let recorded_seed = Some(seed);
        let name = format!("student{suffix}");
        let fp = keys::student(p, &data, &logits_blake3, seed_for, &plugins_hash);
        let job = ModelJob {
            stage: Stage::Student,
            name: &name,
            seed: recorded_seed,
            fp: &fp,
            shape: &student_shape,
            init_seed: seed_for,
            spec: &p.student.model,
            rows: data.train.len(),
        };
        let (student, seconds) = stages.model(&job, |model| {
            Fit {
                x: &data.train.x,
                labels: &student_labels,
                teacher: Some(&teacher_logits),
                loss: kd.as_ref(),
                spec: &p.student.train,
                seed: seed_for,
                name: &name,
                max_steps: None,
                checkpoints: &checkpoints,
                device: p.device,
            }
            .run(model, &data)
        })?;
        history.insert(name.clone(), student.history);
        student_runs.push((seed, measure(&student.model, seconds)));
        if i == 0 {
            first_models.push(("student", student.model));
        }
        if p.student.baseline {
            let name = format!("baseline{suffix}");
            let fp = keys::baseline(p, &data, &baseline_train, baseline_steps, seed_for, &plugins_hash);
            let job = ModelJob {
                stage: Stage::Baseline,
                name: &name,
                seed: recorded_seed,
                fp: &fp,
                shape: &student_shape,
                init_seed: seed_for,
                spec: &p.student.model,
                rows: baseline_rows.len(),
            };
            let (model, seconds) = stages.model(&job, |model| {
                Fit {
                    x: &baseline_rows.x,
                    labels: &baseline_rows.y,
                    teacher: None,
                    loss: &CrossEntropy,
                    spec: &baseline_train,
                    seed: seed_for,
                    name: &name,
                    max_steps: Some(baseline_steps),
                    checkpoints: &checkpoints,
                    device: p.device,
                }
                .run(model, &data)
            })?;
            history.insert(name.clone(), model.history);
            baseline_runs.push((seed, measure(&model.model, seconds)));
            if i == 0 {
                first_models.push(("baseline", model.model));
            }
        }
    }

    // Evaluation on the test split.
    let detail = Detail { data: &data, teacher_test: teacher_test.as_deref(), spec: &p.evaluate };
    let teacher_metrics = match &teacher {
        Teacher::Model(t, seconds) => {
            history.insert("teacher".to_string(), t.history.clone());
            let mut m = measure(&t.model, *seconds);
            m.teacher_agreement = None;
            detail.add(&t.model, t.bytes.len(), &mut m, false)?;
            Some(m)
        }
        Teacher::External(e) => match &e.test {
            Some(test) => {
                history.insert("teacher".to_string(), Vec::new());
                let mut m = ModelMetrics::new(test, &data.test.y, classes, 0);
                detail.add_logits(test, &mut m, false)?;
                Some(m)
            }
            None => {
                tracing::info!("teacher: the external logits have no test rows; no teacher metrics");
                None
            }
        },
    };
    let mut student_metrics = ModelMetrics::aggregate(student_runs);
    let mut baseline_metrics = (!baseline_runs.is_empty()).then(|| ModelMetrics::aggregate(baseline_runs));
    for (name, model) in &first_models {
        let bytes = save_weights(model, metadata(name, &p.student.model, None))
            .map_err(|source| PipelineError::Checkpoint { context: format!("saving the {name}"), source })?;
        run_dir.write(&format!("{name}.safetensors"), &bytes)?;
        match (*name, baseline_metrics.as_mut()) {
            ("student", _) => detail.add(model, bytes.len(), &mut student_metrics, true)?,
            ("baseline", Some(m)) => detail.add(model, bytes.len(), m, true)?,
            _ => {}
        }
    }
    let targets = evaluate_targets(&p.evaluate.targets, teacher_metrics.as_ref(), &student_metrics);
    let targets_met = targets.iter().all(|t| t.met);
    run_dir.write_json("history.json", &history)?;
    let compression = teacher_metrics.as_ref().filter(|t| t.params > 0).map(|t| t.params as f64 / student_metrics.params.max(1) as f64);
    let speedup = teacher_metrics.as_ref().and_then(|t| speedup(t, &student_metrics));
    let hits = stages.hits.clone();
    let summary = Summary {
        pipeline: p.name.clone(),
        teacher: teacher_metrics,
        student: student_metrics,
        baseline: baseline_metrics,
        targets,
        targets_met,
        classes,
        rows: [
            ("train", data.train.len()),
            ("train_labelled", data.train.count(LabelState::Labelled)),
            ("train_hidden", data.train.count(LabelState::Hidden)),
            ("train_unlabelled", data.train.count(LabelState::Unlabelled)),
            ("teacher_train", if p.teacher.logits.is_some() { 0 } else { teacher_rows.len() }),
            ("baseline_train", baseline_rows.len()),
            ("val", data.val.len()),
            ("test", data.test.len()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
        compression,
        speedup,
        baseline_budget: p.student.baseline.then(|| format!("{:?} ({baseline_steps} optimiser steps)", p.student.baseline_budget).to_lowercase()),
        cache_hits: hits.clone(),
        seconds: started.elapsed().as_secs_f64(),
    };
    run_dir.write_json("metrics.json", &summary)?;
    let input = crate::report::report_input(p, &report, &summary, &history);
    run_dir.write_json("report-input.json", &input)?;
    write_report(&run_dir.path)?;
    let pipeline_text = std::fs::read(&opts.pipeline).unwrap_or_default();
    run_dir.write_json(
        "lock.json",
        &Lock {
            distill_version: env!("CARGO_PKG_VERSION").to_string(),
            pipeline_sha: hash_bytes(&pipeline_text),
            resolved_sha: hash_bytes(resolved.as_bytes()),
            data_fingerprint: data.fingerprint.clone(),
            teacher_key: teacher_fp.key.clone(),
            teacher_weights: teacher_id.trim_start_matches("external:").to_string(),
            logits_key: logits.key,
            logits_file: logits.path.display().to_string(),
            logits_blake3,
            cache_dir: cache.root.display().to_string(),
            cache_hits: hits,
            stages: stages.records,
        },
    )?;
    tracing::info!(seconds = summary.seconds, "run finished");
    Ok(RunOutcome::Completed { run_dir: run_dir.path.clone(), summary: Box::new(summary) })
}

/// Where the teacher's knowledge comes from.
enum Teacher {
    /// A model (trained here, found in the cache or loaded from `teacher.weights`) and its
    /// training seconds in this run.
    Model(Trained, f64),
    /// Logits from a file, no model.
    External(ExternalTeacher),
}

/// The cached stages of one run: what was found, what was recorded.
struct Stages<'a> {
    cache: &'a Cache,
    force: &'a Force,
    pipeline: &'a str,
    hits: Vec<String>,
    records: Vec<StageRecord>,
}

impl Stages<'_> {
    /// A trained model (teacher, student or baseline) by its fingerprint: from the cache when it
    /// is there (and not forced), else trained by `train` and stored. Returns the model and the
    /// seconds spent training it in this run.
    fn model(&mut self, job: &ModelJob, train: impl FnOnce(&mut Mlp) -> Result<Vec<EpochStats>, PipelineError>) -> Result<(Trained, f64), PipelineError> {
        let (kind, key, name) = (job.stage.kind(), &job.fp.key, job.name);
        let found = trained::cached(self.cache, kind, key, job.shape, job.init_seed, self.force.includes(job.stage));
        let hit = found.is_some();
        let (model, seconds) = match found {
            Some(found) => {
                tracing::info!(key = %short(key), "{name}: cache hit, skipped training");
                self.hits.push(name.to_string());
                (found, 0.0)
            }
            None => {
                tracing::info!(key = %short(key), params = job.shape.param_count(), rows = job.rows, "{name}: training");
                let t0 = Instant::now();
                let mut model = Mlp::new(job.shape.clone(), job.init_seed);
                let history = train(&mut model)?;
                let seconds = t0.elapsed().as_secs_f64();
                (trained::store(self.cache, kind, key, job.spec, model, history, self.pipeline)?, seconds)
            }
        };
        self.records.push(StageRecord::new(kind, job.seed, job.fp, hash_bytes(&model.bytes), hit));
        Ok((model, seconds))
    }

    /// Whether the stage named `name` came from the cache in this run.
    fn hit(&self, name: &str) -> bool {
        self.hits.iter().any(|h| h == name)
    }
}

/// One trained-model stage: which, its job name (e.g. `student@3`, for the log and
/// `cache_hits`), the seed it is recorded under, its key, network and init seed.
struct ModelJob<'a> {
    stage: Stage,
    name: &'a str,
    seed: Option<u64>,
    fp: &'a Fingerprint,
    shape: &'a MlpShape,
    init_seed: u64,
    spec: &'a ModelSpec,
    rows: usize,
}

/// The teacher from its source: `teacher.logits` (a file, no model), `teacher.weights` (loaded)
/// or trained by `train` (or found in the cache). Records the teacher stage; returns the teacher,
/// its identity (the weights' blake3, or `external:` + the file's) and its fingerprint.
#[allow(clippy::too_many_arguments)]
fn teacher_stage(
    stages: &mut Stages,
    loaded: &Loaded,
    data: &Prepared,
    shape: Option<&MlpShape>,
    plugins_hash: &str,
    seed: u64,
    rows: usize,
    train: impl FnOnce(&mut Mlp) -> Result<Vec<EpochStats>, PipelineError>,
) -> Result<(Teacher, String, Fingerprint), PipelineError> {
    let p = &loaded.pipeline;
    let given = |key: &str, id: &str| FingerprintBuilder::new("teacher/given").part(key, id.as_bytes()).finish();
    let (teacher, id, fp) = match (&p.teacher.logits, &p.teacher.weights, shape, &p.teacher.model) {
        (Some(ext), _, _, _) => {
            let e = external::load(&loaded.base_dir, &ext.path, data)?;
            let fp = given("teacher.logits", &e.blake3);
            let id = format!("external:{}", e.blake3);
            (Teacher::External(e), id, fp)
        }
        (None, Some(path), Some(shape), _) => {
            let (model, bytes) = given_teacher(&loaded.base_dir, path, shape, p.seed)?;
            let id = hash_bytes(&bytes);
            (Teacher::Model(Trained { model, history: Vec::new(), bytes }, 0.0), id.clone(), given("teacher.weights", &id))
        }
        (None, None, Some(shape), Some(spec)) => {
            // `Stages::model` records the stage itself.
            let fp = keys::teacher(p, data, plugins_hash);
            let job = ModelJob { stage: Stage::Teacher, name: "teacher", seed: None, fp: &fp, shape, init_seed: seed, spec, rows };
            let (t, seconds) = stages.model(&job, train)?;
            let id = hash_bytes(&t.bytes);
            return Ok((Teacher::Model(t, seconds), id, fp));
        }
        _ => return Err(PipelineError::Other("teacher.model: the teacher needs a `model` or `logits`".into())),
    };
    stages.records.push(StageRecord::new("teacher", None, &fp, id.trim_start_matches("external:").to_string(), false));
    Ok((teacher, id, fp))
}

/// The teacher's logits as the students use them.
struct Logits {
    /// Row-major over the training rows, as stored (top-k rebuilt).
    values: Vec<f32>,
    /// blake3 of the Parquet file: the students' input.
    blake3: String,
    key: String,
    path: PathBuf,
}

/// Teacher logits over every training row, transfer set included, keyed by the teacher, the rows
/// and the storage: from the cache, or predicted (aligned, for external logits) and stored.
fn logits_stage(stages: &mut Stages, p: &Pipeline, data: &Prepared, teacher: &Teacher, teacher_id: &str) -> Result<Logits, PipelineError> {
    let top_k = p.teacher.cache.as_ref().and_then(|c| c.top_k);
    if let Some(k) = top_k.filter(|&k| k > data.classes()) {
        return Err(PipelineError::Other(format!("teacher.cache.top_k: {k} is more than the {} classes", data.classes())));
    }
    let storage = keys::storage(p);
    let fp = keys::logits(teacher_id, data, &storage);
    let path = stages.cache.logits(&fp.key);
    let meta =
        LogitMeta { teacher_fingerprint: teacher_id.to_string(), data_fingerprint: data.fingerprint.clone(), class_names: data.class_names.clone(), top_k };
    let (values, bytes) = match cached_logits(stages.cache, &path, &meta, data, stages.force.includes(Stage::Logits)) {
        Some(found) => {
            tracing::info!(key = %short(&fp.key), "teacher logits: cache hit, skipped inference");
            stages.hits.push("teacher_logits".to_string());
            found
        }
        None => {
            tracing::info!(key = %short(&fp.key), rows = data.train.len(), storage, "teacher logits: computing");
            let l = match teacher {
                Teacher::Model(t, _) => predict_logits(&t.model, &data.train.x),
                Teacher::External(e) => e.train.clone(),
            };
            let bytes = encode_logits(&path, &meta, &data.train.row_ids, &l)?;
            stages.cache.store("logits", &fp.key, &path, &bytes, &p.name)?;
            // Train on what was stored (top-k rebuilt), so a later cache hit trains the same.
            (decode_logits(&path, bytes.clone())?.logits, bytes)
        }
    };
    let blake3 = hash_bytes(&bytes);
    stages.records.push(StageRecord::new("logits", None, &fp, blake3.clone(), stages.hit("teacher_logits")));
    Ok(Logits { values, blake3, key: fp.key, path })
}

pub(crate) fn cache_root(opts: &RunOptions, loaded: &Loaded) -> PathBuf {
    if let Some(dir) = &opts.cache_dir {
        return dir.clone();
    }
    if let Some(dir) = std::env::var_os("DISTILL_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    match &loaded.pipeline.cache_dir {
        Some(dir) => resolve(&loaded.base_dir, dir),
        None => PathBuf::from(".distill-cache"),
    }
}

fn short(key: &str) -> &str {
    &key[..key.len().min(12)]
}

/// A per-role seed, so teacher and student do not share random streams.
pub(crate) fn derive_seed(seed: u64, role: &str) -> u64 {
    let key = KeyBuilder::new("seed").part("seed", &seed.to_le_bytes()).part("role", role.as_bytes()).finish();
    u64::from_str_radix(&key[..16], 16).unwrap_or(seed)
}

/// Loads the teacher weights a recipe names; errors name `teacher.weights` and the file.
fn given_teacher(base_dir: &Path, path: &Path, shape: &MlpShape, seed: u64) -> Result<(Mlp, Vec<u8>), PipelineError> {
    let path = resolve_path(base_dir, path).map_err(data_err("teacher.weights".into()))?;
    let bytes = std::fs::read(&path).map_err(|e| PipelineError::Other(format!("teacher.weights: {}: {e}", path.display())))?;
    let mut model = Mlp::new(shape.clone(), seed);
    load_weights(&mut model, &bytes).map_err(|source| PipelineError::Checkpoint { context: format!("teacher.weights: {}", path.display()), source })?;
    tracing::info!(path = %path.display(), "teacher: loaded given weights, no training");
    Ok((model, bytes))
}

/// Reads cached logits if present, intact, and for exactly this teacher and these rows.
fn cached_logits(cache: &Cache, path: &Path, meta: &LogitMeta, data: &Prepared, forced: bool) -> Option<(Vec<f32>, Vec<u8>)> {
    if forced {
        tracing::info!("teacher logits: --force, recomputing");
        return None;
    }
    let bytes = match cache.load_verified(path) {
        Ok(found) => found?,
        Err(problem) => {
            tracing::warn!(path = %path.display(), %problem, "cached logits are unusable; recomputing");
            return None;
        }
    };
    match decode_logits(path, bytes.clone()) {
        Ok(file) if file.meta == *meta && file.row_ids == data.train.row_ids => Some((file.logits, bytes)),
        Ok(_) => {
            tracing::warn!(path = %path.display(), "cached logits belong to another teacher or other rows; recomputing");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "cached logits are unreadable; recomputing");
            None
        }
    }
}

/// One training job: rows, labels, optional teacher logits, loss and budget.
struct Fit<'a> {
    x: &'a [f32],
    labels: &'a [u32],
    teacher: Option<&'a [f32]>,
    loss: &'a dyn Loss,
    spec: &'a TrainSpec,
    seed: u64,
    name: &'a str,
    max_steps: Option<usize>,
    checkpoints: &'a Checkpoints,
    device: Device,
}

/// Where training jobs keep their per-epoch checkpoints: in the cache, keyed by the whole
/// resolved recipe, the data, the job's name and seed, so `--resume` continues only the run that
/// was interrupted.
struct Checkpoints {
    dir: PathBuf,
    recipe: String,
    resume: bool,
}

impl Checkpoints {
    fn for_job(&self, name: &str, seed: u64) -> Checkpointing {
        let job = KeyBuilder::new("checkpoint-job/v1")
            .part("recipe", self.recipe.as_bytes())
            .part("name", name.as_bytes())
            .part("seed", &seed.to_le_bytes())
            .finish();
        Checkpointing { path: self.dir.join(format!("{job}.ckpt")), job, resume: self.resume }
    }
}

impl Fit<'_> {
    fn run(&self, model: &mut Mlp, data: &Prepared) -> Result<Vec<EpochStats>, PipelineError> {
        let spec = self.spec;
        let options = TrainOptions {
            checkpoint: Some(self.checkpoints.for_job(self.name, self.seed)),
            device: self.device,
            ..TrainOptions::from_spec(spec, self.seed, self.name, self.max_steps)
        };
        let targets = TrainTargets { x: self.x, labels: self.labels, teacher_logits: self.teacher };
        let validation = (!data.val.is_empty()).then_some((data.val.x.as_slice(), data.val.y.as_slice()));
        let t0 = Instant::now();
        let history = train(model, &targets, self.loss, &options, validation).map_err(|e| PipelineError::Other(format!("training the {}: {e}", self.name)))?;
        let seconds = t0.elapsed().as_secs_f64();
        let rows = self.labels.len();
        let steps = self.max_steps.unwrap_or(usize::MAX).min(spec.epochs * options.steps_per_epoch(rows));
        let samples = (steps * spec.batch).min(rows * spec.epochs) as f64;
        tracing::info!(
            model = self.name,
            rows,
            epochs = history.len(),
            seconds = format!("{seconds:.2}"),
            samples_per_s = format!("{:.0}", samples / seconds.max(1e-9)),
            "trained"
        );
        Ok(history)
    }
}
