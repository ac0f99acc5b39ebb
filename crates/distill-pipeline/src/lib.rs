//! Carries out a distill pipeline: the data stage and its checks, the teacher (trained or found
//! in the cache), its logits (computed or found in the cache), the student and its baseline, and
//! the evaluation against the recipe's targets. Everything a run produces lands in its run
//! directory; everything reusable lands in the content-addressed cache.
//!
//! Not here: argument parsing and terminal output (the `distill` binary).

mod deploy;
mod evaluate;
mod export_run;
mod external;
mod gain;
mod keys;
mod load;
mod lock;
mod logits_job;
mod logits_stream;
mod models;
mod peak;
mod plan;
mod predict;
mod report;
mod rerun;
mod results;
mod run;
mod rundir;
mod snapshot;
mod stages;
mod sweep;
mod teachers;
mod trained;
mod transfer;
mod walk;
mod warnings;

pub use deploy::{DeployedModel, Deployment, Quantization};
pub use distill_cache::Cache;
pub use distill_plugin_host::inspect as inspect_plugin;
pub use evaluate::{Kept, ModelMetrics, TargetResult};
pub use export_run::export_run;
pub use gain::Gain;
pub use load::{cache_dir, load_plugins};
pub use lock::{keys_in_use, Lock, StageRecord};
pub use logits_job::{logits, swept_teacher_key, LogitsJob, LogitsOutcome};
pub use peak::{PeakRss, StagePeak};
pub use plan::{plan, plan_table};
pub use predict::{predict, PredictOptions, Predicted};
pub use report::{compare, write_report};
pub use rerun::{prepare_rerun, Rerun};
pub use results::{ModelResult, ModelResults};
pub use run::{check, run, CheckOutcome, RunOptions, RunOutcome, Summary};
pub use rundir::new_run_id;
pub use stages::shards::{Manifest, PartEntry, PartOutcome, Shard};
pub use stages::{artifact_kinds, force_values, Force, Role, StageKind, REGISTRY};
pub use sweep::{PointResult, Recommendation, SweepSummary};
pub use teachers::{EnsembleSummary, TeacherEval};
pub use transfer::TransferConfidence;
pub use walk::PlannedStage;

use std::path::PathBuf;

use distill_cache::CacheError;
use distill_data::DataError;
use distill_eval::{EvalError, ReportError};
use distill_nn::CheckpointError;
use distill_plugin_host::PluginError;
use distill_spec::SpecErrors;

/// Why a run could not finish. Each variant's message says what and where (the recipe key, the
/// file, the model); the underlying error is its `source`, which the binary prints after it.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Spec(#[from] SpecErrors),
    /// Loading or checking the data a recipe key names.
    #[error("{context}")]
    Data { context: String, source: DataError },
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("{context}")]
    Checkpoint { context: String, source: CheckpointError },
    /// A recipe key whose value does not fit the data, the plugins or the other keys.
    #[error("{key}: {message}")]
    Key { key: String, message: String },
    /// A file a recipe key names that cannot be read.
    #[error("{key}: {}", path.display())]
    File { key: String, path: PathBuf, source: std::io::Error },
    /// A plugin library or what it provides, under the recipe key that names it.
    #[error("{key}")]
    Plugin { key: String, source: Box<PluginError> },
    /// Training a model failed (a non-finite loss, a device error, a plugin loss).
    #[error("training the {model}: {message}")]
    Training { model: String, message: String },
    #[error("evaluation")]
    Evaluation(#[from] EvalError),
    #[error("report")]
    Report(#[from] ReportError),
    /// A run directory's file that is missing or does not parse.
    #[error("{}{hint}", path.display())]
    RunFile { path: PathBuf, hint: &'static str, source: Box<dyn std::error::Error + Send + Sync> },
    #[error("cannot serialise the resolved pipeline")]
    Resolved(#[source] serde_yaml::Error),
    /// Exporting a model to ONNX, or running an exported one.
    #[error("{what}")]
    Export { what: String, source: distill_export::ExportError },
    /// A stage was handed an input of another kind: a bug in the stage graph, not in the input.
    #[error("stage graph: {0}")]
    Graph(&'static str),
}

impl PipelineError {
    pub(crate) fn key(key: impl Into<String>, message: impl Into<String>) -> Self {
        PipelineError::Key { key: key.into(), message: message.into() }
    }
}
