//! Loading a recipe for a run or a plan: the pipeline file, its plugins, the student's loss, the
//! data with its checks (the data stage), and the cache it uses.

use std::path::{Path, PathBuf};

use distill_cache::Cache;
use distill_data::{load_source, prepare_and_check, resolve_path, run_checks_with_label, CheckReport, Prepared, Tables};
use distill_nn::{Loss, LossResult, NO_LABEL};
use distill_plugin_host::{PluginLoss, PluginRegistry};
use distill_spec::memory::Shape;
use distill_spec::{Pipeline, SourceSpec};
use polars::prelude::DataFrame;

use crate::run::RunOptions;
use crate::rundir::resolve;
use crate::PipelineError;

pub(crate) fn data_err(context: String) -> impl FnOnce(distill_data::DataError) -> PipelineError {
    move |source| PipelineError::Data { context, source }
}

pub(crate) struct Loaded {
    pub(crate) pipeline: Pipeline,
    pub(crate) base_dir: PathBuf,
}

pub(crate) fn load_pipeline(opts: &RunOptions) -> Result<Loaded, PipelineError> {
    let pipeline = distill_spec::load(&opts.pipeline, &opts.overrides)?;
    let base_dir = opts.base_dir.clone().unwrap_or_else(|| opts.pipeline.parent().map(Path::to_path_buf).unwrap_or_default());
    Ok(Loaded { pipeline, base_dir })
}

/// Loads the recipe's plugins; errors name the `plugins[i].path` key.
pub fn load_plugins(pipeline: &Pipeline, base_dir: &Path) -> Result<PluginRegistry, PipelineError> {
    let mut registry = PluginRegistry::new();
    let mut seen: Vec<PathBuf> = Vec::new();
    for (i, plugin) in pipeline.plugins.iter().enumerate() {
        let path = resolve_path(base_dir, &plugin.path).map_err(data_err(format!("plugins[{i}].path")))?;
        // The same library under another spelling of its path would load its names twice.
        if let Ok(real) = std::fs::canonicalize(&path) {
            if let Some(first) = seen.iter().position(|s| *s == real) {
                let message = format!("`{}` is the library of plugins[{first}] again; list each library once", plugin.path.display());
                return Err(PipelineError::key(format!("plugins[{i}].path"), message));
            }
            seen.push(real);
        }
        registry.load(&path).map_err(|source| PipelineError::Plugin { key: format!("plugins[{i}].path"), source: Box::new(source) })?;
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
pub(crate) fn student_loss(p: &Pipeline, plugins: &PluginRegistry, classes: usize) -> Result<Box<dyn Loss>, PipelineError> {
    distill_nn::build_loss_with(&p.student.loss, &mut |name, params| {
        let loss = plugins.require_loss(name).map_err(|e| format!("kind: {e}"))?;
        let adapter = PluginLossAdapter { loss, params };
        let probe: Vec<f32> = (0..2 * classes).map(|i| (i % 3) as f32 - 1.0).collect();
        let teacher: Vec<f32> = probe.iter().rev().copied().collect();
        adapter.value_and_grad(&probe, Some(&teacher), &[0, (classes as u32).saturating_sub(1)], classes).map_err(|e| format!("kind `{name}`: {e}"))?;
        Ok(Box::new(adapter) as Box<dyn Loss>)
    })
    .map_err(|e| PipelineError::key("student.loss", e.trim_start_matches('.').to_string()))
}

/// Loads the source (and the test and transfer files, if any; the transfer file only
/// `with_transfer`) and runs the checks on each; label checks do not apply to the transfer file.
pub(crate) fn load_and_check(loaded: &Loaded, with_transfer: bool) -> Result<(Tables, CheckReport), PipelineError> {
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
    let transfer = extra("data.transfer.source", p.data.transfer.as_ref().and_then(|t| t.source.as_ref()).filter(|_| with_transfer), false)?;
    Ok((Tables { source, test, transfer }, report))
}

/// The data stage: the table checks, then the split and the checks that compare splits (leakage,
/// drift), so the report is complete. No data when it cannot be split after a failed check.
pub(crate) fn data_stage(loaded: &Loaded) -> Result<(Option<Prepared>, CheckReport), PipelineError> {
    data_stage_with_shape(loaded).map(|(prepared, report, _)| (prepared, report))
}

/// [`data_stage`] and the data's shape (none when it cannot be read); the tables are dropped
/// before it returns, once the matrices exist.
pub(crate) fn data_stage_with_shape(loaded: &Loaded) -> Result<(Option<Prepared>, CheckReport, Option<Shape>), PipelineError> {
    let (tables, mut report) = load_and_check(loaded, true)?;
    let p = &loaded.pipeline;
    let shape = distill_data::shape(&tables, &p.data).ok();
    if let Some(shape) = shape {
        refuse_shape(p, shape)?;
    }
    let prepared = prepare_and_check(&tables, &p.data, p.seed, &mut report).map_err(data_err("data".into()))?;
    Ok((prepared, report, shape))
}

/// Declared sizes that cannot fit with this data's rows, features and classes are refused here,
/// before the feature matrix, augmentation, models and metrics are allocated. Data whose shape
/// cannot be read is left to the data stage's own errors.
pub(crate) fn refuse_shape(p: &Pipeline, shape: Shape) -> Result<(), PipelineError> {
    let Some(memory) = distill_spec::memory::Memory::available() else { return Ok(()) };
    match distill_spec::memory::refuse(p, &shape, memory).into_iter().next() {
        Some((key, message)) => {
            Err(PipelineError::key(key, format!("with {} rows, {} features and {} classes, this {message}", shape.rows, shape.features, shape.classes)))
        }
        None => Ok(()),
    }
}

/// The run's cache: `--cache-dir`, `$DISTILL_CACHE_DIR`, the recipe's `cache_dir` or `.distill-cache`.
pub(crate) fn cache_for(opts: &RunOptions, loaded: &Loaded) -> Cache {
    Cache::new(cache_root(opts, loaded), &crate::stages::artifact_kinds())
}

/// The cache directory a run of `opts` uses (`--cache-dir`, `$DISTILL_CACHE_DIR`, the recipe's
/// `cache_dir`, `.distill-cache`), as the tasks of a submitted recipe are all given it.
pub fn cache_dir(opts: &RunOptions) -> Result<PathBuf, PipelineError> {
    Ok(cache_root(opts, &load_pipeline(opts)?))
}

fn cache_root(opts: &RunOptions, loaded: &Loaded) -> PathBuf {
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
