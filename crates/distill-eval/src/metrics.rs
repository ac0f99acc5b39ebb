//! Classification metrics over row-major logits.
//!
//! Every function takes logits as a row-major `&[f32]` of `n × k` values (one row per
//! sample, one column per class) and, where needed, labels as `&[u32]` of length `n`.
//! Inputs are validated: `n` must be at least 1, `k` at least 1, every logit finite and
//! every label below `k`; anything else is an [`EvalError`].
//!
//! Conventions, chosen so that no metric is ever NaN:
//! * The predicted class of a row is its argmax; ties go to the lowest class index.
//! * A class that is never predicted has precision 0; a class absent from the labels
//!   has recall 0; F1 is 0 when precision + recall is 0 (sklearn's `zero_division=0`).
//! * Macro averages run over the classes that appear in the labels **or** in the
//!   predictions. Classes in neither contribute nothing (they carry no evidence either
//!   way), while a class predicted but never present counts with F1 0, because those
//!   predictions are all wrong. A single-class split predicted perfectly has macro-F1 1.
//! * Softmax is computed in `f64` with max-subtraction, so large logits do not overflow.

use serde::{Deserialize, Serialize};

/// Why a metric could not be computed from the given buffers.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    #[error("nothing to evaluate: there are no samples")]
    Empty,
    #[error("the number of classes must be at least 1")]
    NoClasses,
    #[error("logits hold {got} values, expected {rows} rows × {classes} classes = {expected}")]
    LogitsShape { got: usize, rows: usize, classes: usize, expected: usize },
    #[error("row {row}: label {label} is out of range for {classes} classes")]
    LabelOutOfRange { row: usize, label: u32, classes: usize },
    #[error("row {row}, class {class}: logit is not finite ({value})")]
    NonFiniteLogit { row: usize, class: usize, value: f32 },
    #[error("teacher has {teacher} logits but student has {student}; both must be n × k")]
    AgreementShape { teacher: usize, student: usize },
    #[error("{what} must be at least 1")]
    ZeroParameter { what: &'static str },
    #[error("{names} class names given for a {classes}-class confusion matrix")]
    ClassNames { names: usize, classes: usize },
    #[error("a {classes}×{classes} confusion matrix does not fit in memory")]
    TooLarge { classes: usize },
}

/// Precision, recall and F1 of one class, one-vs-rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// Class name.
    pub class: String,
    /// `tp / predicted`, 0 when the class is never predicted.
    pub precision: f64,
    /// `tp / support`, 0 when the class never occurs in the labels.
    pub recall: f64,
    /// Harmonic mean of precision and recall, 0 when both are 0.
    pub f1: f64,
    /// Number of samples whose label is this class.
    pub support: u64,
    /// Number of samples predicted as this class.
    pub predicted: u64,
}

impl ClassMetrics {
    /// Whether the class takes part in macro averages (it occurs in labels or predictions).
    pub fn is_present(&self) -> bool {
        self.support > 0 || self.predicted > 0
    }
}

/// A `k × k` confusion matrix: `counts[true_class][predicted_class]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConfusionMatrix {
    /// Rows are true classes, columns predicted classes.
    pub counts: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    /// Number of classes (rows).
    pub fn num_classes(&self) -> usize {
        self.counts.len()
    }

    /// Samples whose label is `class` (row sum).
    pub fn support(&self, class: usize) -> u64 {
        self.counts.get(class).map_or(0, |row| row.iter().sum())
    }

    /// Samples predicted as `class` (column sum).
    pub fn predicted(&self, class: usize) -> u64 {
        self.counts.iter().map(|row| row.get(class).copied().unwrap_or(0)).sum()
    }

    /// Correct predictions of `class` (diagonal entry).
    pub fn true_positives(&self, class: usize) -> u64 {
        self.counts.get(class).and_then(|row| row.get(class)).copied().unwrap_or(0)
    }

    /// The largest cell, handy for colour scales.
    pub fn max_count(&self) -> u64 {
        self.counts.iter().flatten().copied().max().unwrap_or(0)
    }
}

/// One equal-width confidence bin of a reliability diagram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    /// Lower edge (exclusive, except 0 for the first bin).
    pub lower: f64,
    /// Upper edge (inclusive).
    pub upper: f64,
    /// Mean top-class probability of the samples in the bin; 0 when `count` is 0.
    pub mean_confidence: f64,
    /// Fraction of the bin's samples that were classified correctly; 0 when `count` is 0.
    pub accuracy: f64,
    /// Number of samples whose confidence fell in the bin.
    pub count: u64,
}

/// Expected calibration error and the bins it was computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// `Σ_b (count_b / n) · |accuracy_b − mean_confidence_b|`.
    pub ece: f64,
    /// The bins, in increasing confidence order.
    pub bins: Vec<CalibrationBin>,
}

/// How closely a student follows its teacher on the same rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    /// Fraction of rows where teacher and student have the same argmax.
    pub agreement: f64,
    /// Mean over rows of `KL(softmax(teacher) ‖ softmax(student))`, in nats, temperature 1.
    pub mean_kl: f64,
}

/// Every metric of one model on one split, ready to serialize into `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEvaluation {
    /// Number of evaluated rows.
    pub n_samples: usize,
    /// Class names, in class-index order.
    pub classes: Vec<String>,
    /// Fraction of rows whose argmax equals the label.
    pub accuracy: f64,
    /// The `k` used for [`ModelEvaluation::top_k_accuracy`] (clamped to the class count).
    pub top_k: usize,
    /// Fraction of rows whose label is among the `top_k` highest logits.
    pub top_k_accuracy: f64,
    /// Macro-averaged F1 over classes present in labels or predictions.
    pub macro_f1: f64,
    /// Mean negative log-likelihood of the labels, in nats.
    pub nll: f64,
    /// Expected calibration error over [`ModelEvaluation::reliability`].
    pub ece: f64,
    /// Reliability-diagram bins.
    pub reliability: Vec<CalibrationBin>,
    /// One entry per class, in class-index order (absent classes included, see
    /// [`ClassMetrics::is_present`]).
    pub per_class: Vec<ClassMetrics>,
    /// Rows = true class, columns = predicted class.
    pub confusion: ConfusionMatrix,
    /// Agreement with the teacher, filled in by the caller for students and baselines
    /// (see [`agreement`]); `None` for the teacher itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_agreement: Option<Agreement>,
}

/// Logits that passed validation: `n ≥ 1` rows of `k ≥ 1` finite values.
struct Rows<'a> {
    logits: &'a [f32],
    k: usize,
}

impl<'a> Rows<'a> {
    fn new(logits: &'a [f32], n: usize, k: usize) -> Result<Self, EvalError> {
        if k == 0 {
            return Err(EvalError::NoClasses);
        }
        if n == 0 {
            return Err(EvalError::Empty);
        }
        let expected = n.checked_mul(k).ok_or(EvalError::LogitsShape { got: logits.len(), rows: n, classes: k, expected: usize::MAX })?;
        if logits.len() != expected {
            return Err(EvalError::LogitsShape { got: logits.len(), rows: n, classes: k, expected });
        }
        if let Some(i) = logits.iter().position(|v| !v.is_finite()) {
            return Err(EvalError::NonFiniteLogit { row: i / k, class: i % k, value: logits[i] });
        }
        Ok(Self { logits, k })
    }

    fn with_labels(logits: &'a [f32], labels: &[u32], k: usize) -> Result<Self, EvalError> {
        let rows = Self::new(logits, labels.len(), k)?;
        if let Some((row, &label)) = labels.iter().enumerate().find(|(_, &l)| l as usize >= k) {
            return Err(EvalError::LabelOutOfRange { row, label, classes: k });
        }
        Ok(rows)
    }

    fn iter(&self) -> std::slice::ChunksExact<'a, f32> {
        self.logits.chunks_exact(self.k)
    }

    fn n(&self) -> usize {
        self.logits.len() / self.k
    }
}

/// Index of the largest value; ties go to the lowest index. `row` must be non-empty.
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate().skip(1) {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// `log softmax(row)` in f64, with max-subtraction for stability.
fn log_softmax(row: &[f32], out: &mut Vec<f64>) {
    out.clear();
    let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
    let log_z = max + sum.ln();
    out.extend(row.iter().map(|&v| v as f64 - log_z));
}

/// Argmax class of every row.
pub fn predictions(logits: &[f32], num_classes: usize) -> Result<Vec<u32>, EvalError> {
    if num_classes == 0 {
        return Err(EvalError::NoClasses);
    }
    let rows = Rows::new(logits, logits.len() / num_classes, num_classes)?;
    Ok(rows.iter().map(|r| argmax(r) as u32).collect())
}

/// Fraction of rows whose argmax equals the label.
pub fn accuracy(logits: &[f32], labels: &[u32], num_classes: usize) -> Result<f64, EvalError> {
    let rows = Rows::with_labels(logits, labels, num_classes)?;
    let correct = rows.iter().zip(labels).filter(|(r, &l)| argmax(r) == l as usize).count();
    Ok(correct as f64 / rows.n() as f64)
}

/// Fraction of rows whose label is among the `top_k` highest logits.
///
/// Ties are broken as in argmax (lower index ranks first), so `top_k = 1` equals
/// [`accuracy`]. A `top_k` above the class count is clamped (the result is then 1).
pub fn top_k_accuracy(logits: &[f32], labels: &[u32], num_classes: usize, top_k: usize) -> Result<f64, EvalError> {
    if top_k == 0 {
        return Err(EvalError::ZeroParameter { what: "top_k" });
    }
    let rows = Rows::with_labels(logits, labels, num_classes)?;
    let hits = rows
        .iter()
        .zip(labels)
        .filter(|(row, &label)| {
            let label = label as usize;
            let target = row[label];
            // Rank of the label = how many classes would be ranked before it.
            let rank = row.iter().enumerate().filter(|&(j, &v)| v > target || (v == target && j < label)).count();
            rank < top_k
        })
        .count();
    Ok(hits as f64 / rows.n() as f64)
}

/// Confusion matrix: `counts[label][prediction]`.
pub fn confusion_matrix(logits: &[f32], labels: &[u32], num_classes: usize) -> Result<ConfusionMatrix, EvalError> {
    let rows = Rows::with_labels(logits, labels, num_classes)?;
    // Asked for fallibly: with many classes the matrix is the largest thing evaluation holds.
    let mut counts: Vec<Vec<u64>> = Vec::new();
    counts.try_reserve_exact(num_classes).map_err(|_| EvalError::TooLarge { classes: num_classes })?;
    for _ in 0..num_classes {
        let mut row = Vec::new();
        row.try_reserve_exact(num_classes).map_err(|_| EvalError::TooLarge { classes: num_classes })?;
        row.resize(num_classes, 0u64);
        counts.push(row);
    }
    for (row, &label) in rows.iter().zip(labels) {
        counts[label as usize][argmax(row)] += 1;
    }
    Ok(ConfusionMatrix { counts })
}

/// Per-class precision, recall, F1 and support from a confusion matrix.
///
/// `classes` names the rows; it must have one entry per class.
pub fn per_class_metrics(confusion: &ConfusionMatrix, classes: &[String]) -> Result<Vec<ClassMetrics>, EvalError> {
    let k = confusion.num_classes();
    if classes.len() != k {
        return Err(EvalError::ClassNames { names: classes.len(), classes: k });
    }
    let ratio = |num: u64, den: u64| {
        if den == 0 {
            0.0
        } else {
            num as f64 / den as f64
        }
    };
    Ok(classes
        .iter()
        .enumerate()
        .map(|(c, name)| {
            let tp = confusion.true_positives(c);
            let support = confusion.support(c);
            let predicted = confusion.predicted(c);
            let precision = ratio(tp, predicted);
            let recall = ratio(tp, support);
            let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
            ClassMetrics { class: name.clone(), precision, recall, f1, support, predicted }
        })
        .collect())
}

/// Mean F1 over the classes present in the labels or the predictions; 0 if none is.
pub fn macro_f1(per_class: &[ClassMetrics]) -> f64 {
    let present: Vec<f64> = per_class.iter().filter(|c| c.is_present()).map(|c| c.f1).collect();
    if present.is_empty() {
        0.0
    } else {
        present.iter().sum::<f64>() / present.len() as f64
    }
}

/// Mean negative log-likelihood of the labels under softmax(logits), in nats.
pub fn negative_log_likelihood(logits: &[f32], labels: &[u32], num_classes: usize) -> Result<f64, EvalError> {
    let rows = Rows::with_labels(logits, labels, num_classes)?;
    let mut buf = Vec::with_capacity(num_classes);
    let mut total = 0.0;
    for (row, &label) in rows.iter().zip(labels) {
        log_softmax(row, &mut buf);
        total -= buf[label as usize];
    }
    Ok(total / rows.n() as f64)
}

/// Expected calibration error over `bins` equal-width confidence bins on `[0, 1]`.
///
/// Confidence is the top softmax probability; a row is correct when its argmax equals
/// its label. Bins are right-closed, `(b/B, (b+1)/B]`, so confidence 1 lands in the last
/// bin. Empty bins report zeros and do not contribute to the ECE.
pub fn calibration(logits: &[f32], labels: &[u32], num_classes: usize, bins: usize) -> Result<Calibration, EvalError> {
    if bins == 0 {
        return Err(EvalError::ZeroParameter { what: "ece_bins" });
    }
    let rows = Rows::with_labels(logits, labels, num_classes)?;
    let mut conf_sum = vec![0.0f64; bins];
    let mut correct = vec![0u64; bins];
    let mut count = vec![0u64; bins];
    let mut buf = Vec::with_capacity(num_classes);
    for (row, &label) in rows.iter().zip(labels) {
        log_softmax(row, &mut buf);
        let pred = argmax(row);
        let conf = buf[pred].exp();
        let b = ((conf * bins as f64).ceil() as usize).saturating_sub(1).min(bins - 1);
        conf_sum[b] += conf;
        count[b] += 1;
        if pred == label as usize {
            correct[b] += 1;
        }
    }
    let n = rows.n() as f64;
    let mut ece = 0.0;
    let bins_out = (0..bins)
        .map(|b| {
            let (mean_confidence, accuracy) = if count[b] == 0 {
                (0.0, 0.0)
            } else {
                let c = count[b] as f64;
                (conf_sum[b] / c, correct[b] as f64 / c)
            };
            ece += count[b] as f64 / n * (accuracy - mean_confidence).abs();
            CalibrationBin { lower: b as f64 / bins as f64, upper: (b + 1) as f64 / bins as f64, mean_confidence, accuracy, count: count[b] }
        })
        .collect();
    Ok(Calibration { ece, bins: bins_out })
}

/// Argmax agreement and mean `KL(teacher ‖ student)` (temperature 1) over paired rows.
///
/// Both buffers must have the same `n × k` shape.
pub fn agreement(teacher: &[f32], student: &[f32], num_classes: usize) -> Result<Agreement, EvalError> {
    if teacher.len() != student.len() {
        return Err(EvalError::AgreementShape { teacher: teacher.len(), student: student.len() });
    }
    if num_classes == 0 {
        return Err(EvalError::NoClasses);
    }
    let n = teacher.len() / num_classes;
    let t_rows = Rows::new(teacher, n, num_classes)?;
    let s_rows = Rows::new(student, n, num_classes)?;
    let (mut same, mut kl_total) = (0usize, 0.0f64);
    let (mut lt, mut ls) = (Vec::new(), Vec::new());
    for (t, s) in t_rows.iter().zip(s_rows.iter()) {
        if argmax(t) == argmax(s) {
            same += 1;
        }
        log_softmax(t, &mut lt);
        log_softmax(s, &mut ls);
        let kl: f64 = lt.iter().zip(&ls).map(|(&a, &b)| a.exp() * (a - b)).sum();
        // KL is non-negative; rounding can leave a tiny negative for identical rows.
        kl_total += kl.max(0.0);
    }
    Ok(Agreement { agreement: same as f64 / n as f64, mean_kl: kl_total / n as f64 })
}

/// Computes every metric of one model.
///
/// `classes` gives the class count `k` and the names; `logits` must hold
/// `labels.len() × k` values. `top_k` is clamped to `k`. The returned
/// [`ModelEvaluation::teacher_agreement`] is `None`; set it from [`agreement`] when the
/// teacher's logits on the same rows are at hand.
pub fn evaluate_model(logits: &[f32], labels: &[u32], classes: &[String], ece_bins: usize, top_k: usize) -> Result<ModelEvaluation, EvalError> {
    let k = classes.len();
    // Validate once up front so every error names the real problem.
    Rows::with_labels(logits, labels, k)?;
    if top_k == 0 {
        return Err(EvalError::ZeroParameter { what: "top_k" });
    }
    let top_k = top_k.min(k);
    let confusion = confusion_matrix(logits, labels, k)?;
    let per_class = per_class_metrics(&confusion, classes)?;
    let calib = calibration(logits, labels, k, ece_bins)?;
    Ok(ModelEvaluation {
        n_samples: labels.len(),
        classes: classes.to_vec(),
        accuracy: accuracy(logits, labels, k)?,
        top_k,
        top_k_accuracy: top_k_accuracy(logits, labels, k, top_k)?,
        macro_f1: macro_f1(&per_class),
        nll: negative_log_likelihood(logits, labels, k)?,
        ece: calib.ece,
        reliability: calib.bins,
        per_class,
        confusion,
        teacher_agreement: None,
    })
}

#[cfg(test)]
mod tests;
