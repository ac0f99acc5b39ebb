//! Throughput of training and inference through the real paths ([`train`], [`predict_logits`]),
//! on random data of a chosen shape, and the GEMM ceiling of the machine in the same run. Behind
//! `distill bench`; it measures and reports, it never asserts a speed.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::{predict_logits, train, CrossEntropy, Mlp, MlpShape, TrainConfig, TrainOptions, TrainTargets};

/// Random rows shaped like a dataset: features uniform in [0, 1) (as scaled pixels), labels
/// uniform over the classes. Row-major, `rows × inputs`.
pub fn random_dataset(rows: usize, inputs: usize, classes: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = (0..rows * inputs).map(|_| rng.gen::<f32>()).collect();
    let y = (0..rows).map(|_| rng.gen_range(0..classes.max(1) as u32)).collect();
    (x, y)
}

/// One model's training throughput.
#[derive(Debug, Clone, Serialize)]
pub struct TrainThroughput {
    /// Layer widths, e.g. "784-1200-1200-10".
    pub model: String,
    pub params: usize,
    pub batch: usize,
    /// Timed optimiser steps (after the untimed warm-up).
    pub steps: usize,
    pub seconds: f64,
    pub samples_per_s: f64,
    /// `6 × params` FLOPs per sample (forward 2, backward 4; the usual estimate).
    pub gflops: f64,
    /// Mean training loss over the timed steps: shows the steps did real work.
    pub loss: f64,
    /// CPU seconds the process spent in the timed steps (all threads), where the OS tells.
    pub cpu_seconds: Option<f64>,
}

/// CPU time of this process so far (user + system, every thread): Linux's `/proc/self/stat`, in
/// its clock ticks of 1/100 s; `None` elsewhere. On a machine other work shares, throughput per
/// CPU second is what the run itself achieved, whatever share of the cores it got.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) in parentheses: utime and stime are
    // the 12th and 13th.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let (user, system): (f64, f64) = (fields.next()?.parse().ok()?, fields.next()?.parse().ok()?);
    Some((user + system) / 100.0)
}

/// CPU seconds spent in `f`, and its result.
fn with_cpu_seconds<R>(f: impl FnOnce() -> R) -> (R, Option<f64>) {
    let start = process_cpu_seconds();
    let r = f();
    let spent = start.zip(process_cpu_seconds()).map(|(a, b)| b - a);
    (r, spent)
}

/// How a training benchmark runs: batch size, Adam's learning rate, untimed warm-up steps, timed
/// steps and the seed.
#[derive(Debug, Clone, Copy)]
pub struct BenchSchedule {
    pub batch: usize,
    pub lr: f64,
    pub warmup: usize,
    pub steps: usize,
    pub seed: u64,
}

/// Trains a fresh `shape` model with Adam through [`train`] on `(x, y)`: the schedule's warm-up
/// steps untimed, then its timed steps. Cross-entropy loss, no validation.
pub fn train_throughput(shape: &MlpShape, x: &[f32], y: &[u32], schedule: BenchSchedule) -> Result<TrainThroughput, String> {
    let BenchSchedule { batch, lr, warmup, steps, seed } = schedule;
    let steps = steps.max(1);
    let per_epoch = y.len().div_ceil(batch.max(1)).max(1);
    let options = |max_steps: usize| TrainOptions {
        epochs: max_steps.div_ceil(per_epoch),
        batch,
        lr,
        seed,
        name: "bench".into(),
        max_steps: Some(max_steps),
        config: TrainConfig::default(),
        checkpoint: None,
        device: Default::default(),
        train_key: "train".into(),
        hint: None,
    };
    let data = TrainTargets { x, labels: y, teacher_logits: None };
    let mut model = Mlp::new(shape.clone(), seed);
    if warmup > 0 {
        train(&mut model, &data, &CrossEntropy, &options(warmup), None)?;
    }
    let start = Instant::now();
    let (history, cpu_seconds) = with_cpu_seconds(|| train(&mut model, &data, &CrossEntropy, &options(steps), None));
    let history = history?;
    let seconds = start.elapsed().as_secs_f64().max(1e-9);
    let samples = samples_in_steps(y.len(), batch, steps) as f64;
    let loss = history.iter().map(|h| h.train_loss).sum::<f64>() / history.len().max(1) as f64;
    let params = shape.param_count();
    Ok(TrainThroughput {
        model: widths(shape),
        params,
        batch,
        steps,
        seconds,
        samples_per_s: samples / seconds,
        gflops: 6.0 * params as f64 * samples / seconds / 1e9,
        loss,
        cpu_seconds,
    })
}

/// Rows that `steps` optimiser steps see from the start of an epoch: every epoch's last batch is
/// the remainder.
fn samples_in_steps(rows: usize, batch: usize, steps: usize) -> usize {
    let per_epoch = rows.div_ceil(batch.max(1)).max(1);
    (steps / per_epoch) * rows + ((steps % per_epoch) * batch).min(rows)
}

/// Inference throughput and the logits it produced.
#[derive(Debug, Clone, Serialize)]
pub struct InferThroughput {
    pub model: String,
    pub rows: usize,
    pub seconds: f64,
    pub rows_per_s: f64,
    /// `2 × params` FLOPs per row.
    pub gflops: f64,
    pub cpu_seconds: Option<f64>,
    #[serde(skip)]
    pub logits: Vec<f32>,
}

/// Times [`predict_logits`] of `model` over every row of `x`.
pub fn infer_throughput(model: &Mlp, x: &[f32]) -> InferThroughput {
    crate::flush_denormals();
    let rows = x.len() / model.shape.inputs().max(1);
    let start = Instant::now();
    let (logits, cpu_seconds) = with_cpu_seconds(|| predict_logits(model, x));
    let seconds = start.elapsed().as_secs_f64().max(1e-9);
    InferThroughput {
        model: widths(&model.shape),
        rows,
        seconds,
        rows_per_s: rows as f64 / seconds,
        gflops: 2.0 * model.param_count() as f64 * rows as f64 / seconds / 1e9,
        cpu_seconds,
        logits,
    }
}

/// GFLOP/s of an `n³` f32 product through the GEMM the dense layers use, on the same threads:
/// the machine's ceiling for these benchmarks.
pub fn gemm_ceiling_gflops(n: usize, reps: usize) -> f64 {
    crate::flush_denormals();
    crate::gemm::square_product_gflops(n, reps)
}

/// The ceiling per CPU second: `n³` products for at least half a CPU second (at most 10 s of wall
/// time), their FLOPs over the CPU time they took; `None` where the OS does not tell CPU time or
/// too little of it passed to measure (the clock counts hundredths).
pub fn gemm_ceiling_gflops_per_cpu_second(n: usize) -> Option<f64> {
    crate::flush_denormals();
    let (start, wall) = (process_cpu_seconds()?, Instant::now());
    let mut products = 0;
    let mut spent = 0.0;
    while spent < 0.5 && wall.elapsed().as_secs_f64() < 10.0 {
        crate::gemm::square_product_gflops(n, 1);
        // One untimed and one timed product each.
        products += 2;
        spent = process_cpu_seconds()? - start;
    }
    (spent >= 0.1).then(|| 2.0 * (n as f64).powi(3) * products as f64 / spent / 1e9)
}

/// Threads the products run on (rayon's pool).
pub fn compute_threads() -> usize {
    rayon::current_num_threads()
}

/// "784-1200-1200-10" for an MLP; other layer lists by their dense widths the same way.
pub fn widths(shape: &MlpShape) -> String {
    fn walk(layers: &[crate::Layer], out: &mut Vec<String>) {
        for layer in layers {
            match layer {
                crate::Layer::Dense(units) => out.push(units.to_string()),
                crate::Layer::Residual(inner) => walk(inner, out),
                _ => {}
            }
        }
    }
    let mut out = vec![shape.inputs().to_string()];
    walk(shape.layers(), &mut out);
    out.join("-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use distill_spec::Activation;

    #[test]
    fn a_tiny_run_reports_consistent_numbers() {
        let shape = MlpShape::mlp(12, &[8], 3, Activation::Relu, 0.0, false);
        assert_eq!(widths(&shape), "12-8-3");
        assert_eq!(samples_in_steps(50, 16, 7), 50 + 48);
        assert_eq!(samples_in_steps(256, 128, 2), 256);
        let (x, y) = random_dataset(50, 12, 3, 1);
        assert!(x.iter().all(|v| (0.0..1.0).contains(v)) && y.iter().all(|&c| c < 3));
        let t = train_throughput(&shape, &x, &y, BenchSchedule { batch: 16, lr: 1e-3, warmup: 2, steps: 7, seed: 1 }).unwrap();
        assert_eq!((t.steps, t.params, t.batch), (7, 12 * 8 + 8 + 8 * 3 + 3, 16));
        assert!(t.samples_per_s > 0.0 && t.loss.is_finite());
        let expected = 6.0 * t.params as f64 * t.samples_per_s / 1e9;
        assert!((t.gflops - expected).abs() <= 1e-9 * expected.max(1.0));
        let i = infer_throughput(&Mlp::new(shape, 1), &x);
        assert_eq!((i.rows, i.logits.len()), (50, 150));
        assert!(gemm_ceiling_gflops(32, 1) > 0.0);
        if let Some(before) = process_cpu_seconds() {
            // A Linux machine: the CPU clock moves as work is done (half a second of it here).
            assert!(gemm_ceiling_gflops_per_cpu_second(48).unwrap() > 0.0);
            assert!(process_cpu_seconds().unwrap() >= before + 0.1);
        }
    }
}
