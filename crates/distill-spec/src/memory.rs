//! What a recipe's declared sizes need in memory, estimated before anything is allocated, so
//! that a size that cannot fit (`epochs: 1000000000000`, `hidden: [100000000]`, ten million
//! augmented copies, tens of thousands of classes) is an error naming the key, the estimate and
//! the machine's memory instead of an abort mid-run.
//!
//! One estimate ([`needs`]) serves both places: `validate` (with the least the data can be,
//! [`Shape::of_recipe`]) and the data stage once the table's rows, features and classes are
//! known, before the feature matrix, augmentation, models or metrics are allocated. The
//! estimates are lower bounds of the real use (they count the big buffers only), so a refused
//! recipe could never have run; one that passes can still run short of memory at run time, and
//! the allocation sites that size buffers from the data ask for them fallibly ([`try_filled`]).

use std::fmt;

use crate::{LayerSpec, ModelSpec, Pipeline};

/// The data's size as far as it is known: training rows (before augmentation), features, classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub rows: u64,
    pub features: u64,
    pub classes: u64,
}

impl Shape {
    /// The least the data of `p` can be before it is read: one row, the pixels of `data.image`
    /// (else one feature), two classes.
    pub fn of_recipe(p: &Pipeline) -> Self {
        let features = p.data.image.map_or(1, |i| (i.height as u64).saturating_mul(i.width as u64).saturating_mul(i.channels as u64));
        Self { rows: 1, features: features.max(1), classes: 2 }
    }
}

/// The memory one key's value asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub key: String,
    pub bytes: u64,
    /// What the bytes hold, for the message.
    pub what: String,
}

/// The memory distill may plan for: `DISTILL_MEMORY_LIMIT` (bytes, or with K/M/G/T), else the
/// machine's (the smaller of its RAM and a cgroup limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub bytes: u64,
    /// Where the figure comes from: `DISTILL_MEMORY_LIMIT`, `the machine` or `the cgroup limit`.
    pub source: &'static str,
}

impl Memory {
    /// The figure for this process; `None` when it cannot be read (then nothing is refused).
    pub fn available() -> Option<Self> {
        if let Some(limit) = std::env::var("DISTILL_MEMORY_LIMIT").ok().and_then(|v| parse_bytes(&v)) {
            return Some(Self { bytes: limit, source: "DISTILL_MEMORY_LIMIT" });
        }
        let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
            let line = t.lines().find(|l| l.starts_with("MemTotal:"))?.to_string();
            line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kib| kib * 1024)
        })?;
        let cgroup = ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok().and_then(|t| t.trim().parse::<u64>().ok()));
        Some(match cgroup {
            Some(limit) if limit < total => Self { bytes: limit, source: "the cgroup limit" },
            _ => Self { bytes: total, source: "the machine" },
        })
    }
}

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", human(self.bytes), self.source)
    }
}

/// `123`, `64K`, `512M`, `2G`, `1T` (powers of 1024; an optional trailing `B` or `iB`).
pub fn parse_bytes(text: &str) -> Option<u64> {
    let t = text.trim().trim_end_matches("iB").trim_end_matches('B');
    let (digits, unit) = t.find(|c: char| !c.is_ascii_digit()).map_or((t, ""), |i| t.split_at(i));
    let scale: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(scale)
}

/// Bytes as `1.5 GiB`.
pub fn human(bytes: u64) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let (mut v, mut u) = (bytes as f64, 0);
    while v >= 1024.0 && u + 1 < units.len() {
        (v, u) = (v / 1024.0, u + 1);
    }
    if u == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// Bytes kept per training epoch: the history record in memory, in the model's header and in
/// `history.json`.
const EPOCH_BYTES: u64 = 64;
/// Per confusion-matrix cell: the counts of each model (8 bytes × 3), their pretty-printed JSON in
/// `metrics.json` and `report-input.json` (≈ 16 bytes × 2 × 3) and the SVG plot's cell (≈ 120).
const CONFUSION_CELL_BYTES: u64 = 240;
/// Per parameter while training: weights, gradients, two Adam moments and the best epoch's copy.
const PARAM_BYTES: u64 = 4 * 5;

/// What each key of `p` needs with data of `shape`, the biggest buffers only.
pub fn needs(p: &Pipeline, shape: &Shape) -> Vec<Need> {
    let mut out = Vec::new();
    let row_bytes = shape.features.saturating_mul(4).saturating_add(24);
    let mut rows = shape.rows;
    for (i, a) in p.data.augment.iter().enumerate() {
        let copies = a.copies().unwrap_or(1) as u64;
        let made = shape.rows.saturating_mul(copies);
        rows = rows.saturating_add(made);
        // Each new row is made on its own, then copied into the split: twice its bytes.
        let bytes = made.saturating_mul(row_bytes).saturating_mul(2);
        out.push(Need { key: format!("data.augment[{i}].copies"), bytes, what: format!("{made} augmented rows of {} features", shape.features) });
    }
    out.push(Need { key: "data".into(), bytes: rows.saturating_mul(row_bytes).saturating_mul(2), what: format!("{rows} rows of {} features", shape.features) });
    let teacher = p.teacher.model.as_ref().filter(|_| p.teacher.logits.is_none());
    for (role, model, train) in [("teacher", teacher, Some(&p.teacher.train)), ("student", Some(&p.student.model), Some(&p.student.train))] {
        let (Some(model), Some(train)) = (model, train) else { continue };
        if let Some(need) = model_need(role, model, shape, train.batch as u64) {
            out.push(need);
        }
        let epochs = train.epochs as u64;
        out.push(Need {
            key: format!("{role}.train.epochs"),
            bytes: epochs.saturating_mul(EPOCH_BYTES),
            what: format!("the training history of {epochs} epochs"),
        });
    }
    let cells = shape.classes.saturating_mul(shape.classes);
    // Logits, soft targets and their gradients per training row, and the confusion matrices.
    let per_class = rows.saturating_mul(shape.classes).saturating_mul(12).saturating_add(cells.saturating_mul(CONFUSION_CELL_BYTES));
    out.push(Need {
        key: "data.label".into(),
        bytes: per_class,
        what: format!("{} classes: logits of {rows} rows and {}×{} confusion matrices in the metrics and report", shape.classes, shape.classes, shape.classes),
    });
    out
}

/// A dense network's parameters and a batch's activations (conv and plugin layers not counted).
fn model_need(role: &str, m: &ModelSpec, shape: &Shape, batch: u64) -> Option<Need> {
    let (key, widths): (String, Vec<u64>) = match &m.layers {
        Some(layers) => (format!("{role}.model.layers"), dense_widths(layers)),
        None => (format!("{role}.model.hidden"), m.hidden.iter().map(|&h| h as u64).collect()),
    };
    if widths.is_empty() {
        return None;
    }
    let (mut params, mut input, mut units) = (0u64, shape.features, shape.classes);
    for &w in widths.iter().chain([shape.classes].iter()) {
        params = params.saturating_add(input.saturating_add(1).saturating_mul(w));
        units = units.saturating_add(w);
        input = w;
    }
    let bytes = params.saturating_mul(PARAM_BYTES).saturating_add(batch.saturating_mul(units).saturating_mul(16));
    Some(Need { key, bytes, what: format!("{params} parameters while training (weights, gradients, optimiser state)") })
}

fn dense_widths(layers: &[LayerSpec]) -> Vec<u64> {
    layers
        .iter()
        .flat_map(|l| match l {
            LayerSpec::Dense(w) => vec![*w as u64],
            LayerSpec::Residual(inner) => dense_widths(inner),
            _ => Vec::new(),
        })
        .collect()
}

/// Every need of `p` that `memory` cannot hold, as (key, message); then, if each fits but all
/// together do not, one for the largest.
pub fn refuse(p: &Pipeline, shape: &Shape, memory: Memory) -> Vec<(String, String)> {
    let needs = needs(p, shape);
    let message = |n: &Need, prefix: &str| {
        format!(
            "{prefix}needs about {} ({}), more than the {} of memory distill may use; lower it (or set DISTILL_MEMORY_LIMIT)",
            human(n.bytes),
            n.what,
            memory
        )
    };
    let mut out: Vec<(String, String)> = needs.iter().filter(|n| n.bytes > memory.bytes).map(|n| (n.key.clone(), message(n, ""))).collect();
    let total = needs.iter().fold(0u64, |t, n| t.saturating_add(n.bytes));
    if out.is_empty() && total > memory.bytes {
        if let Some(n) = needs.iter().max_by_key(|n| n.bytes) {
            out.push((n.key.clone(), message(n, &format!("with everything else the run needs about {} in all; this alone ", human(total)))));
        }
    }
    out
}

/// `n` copies of `value`, or an error naming `what` when the memory cannot be had (instead of
/// the allocator's abort).
pub fn try_filled<T: Clone>(n: usize, value: T, what: &str) -> Result<Vec<T>, String> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| format!("{what}: cannot allocate {} ({n} values)", human((n as u64).saturating_mul(std::mem::size_of::<T>() as u64))))?;
    v.resize(n, value);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(change: impl FnOnce(&mut Pipeline)) -> Pipeline {
        let text = "version: 1\nname: m\ndata: {source: {path: d.csv}, label: y}\nteacher: {model: {hidden: [8]}}\nstudent: {model: {hidden: [4]}}\n";
        // Changed after parsing: validation would refuse these sizes on the machine's memory.
        let mut p = crate::parse_str(text, "m.yaml".as_ref(), &[]).unwrap();
        change(&mut p);
        p
    }

    #[test]
    fn sizes_that_cannot_fit_name_their_key() {
        let gib = Memory { bytes: 1 << 30, source: "test" };
        let shape = Shape { rows: 1000, features: 64, classes: 10 };
        let keys = |p: Pipeline, shape: &Shape| refuse(&p, shape, gib).into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert!(keys(pipeline(|_| ()), &shape).is_empty());
        assert_eq!(keys(pipeline(|p| p.student.train.epochs = 1_000_000_000_000), &shape), ["student.train.epochs"]);
        assert_eq!(keys(pipeline(|p| p.teacher.model.as_mut().unwrap().hidden = vec![100_000_000]), &shape), ["teacher.model.hidden"]);
        let copies: crate::AugmentSpec = serde_yaml::from_str("{kind: gaussian_noise, std: 0.1, copies: 10000000}").unwrap();
        // The rows they make then do not fit either; the cause comes first.
        assert_eq!(keys(pipeline(|p| p.data.augment = vec![copies]), &shape)[0], "data.augment[0].copies");
        assert_eq!(keys(pipeline(|_| ()), &Shape { classes: 10_000, ..shape }), ["data.label"]);
        let (_, message) = refuse(&pipeline(|p| p.student.train.epochs = 1_000_000_000_000), &shape, gib).remove(0);
        assert!(message.contains("58.2 TiB") && message.contains("1.0 GiB (test)"), "{message}");
    }

    #[test]
    fn byte_sizes_parse() {
        assert_eq!(parse_bytes("2G"), Some(2 << 30));
        assert_eq!(parse_bytes("512MiB"), Some(512 << 20));
        assert_eq!(parse_bytes("1000"), Some(1000));
        assert_eq!(parse_bytes("lots"), None);
        assert!(try_filled(usize::MAX / 2, 0f32, "x").unwrap_err().contains("x: cannot allocate"));
    }
}
