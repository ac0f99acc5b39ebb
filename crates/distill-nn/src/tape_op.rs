//! Custom operations on dfdx's tape: a host function for the forward pass and one for the
//! backward pass, joined to autograd with `Tape::add_backward_op` like dfdx's own ops. Used by
//! the layers dfdx 0.13 lacks on stable Rust (im2col for convolutions, pooling).

use dfdx::prelude::*;

use crate::Dev;

/// A differentiable map from a (rows, cols) matrix to another matrix.
pub(crate) trait HostOp: 'static {
    /// Fills `out` (the output shape, zeroed) from `x`; may keep what `backward` needs.
    fn forward(&mut self, x: &[f32], out: &mut [f32]);
    /// Adds the gradient with respect to the input to `grad_x`, given the output's `grad_out`.
    /// Must add, not overwrite: the input may feed other operations too.
    fn backward(&self, grad_out: &[f32], grad_x: &mut [f32]);
}

/// Applies `op` to `x`, giving a tensor of `out_shape`. When `x` carries a tape, the op's
/// backward is recorded on it; otherwise nothing is kept.
pub(crate) fn apply<T: Tape<f32, Dev>>(
    mut op: impl HostOp,
    x: Tensor<(usize, usize), f32, Dev, T>,
    out_shape: (usize, usize),
) -> Tensor<(usize, usize), f32, Dev, T> {
    let (x, mut tape) = x.split_tape();
    let mut out = vec![0f32; out_shape.0 * out_shape.1];
    op.forward(&x.as_vec(), &mut out);
    let out = x.device().tensor_from_vec(out, out_shape);
    if T::OWNS_TAPE {
        // Gradients are keyed by tensor id: the closure keeps handles on input and output.
        let out_key = out.clone();
        tape.add_backward_op(move |grads| {
            let grad_out = grads.get_or_alloc_mut(&out_key)?.to_vec();
            let grad_x = grads.get_or_alloc_mut(&x)?;
            op.backward(&grad_out, grad_x);
            Ok(())
        });
    }
    out.put_tape(tape)
}
