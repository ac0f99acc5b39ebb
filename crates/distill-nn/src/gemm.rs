//! Dense layers on a faster GEMM: `x · W + b` as one custom op on dfdx's tape.
//!
//! dfdx 0.13 multiplies through `gemm` 0.15, which has no AVX-512 path on stable Rust. This op
//! calls `gemm` 0.19 (feature `x86-v4`, chosen at run time, so CPUs without AVX-512 take its AVX2
//! or SSE path) for the forward product and both backward products, on rayon's pool, and records
//! its backward with `Tape::add_backward_op` exactly as dfdx's own matmul does. Everything else
//! (activations, dropout, norms, losses, optimisers) stays dfdx.
//!
//! Each product splits its output among threads, never its inner dimension, so every element is
//! summed in one fixed order: results do not depend on timing or thread count.

use std::borrow::Cow;

use dfdx::prelude::*;
use gemm::Parallelism;

use crate::Dev;

/// A row-major `rows × cols` view of a buffer, or its transpose through strides.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    data: &'a [f32],
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> View<'a> {
    pub(crate) fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    pub(crate) fn transposed(self) -> Self {
        Self { rows: self.cols, cols: self.rows, row_stride: self.col_stride, col_stride: self.row_stride, ..self }
    }

    /// Rows `start..start + count` of this view.
    pub(crate) fn row_range(self, start: usize, count: usize) -> Self {
        assert!(start + count <= self.rows, "rows {start}..{} of {}", start + count, self.rows);
        let data = if count == 0 { &self.data[..0] } else { &self.data[start * self.row_stride..] };
        Self { data, rows: count, ..self }
    }

    /// Whether every element the strides reach lies inside `data`.
    fn in_bounds(&self) -> bool {
        self.rows == 0 || self.cols == 0 || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride < self.data.len()
    }
}

/// How many threads one product runs on. The bits do not depend on it (gemm splits the output,
/// never the inner dimension, and picks its blocking from the shape and the caches alone), so
/// callers choose by speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Threads {
    /// The calling thread only: for products too small to pay for a hand-off, or for products
    /// that already run side by side (inference blocks).
    One,
    /// Every rayon thread (gemm still keeps a product below its own threshold on one).
    All,
}

impl Threads {
    /// Multiply-adds below which a product stays on the calling thread. The 784-64-10 student's
    /// largest product (128 × 784 × 64 = 6.4 M) trains ~1.4× faster so on a quiet 2-core machine
    /// (the hand-off to a sleeping worker costs more than the second core saves); the teacher's
    /// (≥ 120 M) gain from both cores.
    const SMALL: usize = 16 << 20;

    /// The choice for an `m × k · k × n` product.
    pub(crate) fn for_shape(m: usize, k: usize, n: usize) -> Threads {
        if m.saturating_mul(k).saturating_mul(n) < Self::SMALL {
            Threads::One
        } else {
            Threads::All
        }
    }
}

/// `dst (m × n, row-major) = [dst +] a · b` through gemm 0.19 on every rayon thread.
///
/// Panics if the views do not fit their buffers or each other: callers pass shapes that
/// [`crate::MlpShape::check`] validated, so a mismatch is a bug here, never bad input.
pub(crate) fn product(dst: &mut [f32], accumulate: bool, a: View<'_>, b: View<'_>) {
    product_on(dst, accumulate, a, b, Threads::All)
}

/// [`product`] on the threads `threads` says.
pub(crate) fn product_on(dst: &mut [f32], accumulate: bool, a: View<'_>, b: View<'_>, threads: Threads) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(b.rows == k && dst.len() == m * n && a.in_bounds() && b.in_bounds(), "gemm: {m}×{k} · {}×{n} into {} values", b.rows, dst.len());
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.fill(0.0);
        }
        return;
    }
    // SAFETY: the assertion above keeps every index gemm computes from these strides inside the
    // borrowed buffers, and `dst` is borrowed mutably, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            match threads {
                Threads::One => Parallelism::None,
                Threads::All => Parallelism::Rayon(0),
            },
        )
    }
}

/// The values of a matrix as a row-major slice: borrowed when the tensor is stored that way (the
/// usual case), copied otherwise (a broadcast or permuted tensor).
pub(crate) fn row_major<T>(t: &Tensor<(usize, usize), f32, Dev, T>) -> Cow<'_, [f32]> {
    let (rows, cols) = *t.shape();
    if rows == 0 || cols == 0 {
        return Cow::Borrowed(&[]);
    }
    // dfdx keeps its buffer private but indexes it directly: element addresses reveal the layout.
    let first: *const f32 = &t[[0, 0]];
    let offset = |r: usize, c: usize| (&t[[r, c]] as *const f32 as usize).wrapping_sub(first as usize) / std::mem::size_of::<f32>();
    let contiguous = offset(rows - 1, cols - 1) == rows * cols - 1 && (rows == 1 || offset(1, 0) == cols) && (cols == 1 || offset(0, 1) == 1);
    if contiguous {
        // SAFETY: `first` is element [0, 0] of dfdx's buffer, and the (bounds-checked) index of
        // the last element sits rows·cols − 1 further on, so the whole range is inside it; the
        // borrow of `t` keeps the buffer alive and unchanged for the slice's lifetime.
        Cow::Borrowed(unsafe { std::slice::from_raw_parts(first, rows * cols) })
    } else {
        Cow::Owned(t.as_vec())
    }
}

/// Which gradients a dense layer computes for its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InputGrad {
    /// The input comes from earlier layers: its gradient flows on.
    Needed,
    /// The input is the data batch: nobody reads its gradient, so its product is skipped.
    Skip,
}

/// `x · w + b` for `x` (batch × inputs), `w` (inputs × outputs), `b` (outputs), recorded on `x`'s
/// tape. Backward adds `g · wᵀ` to x's gradient (unless `input_grad` is [`InputGrad::Skip`]),
/// `xᵀ · g` to w's and the column sums of `g` to b's.
pub(crate) fn dense<T: Tape<f32, Dev>>(
    x: Tensor<(usize, usize), f32, Dev, T>,
    w: &Tensor<(usize, usize), f32, Dev>,
    b: &Tensor<(usize,), f32, Dev>,
    input_grad: InputGrad,
) -> Tensor<(usize, usize), f32, Dev, T> {
    let (batch, inputs) = *x.shape();
    let outputs = w.shape().1;
    let (x, mut tape) = x.split_tape();
    // The bias goes in first; the product accumulates onto it.
    let bias = b.as_vec();
    let mut out = Vec::with_capacity(batch * outputs);
    for _ in 0..batch {
        out.extend_from_slice(&bias);
    }
    product(&mut out, true, View::row_major(&row_major(&x), batch, inputs), View::row_major(&row_major(w), inputs, outputs));
    let out = x.device().tensor_from_vec(out, (batch, outputs));
    if T::OWNS_TAPE {
        let (x_ghost, w_ghost, b_ghost, out_ghost) = (x.ghost(), w.ghost(), b.ghost(), out.ghost());
        let w = w.clone();
        tape.add_backward_op(move |grads| {
            grads.try_alloc_for(&out_ghost)?;
            // Taken out while the other gradients are written (the map lends one at a time), then
            // put back; no copy.
            let g_out: Vec<f32> = std::mem::take(&mut **grads.get_or_alloc_mut(&out_ghost)?);
            let g = View::row_major(&g_out, batch, outputs);
            if input_grad == InputGrad::Needed {
                let gx = grads.get_or_alloc_mut(&x_ghost)?;
                product(gx, true, g, View::row_major(&row_major(&w), inputs, outputs).transposed());
            }
            let gw = grads.get_or_alloc_mut(&w_ghost)?;
            product(gw, true, View::row_major(&row_major(&x), batch, inputs).transposed(), g);
            let gb = grads.get_or_alloc_mut(&b_ghost)?;
            for row in g_out.chunks_exact(outputs.max(1)) {
                for (acc, v) in gb.iter_mut().zip(row) {
                    *acc += v;
                }
            }
            **grads.get_or_alloc_mut(&out_ghost)? = g_out;
            Ok(())
        });
    }
    out.put_tape(tape)
}

/// GFLOP/s of a plain `n × n · n × n` f32 product through the same GEMM, on the same threads:
/// the ceiling a dense layer's products can reach on this machine. The best of `reps` timed
/// products, after one untimed one.
pub(crate) fn square_product_gflops(n: usize, reps: usize) -> f64 {
    let a: Vec<f32> = (0..n * n).map(|i| (i % 17) as f32 * 0.25 - 2.0).collect();
    let b: Vec<f32> = (0..n * n).map(|i| (i % 13) as f32 * 0.5 - 3.0).collect();
    let mut c = vec![0f32; n * n];
    let run = |c: &mut [f32]| product(c, false, View::row_major(&a, n, n), View::row_major(&b, n, n));
    run(&mut c);
    let best = (0..reps.max(1))
        .map(|_| {
            let start = std::time::Instant::now();
            run(&mut c);
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    std::hint::black_box(&c);
    2.0 * (n as f64).powi(3) / best.max(1e-12) / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random(dev: &Dev, rng: &mut ChaCha8Rng, rows: usize, cols: usize) -> Tensor<(usize, usize), f32, Dev> {
        dev.tensor_from_vec((0..rows * cols).map(|_| rng.gen_range(-1.0f32..1.0)).collect(), (rows, cols))
    }

    fn close(what: &str, got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{what}[{i}]: gemm {g} vs dfdx {w}");
        }
    }

    /// Values and all three gradients agree with dfdx's matmul + broadcast bias, on shapes that
    /// take gemm's blocked and threaded paths (the MLP's) and on ragged small ones.
    #[test]
    fn dense_matches_dfdx_matmul_values_and_gradients() {
        crate::flush_denormals();
        let dev = Dev::seed_from_u64(0);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for (batch, inputs, outputs) in [(128, 784, 300), (7, 5, 3), (1, 1, 1), (33, 64, 10)] {
            let x = random(&dev, &mut rng, batch, inputs);
            let w = random(&dev, &mut rng, inputs, outputs);
            let b = dev.tensor_from_vec((0..outputs).map(|_| rng.gen_range(-1.0f32..1.0)).collect(), (outputs,));
            let g = random(&dev, &mut rng, batch, outputs);

            let ours = dense(x.clone().leaky_traced(), &w, &b, InputGrad::Needed);
            let theirs = x.clone().leaky_traced().matmul(w.clone()) + b.clone().broadcast_like::<_, Axis<0>>(&(batch, outputs));
            let what = format!("{batch}×{inputs}×{outputs}");
            close(&format!("{what} values"), &ours.as_vec(), &theirs.as_vec());

            let ours = (ours * g.clone()).sum::<Rank0, _>().backward();
            let theirs = (theirs * g.clone()).sum::<Rank0, _>().backward();
            close(&format!("{what} dx"), &ours.get(&x).as_vec(), &theirs.get(&x).as_vec());
            close(&format!("{what} dw"), &ours.get(&w).as_vec(), &theirs.get(&w).as_vec());
            close(&format!("{what} db"), &ours.get(&b).as_vec(), &theirs.get(&b).as_vec());
        }
    }

    #[test]
    fn skipping_the_input_gradient_leaves_the_parameter_gradients_alone() {
        let dev = Dev::seed_from_u64(0);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let (x, w) = (random(&dev, &mut rng, 16, 9), random(&dev, &mut rng, 9, 5));
        let b = dev.tensor_from_vec(vec![0.5; 5], (5,));
        let grads = |mode| dense(x.clone().leaky_traced(), &w, &b, mode).square().sum::<Rank0, _>().backward();
        let (all, mut skipped) = (grads(InputGrad::Needed), grads(InputGrad::Skip));
        assert_eq!(all.get(&w).as_vec(), skipped.get(&w).as_vec());
        assert_eq!(all.get(&b).as_vec(), skipped.get(&b).as_vec());
        assert!(all.get(&x).as_vec().iter().any(|v| *v != 0.0));
        assert!(skipped.get_or_alloc_mut(&x).unwrap().iter().all(|v| *v == 0.0), "no product for the data's gradient");
    }

    #[test]
    fn a_strided_input_is_read_in_logical_order() {
        // A broadcast tensor is not stored row-major; the op must copy it, not misread it.
        let dev = Dev::seed_from_u64(0);
        let row = dev.tensor_from_vec(vec![1.0f32, 2.0, 3.0], (3,));
        let x: Tensor<(usize, usize), f32, Dev> = row.broadcast_like::<_, Axis<0>>(&(4, 3));
        let w = dev.tensor_from_vec(vec![1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0], (3, 2));
        let b = dev.tensor_from_vec(vec![0.0f32, 10.0], (2,));
        assert_eq!(dense(x, &w, &b, InputGrad::Skip).as_vec(), [4.0, 15.0].repeat(4));
    }

    /// The fast path picks threads per shape and per caller: the bits must not depend on it.
    #[test]
    fn one_thread_and_all_threads_give_the_same_bits() {
        crate::flush_denormals();
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        for (m, k, n) in [(128, 784, 1200), (512, 1200, 1200), (128, 784, 64), (64, 128, 10), (128, 1200, 784), (37, 700, 65)] {
            let a: Vec<f32> = (0..m * k).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
            let run = |threads, transposed: bool| {
                let mut c = vec![0.5f32; m * n];
                let (a, b) = if transposed {
                    (View::row_major(&a, k, m).transposed(), View::row_major(&b, n, k).transposed())
                } else {
                    (View::row_major(&a, m, k), View::row_major(&b, k, n))
                };
                product_on(&mut c, true, a, b, threads);
                c.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            };
            for transposed in [false, true] {
                assert_eq!(run(Threads::One, transposed), run(Threads::All, transposed), "{m}×{k}×{n} transposed {transposed}");
            }
        }
    }

    #[test]
    fn products_are_bitwise_repeatable() {
        crate::flush_denormals();
        let dev = Dev::seed_from_u64(0);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (x, w) = (random(&dev, &mut rng, 128, 784), random(&dev, &mut rng, 784, 1200));
        let b = dev.tensor_from_vec(vec![0.0; 1200], (1200,));
        let first = dense(x.clone(), &w, &b, InputGrad::Skip).as_vec();
        for _ in 0..3 {
            assert_eq!(first, dense(x.clone(), &w, &b, InputGrad::Skip).as_vec());
        }
    }
}
