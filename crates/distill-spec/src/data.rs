//! The `data:` section: sources, features, split, scaling, checks and the transfer set.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::types::yes;
/// The data stage: where rows come from, which column is the label, how to split and check them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    pub source: SourceSpec,
    /// Name of the label column. Integer or string classes; string classes are sorted by name.
    pub label: String,
    /// Which columns are features (default: every column but the label).
    #[serde(default)]
    pub features: FeatureSpec,
    #[serde(default)]
    pub split: SplitSpec,
    /// A separate file for the test split (same columns), e.g. Fashion-MNIST's t10k files.
    /// With it, `split.test` must be left out: every source row is for training and validation.
    #[serde(default)]
    pub test_source: Option<SourceSpec>,
    #[serde(default)]
    pub scale: ScaleSpec,
    /// Data-quality checks, run before anything is trained.
    #[serde(default)]
    pub checks: Vec<CheckSpec>,
    /// Unlabelled rows that only the teacher labels (the transfer set). Rows of `source` whose
    /// label is null always join it.
    #[serde(default)]
    pub transfer: Option<TransferSpec>,
}

/// The transfer set: training rows the student sees without their labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferSpec {
    /// Keep labels on only this many training rows (a whole number ≥ 1) or this fraction of them
    /// (a number in (0, 1)); the other training rows become unlabelled. Seeded.
    #[serde(default)]
    pub labelled: Option<f64>,
    /// Choose the labelled rows per class, in proportion.
    #[serde(default = "yes")]
    pub stratify: bool,
    /// Whether the teacher trains on the labels hidden from the student (`true`: the teacher had
    /// all labels, as when distilling a strong existing teacher; `false`: the strict setting where
    /// the teacher knows only the same few labels).
    #[serde(default = "yes")]
    pub teacher_sees_hidden: bool,
    /// Extra unlabelled rows from another file with the same feature columns (the label column
    /// may be absent). Relative to the pipeline file.
    #[serde(default)]
    pub source: Option<SourceSpec>,
}

/// A data file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// Path of the file, relative to the pipeline file. `${VAR}` and `${VAR:-default}` are
    /// replaced from the environment, so a recipe can point at data outside the repository.
    pub path: PathBuf,
    /// File format; inferred from the extension when absent (`.idx*-ubyte[.gz]` is IDX).
    #[serde(default)]
    pub format: Option<DataFormat>,
    /// IDX only: the labels file that goes with the images in `path` (becomes column `label`).
    #[serde(default)]
    pub labels: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataFormat {
    Csv,
    Parquet,
    /// MNIST-style IDX (u8 images, gzipped or not): pixels become columns `px0`, `px1`, ...
    Idx,
}

/// Feature columns: `include` (names or `*` globs) minus `exclude`. The label is never a feature.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    #[serde(default)]
    pub include: Option<Vec<String>>,
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// Train/validation/test split, seeded by the pipeline seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitSpec {
    /// Fraction of rows held out for the test split (default 0.2; none with `test_source`).
    #[serde(default)]
    pub test: Option<f64>,
    /// Fraction of rows held out for validation.
    #[serde(default)]
    pub val: f64,
    /// Keep class proportions equal across splits.
    #[serde(default = "yes")]
    pub stratify: bool,
}

/// The test fraction when the recipe gives none.
pub const DEFAULT_TEST_FRACTION: f64 = 0.2;

impl Default for SplitSpec {
    fn default() -> Self {
        Self { test: None, val: 0.0, stratify: true }
    }
}

/// Feature scaling; statistics are fitted on the training split only.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleSpec {
    #[serde(default)]
    pub kind: ScaleKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScaleKind {
    #[default]
    None,
    /// Map each feature's training range to [0, 1].
    Minmax,
    /// Zero mean, unit variance per feature.
    Standard,
}

/// One data-quality check. `kind` decides which other keys apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    /// Name shown in the report; defaults to the kind.
    #[serde(default)]
    pub id: Option<String>,
    pub kind: CheckKind,
    /// Columns to check (`not_null`, `range`): `all`, a name or `*` glob, or a list of them.
    #[serde(default)]
    pub columns: Option<ColumnSelection>,
    /// The column to check (`in_set`).
    #[serde(default)]
    pub column: Option<String>,
    /// Lower bound (`range`: value; `row_count`: rows).
    #[serde(default)]
    pub min: Option<f64>,
    /// Upper bound (`range`: value; `row_count`: rows).
    #[serde(default)]
    pub max: Option<f64>,
    /// Allowed values (`in_set`).
    #[serde(default)]
    pub values: Option<Vec<serde_yaml::Value>>,
    /// `error` stops the run; `warn` only reports.
    #[serde(default)]
    pub severity: Severity,
}

impl CheckSpec {
    pub fn name(&self) -> String {
        self.id.clone().unwrap_or_else(|| self.kind.as_str().to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// No null values in the selected columns.
    NotNull,
    /// Every value of the selected columns lies within [min, max].
    Range,
    /// Every value of `column` is one of `values`.
    InSet,
    /// The file has at least `min` (and at most `max`) rows.
    RowCount,
}

impl CheckKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::NotNull => "not_null",
            CheckKind::Range => "range",
            CheckKind::InSet => "in_set",
            CheckKind::RowCount => "row_count",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warn,
    #[default]
    Error,
}

/// `all`, one name or glob, or a list of names and globs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ColumnSelection {
    One(String),
    Many(Vec<String>),
}

impl ColumnSelection {
    /// The patterns; `all` is `*`.
    pub fn patterns(&self) -> Vec<String> {
        match self {
            ColumnSelection::One(s) if s == "all" => vec!["*".into()],
            ColumnSelection::One(s) => vec![s.clone()],
            ColumnSelection::Many(v) => v.clone(),
        }
    }
}


/// Keys and values of one check that its `kind` decides.
pub(crate) fn validate_check(path: &str, c: &CheckSpec, bad: &mut impl FnMut(&str, String)) {
    let kind = c.kind.as_str();
    let allowed: &[&str] = match c.kind {
        CheckKind::NotNull => &["columns"],
        CheckKind::Range => &["columns", "min", "max"],
        CheckKind::InSet => &["column", "values"],
        CheckKind::RowCount => &["min", "max"],
    };
    let present = [
        ("columns", c.columns.is_some()),
        ("column", c.column.is_some()),
        ("min", c.min.is_some()),
        ("max", c.max.is_some()),
        ("values", c.values.is_some()),
    ];
    for (key, is_set) in present {
        if is_set && !allowed.contains(&key) {
            bad(&format!("{path}.{key}"), format!("`{key}` does not apply to a `{kind}` check"));
        }
    }
    match c.kind {
        CheckKind::NotNull => {}
        CheckKind::Range => {
            if c.min.is_none() && c.max.is_none() {
                bad(path, "a `range` check needs `min`, `max` or both".into());
            }
            if let (Some(lo), Some(hi)) = (c.min, c.max) {
                if lo > hi {
                    bad(&format!("{path}.min"), format!("min {lo} is greater than max {hi}"));
                }
            }
        }
        CheckKind::InSet => {
            if c.column.is_none() {
                bad(path, "an `in_set` check needs `column`".into());
            }
            match &c.values {
                None => bad(path, "an `in_set` check needs `values`".into()),
                Some(v) if v.is_empty() => bad(&format!("{path}.values"), "must not be empty".into()),
                Some(v) => {
                    for (j, item) in v.iter().enumerate() {
                        if crate::scalar_text(item).is_none() {
                            bad(&format!("{path}.values[{j}]"), "must be a number or a string".into());
                        }
                    }
                }
            }
        }
        CheckKind::RowCount => {
            if c.min.is_none() && c.max.is_none() {
                bad(path, "a `row_count` check needs `min`, `max` or both".into());
            }
            for (key, v) in [("min", c.min), ("max", c.max)] {
                if let Some(v) = v {
                    if v < 0.0 || v.fract() != 0.0 {
                        bad(&format!("{path}.{key}"), format!("must be a whole number of rows, got {v}"));
                    }
                }
            }
        }
    }
}

