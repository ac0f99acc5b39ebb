//! Checks that need more than a type: value ranges, and keys that depend on each other.

use crate::*;

/// Every problem found, as (key path, message).
pub fn validate(p: &Pipeline) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut bad = |path: &str, msg: String| out.push((path.to_string(), msg));
    if p.version != 1 {
        bad("version", format!("unsupported version {} (this distill reads version 1)", p.version));
    }
    if let Some(why) = crate::types::device_unavailable(p.device) {
        bad("device", why);
    }
    if p.name.trim().is_empty() || p.name.contains(['/', '\\']) {
        bad("name", format!("must be a non-empty name without slashes, got {:?}", p.name));
    }
    validate_split(&p.data, &mut bad);
    validate_keep(p, &mut bad);
    validate_sources(&p.data, &mut bad);
    if let Some(seeds) = &p.student.seeds {
        if seeds.is_empty() {
            bad("student.seeds", "must list at least one seed".into());
        }
    }
    for (i, check) in p.data.checks.iter().enumerate() {
        crate::checks::validate_check(&format!("data.checks[{i}]"), check, &mut bad);
    }
    validate_unique(p, &mut bad);
    let plugins = !p.plugins.is_empty();
    crate::model::validate_teacher(&p.teacher, plugins, &mut bad);
    validate_ensemble(p, plugins, &mut bad);
    crate::hint::validate_hint(p, &mut bad);
    crate::model::validate_model("student.model", &p.student.model, plugins, &mut bad);
    crate::train::validate_train("student.train", &p.student.train, &mut bad);
    validate_cnns(p, &mut bad);
    crate::loss_checks::validate_loss("student.loss", &p.student.loss, plugins, &mut bad);
    crate::data::validate_data("data", &p.data, &mut bad);
    validate_evaluate(p, &mut bad);
    if let Some(sweep) = &p.sweep {
        out.extend(crate::sweep::validate(sweep));
    }
    // Sizes that cannot fit even with the least data the recipe allows; the data stage checks
    // again with the real rows, features and classes.
    if let Some(memory) = crate::memory::Memory::available() {
        out.extend(crate::memory::refuse(p, &crate::memory::Shape::of_recipe(p), memory));
    }
    out
}

/// Check ids name a check in the report and in `checks.json`; a plugin listed twice would load
/// its names twice. Either is refused at the second occurrence.
fn validate_unique(p: &Pipeline, bad: &mut impl FnMut(&str, String)) {
    let mut seen = std::collections::HashMap::new();
    for (i, check) in p.data.checks.iter().enumerate() {
        if let Some(first) = seen.insert(check.name(), i) {
            let key = if check.id.is_some() { format!("data.checks[{i}].id") } else { format!("data.checks[{i}]") };
            bad(&key, format!("check id `{}` is also data.checks[{first}]'s; ids must be unique (give this check its own `id:`)", check.name()));
        }
    }
    let mut seen = std::collections::HashMap::new();
    for (i, plugin) in p.plugins.iter().enumerate() {
        if let Some(first) = seen.insert(&plugin.path, i) {
            bad(&format!("plugins[{i}].path"), format!("`{}` is listed twice (also plugins[{first}]); list each library once", plugin.path.display()));
        }
    }
}

/// `teachers` and `ensemble`: every extra teacher like `teacher`, one weight per teacher.
fn validate_ensemble(p: &Pipeline, plugins: bool, bad: &mut impl FnMut(&str, String)) {
    for (i, t) in p.teachers.iter().enumerate() {
        crate::model::validate_teacher_at(&format!("teachers[{i}]"), t, plugins, bad);
    }
    let Some(e) = &p.ensemble else { return };
    if p.teachers.is_empty() {
        bad("ensemble", "an ensemble needs more teachers: list them under `teachers`".into());
    }
    if let Some(w) = &e.weights {
        let n = 1 + p.teachers.len();
        if w.len() != n {
            bad("ensemble.weights", format!("needs one weight per teacher ({n}: `teacher`, then `teachers`), got {}", w.len()));
        } else if w.iter().any(|v| !(v.is_finite() && *v >= 0.0)) || w.iter().all(|v| *v == 0.0) {
            bad("ensemble.weights", format!("weights must be ≥ 0 and not all 0, got {w:?}"));
        }
    }
}

/// `keep: best_val` ranks epochs on the validation split, so it needs one (never the test split).
fn validate_keep(p: &Pipeline, bad: &mut impl FnMut(&str, String)) {
    let trained = p.teacher.logits.is_none() && p.teacher.weights.is_none();
    for (key, train, used) in [("teacher.train", &p.teacher.train, trained), ("student.train", &p.student.train, true)] {
        if used && train.keep == Some(KeepRule::BestVal) && p.data.split.val <= 0.0 {
            bad(&format!("{key}.keep"), "`best_val` needs validation rows: set `data.split.val` (the test split is never used to choose weights)".into());
        }
    }
}

/// `data.split` against `data.test_source`, and the transfer set's size.
fn validate_split(d: &DataSpec, bad: &mut impl FnMut(&str, String)) {
    let split = &d.split;
    let test = match (split.test, &d.test_source) {
        (Some(_), Some(_)) => {
            bad("data.split.test", "leave `split.test` out when `data.test_source` gives the test rows".into());
            0.0
        }
        (None, Some(_)) => 0.0,
        (Some(t), None) => {
            if !(t > 0.0 && t < 1.0) {
                bad("data.split.test", format!("must be in (0, 1), got {t}"));
            }
            t
        }
        (None, None) => DEFAULT_TEST_FRACTION,
    };
    if !(0.0..1.0).contains(&split.val) {
        bad("data.split.val", format!("must be in [0, 1), got {}", split.val));
    }
    if test + split.val >= 1.0 {
        bad("data.split", format!("test + val = {} leaves no training rows", test + split.val));
    }
    if let Some(m) = d.transfer.as_ref().and_then(|t| t.min_teacher_confidence) {
        if !(m > 0.0 && m <= 1.0) {
            bad("data.transfer.min_teacher_confidence", format!("must be in (0, 1], got {m}"));
        }
    }
    if let Some(l) = d.transfer.as_ref().and_then(|t| t.labelled) {
        let ok = (l > 0.0 && l < 1.0) || (l >= 1.0 && l.fract() == 0.0);
        if !ok {
            bad("data.transfer.labelled", format!("must be a fraction in (0, 1) or a whole number of rows ≥ 1, got {l}"));
        }
    }
}

/// IDX sources need their labels file; `labels` belongs to IDX only.
fn validate_sources(d: &DataSpec, bad: &mut impl FnMut(&str, String)) {
    for (key, source) in [("data.source", Some(&d.source)), ("data.test_source", d.test_source.as_ref())] {
        let Some(s) = source else { continue };
        let idx = s.format == Some(DataFormat::Idx);
        if idx && s.labels.is_none() {
            bad(&format!("{key}.labels"), "an IDX source needs `labels` (the labels file)".into());
        }
        if s.labels.is_some() && s.format.is_some() && !idx {
            bad(&format!("{key}.labels"), "`labels` applies only to `format: idx`".into());
        }
    }
}

/// Conv layers against the image shape, and the devices they can train on.
fn validate_cnns(p: &Pipeline, bad: &mut impl FnMut(&str, String)) {
    if let Some(model) = &p.teacher.model {
        crate::cnn::validate_cnn("teacher.model", model, &p.data, bad);
    }
    crate::cnn::validate_cnn("student.model", &p.student.model, &p.data, bad);
    if p.device == Device::Cpu {
        return;
    }
    // Conv and pool layers are host code on the tape (im2col, pooling): no GPU version yet.
    // A teacher given as weights or logits is not trained here.
    let teacher = p.teacher.model.as_ref().filter(|_| p.teacher.weights.is_none() && p.teacher.logits.is_none());
    for (path, m) in [("teacher.model", teacher), ("student.model", Some(&p.student.model))] {
        if m.is_some_and(|m| m.arch == Arch::Cnn) {
            bad(&format!("{path}.arch"), format!("cnn layers train on the CPU only in this version (`device: {}`); use `device: cpu`", String::from(p.device)));
        }
    }
}

/// `evaluate:` and the targets, some of which need a teacher model or latency measurements.
fn validate_evaluate(p: &Pipeline, bad: &mut impl FnMut(&str, String)) {
    let t = &p.evaluate.targets;
    if p.teacher.logits.is_some() {
        for (key, set) in [("max_accuracy_drop", t.max_accuracy_drop.is_some()), ("min_speedup", t.min_speedup.is_some())] {
            if set {
                bad(&format!("evaluate.targets.{key}"), "needs a teacher model; with `teacher.logits` there is none to measure".into());
            }
        }
    }
    crate::export::validate_export(p, bad);
    if p.evaluate.top_k == 0 {
        bad("evaluate.top_k", "must be at least 1".into());
    }
    if p.evaluate.ece_bins == 0 {
        bad("evaluate.ece_bins", "must be at least 1".into());
    }
    for (key, v) in [("max_latency_ms_p95", t.max_latency_ms_p95), ("min_speedup", t.min_speedup)] {
        if let Some(v) = v {
            if !(v.is_finite() && v > 0.0) {
                bad(&format!("evaluate.targets.{key}"), format!("must be > 0, got {v}"));
            }
        }
    }
    if (t.max_latency_ms_p95.is_some() || t.min_speedup.is_some()) && !p.evaluate.latency {
        bad("evaluate.latency", "latency and speed-up targets need `latency: true`".into());
    }
    for (key, v) in [("min_accuracy", t.min_accuracy), ("max_accuracy_drop", t.max_accuracy_drop)] {
        if let Some(v) = v {
            if !(0.0..=1.0).contains(&v) {
                bad(&format!("evaluate.targets.{key}"), format!("must be in [0, 1], got {v}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    fn errors(overrides: &[&str]) -> String {
        // The real path: the recipe extends a base next to it.
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../pipelines/digits-cnn.yaml");
        let text = std::fs::read_to_string(file).unwrap();
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        crate::parse_str(&text, file.as_ref(), &overrides).err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn cnn_models_on_a_gpu_are_refused_until_conv_runs_there() {
        assert_eq!(errors(&[]), "");
        let e = errors(&["device=cuda:1"]);
        assert!(e.contains("teacher.model.arch") && e.contains("cnn layers train on the CPU only in this version (`device: cuda:1`)"), "{e}");
        // The device itself is fine in a CUDA build, and needs one otherwise.
        assert_eq!(e.contains("needs distill built with CUDA support"), !cfg!(feature = "cuda"), "{e}");
    }
}
