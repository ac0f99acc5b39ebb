//! Feature hints (FitNets, Romero et al. 2015): a student hidden layer `h` predicts a teacher
//! hidden layer `f` through a learned linear projection `P = h W + b`, trained with the student
//! and dropped after. The term joins dfdx's tape as an identity op on `h` whose backward adds
//! the hint's gradient (`tape_op.rs`); the projection is updated on the host with Adam.

use std::sync::{Arc, Mutex};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::gemm::{product, View};
use crate::tape_op::HostOp;

/// How the projection's output is compared with the teacher's features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HintKind {
    /// `weight · mean((P - f)²)` over rows and features.
    Mse,
    /// `weight · mean over rows of (1 - cos(P_i, f_i))`.
    Cosine,
}

/// The hint of one training job: the teacher's features of every training row, which student
/// hidden layer predicts them, how, and with what weight.
#[derive(Debug, Clone)]
pub struct HintTargets {
    /// Row-major `rows × width`, in the training rows' order.
    pub features: Arc<Vec<f32>>,
    pub width: usize,
    /// The student's hidden layer (0-based, counting activations at the top level).
    pub student_layer: usize,
    pub kind: HintKind,
    pub weight: f64,
}

/// The hint value and its gradients with respect to `h` (n × ds), `w` (ds × dt) and `b` (dt),
/// for targets `f` (n × dt).
pub struct HintGrads {
    pub value: f64,
    pub dh: Vec<f32>,
    pub dw: Vec<f32>,
    pub db: Vec<f32>,
}

/// The hint loss of one batch (see [`HintKind`]) and its gradients. The three products
/// (`P = h W + b`, `dW = hᵀ dP`, `dh = dP Wᵀ`) run on the GEMM; the value and `dP` per row in f64.
pub fn hint_loss(h: &[f32], w: &[f32], b: &[f32], f: &[f32], ds: usize, kind: HintKind, weight: f64) -> HintGrads {
    let dt = b.len();
    let n = h.len() / ds.max(1);
    let (hv, wv) = (View::row_major(h, n, ds), View::row_major(w, ds, dt));
    let mut p = vec![0f32; n * dt];
    product(&mut p, false, hv, wv);
    p.chunks_mut(dt.max(1)).for_each(|row| row.iter_mut().zip(b).for_each(|(v, &bj)| *v += bj));
    let mut dp = vec![0f32; n * dt];
    let mut value = 0.0;
    for i in 0..n {
        let (pi, fi) = (&p[i * dt..(i + 1) * dt], &f[i * dt..(i + 1) * dt]);
        value += row_gradient(pi, fi, &mut dp[i * dt..(i + 1) * dt], kind, weight, n);
    }
    let dpv = View::row_major(&dp, n, dt);
    let mut dw = vec![0f32; ds * dt];
    product(&mut dw, false, hv.transposed(), dpv);
    let mut dh = vec![0f32; n * ds];
    product(&mut dh, false, dpv, wv.transposed());
    let mut db = vec![0f64; dt];
    dp.chunks(dt.max(1)).for_each(|row| db.iter_mut().zip(row).for_each(|(d, &g)| *d += g as f64));
    HintGrads { value, dh, dw, db: db.into_iter().map(|v| v as f32).collect() }
}

/// One row's share of the hint value, and its gradient with respect to the row's projection.
fn row_gradient(pi: &[f32], fi: &[f32], out: &mut [f32], kind: HintKind, weight: f64, n: usize) -> f64 {
    let dt = pi.len();
    match kind {
        HintKind::Mse => {
            let scale = weight / (n * dt) as f64;
            let mut value = 0.0;
            for j in 0..dt {
                let d = pi[j] as f64 - fi[j] as f64;
                value += scale * d * d;
                out[j] = (2.0 * scale * d) as f32;
            }
            value
        }
        HintKind::Cosine => {
            let np = pi.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>().sqrt();
            let nf = fi.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>().sqrt();
            let scale = weight / n as f64;
            if np == 0.0 || nf == 0.0 {
                return scale;
            }
            let cos = pi.iter().zip(fi).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>() / (np * nf);
            for j in 0..dt {
                out[j] = (-scale * (fi[j] as f64 / (np * nf) - cos * pi[j] as f64 / (np * np))) as f32;
            }
            scale * (1.0 - cos)
        }
    }
}

/// The learned projection and its Adam state (β = 0.9, 0.999, ε = 1e-8).
pub(crate) struct Projection {
    pub w: Vec<f32>,
    pub b: Vec<f32>,
    moments: Vec<(f64, f64)>,
    step: i32,
    lr: f64,
}

impl Projection {
    /// PyTorch's `nn.Linear` initialisation (uniform in ±1/√ds), seeded.
    pub(crate) fn new(ds: usize, dt: usize, lr: f64, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let bound = 1.0 / (ds.max(1) as f32).sqrt();
        let w = (0..ds * dt).map(|_| rng.gen_range(-bound..bound)).collect();
        let b = (0..dt).map(|_| rng.gen_range(-bound..bound)).collect();
        Self { w, b, moments: vec![(0.0, 0.0); ds * dt + dt], step: 0, lr }
    }

    /// Everything a resumed run needs to continue bit-identically: weights, moments, step.
    pub(crate) fn state(&self) -> Vec<(String, Vec<f64>)> {
        let wide = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
        vec![
            ("hint.w".into(), wide(&self.w)),
            ("hint.b".into(), wide(&self.b)),
            ("hint.m".into(), self.moments.iter().map(|m| m.0).collect()),
            ("hint.v".into(), self.moments.iter().map(|m| m.1).collect()),
            ("hint.step".into(), vec![self.step as f64]),
        ]
    }

    /// Restores [`Projection::state`]; false (and nothing changed) when it does not fit.
    pub(crate) fn restore(&mut self, state: &[(String, Vec<f64>)]) -> bool {
        let get = |name: &str, len: usize| state.iter().find(|(n, v)| n == name && v.len() == len).map(|(_, v)| v.as_slice());
        let (w, b, k) = (self.w.len(), self.b.len(), self.moments.len());
        let (Some(wv), Some(bv), Some(m), Some(v), Some(step)) = (get("hint.w", w), get("hint.b", b), get("hint.m", k), get("hint.v", k), get("hint.step", 1))
        else {
            return false;
        };
        self.w = wv.iter().map(|&x| x as f32).collect();
        self.b = bv.iter().map(|&x| x as f32).collect();
        self.moments = m.iter().copied().zip(v.iter().copied()).collect();
        self.step = step[0] as i32;
        true
    }

    fn adam(&mut self, dw: &[f32], db: &[f32]) {
        self.step += 1;
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        let (c1, c2) = (1.0 - b1.powi(self.step), 1.0 - b2.powi(self.step));
        let params = self.w.iter_mut().chain(self.b.iter_mut());
        for ((p, g), m) in params.zip(dw.iter().chain(db)).zip(self.moments.iter_mut()) {
            let g = *g as f64;
            m.0 = b1 * m.0 + (1.0 - b1) * g;
            m.1 = b2 * m.1 + (1.0 - b2) * g * g;
            *p -= (self.lr * (m.0 / c1) / ((m.1 / c2).sqrt() + eps)) as f32;
        }
    }
}

/// The identity on the student's hidden layer whose backward adds the hint's gradient; its
/// forward computes the hint on the batch and steps the projection.
pub(crate) struct HintOp {
    pub projection: Arc<Mutex<Projection>>,
    /// The batch's teacher features (rows × dt).
    pub target: Vec<f32>,
    pub kind: HintKind,
    pub weight: f64,
    pub ds: usize,
    dh: Vec<f32>,
}

impl HintOp {
    pub(crate) fn new(projection: Arc<Mutex<Projection>>, target: Vec<f32>, hint: &HintTargets, ds: usize) -> Self {
        Self { projection, target, kind: hint.kind, weight: hint.weight, ds, dh: Vec::new() }
    }
}

impl HostOp for HintOp {
    fn forward(&mut self, x: &[f32], out: &mut [f32]) {
        out.copy_from_slice(x);
        let Ok(mut proj) = self.projection.lock() else { return };
        let g = hint_loss(x, &proj.w, &proj.b, &self.target, self.ds, self.kind, self.weight);
        proj.adam(&g.dw, &g.db);
        self.dh = g.dh;
    }

    fn backward(&self, grad_out: &[f32], grad_x: &mut [f32]) {
        for (i, gx) in grad_x.iter_mut().enumerate() {
            *gx += grad_out[i] + self.dh.get(i).copied().unwrap_or(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hint_gradients_match_finite_differences() {
        // 3 rows, ds = 2 student features, dt = 3 teacher features.
        let h = [0.3f32, -1.2, 0.8, 0.5, -0.4, 1.1];
        let w = [0.2f32, -0.5, 0.7, 1.0, 0.3, -0.8];
        let b = [0.1f32, 0.0, -0.2];
        let f = [1.0f32, -0.5, 0.2, 0.3, 0.9, -1.1, -0.7, 0.4, 0.6];
        for kind in [HintKind::Mse, HintKind::Cosine] {
            let g = hint_loss(&h, &w, &b, &f, 2, kind, 0.7);
            let eps = 1e-3f32;
            let fd = |v: &dyn Fn(f32) -> f64| (v(eps) - v(-eps)) / (2.0 * eps as f64);
            for i in 0..h.len() {
                let num = fd(&|e| {
                    let mut hh = h;
                    hh[i] += e;
                    hint_loss(&hh, &w, &b, &f, 2, kind, 0.7).value
                });
                assert!((num - g.dh[i] as f64).abs() < 2e-4, "{kind:?} dh[{i}]: {num} vs {}", g.dh[i]);
            }
            for i in 0..w.len() {
                let num = fd(&|e| {
                    let mut ww = w;
                    ww[i] += e;
                    hint_loss(&h, &ww, &b, &f, 2, kind, 0.7).value
                });
                assert!((num - g.dw[i] as f64).abs() < 2e-4, "{kind:?} dw[{i}]: {num} vs {}", g.dw[i]);
            }
            for i in 0..b.len() {
                let num = fd(&|e| {
                    let mut bb = b;
                    bb[i] += e;
                    hint_loss(&h, &w, &bb, &f, 2, kind, 0.7).value
                });
                assert!((num - g.db[i] as f64).abs() < 2e-4, "{kind:?} db[{i}]: {num} vs {}", g.db[i]);
            }
        }
        // A perfect projection has no MSE hint.
        let exact = hint_loss(&[1.0, 2.0], &[1.0, 0.0, 0.0, 1.0], &[0.0, 0.0], &[1.0, 2.0], 2, HintKind::Mse, 1.0);
        assert_eq!(exact.value, 0.0);
    }

    /// The products by plain f64 loops, for comparing with the GEMM on a shape with several
    /// blocks of every dimension.
    fn reference(h: &[f32], w: &[f32], b: &[f32], f: &[f32], ds: usize, kind: HintKind) -> HintGrads {
        let (dt, n) = (b.len(), h.len() / ds);
        let p: Vec<f32> =
            (0..n * dt).map(|k| (b[k % dt] as f64 + (0..ds).map(|c| h[k / dt * ds + c] as f64 * w[c * dt + k % dt] as f64).sum::<f64>()) as f32).collect();
        let mut dp = vec![0f32; n * dt];
        let value = (0..n).map(|i| row_gradient(&p[i * dt..(i + 1) * dt], &f[i * dt..(i + 1) * dt], &mut dp[i * dt..(i + 1) * dt], kind, 1.0, n)).sum();
        let dw = (0..ds * dt).map(|k| (0..n).map(|i| h[i * ds + k / dt] as f64 * dp[i * dt + k % dt] as f64).sum::<f64>() as f32).collect();
        let dh = (0..n * ds).map(|k| (0..dt).map(|j| dp[k / ds * dt + j] as f64 * w[k % ds * dt + j] as f64).sum::<f64>() as f32).collect();
        let db = (0..dt).map(|j| (0..n).map(|i| dp[i * dt + j] as f64).sum::<f64>() as f32).collect();
        HintGrads { value, dh, dw, db }
    }

    #[test]
    fn the_gemm_products_match_plain_loops() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (n, ds, dt) = (37, 19, 53);
        let mut draw = |len: usize| (0..len).map(|_| rng.gen_range(-1.0f32..1.0)).collect::<Vec<_>>();
        let (h, w, b, f) = (draw(n * ds), draw(ds * dt), draw(dt), draw(n * dt));
        for kind in [HintKind::Mse, HintKind::Cosine] {
            let (got, want) = (hint_loss(&h, &w, &b, &f, ds, kind, 1.0), reference(&h, &w, &b, &f, ds, kind));
            assert!((got.value - want.value).abs() < 1e-5 * want.value.abs().max(1.0), "{kind:?}: {} vs {}", got.value, want.value);
            for (name, g, r) in [("dh", &got.dh, &want.dh), ("dw", &got.dw, &want.dw), ("db", &got.db, &want.db)] {
                let worst = g.iter().zip(r.iter()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(worst < 1e-5, "{kind:?} {name}: off by {worst}");
            }
        }
    }
}
