//! Max and average pooling over non-overlapping square windows, as a host op on dfdx's tape.
//! Feature maps are (batch, height · width · channels) matrices, channels last.

use dfdx::prelude::*;
use rayon::prelude::*;

use crate::tape_op::{apply, HostOp};
use crate::Dev;
use distill_spec::{ImageSpec, PoolKind, PoolSpec};

/// A pooling layer (no parameters).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pool {
    pub spec: PoolSpec,
    pub input: ImageSpec,
    pub output: ImageSpec,
}

impl Pool {
    /// (batch, input map) to (batch, output map).
    pub(crate) fn forward<T: Tape<f32, Dev>>(&self, x: Tensor<(usize, usize), f32, Dev, T>) -> Tensor<(usize, usize), f32, Dev, T> {
        let rows = x.shape().0;
        apply(PoolOp { pool: *self, argmax: Vec::new() }, x, (rows, map_len(self.output)))
    }

    /// Calls `visit(output offset, input offsets of its window)` for every output value.
    fn for_each_window(&self, mut visit: impl FnMut(usize, &mut dyn Iterator<Item = usize>)) {
        let (s, w, c) = (self.spec.size, self.input.width, self.input.channels);
        for oy in 0..self.output.height {
            for ox in 0..self.output.width {
                for ch in 0..c {
                    let mut window = (0..s * s).map(|t| ((oy * s + t / s) * w + ox * s + t % s) * c + ch);
                    visit((oy * self.output.width + ox) * c + ch, &mut window);
                }
            }
        }
    }
}

fn map_len(m: ImageSpec) -> usize {
    m.height * m.width * m.channels
}

struct PoolOp {
    pool: Pool,
    /// Max pooling: for each output value, the input offset (within its image) of the first maximum.
    argmax: Vec<usize>,
}

impl HostOp for PoolOp {
    fn forward(&mut self, x: &[f32], out: &mut [f32]) {
        let (p, n_in, n_out) = (self.pool, map_len(self.pool.input), map_len(self.pool.output));
        let area = (p.spec.size * p.spec.size) as f32;
        self.argmax = vec![0; out.len()];
        out.par_chunks_mut(n_out).zip(self.argmax.par_chunks_mut(n_out)).zip(x.par_chunks(n_in)).for_each(|((out, argmax), image)| {
            p.for_each_window(|o, window| match p.spec.kind {
                PoolKind::Max => {
                    let first = window.next().unwrap_or(0);
                    let best = window.fold(first, |best, i| if image[i] > image[best] { i } else { best });
                    argmax[o] = best;
                    out[o] = image[best];
                }
                PoolKind::Avg => out[o] = window.map(|i| image[i]).sum::<f32>() / area,
            });
        });
    }

    fn backward(&self, grad_out: &[f32], grad_x: &mut [f32]) {
        let (p, n_in, n_out) = (self.pool, map_len(self.pool.input), map_len(self.pool.output));
        let images = grad_x.par_chunks_mut(n_in).zip(grad_out.par_chunks(n_out));
        match p.spec.kind {
            PoolKind::Max => images.zip(self.argmax.par_chunks(n_out)).for_each(|((gx, g), argmax)| argmax.iter().zip(g).for_each(|(&i, &v)| gx[i] += v)),
            PoolKind::Avg => {
                let area = (p.spec.size * p.spec.size) as f32;
                images.for_each(|(gx, g)| p.for_each_window(|o, window| window.for_each(|i| gx[i] += g[o] / area)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::tests::{assert_close, numeric_gradient, random};

    fn pool(kind: PoolKind, size: usize, input: ImageSpec) -> Pool {
        let spec = PoolSpec { size, kind };
        Pool { spec, input, output: spec.output(input).unwrap() }
    }

    fn run(p: &Pool, x: &[f32], n: usize) -> Vec<f32> {
        p.forward(Dev::default().tensor_from_vec(x.to_vec(), (n, x.len() / n))).as_vec()
    }

    #[test]
    fn pools_windows_per_channel_and_drops_the_remainder() {
        // A 3×3 two-channel map: channel 0 counts up, channel 1 counts down.
        let x: Vec<f32> = (0..9).flat_map(|i| [i as f32, -(i as f32)]).collect();
        let img = ImageSpec { height: 3, width: 3, channels: 2 };
        assert_eq!(run(&pool(PoolKind::Max, 2, img), &x, 1), [4.0, 0.0]);
        assert_eq!(run(&pool(PoolKind::Avg, 2, img), &x, 1), [2.0, -2.0]);
        let img = ImageSpec { height: 2, width: 4, channels: 1 };
        assert_eq!(run(&pool(PoolKind::Max, 2, img), &[1.0, 5.0, 2.0, 0.0, 3.0, 4.0, 8.0, 7.0], 1), [5.0, 8.0]);
    }

    #[test]
    fn pool_gradients_match_finite_differences() {
        let dev = Dev::default();
        for kind in [PoolKind::Max, PoolKind::Avg] {
            let p = pool(kind, 2, ImageSpec { height: 5, width: 4, channels: 3 });
            let n = 2;
            let x = random(n * 5 * 4 * 3, 7);
            let out_len = n * map_len(p.output);
            let upstream = random(out_len, 8);
            let objective = |x: &[f32]| -> f64 { run(&p, x, n).iter().zip(&upstream).map(|(o, u)| *o as f64 * *u as f64).sum() };
            let xt = dev.tensor_from_vec(x.clone(), (n, x.len() / n));
            let out = p.forward(xt.leaky_trace());
            let grads = (out * dev.tensor_from_vec(upstream.clone(), (n, out_len / n))).sum::<Rank0, _>().backward();
            // Random values are far apart compared with h, so no window changes its maximum.
            assert_close(&grads.get(&xt).as_vec(), &numeric_gradient(&x, 1e-3, objective), &format!("{kind:?} input"));
        }
    }
}
