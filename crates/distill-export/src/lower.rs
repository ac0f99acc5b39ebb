//! distill-nn's layer list as ONNX nodes. Activations in distill are `(batch, h · w · c)`
//! matrices, channels last; ONNX's Conv and pooling read NCHW. So a value carries its layout and
//! is converted only where a layer needs the other one: to NCHW (Reshape + Transpose) before a
//! conv or pool, back to flat channels-last rows before a dense layer, a layer norm or the
//! logits, which keeps every dense weight in the order distill trained it.

use distill_nn::Layer;
use distill_spec::{Activation, ImageSpec, PoolKind};

use crate::graph::{Attr, Graph};
use crate::quant::{self, ActQuant};
use crate::weights::{Param, Weights};
use crate::ExportError;

/// distill-nn's layer norm epsilon (dfdx `normalize`).
const LAYER_NORM_EPS: f32 = 1e-5;

/// A tensor of the graph and its shape as distill sees it.
#[derive(Clone)]
pub(crate) struct Value {
    pub name: String,
    pub width: usize,
    /// The feature map these features form (channels last in distill's terms).
    pub map: Option<ImageSpec>,
    /// Whether the tensor is laid out `(batch, c, h, w)` rather than `(batch, width)`.
    pub nchw: bool,
}

/// Lowers layers into `graph`, reading parameters from `weights`.
pub(crate) struct Lowering<'g, 'w> {
    pub graph: &'g mut Graph,
    pub weights: Weights<'w>,
    /// The inputs of every dense and conv layer, in order: where activations are quantized.
    pub points: Vec<String>,
    /// With int8: each point's calibrated quantization (weights then per output channel).
    pub acts: Option<&'g [ActQuant]>,
}

impl Lowering<'_, '_> {
    pub fn layers(&mut self, layers: &[Layer], mut x: Value) -> Result<Value, ExportError> {
        for layer in layers {
            x = self.layer(layer, x)?;
        }
        Ok(x)
    }

    fn layer(&mut self, layer: &Layer, x: Value) -> Result<Value, ExportError> {
        Ok(match layer {
            Layer::Dense(units) => self.dense(x, *units)?,
            Layer::Activation(a) => Value { name: self.activation(*a, &x.name), ..x },
            // Evaluation mode: dropout is the identity.
            Layer::Dropout(_) => x,
            Layer::LayerNorm => {
                let x = self.flat(x);
                let (gamma, beta) = self.weights.norm(x.width)?;
                let (g, b) = (self.graph.f32s("norm_scale", &gamma.dims, &gamma.values), self.graph.f32s("norm_shift", &beta.dims, &beta.values));
                let attrs = vec![("axis", Attr::Int(-1)), ("epsilon", Attr::Float(LAYER_NORM_EPS))];
                Value { name: self.graph.node("LayerNormalization", &[&x.name, &g, &b], attrs, "norm"), ..x }
            }
            Layer::Residual(inner) => {
                let y = self.layers(inner, x.clone())?;
                let y = if x.nchw { self.nchw(y)? } else { self.flat(y) };
                Value { name: self.graph.node("Add", &[&x.name, &y.name], vec![], "residual"), ..x }
            }
            Layer::Conv(spec) => {
                let (x, input) = self.image_input(x)?;
                let output = spec.output(input).map_err(ExportError::Shape)?;
                let (w, b) = self.weights.conv(spec.filters, input.channels, spec.kernel)?;
                let (s, p, k) = (spec.stride as i64, spec.padding as i64, spec.kernel as i64);
                let attrs = vec![("kernel_shape", Attr::Ints(vec![k, k])), ("strides", Attr::Ints(vec![s, s])), ("pads", Attr::Ints(vec![p, p, p, p]))];
                let (xq, w, b) = self.quantized(&x.name, w, b);
                let name = self.graph.node("Conv", &[&xq, &w, &b], attrs, "conv");
                Value { name, width: output.height * output.width * output.channels, map: Some(output), nchw: true }
            }
            Layer::Pool(spec) => {
                let (x, input) = self.image_input(x)?;
                let output = spec.output(input).map_err(ExportError::Shape)?;
                let s = spec.size as i64;
                let op = if spec.kind == PoolKind::Max { "MaxPool" } else { "AveragePool" };
                let name = self.graph.node(op, &[&x.name], vec![("kernel_shape", Attr::Ints(vec![s, s])), ("strides", Attr::Ints(vec![s, s]))], "pool");
                Value { name, width: output.height * output.width * output.channels, map: Some(output), nchw: true }
            }
        })
    }

    fn dense(&mut self, x: Value, units: usize) -> Result<Value, ExportError> {
        let x = self.flat(x);
        let (w, b) = self.weights.dense(x.width, units)?;
        let (xq, w, b) = self.quantized(&x.name, w, b);
        let name = self.graph.node("Gemm", &[&xq, &w, &b], vec![("transB", Attr::Int(1))], "dense");
        Ok(Value { name, width: units, map: None, nchw: false })
    }

    /// The layer input, weight and bias tensors of a dense or conv layer: as they are in f32, or
    /// with int8 the input through QuantizeLinear/DequantizeLinear (its calibrated scale) and the
    /// weight stored int8, per output channel (axis 0), through DequantizeLinear. Biases stay f32.
    fn quantized(&mut self, x: &str, w: Param, b: Param) -> (String, String, String) {
        let point = self.points.len();
        self.points.push(x.to_string());
        let bias = self.graph.f32s("bias", &b.dims, &b.values);
        let Some(act) = self.acts.map(|a| a[point]) else {
            return (x.to_string(), self.graph.f32s("weight", &w.dims, &w.values), bias);
        };
        let (scale, zero) = (self.graph.f32s("act_scale", &[], &[act.scale]), self.graph.u8_scalar("act_zero", act.zero_point));
        let q = self.graph.node("QuantizeLinear", &[x, &scale, &zero], vec![], "act_q");
        let xq = self.graph.node("DequantizeLinear", &[&q, &scale, &zero], vec![], "act_dq");
        let (values, scales) = quant::per_channel(&w.values, w.dims[0]);
        let wq = self.graph.i8s("weight_q", &w.dims, &values);
        let ws = self.graph.f32s("weight_scale", &[scales.len()], &scales);
        let wz = self.graph.i8s("weight_zero", &[scales.len()], &vec![0; scales.len()]);
        let w = self.graph.node("DequantizeLinear", &[&wq, &ws, &wz], vec![("axis", Attr::Int(0))], "weight_dq");
        (xq, w, bias)
    }

    fn activation(&mut self, a: Activation, x: &str) -> String {
        match a {
            Activation::Relu => self.graph.node("Relu", &[x], vec![], "relu"),
            Activation::Tanh => self.graph.node("Tanh", &[x], vec![], "tanh"),
            Activation::Gelu => self.gelu(x),
        }
    }

    /// `0.5 x (1 + tanh(sqrt(2/π) (x + 0.044715 x³)))`, dfdx's `fast_gelu` (ONNX's own Gelu
    /// with `approximate="tanh"` needs opset 20).
    fn gelu(&mut self, x: &str) -> String {
        let g = &mut *self.graph;
        let (kappa, beta, half, one) =
            (g.f32s("c", &[], &[0.044715]), g.f32s("c", &[], &[std::f32::consts::FRAC_2_PI.sqrt()]), g.f32s("c", &[], &[0.5]), g.f32s("c", &[], &[1.0]));
        let x2 = g.node("Mul", &[x, x], vec![], "gelu");
        let x3 = g.node("Mul", &[&x2, x], vec![], "gelu");
        let k = g.node("Mul", &[&x3, &kappa], vec![], "gelu");
        let alpha = g.node("Add", &[x, &k], vec![], "gelu");
        let inner = g.node("Mul", &[&alpha, &beta], vec![], "gelu");
        let t = g.node("Tanh", &[&inner], vec![], "gelu");
        let t1 = g.node("Add", &[&t, &one], vec![], "gelu");
        let hx = g.node("Mul", &[x, &half], vec![], "gelu");
        g.node("Mul", &[&hx, &t1], vec![], "gelu")
    }

    /// `x` as `(batch, width)` rows, channels last.
    pub fn flat(&mut self, x: Value) -> Value {
        if !x.nchw {
            return x;
        }
        let t = self.graph.node("Transpose", &[&x.name], vec![("perm", Attr::Ints(vec![0, 2, 3, 1]))], "to_nhwc");
        let shape = self.graph.i64s("shape", &[0, -1]);
        Value { name: self.graph.node("Reshape", &[&t, &shape], vec![], "flatten"), nchw: false, ..x }
    }

    /// `x` as `(batch, c, h, w)`; its rows are distill's channels-last maps.
    /// `x` as `(batch, c, h, w)` and the feature map it is.
    fn image_input(&mut self, x: Value) -> Result<(Value, ImageSpec), ExportError> {
        let x = self.nchw(x)?;
        let map = x.map.ok_or_else(no_image)?;
        Ok((x, map))
    }

    fn nchw(&mut self, x: Value) -> Result<Value, ExportError> {
        if x.nchw {
            return Ok(x);
        }
        let m = x.map.ok_or_else(no_image)?;
        let shape = self.graph.i64s("shape", &[0, m.height as i64, m.width as i64, m.channels as i64]);
        let r = self.graph.node("Reshape", &[&x.name, &shape], vec![], "to_map");
        Ok(Value { name: self.graph.node("Transpose", &[&r], vec![("perm", Attr::Ints(vec![0, 3, 1, 2]))], "to_nchw"), nchw: true, ..x })
    }
}

fn no_image() -> ExportError {
    ExportError::Shape("a conv or pool layer needs image-shaped input".into())
}
