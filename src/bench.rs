//! `distill bench train|infer|cache`: how fast training and inference run on this machine, next to
//! the GEMM ceiling measured in the same run, and what a warm cache saves. Random data of
//! Fashion-MNIST's shape (784 inputs, 10 classes) goes through the same code a pipeline runs;
//! nothing here is timed in tests.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use distill_nn::bench::{
    compute_threads, gemm_ceiling_gflops, gemm_ceiling_gflops_per_cpu_second, infer_throughput, random_dataset, train_throughput, widths, BenchSchedule,
};
use distill_nn::{Mlp, MlpShape};
use distill_spec::Activation;

/// Fashion-MNIST's shape: 28 × 28 pixels, 10 classes.
const INPUTS: usize = 784;
const CLASSES: usize = 10;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Train the 784-1200-1200-10 teacher and the 784-64-10 student (ReLU, Adam) on random
    /// Fashion-MNIST-shaped data; print samples/s, GFLOP/s (6 × params FLOPs per sample) and the
    /// share of the GEMM ceiling, an n³ f32 product timed in the same run.
    Train(TrainArgs),
    /// Teacher (784-1200-1200-10) inference over random 784-wide rows, then writing its logits as
    /// the cache's Parquet file; rows/s for both.
    Infer(InferArgs),
    /// Run a recipe twice on a fresh, temporary cache: cold (every stage computed), then warm
    /// (every stage found in the cache); seconds for each and warm / cold. Run directories are
    /// temporary too.
    Cache(CacheArgs),
}

#[derive(Args)]
pub struct CacheArgs {
    /// The pipeline file.
    #[arg(value_name = "PIPELINE")]
    pipeline: PathBuf,
    /// Override a key of the pipeline (repeatable), as for `run`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct TrainArgs {
    /// Rows of random training data (one epoch; batches are drawn from them in shuffled order).
    #[arg(long, default_value_t = 60_000)]
    rows: usize,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Timed optimiser steps of the teacher.
    #[arg(long, default_value_t = 150)]
    steps: usize,
    /// Timed optimiser steps of the student (it is ~50× cheaper per step).
    #[arg(long, default_value_t = 2_000)]
    student_steps: usize,
    /// Untimed steps before each timed run (allocator and caches warm up).
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Side of the square product that measures the GEMM ceiling.
    #[arg(long, default_value_t = 1024)]
    gemm_size: usize,
    /// Seed of the data, the initialisation and the batch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct InferArgs {
    /// Rows to run through the teacher (Fashion-MNIST's training split has 60,000).
    #[arg(long, default_value_t = 60_000)]
    rows: usize,
    /// Directory for the logits file (default: a temporary one); the file is removed afterwards.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Seed of the data and the initialisation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Side of the square product that measures the GEMM ceiling.
    #[arg(long, default_value_t = 1024)]
    gemm_size: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn teacher() -> MlpShape {
    MlpShape::mlp(INPUTS, &[1200, 1200], CLASSES, Activation::Relu, 0.0, false)
}

fn student() -> MlpShape {
    MlpShape::mlp(INPUTS, &[64], CLASSES, Activation::Relu, 0.0, false)
}

/// Runs the benchmark and prints its report; the exit code on success.
pub fn run(command: BenchCommand) -> Result<u8, String> {
    match command {
        BenchCommand::Train(args) => bench_train(&args),
        BenchCommand::Infer(args) => bench_infer(&args),
        BenchCommand::Cache(args) => bench_cache(&args),
    }
}

/// The same recipe cold then warm, on a cache that exists only for this benchmark.
fn bench_cache(args: &CacheArgs) -> Result<u8, String> {
    let temp = std::env::temp_dir().join(format!("distill-bench-cache-{}", std::process::id()));
    let _remove = RemoveOnDrop(temp.clone());
    let mut runs = Vec::new();
    for pass in ["cold", "warm"] {
        let options = distill_pipeline::RunOptions {
            pipeline: args.pipeline.clone(),
            overrides: args.overrides.clone(),
            out: Some(temp.join(pass)),
            cache_dir: Some(temp.join("cache")),
            ..Default::default()
        };
        let start = std::time::Instant::now();
        let outcome = distill_pipeline::run(&options, &|_| {}).map_err(|e| e.to_string())?;
        let seconds = start.elapsed().as_secs_f64();
        let distill_pipeline::RunOutcome::Completed { summary, .. } = outcome else {
            return Err(format!("{}: a data check failed; nothing to time", args.pipeline.display()));
        };
        runs.push((pass, seconds, summary.cache_hits));
    }
    let ratio = runs[1].1 / runs[0].1.max(1e-9);
    if args.json {
        let report = json!({
            "pipeline": args.pipeline.display().to_string(),
            "runs": runs.iter().map(|(pass, seconds, hits)| json!({"run": pass, "seconds": seconds, "cache_hits": hits})).collect::<Vec<_>>(),
            "warm_over_cold": ratio,
        });
        println!("{report:#}");
        return Ok(0);
    }
    println!("distill bench cache: {} (run twice on a fresh cache)", args.pipeline.display());
    println!("{:<6} {:>9}  cache hits", "run", "seconds");
    for (pass, seconds, hits) in &runs {
        println!("{pass:<6} {seconds:>9.3}  {}", if hits.is_empty() { "none".to_string() } else { hits.join(", ") });
    }
    println!("warm / cold: {:.1} %", 100.0 * ratio);
    Ok(0)
}

fn at_least_one(name: &str, value: usize) -> Result<(), String> {
    if value == 0 {
        return Err(format!("--{name} must be at least 1"));
    }
    Ok(())
}

fn bench_train(args: &TrainArgs) -> Result<u8, String> {
    for (name, value) in
        [("rows", args.rows), ("batch", args.batch), ("steps", args.steps), ("student-steps", args.student_steps), ("gemm-size", args.gemm_size)]
    {
        at_least_one(name, value)?;
    }
    let (x, y) = random_dataset(args.rows, INPUTS, CLASSES, args.seed);
    let before = gemm_ceiling_gflops(args.gemm_size, 5);
    let mut models = Vec::new();
    for (shape, steps) in [(teacher(), args.steps), (student(), args.student_steps)] {
        tracing::info!(model = %widths(&shape), steps, "timing training");
        models.push(train_throughput(&shape, &x, &y, BenchSchedule { batch: args.batch, lr: args.lr, warmup: args.warmup, steps, seed: args.seed })?);
    }
    // Measured before and after: the better one is the ceiling, so load during the run shows as
    // a lower share, never a higher one.
    let ceiling = before.max(gemm_ceiling_gflops(args.gemm_size, 5));
    let cpu_ceiling = gemm_ceiling_gflops_per_cpu_second(args.gemm_size);
    let cpu_share = |gflops: f64, seconds: f64, cpu: Option<f64>| Some(gflops * seconds / cpu.filter(|c| *c > 0.0)? / cpu_ceiling?);
    let threads = compute_threads();
    if args.json {
        let report = json!({
            "threads": threads,
            "batch": args.batch,
            "rows": args.rows,
            "gemm": {"size": args.gemm_size, "gflops": ceiling, "gflops_per_cpu_second": cpu_ceiling},
            "models": models.iter().map(|m| json!({
                "model": m.model, "params": m.params, "steps": m.steps, "seconds": m.seconds, "cpu_seconds": m.cpu_seconds,
                "samples_per_s": m.samples_per_s, "gflops": m.gflops, "ceiling_fraction": m.gflops / ceiling,
                "ceiling_fraction_cpu": cpu_share(m.gflops, m.seconds, m.cpu_seconds), "loss": m.loss,
            })).collect::<Vec<_>>(),
        });
        println!("{report:#}");
        return Ok(0);
    }
    println!("distill bench train: batch {}, Adam (lr {}), {threads} threads, random data {} × {INPUTS}, {CLASSES} classes", args.batch, args.lr, args.rows);
    println!("{:<18} {:>9} {:>6} {:>11} {:>8} {:>11} {:>11}", "model", "params", "steps", "samples/s", "GFLOP/s", "of ceiling", "(CPU time)");
    for m in &models {
        let cpu = percent(cpu_share(m.gflops, m.seconds, m.cpu_seconds));
        println!("{:<18} {:>9} {:>6} {:>11.0} {:>8.1} {:>10.1}% {cpu:>11}", m.model, m.params, m.steps, m.samples_per_s, m.gflops, 100.0 * m.gflops / ceiling);
    }
    print_ceilings(args.gemm_size, ceiling, cpu_ceiling);
    Ok(0)
}

/// "61.5%", or "-" when unknown.
fn percent(share: Option<f64>) -> String {
    share.map_or("-".to_string(), |s| format!("{:.1}%", 100.0 * s))
}

fn print_ceilings(size: usize, ceiling: f64, cpu_ceiling: Option<f64>) {
    println!("GEMM ceiling ({size}×{size}×{size} f32): {ceiling:.1} GFLOP/s (the better of before and after)");
    if let Some(cpu) = cpu_ceiling {
        // Other work on the machine lowers wall-clock rates; per CPU second both sides count only
        // the time they ran.
        println!("per CPU second: {cpu:.1} GFLOP/s; the (CPU time) share compares FLOPs per CPU second");
    }
}

fn bench_infer(args: &InferArgs) -> Result<u8, String> {
    at_least_one("rows", args.rows)?;
    at_least_one("gemm-size", args.gemm_size)?;
    let (x, _) = random_dataset(args.rows, INPUTS, CLASSES, args.seed);
    let model = Mlp::new(teacher(), args.seed);
    let before = gemm_ceiling_gflops(args.gemm_size, 5);
    let infer = infer_throughput(&model, &x);
    let ceiling = before.max(gemm_ceiling_gflops(args.gemm_size, 5));
    let cpu_ceiling = gemm_ceiling_gflops_per_cpu_second(args.gemm_size);
    let cpu_share = infer.cpu_seconds.filter(|c| *c > 0.0).zip(cpu_ceiling).map(|(c, ceiling)| infer.gflops * infer.seconds / c / ceiling);

    let (dir, _temp) = match &args.out {
        Some(dir) => (dir.clone(), None),
        None => {
            let temp = std::env::temp_dir().join(format!("distill-bench-{}", std::process::id()));
            (temp.clone(), Some(RemoveOnDrop(temp)))
        }
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join("bench-teacher-logits.parquet");
    let meta = distill_cache::LogitMeta {
        teacher_fingerprint: "bench".into(),
        data_fingerprint: "bench".into(),
        class_names: (0..CLASSES).map(|c| c.to_string()).collect(),
        top_k: None,
    };
    let row_ids: Vec<u64> = (0..args.rows as u64).collect();
    let start = std::time::Instant::now();
    distill_cache::write_logits(&path, &meta, &row_ids, &infer.logits).map_err(|e| e.to_string())?;
    let write_seconds = start.elapsed().as_secs_f64().max(1e-9);
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    // The file only existed to be timed.
    let _ = std::fs::remove_file(&path);
    let write_rows_per_s = args.rows as f64 / write_seconds;
    let threads = compute_threads();
    if args.json {
        let report = json!({
            "threads": threads,
            "gemm": {"size": args.gemm_size, "gflops": ceiling, "gflops_per_cpu_second": cpu_ceiling},
            "inference": {
                "model": infer.model, "rows": infer.rows, "seconds": infer.seconds, "rows_per_s": infer.rows_per_s,
                "gflops": infer.gflops, "ceiling_fraction": infer.gflops / ceiling,
                "cpu_seconds": infer.cpu_seconds, "ceiling_fraction_cpu": cpu_share,
            },
            "parquet": {"rows": args.rows, "seconds": write_seconds, "rows_per_s": write_rows_per_s, "bytes": bytes},
        });
        println!("{report:#}");
        return Ok(0);
    }
    println!("distill bench infer: teacher {}, {} rows × {INPUTS}, {threads} threads", infer.model, infer.rows);
    println!("{:<16} {:>9} {:>9} {:>11} {:>8} {:>11} {:>11}", "stage", "rows", "seconds", "rows/s", "GFLOP/s", "of ceiling", "(CPU time)");
    let (share, cpu) = (100.0 * infer.gflops / ceiling, percent(cpu_share));
    println!("{:<16} {:>9} {:>9.3} {:>11.0} {:>8.1} {share:>10.1}% {cpu:>11}", "inference", infer.rows, infer.seconds, infer.rows_per_s, infer.gflops);
    println!("{:<16} {:>9} {:>9.3} {:>11.0} {:>8} {:>11} {:>11}", "logits parquet", args.rows, write_seconds, write_rows_per_s, "-", "-", "-");
    print_ceilings(args.gemm_size, ceiling, cpu_ceiling);
    println!("logits file: {bytes} bytes (written through the cache's atomic writer, then removed)");
    Ok(0)
}

/// A temporary directory that goes away with the benchmark, also on an error.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
