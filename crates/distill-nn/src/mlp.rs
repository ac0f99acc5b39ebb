//! Networks with sizes chosen at run time: a list of layers (dense, activation, dropout, layer
//! norm, residual blocks, and for image-shaped inputs conv and pool). An MLP is the special case
//! `dense, activation[, dropout]` repeated.

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::conv::{Conv, Geometry};
use crate::features::Features;
use crate::gemm::InputGrad;
use crate::pool::Pool;
use crate::Dev;
use distill_spec::{Activation, ConvSpec, ImageSpec, LayerSpec, ModelSpec, Norm, PoolSpec};

/// A runtime-shaped matrix without a tape (parameters, dropout masks).
pub(crate) type Matrix = Tensor<(usize, usize), f32, Dev>;

/// Epsilon of layer normalisation (PyTorch's default).
pub(crate) const LAYER_NORM_EPS: f64 = 1e-5;

/// One layer of a network the host builds; the vocabulary plugin architectures use, plus layer
/// normalisation.
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    /// Affine layer `x W + b` with this many outputs.
    Dense(usize),
    /// Element-wise nonlinearity.
    Activation(Activation),
    /// Dropout with this drop probability in [0, 1) (training only; 0 is the identity).
    Dropout(f32),
    /// Layer normalisation over the features, with a learnable scale (init 1) and shift (init 0).
    LayerNorm,
    /// `x + f(x)`, `f` being the inner layers; they must keep the width.
    Residual(Vec<Layer>),
    /// 2-D convolution of an image-shaped input (im2col + matrix product).
    Conv(ConvSpec),
    /// Max or average pooling of an image-shaped input.
    Pool(PoolSpec),
}

impl Layer {
    /// A recipe's layer.
    pub fn from_spec(spec: &LayerSpec) -> Layer {
        match spec {
            LayerSpec::Dense(units) => Layer::Dense(*units),
            LayerSpec::Activation(a) => Layer::Activation(*a),
            LayerSpec::Dropout(p) => Layer::Dropout(*p as f32),
            LayerSpec::Norm(Norm::Layer) => Layer::LayerNorm,
            LayerSpec::Residual(inner) => Layer::Residual(inner.iter().map(Layer::from_spec).collect()),
            LayerSpec::Conv(c) => Layer::Conv(*c),
            LayerSpec::Pool(p) => Layer::Pool(*p),
        }
    }
}

/// The layers of a network, from its input width to its class logits.
#[derive(Debug, Clone, PartialEq)]
pub struct MlpShape {
    inputs: usize,
    layers: Vec<Layer>,
    /// The inputs as an image (conv and pool layers need it).
    image: Option<ImageSpec>,
}

impl MlpShape {
    /// The network a recipe's `model:` describes, with `classes` outputs. Expects a spec that
    /// passed validation; otherwise [`MlpShape::check`] reports what is wrong (and `train` refuses).
    pub fn from_spec(spec: &ModelSpec, inputs: usize, classes: usize) -> Self {
        let layers = match spec.layers.clone().or_else(|| spec.cnn_layers()) {
            Some(list) => list.iter().map(Layer::from_spec).chain([Layer::Dense(classes)]).collect(),
            None => return Self::mlp(inputs, &spec.hidden, classes, spec.activation, spec.dropout as f32, spec.norm.is_some()),
        };
        Self { inputs, layers, image: None }
    }

    /// Like [`MlpShape::from_spec`], but an invalid network is an error.
    pub fn try_from_spec(spec: &ModelSpec, inputs: usize, classes: usize) -> Result<Self, String> {
        let shape = Self::from_spec(spec, inputs, classes);
        shape.check()?;
        Ok(shape)
    }

    /// An MLP: `dense(h), [layer norm], activation, [dropout]` per hidden width, then `dense(classes)`.
    pub fn mlp(inputs: usize, hidden: &[usize], classes: usize, activation: Activation, dropout: f32, layer_norm: bool) -> Self {
        let mut layers = Vec::new();
        for &h in hidden {
            layers.push(Layer::Dense(h));
            if layer_norm {
                layers.push(Layer::LayerNorm);
            }
            layers.push(Layer::Activation(activation));
            if dropout > 0.0 {
                layers.push(Layer::Dropout(dropout));
            }
        }
        layers.push(Layer::Dense(classes));
        Self { inputs, layers, image: None }
    }

    /// A network from a full layer list (the last dense layer gives the class logits), e.g. one a
    /// plugin describes. Checks every width.
    pub fn from_layers(inputs: usize, layers: Vec<Layer>) -> Result<Self, String> {
        let shape = Self { inputs, layers, image: None };
        shape.check()?;
        Ok(shape)
    }

    /// The same network reading its inputs as `image` (the data's `data.image`), which conv and
    /// pool layers need; dense layers ignore it.
    pub fn with_image(mut self, image: Option<ImageSpec>) -> Self {
        self.image = image;
        self
    }

    /// Checks widths: at least one dense layer, no empty layer, residual blocks keep the width
    /// (and the feature map), dropout probabilities in [0, 1), conv and pool layers on an image
    /// they fit.
    pub fn check(&self) -> Result<(), String> {
        fn walk(layers: &[Layer], mut at: Features, dense: &mut usize) -> Result<Features, String> {
            for layer in layers {
                match layer {
                    Layer::Dense(0) => return Err("a dense layer needs at least one unit".into()),
                    Layer::Dense(_) => *dense += 1,
                    Layer::Dropout(p) if !(0.0..1.0).contains(p) => return Err(format!("dropout must be in [0, 1), got {p}")),
                    Layer::Residual(inner) => {
                        let out = walk(inner, at, dense)?;
                        if out.width != at.width {
                            return Err(format!("a residual block must keep the width: it takes {} features and returns {}", at.width, out.width));
                        }
                        if out.map != at.map {
                            return Err("a residual block must keep the feature map".into());
                        }
                    }
                    Layer::Activation(_) | Layer::Dropout(_) | Layer::LayerNorm | Layer::Conv(_) | Layer::Pool(_) => {}
                }
                at = at.after(layer)?;
            }
            Ok(at)
        }
        if self.inputs == 0 {
            return Err("the network needs at least one input".into());
        }
        let mut dense = 0;
        walk(&self.layers, Features { width: self.inputs, map: self.image }, &mut dense)?;
        if dense == 0 {
            return Err("the network needs at least one dense layer".into());
        }
        Ok(())
    }

    /// The layers, input to output.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Weights, biases, and layer-norm scales and shifts.
    pub fn param_count(&self) -> usize {
        fn walk(layers: &[Layer], at: &mut Features) -> usize {
            let mut n = 0;
            for layer in layers {
                match layer {
                    Layer::Dense(units) => n += at.width * units + units,
                    Layer::LayerNorm => n += 2 * at.width,
                    Layer::Conv(c) => n += c.params(at.map.map_or(0, |m| m.channels)),
                    Layer::Residual(inner) => n += walk(inner, &mut at.clone()),
                    Layer::Activation(_) | Layer::Dropout(_) | Layer::Pool(_) => {}
                }
                *at = at.after(layer).unwrap_or(*at);
            }
            n
        }
        walk(&self.layers, &mut Features { width: self.inputs, map: self.image })
    }

    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// The inputs as an image, when conv or pool layers read them.
    pub fn image(&self) -> Option<ImageSpec> {
        self.image
    }

    /// The output width (the width after the last layer that changes it).
    pub fn classes(&self) -> usize {
        fn walk(layers: &[Layer], width: usize) -> usize {
            layers.iter().fold(width, |w, l| match l {
                Layer::Dense(units) => *units,
                // A valid residual keeps the width.
                _ => w,
            })
        }
        walk(&self.layers, self.inputs)
    }
}

/// A dense layer's weight (row-major, inputs × outputs) and bias, borrowed where possible.
pub(crate) type DenseWeights<'a> = (std::borrow::Cow<'a, [f32]>, std::borrow::Cow<'a, [f32]>);

/// One dense layer: `x · w + b`, `w` stored as (inputs, outputs).
pub(crate) struct Dense {
    pub w: Tensor<(usize, usize), f32, Dev>,
    pub b: Tensor<(usize,), f32, Dev>,
}

/// A built layer with its parameters.
pub(crate) enum Node {
    Dense(Dense),
    Norm { gamma: Tensor<(usize,), f32, Dev>, beta: Tensor<(usize,), f32, Dev> },
    Activation(Activation),
    Dropout { p: f32, width: usize },
    Residual(Vec<Node>),
    Conv(Conv),
    Pool(Pool),
}

/// A network (the name is historical: any layer list, of which an MLP is one).
pub struct Mlp {
    pub shape: MlpShape,
    pub(crate) nodes: Vec<Node>,
    pub(crate) dev: Dev,
}

impl Mlp {
    /// PyTorch's default initialisation: dense weights and biases uniform in ±1/sqrt(fan_in),
    /// drawn from one seeded stream layer by layer (weights, then biases) in order; layer-norm
    /// scales 1 and shifts 0 (no draws); conv layers like dense ones (fan_in = kernel² ·
    /// in_channels), weights in their stored order.
    pub fn new(shape: MlpShape, seed: u64) -> Self {
        let dev = Dev::seed_from_u64(seed);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        fn build(layers: &[Layer], width: &mut usize, map: &mut Option<ImageSpec>, dev: &Dev, rng: &mut ChaCha8Rng) -> Vec<Node> {
            layers
                .iter()
                .map(|layer| {
                    let input = Features { width: *width, map: *map };
                    *map = input.after(layer).map_or(*map, |f| f.map);
                    match layer {
                        Layer::Dense(units) => {
                            let (fan_in, fan_out) = (*width, *units);
                            *width = fan_out;
                            let bound = 1.0 / (fan_in as f32).sqrt();
                            let mut uniform = |n: usize| (0..n).map(|_| rng.gen_range(-bound..bound)).collect::<Vec<f32>>();
                            Node::Dense(Dense {
                                w: dev.tensor_from_vec(uniform(fan_in * fan_out), (fan_in, fan_out)),
                                b: dev.tensor_from_vec(uniform(fan_out), (fan_out,)),
                            })
                        }
                        Layer::LayerNorm => {
                            Node::Norm { gamma: dev.tensor_from_vec(vec![1.0; *width], (*width,)), beta: dev.tensor_from_vec(vec![0.0; *width], (*width,)) }
                        }
                        Layer::Activation(a) => Node::Activation(*a),
                        Layer::Dropout(p) => Node::Dropout { p: *p, width: *width },
                        Layer::Residual(inner) => {
                            // The block's own width flows through it; a valid block ends where it began.
                            let (mut w, mut m) = (*width, input.map);
                            Node::Residual(build(inner, &mut w, &mut m, dev, rng))
                        }
                        Layer::Conv(spec) => match input.image("").and_then(|i| Ok((i, spec.output(i)?))) {
                            Ok((input, output)) => {
                                *width = output.height * output.width * output.channels;
                                Node::Conv(Conv::new(Geometry { spec: *spec, input, output }, dev, rng))
                            }
                            // A shape `check` rejects (and `train` refuses) still builds: the identity.
                            Err(_) => Node::Dropout { p: 0.0, width: *width },
                        },
                        Layer::Pool(spec) => match input.image("").and_then(|i| Ok((i, spec.output(i)?))) {
                            Ok((input, output)) => {
                                *width = output.height * output.width * output.channels;
                                Node::Pool(Pool { spec: *spec, input, output })
                            }
                            Err(_) => Node::Dropout { p: 0.0, width: *width },
                        },
                    }
                })
                .collect()
        }
        let nodes = build(&shape.layers, &mut shape.inputs.clone(), &mut shape.image.clone(), &dev, &mut rng);
        Self { shape, nodes, dev }
    }

    pub fn param_count(&self) -> usize {
        self.shape.param_count()
    }

    /// Logits for a batch. `dropout_masks` (one per dropout layer with p > 0, in
    /// [`Mlp::dropout_layers`] order, already scaled by 1/(1-p)) are applied in training; pass
    /// `None` to evaluate.
    pub(crate) fn forward<T: Tape<f32, Dev>>(
        &self,
        x: Tensor<(usize, usize), f32, Dev, T>,
        dropout_masks: Option<&[Matrix]>,
    ) -> Tensor<(usize, usize), f32, Dev, T> {
        let mut next_mask = 0;
        forward_nodes(&self.nodes, x, dropout_masks, &mut next_mask, InputGrad::Skip)
    }

    /// The node index of hidden layer `layer`'s output: its activation (0-based, top-level
    /// activations counted), where a feature hint reads or joins the network.
    pub fn hidden_output_index(&self, layer: usize) -> Option<usize> {
        self.nodes.iter().enumerate().filter(|(_, n)| matches!(n, Node::Activation(_))).nth(layer).map(|(i, _)| i)
    }

    /// The output of hidden layer `layer` for every row of `x` (evaluation mode), row-major, and
    /// its width; `None` when the network has no such layer.
    pub fn hidden_features(&self, x: &[f32], layer: usize) -> Option<(Vec<f32>, usize)> {
        let pos = self.hidden_output_index(layer)?;
        let inputs = self.shape.inputs();
        let mut width = 0;
        let mut out = Vec::new();
        for block in x.chunks(512 * inputs.max(1)) {
            let t = self.dev.tensor_from_vec(block.to_vec(), (block.len() / inputs, inputs));
            let h = forward_nodes(&self.nodes[..=pos], t, None, &mut 0, InputGrad::Skip);
            width = h.shape().1;
            out.extend(h.as_vec());
        }
        Some((out, width))
    }

    /// [`Mlp::forward`] with `op` (an identity with an extra gradient: a feature hint) on the
    /// output of the top-level node `pos`.
    pub(crate) fn forward_hinted<T: Tape<f32, Dev>>(
        &self,
        x: Tensor<(usize, usize), f32, Dev, T>,
        dropout_masks: Option<&[Matrix]>,
        pos: usize,
        op: crate::hint::HintOp,
    ) -> Tensor<(usize, usize), f32, Dev, T> {
        let mut next_mask = 0;
        let h = forward_nodes(&self.nodes[..=pos], x, dropout_masks, &mut next_mask, InputGrad::Skip);
        let shape = *h.shape();
        let h = crate::tape_op::apply(op, h, shape);
        forward_nodes(&self.nodes[pos + 1..], h, dropout_masks, &mut next_mask, InputGrad::Needed)
    }

    /// Each top-level dense layer's weight (row-major, inputs × outputs) and bias, borrowed where
    /// they are stored that way.
    pub(crate) fn dense_weights(&self) -> Vec<DenseWeights<'_>> {
        self.nodes
            .iter()
            .filter_map(|n| match n {
                Node::Dense(d) => Some((crate::gemm::row_major(&d.w), std::borrow::Cow::Owned(d.b.as_vec()))),
                _ => None,
            })
            .collect()
    }

    /// (probability, width) of each dropout layer that drops anything, in forward order: the
    /// masks [`Mlp::forward`] expects.
    pub(crate) fn dropout_layers(&self) -> Vec<(f32, usize)> {
        fn walk(nodes: &[Node], out: &mut Vec<(f32, usize)>) {
            for node in nodes {
                match node {
                    Node::Dropout { p, width } if *p > 0.0 => out.push((*p, *width)),
                    Node::Residual(inner) => walk(inner, out),
                    _ => {}
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.nodes, &mut out);
        out
    }

    /// Parameters in a fixed order: depth first; a dense layer's weight then bias, a norm's scale
    /// then shift.
    pub(crate) fn params_mut(&mut self) -> Vec<ParamMut<'_>> {
        fn walk<'a>(nodes: &'a mut [Node], out: &mut Vec<ParamMut<'a>>) {
            for node in nodes {
                match node {
                    Node::Dense(d) => {
                        out.push(ParamMut::Matrix(&mut d.w));
                        out.push(ParamMut::Vector(&mut d.b));
                    }
                    Node::Norm { gamma, beta } => {
                        out.push(ParamMut::Vector(gamma));
                        out.push(ParamMut::Vector(beta));
                    }
                    Node::Conv(c) => {
                        out.push(ParamMut::Matrix(&mut c.w));
                        out.push(ParamMut::Vector(&mut c.b));
                    }
                    Node::Residual(inner) => walk(inner, out),
                    Node::Activation(_) | Node::Dropout { .. } | Node::Pool(_) => {}
                }
            }
        }
        let mut out = Vec::new();
        walk(&mut self.nodes, &mut out);
        out
    }

    /// Every parameter's values, in [`Mlp::params_mut`] order (weights stored (inputs, outputs)).
    pub(crate) fn param_values(&mut self) -> Vec<Vec<f32>> {
        self.params_mut().iter().map(ParamMut::values).collect()
    }

    /// Sets every parameter from [`Mlp::param_values`]-shaped buffers; false if they do not fit.
    pub(crate) fn set_param_values(&mut self, values: &[Vec<f32>]) -> bool {
        let dev = self.dev.clone();
        let mut params = self.params_mut();
        if params.len() != values.len() || params.iter().zip(values).any(|(p, v)| p.len() != v.len()) {
            return false;
        }
        for (p, v) in params.iter_mut().zip(values) {
            p.set(&dev, v.clone());
        }
        true
    }
}

/// `input_grad`: whether `x`'s gradient is wanted ([`InputGrad::Skip`] for the data batch; a
/// first dense layer then skips that product).
fn forward_nodes<T: Tape<f32, Dev>>(
    nodes: &[Node],
    x: Tensor<(usize, usize), f32, Dev, T>,
    masks: Option<&[Matrix]>,
    next_mask: &mut usize,
    mut input_grad: InputGrad,
) -> Tensor<(usize, usize), f32, Dev, T> {
    let mut h = x;
    for node in nodes {
        let rows = h.shape().0;
        h = match node {
            Node::Dense(layer) => crate::gemm::dense(h, &layer.w, &layer.b, input_grad),
            Node::Norm { gamma, beta } => {
                let shape = (rows, gamma.shape().0);
                h.normalize::<Axis<1>>(LAYER_NORM_EPS) * gamma.clone().broadcast_like::<_, Axis<0>>(&shape) + beta.clone().broadcast_like::<_, Axis<0>>(&shape)
            }
            Node::Activation(Activation::Relu) => h.relu(),
            Node::Activation(Activation::Tanh) => h.tanh(),
            // The tanh form: dfdx 0.13's erf-based `accurate_gelu` has a wrong gradient (its
            // Gaussian term is √2 too large; caught by the finite-difference test).
            Node::Activation(Activation::Gelu) => h.fast_gelu(),
            Node::Dropout { p, .. } if *p > 0.0 => match masks.and_then(|m| m.get(*next_mask)) {
                Some(mask) => {
                    *next_mask += 1;
                    h * mask.clone()
                }
                None => h,
            },
            Node::Dropout { .. } => h,
            Node::Conv(conv) => conv.forward(h),
            Node::Pool(pool) => pool.forward(h),
            Node::Residual(inner) => {
                // As dfdx's residual: the tape runs through the block, the skip joins untaped.
                let (skip, tape) = h.split_tape();
                let fx = forward_nodes(inner, skip.clone().put_tape(tape), masks, next_mask, InputGrad::Needed);
                if fx.shape() == skip.shape() {
                    fx + skip
                } else {
                    // Unreachable for checked shapes (`train` refuses others); never panic here.
                    fx
                }
            }
        };
        // Only the first layer sees the data; every later input carries gradient.
        input_grad = InputGrad::Needed;
    }
    h
}

pub(crate) enum ParamMut<'a> {
    Matrix(&'a mut Tensor<(usize, usize), f32, Dev>),
    Vector(&'a mut Tensor<(usize,), f32, Dev>),
}

impl ParamMut<'_> {
    pub(crate) fn values(&self) -> Vec<f32> {
        match self {
            ParamMut::Matrix(t) => t.as_vec(),
            ParamMut::Vector(t) => t.as_vec(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            ParamMut::Matrix(t) => t.shape().num_elements(),
            ParamMut::Vector(t) => t.shape().num_elements(),
        }
    }

    /// Replaces the values (same length) with a fresh tensor.
    pub(crate) fn set(&mut self, dev: &Dev, values: Vec<f32>) {
        match self {
            ParamMut::Matrix(t) => **t = dev.tensor_from_vec(values, *t.shape()),
            ParamMut::Vector(t) => **t = dev.tensor_from_vec(values, *t.shape()),
        }
    }
}
