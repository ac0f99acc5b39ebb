//! The metadata props distill writes into a model, and reading them back: what lets
//! `distill predict` take a bare `.onnx` file.

use prost::Message;
use tract_onnx::pb::ModelProto;

use crate::ExportError;

/// A JSON list of the feature columns, in the order the input reads them.
pub const FEATURES: &str = "distill.feature_names";
/// A JSON list of the class names, in logit order.
pub const CLASSES: &str = "distill.class_names";
/// The recipe's label column.
pub const LABEL: &str = "distill.label";

/// Every metadata prop of an ONNX model's bytes.
pub fn props(bytes: &[u8]) -> Result<Vec<(String, String)>, ExportError> {
    let model = ModelProto::decode(bytes).map_err(|e| ExportError::Runtime(format!("not an ONNX model: {e}")))?;
    Ok(model.metadata_props.into_iter().map(|p| (p.key, p.value)).collect())
}
