//! Model weights as safetensors, named like PyTorch's `nn.Linear` layers (`layers.0.weight` is
//! (outputs, inputs), `layers.0.bias` is (outputs,)) so other tools can read them. Conv layers
//! are written as PyTorch's `nn.Conv2d` holds them: `convs.0.weight` is (filters, in_channels,
//! kernel, kernel), `convs.0.bias` is (filters,).

use std::collections::HashMap;

use dfdx::prelude::*;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::conv::{self, Geometry};
use crate::mlp::Node;
use crate::{Dev, Mlp};

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

/// Names of the parameters in [`Mlp::params_mut`] order: dense layers are numbered in order
/// (`layers.{i}.weight`, `layers.{i}.bias`, as before layer lists existed, so MLP files are
/// unchanged), layer norms likewise (`norms.{i}.weight` is the scale, `norms.{i}.bias` the shift),
/// conv layers too (`convs.{i}.weight`, `convs.{i}.bias`).
pub(crate) fn param_names(model: &Mlp) -> Vec<String> {
    fn walk(nodes: &[Node], dense: &mut usize, norms: &mut usize, convs: &mut usize, out: &mut Vec<String>) {
        for node in nodes {
            match node {
                Node::Dense(_) => {
                    out.push(format!("layers.{dense}.weight"));
                    out.push(format!("layers.{dense}.bias"));
                    *dense += 1;
                }
                Node::Norm { .. } => {
                    out.push(format!("norms.{norms}.weight"));
                    out.push(format!("norms.{norms}.bias"));
                    *norms += 1;
                }
                Node::Conv(_) => {
                    out.push(format!("convs.{convs}.weight"));
                    out.push(format!("convs.{convs}.bias"));
                    *convs += 1;
                }
                Node::Residual(inner) => walk(inner, dense, norms, convs, out),
                Node::Activation(_) | Node::Dropout { .. } | Node::Pool(_) => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(&model.nodes, &mut 0, &mut 0, &mut 0, &mut out);
    out
}

/// (in, out) row-major to (out, in) row-major, and back with the arguments swapped.
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}

/// Serialises the weights (with `metadata` in the header) to safetensors bytes.
pub fn save_weights(model: &Mlp, metadata: HashMap<String, String>) -> Result<Vec<u8>, CheckpointError> {
    let names = param_names(model);
    let mut buffers: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut params = Vec::new();
    collect(&model.nodes, &mut params);
    for (name, param) in names.into_iter().zip(params) {
        match param {
            ParamRef::Matrix(w) => {
                let (fan_in, fan_out) = *w.shape();
                // Stored (in, out); written (out, in) as PyTorch does.
                buffers.push((name, vec![fan_out, fan_in], to_bytes(&transpose(&w.as_vec(), fan_in, fan_out))));
            }
            ParamRef::Vector(v) => buffers.push((name, vec![v.shape().0], to_bytes(&v.as_vec()))),
            ParamRef::Conv(w, g) => buffers.push((name, conv::pytorch_shape(&g), to_bytes(&conv::to_pytorch(&w.as_vec(), &g)))),
        }
    }
    let views = buffers
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes).map(|v| (name.clone(), v)).map_err(|e| CheckpointError::Format(format!("{e:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize(views, &Some(metadata)).map_err(|e| CheckpointError::Format(format!("{e:?}")))
}

enum ParamRef<'a> {
    Matrix(&'a Tensor<(usize, usize), f32, Dev>),
    Vector(&'a Tensor<(usize,), f32, Dev>),
    /// A conv weight, stored (kernel² · in_channels, filters).
    Conv(&'a Tensor<(usize, usize), f32, Dev>, Geometry),
}

fn collect<'a>(nodes: &'a [Node], out: &mut Vec<ParamRef<'a>>) {
    for node in nodes {
        match node {
            Node::Dense(d) => {
                out.push(ParamRef::Matrix(&d.w));
                out.push(ParamRef::Vector(&d.b));
            }
            Node::Norm { gamma, beta } => {
                out.push(ParamRef::Vector(gamma));
                out.push(ParamRef::Vector(beta));
            }
            Node::Conv(c) => {
                out.push(ParamRef::Conv(&c.w, c.geometry));
                out.push(ParamRef::Vector(&c.b));
            }
            Node::Residual(inner) => collect(inner, out),
            Node::Activation(_) | Node::Dropout { .. } | Node::Pool(_) => {}
        }
    }
}

/// Loads weights into a model of the same shape. Nothing is changed unless every tensor fits.
pub fn load_weights(model: &mut Mlp, bytes: &[u8]) -> Result<(), CheckpointError> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| CheckpointError::Format(format!("{e:?}")))?;
    let read = |name: &str, expected: Vec<usize>| -> Result<Vec<f32>, CheckpointError> {
        let view = file.tensor(name).map_err(|_| CheckpointError::Missing { name: name.to_string() })?;
        if view.dtype() != Dtype::F32 || view.shape() != expected.as_slice() {
            return Err(CheckpointError::Shape { name: name.to_string(), found: view.shape().to_vec(), dtype: view.dtype(), expected });
        }
        Ok(view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    };
    let names = param_names(model);
    let mut values = Vec::with_capacity(names.len());
    let mut params = Vec::new();
    collect(&model.nodes, &mut params);
    for (name, param) in names.iter().zip(params) {
        values.push(match param {
            ParamRef::Matrix(w) => {
                let (fan_in, fan_out) = *w.shape();
                transpose(&read(name, vec![fan_out, fan_in])?, fan_out, fan_in)
            }
            ParamRef::Vector(v) => read(name, vec![v.shape().0])?,
            ParamRef::Conv(_, g) => conv::from_pytorch(&read(name, conv::pytorch_shape(&g))?, &g),
        });
    }
    if !model.set_param_values(&values) {
        return Err(CheckpointError::Format("the weights do not fit the model".into()));
    }
    Ok(())
}
