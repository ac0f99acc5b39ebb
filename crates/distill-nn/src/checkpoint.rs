//! Model weights as safetensors, named like PyTorch's `nn.Linear` layers (`layers.0.weight` is
//! (outputs, inputs), `layers.0.bias` is (outputs,)) so other tools can read them.

use std::collections::HashMap;

use dfdx::prelude::*;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::Mlp;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("not a safetensors file: {0}")]
    Format(String),
    #[error("tensor `{name}` is missing")]
    Missing { name: String },
    #[error("tensor `{name}` has shape {found:?} and dtype {dtype:?}; the model needs f32 {expected:?}")]
    Shape { name: String, found: Vec<usize>, dtype: Dtype, expected: Vec<usize> },
}

fn to_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Serialises the weights (with `metadata` in the header) to safetensors bytes.
pub fn save_weights(model: &Mlp, metadata: HashMap<String, String>) -> Result<Vec<u8>, CheckpointError> {
    let mut buffers: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (i, layer) in model.layers.iter().enumerate() {
        let (fan_in, fan_out) = *layer.w.shape();
        let w = layer.w.as_vec();
        // Stored (in, out); written (out, in) as PyTorch does.
        let mut transposed = vec![0f32; w.len()];
        for r in 0..fan_in {
            for c in 0..fan_out {
                transposed[c * fan_in + r] = w[r * fan_out + c];
            }
        }
        buffers.push((format!("layers.{i}.weight"), vec![fan_out, fan_in], to_bytes(&transposed)));
        buffers.push((format!("layers.{i}.bias"), vec![fan_out], to_bytes(&layer.b.as_vec())));
    }
    let views = buffers
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| CheckpointError::Format(format!("{e:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize(views, &Some(metadata)).map_err(|e| CheckpointError::Format(format!("{e:?}")))
}

/// Loads weights into a model of the same shape.
pub fn load_weights(model: &mut Mlp, bytes: &[u8]) -> Result<(), CheckpointError> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| CheckpointError::Format(format!("{e:?}")))?;
    let read = |name: String, expected: Vec<usize>| -> Result<Vec<f32>, CheckpointError> {
        let view = file.tensor(&name).map_err(|_| CheckpointError::Missing { name: name.clone() })?;
        if view.dtype() != Dtype::F32 || view.shape() != expected.as_slice() {
            return Err(CheckpointError::Shape { name, found: view.shape().to_vec(), dtype: view.dtype(), expected });
        }
        Ok(view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    };
    let dev = model.dev.clone();
    for (i, layer) in model.layers.iter_mut().enumerate() {
        let (fan_in, fan_out) = *layer.w.shape();
        let w = read(format!("layers.{i}.weight"), vec![fan_out, fan_in])?;
        let b = read(format!("layers.{i}.bias"), vec![fan_out])?;
        let mut stored = vec![0f32; w.len()];
        for r in 0..fan_in {
            for c in 0..fan_out {
                stored[r * fan_out + c] = w[c * fan_in + r];
            }
        }
        layer.w = dev.tensor_from_vec(stored, (fan_in, fan_out));
        layer.b = dev.tensor_from_vec(b, (fan_out,));
    }
    Ok(())
}
