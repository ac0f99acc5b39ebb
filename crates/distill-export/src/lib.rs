//! ONNX export of distill's networks, int8 post-training quantization, and the exported models
//! run back in-process with tract-onnx.
//!
//! A model is written from what a run keeps (the layer list, its safetensors weights and the
//! feature scaling fitted on the training split) through tract-onnx's prost-generated ONNX
//! types, opset 17. The graph reads raw feature values `features: (batch, inputs)` in the
//! recipe's column order, scales them (`Sub`, `Mul`: the same f32 operations distill does), runs
//! the layers (dropout removed; conv and pool in NCHW with the channels-last rows distill trains
//! on converted where needed, see `lower.rs`), and writes `logits` and `probabilities`.
//!
//! `onnx_int8` is the same graph in QDQ form: every dense and conv weight int8, symmetric, one
//! scale per output channel; every dense and conv input quantized to uint8 with a range measured
//! by running the f32 graph (in tract) over calibration rows.

mod graph;
mod lower;
pub mod meta;
pub mod quant;
mod runtime;
mod weights;

use distill_nn::Layer;
use distill_spec::ImageSpec;
use prost::Message;
use tract_onnx::pb::ModelProto;

pub use distill_spec::ExportFormat;
pub use graph::OPSET;
pub use quant::ActQuant;
pub use runtime::{OnnxRunner, BLOCK_ROWS};

use graph::{Attr, Graph};
use lower::{Lowering, Value};

/// The graph's input and outputs.
pub const INPUT: &str = "features";
pub const LOGITS: &str = "logits";
pub const PROBABILITIES: &str = "probabilities";

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the weights do not fit the network: {0}")]
    Weights(String),
    #[error("the network cannot be exported: {0}")]
    Shape(String),
    #[error("running the ONNX model (tract): {0}")]
    Runtime(String),
    #[error("int8 calibration needs at least one training row")]
    NoCalibration,
}

/// A trained network as a run keeps it.
pub struct Network<'a> {
    pub layers: &'a [Layer],
    pub inputs: usize,
    /// The inputs as an image (conv and pool layers read it), channels last.
    pub image: Option<ImageSpec>,
    /// The safetensors file distill-nn wrote.
    pub weights: &'a [u8],
}

/// The feature scaling: `(x - offset) * factor` per feature.
#[derive(Debug, Clone, Copy)]
pub struct Scaling<'a> {
    pub offset: &'a [f32],
    pub factor: &'a [f32],
}

/// An exported model's bytes and what its quantization measured.
pub struct Exported {
    pub bytes: Vec<u8>,
    /// The calibrated activations (int8 only), in graph order.
    pub activations: Vec<ActQuant>,
}

/// Writes `net` as ONNX in `format`. `props` become the model's metadata; `calibration` is
/// `(rows, inputs)` already scaled training rows, read only for `onnx_int8`.
pub fn export(net: &Network, scaling: Option<Scaling>, props: &[(String, String)], format: ExportFormat, calibration: &[f32]) -> Result<Exported, ExportError> {
    let activations = match format {
        ExportFormat::Onnx => Vec::new(),
        ExportFormat::OnnxInt8 => calibrate(net, calibration)?,
    };
    let acts = (format == ExportFormat::OnnxInt8).then_some(activations.as_slice());
    let (model, _) = build(net, scaling, acts, props, false)?;
    Ok(Exported { bytes: model.encode_to_vec(), activations })
}

/// Runs the f32 graph without its scaling (the rows are scaled) with every quantization point
/// as an extra output, and turns each point's range into its uint8 quantization.
fn calibrate(net: &Network, rows: &[f32]) -> Result<Vec<ActQuant>, ExportError> {
    if rows.len() < net.inputs.max(1) {
        return Err(ExportError::NoCalibration);
    }
    let (model, points) = build(net, None, None, &[], true)?;
    let outputs = OnnxRunner::from_proto(&model)?.run(&rows[..rows.len() / net.inputs * net.inputs])?;
    // The first two outputs are the logits and probabilities.
    let ranges = quant::ranges(&outputs[2..]);
    debug_assert_eq!(ranges.len(), points);
    Ok(ranges.into_iter().map(|(lo, hi)| ActQuant::from_range(lo, hi)).collect())
}

/// The model and its number of quantization points; `expose_points` adds each point as an output.
fn build(
    net: &Network,
    scaling: Option<Scaling>,
    acts: Option<&[ActQuant]>,
    props: &[(String, String)],
    expose_points: bool,
) -> Result<(ModelProto, usize), ExportError> {
    let mut g = Graph::default();
    let mut x = INPUT.to_string();
    if let Some(s) = scaling {
        if s.offset.len() != net.inputs || s.factor.len() != net.inputs {
            return Err(ExportError::Shape(format!("the scaling has {} values for {} features", s.offset.len(), net.inputs)));
        }
        let (offset, factor) = (g.f32s("scale_offset", &[net.inputs], s.offset), g.f32s("scale_factor", &[net.inputs], s.factor));
        let shifted = g.node("Sub", &[&x, &offset], vec![], "shifted");
        x = g.node("Mul", &[&shifted, &factor], vec![], "scaled");
    }
    let (out, points) = {
        let mut lower = Lowering { graph: &mut g, weights: weights::Weights::new(net.weights)?, points: Vec::new(), acts };
        let out = lower.layers(net.layers, Value { name: x, width: net.inputs, map: net.image, nchw: false })?;
        (lower.flat(out), lower.points)
    };
    g.node_into("Identity", &[&out.name], vec![], LOGITS);
    g.node_into("Softmax", &[LOGITS], vec![("axis", Attr::Int(-1))], PROBABILITIES);
    // Calibration reads each point through an Identity of its own (a point may be the input).
    let exposed: Vec<String> = if expose_points { points.iter().map(|p| g.node("Identity", &[p], vec![], "calibration")).collect() } else { Vec::new() };
    let mut outputs: Vec<(&str, Option<usize>)> = vec![(LOGITS, Some(out.width)), (PROBABILITIES, Some(out.width))];
    outputs.extend(exposed.iter().map(|p| (p.as_str(), None)));
    let graph = g.finish((INPUT, net.inputs), &outputs);
    Ok((graph::model(graph, props, env!("CARGO_PKG_VERSION")), points.len()))
}

#[cfg(test)]
mod tests;
