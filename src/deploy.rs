//! `distill export RUN_DIR` and `distill predict MODEL_OR_RUN_DIR --data FILE`: a run's model as
//! an ONNX file, and an exported model applied to new rows.

use std::path::PathBuf;

use clap::Args;

use distill_pipeline::{PredictOptions, Role};
use distill_spec::ExportFormat;

#[derive(Args)]
pub struct ExportArgs {
    /// The run directory (runs/<name>/<run-id>).
    #[arg(value_name = "RUN_DIR")]
    run: PathBuf,
    /// `onnx` (f32) or `onnx_int8` (int8, activations calibrated on the recipe's training rows).
    #[arg(long, default_value = "onnx", value_parser = ["onnx", "onnx_int8"])]
    format: String,
    /// The file to write (default: RUN_DIR/student.onnx or RUN_DIR/student.int8.onnx).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Export the teacher instead of the student.
    #[arg(long)]
    teacher: bool,
}

#[derive(Args)]
pub struct PredictArgs {
    /// An `.onnx` file distill exported (run with tract-onnx), or a run directory (its student, run
    /// by distill itself with the run's scaling).
    #[arg(value_name = "MODEL_OR_RUN_DIR")]
    model: PathBuf,
    /// The rows: a CSV or Parquet file with the model's feature columns (the label column may be there too).
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// Where to write row_id, predicted class and probabilities (`.csv` or `.parquet`; default: CSV on stdout).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// First run the recipe's data checks on the file (needs a run directory); exit 1 when an
    /// error-level check fails, with nothing written.
    #[arg(long)]
    check: bool,
    /// Also write the logits (`logit_<class>` columns).
    #[arg(long)]
    logits: bool,
}

pub fn export(args: ExportArgs) -> Result<u8, String> {
    let format = ExportFormat::parse(&args.format).ok_or_else(|| format!("unknown format `{}`", args.format))?;
    let role = if args.teacher { Role::Teacher } else { Role::Student };
    let bytes = distill_pipeline::export_run(&args.run, format, role).map_err(|e| crate::error_chain(&e))?;
    let out = args.out.unwrap_or_else(|| args.run.join(format.file_name(role.key())));
    distill_cache::write_atomic(&out, &bytes).map_err(|e| crate::error_chain(&e))?;
    println!("{} ({} bytes, {})", out.display(), bytes.len(), format.name());
    Ok(0)
}

pub fn predict(args: PredictArgs) -> Result<u8, String> {
    let opts = PredictOptions { model: args.model, data: args.data, out: args.out, check: args.check, logits: args.logits };
    let done = distill_pipeline::predict(&opts).map_err(|e| crate::error_chain(&e))?;
    if let Some(report) = &done.checks {
        eprint!("{}", report.table());
        if report.has_errors() {
            eprintln!("error: an error-level check failed on {}; nothing was predicted", opts.data.display());
            return Ok(crate::exit::CHECKS_FAILED);
        }
    }
    if let Some(csv) = &done.csv {
        print!("{csv}");
    }
    let rate = done.rows as f64 / done.seconds.max(1e-9);
    eprintln!(
        "predicted {} rows in {:.3} s ({rate:.0} rows/s){}",
        done.rows,
        done.seconds,
        opts.out.as_ref().map(|o| format!(" → {}", o.display())).unwrap_or_default()
    );
    if let Some((accuracy, n)) = done.accuracy {
        eprintln!("accuracy {accuracy:.4} on the {n} rows with a label");
    }
    Ok(0)
}
