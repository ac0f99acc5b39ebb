//! The training loop: seeded shuffling, dropout masks, host-side loss, dfdx backward, clipping,
//! the optimiser step at the scheduled rate, early stopping.

use dfdx::prelude::*;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::fused::{LayerParams, Plan};
use crate::fused_train::FusedTrainee;
pub(crate) use crate::job::Job;
use crate::mlp::Mlp;
use crate::optim::{clip_gradients, Optimizer, OptimizerConfig, TrainConfig};
use crate::resume::Checkpointing;
use crate::{Dev, Loss};
use distill_spec::{Device, TrainSpec};

/// Budget and optimiser settings for one training run.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub epochs: usize,
    pub batch: usize,
    /// The base (peak) learning rate.
    pub lr: f64,
    pub seed: u64,
    /// Shown in logs and the progress bar, e.g. "teacher".
    pub name: String,
    /// Stop after this many optimiser steps (a budget matched to another model's), even mid-epoch.
    pub max_steps: Option<usize>,
    /// Optimiser, schedule, clipping and early stopping; the default is plain Adam at `lr`.
    pub config: TrainConfig,
    /// A checkpoint after every epoch, and whether to continue from an existing one.
    pub checkpoint: Option<Checkpointing>,
    /// Where to train: the CPU (default) or a CUDA GPU (builds with the `cuda` feature).
    pub device: Device,
    /// The recipe key of the `train:` section these options come from, for messages
    /// (`student.train.optimizer.lr`): [`TrainOptions::from_spec`] says `teacher.train` for the
    /// teacher and `student.train` for students and baselines (which train with the student's).
    pub train_key: String,
    /// A feature hint trained with the model (students only; CPU only).
    pub hint: Option<crate::hint::HintTargets>,
}

impl TrainOptions {
    /// Optimiser steps one epoch over `rows` rows takes.
    pub fn steps_per_epoch(&self, rows: usize) -> usize {
        rows.div_ceil(self.batch.max(1))
    }

    /// Options from a recipe's `train:` section: `epochs`, `batch`, `optimizer.lr` and the rest as
    /// a [`TrainConfig`].
    pub fn from_spec(spec: &TrainSpec, seed: u64, name: impl Into<String>, max_steps: Option<usize>) -> Self {
        let name = name.into();
        let train_key = if name.starts_with("teacher") { "teacher.train" } else { "student.train" }.to_string();
        Self {
            epochs: spec.epochs,
            batch: spec.batch,
            lr: spec.optimizer.lr(),
            seed,
            name,
            max_steps,
            config: TrainConfig::from_spec(spec),
            checkpoint: None,
            device: Device::Cpu,
            train_key,
            hint: None,
        }
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    pub epoch: usize,
    pub train_loss: f64,
    /// Accuracy on the validation rows, when there are any.
    pub val_accuracy: Option<f64>,
}

/// Trains `model` in place and returns one [`EpochStats`] per epoch run; a failing loss (a
/// plugin's) stops training with its message. With early stopping, training may end early and the
/// best epoch's weights are restored. `options.device` picks where: the CPU, or (built with the
/// `cuda` feature) a GPU, after which the trained parameters are copied back into `model`.
pub fn train(
    model: &mut Mlp,
    data: &TrainTargets<'_>,
    loss: &dyn Loss,
    options: &TrainOptions,
    validation: Option<(&[f32], &[u32])>,
) -> Result<Vec<EpochStats>, String> {
    crate::flush_denormals();
    if options.hint.is_some() && !matches!(options.device, Device::Cpu) {
        return Err("feature hints train on the CPU only".into());
    }
    let job = Job::new(model, data, loss, options, validation)?;
    match options.device {
        Device::Cpu => {
            // Plain networks take the fast path; the rest (and feature hints) dfdx's tape.
            let fused = if options.hint.is_none() { FusedTrainee::new(model, &options.config.optimizer) } else { None };
            match fused {
                Some(mut trainee) => {
                    let trained = job.run(&mut trainee);
                    trainee.finish();
                    trained
                }
                None => {
                    let mut trainee = CpuTrainee::new(model, &options.config.optimizer);
                    trainee.hint = job.hint_projection(trainee.model)?;
                    job.run(&mut trainee)
                }
            }
        }
        #[cfg(feature = "cuda")]
        Device::Cuda(ordinal) => crate::cuda::train(model, ordinal, &job),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda(ordinal) => Err(format!("device `cuda:{ordinal}`: this build of distill has no CUDA support (build it with `--features cuda`)")),
    }
}

/// One batch for [`Trainee::step`]: `rows` rows of `x` (row-major) and the dropout masks, one per
/// dropout layer that drops anything, in forward order, already scaled by 1/(1-p).
pub(crate) struct Batch {
    pub x: Vec<f32>,
    pub rows: usize,
    pub masks: Vec<Vec<f32>>,
    /// The batch's teacher features, with a feature hint.
    pub hint: Option<Vec<f32>>,
}

/// How [`Trainee::step`] updates the parameters after the backward pass.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Update {
    /// Rescale gradients to this global L2 norm when it is exceeded.
    pub clip: Option<f64>,
    pub lr: f64,
    /// Optimiser steps so far, this one included (from 1).
    pub step: i32,
}

/// The dL/dlogits of a batch's logits (row-major), from the host loss.
pub(crate) type LossGrad<'a> = dyn FnMut(&[f32]) -> Result<Vec<f32>, String> + 'a;

/// A network and its optimiser where they compute: the CPU ([`CpuTrainee`]) or a dfdx device
/// (`device.rs`). The training loop ([`Job::run`]) drives either the same way; parameters and
/// optimiser buffers cross as host buffers in [`Mlp::param_values`] order.
pub(crate) trait Trainee {
    /// Forward with the batch's masks, the loss gradient from `loss_grad`, backward, clipping,
    /// one optimiser step.
    fn step(&mut self, batch: Batch, loss_grad: &mut LossGrad<'_>, update: Update) -> Result<(), String>;
    /// Logits for every row of `x`, in evaluation mode.
    fn predict(&self, x: &[f32]) -> Result<Vec<f32>, String>;
    fn params(&mut self) -> Result<Vec<Vec<f32>>, String>;
    /// False (and nothing changed) when the buffers do not fit the network.
    fn set_params(&mut self, values: &[Vec<f32>]) -> Result<bool, String>;
    /// The optimiser's buffers, slot by slot, each in parameter order.
    fn optimizer_state(&mut self) -> Result<Vec<Vec<Vec<f32>>>, String>;
    /// False (and nothing changed) when the buffers do not fit.
    fn set_optimizer_state(&mut self, state: &[Vec<Vec<f32>>]) -> Result<bool, String>;
    /// State beyond the model and its optimiser that a checkpoint keeps (a hint's projection).
    fn extra_state(&self) -> Vec<(String, Vec<f64>)> {
        Vec::new()
    }
    /// Restores [`Trainee::extra_state`]; false (and nothing changed) when it does not fit.
    fn set_extra_state(&mut self, state: &[(String, Vec<f64>)]) -> bool {
        state.is_empty()
    }
}

/// Training on the CPU: the model's own tensors, the GEMM op for dense layers, dfdx's optimiser
/// kernels.
pub(crate) struct CpuTrainee<'m> {
    model: &'m mut Mlp,
    optimizer: Optimizer,
    /// Width of each dropout layer's mask.
    mask_widths: Vec<usize>,
    /// With a feature hint: where it joins (node, student width), its targets and projection.
    pub(crate) hint: Option<HintState>,
}

/// A feature hint during training.
pub(crate) struct HintState {
    pub pos: usize,
    pub width: usize,
    pub targets: crate::hint::HintTargets,
    pub projection: std::sync::Arc<std::sync::Mutex<crate::hint::Projection>>,
}

impl<'m> CpuTrainee<'m> {
    pub(crate) fn new(model: &'m mut Mlp, config: &OptimizerConfig) -> Self {
        let mask_widths = model.dropout_layers().into_iter().map(|(_, width)| width).collect();
        Self { model, optimizer: Optimizer::new(config), mask_widths, hint: None }
    }
}

impl Trainee for CpuTrainee<'_> {
    fn step(&mut self, batch: Batch, loss_grad: &mut LossGrad<'_>, update: Update) -> Result<(), String> {
        let model = &mut *self.model;
        let dev = model.dev.clone();
        let b = batch.rows;
        let x = dev.tensor_from_vec(batch.x, (b, model.shape.inputs()));
        let masks: Vec<Tensor<(usize, usize), f32, Dev>> =
            batch.masks.into_iter().zip(&self.mask_widths).map(|(m, &h)| dev.tensor_from_vec(m, (b, h))).collect();
        let logits = match (&self.hint, batch.hint) {
            (Some(h), Some(target)) => {
                let op = crate::hint::HintOp::new(h.projection.clone(), target, &h.targets, h.width);
                model.forward_hinted(x.leaky_traced(), Some(&masks), h.pos, op)
            }
            _ => model.forward(x.leaky_traced(), Some(&masks)),
        };
        let grad = loss_grad(&logits.as_vec())?;
        // d/dθ sum(logits * g) = (dL/dlogits) · dlogits/dθ: the host loss joins dfdx's tape.
        let g = dev.tensor_from_vec(grad, (b, model.shape.classes()));
        let mut grads = (logits * g).sum::<Rank0, _>().backward();
        if let Some(max_norm) = update.clip {
            clip_gradients(model, &mut grads, max_norm);
        }
        self.optimizer.update(model, &mut grads, update.lr, update.step);
        Ok(())
    }

    fn predict(&self, x: &[f32]) -> Result<Vec<f32>, String> {
        Ok(predict_logits(self.model, x))
    }

    fn params(&mut self) -> Result<Vec<Vec<f32>>, String> {
        Ok(self.model.param_values())
    }

    fn set_params(&mut self, values: &[Vec<f32>]) -> Result<bool, String> {
        Ok(self.model.set_param_values(values))
    }

    fn optimizer_state(&mut self) -> Result<Vec<Vec<Vec<f32>>>, String> {
        Ok(self.optimizer.state(self.model))
    }

    fn set_optimizer_state(&mut self, state: &[Vec<Vec<f32>>]) -> Result<bool, String> {
        Ok(self.optimizer.set_state(self.model, state))
    }

    fn extra_state(&self) -> Vec<(String, Vec<f64>)> {
        self.hint.as_ref().and_then(|h| h.projection.lock().ok().map(|p| p.state())).unwrap_or_default()
    }

    fn set_extra_state(&mut self, state: &[(String, Vec<f64>)]) -> bool {
        match &self.hint {
            Some(h) => h.projection.lock().is_ok_and(|mut p| p.restore(state)),
            None => state.is_empty(),
        }
    }
}

/// Logits for every row of `x`, in evaluation mode (no dropout), row-major.
pub fn predict_logits(model: &Mlp, x: &[f32]) -> Vec<f32> {
    if let Some(plan) = Plan::of(model) {
        let weights = model.dense_weights();
        let layers: Vec<_> = weights.iter().map(|(w, b)| LayerParams { w, b }).collect();
        return crate::fused::predict(&plan, &layers, x);
    }
    let inputs = model.shape.inputs();
    let n = x.len().checked_div(inputs).unwrap_or(0);
    if n == 0 {
        return Vec::new();
    }
    // Rows are independent: blocks run on rayon's threads at once, so the layers' elementwise
    // work (bias, activation) runs in parallel too, not only the products. Consecutive rows are
    // already a row-major block: one copy into the tensor, no gathering.
    let blocks: Vec<Vec<f32>> = x[..n * inputs]
        .par_chunks(PREDICT_BLOCK_ROWS * inputs)
        .map(|block| {
            let t = model.dev.tensor_from_vec(block.to_vec(), (block.len() / inputs, inputs));
            model.forward(t, None).as_vec()
        })
        .collect();
    blocks.concat()
}

/// Rows per inference block: large enough for the products to run near the GEMM's peak. Blocks
/// start at multiples of it, so predicting a range that starts at a multiple runs the very
/// products (and gives the very bits) that predicting every row does (sharded logits rely on it).
pub const PREDICT_BLOCK_ROWS: usize = 512;

/// Fraction of rows whose highest logit is the label. Empty input gives 0.
pub fn accuracy(logits: &[f32], labels: &[u32], classes: usize) -> f64 {
    if labels.is_empty() {
        return 0.0;
    }
    let correct = labels.iter().enumerate().filter(|(i, &y)| argmax(&logits[i * classes..(i + 1) * classes]) == y as usize).count();
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
#[path = "train_tests.rs"]
pub(crate) mod tests;
