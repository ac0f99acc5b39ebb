//! The teacher's soft targets `softmax(teacher / T)`, computed once per temperature for every
//! training row before training: they do not change while the student learns, so no epoch
//! recomputes them. Values are bit for bit what the losses would compute per batch.

/// Softmax of `z / t` into `out`, computed in f64 for stability.
pub(crate) fn softmax_t(z: &[f32], t: f64, out: &mut [f64]) {
    let max = z.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let mut sum = 0.0;
    for (o, &v) in out.iter_mut().zip(z) {
        *o = ((v as f64 - max) / t).exp();
        sum += *o;
    }
    for o in out.iter_mut() {
        *o /= sum;
    }
}

/// Soft targets of every training row at each temperature a loss reads (row-major `n × k`).
pub(crate) struct SoftTargets {
    k: usize,
    by_temperature: Vec<(f64, Vec<f64>)>,
}

impl SoftTargets {
    /// Soft targets of `teacher` (row-major, `k` wide) at each distinct temperature.
    pub(crate) fn new(teacher: &[f32], k: usize, temperatures: &[f64]) -> Self {
        let mut by_temperature: Vec<(f64, Vec<f64>)> = Vec::new();
        for &t in temperatures {
            if k == 0 || by_temperature.iter().any(|(seen, _)| seen.to_bits() == t.to_bits()) {
                continue;
            }
            let mut soft = vec![0.0; teacher.len()];
            for (row, out) in teacher.chunks_exact(k).zip(soft.chunks_exact_mut(k)) {
                softmax_t(row, t, out);
            }
            by_temperature.push((t, soft));
        }
        Self { k, by_temperature }
    }

    /// The rows of one batch, in batch order.
    pub(crate) fn gather(&self, rows: &[usize]) -> SoftBatch {
        let k = self.k;
        let by_temperature = self.by_temperature.iter().map(|(t, all)| (*t, rows.iter().flat_map(|&r| &all[r * k..(r + 1) * k]).copied().collect())).collect();
        SoftBatch { by_temperature }
    }
}

/// Soft targets of one batch's rows, per temperature; empty when the loss reads none.
#[derive(Default)]
pub struct SoftBatch {
    by_temperature: Vec<(f64, Vec<f64>)>,
}

impl SoftBatch {
    /// The batch's soft targets at temperature `t` (row-major `n × k`), if precomputed.
    pub fn at(&self, t: f64) -> Option<&[f64]> {
        self.by_temperature.iter().find(|(seen, _)| seen.to_bits() == t.to_bits()).map(|(_, v)| v.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gathered_rows_are_the_per_row_softmax_at_each_temperature() {
        let teacher = [1.0f32, 2.0, 3.0, -1.0, 0.0, 4.0, 0.5, 0.5, 0.5];
        let soft = SoftTargets::new(&teacher, 3, &[2.0, 4.0, 2.0]);
        assert_eq!(soft.by_temperature.len(), 2, "one table per distinct temperature");
        let batch = soft.gather(&[2, 0]);
        for t in [2.0, 4.0] {
            let mut want = vec![0.0; 6];
            softmax_t(&teacher[6..9], t, &mut want[..3]);
            softmax_t(&teacher[0..3], t, &mut want[3..]);
            assert_eq!(batch.at(t).unwrap(), want.as_slice());
        }
        assert!(batch.at(1.0).is_none());
        assert!(SoftBatch::default().at(2.0).is_none());
    }
}
