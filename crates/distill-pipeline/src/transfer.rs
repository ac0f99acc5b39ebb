//! Confidence-aware transfer sets: which rows the student trains on under
//! `data.transfer.min_teacher_confidence`, and what the report shows of the teacher's confidence
//! on labelled and unlabelled rows.

use serde::Serialize;

use distill_data::{LabelState, Prepared};
use distill_nn::confidence::{confident_rows, teacher_confidence};
use distill_nn::NO_LABEL;
use distill_spec::{Pipeline, TrainSpec};

/// The student's training rows after the confidence filter, and the budget that keeps its
/// optimiser steps those of training on every row.
pub(crate) struct Filtered {
    /// The kept training rows, in order.
    pub rows: Vec<usize>,
    pub x: Vec<f32>,
    pub labels: Vec<u32>,
    pub teacher: Vec<f32>,
    pub train: TrainSpec,
    pub max_steps: usize,
}

/// The filtered training set, or `None` when the recipe asks for no filter.
pub(crate) fn filter(p: &Pipeline, data: &Prepared, labels: &[u32], teacher: &[f32]) -> Option<Filtered> {
    let min = p.data.transfer.as_ref()?.min_teacher_confidence?;
    let (k, inputs) = (data.classes(), data.train.x.len() / data.train.len().max(1));
    let unlabelled: Vec<bool> = labels.iter().map(|&y| y == NO_LABEL).collect();
    let rows = confident_rows(&teacher_confidence(teacher, k), &unlabelled, min);
    let gather = |v: &[f32], w: usize| rows.iter().flat_map(|&r| v[r * w..(r + 1) * w].iter().copied()).collect::<Vec<f32>>();
    let spec = &p.student.train;
    let max_steps = spec.epochs * labels.len().div_ceil(spec.batch);
    let epochs = max_steps.div_ceil(rows.len().div_ceil(spec.batch).max(1));
    tracing::info!(kept = rows.len(), of = labels.len(), min_teacher_confidence = min, epochs, "student: confidence filter on the transfer rows");
    Some(Filtered {
        x: gather(&data.train.x, inputs),
        labels: rows.iter().map(|&r| labels[r]).collect(),
        teacher: gather(teacher, k),
        train: TrainSpec { epochs, ..spec.clone() },
        max_steps,
        rows,
    })
}

/// The teacher's confidence on the training rows, as `metrics.json` and the report show it.
#[derive(Debug, Clone, Serialize)]
pub struct TransferConfidence {
    /// Upper edges of the histogram's bins (the first bin starts at 0).
    pub bins: Vec<f64>,
    /// Rows per bin of the teacher's largest probability, on rows the student sees labelled.
    pub labelled: Vec<usize>,
    /// The same on rows the student sees without a label (hidden and unlabelled).
    pub unlabelled: Vec<usize>,
    /// Mean confidence on each kind of row.
    pub labelled_mean: f64,
    pub unlabelled_mean: f64,
    /// `data.transfer.min_teacher_confidence`, and how many unlabelled rows it kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_teacher_confidence: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unlabelled_kept: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<&'static str>,
}

const BINS: usize = 10;

/// The histograms, for a recipe with a transfer set; `teacher` holds the logits of every
/// training row.
pub(crate) fn confidence(p: &Pipeline, data: &Prepared, teacher: &[f32]) -> Option<TransferConfidence> {
    let transfer = p.data.transfer.as_ref()?;
    let conf = teacher_confidence(teacher, data.classes());
    let (mut labelled, mut unlabelled) = (vec![0; BINS], vec![0; BINS]);
    let (mut sums, mut kept) = ([0.0f64; 2], 0);
    for (&c, &state) in conf.iter().zip(&data.train.state) {
        let bin = ((c * BINS as f64) as usize).min(BINS - 1);
        if state == LabelState::Labelled {
            labelled[bin] += 1;
            sums[0] += c;
        } else {
            unlabelled[bin] += 1;
            sums[1] += c;
            kept += transfer.min_teacher_confidence.is_none_or(|m| c >= m) as usize;
        }
    }
    let mean = |sum: f64, hist: &[usize]| sum / hist.iter().sum::<usize>().max(1) as f64;
    Some(TransferConfidence {
        bins: (1..=BINS).map(|b| b as f64 / BINS as f64).collect(),
        labelled_mean: mean(sums[0], &labelled),
        unlabelled_mean: mean(sums[1], &unlabelled),
        labelled,
        unlabelled,
        min_teacher_confidence: transfer.min_teacher_confidence,
        unlabelled_kept: transfer.min_teacher_confidence.map(|_| kept),
        weight: transfer.weight.map(|w| match w {
            distill_spec::TransferWeight::Confidence => "confidence",
            distill_spec::TransferWeight::Entropy => "entropy",
        }),
    })
}

impl TransferConfidence {
    /// The report's lines: the two histograms side by side and the filter's count.
    pub(crate) fn report_lines(&self) -> Vec<(String, String)> {
        let hist = |h: &[usize]| h.iter().map(usize::to_string).collect::<Vec<_>>().join(" ");
        let mut out = vec![
            ("teacher confidence bins (upper edges)".to_string(), self.bins.iter().map(|b| format!("{b:.1}")).collect::<Vec<_>>().join(" ")),
            (format!("teacher confidence, labelled rows (mean {:.3})", self.labelled_mean), hist(&self.labelled)),
            (format!("teacher confidence, unlabelled rows (mean {:.3})", self.unlabelled_mean), hist(&self.unlabelled)),
        ];
        if let (Some(min), Some(kept)) = (self.min_teacher_confidence, self.unlabelled_kept) {
            let total: usize = self.unlabelled.iter().sum();
            out.push(("confidence filter".to_string(), format!("kept {kept} of {total} unlabelled rows (teacher confidence ≥ {min})")));
        }
        if let Some(w) = self.weight {
            out.push(("unlabelled rows weighted by".to_string(), format!("teacher {w}")));
        }
        out
    }
}
