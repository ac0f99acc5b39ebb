//! `distill export RUN_DIR`: a past run's model as ONNX. The run's own file when it wrote that
//! format; otherwise made from the run's weights and its recipe's data stage (scaling fitted on
//! the training split, int8 calibrated on training rows), exactly as the export stage makes it.

use std::path::{Path, PathBuf};

use crate::load::{data_stage, load_pipeline, load_plugins, Loaded};
use crate::lock::Lock;
use crate::models::model_shape;
use crate::report::read_run_json;
use crate::run::RunOptions;
use crate::stages::{export_model, Role};
use crate::PipelineError;
use distill_export::ExportFormat;
use distill_nn::MlpShape;

/// The ONNX bytes of `role`'s model of the run in `run_dir`, in `format`.
pub fn export_run(run_dir: &Path, format: ExportFormat, role: Role) -> Result<Vec<u8>, PipelineError> {
    let own = run_dir.join(format.file_name(role.key()));
    if own.is_file() {
        return std::fs::read(&own).map_err(|source| PipelineError::File { key: "RUN_DIR".into(), path: own, source });
    }
    let m = run_model(run_dir, role)?;
    export_model(&m.loaded.pipeline, &m.data, role, format, &m.shape, &m.weights)
}

/// A run's trained model as the run left it: its recipe, the data prepared again, the network
/// and its weights (`<role>.safetensors`).
pub(crate) struct RunModel {
    pub loaded: Loaded,
    pub data: distill_data::Prepared,
    pub shape: MlpShape,
    pub weights: Vec<u8>,
}

pub(crate) fn run_model(run_dir: &Path, role: Role) -> Result<RunModel, PipelineError> {
    let (loaded, data) = run_data(run_dir)?;
    let p = &loaded.pipeline;
    let spec = match role {
        Role::Student => &p.student.model,
        _ => p.teacher.model.as_ref().ok_or_else(|| PipelineError::key("teacher", "the run's teacher is external logits: there is no model to export"))?,
    };
    let plugins = load_plugins(p, &loaded.base_dir)?;
    let shape = model_shape(spec, &format!("{}.model", role.key()), &plugins, &data)?;
    let weights_path = run_dir.join(format!("{}.safetensors", role.key()));
    let weights = std::fs::read(&weights_path).map_err(|source| PipelineError::File { key: "RUN_DIR".into(), path: weights_path, source })?;
    Ok(RunModel { loaded, data, shape, weights })
}

/// The run's resolved recipe, its relative paths read from its recipe's folder.
pub(crate) fn run_recipe(run_dir: &Path) -> Result<Loaded, PipelineError> {
    let lock: Lock = read_run_json(&run_dir.join("lock.json"))?;
    let options = RunOptions { pipeline: run_dir.join("pipeline.resolved.yaml"), base_dir: Some(PathBuf::from(&lock.recipe_dir)), ..Default::default() };
    load_pipeline(&options)
}

/// The run's recipe and its data, prepared again.
fn run_data(run_dir: &Path) -> Result<(Loaded, distill_data::Prepared), PipelineError> {
    let loaded = run_recipe(run_dir)?;
    let (prepared, report) = data_stage(&loaded)?;
    match prepared {
        Some(data) if !report.has_errors() => Ok((loaded, data)),
        _ => Err(PipelineError::key("data", "the run's data fails its error-level checks now; it cannot be prepared again")),
    }
}
