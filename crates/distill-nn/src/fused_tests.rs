//! The fast path against dfdx's tape (the unfused reference): forward values, gradients, whole
//! training runs with every optimiser, and which networks take it.

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::mlp::ParamMut;
use crate::train::tests::{blobs, config};
use crate::train::{CpuTrainee, Job};
use crate::{train, CrossEntropy, HintonKd, Layer, Loss, MlpShape, TrainOptions, TrainTargets};

fn random(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

/// Value for value (`==`: the tape path may give -0 where this one gives +0).
fn same(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g == w, "{what}[{i}]: fast path {g} vs tape {w}");
    }
}

/// Networks of every layer combination the fast path runs, on small ragged shapes.
fn plain_shapes() -> Vec<MlpShape> {
    use Activation::{Gelu, Relu, Tanh};
    let act = Layer::Activation;
    vec![
        MlpShape::mlp(5, &[7, 6], 3, Relu, 0.3, false),
        MlpShape::mlp(5, &[7], 3, Tanh, 0.25, false),
        MlpShape::mlp(5, &[9, 4], 3, Tanh, 0.0, false),
        MlpShape::mlp(5, &[6], 4, Gelu, 0.2, false),
        MlpShape::mlp(5, &[6], 4, Gelu, 0.0, false),
        MlpShape::from_layers(5, vec![Layer::Dense(6), Layer::Dropout(0.4), Layer::Dense(8), act(Relu), Layer::Dropout(0.0), Layer::Dense(3)]).unwrap(),
        MlpShape::from_layers(5, vec![Layer::Dense(6), Layer::Dense(3)]).unwrap(),
    ]
}

/// Random masks of the tape's kind: 0 or 1/(1-p).
fn masks_for(model: &Mlp, rows: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<f32>> {
    model.dropout_layers().iter().map(|&(p, h)| (0..rows * h).map(|_| if rng.gen::<f32>() < p { 0.0 } else { 1.0 / (1.0 - p) }).collect()).collect()
}

#[test]
fn forward_and_gradients_match_the_tape() {
    crate::flush_denormals();
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    for shape in plain_shapes() {
        let model = Mlp::new(shape.clone(), 3);
        let plan = Plan::of(&model).unwrap_or_else(|| panic!("{shape:?} is plain"));
        let rows = 11;
        let x = random(&mut rng, rows * shape.inputs());
        let g = random(&mut rng, rows * shape.classes());
        let masks = masks_for(&model, rows, &mut rng);

        let flat = {
            let mut m = Mlp::new(shape.clone(), 3);
            m.param_values().concat()
        };
        let layers = plan.split(&flat);
        let mut values = Values::default();
        forward(&plan, &layers, &x, rows, Some(&masks), &mut values, false);
        let mut grads = vec![f32::NAN; flat.len()];
        let mut unchanged = flat.clone();
        backward(&plan, &mut unchanged, &x, rows, &masks, &values, &g, Sink::Store(&mut grads), &mut GradBuffers::default());
        assert_eq!(unchanged, flat, "storing gradients updates nothing");

        let dev = model.dev.clone();
        let mask_tensors: Vec<_> = masks.iter().zip(model.dropout_layers()).map(|(m, (_, h))| dev.tensor_from_vec(m.clone(), (rows, h))).collect();
        let logits = model.forward(dev.tensor_from_vec(x.clone(), (rows, shape.inputs())).leaky_traced(), Some(&mask_tensors));
        same(&format!("{shape:?} logits"), values.logits(&plan), &logits.as_vec());
        let mut tape = (logits * dev.tensor_from_vec(g.clone(), (rows, shape.classes()))).sum::<Rank0, _>().backward();
        let mut model = model;
        let want: Vec<f32> = model
            .params_mut()
            .into_iter()
            .flat_map(|p| match p {
                ParamMut::Matrix(t) => tape.get_or_alloc_mut(t).unwrap().to_vec(),
                ParamMut::Vector(t) => tape.get_or_alloc_mut(t).unwrap().to_vec(),
            })
            .collect();
        same(&format!("{shape:?} gradients"), &grads, &want);
        assert!(grads.iter().any(|v| *v != 0.0), "{shape:?}: the gradients carry something");

        // Evaluation mode: no masks, as the tape's forward without them.
        let layers = plan.split(&flat);
        forward(&plan, &layers, &x, rows, None, &mut values, true);
        same(&format!("{shape:?} eval"), values.logits(&plan), &model.forward(dev.tensor_from_vec(x.clone(), (rows, shape.inputs())), None).as_vec());
    }
}

/// Trains on the tape path (what `train` did for every network before the fast path).
fn train_on_tape(model: &mut Mlp, data: &TrainTargets<'_>, loss: &dyn Loss, options: &TrainOptions) -> Vec<crate::EpochStats> {
    let job = Job::new(model, data, loss, options, None).unwrap();
    let mut trainee = CpuTrainee::new(model, &options.config.optimizer);
    job.run(&mut trainee).unwrap()
}

#[test]
fn training_runs_end_with_the_tape_paths_weights() {
    let (x, y) = blobs(90, 6);
    let x: Vec<f32> = x.chunks(2).flat_map(|r| [r[0], r[1], r[0] * r[1], r[0] - r[1], 0.5]).collect();
    let teacher: Vec<f32> = x.chunks(5).flat_map(|r| [r[0], r[1] - r[2], r[3], r[4] * r[0]]).collect();
    let optimisers = [
        "{epochs: 3, batch: 16, optimizer: {kind: adam, lr: 0.01}}",
        "{epochs: 3, batch: 16, optimizer: {kind: adamw, lr: 0.01, weight_decay: 0.05}, clip_grad_norm: 0.5}",
        "{epochs: 3, batch: 16, optimizer: {kind: adam, lr: 0.01, weight_decay: 1.0e-3, betas: [0.8, 0.99], eps: 1.0e-7}}",
        "{epochs: 3, batch: 16, optimizer: {kind: sgd, lr: 0.05, momentum: 0.9, nesterov: true, weight_decay: 1.0e-4}, schedule: {kind: cosine, warmup_epochs: 1.5}}",
        "{epochs: 3, batch: 16, optimizer: {kind: sgd, lr: 0.05, momentum: 0.9}, clip_grad_norm: 0.1}",
        "{epochs: 3, batch: 16, optimizer: {kind: sgd, lr: 0.05}}",
    ];
    for shape in plain_shapes() {
        let classes = shape.classes();
        let labels: Vec<u32> = y.iter().map(|&c| c % classes as u32).collect();
        let teacher: Vec<f32> = teacher.chunks(4).flat_map(|r| r.iter().cycle().take(classes).copied().collect::<Vec<_>>()).collect();
        let data = TrainTargets { x: &x, labels: &labels, teacher_logits: Some(&teacher) };
        for (i, text) in optimisers.iter().enumerate() {
            let options = config(text);
            let kd = HintonKd { temperature: 2.0, alpha: 0.5 };
            let loss: &dyn Loss = if i % 2 == 0 { &CrossEntropy } else { &kd };
            let mut fast = Mlp::new(shape.clone(), 8);
            let fast_history = train(&mut fast, &data, loss, &options, None).unwrap();
            let mut tape = Mlp::new(shape.clone(), 8);
            let tape_history = train_on_tape(&mut tape, &data, loss, &options);
            let what = format!("{shape:?} {text}");
            assert_eq!(fast_history, tape_history, "{what}: losses");
            for (a, b) in fast.param_values().iter().zip(tape.param_values()) {
                same(&what, a, &b);
            }
            assert_ne!(fast.param_values(), Mlp::new(shape.clone(), 8).param_values(), "{what}: training moved the weights");
        }
    }
}

/// Weights wider than one Adam block (300 rows: blocks of 128 and 172) and narrower ones, with
/// and without clipping (which takes the gradient buffer instead of the blocks).
#[test]
fn adam_inside_the_backward_pass_matches_the_tape() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let (rows, inputs) = (70, 300);
    let x = random(&mut rng, rows * inputs);
    let labels: Vec<u32> = (0..rows as u32).map(|i| i % 4).collect();
    let data = TrainTargets { x: &x, labels: &labels, teacher_logits: None };
    for text in ["{epochs: 2, batch: 32, optimizer: {kind: adam, lr: 0.01}}", "{epochs: 2, batch: 32, optimizer: {kind: adam, lr: 0.01}, clip_grad_norm: 0.2}"]
    {
        let shape = MlpShape::mlp(inputs, &[200, 140], 4, Activation::Relu, 0.2, false);
        let options = config(text);
        let mut fast = Mlp::new(shape.clone(), 5);
        let fast_history = train(&mut fast, &data, &CrossEntropy, &options, None).unwrap();
        let mut tape = Mlp::new(shape.clone(), 5);
        assert_eq!(fast_history, train_on_tape(&mut tape, &data, &CrossEntropy, &options), "{text}");
        for (a, b) in fast.param_values().iter().zip(tape.param_values()) {
            same(text, a, &b);
        }
    }
}

#[test]
fn prediction_matches_the_tape_over_blocks() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let shape = MlpShape::mlp(13, &[40, 17], 5, Activation::Relu, 0.5, false);
    let model = Mlp::new(shape, 4);
    let rows = 2 * crate::PREDICT_BLOCK_ROWS + 33;
    let x = random(&mut rng, rows * 13);
    let want: Vec<f32> = x
        .chunks(crate::PREDICT_BLOCK_ROWS * 13)
        .flat_map(|b| model.forward(model.dev.tensor_from_vec(b.to_vec(), (b.len() / 13, 13)), None).as_vec())
        .collect();
    same("logits", &crate::predict_logits(&model, &x), &want);
    // Fewer blocks than threads: the products use every thread instead, same bits.
    same("one block", &crate::predict_logits(&model, &x[..40 * 13]), &want[..40 * 5]);
}

#[test]
fn only_plain_networks_take_the_fast_path() {
    let plan = Plan::of(&Mlp::new(MlpShape::mlp(4, &[8], 3, Activation::Tanh, 0.2, false), 1)).unwrap();
    let layer = |inputs, outputs, act, mask| PlanLayer { inputs, outputs, act, mask };
    assert_eq!(plan.layers, [layer(4, 8, Some(Activation::Tanh), Some(0)), layer(8, 3, None, None)]);
    assert_eq!(plan.param_lens(), [32, 8, 24, 3]);
    let not_plain = [
        vec![Layer::Dense(4), Layer::LayerNorm, Layer::Dense(2)],
        vec![Layer::Dense(4), Layer::Residual(vec![Layer::Dense(4)]), Layer::Dense(2)],
        vec![Layer::Dropout(0.5), Layer::Dense(2)],
        vec![Layer::Dense(4), Layer::Dropout(0.5), Layer::Activation(Activation::Relu), Layer::Dense(2)],
        vec![Layer::Dense(4), Layer::Activation(Activation::Relu), Layer::Activation(Activation::Tanh), Layer::Dense(2)],
    ];
    for layers in not_plain {
        let model = Mlp::new(MlpShape::from_layers(3, layers.clone()).unwrap(), 1);
        assert_eq!(Plan::of(&model), None, "{layers:?}");
    }
}
