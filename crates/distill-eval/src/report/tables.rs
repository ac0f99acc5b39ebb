//! Report tables as plain text grids, shared by the markdown and HTML renderers so the
//! two documents always show the same numbers.

use super::{ModelReport, ReportInput};

/// A table: header, rows of cells, and which columns are numeric (right-aligned).
pub(super) struct Grid {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub numeric: Vec<bool>,
}

impl Grid {
    pub(super) fn new(header: &[&str], numeric: &[bool]) -> Self {
        Self { header: header.iter().map(|s| s.to_string()).collect(), rows: Vec::new(), numeric: numeric.to_vec() }
    }
}

/// Placeholder for a value that does not apply or was not measured.
pub(super) const NONE: &str = "—";

/// Classes beyond this many get no confusion table (the SVG still shows them).
pub(super) const MAX_CONFUSION_TABLE: usize = 20;

pub(super) fn f4(v: f64) -> String {
    format!("{v:.4}")
}

/// Whole numbers without decimals (sizes, counts), everything else with four.
fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        f4(v)
    }
}

fn pct(v: f64) -> String {
    format!("{:.2}%", v * 100.0)
}

pub(super) fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Thousands separators keep parameter counts readable.
fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

pub(super) fn recipe(input: &ReportInput) -> Grid {
    let mut g = Grid::new(&["key", "value"], &[false, false]);
    g.rows = input.recipe.iter().map(|(k, v)| vec![k.clone(), v.clone()]).collect();
    g
}

/// At most this many sample values per check, so one noisy check cannot bloat the page.
const MAX_SAMPLES: usize = 5;

pub(super) fn checks(input: &ReportInput) -> Grid {
    let mut g = Grid::new(&["id", "kind", "status", "failing", "fraction", "message", "samples"], &[false, false, false, true, true, false, false]);
    g.rows = input
        .data_checks
        .iter()
        .map(|c| {
            let mut samples: Vec<String> = c.samples.iter().take(MAX_SAMPLES).cloned().collect();
            if c.samples.len() > MAX_SAMPLES {
                samples.push(format!("… {} more", c.samples.len() - MAX_SAMPLES));
            }
            vec![c.id.clone(), c.kind.clone(), c.status.clone(), count(c.failing), pct(c.fraction), c.message.clone(), samples.join(", ")]
        })
        .collect();
    g
}

/// Metrics side by side: one column per model.
pub(super) fn metrics(input: &ReportInput) -> Grid {
    let models = input.models();
    let mut header = vec!["metric"];
    header.extend(models.iter().map(|(role, _)| *role));
    let mut g = Grid::new(&header, &[]);
    g.numeric = std::iter::once(false).chain(models.iter().map(|_| true)).collect();

    let ks: Vec<usize> = models.iter().map(|(_, m)| m.evaluation.top_k).collect();
    let same_k = ks.windows(2).all(|w| w[0] == w[1]);
    let top_k_label = match (same_k, ks.first()) {
        (true, Some(k)) => format!("top-{k} accuracy"),
        _ => "top-k accuracy".to_string(),
    };

    type Cell = fn(&ModelReport) -> String;
    let mut row = |label: String, cell: &dyn Fn(&ModelReport) -> String| {
        let mut r = vec![label];
        r.extend(models.iter().map(|(_, m)| cell(m)));
        g.rows.push(r);
    };
    let latency = |f: fn(&crate::bench::LatencyStats) -> f64| move |m: &ModelReport| m.latency.as_ref().map_or(NONE.to_string(), |l| format!("{:.3}", f(l)));
    row("samples".into(), &|m| count(m.evaluation.n_samples as u64));
    row("accuracy".into(), &|m| f4(m.evaluation.accuracy));
    row(top_k_label, &move |m| {
        if same_k {
            f4(m.evaluation.top_k_accuracy)
        } else {
            format!("{} (k={})", f4(m.evaluation.top_k_accuracy), m.evaluation.top_k)
        }
    });
    let simple: [(&str, Cell); 3] = [("macro-F1", |m| f4(m.evaluation.macro_f1)), ("NLL", |m| f4(m.evaluation.nll)), ("ECE", |m| f4(m.evaluation.ece))];
    for (label, cell) in simple {
        row(label.into(), &cell);
    }
    row("agreement with teacher".into(), &|m| m.evaluation.teacher_agreement.as_ref().map_or(NONE.to_string(), |a| f4(a.agreement)));
    row("KL(teacher ‖ model)".into(), &|m| m.evaluation.teacher_agreement.as_ref().map_or(NONE.to_string(), |a| f4(a.mean_kl)));
    row("parameters".into(), &|m| count(m.params));
    row("size".into(), &|m| bytes(m.size_bytes));
    row("latency p50 (ms)".into(), &latency(|l| l.p50_ms));
    row("latency p95 (ms)".into(), &latency(|l| l.p95_ms));
    row("latency mean (ms)".into(), &latency(|l| l.mean_ms));
    g
}

/// Per-class precision/recall/F1 of the student.
pub(super) fn per_class(input: &ReportInput) -> Grid {
    let mut g = Grid::new(&["class", "precision", "recall", "F1", "support", "predicted"], &[false, true, true, true, true, true]);
    g.rows = input
        .student
        .evaluation
        .per_class
        .iter()
        .map(|c| vec![c.class.clone(), f4(c.precision), f4(c.recall), f4(c.f1), count(c.support), count(c.predicted)])
        .collect();
    g
}

pub(super) fn targets(input: &ReportInput) -> Grid {
    let mut g = Grid::new(&["target", "limit", "value", "met"], &[false, true, true, false]);
    g.rows = input.targets.iter().map(|t| vec![t.name.clone(), num(t.limit), num(t.value), if t.met { "yes" } else { "NO" }.to_string()]).collect();
    g
}

/// Last epoch and best validation accuracy per trained model.
pub(super) fn history(input: &ReportInput) -> Grid {
    let mut g = Grid::new(&["model", "epochs", "final train loss", "final val loss", "best val accuracy"], &[false, true, true, true, true]);
    for (role, m) in input.models() {
        let Some(last) = m.history.last() else {
            continue;
        };
        let best = m.history.iter().filter_map(|e| e.val_accuracy).fold(None, |b: Option<f64>, v| Some(b.map_or(v, |b| b.max(v))));
        g.rows.push(vec![
            role.to_string(),
            m.history.len().to_string(),
            f4(last.train_loss),
            last.val_loss.map_or(NONE.to_string(), f4),
            best.map_or(NONE.to_string(), f4),
        ]);
    }
    g
}

/// The student's confusion counts, or `None` when there are too many classes to tabulate.
pub(super) fn confusion(input: &ReportInput) -> Option<Grid> {
    let ev = &input.student.evaluation;
    let k = ev.confusion.num_classes();
    if k == 0 || k > MAX_CONFUSION_TABLE {
        return None;
    }
    let mut header = vec!["true \\ predicted".to_string()];
    header.extend(ev.classes.iter().cloned());
    let rows = ev
        .confusion
        .counts
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let mut r = vec![ev.classes.get(i).cloned().unwrap_or_else(|| i.to_string())];
            r.extend(row.iter().map(|&c| count(c)));
            r
        })
        .collect();
    Some(Grid { numeric: std::iter::once(false).chain((0..k).map(|_| true)).collect(), header, rows })
}

/// One sentence summarising each model's ECE.
pub(super) fn calibration_summary(input: &ReportInput) -> String {
    let parts: Vec<String> = input.models().iter().map(|(role, m)| format!("{role} {}", f4(m.evaluation.ece))).collect();
    let bins = input.student.evaluation.reliability.len();
    format!("Expected calibration error over {bins} equal-width confidence bins: {}.", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_helpers() {
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count(12), "12");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(2048), "2.0 KiB");
        assert_eq!(pct(0.0123), "1.23%");
    }
}
