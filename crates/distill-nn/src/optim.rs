//! Optimisers (Adam, AdamW, SGD with momentum), learning-rate schedules and gradient clipping,
//! applied per parameter with dfdx's own kernels (its `Adam`/`Sgd` need const shapes).

use dfdx::prelude::*;

use crate::mlp::{Mlp, ParamMut};
use crate::Dev;
use distill_spec::{OptimizerSpec, ScheduleSpec, TrainSpec};

/// How parameters are updated, beyond the budget. `Default` is what training always did: Adam
/// (β = 0.9, 0.999, ε = 1e-8, no weight decay) at a constant rate, no clipping, no early stopping.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrainConfig {
    pub optimizer: OptimizerConfig,
    pub schedule: LrSchedule,
    /// Linear warm-up over this many epochs (fractions allowed), before `schedule`.
    pub warmup_epochs: f64,
    /// Rescale gradients to this global L2 norm (over all parameters) when it is exceeded.
    pub clip_grad_norm: Option<f64>,
    pub early_stopping: Option<EarlyStopping>,
    /// End with the weights of the best validation epoch (`keep: best_val`) instead of the last.
    pub keep_best: bool,
}

impl TrainConfig {
    /// The configuration a recipe's `train:` section describes.
    pub fn from_spec(spec: &TrainSpec) -> Self {
        let weight_decay = spec.optimizer.effective_weight_decay();
        let optimizer = match &spec.optimizer {
            OptimizerSpec::Adam(a) | OptimizerSpec::AdamW(a) => OptimizerConfig::Adam {
                betas: a.betas.unwrap_or([0.9, 0.999]),
                eps: a.eps.unwrap_or(1e-8),
                weight_decay,
                decoupled: matches!(spec.optimizer, OptimizerSpec::AdamW(_)),
            },
            OptimizerSpec::Sgd(s) => OptimizerConfig::Sgd { momentum: s.momentum.unwrap_or(0.0), nesterov: s.nesterov.unwrap_or(false), weight_decay },
        };
        let schedule = match &spec.schedule {
            None | Some(ScheduleSpec::Constant(_)) => LrSchedule::Constant,
            Some(ScheduleSpec::Step(s)) => LrSchedule::Step { every_epochs: s.every.max(1), gamma: s.gamma.unwrap_or(0.1) },
            Some(ScheduleSpec::Cosine(s)) => LrSchedule::Cosine { min_lr: s.min_lr.unwrap_or(0.0) },
        };
        let warmup_epochs = spec.schedule.as_ref().map_or(0.0, ScheduleSpec::warmup_epochs);
        Self {
            optimizer,
            schedule,
            warmup_epochs,
            clip_grad_norm: spec.clip_grad_norm,
            early_stopping: spec.early_stopping.as_ref().map(|e| EarlyStopping { patience: e.patience, min_delta: e.min_delta }),
            keep_best: spec.effective_keep() == distill_spec::KeepRule::BestVal,
        }
    }
}

/// The optimiser.
#[derive(Debug, Clone, PartialEq)]
pub enum OptimizerConfig {
    /// Adam; `decoupled` weight decay is AdamW, otherwise it is L2 added to the gradient.
    Adam { betas: [f64; 2], eps: f64, weight_decay: f64, decoupled: bool },
    /// SGD with optional (Nesterov) momentum; weight decay is L2 added to the gradient.
    Sgd { momentum: f64, nesterov: bool, weight_decay: f64 },
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig::Adam { betas: [0.9, 0.999], eps: 1e-8, weight_decay: 0.0, decoupled: false }
    }
}

/// The learning rate over the run (after any warm-up), from the base rate.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum LrSchedule {
    #[default]
    Constant,
    /// `lr * gamma^(epoch / every_epochs)`, epochs counted from 0.
    Step { every_epochs: usize, gamma: f64 },
    /// Half a cosine from `lr` to `min_lr` over the steps after the warm-up.
    Cosine { min_lr: f64 },
}

/// Stop when validation accuracy has not risen by more than `min_delta` for `patience` epochs;
/// the best epoch's weights are restored at the end of training.
#[derive(Debug, Clone, PartialEq)]
pub struct EarlyStopping {
    pub patience: usize,
    pub min_delta: f64,
}

/// The learning rate of optimiser step `step` (0-based) for base rate `base`.
pub fn lr_at(config: &TrainConfig, base: f64, step: usize, steps_per_epoch: usize, total_steps: usize) -> f64 {
    let warmup = (config.warmup_epochs * steps_per_epoch as f64).round() as usize;
    if step < warmup {
        return base * (step + 1) as f64 / warmup as f64;
    }
    match config.schedule {
        LrSchedule::Constant => base,
        LrSchedule::Step { every_epochs, gamma } => {
            let decays = step / steps_per_epoch.max(1) / every_epochs.max(1);
            base * gamma.powi(decays.min(i32::MAX as usize) as i32)
        }
        LrSchedule::Cosine { min_lr } => {
            let span = total_steps.saturating_sub(warmup);
            if span == 0 {
                return base;
            }
            let progress = ((step - warmup) as f64 / span as f64).min(1.0);
            min_lr + (base - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
        }
    }
}

/// Optimiser state: dfdx's config (its `lr` is set per step) and per-parameter buffers, keyed by
/// tensor id like gradients.
pub(crate) enum Optimizer {
    Adam { cfg: AdamConfig, moment1: Gradients<f32, Dev>, moment2: Gradients<f32, Dev> },
    Sgd { cfg: SgdConfig, velocity: Gradients<f32, Dev> },
}

impl Optimizer {
    pub(crate) fn new(config: &OptimizerConfig) -> Self {
        match *config {
            OptimizerConfig::Adam { betas, eps, weight_decay, decoupled } => {
                let weight_decay = match (weight_decay > 0.0, decoupled) {
                    (false, _) => None,
                    (true, true) => Some(WeightDecay::Decoupled(weight_decay)),
                    (true, false) => Some(WeightDecay::L2(weight_decay)),
                };
                let cfg = AdamConfig { betas, eps, weight_decay, ..Default::default() };
                Optimizer::Adam { cfg, moment1: Gradients::leaky(), moment2: Gradients::leaky() }
            }
            OptimizerConfig::Sgd { momentum, nesterov, weight_decay } => {
                let momentum = match (momentum > 0.0, nesterov) {
                    (false, _) => None,
                    (true, true) => Some(Momentum::Nesterov(momentum)),
                    (true, false) => Some(Momentum::Classic(momentum)),
                };
                let weight_decay = (weight_decay > 0.0).then_some(WeightDecay::L2(weight_decay));
                Optimizer::Sgd { cfg: SgdConfig { lr: 0.0, momentum, weight_decay }, velocity: Gradients::leaky() }
            }
        }
    }

    /// One update of every parameter at rate `lr`; `step` counts from 1.
    pub(crate) fn update(&mut self, model: &mut Mlp, grads: &mut Gradients<f32, Dev>, lr: f64, step: i32) {
        for p in model.params_mut() {
            match p {
                ParamMut::Matrix(t) => self.update_one(t, grads, lr, step),
                ParamMut::Vector(t) => self.update_one(t, grads, lr, step),
            }
        }
    }

    /// The optimiser's buffers, slot by slot (Adam: first and second moments; SGD: velocity),
    /// each in parameter order; zeros for parameters not updated yet.
    pub(crate) fn state(&mut self, model: &mut Mlp) -> Vec<Vec<Vec<f32>>> {
        let mut params = model.params_mut();
        self.slots().into_iter().map(|slot| params.iter_mut().map(|p| p.buffer_in(slot).map(|b| b.clone()).unwrap_or_default()).collect()).collect()
    }

    /// Restores buffers from [`Optimizer::state`]; false (and nothing changed) if they do not fit.
    pub(crate) fn set_state(&mut self, model: &mut Mlp, state: &[Vec<Vec<f32>>]) -> bool {
        let mut params = model.params_mut();
        let fits = state.len() == self.slots().len()
            && state.iter().all(|slot| slot.len() == params.len() && slot.iter().zip(&params).all(|(b, p)| b.len() == p.len()));
        if !fits {
            return false;
        }
        for (slot, values) in self.slots().into_iter().zip(state) {
            for (p, v) in params.iter_mut().zip(values) {
                if let Some(b) = p.buffer_in(slot) {
                    b.copy_from_slice(v);
                }
            }
        }
        true
    }

    fn slots(&mut self) -> Vec<&mut Gradients<f32, Dev>> {
        match self {
            Optimizer::Adam { moment1, moment2, .. } => vec![moment1, moment2],
            Optimizer::Sgd { velocity, .. } => vec![velocity],
        }
    }

    fn update_one<S: Shape>(&mut self, param: &mut Tensor<S, f32, Dev>, grads: &mut Gradients<f32, Dev>, lr: f64, step: i32) {
        // Every parameter takes part in the forward pass, so each has a gradient; allocation on
        // the CPU cannot fail, nor can the CPU kernels.
        let Ok(g) = grads.get_or_alloc_mut(param) else { return };
        match self {
            Optimizer::Adam { cfg, moment1, moment2 } => {
                cfg.lr = lr;
                let (Ok(m), Ok(v)) = (moment1.get_or_alloc_mut(param), moment2.get_or_alloc_mut(param)) else { return };
                let _ = cfg.try_update(step, param, m, v, g);
            }
            Optimizer::Sgd { cfg, velocity } => {
                cfg.lr = lr;
                let Ok(v) = velocity.get_or_alloc_mut(param) else { return };
                let _ = cfg.try_update(param, v, g);
            }
        }
    }
}

/// Scales all gradients so their global L2 norm is at most `max_norm`, as PyTorch's
/// `clip_grad_norm_` (factor `max_norm / (norm + 1e-6)` when below 1). Returns the norm before.
pub(crate) fn clip_gradients(model: &mut Mlp, grads: &mut Gradients<f32, Dev>, max_norm: f64) -> f64 {
    let mut params = model.params_mut();
    let mut sum = 0.0f64;
    for p in params.iter_mut() {
        sum += p.buffer_in(grads).map_or(0.0, |g| sum_of_squares(g));
    }
    if let Some(factor) = clip_factor(sum, max_norm) {
        for p in params.iter_mut() {
            for x in p.buffer_in(grads).into_iter().flatten() {
                *x = (*x as f64 * factor) as f32;
            }
        }
    }
    sum.sqrt()
}

/// One parameter's share of the squared global gradient norm, summed in f64 in order.
pub(crate) fn sum_of_squares(g: &[f32]) -> f64 {
    g.iter().map(|&x| x as f64 * x as f64).sum::<f64>()
}

/// The factor that brings the global norm `sqrt(sum)` down to `max_norm` (PyTorch's
/// `max_norm / (norm + 1e-6)`), when it is below 1.
pub(crate) fn clip_factor(sum: f64, max_norm: f64) -> Option<f64> {
    let factor = max_norm / (sum.sqrt() + 1e-6);
    (factor < 1.0).then_some(factor)
}

impl ParamMut<'_> {
    /// This parameter's buffer in a per-parameter store (gradients, optimiser moments), allocated
    /// (zeros) on first use.
    fn buffer_in<'g>(&self, store: &'g mut Gradients<f32, Dev>) -> Option<&'g mut Vec<f32>> {
        match self {
            ParamMut::Matrix(t) => store.get_or_alloc_mut(&**t).ok().map(|v| &mut **v),
            ParamMut::Vector(t) => store.get_or_alloc_mut(&**t).ok().map(|v| &mut **v),
        }
    }
}
