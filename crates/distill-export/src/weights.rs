//! A trained network's parameters read from its safetensors file, by the names distill-nn's
//! checkpoint writes (`layers.{i}` dense, `norms.{i}` layer norms, `convs.{i}` conv layers, each
//! numbered in depth-first order; weights in PyTorch's layouts).

use safetensors::tensor::{Dtype, SafeTensors};

use crate::ExportError;

pub(crate) struct Weights<'a> {
    file: SafeTensors<'a>,
    dense: usize,
    norms: usize,
    convs: usize,
}

/// A parameter: its values (row-major) and shape.
pub(crate) struct Param {
    pub values: Vec<f32>,
    pub dims: Vec<usize>,
}

impl<'a> Weights<'a> {
    pub fn new(bytes: &'a [u8]) -> Result<Self, ExportError> {
        let file = SafeTensors::deserialize(bytes).map_err(|e| ExportError::Weights(format!("not a safetensors file: {e:?}")))?;
        Ok(Self { file, dense: 0, norms: 0, convs: 0 })
    }

    fn read(&self, name: &str, dims: &[usize]) -> Result<Param, ExportError> {
        let view = self.file.tensor(name).map_err(|_| ExportError::Weights(format!("tensor `{name}` is missing")))?;
        if view.dtype() != Dtype::F32 || view.shape() != dims {
            return Err(ExportError::Weights(format!("tensor `{name}` is {:?} {:?}; the network needs f32 {dims:?}", view.dtype(), view.shape())));
        }
        let values = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        Ok(Param { values, dims: dims.to_vec() })
    }

    /// The next dense layer's weight `(outputs, inputs)` and bias.
    pub fn dense(&mut self, inputs: usize, outputs: usize) -> Result<(Param, Param), ExportError> {
        let i = self.dense;
        self.dense += 1;
        Ok((self.read(&format!("layers.{i}.weight"), &[outputs, inputs])?, self.read(&format!("layers.{i}.bias"), &[outputs])?))
    }

    /// The next layer norm's scale and shift.
    pub fn norm(&mut self, width: usize) -> Result<(Param, Param), ExportError> {
        let i = self.norms;
        self.norms += 1;
        Ok((self.read(&format!("norms.{i}.weight"), &[width])?, self.read(&format!("norms.{i}.bias"), &[width])?))
    }

    /// The next conv layer's weight `(filters, in_channels, kernel, kernel)` and bias.
    pub fn conv(&mut self, filters: usize, channels: usize, kernel: usize) -> Result<(Param, Param), ExportError> {
        let i = self.convs;
        self.convs += 1;
        Ok((self.read(&format!("convs.{i}.weight"), &[filters, channels, kernel, kernel])?, self.read(&format!("convs.{i}.bias"), &[filters])?))
    }
}
