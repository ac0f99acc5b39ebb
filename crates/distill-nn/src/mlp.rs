//! A multi-layer perceptron with sizes chosen at run time.

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::Dev;
use distill_spec::{Activation, ModelSpec};

/// Layer widths of an MLP: input, hidden..., output.
#[derive(Debug, Clone, PartialEq)]
pub struct MlpShape {
    pub widths: Vec<usize>,
    pub activation: Activation,
    pub dropout: f32,
}

impl MlpShape {
    pub fn from_spec(spec: &ModelSpec, inputs: usize, classes: usize) -> Self {
        let mut widths = vec![inputs];
        widths.extend(&spec.hidden);
        widths.push(classes);
        Self { widths, activation: spec.activation, dropout: spec.dropout as f32 }
    }

    /// Weights plus biases.
    pub fn param_count(&self) -> usize {
        self.widths.windows(2).map(|w| w[0] * w[1] + w[1]).sum()
    }

    pub fn inputs(&self) -> usize {
        self.widths[0]
    }

    pub fn classes(&self) -> usize {
        *self.widths.last().unwrap_or(&0)
    }
}

/// One dense layer: `x · w + b`, `w` stored as (inputs, outputs).
pub(crate) struct Dense {
    pub w: Tensor<(usize, usize), f32, Dev>,
    pub b: Tensor<(usize,), f32, Dev>,
}

pub struct Mlp {
    pub shape: MlpShape,
    pub(crate) layers: Vec<Dense>,
    pub(crate) dev: Dev,
}

impl Mlp {
    /// PyTorch's default initialisation: weights and biases uniform in ±1/sqrt(fan_in), seeded.
    pub fn new(shape: MlpShape, seed: u64) -> Self {
        let dev = Dev::seed_from_u64(seed);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let layers = shape
            .widths
            .windows(2)
            .map(|w| {
                let (fan_in, fan_out) = (w[0], w[1]);
                let bound = 1.0 / (fan_in as f32).sqrt();
                let mut uniform = |n: usize| (0..n).map(|_| rng.gen_range(-bound..bound)).collect::<Vec<f32>>();
                Dense {
                    w: dev.tensor_from_vec(uniform(fan_in * fan_out), (fan_in, fan_out)),
                    b: dev.tensor_from_vec(uniform(fan_out), (fan_out,)),
                }
            })
            .collect();
        Self { shape, layers, dev }
    }

    pub fn param_count(&self) -> usize {
        self.shape.param_count()
    }

    /// Logits for a batch. `dropout_masks` (one per hidden layer, already scaled by 1/(1-p))
    /// are applied in training; pass `None` to evaluate.
    pub(crate) fn forward<T: Tape<f32, Dev>>(
        &self,
        x: Tensor<(usize, usize), f32, Dev, T>,
        dropout_masks: Option<&[Tensor<(usize, usize), f32, Dev>]>,
    ) -> Tensor<(usize, usize), f32, Dev, T> {
        let last = self.layers.len() - 1;
        let mut h = x;
        for (i, layer) in self.layers.iter().enumerate() {
            let rows = h.shape().0;
            let z = h.matmul(layer.w.clone());
            let out = layer.b.shape().0;
            h = z + layer.b.clone().broadcast_like::<_, Axis<0>>(&(rows, out));
            if i < last {
                h = match self.shape.activation {
                    Activation::Relu => h.relu(),
                    Activation::Tanh => h.tanh(),
                };
                if let Some(masks) = dropout_masks {
                    h = h * masks[i].clone();
                }
            }
        }
        h
    }

    /// Parameters in a fixed order: layer 0 weight, layer 0 bias, layer 1 weight, ...
    pub(crate) fn params_mut(&mut self) -> Vec<ParamMut<'_>> {
        self.layers
            .iter_mut()
            .flat_map(|l| [ParamMut::Matrix(&mut l.w), ParamMut::Vector(&mut l.b)])
            .collect()
    }
}

pub(crate) enum ParamMut<'a> {
    Matrix(&'a mut Tensor<(usize, usize), f32, Dev>),
    Vector(&'a mut Tensor<(usize,), f32, Dev>),
}
