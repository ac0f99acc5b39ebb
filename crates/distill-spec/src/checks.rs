//! `data.checks`: one data-quality check per entry, its keys decided by its `kind`, and the
//! thresholds that turn failures into `pass`, `warn` or `error`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_yaml::{Mapping, Value};

use crate::tagged::{self, Family, Kind, Nested};
use crate::{ColumnSelection, Threshold};

/// One data-quality check: an `id`, a `kind` with the keys of that kind, and thresholds.
///
/// Status: with neither `warn`, `error` nor `severity`, any failure is an error. With
/// thresholds, the check is `error` when the `error` threshold is crossed, else `warn` when the
/// `warn` threshold is crossed (any failure when `warn` is left out but `error` is given), else
/// `pass`. `severity: warn` is short for `warn: "> 0"` with no `error`; `severity: error` for
/// `error: "> 0"`. Counts are failing rows (`not_null`, `finite`, `range`, `in_set`, `unique`, `sql`,
/// `leakage`), columns (`schema`, `drift`) or classes (`class_balance`); `row_count` fails as
/// a whole (1 of 1).
#[derive(Debug, Clone, PartialEq)]
///
/// The keys' user docs are on `CheckCommon` (they are the schema's descriptions).
pub struct CheckSpec {
    /// Name shown in the report; defaults to the kind.
    pub id: Option<String>,
    /// What is checked, with the keys of that kind.
    pub kind: CheckKind,
    /// The warn threshold.
    pub warn: Option<Threshold>,
    /// The error threshold.
    pub error: Option<Threshold>,
    /// Shorthand for thresholds.
    pub severity: Option<Severity>,
    /// How many failing rows (or columns, classes) the report lists (default 5).
    pub samples: Option<usize>,
}

/// The keys every check takes, whatever its kind (their docs are the schema's; see
/// [`CheckSpec`] for how thresholds combine).
#[derive(Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CheckCommon {
    /// Name shown in the report; defaults to the kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    /// Failures above which the check warns: a count (`"> 0"`, `">= 10"`, `3` = `"> 3"`) or a
    /// percentage of the rows, columns or classes checked (`"> 5%"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    warn: Option<Threshold>,
    /// Failures above which the check is an error (an error-level check stops the run); same
    /// forms as `warn`. With neither `warn`, `error` nor `severity`, any failure is an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<Threshold>,
    /// Shorthand for thresholds: `error` (any failure stops the run) or `warn` (only
    /// reported). Not together with `warn`/`error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    severity: Option<Severity>,
    /// How many failing rows (or columns, classes) the report lists (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    samples: Option<usize>,
}

impl JsonSchema for CheckSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "CheckSpec".into()
    }

    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let shape = crate::schema::Shape {
            description: "A data-quality check: a `kind` with that kind's keys, an `id`, and thresholds (`warn`, `error` or `severity`).",
            shared: Some(CheckCommon::json_schema(g)),
            ..Default::default()
        };
        CHECKS.tagged_schema(g, &shape)
    }
}

/// A check kind and its keys.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    /// Required columns (`columns`), column types (`types`), and whether others may exist
    /// (`allow_extra`).
    Schema(SchemaCheck),
    /// No null values in the selected columns.
    NotNull(ColumnsCheck),
    /// No NaN or infinite values in the selected columns (non-numeric columns are skipped).
    Finite(ColumnsCheck),
    /// Every value of the selected columns lies within [min, max] (nulls and NaN are left to
    /// `not_null` and `finite`).
    Range(RangeCheck),
    /// Every value of `column` is one of `values`.
    InSet(InSetCheck),
    /// No two rows share the values of `columns` (whole rows by default); every repeat of an
    /// earlier row counts as a failure.
    Unique(ColumnsCheck),
    /// The file has at least `min` (and at most `max`) rows.
    RowCount(RowCountCheck),
    /// Each class of `column` has at least `min_fraction` of the labelled rows, and/or the
    /// largest class has at most `max_ratio` times the rows of the smallest.
    ClassBalance(ClassBalanceCheck),
    /// No validation or test row has exactly the features of a training row. Runs on the
    /// prepared splits.
    Leakage(ColumnsCheck),
    /// Per feature, the distance between the training and test distributions stays within
    /// `max_distance`. Runs on the prepared splits.
    Drift(DriftCheck),
    /// Every row satisfies the SQL `predicate` (false or null fails).
    Sql(SqlCheck),
}

/// `columns`: which columns a check looks at (`not_null`, `finite`, `unique` key columns,
/// `leakage` features): `all`, a name or `*` glob, or a list of them. Default: every column
/// (every feature for `leakage`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnsCheck {
    /// The columns: `all`, a name or `*` glob, or a list of them (default: every column; every
    /// feature for `leakage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<ColumnSelection>,
}

/// `schema`: required columns (`columns`), column types (`types`), and whether other columns
/// may exist (`allow_extra`); at least one of them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SchemaCheck {
    /// Columns that must exist: names or `*` globs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<ColumnSelection>,
    /// Column types: name or `*` glob → `int`, `float`, `number`, `string` or `bool`.
    /// Every pattern must match a column of that type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub types: Option<BTreeMap<String, ColumnType>>,
    /// Whether columns that neither `columns` nor `types` name may exist (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_extra: Option<bool>,
}

/// `range`: every value of the selected columns lies within [`min`, `max`] (`min`, `max` or
/// both; nulls and NaN are left to `not_null` and `finite`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RangeCheck {
    /// Columns to check (default: every column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<ColumnSelection>,
    /// Lower bound of the values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Upper bound of the values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// `in_set`: every value of `column` is one of `values`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InSetCheck {
    /// The column to check.
    pub column: String,
    /// Allowed values (numbers compare as numbers, so `3` matches 3.0).
    #[schemars(with = "Vec<serde_json::Value>")]
    pub values: Vec<Value>,
}

/// `row_count`: the table has at least `min` and at most `max` rows (`min`, `max` or both).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RowCountCheck {
    /// Fewest rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Most rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// `class_balance`: each class of `column` has at least `min_fraction` of the labelled rows,
/// and/or the largest class has at most `max_ratio` times the rows of the smallest.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassBalanceCheck {
    /// The class column (default: `data.label`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// Smallest share of the labelled rows each class must have, in (0, 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_fraction: Option<f64>,
    /// Largest allowed ratio of the largest class's rows to the smallest's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ratio: Option<f64>,
}

/// `drift`: per feature, the distance between the training and test distributions stays
/// within `max_distance`. Runs on the prepared splits.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DriftCheck {
    /// Features to compare (default: every feature).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<ColumnSelection>,
    /// Distribution distance: `psi` (population stability index over quantile bins of the
    /// training values; default) or `ks` (Kolmogorov–Smirnov statistic, in [0, 1]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<DriftMethod>,
    /// A feature drifts when its train/test distance exceeds this (default 0.2 for `psi`, 0.1
    /// for `ks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_distance: Option<f64>,
    /// Quantile bins for `psi` (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bins: Option<usize>,
}

/// `sql`: every row satisfies the SQL `predicate` (false or null fails).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlCheck {
    /// A boolean SQL expression over the columns that every row must satisfy, e.g.
    /// `"px0 >= 0 AND label IN (0, 1)"`; rows where it is false or null fail. Polars SQL syntax.
    pub predicate: String,
}

static CHECKS: Family = Family {
    describe: |k| format!("{} `{k}` check", tagged::article(k)),
    kinds: &[
        Kind::of::<SchemaCheck>("schema"),
        Kind::noted::<ColumnsCheck>("not_null", "No null values in the selected `columns` (default: every column)."),
        Kind::noted::<ColumnsCheck>("finite", "No NaN or infinite values in the selected `columns` (default: every column; text columns are skipped)."),
        Kind::of::<RangeCheck>("range"),
        Kind::of::<InSetCheck>("in_set"),
        Kind::noted::<ColumnsCheck>(
            "unique",
            "No two rows share the values of `columns` (default: whole rows); every repeat of an earlier row counts as a failure.",
        ),
        Kind::of::<RowCountCheck>("row_count"),
        Kind::of::<ClassBalanceCheck>("class_balance"),
        Kind::noted::<ColumnsCheck>(
            "leakage",
            "No validation or test row has exactly the features (`columns`, default: every feature) of a training row. Runs on the prepared splits.",
        ),
        Kind::of::<DriftCheck>("drift"),
        Kind::of::<SqlCheck>("sql"),
    ],
    leading: &["id"],
    trailing: &["warn", "error", "severity", "samples"],
    tagged: true,
};

impl CheckKind {
    /// Every kind's name.
    pub fn names() -> Vec<&'static str> {
        CHECKS.names()
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            CheckKind::Schema(_) => "schema",
            CheckKind::NotNull(_) => "not_null",
            CheckKind::Finite(_) => "finite",
            CheckKind::Range(_) => "range",
            CheckKind::InSet(_) => "in_set",
            CheckKind::Unique(_) => "unique",
            CheckKind::RowCount(_) => "row_count",
            CheckKind::ClassBalance(_) => "class_balance",
            CheckKind::Leakage(_) => "leakage",
            CheckKind::Drift(_) => "drift",
            CheckKind::Sql(_) => "sql",
        }
    }

    /// Whether the check needs the train/validation/test split (it runs after `prepare`).
    pub fn needs_split(&self) -> bool {
        matches!(self, CheckKind::Leakage(_) | CheckKind::Drift(_))
    }

    /// The check's `columns`, for the kinds that take them.
    pub fn columns(&self) -> Option<&ColumnSelection> {
        match self {
            CheckKind::Schema(c) => c.columns.as_ref(),
            CheckKind::NotNull(c) | CheckKind::Finite(c) | CheckKind::Unique(c) | CheckKind::Leakage(c) => c.columns.as_ref(),
            CheckKind::Range(c) => c.columns.as_ref(),
            CheckKind::Drift(c) => c.columns.as_ref(),
            CheckKind::InSet(_) | CheckKind::RowCount(_) | CheckKind::ClassBalance(_) | CheckKind::Sql(_) => None,
        }
    }

    /// The kind's keys as a mapping (without `kind`).
    fn settings(&self) -> Result<Mapping, serde_yaml::Error> {
        match self {
            CheckKind::Schema(c) => tagged::tagged_mapping(None, c),
            CheckKind::NotNull(c) | CheckKind::Finite(c) | CheckKind::Unique(c) | CheckKind::Leakage(c) => tagged::tagged_mapping(None, c),
            CheckKind::Range(c) => tagged::tagged_mapping(None, c),
            CheckKind::InSet(c) => tagged::tagged_mapping(None, c),
            CheckKind::RowCount(c) => tagged::tagged_mapping(None, c),
            CheckKind::ClassBalance(c) => tagged::tagged_mapping(None, c),
            CheckKind::Drift(c) => tagged::tagged_mapping(None, c),
            CheckKind::Sql(c) => tagged::tagged_mapping(None, c),
        }
    }

    /// The one column the check names (`in_set`, `class_balance`).
    pub fn column(&self) -> Option<&str> {
        match self {
            CheckKind::InSet(c) => Some(&c.column),
            CheckKind::ClassBalance(c) => c.column.as_deref(),
            _ => None,
        }
    }

    /// The keys of kind `kind` from `rest` (the check without `kind` and the shared keys).
    fn read(kind: &str, rest: Mapping) -> Result<Self, Nested> {
        let f = &CHECKS;
        Ok(match kind {
            "schema" => CheckKind::Schema(f.body(kind, rest)?),
            "not_null" => CheckKind::NotNull(f.body(kind, rest)?),
            "finite" => CheckKind::Finite(f.body(kind, rest)?),
            "range" => CheckKind::Range(f.body(kind, rest)?),
            "in_set" => CheckKind::InSet(f.body(kind, rest)?),
            "unique" => CheckKind::Unique(f.body(kind, rest)?),
            "row_count" => CheckKind::RowCount(f.body(kind, rest)?),
            "class_balance" => CheckKind::ClassBalance(f.body(kind, rest)?),
            "leakage" => CheckKind::Leakage(f.body(kind, rest)?),
            "drift" => CheckKind::Drift(f.body(kind, rest)?),
            "sql" => CheckKind::Sql(f.body(kind, rest)?),
            other => return Err(f.unknown_kind(other)),
        })
    }
}

impl<'de> Deserialize<'de> for CheckSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = tagged::mapping(d, "a check")?;
        read_check(map).map_err(serde::de::Error::custom)
    }
}

fn read_check(mut map: Mapping) -> Result<CheckSpec, Nested> {
    let Some(kind) = tagged::take_kind(&mut map)? else {
        let kinds: Vec<String> = CHECKS.names().iter().map(|k| format!("`{k}`")).collect();
        return Err(Nested::at("", format!("a check needs `kind`, one of {}", kinds.join(", "))));
    };
    let common: CheckCommon = tagged::read(tagged::take_keys(&mut map, &["id", "warn", "error", "severity", "samples"]))?;
    let kind = CheckKind::read(&kind, map)?;
    Ok(CheckSpec { id: common.id, kind, warn: common.warn, error: common.error, severity: common.severity, samples: common.samples })
}

impl Serialize for CheckSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let id = CheckCommon { id: self.id.clone(), ..Default::default() };
        let thresholds = CheckCommon { id: None, warn: self.warn, error: self.error, severity: self.severity, samples: self.samples };
        let leading = tagged::tagged_mapping(None, &id).map_err(S::Error::custom)?;
        let trailing = tagged::tagged_mapping(None, &thresholds).map_err(S::Error::custom)?;
        let mut out = leading;
        out.insert("kind".into(), self.kind.as_str().into());
        out.extend(self.kind.settings().map_err(S::Error::custom)?);
        out.extend(trailing);
        out.serialize(s)
    }
}

impl CheckSpec {
    /// A check of `kind` with every other key at its default.
    pub fn new(kind: CheckKind) -> Self {
        Self { id: None, kind, warn: None, error: None, severity: None, samples: None }
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

/// A check's level when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Reported; the run goes on.
    Warn,
    /// Stops the run before the teacher (exit 1).
    #[default]
    Error,
}

/// A column type for `schema` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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

/// The distance of a `drift` check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DriftMethod {
    /// Population stability index.
    #[default]
    Psi,
    /// Kolmogorov–Smirnov statistic.
    Ks,
}

/// Values of one check: thresholds, and what its kind's keys must satisfy together.
pub(crate) fn validate_check(path: &str, c: &CheckSpec, bad: &mut impl FnMut(&str, String)) {
    if c.severity.is_some() && (c.warn.is_some() || c.error.is_some()) {
        bad(&format!("{path}.severity"), "give either `severity` or `warn`/`error` thresholds, not both".into());
    }
    if let (Some(w), Some(e)) = (c.warn, c.error) {
        if w.percent == e.percent && w.value > e.value {
            bad(&format!("{path}.warn"), format!("the warn threshold ({w}) is above the error threshold ({e})"));
        }
    }
    if let Some(ColumnSelection::Many(v)) = c.kind.columns() {
        if v.is_empty() {
            bad(&format!("{path}.columns"), "must list at least one column".into());
        }
    }
    match &c.kind {
        CheckKind::NotNull(_) | CheckKind::Finite(_) | CheckKind::Unique(_) | CheckKind::Leakage(_) => {}
        CheckKind::Sql(s) => {
            if s.predicate.trim().is_empty() {
                bad(&format!("{path}.predicate"), "must not be empty".into());
            }
        }
        CheckKind::Schema(s) => validate_schema(path, s, bad),
        CheckKind::Range(r) => {
            if r.min.is_none() && r.max.is_none() {
                bad(path, "a `range` check needs `min`, `max` or both".into());
            }
            if let (Some(lo), Some(hi)) = (r.min, r.max) {
                if lo > hi {
                    bad(&format!("{path}.min"), format!("min {lo} is greater than max {hi}"));
                }
            }
        }
        CheckKind::InSet(s) => validate_in_set(path, s, bad),
        CheckKind::RowCount(r) => validate_row_count(path, r, bad),
        CheckKind::ClassBalance(b) => validate_class_balance(path, b, bad),
        CheckKind::Drift(d) => validate_drift(path, d, bad),
    }
}

fn validate_schema(path: &str, s: &SchemaCheck, bad: &mut impl FnMut(&str, String)) {
    if s.columns.is_none() && s.types.is_none() && s.allow_extra.is_none() {
        bad(path, "a `schema` check needs `columns`, `types` or `allow_extra`".into());
    }
    if s.allow_extra == Some(false) && s.columns.is_none() && s.types.is_none() {
        bad(&format!("{path}.allow_extra"), "`allow_extra: false` needs `columns` or `types` to say which columns may exist".into());
    }
}

fn validate_in_set(path: &str, s: &InSetCheck, bad: &mut impl FnMut(&str, String)) {
    if s.values.is_empty() {
        bad(&format!("{path}.values"), "must not be empty".into());
    }
    for (j, item) in s.values.iter().enumerate() {
        if crate::scalar_text(item).is_none() {
            bad(&format!("{path}.values[{j}]"), "must be a number or a string".into());
        }
    }
}

fn validate_row_count(path: &str, r: &RowCountCheck, bad: &mut impl FnMut(&str, String)) {
    if r.min.is_none() && r.max.is_none() {
        bad(path, "a `row_count` check needs `min`, `max` or both".into());
    }
    for (key, v) in [("min", r.min), ("max", r.max)] {
        if let Some(v) = v {
            if v < 0.0 || v.fract() != 0.0 {
                bad(&format!("{path}.{key}"), format!("must be a whole number of rows, got {v}"));
            }
        }
    }
}

fn validate_class_balance(path: &str, b: &ClassBalanceCheck, bad: &mut impl FnMut(&str, String)) {
    if b.min_fraction.is_none() && b.max_ratio.is_none() {
        bad(path, "a `class_balance` check needs `min_fraction`, `max_ratio` or both".into());
    }
    if let Some(f) = b.min_fraction {
        if !(f > 0.0 && f < 1.0) {
            bad(&format!("{path}.min_fraction"), format!("must be in (0, 1), got {f}"));
        }
    }
    if let Some(r) = b.max_ratio {
        if !(r.is_finite() && r >= 1.0) {
            bad(&format!("{path}.max_ratio"), format!("must be at least 1, got {r}"));
        }
    }
}

fn validate_drift(path: &str, d: &DriftCheck, bad: &mut impl FnMut(&str, String)) {
    if let Some(m) = d.max_distance {
        if !(m.is_finite() && m >= 0.0) {
            bad(&format!("{path}.max_distance"), format!("must be ≥ 0, got {m}"));
        }
        if d.method == Some(DriftMethod::Ks) && m > 1.0 {
            bad(&format!("{path}.max_distance"), format!("a KS distance is at most 1, got {m}"));
        }
    }
    if let Some(b) = d.bins {
        if b < 2 {
            bad(&format!("{path}.bins"), format!("must be at least 2, got {b}"));
        }
        if d.method == Some(DriftMethod::Ks) {
            bad(&format!("{path}.bins"), "`bins` applies only to `method: psi`".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(checks: &str) -> Vec<(String, String)> {
        let text = format!(
            "version: 1\nname: t\ndata:\n  source: {{path: d.csv}}\n  label: y\n  checks:\n{checks}\nteacher: {{model: {{hidden: [4]}}}}\nstudent: {{model: {{hidden: [2]}}}}\n"
        );
        let p: crate::Pipeline = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        crate::validate::validate(&p)
    }

    fn parse_error(check: &str) -> String {
        serde_yaml::from_str::<CheckSpec>(check).unwrap_err().to_string()
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
    fn each_kind_takes_only_its_own_keys() {
        assert_eq!(
            parse_error("{kind: finite, min: 1}"),
            "min: `min` does not apply to a `finite` check; expected one of `id`, `kind`, `columns`, `warn`, `error`, `severity`, `samples`"
        );
        assert!(parse_error("{kind: range, colums: a}")
            .starts_with("colums: unknown field `colums`, expected one of `id`, `kind`, `columns`, `min`, `max`, `warn`"));
        let err = parse_error("{kind: not_nul}");
        assert!(err.starts_with("kind: unknown kind `not_nul`, expected one of `schema`, `not_null`, `finite`"), "{err}");
        assert!(parse_error("{id: x}").contains("a check needs `kind`, one of `schema`"));
        assert_eq!(parse_error("{id: bad, kind: sql}"), "an `sql` check needs `predicate`");
        assert_eq!(parse_error("{kind: in_set, values: [1]}"), "an `in_set` check needs `column`");
        assert!(parse_error("{kind: in_set, column: a, values: 3}").starts_with("values: invalid type: integer `3`"));
        assert!(parse_error("range").contains("invalid type: string \"range\", expected a check as a mapping"), "a scalar is not a check");
    }

    #[test]
    fn checks_serialise_in_the_recipes_form_and_read_back() {
        let text = "{id: cols, kind: schema, types: {a: float}, allow_extra: false, severity: warn, samples: 3}";
        let c: CheckSpec = serde_yaml::from_str(text).unwrap();
        let yaml = serde_yaml::to_string(&c).unwrap();
        assert_eq!(yaml, "id: cols\nkind: schema\ntypes:\n  a: float\nallow_extra: false\nseverity: warn\nsamples: 3\n");
        assert_eq!(serde_yaml::from_str::<CheckSpec>(&yaml).unwrap(), c);
        let plain: CheckSpec = serde_yaml::from_str("{kind: leakage}").unwrap();
        assert_eq!(plain, CheckSpec::new(CheckKind::Leakage(ColumnsCheck::default())));
        assert_eq!(serde_yaml::to_string(&plain).unwrap(), "kind: leakage\n");
    }

    #[test]
    fn check_values_are_validated() {
        let p = problems(
            "    - {kind: schema, types: {a: float, \"p*\": int}, allow_extra: false}\n    - {kind: finite}\n    - {kind: unique, columns: [id]}\n    - {kind: class_balance, min_fraction: 0.1, max_ratio: 5}\n    - {kind: leakage, columns: \"p*\", warn: \"> 0\"}\n    - {kind: drift, method: psi, max_distance: 0.25, bins: 20}",
        );
        assert!(p.is_empty(), "{p:?}");
        let p = problems(
            "    - {kind: schema}\n    - {kind: range, min: 2, max: 1}\n    - {kind: class_balance}\n    - {kind: class_balance, min_fraction: 2, max_ratio: 0.5}\n    - {kind: drift, method: ks, max_distance: 2, bins: 5}\n    - {kind: not_null, severity: warn, error: \"> 1\"}\n    - {kind: range, max: 1, warn: \"> 10\", error: \"> 5\"}\n    - {kind: sql, predicate: \" \"}\n    - {kind: in_set, column: a, values: []}\n    - {kind: row_count, min: 1.5}\n    - {kind: unique, columns: []}",
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
            "data.checks[7].predicate",
            "data.checks[8].values",
            "data.checks[9].min",
            "data.checks[10].columns",
        ] {
            assert!(paths.contains(&want), "{want} not in {p:?}");
        }
    }
}
