//! The `data:` section: sources, features, split, scaling, checks and the transfer set.

use std::collections::BTreeMap;
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
    /// label is null join it; without `transfer`, a null label is an error.
    #[serde(default)]
    pub transfer: Option<TransferSpec>,
    /// The image shape of the features, for `arch: cnn` models and the image augmentations
    /// (`shift`, `flip`): feature `(y * width + x) * channels + c` is pixel (y, x), channel c.
    /// Inferred for IDX sources (square images, columns `px0..`) when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageSpec>,
    /// Extra training rows made from the training split only (never validation or test), seeded
    /// by the pipeline seed. Each entry works from the original training rows; its new rows get
    /// their own row-id range, so the teacher labels exactly the rows the student trains on.
    /// Scaling statistics come from the original training rows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub augment: Vec<AugmentSpec>,
}

/// Image layout of the feature vector: row-major pixels, channels last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// Pixels per column of the image.
    pub height: usize,
    /// Pixels per row of the image.
    pub width: usize,
    /// Values per pixel (default 1).
    #[serde(default = "one")]
    pub channels: usize,
}

fn one() -> usize {
    1
}

/// One augmentation of the training split. `kind` decides which other keys apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AugmentSpec {
    pub kind: AugmentKind,
    /// How many new rows per training row (`gaussian_noise`, `mixup`, `shift`; default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copies: Option<usize>,
    /// Standard deviation of the added noise, in the units of the unscaled features
    /// (`gaussian_noise`, required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<f64>,
    /// Mixing weights are drawn from Beta(alpha, alpha) (`mixup`; default 0.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// How new rows of a rare class are made (`oversample`): `smote` (default) interpolates
    /// between a row and one of its nearest same-class neighbours; `duplicate` copies rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<OversampleMethod>,
    /// Every class is topped up to this fraction of the largest class's labelled rows
    /// (`oversample`; in (0, 1], default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// Nearest same-class neighbours to interpolate towards (`oversample` with `smote`; default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neighbours: Option<usize>,
    /// Largest shift in pixels, drawn per copy in each direction; vacated pixels become 0
    /// (`shift`; default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixels: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AugmentKind {
    /// A copy of each training row with Gaussian noise added to every feature; keeps the
    /// row's label state.
    GaussianNoise,
    /// Convex mixes of two random training rows; mixed rows have no label, so only the
    /// teacher's soft targets label them.
    Mixup,
    /// New labelled rows for classes with fewer labelled training rows than the largest class.
    Oversample,
    /// A copy of each training image shifted by up to `pixels` pixels; keeps the label state.
    Shift,
    /// One horizontally mirrored copy of each training image; keeps the label state.
    Flip,
}

impl AugmentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AugmentKind::GaussianNoise => "gaussian_noise",
            AugmentKind::Mixup => "mixup",
            AugmentKind::Oversample => "oversample",
            AugmentKind::Shift => "shift",
            AugmentKind::Flip => "flip",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OversampleMethod {
    /// Random duplication of the class's rows.
    Duplicate,
    /// SMOTE: a random point on the segment between a row and a near same-class neighbour.
    #[default]
    Smote,
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
    /// CSV only: whether the first line holds the column names (default true). Without a
    /// header, columns are named by `column_names` or `column_1`, `column_2`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<bool>,
    /// CSV only: the field separator, one character (default `,`; `"\t"` for tabs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// CSV only: texts that mean a missing value, e.g. `["NA", "?", ""]` (an empty field is
    /// always null).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null_values: Option<Vec<String>>,
    /// CSV only: lines starting with this text are skipped, e.g. `"#"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// CSV only: names for the columns, in file order (all of them); with a header they
    /// replace the header's names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column_names: Option<Vec<String>>,
}

impl SourceSpec {
    /// A source with only a path; every other key at its default.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), format: None, labels: None, header: None, delimiter: None, null_values: None, comment: None, column_names: None }
    }

    /// Whether any CSV-only key is set.
    pub fn has_csv_options(&self) -> bool {
        self.header.is_some() || self.delimiter.is_some() || self.null_values.is_some() || self.comment.is_some() || self.column_names.is_some()
    }
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
    /// One range for all features (the training minimum and maximum over every feature) mapped
    /// to [0, 1]: for pixels, where per-feature ranges would stretch rarely-lit border pixels.
    #[serde(rename = "minmax_global")]
    MinmaxGlobal,
    /// Zero mean, unit variance per feature.
    Standard,
}

/// One data-quality check. `kind` decides which other keys apply.
///
/// Status: with neither `warn`, `error` nor `severity`, any failure is an error. With
/// thresholds, the check is `error` when the `error` threshold is crossed, else `warn` when the
/// `warn` threshold is crossed (any failure when `warn` is left out but `error` is given), else
/// `pass`. `severity: warn` is short for `warn: "> 0"` with no `error`; `severity: error` for
/// `error: "> 0"`. Counts are failing rows (`not_null`, `finite`, `range`, `in_set`, `unique`, `sql`,
/// `leakage`), columns (`schema`, `drift`) or classes (`class_balance`); `row_count` fails as
/// a whole (1 of 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    /// Name shown in the report; defaults to the kind.
    #[serde(default)]
    pub id: Option<String>,
    pub kind: CheckKind,
    /// Columns to check (`not_null`, `finite`, `range`, `unique` key columns, `leakage` and
    /// `drift` features; `schema`: columns that must exist): `all`, a name or `*` glob, or a
    /// list of them. Default: every column (every feature for `leakage` and `drift`).
    #[serde(default)]
    pub columns: Option<ColumnSelection>,
    /// The column to check (`in_set`; `class_balance`, where it defaults to `data.label`).
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
    /// Column types (`schema`): name or `*` glob → `int`, `float`, `number`, `string` or `bool`.
    /// Every pattern must match a column of that type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub types: Option<BTreeMap<String, ColumnType>>,
    /// Whether columns that neither `columns` nor `types` name may exist (`schema`; default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_extra: Option<bool>,
    /// Smallest share of the labelled rows each class must have, in (0, 1) (`class_balance`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_fraction: Option<f64>,
    /// Largest allowed ratio of the largest class's rows to the smallest's (`class_balance`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ratio: Option<f64>,
    /// Distribution distance (`drift`): `psi` (population stability index over quantile bins of
    /// the training values; default) or `ks` (Kolmogorov–Smirnov statistic, in [0, 1]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<DriftMethod>,
    /// A feature drifts when its train/test distance exceeds this (`drift`; default 0.2 for
    /// `psi`, 0.1 for `ks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_distance: Option<f64>,
    /// Quantile bins for `psi` (`drift`; default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bins: Option<usize>,
    /// Failures above which the check warns: a count (`"> 0"`, `">= 10"`, `3` = `"> 3"`) or a
    /// percentage of the rows, columns or classes checked (`"> 5%"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn: Option<Threshold>,
    /// Failures above which the check is an error (an error-level check stops the run); same
    /// forms as `warn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Threshold>,
    /// Shorthand for thresholds: `error` (any failure stops the run) or `warn` (only
    /// reported). Not together with `warn`/`error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// How many failing rows (or columns, classes) the report lists (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<usize>,
    /// A boolean SQL expression over the columns that every row must satisfy (`sql`), e.g.
    /// `"px0 >= 0 AND label IN (0, 1)"`; rows where it is false or null fail. Polars SQL syntax.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicate: Option<String>,
}

impl CheckSpec {
    /// A check of `kind` with every other key at its default.
    pub fn new(kind: CheckKind) -> Self {
        Self {
            id: None,
            kind,
            columns: None,
            column: None,
            min: None,
            max: None,
            values: None,
            types: None,
            allow_extra: None,
            min_fraction: None,
            max_ratio: None,
            method: None,
            max_distance: None,
            bins: None,
            warn: None,
            error: None,
            severity: None,
            samples: None,
            predicate: None,
        }
    }

    pub fn name(&self) -> String {
        self.id.clone().unwrap_or_else(|| self.kind.as_str().to_string())
    }

    /// The (warn, error) thresholds in force, `severity` and defaults applied.
    pub fn thresholds(&self) -> (Option<Threshold>, Option<Threshold>) {
        match (self.warn, self.error, self.severity) {
            (None, None, Some(Severity::Warn)) => (Some(Threshold::ANY), None),
            (None, None, _) => (None, Some(Threshold::ANY)),
            (None, Some(e), _) => (Some(Threshold::ANY), Some(e)),
            (w, e, _) => (w, e),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// Required columns (`columns`), column types (`types`), and whether others may exist
    /// (`allow_extra`).
    Schema,
    /// No null values in the selected columns.
    NotNull,
    /// No NaN or infinite values in the selected columns (non-numeric columns are skipped).
    Finite,
    /// Every value of the selected columns lies within [min, max] (nulls and NaN are left to
    /// `not_null` and `finite`).
    Range,
    /// Every value of `column` is one of `values`.
    InSet,
    /// No two rows share the values of `columns` (whole rows by default); every repeat of an
    /// earlier row counts as a failure.
    Unique,
    /// The file has at least `min` (and at most `max`) rows.
    RowCount,
    /// Each class of `column` has at least `min_fraction` of the labelled rows, and/or the
    /// largest class has at most `max_ratio` times the rows of the smallest.
    ClassBalance,
    /// No validation or test row has exactly the features of a training row. Runs on the
    /// prepared splits.
    Leakage,
    /// Per feature, the distance between the training and test distributions stays within
    /// `max_distance`. Runs on the prepared splits.
    Drift,
    /// Every row satisfies the SQL `predicate` (false or null fails).
    Sql,
}

impl CheckKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Schema => "schema",
            CheckKind::NotNull => "not_null",
            CheckKind::Finite => "finite",
            CheckKind::Range => "range",
            CheckKind::InSet => "in_set",
            CheckKind::Unique => "unique",
            CheckKind::RowCount => "row_count",
            CheckKind::ClassBalance => "class_balance",
            CheckKind::Leakage => "leakage",
            CheckKind::Drift => "drift",
            CheckKind::Sql => "sql",
        }
    }

    /// Whether the check needs the train/validation/test split (it runs after `prepare`).
    pub fn needs_split(self) -> bool {
        matches!(self, CheckKind::Leakage | CheckKind::Drift)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warn,
    #[default]
    Error,
}

/// A column type for `schema` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// Signed or unsigned integers.
    Int,
    /// Floating point.
    Float,
    /// Integers or floating point.
    Number,
    /// Text.
    String,
    /// true/false.
    Bool,
}

impl ColumnType {
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::Int => "int",
            ColumnType::Float => "float",
            ColumnType::Number => "number",
            ColumnType::String => "string",
            ColumnType::Bool => "bool",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftMethod {
    /// Population stability index.
    #[default]
    Psi,
    /// Kolmogorov–Smirnov statistic.
    Ks,
}

/// A bound on a check's failures: more than (`>`) or at least (`>=`) a count or a percentage.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ThresholdText", into = "String")]
pub struct Threshold {
    /// `>=` rather than `>`.
    pub inclusive: bool,
    /// A count, or a percentage when `percent`.
    pub value: f64,
    pub percent: bool,
}

impl Threshold {
    /// `> 0`: any failure.
    pub const ANY: Threshold = Threshold { inclusive: false, value: 0.0, percent: false };

    /// Whether `failing` of `total` crosses the threshold.
    pub fn crossed(&self, failing: usize, total: usize) -> bool {
        let v = if self.percent {
            if total == 0 {
                0.0
            } else {
                failing as f64 * 100.0 / total as f64
            }
        } else {
            failing as f64
        };
        if self.inclusive {
            v >= self.value
        } else {
            v > self.value
        }
    }

    /// Parses `> 0`, `>= 10`, `> 5%`, `5%` (= `> 5%`) or `3` (= `> 3`).
    pub fn parse(text: &str) -> Result<Threshold, String> {
        let t = text.trim();
        let (inclusive, rest) = if let Some(r) = t.strip_prefix(">=") {
            (true, r)
        } else if let Some(r) = t.strip_prefix('>') {
            (false, r)
        } else {
            (false, t)
        };
        let rest = rest.trim();
        let (percent, number) = match rest.strip_suffix('%') {
            Some(n) => (true, n.trim()),
            None => (false, rest),
        };
        let bad = || format!("invalid threshold {text:?}: expected a count or percentage such as \"> 0\", \">= 10\" or \"> 5%\"");
        let value: f64 = number.parse().map_err(|_| bad())?;
        if !value.is_finite() || value < 0.0 {
            return Err(bad());
        }
        if percent && value > 100.0 {
            return Err(format!("invalid threshold {text:?}: a percentage must be at most 100%"));
        }
        Ok(Threshold { inclusive, value, percent })
    }
}

impl std::fmt::Display for Threshold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}{}", if self.inclusive { ">=" } else { ">" }, self.value, if self.percent { "%" } else { "" })
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ThresholdText {
    Number(f64),
    Text(String),
}

impl TryFrom<ThresholdText> for Threshold {
    type Error = String;
    fn try_from(t: ThresholdText) -> Result<Self, String> {
        match t {
            ThresholdText::Number(n) => Threshold::parse(&n.to_string()),
            ThresholdText::Text(s) => Threshold::parse(&s),
        }
    }
}

impl From<Threshold> for String {
    fn from(t: Threshold) -> String {
        t.to_string()
    }
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
        CheckKind::Schema => &["columns", "types", "allow_extra"],
        CheckKind::NotNull | CheckKind::Finite | CheckKind::Unique | CheckKind::Leakage => &["columns"],
        CheckKind::Range => &["columns", "min", "max"],
        CheckKind::InSet => &["column", "values"],
        CheckKind::RowCount => &["min", "max"],
        CheckKind::ClassBalance => &["column", "min_fraction", "max_ratio"],
        CheckKind::Drift => &["columns", "method", "max_distance", "bins"],
        CheckKind::Sql => &["predicate"],
    };
    let present = [
        ("columns", c.columns.is_some()),
        ("column", c.column.is_some()),
        ("min", c.min.is_some()),
        ("max", c.max.is_some()),
        ("values", c.values.is_some()),
        ("types", c.types.is_some()),
        ("allow_extra", c.allow_extra.is_some()),
        ("min_fraction", c.min_fraction.is_some()),
        ("max_ratio", c.max_ratio.is_some()),
        ("method", c.method.is_some()),
        ("max_distance", c.max_distance.is_some()),
        ("bins", c.bins.is_some()),
        ("predicate", c.predicate.is_some()),
    ];
    for (key, is_set) in present {
        if is_set && !allowed.contains(&key) {
            bad(&format!("{path}.{key}"), format!("`{key}` does not apply to a `{kind}` check"));
        }
    }
    if c.severity.is_some() && (c.warn.is_some() || c.error.is_some()) {
        bad(&format!("{path}.severity"), "give either `severity` or `warn`/`error` thresholds, not both".into());
    }
    if let (Some(w), Some(e)) = (c.warn, c.error) {
        if w.percent == e.percent && w.value > e.value {
            bad(&format!("{path}.warn"), format!("the warn threshold ({w}) is above the error threshold ({e})"));
        }
    }
    if let Some(ColumnSelection::Many(v)) = &c.columns {
        if v.is_empty() {
            bad(&format!("{path}.columns"), "must list at least one column".into());
        }
    }
    match c.kind {
        CheckKind::NotNull | CheckKind::Finite | CheckKind::Unique | CheckKind::Leakage => {}
        CheckKind::Sql => match c.predicate.as_deref().map(str::trim) {
            None => bad(path, "an `sql` check needs `predicate`".into()),
            Some("") => bad(&format!("{path}.predicate"), "must not be empty".into()),
            Some(_) => {}
        },
        CheckKind::Schema => {
            if c.columns.is_none() && c.types.is_none() && c.allow_extra.is_none() {
                bad(path, "a `schema` check needs `columns`, `types` or `allow_extra`".into());
            }
            if c.allow_extra == Some(false) && c.columns.is_none() && c.types.is_none() {
                bad(&format!("{path}.allow_extra"), "`allow_extra: false` needs `columns` or `types` to say which columns may exist".into());
            }
        }
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
        CheckKind::ClassBalance => {
            if c.min_fraction.is_none() && c.max_ratio.is_none() {
                bad(path, "a `class_balance` check needs `min_fraction`, `max_ratio` or both".into());
            }
            if let Some(f) = c.min_fraction {
                if !(f > 0.0 && f < 1.0) {
                    bad(&format!("{path}.min_fraction"), format!("must be in (0, 1), got {f}"));
                }
            }
            if let Some(r) = c.max_ratio {
                if !(r.is_finite() && r >= 1.0) {
                    bad(&format!("{path}.max_ratio"), format!("must be at least 1, got {r}"));
                }
            }
        }
        CheckKind::Drift => {
            if let Some(d) = c.max_distance {
                if !(d.is_finite() && d >= 0.0) {
                    bad(&format!("{path}.max_distance"), format!("must be ≥ 0, got {d}"));
                }
                if c.method == Some(DriftMethod::Ks) && d > 1.0 {
                    bad(&format!("{path}.max_distance"), format!("a KS distance is at most 1, got {d}"));
                }
            }
            if let Some(b) = c.bins {
                if b < 2 {
                    bad(&format!("{path}.bins"), format!("must be at least 2, got {b}"));
                }
                if c.method == Some(DriftMethod::Ks) {
                    bad(&format!("{path}.bins"), "`bins` applies only to `method: psi`".into());
                }
            }
        }
    }
}

/// Values of the `data:` section beyond the checks: CSV options, the image shape and the
/// augmentations. `validate` should call it with path `data` (see the distill-data report).
pub fn validate_data(path: &str, d: &DataSpec, bad: &mut impl FnMut(&str, String)) {
    let sources =
        [("source", Some(&d.source)), ("test_source", d.test_source.as_ref()), ("transfer.source", d.transfer.as_ref().and_then(|t| t.source.as_ref()))];
    for (key, source) in sources {
        let Some(s) = source else { continue };
        let key = format!("{path}.{key}");
        validate_source(&key, s, bad);
    }
    if let Some(img) = &d.image {
        for (key, v) in [("height", img.height), ("width", img.width), ("channels", img.channels)] {
            if v == 0 {
                bad(&format!("{path}.image.{key}"), "must be at least 1".into());
            }
        }
    }
    for (i, a) in d.augment.iter().enumerate() {
        validate_augment(&format!("{path}.augment[{i}]"), a, bad);
    }
}

/// CSV-only keys on a CSV source, and their values.
pub(crate) fn validate_source(key: &str, s: &SourceSpec, bad: &mut impl FnMut(&str, String)) {
    let not_csv = matches!(s.format, Some(DataFormat::Parquet) | Some(DataFormat::Idx)) || s.labels.is_some();
    if not_csv && s.has_csv_options() {
        for (name, set) in [
            ("header", s.header.is_some()),
            ("delimiter", s.delimiter.is_some()),
            ("null_values", s.null_values.is_some()),
            ("comment", s.comment.is_some()),
            ("column_names", s.column_names.is_some()),
        ] {
            if set {
                bad(&format!("{key}.{name}"), format!("`{name}` applies only to CSV files"));
            }
        }
    }
    if let Some(delim) = &s.delimiter {
        if delim.len() != 1 || !delim.is_ascii() || delim == "\"" || delim == "\n" || delim == "\r" {
            bad(&format!("{key}.delimiter"), format!("must be one ASCII character other than a quote or newline, got {delim:?}"));
        }
    }
    if let Some(c) = &s.comment {
        if c.is_empty() {
            bad(&format!("{key}.comment"), "must not be empty".into());
        }
    }
    if let Some(names) = &s.column_names {
        if names.is_empty() {
            bad(&format!("{key}.column_names"), "must list at least one name".into());
        }
        for (j, n) in names.iter().enumerate() {
            if names[..j].contains(n) {
                bad(&format!("{key}.column_names[{j}]"), format!("`{n}` is named twice"));
            }
        }
    }
}

/// Keys and values of one augmentation that its `kind` decides.
pub(crate) fn validate_augment(path: &str, a: &AugmentSpec, bad: &mut impl FnMut(&str, String)) {
    let kind = a.kind.as_str();
    let allowed: &[&str] = match a.kind {
        AugmentKind::GaussianNoise => &["copies", "std"],
        AugmentKind::Mixup => &["copies", "alpha"],
        AugmentKind::Oversample => &["method", "ratio", "neighbours"],
        AugmentKind::Shift => &["copies", "pixels"],
        AugmentKind::Flip => &[],
    };
    let present = [
        ("copies", a.copies.is_some()),
        ("std", a.std.is_some()),
        ("alpha", a.alpha.is_some()),
        ("method", a.method.is_some()),
        ("ratio", a.ratio.is_some()),
        ("neighbours", a.neighbours.is_some()),
        ("pixels", a.pixels.is_some()),
    ];
    for (key, is_set) in present {
        if is_set && !allowed.contains(&key) {
            bad(&format!("{path}.{key}"), format!("`{key}` does not apply to `{kind}`"));
        }
    }
    if a.copies == Some(0) {
        bad(&format!("{path}.copies"), "must be at least 1".into());
    }
    match a.kind {
        AugmentKind::GaussianNoise => match a.std {
            None => bad(path, "`gaussian_noise` needs `std`".into()),
            Some(s) if !(s.is_finite() && s > 0.0) => bad(&format!("{path}.std"), format!("must be > 0, got {s}")),
            Some(_) => {}
        },
        AugmentKind::Mixup => {
            if let Some(al) = a.alpha {
                if !(al.is_finite() && al > 0.0) {
                    bad(&format!("{path}.alpha"), format!("must be > 0, got {al}"));
                }
            }
        }
        AugmentKind::Oversample => {
            if let Some(r) = a.ratio {
                if !(r > 0.0 && r <= 1.0) {
                    bad(&format!("{path}.ratio"), format!("must be in (0, 1], got {r}"));
                }
            }
            if a.neighbours == Some(0) {
                bad(&format!("{path}.neighbours"), "must be at least 1".into());
            }
            if a.neighbours.is_some() && a.method == Some(OversampleMethod::Duplicate) {
                bad(&format!("{path}.neighbours"), "`neighbours` applies only to `method: smote`".into());
            }
        }
        AugmentKind::Shift => {
            if a.pixels == Some(0) {
                bad(&format!("{path}.pixels"), "must be at least 1".into());
            }
        }
        AugmentKind::Flip => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(data: &str) -> Vec<(String, String)> {
        let text = format!("version: 1\nname: t\ndata:\n  source: {{path: d.csv}}\n  label: y\n{data}\nteacher: {{model: {{hidden: [4]}}}}\nstudent: {{model: {{hidden: [2]}}}}\n");
        let p: crate::Pipeline = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let mut out = crate::validate::validate(&p);
        validate_data("data", &p.data, &mut |path: &str, msg: String| out.push((path.to_string(), msg)));
        out
    }

    #[test]
    fn thresholds_parse_and_print() {
        let t = |s: &str| Threshold::parse(s).unwrap();
        assert_eq!(t("> 0"), Threshold::ANY);
        assert_eq!(t(">= 10"), Threshold { inclusive: true, value: 10.0, percent: false });
        assert_eq!(t("> 5%"), Threshold { inclusive: false, value: 5.0, percent: true });
        assert_eq!(t("5%"), t("> 5%"));
        assert!(t("> 5%").crossed(6, 100) && !t("> 5%").crossed(5, 100));
        assert!(t(">= 5%").crossed(5, 100));
        assert!(!t("> 5%").crossed(1, 0));
        for bad in ["< 3", "> -1", "> 120%", "lots", ""] {
            assert!(Threshold::parse(bad).is_err(), "{bad}");
        }
        let c: CheckSpec = serde_yaml::from_str("{kind: range, columns: a, max: 1, warn: 2, error: \">= 5%\"}").unwrap();
        assert_eq!(c.warn, Some(t("> 2")));
        let back: CheckSpec = serde_yaml::from_str(&serde_yaml::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c, "resolved pipelines read back the same");
        let err = serde_yaml::from_str::<CheckSpec>("{kind: range, max: 1, error: \"about 5\"}").unwrap_err().to_string();
        assert!(err.contains("invalid threshold"), "{err}");
    }

    #[test]
    fn severity_is_shorthand_for_thresholds() {
        let c = |s: &str| serde_yaml::from_str::<CheckSpec>(s).unwrap().thresholds();
        assert_eq!(c("{kind: not_null}"), (None, Some(Threshold::ANY)));
        assert_eq!(c("{kind: not_null, severity: warn}"), (Some(Threshold::ANY), None));
        assert_eq!(c("{kind: not_null, severity: error}"), (None, Some(Threshold::ANY)));
        let e = Threshold::parse("> 5%").unwrap();
        assert_eq!(c("{kind: not_null, error: \"> 5%\"}"), (Some(Threshold::ANY), Some(e)));
        assert_eq!(c("{kind: not_null, warn: \"> 1\"}"), (Some(Threshold::parse("> 1").unwrap()), None));
    }

    #[test]
    fn new_check_kinds_validate_their_keys() {
        let p = problems(
            "  checks:\n    - {kind: schema, types: {a: float, \"p*\": int}, allow_extra: false}\n    - {kind: finite}\n    - {kind: unique, columns: [id]}\n    - {kind: class_balance, min_fraction: 0.1, max_ratio: 5}\n    - {kind: leakage, columns: \"p*\", warn: \"> 0\"}\n    - {kind: drift, method: psi, max_distance: 0.25, bins: 20}",
        );
        assert!(p.is_empty(), "{p:?}");
        let p = problems(
            "  checks:\n    - {kind: schema}\n    - {kind: finite, min: 1}\n    - {kind: class_balance}\n    - {kind: class_balance, min_fraction: 2, max_ratio: 0.5}\n    - {kind: drift, method: ks, max_distance: 2, bins: 5}\n    - {kind: not_null, severity: warn, error: \"> 1\"}\n    - {kind: range, max: 1, warn: \"> 10\", error: \"> 5\"}",
        );
        let paths: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        for want in [
            "data.checks[0]",
            "data.checks[1].min",
            "data.checks[2]",
            "data.checks[3].min_fraction",
            "data.checks[3].max_ratio",
            "data.checks[4].max_distance",
            "data.checks[4].bins",
            "data.checks[5].severity",
            "data.checks[6].warn",
        ] {
            assert!(paths.contains(&want), "{want} not in {p:?}");
        }
    }

    #[test]
    fn csv_options_image_and_augment_validate() {
        let ok = problems(
            "  test_source: {path: d.txt, format: csv, header: false, delimiter: \";\", null_values: [NA], comment: \"#\", column_names: [a, y]}\n  image: {height: 8, width: 8}\n  augment:\n    - {kind: gaussian_noise, std: 0.5, copies: 2}\n    - {kind: mixup, alpha: 0.2}\n    - {kind: oversample, method: smote, ratio: 0.5, neighbours: 3}\n    - {kind: shift, pixels: 2}\n    - {kind: flip}",
        );
        assert!(ok.is_empty(), "{ok:?}");
        let p = problems(
            "  test_source: {path: t.parquet, format: parquet, delimiter: \";\"}\n  transfer: {source: {path: u.csv, delimiter: \"ab\", column_names: [a, a]}}\n  image: {height: 0, width: 8}\n  augment:\n    - {kind: gaussian_noise}\n    - {kind: mixup, alpha: 0, std: 1}\n    - {kind: oversample, method: duplicate, neighbours: 3, ratio: 1.5}\n    - {kind: shift, pixels: 0, copies: 0}\n    - {kind: flip, copies: 2}",
        );
        let paths: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        for want in [
            "data.test_source.delimiter",
            "data.transfer.source.delimiter",
            "data.transfer.source.column_names[1]",
            "data.image.height",
            "data.augment[0]",
            "data.augment[1].alpha",
            "data.augment[1].std",
            "data.augment[2].neighbours",
            "data.augment[2].ratio",
            "data.augment[3].pixels",
            "data.augment[3].copies",
            "data.augment[4].copies",
        ] {
            assert!(paths.contains(&want), "{want} not in {p:?}");
        }
        let err = serde_yaml::from_str::<AugmentSpec>("{kind: blur}").unwrap_err().to_string();
        assert!(err.contains("unknown variant `blur`"), "{err}");
        let err = serde_yaml::from_str::<SourceSpec>("{path: a.csv, separator: \";\"}").unwrap_err().to_string();
        assert!(err.contains("unknown field `separator`"), "{err}");
    }
}
