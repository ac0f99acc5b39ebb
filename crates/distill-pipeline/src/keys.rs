//! Every stage's fingerprint: its config subtree, its inputs' fingerprints and the distill
//! version. A stage whose fingerprint has an intact artifact in the cache is skipped.

use std::path::Path;

use serde::Serialize;

use distill_cache::{hash_bytes, Fingerprint, FingerprintBuilder};
use distill_data::{resolve_path, LabelState, Prepared};
use distill_spec::{BudgetRule, Device, Pipeline, TeacherSpec, TrainSpec};

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn yaml<T: Serialize>(value: &T) -> String {
    serde_yaml::to_string(value).unwrap_or_default()
}

/// blake3 over the bytes of every plugin library the recipe lists (an architecture or loss from
/// a plugin changes when its library does); empty without plugins.
pub(crate) fn plugins_hash(p: &Pipeline, base_dir: &Path) -> String {
    let mut all = Vec::new();
    for plugin in &p.plugins {
        let bytes = resolve_path(base_dir, &plugin.path).ok().and_then(|path| std::fs::read(path).ok()).unwrap_or_default();
        all.extend(hash_bytes(&bytes).into_bytes());
    }
    if all.is_empty() {
        String::new()
    } else {
        hash_bytes(&all)
    }
}

pub(crate) fn teacher_sees_hidden(p: &Pipeline) -> bool {
    p.data.transfer.as_ref().is_none_or(|t| t.teacher_sees_hidden)
}

/// A GPU trains other (equally good) weights than the CPU: what it trains gets keys of its own,
/// so a CPU run never reuses it; CPU keys stay as they were.
fn trained_on(p: &Pipeline, builder: FingerprintBuilder) -> FingerprintBuilder {
    match p.device {
        Device::Cpu => builder,
        Device::Cuda(_) => builder.part("device", b"cuda"),
    }
}

/// The teacher's weights: everything that decides them.
/// `name` is the teacher's stage name: `teacher`, or `teacher2`, `teacher3`, … for `teachers`
/// (each its own init seed); the first teacher's key is what it was before `teachers` existed.
pub(crate) fn teacher(p: &Pipeline, spec: &TeacherSpec, name: &str, data: &Prepared, plugins: &str) -> Fingerprint {
    let mut builder = trained_on(p, FingerprintBuilder::new("teacher/v2"));
    if name != "teacher" {
        builder = builder.part("teacher.name", name.as_bytes());
    }
    builder
        .part("teacher.model", yaml(&spec.model).as_bytes())
        .part("teacher.train", yaml(&spec.train).as_bytes())
        .part("seed", &p.seed.to_le_bytes())
        .part("data", data.fingerprint.as_bytes())
        .part("data.transfer.teacher_sees_hidden", &[teacher_sees_hidden(p) as u8])
        .part("plugins", plugins.as_bytes())
        .part("distill_version", VERSION.as_bytes())
        .finish()
}

/// The logits: the teacher (its weights' blake3, or the external file's), the rows they label,
/// and how they are stored (`full` or `top_k=K`).
pub(crate) fn logits(teacher: &str, data: &Prepared, storage: &str) -> Fingerprint {
    FingerprintBuilder::new("logits/v2")
        .part("teacher", teacher.as_bytes())
        .part("data", data.fingerprint.as_bytes())
        .part("teacher.cache", storage.as_bytes())
        .part("distill_version", VERSION.as_bytes())
        .finish()
}

/// A teacher's hidden-layer features for a feature hint: the teacher, the rows, the layer.
pub(crate) fn features(teacher: &str, data: &Prepared, layer: usize) -> Fingerprint {
    FingerprintBuilder::new("features/v1")
        .part("teacher", teacher.as_bytes())
        .part("data", data.fingerprint.as_bytes())
        .part("layer", &(layer as u64).to_le_bytes())
        .part("distill_version", VERSION.as_bytes())
        .finish()
}

/// One distilled student: its model, loss and budget, the logits file it learns from, the rows,
/// its seed (init and batch order) and the plugins.
pub(crate) fn student(p: &Pipeline, data: &Prepared, logits_blake3: &str, seed: u64, plugins: &str) -> Fingerprint {
    let transfer = p.data.transfer.as_ref();
    let mut builder = trained_on(p, FingerprintBuilder::new("student/v2"));
    // Only when asked for, so the keys of recipes without them stay as they were.
    if let Some(t) = transfer.filter(|t| t.min_teacher_confidence.is_some() || t.weight.is_some()) {
        builder = builder.part("data.transfer.confidence", yaml(&(t.min_teacher_confidence, t.weight)).as_bytes());
    }
    builder
        .part("student.model", yaml(&p.student.model).as_bytes())
        .part("student.loss", yaml(&p.student.loss).as_bytes())
        .part("student.train", yaml(&p.student.train).as_bytes())
        .part("seed", &seed.to_le_bytes())
        .part("logits", logits_blake3.as_bytes())
        .part("data", data.fingerprint.as_bytes())
        .part("plugins", plugins.as_bytes())
        .part("distill_version", VERSION.as_bytes())
        .finish()
}

/// One baseline: the student's model, the baseline's own budget (epochs and steps after the
/// budget rule), the rows and its seed. Not the loss, not the teacher.
pub(crate) fn baseline(p: &Pipeline, data: &Prepared, train: &TrainSpec, steps: usize, seed: u64, plugins: &str) -> Fingerprint {
    trained_on(p, FingerprintBuilder::new("baseline/v1"))
        .part("student.model", yaml(&p.student.model).as_bytes())
        .part("student.train", yaml(train).as_bytes())
        .part("student.baseline_budget", &(steps as u64).to_le_bytes())
        .part("seed", &seed.to_le_bytes())
        .part("data", data.fingerprint.as_bytes())
        .part("plugins", plugins.as_bytes())
        .part("distill_version", VERSION.as_bytes())
        .finish()
}

/// How the logits are stored: `full` or `top_k=K` (part of the logits' key).
pub(crate) fn storage(spec: &TeacherSpec) -> String {
    match spec.cache.as_ref().and_then(|c| c.top_k) {
        Some(k) => format!("top_k={k}"),
        None => "full".into(),
    }
}

/// The baseline's budget: its epochs (in the returned spec) and optimiser steps, matched to the
/// student's by `student.baseline_budget` over the labelled training rows.
pub(crate) fn baseline_budget(p: &Pipeline, data: &Prepared) -> (TrainSpec, usize) {
    let batch = p.student.train.batch;
    let labelled = data.train.count(LabelState::Labelled);
    let student_steps = p.student.train.epochs * data.train.len().div_ceil(batch);
    let steps = match p.student.baseline_budget {
        BudgetRule::Steps => student_steps,
        BudgetRule::Epochs => p.student.train.epochs * labelled.div_ceil(batch),
    };
    (TrainSpec { epochs: steps.div_ceil(labelled.div_ceil(batch).max(1)), ..p.student.train.clone() }, steps)
}
