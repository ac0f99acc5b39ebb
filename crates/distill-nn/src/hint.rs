//! Feature hints (FitNets, Romero et al. 2015): a student hidden layer `h` predicts a teacher
//! hidden layer `f` through a learned linear projection `P = h W + b`, trained with the student
//! and dropped after. The term joins dfdx's tape as an identity op on `h` whose backward adds
//! the hint's gradient (`tape_op.rs`); the projection is updated on the host with Adam.

use std::sync::{Arc, Mutex};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

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
    pub dw: Vec<f64>,
    pub db: Vec<f64>,
}

/// The hint loss of one batch (see [`HintKind`]) and its gradients.
pub fn hint_loss(h: &[f32], w: &[f32], b: &[f32], f: &[f32], ds: usize, kind: HintKind, weight: f64) -> HintGrads {
    let dt = b.len();
    let n = h.len() / ds.max(1);
    // Row by row, inner loops over contiguous memory (the projection is ds × dt, row-major).
    let mut p = vec![0f64; n * dt];
    for i in 0..n {
        let pi = &mut p[i * dt..(i + 1) * dt];
        pi.iter_mut().zip(b).for_each(|(v, &bj)| *v = bj as f64);
        for c in 0..ds {
            let hic = h[i * ds + c] as f64;
            pi.iter_mut().zip(&w[c * dt..(c + 1) * dt]).for_each(|(v, &wj)| *v += hic * wj as f64);
        }
    }
    let mut dp = vec![0f64; n * dt];
    let mut value = 0.0;
    for i in 0..n {
        let (pi, fi) = (&p[i * dt..(i + 1) * dt], &f[i * dt..(i + 1) * dt]);
        let out = &mut dp[i * dt..(i + 1) * dt];
        match kind {
            HintKind::Mse => {
                let scale = weight / (n * dt) as f64;
                for j in 0..dt {
                    let d = pi[j] - fi[j] as f64;
                    value += scale * d * d;
                    out[j] = 2.0 * scale * d;
                }
            }
            HintKind::Cosine => {
                let np = pi.iter().map(|v| v * v).sum::<f64>().sqrt();
                let nf = fi.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>().sqrt();
                let scale = weight / n as f64;
                if np == 0.0 || nf == 0.0 {
                    value += scale;
                    continue;
                }
                let cos = pi.iter().zip(fi).map(|(a, &b)| a * b as f64).sum::<f64>() / (np * nf);
                value += scale * (1.0 - cos);
                for j in 0..dt {
                    out[j] = -scale * (fi[j] as f64 / (np * nf) - cos * pi[j] / (np * np));
                }
            }
        }
    }
    let mut dh = vec![0f32; n * ds];
    let mut dw = vec![0f64; ds * dt];
    let mut db = vec![0f64; dt];
    for i in 0..n {
        let dpi = &dp[i * dt..(i + 1) * dt];
        db.iter_mut().zip(dpi).for_each(|(d, g)| *d += g);
        for c in 0..ds {
            let (hic, wc) = (h[i * ds + c] as f64, &w[c * dt..(c + 1) * dt]);
            dw[c * dt..(c + 1) * dt].iter_mut().zip(dpi).for_each(|(d, g)| *d += hic * g);
            dh[i * ds + c] = dpi.iter().zip(wc).map(|(g, &wj)| g * wj as f64).sum::<f64>() as f32;
        }
    }
    HintGrads { value, dh, dw, db }
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

    fn adam(&mut self, dw: &[f64], db: &[f64]) {
        self.step += 1;
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        let (c1, c2) = (1.0 - b1.powi(self.step), 1.0 - b2.powi(self.step));
        let params = self.w.iter_mut().chain(self.b.iter_mut());
        for ((p, g), m) in params.zip(dw.iter().chain(db)).zip(self.moments.iter_mut()) {
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
                assert!((num - g.dh[i] as f64).abs() < 1e-4, "{kind:?} dh[{i}]: {num} vs {}", g.dh[i]);
            }
            for i in 0..w.len() {
                let num = fd(&|e| {
                    let mut ww = w;
                    ww[i] += e;
                    hint_loss(&h, &ww, &b, &f, 2, kind, 0.7).value
                });
                assert!((num - g.dw[i]).abs() < 1e-4, "{kind:?} dw[{i}]: {num} vs {}", g.dw[i]);
            }
            for i in 0..b.len() {
                let num = fd(&|e| {
                    let mut bb = b;
                    bb[i] += e;
                    hint_loss(&h, &w, &bb, &f, 2, kind, 0.7).value
                });
                assert!((num - g.db[i]).abs() < 1e-4, "{kind:?} db[{i}]: {num} vs {}", g.db[i]);
            }
        }
        // A perfect projection has no MSE hint.
        let exact = hint_loss(&[1.0, 2.0], &[1.0, 0.0, 0.0, 1.0], &[0.0, 0.0], &[1.0, 2.0], 2, HintKind::Mse, 1.0);
        assert_eq!(exact.value, 0.0);
    }
}
