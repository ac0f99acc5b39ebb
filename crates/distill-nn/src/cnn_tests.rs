//! Whole convolutional networks: gradients through the tape, learning, determinism, checkpoints
//! and shape errors (the conv and pool ops alone are tested beside them).

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::conv::tests::{assert_close, numeric_gradient, random};
use crate::mlp::ParamMut;
use crate::{accuracy, load_weights, predict_logits, save_weights, train, CrossEntropy, Mlp, MlpShape, TrainOptions, TrainTargets};
use distill_spec::{ImageSpec, ModelSpec};

fn shape(model: &str, image: ImageSpec, classes: usize) -> MlpShape {
    let spec: ModelSpec = serde_yaml::from_str(model).unwrap();
    MlpShape::from_spec(&spec, image.height * image.width * image.channels, classes).with_image(Some(image))
}

const SMALL: &str = "{arch: cnn, conv: [{filters: 4, kernel: 3, padding: 1}], pool: 2, hidden: [8]}";
const SIX: ImageSpec = ImageSpec { height: 6, width: 6, channels: 1 };

/// 6×6 images of one horizontal (class 0) or vertical (class 1) bar anywhere, plus noise.
fn bars(n: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for i in 0..n {
        let (class, at) = ((i % 2) as u32, rng.gen_range(0..6));
        for r in 0..6 {
            for c in 0..6 {
                let on = if class == 0 { r == at } else { c == at };
                x.push(if on { 1.0 } else { 0.0 } + rng.gen_range(-0.3..0.3));
            }
        }
        y.push(class);
    }
    (x, y)
}

fn options(epochs: usize) -> TrainOptions {
    TrainOptions {
        epochs,
        batch: 16,
        lr: 1e-2,
        seed: 3,
        name: "cnn".into(),
        max_steps: None,
        config: Default::default(),
        checkpoint: None,
        device: Default::default(),
        train_key: "train".into(),
        hint: None,
    }
}

#[test]
fn whole_networks_have_the_true_gradient() {
    for model in [
        "{arch: cnn, layers: [{conv: {filters: 2, kernel: 2, padding: 1}}, {activation: tanh}, {pool: {size: 2, kind: avg}}, {conv: {filters: 3, kernel: 2}}, {activation: tanh}, {dense: 4}, {activation: tanh}]}",
        "{arch: cnn, conv: [{filters: 3, kernel: 3, stride: 2, padding: 1}], pool: 2, activation: tanh, hidden: [5]}",
        "{arch: cnn, layers: [{conv: {filters: 2, kernel: 3, padding: 1}}, {residual: [{conv: {filters: 2, kernel: 3, padding: 1}}, {activation: tanh}]}, {norm: layer}]}",
    ] {
        let image = ImageSpec { height: 4, width: 4, channels: 2 };
        let shape = shape(model, image, 3);
        shape.check().unwrap();
        let mut net = Mlp::new(shape.clone(), 5);
        let dev = net.dev.clone();
        // Continuous random inputs: no two values in a max-pool window are within the step.
        let x = random(2 * 32, 9);
        let g: Vec<f32> = (0..6).map(|i| i as f32 * 0.3 - 0.8).collect();
        let objective = |m: &Mlp| -> f64 {
            let out = m.forward(dev.tensor_from_vec(x.clone(), (2, 32)), None).as_vec();
            out.iter().zip(&g).map(|(a, b)| *a as f64 * *b as f64).sum()
        };
        let logits = net.forward(dev.tensor_from_vec(x.clone(), (2, 32)).leaky_traced(), None);
        let mut grads = (logits * dev.tensor_from_vec(g.clone(), (2, 3))).sum::<Rank0, _>().backward();
        let analytic: Vec<Vec<f32>> = net
            .params_mut()
            .into_iter()
            .map(|p| match p {
                ParamMut::Matrix(t) => grads.get_or_alloc_mut(t).unwrap().to_vec(),
                ParamMut::Vector(t) => grads.get_or_alloc_mut(t).unwrap().to_vec(),
            })
            .collect();
        let values = net.param_values();
        let mut probe = Mlp::new(shape.clone(), 5);
        for (i, param) in values.iter().enumerate() {
            let numeric = numeric_gradient(param, 1e-3, |v| {
                let mut all = values.clone();
                all[i] = v.to_vec();
                probe.set_param_values(&all);
                objective(&probe)
            });
            assert_close(&analytic[i], &numeric, &format!("{model} param {i}"));
        }
    }
}

#[test]
fn a_small_cnn_learns_deterministically() {
    let (x, y) = bars(200, 1);
    let data = TrainTargets { x: &x, labels: &y, teacher_logits: None };
    let mut a = Mlp::new(shape(SMALL, SIX, 2), 7);
    let history = train(&mut a, &data, &CrossEntropy, &options(15), None).unwrap();
    assert!(history.last().unwrap().train_loss < 0.5 * history[0].train_loss, "{history:?}");
    let (tx, ty) = bars(100, 2);
    assert!(accuracy(&predict_logits(&a, &tx), &ty, 2) > 0.9);
    let mut b = Mlp::new(shape(SMALL, SIX, 2), 7);
    train(&mut b, &data, &CrossEntropy, &options(15), None).unwrap();
    assert_eq!(predict_logits(&a, &tx), predict_logits(&b, &tx), "same seed, same weights");
}

#[test]
fn conv_weights_round_trip_in_the_pytorch_layout() {
    let model = Mlp::new(shape(SMALL, SIX, 2), 1);
    let bytes = save_weights(&model, Default::default()).unwrap();
    let file = ::safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(file.tensor("convs.0.weight").unwrap().shape(), [4, 1, 3, 3]);
    assert_eq!(file.tensor("convs.0.bias").unwrap().shape(), [4]);
    // Dense layers read the pooled 3×3×4 map flattened.
    assert_eq!(file.tensor("layers.0.weight").unwrap().shape(), [8, 36]);
    let mut copy = Mlp::new(shape(SMALL, SIX, 2), 2);
    let (x, _) = bars(5, 3);
    assert_ne!(predict_logits(&model, &x), predict_logits(&copy, &x));
    load_weights(&mut copy, &bytes).unwrap();
    assert_eq!(predict_logits(&model, &x), predict_logits(&copy, &x));
    let mut wider = Mlp::new(shape("{arch: cnn, conv: [{filters: 5, kernel: 3, padding: 1}], pool: 2, hidden: [8]}", SIX, 2), 1);
    assert!(load_weights(&mut wider, &bytes).unwrap_err().to_string().contains("convs.0.weight"));
}

#[test]
fn params_are_counted_and_initialised_per_seed() {
    let s = shape(SMALL, SIX, 2);
    // conv 3·3·1·4 + 4, dense 36·8 + 8, output 8·2 + 2.
    assert_eq!(s.param_count(), 40 + 296 + 18);
    assert_eq!(Mlp::new(s.clone(), 0).param_values().iter().map(Vec::len).sum::<usize>(), s.param_count());
    assert_eq!(Mlp::new(s.clone(), 4).param_values(), Mlp::new(s.clone(), 4).param_values());
    assert_ne!(Mlp::new(s.clone(), 4).param_values(), Mlp::new(s, 5).param_values());
}

#[test]
fn shapes_that_do_not_fit_are_errors_not_panics() {
    let spec: ModelSpec = serde_yaml::from_str(SMALL).unwrap();
    let no_image = MlpShape::from_spec(&spec, 36, 2);
    assert!(no_image.check().unwrap_err().contains("data.image"));
    let wrong = MlpShape::from_spec(&spec, 35, 2).with_image(Some(SIX));
    assert!(wrong.check().unwrap_err().contains("6×6×1 = 36 values per row, but there are 35 features"));
    let big = shape("{arch: cnn, conv: [{filters: 2, kernel: 7}]}", SIX, 2);
    assert!(big.check().unwrap_err().contains("7×7 kernel is larger"));
    let after_dense = shape("{arch: cnn, layers: [{dense: 4}, {pool: 2}]}", SIX, 2);
    assert!(after_dense.check().is_err());
    // Such networks still build, and training refuses them.
    let (x, y) = bars(8, 1);
    for bad in [no_image, big, after_dense] {
        let mut m = Mlp::new(bad, 1);
        assert!(train(&mut m, &TrainTargets { x: &x, labels: &y, teacher_logits: None }, &CrossEntropy, &options(1), None).is_err());
    }
}
