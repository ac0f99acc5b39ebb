//! The value checks of `student.loss`: ranges, the terms of a weighted sum, and plugin losses
//! that need a library.

use std::collections::BTreeMap;

use crate::{CeLoss, DkdLoss, KdTerm, LossKind, LossSpec, LossTermSpec, PluginTerm, SoftCeLoss};

/// Checks a loss's values: ranges, the terms of a weighted sum, and that plugin losses have a
/// plugin library to come from (`plugins_listed`: the recipe names one).
pub fn validate_loss(path: &str, loss: &LossSpec, plugins_listed: bool, bad: &mut impl FnMut(&str, String)) {
    let unknown =
        |name: &str| format!("unknown loss `{name}`: built-in losses are {}; a plugin loss needs its library under `plugins:`", LossSpec::BUILT_IN.join(", "));
    if !plugins_listed {
        for (key, name) in loss.plugin_losses() {
            bad(&format!("{path}.{key}"), unknown(name));
        }
    }
    match loss {
        LossSpec::Kd(l) => {
            check_temperature(path, l.temperature, bad);
            check_alpha(path, l.alpha, bad);
        }
        LossSpec::Plugin(l) => {
            check_temperature(path, l.temperature, bad);
            check_alpha(path, l.alpha, bad);
        }
        LossSpec::Ce(l) => check_ce(path, l, bad),
        LossSpec::SoftCe(l) => check_temperature(path, l.temperature, bad),
        LossSpec::Dkd(l) => check_dkd(path, l, bad),
        LossSpec::TeacherHard | LossSpec::MseLogits => {}
        LossSpec::Terms(terms) => validate_terms(path, terms, bad),
    }
}

fn validate_terms(path: &str, terms: &BTreeMap<String, LossTermSpec>, bad: &mut impl FnMut(&str, String)) {
    if terms.is_empty() {
        bad(&format!("{path}.terms"), "must list at least one term".into());
    } else if terms.values().all(|t| t.weight == 0.0) {
        bad(&format!("{path}.terms"), "at least one term needs a weight > 0".into());
    }
    for (name, term) in terms {
        let tp = format!("{path}.terms.{name}");
        if !(term.weight.is_finite() && term.weight >= 0.0) {
            bad(&format!("{tp}.weight"), format!("must be ≥ 0, got {}", term.weight));
        }
        match &term.kind {
            LossKind::Kd(KdTerm { temperature }) | LossKind::SoftCe(SoftCeLoss { temperature }) | LossKind::Plugin(PluginTerm { temperature, .. }) => {
                check_temperature(&tp, *temperature, bad)
            }
            LossKind::Ce(l) => check_ce(&tp, l, bad),
            LossKind::Dkd(l) => check_dkd(&tp, l, bad),
            LossKind::TeacherHard | LossKind::MseLogits | LossKind::Hint(_) => {}
        }
    }
}

fn check_temperature(path: &str, t: f64, bad: &mut impl FnMut(&str, String)) {
    if !(t.is_finite() && t > 0.0) {
        bad(&format!("{path}.temperature"), format!("must be > 0, got {t}"));
    }
}

fn check_alpha(path: &str, alpha: f64, bad: &mut impl FnMut(&str, String)) {
    if !(0.0..=1.0).contains(&alpha) {
        bad(&format!("{path}.alpha"), format!("must be in [0, 1], got {alpha}"));
    }
}

fn check_ce(path: &str, l: &CeLoss, bad: &mut impl FnMut(&str, String)) {
    if let Some(e) = l.label_smoothing {
        if !(0.0..1.0).contains(&e) {
            bad(&format!("{path}.label_smoothing"), format!("must be in [0, 1), got {e}"));
        }
    }
}

fn check_dkd(path: &str, l: &DkdLoss, bad: &mut impl FnMut(&str, String)) {
    check_temperature(path, l.temperature, bad);
    for (key, v) in [("dkd_alpha", l.dkd_alpha), ("dkd_beta", l.dkd_beta)] {
        if let Some(v) = v {
            if !(v.is_finite() && v >= 0.0) {
                bad(&format!("{path}.{key}"), format!("must be ≥ 0, got {v}"));
            }
        }
    }
}
