//! Exported graphs run by tract against distill-nn's own forward pass.

use distill_nn::{predict_logits, save_weights, Layer, Mlp, MlpShape};
use distill_spec::{Activation, ImageSpec};

use super::*;

fn rows(n: usize, width: usize, seed: u32) -> Vec<f32> {
    // A small deterministic spread of values in [-2, 2].
    (0..n * width).map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 4001) as f32 / 1000.0 - 2.0).collect()
}

fn export_of(model: &Mlp, scaling: Option<Scaling>, format: ExportFormat, calibration: &[f32]) -> Vec<u8> {
    let weights = save_weights(model, Default::default()).unwrap();
    let shape = &model.shape;
    let net = Network { layers: shape.layers(), inputs: shape.inputs(), image: shape.image(), weights: &weights };
    export(&net, scaling, &[("k".into(), "v".into())], format, calibration).unwrap().bytes
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

fn mlp() -> Mlp {
    let layers = vec![
        Layer::Dense(12),
        Layer::LayerNorm,
        Layer::Activation(Activation::Gelu),
        Layer::Residual(vec![Layer::Dense(12), Layer::Activation(Activation::Tanh)]),
        Layer::Dropout(0.3),
        Layer::Activation(Activation::Relu),
        Layer::Dense(4),
    ];
    Mlp::new(MlpShape::from_layers(7, layers).unwrap(), 11)
}

fn cnn() -> Mlp {
    let spec: distill_spec::ModelSpec = serde_yaml::from_str(
        "{arch: cnn, layers: [{conv: {filters: 3, kernel: 3, padding: 1}}, {activation: relu}, \
         {residual: [{conv: {filters: 3, kernel: 3, padding: 1}}, {activation: tanh}]}, {pool: {size: 2, kind: avg}}, \
         {norm: layer}, {conv: {filters: 5, kernel: 2, stride: 2}}, {pool: 1}, {dense: 6}, {activation: relu}]}",
    )
    .unwrap();
    let image = ImageSpec { height: 8, width: 6, channels: 2 };
    let shape = MlpShape::from_spec(&spec, 96, 3).with_image(Some(image));
    shape.check().unwrap();
    Mlp::new(shape, 5)
}

#[test]
fn f32_graphs_compute_distills_logits() {
    for model in [mlp(), cnn()] {
        let width = model.shape.inputs();
        let x = rows(300, width, 1);
        let bytes = export_of(&model, None, ExportFormat::Onnx, &[]);
        let runner = OnnxRunner::from_bytes(&bytes).unwrap();
        assert_eq!(runner.inputs(), width);
        let ours = runner.logits(&x).unwrap();
        let d = max_diff(&ours, &predict_logits(&model, &x));
        assert!(d <= 1e-5, "{d}");
        assert_eq!(meta::props(&bytes).unwrap(), [("k".to_string(), "v".to_string())]);
    }
}

#[test]
fn the_scaling_is_in_the_graph() {
    let model = mlp();
    let (offset, factor): (Vec<f32>, Vec<f32>) = (0..7).map(|j| (j as f32 - 3.0, 0.5 + j as f32 / 10.0)).unzip();
    let raw = rows(50, 7, 2);
    let scaled: Vec<f32> = raw.iter().enumerate().map(|(i, v)| (v - offset[i % 7]) * factor[i % 7]).collect();
    let bytes = export_of(&model, Some(Scaling { offset: &offset, factor: &factor }), ExportFormat::Onnx, &[]);
    let ours = OnnxRunner::from_bytes(&bytes).unwrap().logits(&raw).unwrap();
    assert!(max_diff(&ours, &predict_logits(&model, &scaled)) <= 1e-5);
}

#[test]
fn int8_graphs_quantize_weights_and_activations_and_stay_close() {
    for model in [mlp(), cnn()] {
        let width = model.shape.inputs();
        let x = rows(200, width, 3);
        // (These networks are too small for int8 to be smaller: the QDQ nodes cost more than
        // the weights save; tests/export.rs checks the size on a real student.)
        let int8 = export_of(&model, None, ExportFormat::OnnxInt8, &x);
        let ours = OnnxRunner::from_bytes(&int8).unwrap().logits(&x).unwrap();
        let reference = predict_logits(&model, &x);
        let spread = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = max_diff(&ours, &reference);
        assert!(d > 0.0 && d < 0.1 * spread.max(1e-3), "int8 is close but not the same: {d} (logits up to {spread})");
    }
    let err = match export(
        &Network { layers: mlp().shape.layers(), inputs: 7, image: None, weights: &save_weights(&mlp(), Default::default()).unwrap() },
        None,
        &[],
        ExportFormat::OnnxInt8,
        &[],
    ) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("int8 without calibration rows"),
    };
    assert!(err.contains("calibration"), "{err}");
}

#[test]
fn weights_that_do_not_fit_are_an_error_naming_the_tensor() {
    let weights = save_weights(&mlp(), Default::default()).unwrap();
    let shape = MlpShape::from_layers(7, vec![Layer::Dense(13), Layer::Dense(4)]).unwrap();
    let net = Network { layers: shape.layers(), inputs: 7, image: None, weights: &weights };
    let err = export(&net, None, &[], ExportFormat::Onnx, &[]).err().unwrap().to_string();
    assert!(err.contains("layers.0.weight") && err.contains("[13, 7]"), "{err}");
}
