//! Carries out a distill pipeline: the data stage and its checks, the teacher (trained or found
//! in the cache), its logits (computed or found in the cache), the student and its baseline, and
//! the evaluation against the recipe's targets. Everything a run produces lands in its run
//! directory; everything reusable lands in the content-addressed cache.
//!
//! Not here: argument parsing and terminal output (the `distill` binary).

mod evaluate;
mod external;
mod keys;
mod load;
mod lock;
mod models;
mod plan;
mod report;
mod results;
mod run;
mod rundir;
mod stages;
mod trained;
mod walk;

pub use distill_cache::Cache;
pub use distill_plugin_host::inspect as inspect_plugin;
pub use evaluate::{ModelMetrics, TargetResult};
pub use lock::{keys_in_use, Lock, StageRecord};
pub use load::load_plugins;
pub use plan::{plan, plan_table};
pub use results::{ModelResult, ModelResults};
pub use stages::{artifact_kinds, force_values, Force, Role, StageKind, REGISTRY};
pub use walk::PlannedStage;
pub use report::{compare, write_report};
pub use run::{check, run, CheckOutcome, RunOptions, RunOutcome, Summary};

use distill_cache::CacheError;
use distill_data::DataError;
use distill_nn::CheckpointError;
use distill_spec::SpecErrors;

/// Why a run could not finish. Each variant's message says what and where.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{0}")]
    Spec(#[from] SpecErrors),
    #[error("{context}: {source}")]
    Data { context: String, source: DataError },
    #[error("{0}")]
    Cache(#[from] CacheError),
    #[error("{context}: {source}")]
    Checkpoint { context: String, source: CheckpointError },
    #[error("{0}")]
    Other(String),
}
