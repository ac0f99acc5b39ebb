//! The fast path for plain networks (dense layers, each followed by at most one activation and
//! one dropout): forward and backward on host buffers that live as long as the training run, no
//! tape. Each layer is one product onto its bias and one pass over the product for activation and
//! dropout mask; backward is one pass for the mask and the activation's derivative, then the
//! products. Networks with anything else (norms, residual blocks, conv, pool, a feature hint) go
//! through dfdx's tape.
//!
//! Both paths do the same arithmetic in the same order, so they give the same values (the tests
//! compare them); the tape path only differs in the sign of some zero gradients, which no update
//! can see.

use dfdx::prelude::HasShape;
use distill_spec::Activation;
use rayon::prelude::*;

pub(crate) use crate::fused_train::AdamKernel;
use crate::gemm::{product_on, Threads, View};
use crate::mlp::{Mlp, Node};

/// One dense layer of a plain network, with what follows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PlanLayer {
    pub inputs: usize,
    pub outputs: usize,
    pub act: Option<Activation>,
    /// The index of its dropout mask (in [`Mlp::dropout_layers`] order), when it drops anything.
    pub mask: Option<usize>,
}

impl PlanLayer {
    /// Whether its output is a separate buffer (otherwise the product itself is the output).
    fn transforms(&self) -> bool {
        self.act.is_some() || self.mask.is_some()
    }
}

/// A network the fast path runs: its dense layers in order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    pub layers: Vec<PlanLayer>,
}

impl Plan {
    /// The plan of `model`, or `None` when it has a layer the fast path does not run.
    pub(crate) fn of(model: &Mlp) -> Option<Plan> {
        let mut layers: Vec<PlanLayer> = Vec::new();
        let mut masks = 0;
        for node in &model.nodes {
            match node {
                Node::Dense(d) => {
                    let (inputs, outputs) = *d.w.shape();
                    layers.push(PlanLayer { inputs, outputs, act: None, mask: None });
                }
                Node::Activation(a) => {
                    let last = layers.last_mut().filter(|l| !l.transforms())?;
                    last.act = Some(*a);
                }
                Node::Dropout { p, .. } if *p > 0.0 => {
                    let last = layers.last_mut().filter(|l| l.mask.is_none())?;
                    last.mask = Some(masks);
                    masks += 1;
                }
                Node::Dropout { .. } => {}
                Node::Norm { .. } | Node::Residual(_) | Node::Conv(_) | Node::Pool(_) => return None,
            }
        }
        let chained = layers.windows(2).all(|w| w[0].outputs == w[1].inputs) && layers.first().is_some_and(|l| l.inputs == model.shape.inputs());
        chained.then_some(Plan { layers })
    }

    pub(crate) fn inputs(&self) -> usize {
        self.layers[0].inputs
    }

    pub(crate) fn outputs(&self) -> usize {
        self.layers[self.layers.len() - 1].outputs
    }

    /// Parameters in [`Mlp::params_mut`] order: each layer's weight (inputs × outputs), then bias.
    pub(crate) fn param_lens(&self) -> Vec<usize> {
        self.layers.iter().flat_map(|l| [l.inputs * l.outputs, l.outputs]).collect()
    }

    /// Splits a flat buffer of every parameter (in [`Plan::param_lens`] order) into layers.
    pub(crate) fn split<'a>(&self, flat: &'a [f32]) -> Vec<LayerParams<'a>> {
        let mut rest = flat;
        self.layers
            .iter()
            .map(|l| {
                let (w, tail) = rest.split_at(l.inputs * l.outputs);
                let (b, tail) = tail.split_at(l.outputs);
                rest = tail;
                LayerParams { w, b }
            })
            .collect()
    }
}

/// A dense layer's weight (inputs × outputs, row-major) and bias.
#[derive(Clone, Copy)]
pub(crate) struct LayerParams<'a> {
    pub w: &'a [f32],
    pub b: &'a [f32],
}

/// One layer's values for a batch: the product plus bias, and (when the layer has an activation
/// or a mask) the output after them. After an evaluation pass only the output is meaningful.
#[derive(Default)]
pub(crate) struct LayerValues {
    z: Vec<f32>,
    a: Vec<f32>,
}

/// The forward values of every layer, reused batch after batch (no allocation once the largest
/// batch has been seen).
#[derive(Default)]
pub(crate) struct Values {
    layers: Vec<LayerValues>,
}

impl Values {
    /// Layer `l`'s output.
    fn output(&self, plan: &Plan, l: usize) -> &[f32] {
        let v = &self.layers[l];
        if plan.layers[l].transforms() {
            &v.a
        } else {
            &v.z
        }
    }

    /// The network's output (the logits) of the last forward pass.
    pub(crate) fn logits(&self, plan: &Plan) -> &[f32] {
        self.output(plan, plan.layers.len() - 1)
    }
}

/// Runs `plan` on `rows` rows of `x` (row-major). `masks` (training) are the dropout masks,
/// already scaled by 1/(1-p); `None` evaluates. `side_by_side`: other forward passes run at the
/// same time on the other threads, so every product stays on this one.
pub(crate) fn forward(plan: &Plan, params: &[LayerParams<'_>], x: &[f32], rows: usize, masks: Option<&[Vec<f32>]>, values: &mut Values, side_by_side: bool) {
    values.layers.resize_with(plan.layers.len(), LayerValues::default);
    for (l, (layer, p)) in plan.layers.iter().zip(params).enumerate() {
        let (done, rest) = values.layers.split_at_mut(l);
        let input: &[f32] = match l {
            0 => x,
            _ if plan.layers[l - 1].transforms() => &done[l - 1].a,
            _ => &done[l - 1].z,
        };
        let out = &mut rest[0];
        // The bias goes in first and the product accumulates onto it, as the tape path does.
        out.z.clear();
        for _ in 0..rows {
            out.z.extend_from_slice(p.b);
        }
        let threads = if side_by_side { Threads::One } else { Threads::for_shape(rows, layer.inputs, layer.outputs) };
        product_on(&mut out.z, true, View::row_major(input, rows, layer.inputs), View::row_major(p.w, layer.inputs, layer.outputs), threads);
        if layer.transforms() {
            match masks {
                Some(masks) => {
                    out.a.resize(out.z.len(), 0.0);
                    activate(layer.act, &out.z, layer.mask.map(|m| masks[m].as_slice()), &mut out.a);
                }
                // Evaluation needs no product for a backward pass: the activation goes in place.
                None => {
                    out.z.iter_mut().for_each(|z| *z = apply(layer.act, *z));
                    std::mem::swap(&mut out.z, &mut out.a);
                }
            }
        }
    }
}

/// `a = act(z) [* mask]` in one pass.
fn activate(act: Option<Activation>, z: &[f32], mask: Option<&[f32]>, a: &mut [f32]) {
    match mask {
        Some(mask) => {
            for ((a, &z), &m) in a.iter_mut().zip(z).zip(mask) {
                *a = apply(act, z) * m;
            }
        }
        None => {
            for (a, &z) in a.iter_mut().zip(z) {
                *a = apply(act, z);
            }
        }
    }
}

/// The activation of one value, as dfdx computes it.
#[inline(always)]
fn apply(act: Option<Activation>, z: f32) -> f32 {
    match act {
        None => z,
        Some(Activation::Relu) => z.max(0.0),
        Some(Activation::Tanh) => z.tanh(),
        Some(Activation::Gelu) => {
            let alpha = z + GELU_KAPPA * z.powi(3);
            0.5 * z * (1.0 + (std::f32::consts::FRAC_2_PI.sqrt() * alpha).tanh())
        }
    }
}

/// dfdx's `F::from(0.044715)`: the f64 constant rounded to f32.
const GELU_KAPPA: f32 = 0.044715f64 as f32;

/// The activation's derivative at `z` (tanh's from its value `fx`), as dfdx computes it.
#[inline(always)]
fn derivative(act: Activation, z: f32, fx: f32) -> f32 {
    match act {
        Activation::Relu => {
            if z > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Activation::Tanh => 1.0 - fx.powi(2),
        Activation::Gelu => {
            let beta = std::f32::consts::SQRT_2 * std::f32::consts::FRAC_2_SQRT_PI * 0.5;
            let (x_sq, half) = (z * z, 0.5f32);
            let x_cube = x_sq * z;
            let tanh_inner = (beta * (z + GELU_KAPPA * x_cube)).tanh();
            let right = 1.0 + tanh_inner;
            let tanh_derivative = 1.0 - tanh_inner * tanh_inner;
            let inner_derivative = beta * (1.0 + 3.0 * GELU_KAPPA * x_sq);
            half * right + half * z * tanh_derivative * inner_derivative
        }
    }
}

/// Gradients flowing back through a batch, reused batch after batch.
#[derive(Default)]
pub(crate) struct GradBuffers {
    /// d/d(product) of the layer being processed.
    gz: Vec<f32>,
    /// d/d(input) of the layer being processed: the layer below's output gradient.
    ga: Vec<f32>,
    /// A bias gradient.
    gb: Vec<f32>,
}

/// Where the backward pass puts the parameter gradients.
pub(crate) enum Sink<'a> {
    /// Written (not added) into one flat buffer in [`Plan::param_lens`] order, for clipping or
    /// an optimiser that runs after the whole pass.
    Store(&'a mut [f32]),
    /// Each block of a weight's rows goes through Adam as soon as its gradient is known, while it
    /// is still in cache; the whole gradient never exists. `m`, `v`: the moments, flat like the
    /// parameters.
    Adam { kernel: &'a AdamKernel, m: &'a mut [f32], v: &'a mut [f32] },
}

/// The backward pass of `sum(logits * g)` after [`forward`] ran this batch into `values`: every
/// parameter's gradient goes to `sink` (and with [`Sink::Adam`], `params` are updated).
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    plan: &Plan,
    params: &mut [f32],
    x: &[f32],
    rows: usize,
    masks: &[Vec<f32>],
    values: &Values,
    g: &[f32],
    mut sink: Sink<'_>,
    scratch: &mut GradBuffers,
) {
    let GradBuffers { gz, ga, gb } = scratch;
    // `0 +` as the tape's accumulation into zeroed buffers does.
    gz.clear();
    gz.extend(g.iter().map(|v| 0.0 + v));
    let mut end = params.len();
    for l in (0..plan.layers.len()).rev() {
        let layer = &plan.layers[l];
        let (inputs, outputs) = (layer.inputs, layer.outputs);
        let (w_at, b_at) = (end - outputs - inputs * outputs, end - outputs);
        end = w_at;
        let input = if l == 0 { x } else { values.output(plan, l - 1) };
        gb.clear();
        gb.resize(outputs, 0.0);
        for row in gz.chunks_exact(outputs) {
            for (acc, v) in gb.iter_mut().zip(row) {
                *acc += v;
            }
        }
        // The input's gradient first: it reads the weight, which an update would change.
        if l > 0 {
            ga.clear();
            ga.resize(rows * inputs, 0.0);
            let w = View::row_major(&params[w_at..b_at], inputs, outputs).transposed();
            product_on(ga, true, View::row_major(gz, rows, outputs), w, Threads::for_shape(rows, outputs, inputs));
        }
        let input_t = View::row_major(input, rows, inputs).transposed();
        let gz_view = View::row_major(gz, rows, outputs);
        match &mut sink {
            Sink::Store(grads) => {
                product_on(&mut grads[w_at..b_at], false, input_t, gz_view, Threads::All);
                grads[b_at..b_at + outputs].copy_from_slice(gb);
            }
            Sink::Adam { kernel, m, v } => {
                let (p, m, v) = (&mut params[w_at..b_at + outputs], &mut m[w_at..b_at + outputs], &mut v[w_at..b_at + outputs]);
                let (p_w, p_b) = p.split_at_mut(inputs * outputs);
                let (m_w, m_b) = m.split_at_mut(inputs * outputs);
                let (v_w, v_b) = v.split_at_mut(inputs * outputs);
                adam_by_row_blocks(kernel, input_t, gz_view, p_w, m_w, v_w);
                kernel.run(p_b, gb, m_b, v_b);
            }
        }
        if l > 0 {
            let below = &plan.layers[l - 1];
            through_activation(below, &values.layers[l - 1], masks, ga, gz);
        }
    }
}

/// Rows of a weight whose gradient one task computes and applies (the last block takes the
/// remainder too): more than 64, so every block's product takes gemm's general path and sums in
/// the order the whole product does.
const ADAM_BLOCK_ROWS: usize = 128;

/// `w -= Adam(xᵀ · gz)` block of rows by block, the blocks side by side on rayon's threads (in
/// turn on this one for a small weight): each block's gradient is a product on its own thread
/// into a per-thread buffer, applied at once.
fn adam_by_row_blocks(kernel: &AdamKernel, input_t: View<'_>, gz: View<'_>, w: &mut [f32], m: &mut [f32], v: &mut [f32]) {
    let (inputs, outputs) = (input_t.rows, gz.cols);
    let blocks = (inputs / ADAM_BLOCK_ROWS).max(1);
    let mut parts = Vec::with_capacity(blocks);
    let (mut w, mut m, mut v) = (w, m, v);
    for i in 0..blocks {
        let rows = if i + 1 == blocks { inputs - i * ADAM_BLOCK_ROWS } else { ADAM_BLOCK_ROWS };
        let (w_head, w_tail) = std::mem::take(&mut w).split_at_mut(rows * outputs);
        let (m_head, m_tail) = std::mem::take(&mut m).split_at_mut(rows * outputs);
        let (v_head, v_tail) = std::mem::take(&mut v).split_at_mut(rows * outputs);
        parts.push((i * ADAM_BLOCK_ROWS, rows, w_head, m_head, v_head));
        (w, m, v) = (w_tail, m_tail, v_tail);
    }
    thread_local! {
        static GRAD: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let run = |(start, rows, w, m, v): (usize, usize, &mut [f32], &mut [f32], &mut [f32])| {
        GRAD.with_borrow_mut(|g| {
            g.clear();
            g.resize(w.len(), 0.0);
            product_on(g, false, input_t.row_range(start, rows), gz, Threads::One);
            kernel.run(w, g, m, v);
        })
    };
    if Threads::for_shape(inputs, gz.rows, outputs) == Threads::One {
        parts.into_iter().for_each(run);
    } else {
        parts.into_par_iter().for_each(run);
    }
}

/// `gz` = the gradient at layer `below`'s product, from `ga` at its output: one pass for the mask
/// and the activation's derivative, in the tape's order (mask, then activation).
fn through_activation(below: &PlanLayer, v: &LayerValues, masks: &[Vec<f32>], ga: &[f32], gz: &mut Vec<f32>) {
    gz.clear();
    let mask = below.mask.map(|m| masks[m].as_slice());
    match (below.act, mask) {
        (None, None) => gz.extend_from_slice(ga),
        (None, Some(mask)) => gz.extend(ga.iter().zip(mask).map(|(g, m)| 0.0 + m * g)),
        // tanh's derivative reads its value: the output itself without a mask, recomputed with one.
        (Some(act), None) => gz.extend(ga.iter().zip(&v.z).zip(&v.a).map(|((g, &z), &fx)| 0.0 + derivative(act, z, fx) * g)),
        (Some(act), Some(mask)) => gz.extend(ga.iter().zip(&v.z).zip(mask).map(|((g, &z), m)| {
            let fx = if act == Activation::Tanh { z.tanh() } else { 0.0 };
            0.0 + derivative(act, z, fx) * (0.0 + m * g)
        })),
    }
}

/// Logits for every row of `x` (evaluation mode), row-major. Blocks of
/// [`crate::PREDICT_BLOCK_ROWS`] rows run side by side on rayon's threads, each product on its
/// block's thread; with fewer blocks than threads, the products use every thread instead.
pub(crate) fn predict(plan: &Plan, params: &[LayerParams<'_>], x: &[f32]) -> Vec<f32> {
    let (inputs, classes) = (plan.inputs(), plan.outputs());
    let n = x.len() / inputs.max(1);
    let block = crate::PREDICT_BLOCK_ROWS;
    let mut out = vec![0f32; n * classes];
    if n == 0 {
        return out;
    }
    let side_by_side = n.div_ceil(block) >= rayon::current_num_threads();
    out.par_chunks_mut(block * classes).zip(x[..n * inputs].par_chunks(block * inputs)).for_each_init(Values::default, |values, (o, xb)| {
        forward(plan, params, xb, xb.len() / inputs, None, values, side_by_side);
        o.copy_from_slice(values.logits(plan));
    });
    out
}

#[cfg(test)]
#[path = "fused_tests.rs"]
mod tests;
