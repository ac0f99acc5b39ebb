//! 2-D convolution as im2col + matrix product: every kernel position of every image becomes one
//! row of a patch matrix (a host op on dfdx's tape, whose backward is col2im), and one dfdx
//! matmul with the (kernel² · in_channels, filters) weight does the arithmetic. dfdx 0.13's own
//! conv2d needs nightly Rust.
//!
//! Feature maps are (batch, height · width · channels) matrices, channels last: the output rows
//! of the product, (image, y, x) × filters, are already that layout, so no transpose is needed.

use dfdx::prelude::*;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::mlp::Matrix;
use crate::tape_op::{apply, HostOp};
use crate::Dev;
use distill_spec::{ConvSpec, ImageSpec};

/// A conv layer with its parameters.
pub(crate) struct Conv {
    pub geometry: Geometry,
    /// (kernel² · in_channels, filters); row `(ky · kernel + kx) · in_channels + c`.
    pub w: Matrix,
    pub b: Tensor<(usize,), f32, Dev>,
}

/// Where a convolution's kernel goes: its settings and the maps it reads and writes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub spec: ConvSpec,
    pub input: ImageSpec,
    pub output: ImageSpec,
}

impl Geometry {
    /// Values in one patch row: kernel² · in_channels.
    fn patch(&self) -> usize {
        self.spec.kernel * self.spec.kernel * self.input.channels
    }

    fn positions(&self) -> usize {
        self.output.height * self.output.width
    }

    /// Calls `visit(patch offset, input offset)` for every in-bounds pixel of the kernel placed
    /// at output position (oy, ox); padding pixels are skipped (they are zeros). Each call covers
    /// `input.channels` consecutive values on both sides.
    fn for_each_tap(&self, oy: usize, ox: usize, mut visit: impl FnMut(usize, usize)) {
        let (k, s, p) = (self.spec.kernel, self.spec.stride, self.spec.padding);
        let (h, w, c) = (self.input.height, self.input.width, self.input.channels);
        for ky in 0..k {
            let Some(iy) = (oy * s + ky).checked_sub(p).filter(|&y| y < h) else { continue };
            for kx in 0..k {
                let Some(ix) = (ox * s + kx).checked_sub(p).filter(|&x| x < w) else { continue };
                visit((ky * k + kx) * c, (iy * w + ix) * c);
            }
        }
    }
}

/// Uniform in ±1/sqrt(fan_in), PyTorch's default for linear and conv layers.
pub(crate) fn uniform(rng: &mut ChaCha8Rng, n: usize, fan_in: usize) -> Vec<f32> {
    let bound = 1.0 / (fan_in as f32).sqrt();
    (0..n).map(|_| rng.gen_range(-bound..bound)).collect()
}

impl Conv {
    /// PyTorch's default initialisation (fan_in = kernel² · in_channels), weights in stored
    /// order, then biases, from `rng`.
    pub(crate) fn new(geometry: Geometry, dev: &Dev, rng: &mut ChaCha8Rng) -> Self {
        let (fan_in, filters) = (geometry.patch(), geometry.spec.filters);
        let w = dev.tensor_from_vec(uniform(rng, fan_in * filters, fan_in), (fan_in, filters));
        let b = dev.tensor_from_vec(uniform(rng, filters, fan_in), (filters,));
        Self { geometry, w, b }
    }

    /// (batch, input map) to (batch, output map).
    pub(crate) fn forward<T: Tape<f32, Dev>>(&self, x: Tensor<(usize, usize), f32, Dev, T>) -> Tensor<(usize, usize), f32, Dev, T> {
        let g = self.geometry;
        let (rows, filters) = (x.shape().0, g.spec.filters);
        let patches = apply(Im2col { geometry: g }, x, (rows * g.positions(), g.patch()));
        // The patch product goes through the same fast GEMM as dense layers.
        let y = crate::gemm::dense(patches, &self.w, &self.b, crate::gemm::InputGrad::Needed);
        y.reshape_like(&(rows, g.positions() * filters))
    }
}

/// The patch matrix: one row per (image, output y, output x), `patch()` values each.
struct Im2col {
    geometry: Geometry,
}

impl HostOp for Im2col {
    fn forward(&mut self, x: &[f32], out: &mut [f32]) {
        let g = self.geometry;
        let (c, patch, wo) = (g.input.channels, g.patch(), g.output.width);
        let per_image = g.positions() * patch;
        out.par_chunks_mut(per_image).zip(x.par_chunks(g.input.height * g.input.width * c)).for_each(|(rows, image)| {
            for (pos, row) in rows.chunks_mut(patch).enumerate() {
                g.for_each_tap(pos / wo, pos % wo, |to, from| row[to..to + c].copy_from_slice(&image[from..from + c]));
            }
        });
    }

    /// col2im: each patch value's gradient flows back to the pixel it was copied from.
    fn backward(&self, grad_out: &[f32], grad_x: &mut [f32]) {
        let g = self.geometry;
        let (c, patch, wo) = (g.input.channels, g.patch(), g.output.width);
        let per_image = g.positions() * patch;
        grad_x.par_chunks_mut(g.input.height * g.input.width * c).zip(grad_out.par_chunks(per_image)).for_each(|(image, rows)| {
            for (pos, row) in rows.chunks(patch).enumerate() {
                g.for_each_tap(pos / wo, pos % wo, |to, from| {
                    for (gx, gp) in image[from..from + c].iter_mut().zip(&row[to..to + c]) {
                        *gx += gp;
                    }
                });
            }
        });
    }
}

/// The stored weight as PyTorch's `nn.Conv2d` holds it: (filters, in_channels, kernel, kernel).
pub(crate) fn to_pytorch(values: &[f32], g: &Geometry) -> Vec<f32> {
    permute(values, g, true)
}

/// The inverse of [`to_pytorch`].
pub(crate) fn from_pytorch(values: &[f32], g: &Geometry) -> Vec<f32> {
    permute(values, g, false)
}

/// The shape [`to_pytorch`] writes.
pub(crate) fn pytorch_shape(g: &Geometry) -> Vec<usize> {
    vec![g.spec.filters, g.input.channels, g.spec.kernel, g.spec.kernel]
}

fn permute(values: &[f32], g: &Geometry, to_torch: bool) -> Vec<f32> {
    let (f_n, c_n, k) = (g.spec.filters, g.input.channels, g.spec.kernel);
    let mut out = vec![0f32; values.len()];
    for f in 0..f_n {
        for c in 0..c_n {
            for ky in 0..k {
                for kx in 0..k {
                    let stored = ((ky * k + kx) * c_n + c) * f_n + f;
                    let torch = ((f * c_n + c) * k + ky) * k + kx;
                    if to_torch {
                        out[torch] = values[stored];
                    } else {
                        out[stored] = values[torch];
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::SeedableRng;

    pub(crate) fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()
    }

    /// Central differences of `f` at `at`, in f64.
    pub(crate) fn numeric_gradient(at: &[f32], h: f32, mut f: impl FnMut(&[f32]) -> f64) -> Vec<f64> {
        (0..at.len())
            .map(|i| {
                let (mut plus, mut minus) = (at.to_vec(), at.to_vec());
                plus[i] += h;
                minus[i] -= h;
                (f(&plus) - f(&minus)) / (2.0 * h as f64)
            })
            .collect()
    }

    pub(crate) fn assert_close(analytic: &[f32], numeric: &[f64], what: &str) {
        assert_eq!(analytic.len(), numeric.len(), "{what}");
        for (i, (a, n)) in analytic.iter().zip(numeric).enumerate() {
            assert!((*a as f64 - n).abs() < 2e-3 * (1.0 + n.abs()), "{what}[{i}]: analytic {a} vs numeric {n}");
        }
    }

    fn geometry(input: ImageSpec, filters: usize, kernel: usize, stride: usize, padding: usize) -> Geometry {
        let spec = ConvSpec { filters, kernel, stride, padding };
        Geometry { spec, input, output: spec.output(input).unwrap() }
    }

    fn conv_with(g: Geometry, w: &[f32], b: &[f32]) -> Conv {
        let dev = Dev::default();
        Conv { geometry: g, w: dev.tensor_from_vec(w.to_vec(), (g.patch(), g.spec.filters)), b: dev.tensor_from_vec(b.to_vec(), (g.spec.filters,)) }
    }

    /// The textbook definition, on PyTorch's weight layout: what im2col must reproduce.
    fn direct(x: &[f32], n: usize, g: &Geometry, w_torch: &[f32], b: &[f32]) -> Vec<f32> {
        let (ImageSpec { height: h, width: w, channels: c }, o) = (g.input, g.output);
        let (k, s, p, f_n) = (g.spec.kernel, g.spec.stride, g.spec.padding, g.spec.filters);
        let mut out = Vec::new();
        for img in 0..n {
            for oy in 0..o.height {
                for ox in 0..o.width {
                    for f in 0..f_n {
                        let mut sum = b[f];
                        for ch in 0..c {
                            for ky in 0..k {
                                for kx in 0..k {
                                    let (iy, ix) = ((oy * s + ky) as isize - p as isize, (ox * s + kx) as isize - p as isize);
                                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                        let xv = x[img * h * w * c + (iy as usize * w + ix as usize) * c + ch];
                                        sum += w_torch[((f * c + ch) * k + ky) * k + kx] * xv;
                                    }
                                }
                            }
                        }
                        out.push(sum);
                    }
                }
            }
        }
        out
    }

    #[test]
    fn im2col_matches_the_direct_convolution() {
        for (input, filters, kernel, stride, padding) in [
            (ImageSpec { height: 5, width: 4, channels: 2 }, 3, 3, 2, 1),
            (ImageSpec { height: 6, width: 6, channels: 1 }, 2, 3, 1, 0),
            (ImageSpec { height: 3, width: 5, channels: 3 }, 4, 1, 1, 0),
            (ImageSpec { height: 4, width: 4, channels: 1 }, 1, 4, 1, 2),
        ] {
            let g = geometry(input, filters, kernel, stride, padding);
            let n = 3;
            let x = random(n * input.height * input.width * input.channels, 1);
            let conv = Conv::new(g, &Dev::default(), &mut ChaCha8Rng::seed_from_u64(2));
            let (w, b) = (conv.w.as_vec(), conv.b.as_vec());
            let out = conv.forward(Dev::default().tensor_from_vec(x.clone(), (n, x.len() / n))).as_vec();
            let expected = direct(&x, n, &g, &to_pytorch(&w, &g), &b);
            assert_eq!(out.len(), expected.len());
            for (a, e) in out.iter().zip(&expected) {
                assert!((a - e).abs() < 1e-5, "{g:?}: {a} vs {e}");
            }
            assert_eq!(from_pytorch(&to_pytorch(&w, &g), &g), w);
        }
    }

    #[test]
    fn the_pytorch_layout_is_filters_channels_rows_columns() {
        let g = geometry(ImageSpec { height: 4, width: 4, channels: 2 }, 3, 2, 1, 0);
        // Stored row (ky·k + kx)·C + c, column f: give each element the value f·1000 + c·100 + ky·10 + kx.
        let mut w = vec![0f32; g.patch() * 3];
        for (ky, kx, c, f) in (0..2).flat_map(|ky| (0..2).flat_map(move |kx| (0..2).flat_map(move |c| (0..3).map(move |f| (ky, kx, c, f))))) {
            w[((ky * 2 + kx) * 2 + c) * 3 + f] = (f * 1000 + c * 100 + ky * 10 + kx) as f32;
        }
        let torch = to_pytorch(&w, &g);
        assert_eq!(pytorch_shape(&g), [3, 2, 2, 2]);
        assert_eq!(&torch[..4], &[0.0, 1.0, 10.0, 11.0]);
        assert_eq!(torch[((2 * 2 + 1) * 2 + 1) * 2], 2110.0, "filter 2, channel 1, ky 1, kx 0");
    }

    #[test]
    fn conv_gradients_match_finite_differences() {
        let g = geometry(ImageSpec { height: 5, width: 4, channels: 2 }, 3, 3, 2, 1);
        let n = 2;
        let dev = Dev::default();
        let x = random(n * 5 * 4 * 2, 3);
        let (w, b) = (random(g.patch() * 3, 4), random(3, 5));
        let out_len = n * g.positions() * 3;
        let upstream = random(out_len, 6);
        let objective = |x: &[f32], w: &[f32], b: &[f32]| -> f64 {
            let out = conv_with(g, w, b).forward(dev.tensor_from_vec(x.to_vec(), (n, x.len() / n))).as_vec();
            out.iter().zip(&upstream).map(|(o, u)| *o as f64 * *u as f64).sum()
        };
        let conv = conv_with(g, &w, &b);
        let xt = dev.tensor_from_vec(x.clone(), (n, x.len() / n));
        let out = conv.forward(xt.leaky_trace());
        let grads = (out * dev.tensor_from_vec(upstream.clone(), (n, out_len / n))).sum::<Rank0, _>().backward();
        let h = 1e-2;
        assert_close(&grads.get(&xt).as_vec(), &numeric_gradient(&x, h, |x| objective(x, &w, &b)), "input");
        assert_close(&grads.get(&conv.w).as_vec(), &numeric_gradient(&w, h, |w| objective(&x, w, &b)), "weight");
        assert_close(&grads.get(&conv.b).as_vec(), &numeric_gradient(&b, h, |b| objective(&x, &w, b)), "bias");
    }
}
