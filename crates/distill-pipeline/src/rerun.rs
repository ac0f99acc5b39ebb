//! `distill rerun RUN_DIR`: run a past run's recipe exactly as it resolved it
//! (`pipeline.resolved.yaml`: `extends:` merged, `--set` applied, every default filled in), with
//! its relative paths read from the folder of the recipe it came from (`lock.json`'s
//! `recipe_dir`), after comparing that run's `lock.json` with the present: distill version, data
//! fingerprint, plugin libraries.

use std::path::{Path, PathBuf};

use distill_cache::hash_bytes;

use crate::keys::plugins_hash;
use crate::load::{data_stage, load_pipeline};
use crate::lock::Lock;
use crate::report::read_run_json;
use crate::run::RunOptions;
use crate::PipelineError;

/// A re-run ready to go, and what differs from the run it repeats.
#[derive(Debug)]
pub struct Rerun {
    /// Runs the resolved recipe of the past run (add `out`, `cache_dir`, `force` as for a run).
    pub options: RunOptions,
    /// One line per difference, e.g. "data fingerprint: 1a2b… then, 3c4d… now".
    pub changes: Vec<String>,
}

/// Reads `run_dir`'s resolved recipe and lock and compares the lock with the present.
pub fn prepare_rerun(run_dir: &Path) -> Result<Rerun, PipelineError> {
    let lock: Lock = read_run_json(&run_dir.join("lock.json"))?;
    if lock.recipe_dir.is_empty() {
        return Err(PipelineError::RunFile {
            path: run_dir.join("lock.json"),
            hint: " has no `recipe_dir` (written by an older distill): the folder its recipe's relative paths mean is unknown",
            source: "cannot re-run".into(),
        });
    }
    let options = RunOptions { pipeline: run_dir.join("pipeline.resolved.yaml"), base_dir: Some(PathBuf::from(&lock.recipe_dir)), ..Default::default() };
    let loaded = load_pipeline(&options)?;
    let mut changes = Vec::new();
    let version = env!("CARGO_PKG_VERSION");
    if lock.distill_version != version {
        changes.push(format!("distill version: {} then, {version} now", lock.distill_version));
    }
    let (prepared, report) = data_stage(&loaded)?;
    match prepared {
        Some(data) if data.fingerprint != lock.data_fingerprint => changes.push(format!(
            "data fingerprint: {} then, {} now (the rows, features or preprocessing changed)",
            short(&lock.data_fingerprint),
            short(&data.fingerprint)
        )),
        Some(_) => {}
        None => changes.push(format!(
            "data: cannot be split now ({} checks failing)",
            report.checks.iter().filter(|c| c.status == distill_data::CheckStatus::Error).count()
        )),
    }
    // The trained stages' fingerprints record the hash of the plugin libraries' hash.
    let plugins_now = hash_bytes(plugins_hash(&loaded.pipeline, &loaded.base_dir).as_bytes());
    if let Some(then) = lock.stages.iter().find_map(|s| s.inputs.get("plugins")) {
        if *then != plugins_now {
            changes.push(format!("plugin libraries: {} then, {} now (their bytes changed)", short(then), short(&plugins_now)));
        }
    }
    Ok(Rerun { options, changes })
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}
