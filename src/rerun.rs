//! `distill rerun RUN_DIR`: a past run's recipe exactly as it resolved it, after saying what
//! differs from then (see `distill_pipeline::prepare_rerun`).

use std::path::Path;

use distill_pipeline::{Force, RunOptions};

/// What the command line adds to the run's own recipe.
pub struct Args<'a> {
    pub run: &'a Path,
    pub strict: bool,
    pub out: Option<std::path::PathBuf>,
    pub cache_dir: Option<std::path::PathBuf>,
    pub force: Force,
}

/// The run's options; each difference from the past run is a warning, or with `strict` an error
/// before anything runs.
pub fn options(args: Args) -> Result<RunOptions, String> {
    let rerun = distill_pipeline::prepare_rerun(args.run).map_err(|e| crate::error_chain(&e))?;
    if !rerun.changes.is_empty() {
        let list = rerun.changes.iter().map(|c| format!("  {c}")).collect::<Vec<_>>().join("\n");
        if args.strict {
            return Err(format!("{}: not re-run (--strict): the present differs from that run:\n{list}", args.run.display()));
        }
        eprintln!("warning: {}: the present differs from that run, so the results may too:\n{list}", args.run.display());
    }
    Ok(RunOptions { out: args.out, cache_dir: args.cache_dir, force: args.force, ..rerun.options })
}
