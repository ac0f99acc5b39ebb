//! Training on a dfdx device other than the host path: the CUDA GPU (`cuda.rs` opens it).
//!
//! The CPU trains through `mlp.rs`, `gemm.rs` and `optim.rs`, whose dense op reads host memory.
//! Here a network's parameters are copied onto the device and run through dfdx's own ops
//! (`matmul`, broadcast bias, `normalize`, activations, dropout-mask products, residual sums),
//! and Adam/SGD are dfdx tensor ops (`axpy` and friends), since dfdx's optimiser kernels update
//! buffers that only a `Gradients` store can hand out, leaving no way to clip or restore them.
//! Everything is generic over `dfdx::tensor_ops::Device<f32>`, so the tests run it on `Cpu`
//! against the CPU path.
//!
//! Not here: conv and pool layers (host code on the tape: CPU only), losses (host functions: only
//! a batch's logits and their gradient cross between host and device).

use dfdx::prelude::*;
use dfdx::tensor_ops::Device;

use crate::mlp::{Mlp, Node, LAYER_NORM_EPS};
use crate::optim::OptimizerConfig;
use crate::train::{Batch, EpochStats, Job, LossGrad, Trainee, Update};
use distill_spec::Activation;

/// A batch-by-features matrix on device `D`, with tape `T`.
type Matrix<D, T = NoneTape> = Tensor<(usize, usize), f32, D, T>;

/// Why a conv or pool network cannot train on a device.
pub(crate) const CNN_ON_CPU_ONLY: &str = "cnn layers (conv, pool) train on the CPU only in this version; use `device: cpu`";

/// Rows per block when predicting: bounds the device memory of one forward pass.
const PREDICT_BLOCK_ROWS: usize = 4096;

/// Trains `model` for `job` on `dev` (called `name` in errors, e.g. `cuda:0`), then copies the
/// trained parameters back into `model`; on error `model` is left as it was.
pub(crate) fn train_on<D: Device<f32>>(model: &mut Mlp, dev: D, name: &str, job: &Job<'_>) -> Result<Vec<EpochStats>, String> {
    let mut trainee = DeviceTrainee::new(model, dev, &job.options.config.optimizer, name)?;
    let history = job.run(&mut trainee)?;
    let trained = trainee.params()?;
    if !model.set_param_values(&trained) {
        return Err(format!("device `{name}`: the trained parameters do not fit the model"));
    }
    Ok(history)
}

/// A parameter on the device and its optimiser buffers (Adam: both moments; SGD: velocity).
struct Slot<S: Shape, D: Storage<f32>> {
    value: Tensor<S, f32, D>,
    buffers: Vec<Tensor<S, f32, D>>,
}

/// A built layer on the device; the same list as the CPU network's [`Node`]s.
enum DevNode<D: Storage<f32>> {
    Dense {
        w: Slot<(usize, usize), D>,
        b: Slot<(usize,), D>,
    },
    Norm {
        gamma: Slot<(usize,), D>,
        beta: Slot<(usize,), D>,
    },
    Activation(Activation),
    /// Dropout that drops something: multiplies by the next mask in training.
    Dropout,
    /// Dropout with p = 0: the identity.
    Identity,
    Residual(Vec<DevNode<D>>),
}

/// One parameter of either shape, in [`Mlp::param_values`] order.
enum SlotMut<'a, D: Storage<f32>> {
    Matrix(&'a mut Slot<(usize, usize), D>),
    Vector(&'a mut Slot<(usize,), D>),
}

/// Runs `$body` with `$s` bound to the slot, whatever its shape (the methods are generic).
macro_rules! with_slot {
    ($slot:expr, $s:ident => $body:expr) => {
        match $slot {
            SlotMut::Matrix($s) => $body,
            SlotMut::Vector($s) => $body,
        }
    };
}

impl<S: Shape, D: Device<f32>> Slot<S, D> {
    fn new(dev: &D, host: &Tensor<S, f32, crate::Dev>, buffers: usize) -> Result<Self, D::Err> {
        let shape = *host.shape();
        let value = dev.try_tensor_from_vec(host.as_vec(), shape)?;
        let buffers = (0..buffers).map(|_| dev.try_zeros_like(&shape)).collect::<Result<_, _>>()?;
        Ok(Self { value, buffers })
    }

    fn len(&self) -> usize {
        self.value.shape().num_elements()
    }

    /// Replaces `t` with `values` (already checked to have its length).
    fn replace(t: &mut Tensor<S, f32, D>, values: &[f32]) -> Result<(), D::Err> {
        *t = t.device().try_tensor_from_vec(values.to_vec(), *t.shape())?;
        Ok(())
    }

    /// This parameter's gradient (zeros if it took no part, which a checked network rules out).
    fn grad(&self, grads: &mut Gradients<f32, D>) -> Result<Tensor<S, f32, D>, D::Err> {
        grads.try_alloc_for(&self.value)?;
        Ok(grads.get(&self.value))
    }

    fn grad_norm_sq(&self, grads: &mut Gradients<f32, D>) -> Result<f64, D::Err> {
        Ok(self.grad(grads)?.try_square()?.try_sum::<Rank0, _>()?.as_vec().first().map_or(0.0, |&x| x as f64))
    }

    /// One step of `rule` at rate `lr` with the gradient times `scale` (clipping); the same
    /// formulas as dfdx's CPU kernels (`optim.rs` runs those).
    fn update(&mut self, rule: &OptimizerConfig, grads: &mut Gradients<f32, D>, scale: f64, lr: f64, step: i32) -> Result<(), D::Err> {
        let mut g = self.grad(grads)?;
        if scale != 1.0 {
            g = g.try_mul(scale as f32)?;
        }
        let Slot { value: p, buffers } = self;
        match *rule {
            OptimizerConfig::Adam { betas: [b1, b2], eps, weight_decay, decoupled } => {
                if weight_decay > 0.0 && !decoupled {
                    g.try_axpy(1.0, p, weight_decay)?;
                }
                let [m, v] = &mut buffers[..] else { return Ok(()) };
                m.try_axpy(b1, &g, 1.0 - b1)?;
                v.try_axpy(b2, &g.try_square()?, 1.0 - b2)?;
                let m_hat = m.clone().try_mul((1.0 - b1.powi(step)).recip() as f32)?;
                let v_hat = v.clone().try_mul((1.0 - b2.powi(step)).recip() as f32)?;
                let delta = m_hat.try_div(v_hat.try_sqrt()?.try_add(eps as f32)?)?;
                // AdamW shrinks the weights by lr·wd besides the step.
                let keep = if decoupled { 1.0 - lr * weight_decay } else { 1.0 };
                p.try_axpy(keep, &delta, -lr)?;
            }
            OptimizerConfig::Sgd { momentum, nesterov, weight_decay } => {
                if weight_decay > 0.0 {
                    g.try_axpy(1.0, p, weight_decay)?;
                }
                match buffers.first_mut() {
                    Some(v) if momentum > 0.0 => {
                        v.try_axpy(momentum, &g, 1.0)?;
                        if nesterov {
                            // lr · (g + μ·v)
                            p.try_axpy(1.0, &g, -lr)?;
                            p.try_axpy(1.0, v, -lr * momentum)?;
                        } else {
                            p.try_axpy(1.0, v, -lr)?;
                        }
                    }
                    _ => p.try_axpy(1.0, &g, -lr)?,
                }
            }
        }
        Ok(())
    }
}

/// A network on a device with its optimiser.
pub(crate) struct DeviceTrainee<D: Device<f32>> {
    dev: D,
    nodes: Vec<DevNode<D>>,
    inputs: usize,
    classes: usize,
    /// Width of each dropout layer's mask, in forward order.
    mask_widths: Vec<usize>,
    rule: OptimizerConfig,
    /// The device as errors name it, e.g. `cuda:0`.
    name: String,
}

impl<D: Device<f32>> DeviceTrainee<D> {
    /// A copy of `model`'s parameters on `dev`, optimiser buffers zeroed.
    pub(crate) fn new(model: &Mlp, dev: D, rule: &OptimizerConfig, name: &str) -> Result<Self, String> {
        let buffers = match rule {
            OptimizerConfig::Adam { .. } => 2,
            OptimizerConfig::Sgd { .. } => 1,
        };
        fn copy<D: Device<f32>>(nodes: &[Node], dev: &D, buffers: usize) -> Result<Vec<DevNode<D>>, String> {
            let fail = |e: D::Err| e.to_string();
            nodes
                .iter()
                .map(|node| {
                    Ok(match node {
                        Node::Dense(d) => DevNode::Dense { w: Slot::new(dev, &d.w, buffers).map_err(fail)?, b: Slot::new(dev, &d.b, buffers).map_err(fail)? },
                        Node::Norm { gamma, beta } => {
                            DevNode::Norm { gamma: Slot::new(dev, gamma, buffers).map_err(fail)?, beta: Slot::new(dev, beta, buffers).map_err(fail)? }
                        }
                        Node::Activation(a) => DevNode::Activation(*a),
                        Node::Dropout { p, .. } if *p > 0.0 => DevNode::Dropout,
                        Node::Dropout { .. } => DevNode::Identity,
                        Node::Residual(inner) => DevNode::Residual(copy(inner, dev, buffers)?),
                        Node::Conv(_) | Node::Pool(_) => return Err(CNN_ON_CPU_ONLY.to_string()),
                    })
                })
                .collect()
        }
        let nodes = copy(&model.nodes, &dev, buffers).map_err(|e| format!("device `{name}`: {e}"))?;
        let mask_widths = model.dropout_layers().into_iter().map(|(_, width)| width).collect();
        Ok(Self { dev, nodes, inputs: model.shape.inputs(), classes: model.shape.classes(), mask_widths, rule: rule.clone(), name: name.to_string() })
    }

    /// An error of this device, with what was being done.
    fn fail<E: std::fmt::Display>(&self, doing: &str) -> impl Fn(E) -> String + '_ {
        let doing = doing.to_string();
        move |e| format!("device `{}`: {doing}: {e}", self.name)
    }

    fn slots(&mut self) -> Vec<SlotMut<'_, D>> {
        fn walk<'a, D: Device<f32>>(nodes: &'a mut [DevNode<D>], out: &mut Vec<SlotMut<'a, D>>) {
            for node in nodes {
                match node {
                    DevNode::Dense { w, b } => out.extend([SlotMut::Matrix(w), SlotMut::Vector(b)]),
                    DevNode::Norm { gamma, beta } => out.extend([SlotMut::Vector(gamma), SlotMut::Vector(beta)]),
                    DevNode::Residual(inner) => walk(inner, out),
                    DevNode::Activation(_) | DevNode::Dropout | DevNode::Identity => {}
                }
            }
        }
        let mut out = Vec::new();
        walk(&mut self.nodes, &mut out);
        out
    }

    /// Logits for a batch; with `masks` (one per [`DevNode::Dropout`], in order), training mode.
    fn forward<T: Tape<f32, D>>(nodes: &[DevNode<D>], x: Matrix<D, T>, masks: Option<&[Matrix<D>]>, next_mask: &mut usize) -> Result<Matrix<D, T>, D::Err> {
        let mut h = x;
        for node in nodes {
            let rows = h.shape().0;
            h = match node {
                DevNode::Dense { w, b } => {
                    let shape = (rows, w.value.shape().1);
                    h.try_matmul(w.value.clone())?.try_add(b.value.clone().try_broadcast_like::<_, Axis<0>>(&shape)?)?
                }
                DevNode::Norm { gamma, beta } => {
                    let shape = (rows, gamma.value.shape().0);
                    h.try_normalize::<Axis<1>>(LAYER_NORM_EPS)?
                        .try_mul(gamma.value.clone().try_broadcast_like::<_, Axis<0>>(&shape)?)?
                        .try_add(beta.value.clone().try_broadcast_like::<_, Axis<0>>(&shape)?)?
                }
                DevNode::Activation(Activation::Relu) => h.try_relu()?,
                DevNode::Activation(Activation::Tanh) => h.try_tanh()?,
                // The tanh form, as on the CPU (see mlp.rs).
                DevNode::Activation(Activation::Gelu) => h.try_fast_gelu()?,
                DevNode::Dropout => match masks.and_then(|m| m.get(*next_mask)) {
                    Some(mask) => {
                        *next_mask += 1;
                        h.try_mul(mask.clone())?
                    }
                    None => h,
                },
                DevNode::Identity => h,
                DevNode::Residual(inner) => {
                    // As on the CPU: the tape runs through the block, the skip joins untaped.
                    let (skip, tape) = h.split_tape();
                    Self::forward(inner, skip.clone().put_tape(tape), masks, next_mask)?.try_add(skip)?
                }
            };
        }
        Ok(h)
    }
}

impl<D: Device<f32>> Trainee for DeviceTrainee<D> {
    fn step(&mut self, batch: Batch, loss_grad: &mut LossGrad<'_>, update: Update) -> Result<(), String> {
        let b = batch.rows;
        let dev = self.dev.clone();
        let name = self.name.clone();
        let x = dev.try_tensor_from_vec(batch.x, (b, self.inputs)).map_err(self.fail("copying a batch to the device"))?;
        let masks = batch
            .masks
            .into_iter()
            .zip(&self.mask_widths)
            .map(|(m, &h)| dev.try_tensor_from_vec(m, (b, h)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.fail("copying dropout masks to the device"))?;
        let logits = Self::forward(&self.nodes, x.leaky_traced(), Some(&masks), &mut 0).map_err(self.fail("forward pass"))?;
        // The loss runs on the host: batch × classes values each way.
        let grad = loss_grad(&logits.as_vec())?;
        let g = dev.try_tensor_from_vec(grad, (b, self.classes)).map_err(self.fail("copying the loss gradient to the device"))?;
        let mut grads = logits.try_mul(g).and_then(|s| s.try_sum::<Rank0, _>()).and_then(|s| s.try_backward()).map_err(self.fail("backward pass"))?;
        let scale = match update.clip {
            Some(max_norm) => {
                let mut sum = 0.0;
                for slot in self.slots() {
                    sum += with_slot!(slot, s => s.grad_norm_sq(&mut grads)).map_err(|e| format!("device `{name}`: gradient norm: {e}"))?;
                }
                // As `optim::clip_gradients` (PyTorch's `clip_grad_norm_`).
                (max_norm / (sum.sqrt() + 1e-6)).min(1.0)
            }
            None => 1.0,
        };
        let rule = self.rule.clone();
        for slot in self.slots() {
            with_slot!(slot, s => s.update(&rule, &mut grads, scale, update.lr, update.step)).map_err(|e| format!("device `{name}`: optimiser step: {e}"))?;
        }
        Ok(())
    }

    fn predict(&self, x: &[f32]) -> Result<Vec<f32>, String> {
        let inputs = self.inputs.max(1);
        let mut out = Vec::with_capacity(x.len() / inputs * self.classes);
        for block in x.chunks(PREDICT_BLOCK_ROWS * inputs) {
            let t = self.dev.try_tensor_from_vec(block.to_vec(), (block.len() / inputs, inputs)).map_err(self.fail("copying rows to the device"))?;
            out.extend(Self::forward(&self.nodes, t, None, &mut 0).map_err(self.fail("forward pass"))?.as_vec());
        }
        Ok(out)
    }

    fn params(&mut self) -> Result<Vec<Vec<f32>>, String> {
        Ok(self.slots().into_iter().map(|slot| with_slot!(slot, s => s.value.as_vec())).collect())
    }

    fn set_params(&mut self, values: &[Vec<f32>]) -> Result<bool, String> {
        let name = self.name.clone();
        let mut slots = self.slots();
        if slots.len() != values.len() || slots.iter().zip(values).any(|(slot, v)| with_slot!(slot, s => s.len()) != v.len()) {
            return Ok(false);
        }
        for (slot, v) in slots.iter_mut().zip(values) {
            with_slot!(slot, s => Slot::replace(&mut s.value, v)).map_err(|e| format!("device `{name}`: copying parameters to the device: {e}"))?;
        }
        Ok(true)
    }

    fn optimizer_state(&mut self) -> Result<Vec<Vec<Vec<f32>>>, String> {
        let slots = self.slots();
        let count = slots.first().map_or(0, |slot| with_slot!(slot, s => s.buffers.len()));
        Ok((0..count).map(|k| slots.iter().map(|slot| with_slot!(slot, s => s.buffers[k].as_vec())).collect()).collect())
    }

    fn set_optimizer_state(&mut self, state: &[Vec<Vec<f32>>]) -> Result<bool, String> {
        let name = self.name.clone();
        let mut slots = self.slots();
        let fits =
            state.iter().all(|buffers| buffers.len() == slots.len() && slots.iter().zip(buffers).all(|(slot, b)| with_slot!(slot, s => s.len()) == b.len()))
                && slots.iter().all(|slot| with_slot!(slot, s => s.buffers.len()) == state.len());
        if !fits {
            return Ok(false);
        }
        for (k, buffers) in state.iter().enumerate() {
            for (slot, b) in slots.iter_mut().zip(buffers) {
                with_slot!(slot, s => Slot::replace(&mut s.buffers[k], b))
                    .map_err(|e| format!("device `{name}`: copying optimiser state to the device: {e}"))?;
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    //! The device path on dfdx's `Cpu` against the CPU path: the same network, batches, masks and
    //! losses must give the same parameters (to float rounding: matmul and gemm 0.19 sum in other
    //! orders, and the optimisers are other code).

    use super::*;
    use crate::train::tests::{blobs, config, layered_shape, shape, FailingAfter};
    use crate::train::{CpuTrainee, TrainTargets};
    use crate::{accuracy, predict_logits, train, Checkpointing, CrossEntropy, Layer, Loss, MlpShape, TrainOptions};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn close(what: &str, got: &[Vec<f32>], want: &[Vec<f32>]) {
        assert_eq!(got.len(), want.len(), "{what}: parameter count");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert_eq!(g.len(), w.len(), "{what}: parameter {i} length");
            for (j, (a, b)) in g.iter().zip(w).enumerate() {
                assert!((a - b).abs() <= 2e-4 * (1.0 + b.abs()), "{what}: parameter {i}[{j}]: device {a} vs cpu {b}");
            }
        }
    }

    /// A few optimiser steps on both paths, batch by batch, with masks for every dropout layer.
    fn steps_agree<D: Device<f32>>(dev: D, shape: MlpShape, text: &str) {
        let options = config(text);
        let rule = &options.config.optimizer;
        let (x, y) = blobs(48, 2);
        let mut cpu_model = Mlp::new(shape.clone(), 11);
        let on_device = Mlp::new(shape, 11);
        let mut dev = DeviceTrainee::new(&on_device, dev, rule, "test").unwrap();
        let mut cpu = CpuTrainee::new(&mut cpu_model, rule);
        let widths = dev.mask_widths.clone();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for (i, rows) in (0..48).collect::<Vec<usize>>().chunks(16).enumerate() {
            let b = rows.len();
            let batch_x: Vec<f32> = rows.iter().flat_map(|&r| x[2 * r..2 * r + 2].to_vec()).collect();
            let labels: Vec<u32> = rows.iter().map(|&r| y[r]).collect();
            let masks: Vec<Vec<f32>> = widths.iter().map(|&h| (0..b * h).map(|_| if rng.gen::<f32>() < 0.3 { 0.0 } else { 1.0 / 0.7 }).collect()).collect();
            let update = Update { clip: options.config.clip_grad_norm, lr: options.lr, step: i as i32 + 1 };
            let mut grad = |logits: &[f32]| CrossEntropy.value_and_grad(logits, None, &labels, 3).map(|(_, g)| g);
            cpu.step(Batch { x: batch_x.clone(), rows: b, masks: masks.clone(), hint: None }, &mut grad, update).unwrap();
            dev.step(Batch { x: batch_x, rows: b, masks, hint: None }, &mut grad, update).unwrap();
            close(&format!("{text}, step {}", i + 1), &dev.params().unwrap(), &cpu.params().unwrap());
        }
        let (state, want) = (dev.optimizer_state().unwrap(), cpu.optimizer_state().unwrap());
        assert_eq!(state.len(), want.len(), "{text}: optimiser slots");
        for (slot, (s, w)) in state.iter().zip(&want).enumerate() {
            close(&format!("{text}, optimiser slot {slot}"), s, w);
        }
        let (got, want) = (dev.predict(&x).unwrap(), cpu.predict(&x).unwrap());
        close(&format!("{text}: predictions"), &[got], &[want]);
    }

    #[test]
    fn every_layer_and_optimiser_steps_as_on_the_cpu() {
        every_layer_and_optimiser_on(Cpu::default());
    }

    /// The same on a real GPU: `cargo test --release -p distill-nn --features cuda -- --ignored`.
    #[cfg(feature = "cuda")]
    #[test]
    #[ignore = "needs an NVIDIA GPU and a CUDA build"]
    fn on_a_gpu_every_layer_and_optimiser_steps_as_on_the_cpu() {
        every_layer_and_optimiser_on(dfdx::tensor::Cuda::try_build(0, 0).expect("GPU 0"));
    }

    /// A whole run through `train` on GPU 0 learns what the CPU learns.
    #[cfg(feature = "cuda")]
    #[test]
    #[ignore = "needs an NVIDIA GPU and a CUDA build"]
    fn on_a_gpu_whole_runs_learn_like_the_cpu() {
        let (x, y) = blobs(300, 4);
        let (vx, vy) = blobs(60, 5);
        let data = TrainTargets { x: &x, labels: &y, teacher_logits: None };
        let options = config("{epochs: 15, batch: 16, optimizer: {kind: adam, lr: 0.01}, clip_grad_norm: 1.0, early_stopping: {patience: 20}}");
        let mut cpu = Mlp::new(layered_shape(), 5);
        let cpu_history = train(&mut cpu, &data, &CrossEntropy, &options, Some((&vx, &vy))).unwrap();
        let mut gpu = Mlp::new(layered_shape(), 5);
        let history = train(&mut gpu, &data, &CrossEntropy, &TrainOptions { device: distill_spec::Device::Cuda(0), ..options }, Some((&vx, &vy))).unwrap();
        assert!((history[0].train_loss - cpu_history[0].train_loss).abs() < 1e-3, "{history:?} vs {cpu_history:?}");
        let (acc, cpu_acc) = (accuracy(&predict_logits(&gpu, &x), &y, 3), accuracy(&predict_logits(&cpu, &x), &y, 3));
        assert!(acc > 0.9 && (acc - cpu_acc).abs() < 0.05, "gpu {acc} vs cpu {cpu_acc}");
    }

    fn every_layer_and_optimiser_on<D: Device<f32>>(dev: D) {
        use Layer::{Dense, Dropout, LayerNorm, Residual};
        let act = Layer::Activation;
        let layered =
            MlpShape::from_layers(2, vec![Dense(6), LayerNorm, act(Activation::Gelu), Residual(vec![Dense(6), act(Activation::Tanh), Dropout(0.3)]), Dense(3)])
                .unwrap();
        for text in [
            "{epochs: 1, batch: 16, optimizer: {kind: sgd, lr: 0.5}}",
            "{epochs: 1, batch: 16, optimizer: {kind: sgd, lr: 0.1, momentum: 0.9, weight_decay: 0.01}}",
            "{epochs: 1, batch: 16, optimizer: {kind: sgd, lr: 0.1, momentum: 0.9, nesterov: true}, clip_grad_norm: 0.05}",
            "{epochs: 1, batch: 16, optimizer: {kind: adam, lr: 0.01}}",
            "{epochs: 1, batch: 16, optimizer: {kind: adam, lr: 0.01, weight_decay: 0.1, betas: [0.8, 0.99], eps: 1.0e-6}}",
            "{epochs: 1, batch: 16, optimizer: {kind: adamw, lr: 0.01, weight_decay: 0.1}, clip_grad_norm: 0.1}",
        ] {
            steps_agree(dev.clone(), shape(0.2), text);
            steps_agree(dev.clone(), layered.clone(), text);
            steps_agree(dev.clone(), layered_shape(), text);
        }
    }

    /// The same epochs and accuracies, losses to rounding: dfdx's own CPU matmul (which the
    /// device path uses there) is not bitwise repeatable across threads, nor is cuBLAS in general.
    fn same_run(what: &str, got: &[EpochStats], want: &[EpochStats]) {
        assert_eq!(got.len(), want.len(), "{what}: epochs");
        for (g, w) in got.iter().zip(want) {
            assert!(g.epoch == w.epoch && g.val_accuracy == w.val_accuracy && (g.train_loss - w.train_loss).abs() < 1e-6, "{what}: {g:?} vs {w:?}");
        }
    }

    fn on_cpu_device(
        model: &mut Mlp,
        data: &TrainTargets<'_>,
        loss: &dyn Loss,
        options: &TrainOptions,
        validation: Option<(&[f32], &[u32])>,
    ) -> Result<Vec<EpochStats>, String> {
        let job = Job::new(model, data, loss, options, validation)?;
        train_on(model, Cpu::default(), "test", &job)
    }

    #[test]
    fn whole_runs_learn_like_the_cpu_and_repeat() {
        let (x, y) = blobs(300, 4);
        let (vx, vy) = blobs(60, 5);
        let data = TrainTargets { x: &x, labels: &y, teacher_logits: None };
        let options =
            config("{epochs: 15, batch: 16, optimizer: {kind: adam, lr: 0.01}, schedule: {kind: cosine, warmup_epochs: 1}, early_stopping: {patience: 20}}");
        let mut cpu = Mlp::new(layered_shape(), 5);
        let cpu_history = train(&mut cpu, &data, &CrossEntropy, &options, Some((&vx, &vy))).unwrap();
        let mut a = Mlp::new(layered_shape(), 5);
        let history = on_cpu_device(&mut a, &data, &CrossEntropy, &options, Some((&vx, &vy))).unwrap();
        assert_eq!(history.len(), cpu_history.len());
        // The first epoch's loss is a mean over the same batches: rounding apart, the same.
        assert!((history[0].train_loss - cpu_history[0].train_loss).abs() < 1e-4, "{history:?} vs {cpu_history:?}");
        let (acc, cpu_acc) = (accuracy(&predict_logits(&a, &x), &y, 3), accuracy(&predict_logits(&cpu, &x), &y, 3));
        assert!(acc > 0.9 && (acc - cpu_acc).abs() < 0.05, "device {acc} vs cpu {cpu_acc}");
        let mut b = Mlp::new(layered_shape(), 5);
        same_run("a second run", &on_cpu_device(&mut b, &data, &CrossEntropy, &options, Some((&vx, &vy))).unwrap(), &history);
        close("same seed, same weights", &b.param_values(), &a.param_values());
    }

    #[test]
    fn a_resumed_device_run_ends_as_an_uninterrupted_one() {
        let (x, y) = blobs(200, 6);
        let (vx, vy) = blobs(60, 7);
        let data = TrainTargets { x: &x, labels: &y, teacher_logits: None };
        let dir = std::env::temp_dir().join(format!("distill-resume-device-{}", std::process::id()));
        let options = config("{epochs: 6, batch: 16, optimizer: {kind: sgd, lr: 0.05, momentum: 0.9}, early_stopping: {patience: 20}}");
        let mut whole = Mlp::new(shape(0.2), 3);
        let full = on_cpu_device(&mut whole, &data, &CrossEntropy, &options, Some((&vx, &vy))).unwrap();
        let checkpoint = Checkpointing { path: dir.join("job.ckpt"), job: "job".into(), resume: true };
        let with_ck = TrainOptions { checkpoint: Some(checkpoint.clone()), ..options.clone() };
        let failing = FailingAfter { inner: &CrossEntropy, calls: Default::default(), fail_at: 3 * 200usize.div_ceil(16) + 2 };
        let mut first = Mlp::new(shape(0.2), 3);
        let before = first.param_values();
        assert!(on_cpu_device(&mut first, &data, &failing, &with_ck, Some((&vx, &vy))).is_err());
        assert_eq!(first.param_values(), before, "a failed run leaves the model as it was");
        let mut resumed = Mlp::new(shape(0.2), 3);
        same_run("resumed", &on_cpu_device(&mut resumed, &data, &CrossEntropy, &with_ck, Some((&vx, &vy))).unwrap(), &full);
        close("resumed", &resumed.param_values(), &whole.param_values());
        assert!(!checkpoint.path.exists(), "removed once training completes");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn conv_networks_are_refused_with_the_reason() {
        let spec: distill_spec::ModelSpec = serde_yaml::from_str("{arch: cnn, conv: [{filters: 2, kernel: 3, padding: 1}], pool: 2, hidden: [4]}").unwrap();
        let image = distill_spec::ImageSpec { height: 4, width: 4, channels: 1 };
        let model = Mlp::new(MlpShape::from_spec(&spec, 16, 3).with_image(Some(image)), 1);
        let err = DeviceTrainee::new(&model, Cpu::default(), &Default::default(), "cuda:0").err().unwrap();
        assert!(err.contains("device `cuda:0`") && err.contains("CPU only"), "{err}");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn asking_a_cpu_build_for_cuda_is_an_error() {
        let (x, y) = blobs(20, 1);
        let options = TrainOptions { device: distill_spec::Device::Cuda(1), ..config("{epochs: 1, batch: 8}") };
        let err = train(&mut Mlp::new(shape(0.0), 1), &TrainTargets { x: &x, labels: &y, teacher_logits: None }, &CrossEntropy, &options, None).unwrap_err();
        assert!(err.contains("cuda:1") && err.contains("--features cuda"), "{err}");
    }
}
