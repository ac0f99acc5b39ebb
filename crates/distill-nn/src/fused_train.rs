//! CPU training of plain networks on the fast path ([`crate::fused`]): every parameter, its
//! gradient and each optimiser buffer is one flat buffer for the whole run (no allocation per
//! step), and the optimiser updates all parameters in one parallel pass with dfdx's arithmetic.

use dfdx::prelude::*;
use rayon::prelude::*;

use crate::fused::{self, GradBuffers, Plan, Sink, Values};
use crate::mlp::Mlp;
use crate::optim::{clip_factor, sum_of_squares, Optimizer, OptimizerConfig};
use crate::train::{Batch, LossGrad, Trainee, Update};

/// Elements one optimiser task updates: large enough that a small model's update stays on one
/// thread, small enough that a large one's spreads over all of them.
const UPDATE_CHUNK: usize = 1 << 16;

/// A plain network training on the fast path; [`FusedTrainee::finish`] writes the result back.
pub(crate) struct FusedTrainee<'m> {
    model: &'m mut Mlp,
    plan: Plan,
    /// Length of each parameter, in [`Mlp::params_mut`] order.
    lens: Vec<usize>,
    params: Vec<f32>,
    grads: Vec<f32>,
    optimizer: FlatOptimizer,
    values: Values,
    backward: GradBuffers,
}

/// The optimiser's configuration (dfdx's, its `lr` set per step) and buffers, flat like the
/// parameters.
enum FlatOptimizer {
    Adam { cfg: AdamConfig, moment1: Vec<f32>, moment2: Vec<f32> },
    Sgd { cfg: SgdConfig, velocity: Vec<f32> },
}

impl<'m> FusedTrainee<'m> {
    /// `None` when the network has a layer the fast path does not run.
    pub(crate) fn new(model: &'m mut Mlp, config: &OptimizerConfig) -> Option<Self> {
        let plan = Plan::of(model)?;
        let lens = plan.param_lens();
        let params = model.param_values().concat();
        let n = params.len();
        let optimizer = match Optimizer::new(config) {
            Optimizer::Adam { cfg, .. } => FlatOptimizer::Adam { cfg, moment1: vec![0.0; n], moment2: vec![0.0; n] },
            Optimizer::Sgd { cfg, .. } => FlatOptimizer::Sgd { cfg, velocity: vec![0.0; n] },
        };
        Some(Self { model, plan, lens, params, grads: vec![0.0; n], optimizer, values: Values::default(), backward: GradBuffers::default() })
    }

    /// Puts the trained parameters into the model.
    pub(crate) fn finish(self) {
        let values = unflatten(&self.lens, &self.params);
        self.model.set_param_values(&values);
    }

    fn slots(&mut self) -> Vec<&mut Vec<f32>> {
        match &mut self.optimizer {
            FlatOptimizer::Adam { moment1, moment2, .. } => vec![moment1, moment2],
            FlatOptimizer::Sgd { velocity, .. } => vec![velocity],
        }
    }
}

/// Flat buffer → one buffer per parameter.
fn unflatten(lens: &[usize], flat: &[f32]) -> Vec<Vec<f32>> {
    let mut rest = flat;
    lens.iter()
        .map(|&len| {
            let (head, tail) = rest.split_at(len);
            rest = tail;
            head.to_vec()
        })
        .collect()
}

/// One buffer per parameter → `flat`; false (and nothing changed) when they do not fit.
fn flatten_into(lens: &[usize], values: &[Vec<f32>], flat: &mut [f32]) -> bool {
    if values.len() != lens.len() || values.iter().zip(lens).any(|(v, &len)| v.len() != len) {
        return false;
    }
    let mut rest = flat;
    for v in values {
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(v.len());
        head.copy_from_slice(v);
        rest = tail;
    }
    true
}

impl Trainee for FusedTrainee<'_> {
    fn step(&mut self, batch: Batch, loss_grad: &mut LossGrad<'_>, update: Update) -> Result<(), String> {
        let Self { plan, params, grads, values, backward, optimizer, lens, .. } = self;
        fused::forward(plan, &plan.split(params), &batch.x, batch.rows, Some(&batch.masks), values, false);
        let g = loss_grad(values.logits(plan))?;
        let (x, rows, masks) = (&batch.x, batch.rows, &batch.masks);
        match (optimizer, update.clip) {
            // Without clipping, Adam needs no global view of the gradients: it runs inside the
            // backward pass.
            (FlatOptimizer::Adam { cfg, moment1, moment2 }, None) => {
                cfg.lr = update.lr;
                let kernel = AdamKernel::new(cfg, update.step);
                let sink = Sink::Adam { kernel: &kernel, m: moment1, v: moment2 };
                fused::backward(plan, params, x, rows, masks, values, &g, sink, backward);
            }
            (optimizer, clip_norm) => {
                fused::backward(plan, params, x, rows, masks, values, &g, Sink::Store(grads), backward);
                if let Some(max_norm) = clip_norm {
                    clip(lens, grads, max_norm);
                }
                optimizer.update(params, grads, update.lr, update.step);
            }
        }
        Ok(())
    }

    fn predict(&self, x: &[f32]) -> Result<Vec<f32>, String> {
        Ok(fused::predict(&self.plan, &self.plan.split(&self.params), x))
    }

    fn params(&mut self) -> Result<Vec<Vec<f32>>, String> {
        Ok(unflatten(&self.lens, &self.params))
    }

    fn set_params(&mut self, values: &[Vec<f32>]) -> Result<bool, String> {
        Ok(flatten_into(&self.lens, values, &mut self.params))
    }

    fn optimizer_state(&mut self) -> Result<Vec<Vec<Vec<f32>>>, String> {
        let lens = self.lens.clone();
        Ok(self.slots().into_iter().map(|slot| unflatten(&lens, slot)).collect())
    }

    fn set_optimizer_state(&mut self, state: &[Vec<Vec<f32>>]) -> Result<bool, String> {
        let lens = self.lens.clone();
        let mut slots = self.slots();
        let fits = state.len() == slots.len() && state.iter().all(|s| s.len() == lens.len() && s.iter().zip(&lens).all(|(v, &len)| v.len() == len));
        if fits {
            for (slot, values) in slots.iter_mut().zip(state) {
                flatten_into(&lens, values, slot);
            }
        }
        Ok(fits)
    }
}

/// The tape path's clipping over flat gradients: the global norm summed parameter by parameter in
/// the same order, then one parallel pass to scale.
fn clip(lens: &[usize], grads: &mut [f32], max_norm: f64) {
    let mut sum = 0.0f64;
    let mut rest: &[f32] = grads;
    for &len in lens {
        let (head, tail) = rest.split_at(len);
        sum += sum_of_squares(head);
        rest = tail;
    }
    if let Some(factor) = clip_factor(sum, max_norm) {
        grads.par_chunks_mut(UPDATE_CHUNK).for_each(|chunk| chunk.iter_mut().for_each(|x| *x = (*x as f64 * factor) as f32));
    }
}

impl FlatOptimizer {
    /// One update of every parameter at rate `lr`; `step` counts from 1. Element by element as
    /// dfdx's CPU kernels, in parallel chunks.
    fn update(&mut self, params: &mut [f32], grads: &[f32], lr: f64, step: i32) {
        match self {
            FlatOptimizer::Adam { cfg, moment1, moment2 } => {
                cfg.lr = lr;
                let kernel = AdamKernel::new(cfg, step);
                params
                    .par_chunks_mut(UPDATE_CHUNK)
                    .zip(grads.par_chunks(UPDATE_CHUNK))
                    .zip(moment1.par_chunks_mut(UPDATE_CHUNK).zip(moment2.par_chunks_mut(UPDATE_CHUNK)))
                    .for_each(|((p, g), (m, v))| kernel.run(p, g, m, v));
            }
            FlatOptimizer::Sgd { cfg, velocity } => {
                cfg.lr = lr;
                let kernel = SgdKernel::new(cfg);
                params
                    .par_chunks_mut(UPDATE_CHUNK)
                    .zip(grads.par_chunks(UPDATE_CHUNK))
                    .zip(velocity.par_chunks_mut(UPDATE_CHUNK))
                    .for_each(|((p, g), v)| kernel.run(p, g, v));
            }
        }
    }
}

/// dfdx's Adam with its per-step constants worked out once.
pub(crate) struct AdamKernel {
    betas: [f32; 2],
    one_minus: [f32; 2],
    /// 1 / (1 − βᵢᵗ).
    correction: [f32; 2],
    eps: f32,
    lr: f32,
    l2: Option<f32>,
    decoupled: Option<f32>,
}

impl AdamKernel {
    fn new(cfg: &AdamConfig, t: i32) -> Self {
        let betas = cfg.betas.map(|b| b as f32);
        let (l2, decoupled) = weight_decay(cfg.weight_decay, cfg.lr);
        Self {
            betas,
            one_minus: betas.map(|b| 1.0 - b),
            correction: betas.map(|b| (1.0 - b.powi(t)).recip()),
            eps: cfg.eps as f32,
            lr: cfg.lr as f32,
            l2,
            decoupled,
        }
    }

    /// One update of `params` from `grads`, element by element as dfdx's CPU kernel.
    #[inline(always)]
    pub(crate) fn run(&self, params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32]) {
        for ((p, &g), (m, v)) in params.iter_mut().zip(grads).zip(m.iter_mut().zip(v.iter_mut())) {
            let mut g = g;
            if let Some(wd) = self.l2 {
                g += wd * *p;
            }
            *m = *m * self.betas[0] + g * self.one_minus[0];
            *v = *v * self.betas[1] + g.powi(2) * self.one_minus[1];
            let m_hat = *m * self.correction[0];
            let v_hat = *v * self.correction[1];
            g = self.lr * m_hat / (v_hat.sqrt() + self.eps);
            if let Some(wd) = self.decoupled {
                g += wd * *p;
            }
            *p -= g;
        }
    }
}

/// dfdx's SGD with its constants worked out once.
struct SgdKernel {
    lr: f32,
    momentum: Option<Momentum>,
    l2: Option<f32>,
    decoupled: Option<f32>,
}

impl SgdKernel {
    fn new(cfg: &SgdConfig) -> Self {
        let (l2, decoupled) = weight_decay(cfg.weight_decay, cfg.lr);
        Self { lr: cfg.lr as f32, momentum: cfg.momentum, l2, decoupled }
    }

    #[inline(always)]
    fn run(&self, params: &mut [f32], grads: &[f32], velocity: &mut [f32]) {
        for ((p, &g), v) in params.iter_mut().zip(grads).zip(velocity.iter_mut()) {
            let mut g = g;
            if let Some(wd) = self.l2 {
                g += wd * *p;
            }
            match self.momentum {
                Some(Momentum::Classic(u)) => {
                    *v = g + u as f32 * *v;
                    g = *v * self.lr;
                }
                Some(Momentum::Nesterov(u)) => {
                    *v = g + u as f32 * *v;
                    g = (g + u as f32 * *v) * self.lr;
                }
                None => g *= self.lr,
            }
            if let Some(wd) = self.decoupled {
                g += wd * *p;
            }
            *p -= g;
        }
    }
}

/// (L2 factor, decoupled factor) as dfdx rounds them: `wd` and `wd · lr` to f32.
fn weight_decay(wd: Option<WeightDecay>, lr: f64) -> (Option<f32>, Option<f32>) {
    match wd {
        Some(WeightDecay::L2(wd)) => (Some(wd as f32), None),
        Some(WeightDecay::Decoupled(wd)) => (None, Some((wd * lr) as f32)),
        None => (None, None),
    }
}
