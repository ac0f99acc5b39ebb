//! What the binary prints: a one-line description of a pipeline and the end-of-run table.

use distill_pipeline::{ModelMetrics, Summary, SweepSummary};
use distill_spec::Pipeline;

/// One line: what a pipeline will do.
pub fn describe(p: &Pipeline) -> String {
    format!(
        "pipeline `{}`: {} checks, teacher {}, student hidden {:?}, loss {}{}",
        p.name,
        p.data.checks.len(),
        match (&p.teacher.logits, &p.teacher.model) {
            (Some(l), _) => format!("logits from {}", l.path.display()),
            (None, Some(m)) => format!("hidden {:?}", m.hidden),
            (None, None) => "-".into(),
        },
        p.student.model.hidden,
        p.student.loss,
        if p.student.baseline { ", with baseline" } else { "" }
    )
}

/// The table printed at the end of `distill run`.
pub fn summary_table(s: &Summary) -> String {
    let mut out = format!("\n{:<10} {:>16} {:>9} {:>10} {:>10}\n", "model", "test accuracy", "params", "agreement", "train s");
    let mut row = |name: &str, m: &ModelMetrics| {
        let agreement = m.teacher_agreement.map(|a| format!("{a:.4}")).unwrap_or_else(|| "-".into());
        let accuracy = match m.accuracy_std {
            Some(std) => format!("{:.4} ± {std:.4}", m.accuracy),
            None => format!("{:.4}", m.accuracy),
        };
        out += &format!("{name:<10} {accuracy:>16} {:>9} {agreement:>10} {:>10.2}\n", m.params, m.train_seconds);
    };
    for m in &s.models.0 {
        row(m.role.key(), &m.metrics);
    }
    if let Some(rule) = &s.baseline_budget {
        out += &format!("\nbaseline budget: {rule}; seeds: {}", s.student().map_or(1, |m| m.per_seed.len().max(1)));
    }
    if let Some(t) = &s.transfer_confidence {
        let total: usize = t.unlabelled.iter().sum();
        if let (Some(min), Some(kept)) = (t.min_teacher_confidence, t.unlabelled_kept) {
            out += &format!("\nconfidence filter: kept {kept} of {total} unlabelled rows (teacher confidence ≥ {min})");
        }
    }
    if let Some(e) = &s.ensemble {
        for (name, value) in e.lines() {
            out += &format!("\n{name}: {value}");
        }
    }
    if let Some(gain) = &s.gain {
        out += &format!("\nstudent vs baseline: {} (paired by seed; 95% interval, paired t-test)", gain.text);
    }
    out += &format!(
        "\ntest rows: {}   compression: {}   cache hits: {}\n",
        s.rows.get("test").copied().unwrap_or(0),
        s.compression.map(|c| format!("{c:.1}x")).unwrap_or_else(|| "-".into()),
        if s.cache_hits.is_empty() { "none".to_string() } else { s.cache_hits.join(", ") }
    );
    for t in &s.targets {
        out += &format!("target {:<18} limit {:<10} value {:<10.4} {}\n", t.name, t.limit, t.value, if t.met { "met" } else { "MISSED" });
    }
    if !s.warnings.is_empty() {
        out += &format!("\n{} warning(s):\n", s.warnings.len());
        s.warnings.iter().for_each(|w| out += &format!("warning: {w}\n"));
    }
    out
}

/// The table printed at the end of a sweep: one line per point, the recommendation last.
pub fn sweep_table(s: &SweepSummary) -> String {
    let ranked = format!("{:?}", s.decided_on).to_lowercase();
    let mut out = format!("\n{:>3} {:>9} {:>16} {:>9} {:>6}  keys\n", "#", &ranked[..ranked.len().min(9)], "test accuracy", "params", "front");
    for r in &s.points {
        let test = match r.accuracy_std {
            Some(std) => format!("{:.4} ± {std:.4}", r.accuracy),
            None => format!("{:.4}", r.accuracy),
        };
        let val = r.val_accuracy.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into());
        let front = if s.front_params.contains(&r.index) { "*" } else { "" };
        out += &format!("{:>3} {val:>9} {test:>16} {:>9} {front:>6}  {}\n", r.index, r.params, r.label);
    }
    out += &match &s.recommendation {
        Some(rec) => format!("\nrecommended: point {} ({}): {}; test accuracy {:.4}\n", rec.index, rec.label, rec.why, rec.test_accuracy),
        None => "\nno point meets every target\n".to_string(),
    };
    out
}
