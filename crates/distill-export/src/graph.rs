//! A small ONNX graph builder over tract-onnx's prost types: nodes get unique output names,
//! constants become initializers, and the whole model is encoded with `prost::Message`.

use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{dimension, Dimension};
use tract_onnx::pb::type_proto::{self, Tensor as TensorType};
use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

/// The ONNX opset the graphs are written for (`LayerNormalization` needs 17).
pub const OPSET: i64 = 17;
/// IR version 8 goes with opset 17 (onnx 1.12+, onnxruntime 1.12+).
const IR_VERSION: i64 = 8;

/// An attribute value of a node.
pub(crate) enum Attr {
    Int(i64),
    Float(f32),
    Ints(Vec<i64>),
}

/// Nodes and initializers of one graph under construction.
#[derive(Default)]
pub(crate) struct Graph {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    next: usize,
}

impl Graph {
    fn fresh(&mut self, hint: &str) -> String {
        self.next += 1;
        format!("{hint}_{}", self.next)
    }

    /// Adds `op` on `inputs` with one output named after `hint`; returns the output's name.
    pub fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>, hint: &str) -> String {
        let out = self.fresh(hint);
        self.node_into(op, inputs, attrs, &out);
        out
    }

    /// Adds `op` writing the tensor `out` (a graph output's name).
    pub fn node_into(&mut self, op: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>, out: &str) {
        let attribute = attrs.into_iter().map(|(name, a)| attribute(name, a)).collect();
        let name = format!("{op}_{}", self.nodes.len());
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.to_string()],
            name,
            op_type: op.to_string(),
            attribute,
            ..Default::default()
        });
    }

    /// A float initializer.
    pub fn f32s(&mut self, hint: &str, dims: &[usize], values: &[f32]) -> String {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(hint, dims, DataType::Float, raw)
    }

    /// An int64 initializer (shapes, axes).
    pub fn i64s(&mut self, hint: &str, values: &[i64]) -> String {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(hint, &[values.len()], DataType::Int64, raw)
    }

    /// An int8 initializer (quantized weights).
    pub fn i8s(&mut self, hint: &str, dims: &[usize], values: &[i8]) -> String {
        let raw = values.iter().map(|v| *v as u8).collect();
        self.initializer(hint, dims, DataType::Int8, raw)
    }

    /// A uint8 scalar (an activation's zero point).
    pub fn u8_scalar(&mut self, hint: &str, value: u8) -> String {
        self.initializer(hint, &[], DataType::Uint8, vec![value])
    }

    fn initializer(&mut self, hint: &str, dims: &[usize], data_type: DataType, raw_data: Vec<u8>) -> String {
        let name = self.fresh(hint);
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: data_type as i32,
            name: name.clone(),
            raw_data,
            ..Default::default()
        });
        name
    }

    /// The graph with a float input `(batch, width)` and float outputs `(batch, widths[i])`.
    pub fn finish(self, input: (&str, usize), outputs: &[(&str, Option<usize>)]) -> GraphProto {
        GraphProto {
            node: self.nodes,
            name: "distill".into(),
            initializer: self.initializers,
            input: vec![value_info(input.0, Some(input.1))],
            output: outputs.iter().map(|(name, width)| value_info(name, *width)).collect(),
            ..Default::default()
        }
    }
}

/// A float `(batch, width)` tensor; the width is left open when unknown.
fn value_info(name: &str, width: Option<usize>) -> ValueInfoProto {
    let dim = |value| Dimension { value: Some(value), ..Default::default() };
    let mut dims = vec![dim(dimension::Value::DimParam("batch".into()))];
    dims.extend(width.map(|w| dim(dimension::Value::DimValue(w as i64))));
    let shape = width.map(|_| TensorShapeProto { dim: dims });
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto { value: Some(type_proto::Value::TensorType(TensorType { elem_type: DataType::Float as i32, shape })), ..Default::default() }),
        ..Default::default()
    }
}

fn attribute(name: &str, value: Attr) -> AttributeProto {
    let mut a = AttributeProto { name: name.to_string(), ..Default::default() };
    match value {
        Attr::Int(i) => {
            a.i = i;
            a.r#type = AttributeType::Int as i32;
        }
        Attr::Float(f) => {
            a.f = f;
            a.r#type = AttributeType::Float as i32;
        }
        Attr::Ints(v) => {
            a.ints = v;
            a.r#type = AttributeType::Ints as i32;
        }
    }
    a
}

/// A complete model: the graph, opset 17 of the default domain, and `metadata` props.
pub(crate) fn model(graph: GraphProto, metadata: &[(String, String)], version: &str) -> ModelProto {
    ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET }],
        producer_name: "distill".into(),
        producer_version: version.to_string(),
        graph: Some(graph),
        metadata_props: metadata.iter().map(|(key, value)| StringStringEntryProto { key: key.clone(), value: value.clone() }).collect(),
        ..Default::default()
    }
}
