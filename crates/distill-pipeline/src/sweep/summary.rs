//! A sweep's result: one row per point, the Pareto fronts (accuracy against parameters and
//! against latency) and the recommendation — the point that best serves the objective among those
//! meeting every target. Points are judged on the validation split (the test split only reports),
//! so choosing a point does not fit the test set.

use std::collections::BTreeMap;

use serde::Serialize;

use distill_spec::sweep::inline;
use distill_spec::{Objective, Pipeline, SweepPoint};

use crate::evaluate::{evaluate_targets, ModelMetrics};
use crate::run::Summary;

/// One point's keys and results (means over `student.seeds`).
#[derive(Debug, Clone, Serialize)]
pub struct PointResult {
    pub index: usize,
    pub label: String,
    pub keys: BTreeMap<String, String>,
    /// Its run directory, relative to the sweep's.
    pub dir: String,
    /// Test accuracy of the distilled student and its spread over seeds.
    pub accuracy: f64,
    pub accuracy_std: Option<f64>,
    pub val_accuracy: Option<f64>,
    pub params: usize,
    pub size_bytes: u64,
    pub latency_p95_ms: Option<f64>,
    pub teacher_agreement: Option<f64>,
    pub baseline_accuracy: Option<f64>,
    pub baseline_accuracy_std: Option<f64>,
    pub baseline_val_accuracy: Option<f64>,
    /// Whether every target of the recipe holds with the ranking split's accuracies.
    pub meets_targets: bool,
    pub cache_hits: Vec<String>,
    #[serde(skip)]
    student: Option<ModelMetrics>,
    #[serde(skip)]
    teacher: Option<ModelMetrics>,
}

impl PointResult {
    pub(crate) fn new(point: &SweepPoint, dir: String, s: &Summary) -> Self {
        let student = s.student();
        let baseline = s.baseline();
        Self {
            index: point.index,
            label: point.label(),
            keys: point.sets.iter().map(|(k, v)| (k.clone(), inline(v))).collect(),
            dir,
            accuracy: student.map_or(0.0, |m| m.accuracy),
            accuracy_std: student.and_then(|m| m.accuracy_std),
            val_accuracy: student.and_then(|m| m.val_accuracy),
            params: student.map_or(0, |m| m.params),
            size_bytes: student.map_or(0, |m| m.size_bytes),
            latency_p95_ms: student.and_then(|m| m.latency.as_ref()).map(|l| l.p95_ms),
            teacher_agreement: student.and_then(|m| m.teacher_agreement),
            baseline_accuracy: baseline.map(|m| m.accuracy),
            baseline_accuracy_std: baseline.and_then(|m| m.accuracy_std),
            baseline_val_accuracy: baseline.and_then(|m| m.val_accuracy),
            meets_targets: false,
            cache_hits: s.cache_hits.clone(),
            student: student.cloned(),
            teacher: s.teacher().cloned(),
        }
    }

    /// The accuracy that ranks points: validation, or test when there is no validation split.
    fn ranking(&self, split: Split) -> f64 {
        match split {
            Split::Validation => self.val_accuracy.unwrap_or(0.0),
            Split::Test => self.accuracy,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Validation,
    Test,
}

/// The point the sweep recommends, with its test metrics.
#[derive(Debug, Clone, Serialize)]
pub struct Recommendation {
    pub index: usize,
    pub label: String,
    pub params: usize,
    pub latency_p95_ms: Option<f64>,
    /// The accuracy it was chosen on (`decided_on`).
    pub ranking_accuracy: f64,
    pub test_accuracy: f64,
    pub test_accuracy_std: Option<f64>,
    pub why: String,
}

/// The sweep's `metrics.json`.
#[derive(Debug, Clone, Serialize)]
pub struct SweepSummary {
    pub pipeline: String,
    pub objective: Objective,
    /// The split whose accuracy ranks points and checks targets.
    pub decided_on: Split,
    pub teacher_accuracy: Option<f64>,
    pub teacher_val_accuracy: Option<f64>,
    pub teacher_params: Option<usize>,
    pub points: Vec<PointResult>,
    /// Indices of the points on the front of accuracy against parameters, smallest first.
    pub front_params: Vec<usize>,
    /// The same against p95 latency (empty without `evaluate.latency`).
    pub front_latency: Vec<usize>,
    /// None when no point meets every target.
    pub recommendation: Option<Recommendation>,
    pub seconds: f64,
}

impl SweepSummary {
    pub(crate) fn new(p: &Pipeline, mut points: Vec<PointResult>, seconds: f64) -> Self {
        let split = if points.iter().all(|r| r.val_accuracy.is_some()) { Split::Validation } else { Split::Test };
        if split == Split::Test {
            tracing::warn!(
                "the recipe has no validation split: sweep points are ranked on the test split, which then no longer estimates the chosen point's accuracy"
            );
        }
        for r in &mut points {
            r.meets_targets = meets_targets(p, r, split);
        }
        let teacher = points.iter().find_map(|r| r.teacher.clone());
        let front_params = front(&points, split, |r| Some(r.params as f64));
        let front_latency = front(&points, split, |r| r.latency_p95_ms);
        let objective = p.sweep.as_ref().map(|s| s.objective).unwrap_or_default();
        let recommendation = recommend(&points, split, objective);
        Self {
            pipeline: p.name.clone(),
            objective,
            decided_on: split,
            teacher_accuracy: teacher.as_ref().map(|t| t.accuracy),
            teacher_val_accuracy: teacher.as_ref().and_then(|t| t.val_accuracy),
            teacher_params: teacher.as_ref().map(|t| t.params).filter(|&n| n > 0),
            points,
            front_params,
            front_latency,
            recommendation,
            seconds,
        }
    }
}

/// The recipe's targets with the ranking split's accuracies in place of the test ones.
fn meets_targets(p: &Pipeline, r: &PointResult, split: Split) -> bool {
    let Some(student) = &r.student else { return false };
    let on_split =
        |m: &ModelMetrics| ModelMetrics { accuracy: if split == Split::Validation { m.val_accuracy.unwrap_or(m.accuracy) } else { m.accuracy }, ..m.clone() };
    let teacher = r.teacher.as_ref().map(on_split);
    evaluate_targets(&p.evaluate.targets, teacher.as_ref(), &on_split(student)).iter().all(|t| t.met)
}

/// The points no other point beats on both axes (higher accuracy at no larger x), by x.
pub(crate) fn front(points: &[PointResult], split: Split, x: impl Fn(&PointResult) -> Option<f64>) -> Vec<usize> {
    let mut with_x: Vec<(f64, f64, usize)> = points.iter().filter_map(|r| Some((x(r)?, r.ranking(split), r.index))).collect();
    with_x.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
    let mut best = f64::NEG_INFINITY;
    with_x
        .into_iter()
        .filter(|&(_, acc, _)| {
            acc > best && {
                best = acc;
                true
            }
        })
        .map(|(_, _, i)| i)
        .collect()
}

/// Among the points that meet every target, the smallest (or fastest); ties go to the more
/// accurate, then the earlier point.
pub(crate) fn recommend(points: &[PointResult], split: Split, objective: Objective) -> Option<Recommendation> {
    let cost = |r: &PointResult| match objective {
        Objective::Smallest => Some(r.params as f64),
        Objective::Fastest => r.latency_p95_ms,
    };
    let best = points
        .iter()
        .filter(|r| r.meets_targets)
        .filter_map(|r| Some((cost(r)?, r)))
        .min_by(|a, b| a.0.total_cmp(&b.0).then(b.1.ranking(split).total_cmp(&a.1.ranking(split))).then(a.1.index.cmp(&b.1.index)))?
        .1;
    let what = match objective {
        Objective::Smallest => format!("{} parameters", best.params),
        Objective::Fastest => format!("p95 latency {:.3} ms", best.latency_p95_ms.unwrap_or_default()),
    };
    Some(Recommendation {
        index: best.index,
        label: best.label.clone(),
        params: best.params,
        latency_p95_ms: best.latency_p95_ms,
        ranking_accuracy: best.ranking(split),
        test_accuracy: best.accuracy,
        test_accuracy_std: best.accuracy_std,
        why: format!(
            "the {} point meeting every target on the {split:?} split ({what})",
            if objective == Objective::Smallest { "smallest" } else { "fastest" }
        )
        .to_lowercase(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(index: usize, params: usize, val: f64, test: f64) -> PointResult {
        let mut m = ModelMetrics::new(&[], &[], 1, params);
        (m.accuracy, m.val_accuracy) = (test, Some(val));
        PointResult {
            index,
            label: format!("p{index}"),
            keys: BTreeMap::new(),
            dir: String::new(),
            accuracy: test,
            accuracy_std: None,
            val_accuracy: Some(val),
            params,
            size_bytes: 0,
            latency_p95_ms: None,
            teacher_agreement: None,
            baseline_accuracy: None,
            baseline_accuracy_std: None,
            baseline_val_accuracy: None,
            meets_targets: false,
            cache_hits: Vec::new(),
            student: Some(m),
            teacher: None,
        }
    }

    fn recipe() -> Pipeline {
        let text = "version: 1\nname: s\ndata: {source: {path: d.csv}, label: y}\nteacher: {model: {hidden: [8]}}\nstudent: {model: {hidden: [4]}}\n\
                    evaluate: {targets: {min_accuracy: 0.85}}\nsweep: {grid: {student.model.hidden: [[2], [4], [8]]}}\n";
        distill_spec::parse_str(text, "s.yaml".as_ref(), &[]).unwrap()
    }

    #[test]
    fn validation_decides_where_the_test_split_would_choose_otherwise() {
        // The smallest point looks good on test (0.95) but misses the target on validation.
        let points = vec![point(0, 100, 0.80, 0.95), point(1, 200, 0.92, 0.90), point(2, 400, 0.93, 0.91)];
        let s = SweepSummary::new(&recipe(), points.clone(), 0.0);
        assert_eq!(s.decided_on, Split::Validation);
        let rec = s.recommendation.as_ref().unwrap();
        assert_eq!((rec.index, rec.test_accuracy), (1, 0.90));
        assert!(rec.why.contains("validation"), "{}", rec.why);
        let on_test = recommend(
            &points
                .into_iter()
                .map(|mut p| {
                    p.meets_targets = p.accuracy >= 0.85;
                    p
                })
                .collect::<Vec<_>>(),
            Split::Test,
            Objective::Smallest,
        );
        assert_eq!(on_test.unwrap().index, 0, "the test split would have chosen the other point");
    }

    #[test]
    fn the_front_keeps_points_no_other_beats() {
        let points = vec![point(0, 100, 0.80, 0.0), point(1, 200, 0.79, 0.0), point(2, 400, 0.90, 0.0), point(3, 400, 0.85, 0.0)];
        assert_eq!(front(&points, Split::Validation, |r| Some(r.params as f64)), [0, 2]);
        assert!(SweepSummary::new(&recipe(), vec![point(0, 100, 0.5, 0.5)], 0.0).recommendation.is_none(), "no point meets the target");
    }
}
