//! The resolved YAML of the sections cache keys hash. `teacher.train` and the baseline's
//! `student.train` are hashed as serialised, so their form must not change without bumping
//! the key versions in `distill-pipeline/src/keys.rs`; augmentations are pinned too (they
//! appear in `pipeline.resolved.yaml`, which checkpoint keys cover).

use distill_spec::{AugmentSpec, TrainSpec};

fn yaml<T: serde::Serialize + serde::de::DeserializeOwned>(text: &str) -> String {
    let value: T = serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    serde_yaml::to_string(&value).unwrap()
}

#[test]
fn train_sections_serialise_as_in_earlier_versions() {
    let cases = [
        ("{}", "epochs: 20\nbatch: 32\noptimizer:\n  kind: adam\n  lr: 0.001\n"),
        ("{epochs: 5, batch: 8, optimizer: {kind: adam, lr: 0.01}}", "epochs: 5\nbatch: 8\noptimizer:\n  kind: adam\n  lr: 0.01\n"),
        ("{optimizer: {lr: 3.0e-3}}", "epochs: 20\nbatch: 32\noptimizer:\n  kind: adam\n  lr: 0.003\n"),
        (
            "{optimizer: {kind: adamw, lr: 0.001, weight_decay: 0.05, betas: [0.8, 0.99], eps: 1.0e-7}}",
            "epochs: 20\nbatch: 32\noptimizer:\n  kind: adamw\n  lr: 0.001\n  weight_decay: 0.05\n  betas:\n  - 0.8\n  - 0.99\n  eps: 1e-7\n",
        ),
        (
            "{optimizer: {kind: sgd, lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 5.0e-4}}",
            "epochs: 20\nbatch: 32\noptimizer:\n  kind: sgd\n  lr: 0.1\n  weight_decay: 0.0005\n  momentum: 0.9\n  nesterov: true\n",
        ),
        (
            "{schedule: {kind: cosine, warmup_epochs: 2, min_lr: 1.0e-5}, clip_grad_norm: 1.0, early_stopping: {patience: 3}}",
            "epochs: 20\nbatch: 32\noptimizer:\n  kind: adam\n  lr: 0.001\nschedule:\n  kind: cosine\n  warmup_epochs: 2.0\n  min_lr: 0.00001\nclip_grad_norm: 1.0\nearly_stopping:\n  patience: 3\n",
        ),
        (
            "{schedule: {kind: step, every: 30, gamma: 0.1}}",
            "epochs: 20\nbatch: 32\noptimizer:\n  kind: adam\n  lr: 0.001\nschedule:\n  kind: step\n  every: 30\n  gamma: 0.1\n",
        ),
        ("{schedule: {warmup_epochs: 1}}", "epochs: 20\nbatch: 32\noptimizer:\n  kind: adam\n  lr: 0.001\nschedule:\n  kind: constant\n  warmup_epochs: 1.0\n"),
        ("{schedule: {kind: cosine}}", "epochs: 20\nbatch: 32\noptimizer:\n  kind: adam\n  lr: 0.001\nschedule:\n  kind: cosine\n"),
    ];
    let wrong: Vec<String> =
        cases.iter().filter(|(text, want)| yaml::<TrainSpec>(text) != *want).map(|(text, _)| format!("{text}: {:?}", yaml::<TrainSpec>(text))).collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn augmentations_serialise_as_in_earlier_versions() {
    let cases = [
        ("{kind: gaussian_noise, std: 0.5, copies: 2}", "kind: gaussian_noise\ncopies: 2\nstd: 0.5\n"),
        ("{kind: mixup, alpha: 0.2}", "kind: mixup\nalpha: 0.2\n"),
        ("{kind: oversample, method: smote, ratio: 0.5, neighbours: 3}", "kind: oversample\nmethod: smote\nratio: 0.5\nneighbours: 3\n"),
        ("{kind: shift, pixels: 2, copies: 1}", "kind: shift\ncopies: 1\npixels: 2\n"),
        ("{kind: flip}", "kind: flip\n"),
    ];
    let wrong: Vec<String> =
        cases.iter().filter(|(text, want)| yaml::<AugmentSpec>(text) != *want).map(|(text, _)| format!("{text}: {:?}", yaml::<AugmentSpec>(text))).collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}
