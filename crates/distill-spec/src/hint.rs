//! The `hint` term of `student.loss.terms`: a feature hint (FitNets, Romero et al. 2015). The
//! student's hidden layer `student_layer` predicts the teacher's hidden layer `teacher_layer`
//! through a learned linear projection, trained with the student and dropped after.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{LossKind, LossSpec};

/// `terms.hint: {weight, teacher_layer, student_layer, measure, features}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HintTerm {
    /// The teacher's hidden layer (0-based: the output of its first hidden layer is 0).
    pub teacher_layer: usize,
    /// The student's hidden layer (0-based).
    pub student_layer: usize,
    /// How the projected student features are compared with the teacher's: `mse` (default) or
    /// `cosine`.
    #[serde(default)]
    pub measure: HintMeasure,
    /// Where the teacher's features come from: `cached` (default: computed once per teacher and
    /// data, stored in the cache as Parquet like the logits) or `computed` (from the teacher's
    /// model for each student, nothing stored).
    #[serde(default)]
    pub features: HintFeatures,
}

/// How a hint compares the projected student features with the teacher's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HintMeasure {
    /// Mean squared error over rows and features.
    #[default]
    Mse,
    /// One minus the cosine similarity, averaged over rows.
    Cosine,
}

/// Where a hint's teacher features come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HintFeatures {
    /// Computed once per teacher, rows and layer and stored in the cache (Parquet, f32).
    #[default]
    Cached,
    /// Computed from the teacher's model for each student; nothing stored.
    Computed,
}

/// A recipe's hint: the term and its weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hint<'a> {
    pub weight: f64,
    pub term: &'a HintTerm,
}

impl LossSpec {
    /// The `hint` term of a weighted-sum loss, if it has one.
    pub fn hint(&self) -> Option<Hint<'_>> {
        let LossSpec::Terms(terms) = self else { return None };
        terms.values().find_map(|t| match &t.kind {
            LossKind::Hint(term) => Some(Hint { weight: t.weight, term }),
            _ => None,
        })
    }
}

/// The hint's own rules: it adds to logit terms (it is never the whole loss), has a weight > 0,
/// and reads a teacher's model (not external logits).
pub(crate) fn validate_hint(p: &crate::Pipeline, bad: &mut impl FnMut(&str, String)) {
    if p.student.hint.is_some() {
        bad("student.hint", "the hint is a loss term now: `student.loss.terms.hint: {weight, teacher_layer, student_layer}`".into());
    }
    let Some(hint) = p.student.loss.hint() else { return };
    let at = "student.loss.terms.hint";
    if !(hint.weight.is_finite() && hint.weight > 0.0) {
        bad(&format!("{at}.weight"), format!("must be > 0, got {}", hint.weight));
    }
    if let LossSpec::Terms(terms) = &p.student.loss {
        if !terms.values().any(|t| !matches!(t.kind, LossKind::Hint(_)) && t.weight > 0.0) {
            bad(at, "a hint adds to the logit terms: give at least one other term (e.g. `kd`) a weight > 0".into());
        }
    }
    if p.teacher.logits.is_some() {
        bad(at, "a hint reads the teacher's hidden layer: `teacher` must be a model, not `logits`".into());
    }
}
