//! Post-training int8 quantization: weights symmetric per output channel (int8, zero point 0),
//! activations asymmetric uint8 with ranges calibrated on training rows, written as standard
//! QuantizeLinear/DequantizeLinear pairs (the QDQ format onnxruntime fuses into integer kernels).

/// An activation's uint8 quantization: `q = round(x / scale) + zero_point`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActQuant {
    pub scale: f32,
    pub zero_point: u8,
}

impl ActQuant {
    /// The range `[lo, hi]` seen in calibration, widened to hold 0 exactly (padding and ReLU
    /// zeros must stay exact).
    pub fn from_range(lo: f32, hi: f32) -> Self {
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        let scale = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
        let zero_point = (-lo / scale).round().clamp(0.0, 255.0) as u8;
        Self { scale, zero_point }
    }
}

/// `(min, max)` of each tensor over every calibration row.
pub(crate) fn ranges(tensors: &[Vec<f32>]) -> Vec<(f32, f32)> {
    tensors.iter().map(|t| t.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)))).collect()
}

/// A weight of `channels` output channels (the first dimension) as int8 values and one scale
/// per channel: `max |w| / 127`, so every channel uses the whole symmetric range.
pub(crate) fn per_channel(w: &[f32], channels: usize) -> (Vec<i8>, Vec<f32>) {
    let per = w.len() / channels.max(1);
    let scales: Vec<f32> = w
        .chunks(per.max(1))
        .map(|c| {
            let m = c.iter().fold(0f32, |m, v| m.max(v.abs()));
            if m > 0.0 {
                m / 127.0
            } else {
                1.0
            }
        })
        .collect();
    let values = w.iter().enumerate().map(|(i, v)| (v / scales[i / per.max(1)]).round().clamp(-127.0, 127.0) as i8).collect();
    (values, scales)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_use_each_channels_range() {
        let (q, s) = per_channel(&[0.5, -1.0, 0.0, 0.02, -0.005, 0.0], 2);
        assert_eq!(q, [64, -127, 0, 127, -32, 0]);
        assert!((s[0] - 1.0 / 127.0).abs() < 1e-9 && (s[1] - 0.02 / 127.0).abs() < 1e-9);
        // An all-zero channel still has a usable scale.
        assert_eq!(per_channel(&[0.0, 0.0], 1).1, [1.0]);
    }

    #[test]
    fn activation_ranges_hold_zero() {
        let a = ActQuant::from_range(0.0, 2.55);
        assert_eq!(a.zero_point, 0);
        assert!((a.scale - 0.01).abs() < 1e-7);
        let b = ActQuant::from_range(-1.0, 3.0);
        assert_eq!(b.zero_point, 64);
        // Positive-only ranges still include 0.
        assert_eq!(ActQuant::from_range(1.0, 2.0).zero_point, 0);
        assert_eq!(ActQuant::from_range(3.0, 3.0), ActQuant { scale: 3.0 / 255.0, zero_point: 0 });
    }
}
