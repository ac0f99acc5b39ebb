//! The training loop: seeded shuffling, dropout masks, host-side loss, dfdx backward, Adam.

use dfdx::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::mlp::{Mlp, ParamMut};
use crate::{Dev, Loss};

/// Budget and optimiser settings for one training run.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    pub seed: u64,
    /// Shown in logs and the progress bar, e.g. "teacher".
    pub name: String,
    /// Stop after this many optimiser steps (a budget matched to another model's), even mid-epoch.
    pub max_steps: Option<usize>,
}

impl TrainOptions {
    /// Optimiser steps one epoch over `rows` rows takes.
    pub fn steps_per_epoch(&self, rows: usize) -> usize {
        rows.div_ceil(self.batch.max(1))
    }
}

/// What the model learns from: rows of `x` (row-major, `model.inputs()` wide), their labels, and
/// optionally teacher logits for the same rows (`classes` wide).
pub struct TrainTargets<'a> {
    pub x: &'a [f32],
    pub labels: &'a [u32],
    pub teacher_logits: Option<&'a [f32]>,
}

/// Per-epoch record of a training run.
#[derive(Debug, Clone, Serialize)]
pub struct EpochStats {
    pub epoch: usize,
    pub train_loss: f64,
    /// Accuracy on the validation rows, when there are any.
    pub val_accuracy: Option<f64>,
}

fn gather_rows(x: &[f32], width: usize, rows: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * width);
    for &r in rows {
        out.extend_from_slice(&x[r * width..(r + 1) * width]);
    }
    out
}

/// Trains `model` in place with Adam and returns one [`EpochStats`] per epoch; a failing loss
/// (a plugin's) stops training with its message.
pub fn train(
    model: &mut Mlp,
    data: &TrainTargets<'_>,
    loss: &dyn Loss,
    options: &TrainOptions,
    validation: Option<(&[f32], &[u32])>,
) -> Result<Vec<EpochStats>, String> {
    crate::flush_denormals();
    let inputs = model.shape.inputs();
    let classes = model.shape.classes();
    let n = data.labels.len();
    assert_eq!(data.x.len(), n * inputs, "feature matrix shape is checked by the caller");
    let teacher = if loss.needs_teacher() { data.teacher_logits } else { None };
    if loss.needs_teacher() && teacher.is_none() {
        return Err("this loss needs teacher logits".into());
    }

    let adam = AdamConfig { lr: options.lr, ..Default::default() };
    let mut moment1: Gradients<f32, Dev> = Gradients::leaky();
    let mut moment2: Gradients<f32, Dev> = Gradients::leaky();
    let mut step: i32 = 0;
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let mut order: Vec<usize> = (0..n).collect();
    let dev = model.dev.clone();
    let dropout = model.shape.dropout;
    let hidden: Vec<usize> = model.shape.widths[1..model.shape.widths.len() - 1].to_vec();

    let bar = if n == 0 { ProgressBar::hidden() } else { ProgressBar::new(options.epochs as u64) };
    bar.set_style(
        ProgressStyle::with_template("{prefix:>9} [{bar:30}] epoch {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(options.name.clone());

    let mut history = Vec::with_capacity(options.epochs);
    for epoch in 1..=options.epochs {
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0;
        let mut seen = 0;
        for rows in order.chunks(options.batch) {
            if options.max_steps.is_some_and(|max| step as usize >= max) {
                break;
            }
            let b = rows.len();
            seen += b;
            let x = dev.tensor_from_vec(gather_rows(data.x, inputs, rows), (b, inputs));
            let masks: Option<Vec<Tensor<(usize, usize), f32, Dev>>> = (dropout > 0.0).then(|| {
                let keep = 1.0 / (1.0 - dropout);
                hidden
                    .iter()
                    .map(|&h| {
                        let m: Vec<f32> = (0..b * h).map(|_| if rng.gen::<f32>() < dropout { 0.0 } else { keep }).collect();
                        dev.tensor_from_vec(m, (b, h))
                    })
                    .collect()
            });
            let logits = model.forward(x.leaky_traced(), masks.as_deref());
            let labels: Vec<u32> = rows.iter().map(|&r| data.labels[r]).collect();
            let teacher_rows = teacher.map(|t| gather_rows(t, classes, rows));
            let (value, grad) = loss.value_and_grad(&logits.as_vec(), teacher_rows.as_deref(), &labels, classes).inspect_err(|_| bar.finish_and_clear())?;
            if grad.len() != b * classes {
                bar.finish_and_clear();
                return Err(format!("the loss returned {} gradient values for a {b}×{classes} batch", grad.len()));
            }
            loss_sum += value * b as f64;
            // d/dθ sum(logits * g) = (dL/dlogits) · dlogits/dθ: the host loss joins dfdx's tape.
            let g = dev.tensor_from_vec(grad, (b, classes));
            let mut grads = (logits * g).sum::<Rank0, _>().backward();
            step += 1;
            for p in model.params_mut() {
                match p {
                    ParamMut::Matrix(t) => adam_step(&adam, step, t, &mut grads, &mut moment1, &mut moment2),
                    ParamMut::Vector(t) => adam_step(&adam, step, t, &mut grads, &mut moment1, &mut moment2),
                }
            }
        }
        let val_accuracy = validation.filter(|(_, y)| !y.is_empty()).map(|(vx, vy)| accuracy(&predict_logits(model, vx), vy, classes));
        let train_loss = if seen == 0 { 0.0 } else { loss_sum / seen as f64 };
        bar.set_message(match val_accuracy {
            Some(a) => format!("loss {train_loss:.4} val acc {a:.4}"),
            None => format!("loss {train_loss:.4}"),
        });
        bar.inc(1);
        tracing::debug!(model = %options.name, epoch, train_loss, ?val_accuracy, "epoch done");
        history.push(EpochStats { epoch, train_loss, val_accuracy });
        if options.max_steps.is_some_and(|max| step as usize >= max) {
            break;
        }
    }
    bar.finish_and_clear();
    Ok(history)
}

fn adam_step<S: Shape>(
    cfg: &AdamConfig,
    step: i32,
    param: &mut Tensor<S, f32, Dev>,
    grads: &mut Gradients<f32, Dev>,
    moment1: &mut Gradients<f32, Dev>,
    moment2: &mut Gradients<f32, Dev>,
) {
    // Every MLP parameter takes part in the forward pass, so each has a gradient; allocation on
    // the CPU cannot fail.
    let (Ok(g), Ok(m), Ok(v)) = (grads.get_or_alloc_mut(param), moment1.get_or_alloc_mut(param), moment2.get_or_alloc_mut(param)) else {
        return;
    };
    // The CPU kernels cannot fail.
    let _ = cfg.try_update(step, param, m, v, g);
}

/// Logits for every row of `x`, in evaluation mode (no dropout), row-major.
pub fn predict_logits(model: &Mlp, x: &[f32]) -> Vec<f32> {
    let inputs = model.shape.inputs();
    let n = if inputs == 0 { 0 } else { x.len() / inputs };
    let mut out = Vec::with_capacity(n * model.shape.classes());
    let rows: Vec<usize> = (0..n).collect();
    for chunk in rows.chunks(1024) {
        let t = model.dev.tensor_from_vec(gather_rows(x, inputs, chunk), (chunk.len(), inputs));
        out.extend(model.forward(t, None).as_vec());
    }
    out
}

/// Fraction of rows whose highest logit is the label. Empty input gives 0.
pub fn accuracy(logits: &[f32], labels: &[u32], classes: usize) -> f64 {
    if labels.is_empty() {
        return 0.0;
    }
    let correct = labels
        .iter()
        .enumerate()
        .filter(|(i, &y)| argmax(&logits[i * classes..(i + 1) * classes]) == y as usize)
        .count();
    correct as f64 / labels.len() as f64
}

/// Index of the largest value; the first one on ties.
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = j;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{load_weights, save_weights, CrossEntropy, HintonKd, MlpShape};
    use distill_spec::Activation;

    /// Two Gaussian-ish blobs per class in 2-D: learnable by a small MLP, not by chance.
    fn blobs(n: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let centres = [(-1.0f32, -1.0f32), (1.0, 1.0), (-1.0, 1.0)];
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..n {
            let c = i % 3;
            x.push(centres[c].0 + rng.gen_range(-0.5..0.5));
            x.push(centres[c].1 + rng.gen_range(-0.5..0.5));
            y.push(c as u32);
        }
        (x, y)
    }

    fn shape(dropout: f32) -> MlpShape {
        MlpShape { widths: vec![2, 16, 3], activation: Activation::Relu, dropout }
    }

    fn options(seed: u64) -> TrainOptions {
        TrainOptions { epochs: 30, batch: 16, lr: 1e-2, seed, name: "test".into(), max_steps: None }
    }

    #[test]
    fn learns_a_separable_problem_deterministically() {
        let (x, y) = blobs(300, 1);
        let data = TrainTargets { x: &x, labels: &y, teacher_logits: None };
        let mut a = Mlp::new(shape(0.1), 5);
        let history = train(&mut a, &data, &CrossEntropy, &options(9), Some((&x, &y))).unwrap();
        assert!(history.last().unwrap().train_loss < history[0].train_loss);
        assert!(accuracy(&predict_logits(&a, &x), &y, 3) > 0.95);
        let mut b = Mlp::new(shape(0.1), 5);
        train(&mut b, &data, &CrossEntropy, &options(9), None).unwrap();
        assert_eq!(predict_logits(&a, &x), predict_logits(&b, &x), "same seed, same weights");
    }

    #[test]
    fn a_student_with_alpha_one_learns_from_teacher_logits_alone() {
        let (x, y) = blobs(300, 2);
        let mut teacher = Mlp::new(shape(0.0), 1);
        train(&mut teacher, &TrainTargets { x: &x, labels: &y, teacher_logits: None }, &CrossEntropy, &options(1), None).unwrap();
        let t = predict_logits(&teacher, &x);
        // Labels are scrambled: only the teacher's logits carry the signal.
        let wrong: Vec<u32> = y.iter().map(|c| (c + 1) % 3).collect();
        let mut student = Mlp::new(shape(0.0), 2);
        let kd = HintonKd { temperature: 2.0, alpha: 1.0 };
        train(&mut student, &TrainTargets { x: &x, labels: &wrong, teacher_logits: Some(&t) }, &kd, &options(2), None).unwrap();
        assert!(accuracy(&predict_logits(&student, &x), &y, 3) > 0.9);
    }

    #[test]
    fn safetensors_round_trip_is_exact_and_checks_shapes() {
        let model = Mlp::new(shape(0.0), 3);
        let bytes = save_weights(&model, Default::default()).unwrap();
        let mut copy = Mlp::new(shape(0.0), 4);
        load_weights(&mut copy, &bytes).unwrap();
        let (x, _) = blobs(10, 3);
        assert_eq!(predict_logits(&model, &x), predict_logits(&copy, &x));
        let mut other = Mlp::new(MlpShape { widths: vec![2, 8, 3], activation: Activation::Relu, dropout: 0.0 }, 1);
        let err = load_weights(&mut other, &bytes).unwrap_err().to_string();
        assert!(err.contains("layers.0.weight"), "{err}");
    }
}
