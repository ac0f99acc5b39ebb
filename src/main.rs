//! `distill`: run knowledge-distillation recipes described in one YAML file.
//!
//! This binary only parses arguments, sets up logging and prints results; the work happens in
//! the `distill-*` crates.

mod bench;
mod deploy;
mod init;
mod logits;
mod output;
mod rerun;
mod runlog;
mod submit;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use distill_pipeline::{Force, RunOptions, RunOutcome};

/// Exit codes, so scripts and CI can tell outcomes apart.
pub(crate) mod exit {
    /// An error-level data check failed.
    pub const CHECKS_FAILED: u8 = 1;
    /// Bad input: the pipeline file, the data, the cache or an I/O error.
    pub const ERROR: u8 = 2;
    /// The run finished but the student missed a target of the recipe.
    pub const TARGET_MISSED: u8 = 3;
}

#[derive(Parser)]
#[command(name = "distill", version, about = "Distil a large teacher model into a small student, as one YAML recipe says.")]
#[command(after_help = "Exit codes: 0 success, 1 a data check failed, 2 error (bad pipeline, data or I/O), 3 a target was missed.\n\
Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=debug) for more.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a whole pipeline: data checks, teacher, teacher logits, student, evaluation.
    Run {
        #[command(flatten)]
        pipeline: PipelineArgs,
        /// Run directory (default: runs/<pipeline-name>/<run-id>).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Cache directory (default: cache_dir from the pipeline, $DISTILL_CACHE_DIR, or .distill-cache).
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<PathBuf>,
        /// Recompute cached stages: `all` (the default) or stage names, comma-separated or repeated
        /// (forcing the teacher recomputes its logits too).
        #[arg(long, value_name = "STAGE", num_args = 0..=1, default_missing_value = "all", value_delimiter = ',', action = clap::ArgAction::Append, value_parser = clap::builder::PossibleValuesParser::new(distill_pipeline::force_values()))]
        force: Vec<String>,
        /// Continue the training jobs of an interrupted run of this same recipe (same file, `--set`
        /// values and data) from their last per-epoch checkpoint; the result is the same as an
        /// uninterrupted run's.
        #[arg(long)]
        resume: bool,
        /// Where to train: cpu, cuda or cuda:N (the same as `--set device=...`).
        #[arg(long, value_name = "DEVICE")]
        device: Option<String>,
    },
    /// Compute the teacher's logits (training or finding the teacher first) without the students:
    /// the whole file, or one shard of the training rows as a part of a partitioned Parquet
    /// dataset (logits/<key>/part-I-of-N.parquet + _manifest.json) that `run` assembles.
    Logits {
        #[command(flatten)]
        pipeline: PipelineArgs,
        /// Cache directory (as for `run`); shared by every task.
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<PathBuf>,
        /// Compute only shard I (from 0) of N. Default: the scheduler's index
        /// ($SLURM_ARRAY_TASK_ID of $SLURM_ARRAY_TASK_COUNT, or $JOB_COMPLETION_INDEX of --shards),
        /// else the whole file.
        #[arg(long, value_name = "I/N")]
        shard: Option<String>,
        /// The shard count where the scheduler gives only the index (Kubernetes Indexed Jobs).
        #[arg(long, value_name = "N")]
        shards: Option<usize>,
        /// Only train (or find) the teacher: the first job of a submitted recipe.
        #[arg(long, conflicts_with_all = ["shard", "shards"])]
        teacher_only: bool,
        /// Continue the teacher's training from an interrupted task's checkpoint.
        #[arg(long)]
        resume: bool,
    },
    /// Submit the recipe to a cluster as dependent jobs over one shared cache: teacher → logits
    /// array (one task per shard) → students (one array task per sweep point and seed) → report.
    /// Each task is an ordinary distill command, so a failed task re-submitted continues from the
    /// cache and its checkpoints.
    #[command(group(clap::ArgGroup::new("scheduler").required(true).args(["slurm", "k8s"])))]
    Submit {
        #[command(flatten)]
        pipeline: PipelineArgs,
        /// Write sbatch scripts under <out>/jobs/ and submit them with sbatch (--dependency=afterok).
        #[arg(long)]
        slurm: bool,
        /// Print Kubernetes Indexed Job manifests for the same tasks instead (nothing is submitted).
        #[arg(long)]
        k8s: bool,
        /// Tasks of the logits array.
        #[arg(long, value_name = "N", default_value_t = 4)]
        shards: usize,
        /// Slurm partition for every job.
        #[arg(long, value_name = "P")]
        partition: Option<String>,
        /// Print the sbatch scripts and the commands that would submit them; submit nothing.
        #[arg(long)]
        dry_run: bool,
        /// Wait until the report job has ended (`sbatch --wait`); exit non-zero when a job failed.
        #[arg(long)]
        wait: bool,
        /// The shared cache directory (default as for `run`, made absolute).
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<PathBuf>,
        /// The final run directory; the scripts, logs and the tasks' runs go inside it
        /// (default: runs/<pipeline-name>/<run-id>).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// --k8s: the container image with this distill binary at the same path.
        #[arg(long, value_name = "IMAGE", default_value = "distill:latest")]
        image: String,
        /// --k8s: the PersistentVolumeClaim mounted at the working directory in every pod (the
        /// recipe, its data and the cache must be under it).
        #[arg(long, value_name = "NAME", default_value = "distill-shared")]
        claim: String,
    },
    /// Run a past run's recipe again exactly as it resolved it (its pipeline.resolved.yaml, paths
    /// read from its recipe's folder), first saying what differs: distill version, data, plugins.
    Rerun {
        /// The run directory (runs/<name>/<run-id>) of a finished run.
        #[arg(value_name = "RUN_DIR")]
        run: PathBuf,
        /// Refuse to run (exit 2) when anything differs, instead of warning.
        #[arg(long)]
        strict: bool,
        /// Run directory of the new run (default: runs/<pipeline-name>/<run-id>).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Cache directory (as for `run`).
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<PathBuf>,
        /// Recompute cached stages (as for `run`); `--force` retrains everything.
        #[arg(long, value_name = "STAGE", num_args = 0..=1, default_missing_value = "all", value_delimiter = ',', action = clap::ArgAction::Append, value_parser = clap::builder::PossibleValuesParser::new(distill_pipeline::force_values()))]
        force: Vec<String>,
    },
    /// Show which stages a run would compute or take from the cache, and what changed, without running.
    Plan {
        #[command(flatten)]
        pipeline: PipelineArgs,
        /// Cache directory (as for `run`).
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<PathBuf>,
        /// The stages a `run --force` would recompute (as for `run`).
        #[arg(long, value_name = "STAGE", num_args = 0..=1, default_missing_value = "all", value_delimiter = ',', action = clap::ArgAction::Append, value_parser = clap::builder::PossibleValuesParser::new(distill_pipeline::force_values()))]
        force: Vec<String>,
    },
    /// Write a run's student (or with --teacher its teacher) as ONNX, f32 or int8; the graph
    /// takes raw feature values in the recipe's column order (the scaling is in it).
    Export(deploy::ExportArgs),
    /// Apply an exported model (or a run's student) to new rows: row_id, predicted class and
    /// probabilities. Missing or extra columns, wrong types, nulls: an error naming the column
    /// and row, exit 2, nothing written.
    Predict(deploy::PredictArgs),
    /// Look after the cache of teacher weights, teacher logits, students and baselines.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
        /// Cache directory (default: $DISTILL_CACHE_DIR or .distill-cache).
        #[arg(long, value_name = "DIR", global = true)]
        cache_dir: Option<PathBuf>,
    },
    /// Check a pipeline file (schema, types, values) without running anything.
    Validate {
        #[command(flatten)]
        pipeline: PipelineArgs,
        /// First print the merged recipe (its `extends:` chain and `--set` values) with each key's
        /// origin (`file:line` or `--set`).
        #[arg(long)]
        explain: bool,
    },
    /// Print the JSON Schema (draft 2020-12) of a recipe, for editors: descriptions, kinds,
    /// defaults, unknown keys flagged. The repository ships it as schema/distill.schema.json.
    Schema {
        /// The schema of a base file that recipes extend (every key optional), shipped as
        /// schema/distill-base.schema.json.
        #[arg(long)]
        base: bool,
    },
    /// Redraw a run's report (report.md, report.html, SVG plots) from its saved results.
    Report {
        /// The run directory (runs/<name>/<run-id>).
        #[arg(value_name = "RUN_DIR")]
        run: PathBuf,
    },
    /// Compare runs: metrics side by side with deltas, and the recipe keys that differ.
    Compare {
        /// Two or more run directories; deltas are against the first.
        #[arg(value_name = "RUN_DIR", num_args = 2.., required = true)]
        runs: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: CompareFormat,
    },
    /// Print a starting set of data checks (YAML, ready to paste under `data:`) inferred from a file.
    Profile {
        /// A CSV, Parquet or IDX file.
        #[arg(value_name = "DATAFILE")]
        file: PathBuf,
        /// The label column, if any (gets an `in_set` / `class_balance` check).
        #[arg(long)]
        label: Option<String>,
    },
    /// Write a complete, commented starting recipe for a data file: its format, label, features,
    /// the checks it passes, and a teacher and student sized from it.
    Init {
        /// A CSV (any common delimiter, with or without a header) or Parquet file.
        #[arg(value_name = "DATAFILE")]
        file: PathBuf,
        /// The label column (default: a column named label/target/class/y, else the last integer
        /// or text column with few distinct values).
        #[arg(long, value_name = "COL")]
        label: Option<String>,
        /// The recipe to write; its data path is relative to it.
        #[arg(long, value_name = "FILE", default_value = "recipe.yaml")]
        out: PathBuf,
        /// Overwrite the recipe file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Measure training and inference speed on this machine (samples/s, rows/s, GFLOP/s) against
    /// the GEMM ceiling, on random Fashion-MNIST-shaped data, and a recipe's warm-cache run against
    /// its cold one. Numbers only; no file is kept.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
    /// Inspect plugin libraries.
    Plugins {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Load the data and run only the data-quality checks; print the report.
    Check {
        #[command(flatten)]
        pipeline: PipelineArgs,
        /// Also write the report as JSON to this file.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CacheCommand {
    /// List cached artifacts: kind, key, size, creating pipeline.
    Ls,
    /// Re-hash every artifact against its record and check that it loads; exit 1 if any is
    /// corrupt, incomplete or unloadable.
    Verify,
    /// Remove artifacts that no run's lock.json uses and no run in progress holds.
    Gc {
        /// Where the runs live.
        #[arg(long, value_name = "DIR", default_value = "runs")]
        runs: PathBuf,
        /// Only list what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CompareFormat {
    Table,
    Markdown,
    Json,
}

#[derive(Subcommand)]
enum PluginCommand {
    /// List what a plugin library provides and its ABI version.
    Inspect {
        /// Path of the plugin library (.so / .dylib / .dll).
        #[arg(value_name = "LIB")]
        library: PathBuf,
    },
}

#[derive(Args)]
struct PipelineArgs {
    /// The pipeline file (YAML, `version: 1`).
    #[arg(value_name = "PIPELINE")]
    file: PathBuf,
    /// Override a key of the pipeline, e.g. --set student.loss.temperature=8 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

/// An error and its causes on one line (`what: why: underlying`), each cause once: messages that
/// already quote their source are not repeated.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let text = e.to_string();
        if !out.contains(&text) {
            out = format!("{out}: {text}");
        }
        cause = e.source();
    }
    out
}

/// `distill cache ls|verify|gc`.
fn cache_command(command: CacheCommand, dir: Option<PathBuf>) -> Result<u8, String> {
    let root = dir.or_else(|| std::env::var_os("DISTILL_CACHE_DIR").map(PathBuf::from)).unwrap_or_else(|| PathBuf::from(".distill-cache"));
    let cache = distill_pipeline::Cache::new(&root, &distill_pipeline::artifact_kinds());
    match command {
        CacheCommand::Ls => {
            println!("{:<8} {:<14} {:>10}  {:<20} status", "kind", "key", "bytes", "pipeline");
            for e in cache.entries() {
                let (pipeline, status) = match &e.record {
                    Ok(r) => (r.pipeline.clone(), "ok".to_string()),
                    Err(p) => ("-".to_string(), p.to_string()),
                };
                println!("{:<8} {:<14} {:>10}  {:<20} {status}", e.kind, &e.key[..e.key.len().min(12)], e.bytes, pipeline);
            }
            Ok(0)
        }
        CacheCommand::Verify => {
            let results = cache.verify();
            let bad = results.iter().filter(|(_, p)| p.is_some()).count();
            for (e, problem) in &results {
                match problem {
                    None => println!("ok       {}", e.path.display()),
                    Some(p) => println!("BAD      {}: {p}", e.path.display()),
                }
            }
            println!("{} entries, {bad} bad (a bad entry is recomputed by the next run that needs it)", results.len());
            Ok(if bad > 0 { exit::CHECKS_FAILED } else { 0 })
        }
        CacheCommand::Gc { runs, dry_run } => {
            // With no runs to read, every entry would look unused.
            if !runs.is_dir() {
                return Err(format!("--runs {}: not a directory; gc keeps what the runs there use, so it needs them (pass --runs DIR)", runs.display()));
            }
            let gc = cache.gc(|| distill_pipeline::keys_in_use(&runs), dry_run).map_err(|e| error_chain(&e))?;
            let verb = if dry_run { "would remove" } else { "removed" };
            gc.removed.iter().for_each(|path| println!("{verb} {}", path.display()));
            gc.kept_for_live_runs.iter().for_each(|path| println!("kept (a run in progress may use it) {}", path.display()));
            gc.stale_leases.iter().for_each(|path| println!("{verb} stale lease {}", path.display()));
            gc.stale_locks.iter().for_each(|path| println!("{verb} stale lock (its owner has ended) {}", path.display()));
            println!(
                "{} files {}; {} keys in use by runs under {}; {} runs in progress",
                gc.removed.len(),
                if dry_run { "to remove" } else { "removed" },
                gc.keys_in_use,
                runs.display(),
                gc.live_runs
            );
            Ok(0)
        }
    }
}

/// Schema, values, and the plugins the recipe names (loaded, their losses and architectures found).
/// `distill schema [--base]`: the JSON Schema on stdout.
fn schema(base: bool) -> Result<u8, String> {
    let of = if base { distill_spec::SchemaFor::Base } else { distill_spec::SchemaFor::Recipe };
    let text = serde_json::to_string_pretty(&distill_spec::json_schema(of)).map_err(|e| format!("cannot write the schema: {e}"))?;
    println!("{text}");
    Ok(0)
}

fn validate(args: &PipelineArgs, explain: bool) -> Result<u8, String> {
    if explain {
        let composed = distill_spec::compose_file(&args.file, &args.overrides).map_err(|e| error_chain(&e))?;
        print!("{}", distill_spec::explain(&composed));
    }
    let p = distill_spec::load(&args.file, &args.overrides).map_err(|e| error_chain(&e))?;
    let points = distill_spec::sweep::points(&args.file, &p, &args.overrides).map_err(|e| error_chain(&e))?;
    if !points.is_empty() {
        println!("{}: {} sweep points", args.file.display(), points.len());
    }
    let problems = distill_data::predicate_problems(&p.data.checks);
    if !problems.is_empty() {
        return Err(problems.iter().map(|(key, message)| format!("{}: {key}: {message}", args.file.display())).collect::<Vec<_>>().join("\n"));
    }
    let base = args.file.parent().map(PathBuf::from).unwrap_or_default();
    let plugins = distill_pipeline::load_plugins(&p, &base).map_err(|e| error_chain(&e))?;
    for (key, name) in p.student.loss.plugin_losses() {
        plugins.require_loss(name).map_err(|e| format!("{}: student.loss.{key}: {e}", args.file.display()))?;
    }
    for (key, model) in [("teacher.model", p.teacher.model.as_ref()), ("student.model", Some(&p.student.model))] {
        let Some(model) = model else { continue };
        if let distill_spec::Arch::Plugin(name) = &model.arch {
            plugins.require_architecture(name).map_err(|e| format!("{}: {key}.arch: {e}", args.file.display()))?;
        }
    }
    for w in distill_spec::warnings(&p) {
        eprintln!("warning: {}: {w}", args.file.display());
    }
    println!("{}: ok ({})", args.file.display(), output::describe(&p));
    Ok(0)
}

/// A run's outcome on the terminal, and its exit code.
fn finished(outcome: RunOutcome) -> u8 {
    match outcome {
        RunOutcome::ChecksFailed { run_dir, report } => {
            eprint!("{}", report.table());
            eprintln!("error: data checks failed; nothing was trained (report: {})", run_dir.join("checks.json").display());
            exit::CHECKS_FAILED
        }
        RunOutcome::Completed { run_dir, summary } => {
            print!("{}", output::summary_table(&summary));
            println!("run directory: {}", run_dir.display());
            if summary.targets_met {
                0
            } else {
                exit::TARGET_MISSED
            }
        }
        RunOutcome::Swept { run_dir, summary } => {
            print!("{}", output::sweep_table(&summary));
            println!("run directory: {} (sweep.md, sweep-params.svg)", run_dir.display());
            if summary.recommendation.is_some() {
                0
            } else {
                exit::TARGET_MISSED
            }
        }
    }
}

impl PipelineArgs {
    fn options(&self) -> RunOptions {
        RunOptions { pipeline: self.file.clone(), overrides: self.overrides.clone(), ..Default::default() }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = runlog::init();
    let result = match cli.command {
        Command::Validate { pipeline, explain } => validate(&pipeline, explain),
        Command::Profile { file, label } => distill_data::profile_file(&file, label.as_deref()).map_err(|e| error_chain(&e)).map(|text| {
            print!("{text}");
            0
        }),
        Command::Schema { base } => schema(base),
        Command::Init { file, label, out, force } => init::command(&file, label.as_deref(), &out, force),
        Command::Report { run } => distill_pipeline::write_report(&run).map_err(|e| error_chain(&e)).map(|()| {
            println!("{}", run.join("report.html").display());
            0
        }),
        Command::Compare { runs, format } => {
            let dirs: Vec<&std::path::Path> = runs.iter().map(PathBuf::as_path).collect();
            distill_pipeline::compare(&dirs).map_err(|e| error_chain(&e)).and_then(|c| {
                match format {
                    CompareFormat::Table => print!("{}", distill_eval::compare::to_table(&c)),
                    CompareFormat::Markdown => print!("{}", distill_eval::compare::to_markdown(&c)),
                    CompareFormat::Json => println!("{}", serde_json::to_string_pretty(&c).map_err(|e| error_chain(&e))?),
                }
                Ok(0)
            })
        }
        Command::Plugins { command: PluginCommand::Inspect { library } } => distill_pipeline::inspect_plugin(&library)
            .map(|info| {
                print!("{info}");
                0
            })
            .map_err(|e| error_chain(&e)),
        Command::Check { pipeline, json } => distill_pipeline::check(&pipeline.options()).map_err(|e| error_chain(&e)).and_then(|outcome| {
            print!("{}", outcome.report.table());
            if let Some(path) = json {
                let text = serde_json::to_string_pretty(&outcome.report).map_err(|e| error_chain(&e))?;
                distill_cache::write_atomic(&path, text.as_bytes()).map_err(|e| error_chain(&e))?;
            }
            Ok(if outcome.report.has_errors() { exit::CHECKS_FAILED } else { 0 })
        }),
        Command::Plan { pipeline, cache_dir, force } => {
            let force = Force::parse(&force).unwrap_or_default();
            let options = RunOptions { cache_dir, force, ..pipeline.options() };
            distill_pipeline::plan(&options).map_err(|e| error_chain(&e)).map(|stages| {
                print!("{}", distill_pipeline::plan_table(&stages, &pipeline.file));
                0
            })
        }
        Command::Cache { command, cache_dir } => cache_command(command, cache_dir),
        Command::Logits { pipeline, cache_dir, shard, shards, teacher_only, resume } => {
            logits::command(RunOptions { resume, ..pipeline.options() }, shard.as_deref(), shards, teacher_only, cache_dir)
        }
        Command::Submit { pipeline, slurm, k8s: _, shards, partition, dry_run, wait, cache_dir, out, image, claim } => {
            let target = submit::Target { slurm, shards, partition, dry_run, wait, out, image, claim };
            submit::command(&pipeline.file, &pipeline.overrides, cache_dir, target)
        }
        Command::Bench { command } => bench::run(command),
        Command::Export(args) => deploy::export(args),
        Command::Predict(args) => deploy::predict(args),
        Command::Run { mut pipeline, out, cache_dir, force, resume, device } => {
            pipeline.overrides.extend(device.map(|d| format!("device={d}")));
            // clap has checked the names already.
            let force = Force::parse(&force).unwrap_or_default();
            let options = RunOptions { out, cache_dir, force, resume, ..pipeline.options() };
            distill_pipeline::run(&options, &|dir| log.open(&dir.join("run.log"))).map_err(|e| error_chain(&e)).map(finished)
        }
        Command::Rerun { run, strict, out, cache_dir, force } => {
            let force = Force::parse(&force).unwrap_or_default();
            rerun::options(rerun::Args { run: &run, strict, out, cache_dir, force })
                .and_then(|options| distill_pipeline::run(&options, &|dir| log.open(&dir.join("run.log"))).map_err(|e| error_chain(&e)))
                .map(finished)
        }
    };
    log.close();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(exit::ERROR)
        }
    }
}
