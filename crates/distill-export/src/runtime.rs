//! Exported models run in-process with tract-onnx: the evaluation of `targets.checked_on`, the
//! calibration of int8 activations, `distill predict`.

use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;

use crate::ExportError;

/// Rows per call when a model runs over many rows (bounded memory, tract's kernels stay busy).
pub const BLOCK_ROWS: usize = 256;

/// An ONNX model optimised by tract, ready to run on `(rows, inputs)` float matrices.
pub struct OnnxRunner {
    plan: Arc<TypedSimplePlan>,
    inputs: usize,
}

fn tract(e: impl std::fmt::Display) -> ExportError {
    ExportError::Runtime(e.to_string())
}

impl OnnxRunner {
    /// Reads an ONNX file's bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ExportError> {
        let proto = tract_onnx::onnx().proto_model_for_read(&mut &bytes[..]).map_err(|e| ExportError::Runtime(format!("not an ONNX model: {e}")))?;
        Self::from_proto(&proto)
    }

    pub(crate) fn from_proto(proto: &ModelProto) -> Result<Self, ExportError> {
        let inputs = input_width(proto)?;
        let model = tract_onnx::onnx().model_for_proto_model(proto).map_err(|e| tract(format!("{e:?}")))?;
        let plan = model.into_optimized().map_err(|e| tract(format!("{e:?}")))?.into_runnable().map_err(|e| tract(format!("{e:?}")))?;
        Ok(Self { plan, inputs })
    }

    /// The features each row has.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Every output of the model for `x` (whole rows), each row-major, concatenated over blocks
    /// of [`BLOCK_ROWS`] rows.
    pub fn run(&self, x: &[f32]) -> Result<Vec<Vec<f32>>, ExportError> {
        let mut outputs: Vec<Vec<f32>> = Vec::new();
        for block in x.chunks(BLOCK_ROWS * self.inputs.max(1)) {
            let got = self.run_block(block)?;
            if outputs.is_empty() {
                outputs = vec![Vec::new(); got.len()];
            }
            for (all, part) in outputs.iter_mut().zip(got) {
                all.extend(part);
            }
        }
        Ok(outputs)
    }

    fn run_block(&self, block: &[f32]) -> Result<Vec<Vec<f32>>, ExportError> {
        let rows = block.len() / self.inputs.max(1);
        let input = Tensor::from_shape(&[rows, self.inputs], block).map_err(tract)?;
        let out = self.plan.run(tvec!(input.into_tvalue())).map_err(|e| tract(format!("{e:?}")))?;
        out.iter().map(|t| Ok(t.try_as_plain_ram().map_err(tract)?.as_slice::<f32>().map_err(tract)?.to_vec())).collect()
    }

    /// The first output (the logits) for `x`.
    pub fn logits(&self, x: &[f32]) -> Result<Vec<f32>, ExportError> {
        Ok(self.run(x)?.into_iter().next().unwrap_or_default())
    }
}

/// The width of the model's one input, from its declared shape.
fn input_width(proto: &ModelProto) -> Result<usize, ExportError> {
    use tract_onnx::pb::tensor_shape_proto::dimension::Value;
    use tract_onnx::pb::type_proto::Value as Type;
    let graph = proto.graph.as_ref().ok_or_else(|| ExportError::Runtime("the model has no graph".into()))?;
    let initializers: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<_> = graph.input.iter().filter(|i| !initializers.contains(&i.name.as_str())).collect();
    let [input] = inputs.as_slice() else { return Err(ExportError::Runtime(format!("the model has {} inputs; distill runs models with one", inputs.len()))) };
    let dims = input.r#type.as_ref().and_then(|t| match &t.value {
        Some(Type::TensorType(t)) => t.shape.as_ref().map(|s| s.dim.iter().map(|d| d.value.clone()).collect::<Vec<_>>()),
        _ => None,
    });
    match dims.as_deref() {
        Some([_, Some(Value::DimValue(w))]) if *w > 0 => Ok(*w as usize),
        _ => Err(ExportError::Runtime(format!("input `{}` is not a (batch, features) matrix of known width", input.name))),
    }
}
