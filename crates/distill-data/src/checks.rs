//! Data-quality checks: every check runs (a full report, not the first failure), each with its
//! status, failing count and fraction, and a sample of failing rows.
//!
//! Table checks (`schema`, `not_null`, `finite`, `range`, `in_set`, `unique`, `sql`,
//! `row_count`, `class_balance`) run on a loaded table with [`run_checks`] (the row-level ones
//! as polars expressions, see `row_checks`); split checks (`leakage`, `drift`)
//! need the prepared splits and run with [`run_split_checks`](crate::run_split_checks).

use std::collections::{BTreeMap, BTreeSet};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{glob_match, row_checks, select_columns, DataError};
use distill_spec::{CheckKind, CheckSpec, ClassBalanceCheck, ColumnType, RowCountCheck, SchemaCheck};

/// How many failing rows a check lists unless its `samples` key says otherwise.
pub const SAMPLE_ROWS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    Warn,
    Error,
}

/// What a check's `failing` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckUnit {
    Rows,
    Columns,
    Classes,
    /// The table as a whole (`row_count`).
    Table,
}

/// One failing cell: 0-based data row (not counting the header), column, value as text. For
/// column- and class-level checks `row` is 0 and `value` describes the finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailingRow {
    pub row: usize,
    pub column: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckResult {
    pub id: String,
    pub kind: String,
    pub status: CheckStatus,
    /// Failing rows, columns or classes (see `unit`); for `row_count`, 1 when out of bounds.
    pub failing: usize,
    /// `failing / total` (0 when nothing was checked).
    pub fraction: f64,
    pub message: String,
    pub samples: Vec<FailingRow>,
    /// What `failing` and `total` count.
    pub unit: CheckUnit,
    /// How many rows, columns or classes were checked.
    pub total: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckReport {
    pub rows: usize,
    pub checks: Vec<CheckResult>,
}

impl CheckReport {
    pub fn has_errors(&self) -> bool {
        self.checks.iter().any(|c| c.status == CheckStatus::Error)
    }

    /// A plain-text table for the terminal.
    pub fn table(&self) -> String {
        let mut out = format!("{:<16} {:<13} {:<6} {:>8} {:>9}  details\n", "check", "kind", "status", "failing", "fraction");
        for c in &self.checks {
            let status = match c.status {
                CheckStatus::Pass => "pass",
                CheckStatus::Warn => "WARN",
                CheckStatus::Error => "ERROR",
            };
            out += &format!("{:<16} {:<13} {:<6} {:>8} {:>8.2}%  {}\n", c.id, c.kind, status, c.failing, c.fraction * 100.0, c.message);
            for s in &c.samples {
                match c.unit {
                    CheckUnit::Rows => out += &format!("{:<16}   row {} column {}: {}\n", "", s.row, s.column, s.value),
                    _ => out += &format!("{:<16}   {}: {}\n", "", s.column, s.value),
                }
            }
        }
        if self.checks.iter().any(|c| c.unit == CheckUnit::Rows && !c.samples.is_empty()) {
            out += "(rows are 0-based data rows; in a CSV file with a header, row N is line N + 2)\n";
        }
        out
    }
}

/// What one check found, before its thresholds decide the status.
pub(crate) struct Findings {
    pub unit: CheckUnit,
    pub total: usize,
    pub message: String,
    /// Failing rows/columns/classes, each once; only the first `cap` keep a sample.
    failed: BTreeSet<usize>,
    /// Failures counted elsewhere (by polars) rather than recorded one by one in `failed`.
    counted: usize,
    samples: Vec<FailingRow>,
    cap: usize,
}

impl Findings {
    pub fn new(unit: CheckUnit, total: usize, cap: usize) -> Self {
        Self { unit, total, message: String::new(), failed: BTreeSet::new(), counted: 0, samples: Vec::new(), cap }
    }

    /// Findings whose failures were counted by a query, with the samples it fetched.
    pub fn counted(unit: CheckUnit, total: usize, failing: usize, samples: Vec<FailingRow>) -> Self {
        Self { unit, total, message: String::new(), failed: BTreeSet::new(), counted: failing, cap: samples.len(), samples }
    }

    /// Records a failure of item `key` (a row, column or class index); `row` is what the report shows.
    pub fn fail(&mut self, key: usize, row: usize, column: &str, value: impl FnOnce() -> String) {
        if self.failed.insert(key) && self.samples.len() < self.cap {
            self.samples.push(FailingRow { row, column: column.to_string(), value: value() });
        }
    }

    pub fn failing(&self) -> usize {
        self.failed.len() + self.counted
    }

    /// The result, its status decided by the check's thresholds.
    pub fn finish(self, check: &CheckSpec) -> CheckResult {
        let failing = self.failing();
        let (warn, error) = check.thresholds();
        let status = if failing == 0 {
            CheckStatus::Pass
        } else if error.is_some_and(|t| t.crossed(failing, self.total)) {
            CheckStatus::Error
        } else if warn.is_some_and(|t| t.crossed(failing, self.total)) {
            CheckStatus::Warn
        } else {
            CheckStatus::Pass
        };
        let fraction = if self.total == 0 { 0.0 } else { failing as f64 / self.total as f64 };
        CheckResult {
            id: check.name(),
            kind: check.kind.as_str().into(),
            status,
            failing,
            fraction,
            message: self.message,
            samples: self.samples,
            unit: self.unit,
            total: self.total,
        }
    }
}

/// A check that could not run (a column it names is missing or has the wrong type): reported as
/// an error so the other checks still run and the report shows every problem at once.
pub(crate) fn not_run(check: &CheckSpec, unit: CheckUnit, why: String) -> CheckResult {
    CheckResult {
        id: check.name(),
        kind: check.kind.as_str().into(),
        status: CheckStatus::Error,
        failing: 0,
        fraction: 0.0,
        message: format!("could not run: {why}"),
        samples: Vec::new(),
        unit,
        total: 0,
    }
}

pub(crate) fn sample_cap(check: &CheckSpec) -> usize {
    check.samples.unwrap_or(SAMPLE_ROWS)
}

/// Runs every table check on `df` (split checks — `leakage`, `drift` — are skipped here; see
/// [`run_split_checks`](crate::run_split_checks)). A `class_balance` check without `column`
/// fails to run; use [`run_checks_with_label`] to give it the recipe's label.
pub fn run_checks(df: &DataFrame, checks: &[CheckSpec]) -> Result<CheckReport, DataError> {
    run_checks_with_label(df, checks, None)
}

/// [`run_checks`], with the recipe's label column for `class_balance` checks that name none.
/// Such a check passes (with a note) on a table that lacks the label column, e.g. a transfer file.
///
/// Row checks are counted together in one lazy polars pass (see `row_checks`); a `sql` check
/// whose predicate does not parse, names an unknown column or is not a condition is an error
/// for the whole run (a mistake in the recipe, not in the data).
pub fn run_checks_with_label(df: &DataFrame, checks: &[CheckSpec], label: Option<&str>) -> Result<CheckReport, DataError> {
    let rows = df.height();
    let columns: Vec<String> = df.get_column_names().iter().map(|c| c.to_string()).collect();
    let mut results: Vec<Option<CheckResult>> = Vec::with_capacity(checks.len());
    let mut rules = Vec::new();
    for (i, check) in checks.iter().enumerate() {
        if check.kind.needs_split() {
            continue;
        }
        let where_ = format!("data.checks[{i}] ({})", check.name());
        if row_checks::is_row_check(&check.kind) {
            match row_checks::compile(df, &columns, check, &where_) {
                Ok(rule) => {
                    rules.push((results.len(), where_, check, rule));
                    results.push(None); // filled in once the batch has run
                }
                Err(e) if matches!(check.kind, CheckKind::Sql(_)) => return Err(e),
                Err(e) => results.push(Some(not_run(check, CheckUnit::Rows, e.to_string()))),
            }
            continue;
        }
        let unit = match check.kind {
            CheckKind::Schema(_) => CheckUnit::Columns,
            CheckKind::ClassBalance(_) => CheckUnit::Classes,
            _ => CheckUnit::Table,
        };
        let outcome = match &check.kind {
            CheckKind::Schema(s) => Ok(schema(df, &columns, s, sample_cap(check))),
            CheckKind::RowCount(r) => Ok(row_count(rows, r, sample_cap(check))),
            CheckKind::ClassBalance(b) => class_balance(df, &columns, b, sample_cap(check), label, &where_),
            _ => continue,
        };
        results.push(Some(match outcome {
            Ok(f) => f.finish(check),
            Err(e) => not_run(check, unit, e.to_string()),
        }));
    }
    type Compiled<'a> = Vec<(&'a CheckSpec, row_checks::RowRule)>;
    let (places, compiled): (Vec<(usize, String)>, Compiled) = rules.into_iter().map(|(slot, w, c, r)| ((slot, w), (c, r))).unzip();
    for (((slot, where_), (check, _)), outcome) in places.iter().zip(&compiled).zip(row_checks::evaluate(df, &compiled)) {
        results[*slot] = Some(match outcome {
            Ok(f) => f.finish(check),
            Err(e) if matches!(check.kind, CheckKind::Sql(_)) => return Err(DataError::Invalid(format!("{where_}.predicate: {e}"))),
            Err(e) => not_run(check, CheckUnit::Rows, e.to_string()),
        });
    }
    Ok(CheckReport { rows, checks: results.into_iter().flatten().collect() })
}

fn schema(df: &DataFrame, columns: &[String], check: &SchemaCheck, cap: usize) -> Findings {
    let mut f = Findings::new(CheckUnit::Columns, columns.len(), cap);
    let required = check.columns.as_ref().map(|c| c.patterns()).unwrap_or_default();
    let types: Vec<(String, ColumnType)> = check.types.iter().flatten().map(|(k, v)| (k.clone(), *v)).collect();
    // Each pattern that matches no column is one missing column, keyed past the table's columns.
    let mut wanted: Vec<&String> = required.iter().chain(types.iter().map(|(p, _)| p)).collect();
    wanted.dedup();
    let wanted: Vec<&String> = wanted.iter().enumerate().filter(|(j, p)| !wanted[..*j].contains(p)).map(|(_, p)| *p).collect();
    let mut problems = 0usize;
    for (j, p) in wanted.iter().enumerate() {
        if !columns.iter().any(|c| glob_match(p, c)) {
            f.fail(columns.len() + j, 0, p, || "missing".into());
            problems += 1;
        }
    }
    for (j, name) in columns.iter().enumerate() {
        let Ok(col) = df.column(name) else { continue };
        let dtype = col.dtype();
        for (p, ty) in &types {
            if glob_match(p, name) && !type_matches(dtype, *ty) {
                f.fail(j, 0, name, || format!("is {dtype}, expected {}", ty.as_str()));
            }
        }
        let named = required.iter().any(|p| glob_match(p, name)) || types.iter().any(|(p, _)| glob_match(p, name));
        if check.allow_extra == Some(false) && !named {
            f.fail(j, 0, name, || "unexpected column (allow_extra: false)".into());
        }
    }
    f.total = columns.len() + problems;
    f.message = format!(
        "{} columns{}{}{}",
        columns.len(),
        if required.is_empty() { String::new() } else { format!("; required: {}", required.join(", ")) },
        if types.is_empty() {
            String::new()
        } else {
            format!("; typed: {}", types.iter().map(|(p, t)| format!("{p}: {}", t.as_str())).collect::<Vec<_>>().join(", "))
        },
        if check.allow_extra == Some(false) { "; no others" } else { "" },
    );
    f
}

/// Whether a polars dtype is of a schema type.
pub(crate) fn type_matches(dtype: &DataType, ty: ColumnType) -> bool {
    match ty {
        ColumnType::Int => dtype.is_integer(),
        ColumnType::Float => dtype.is_float(),
        ColumnType::Number => dtype.is_primitive_numeric(),
        ColumnType::String => matches!(dtype, DataType::String),
        ColumnType::Bool => matches!(dtype, DataType::Boolean),
    }
}

fn row_count(rows: usize, check: &RowCountCheck, cap: usize) -> Findings {
    let mut f = Findings::new(CheckUnit::Table, 1, cap);
    let (lo, hi) = (check.min.unwrap_or(0.0), check.max.unwrap_or(f64::INFINITY));
    if !(lo..=hi).contains(&(rows as f64)) {
        f.fail(0, 0, "rows", || rows.to_string());
    }
    f.message = format!("{rows} rows; expected [{}, {}]", fmt_bound(check.min), fmt_bound(check.max));
    f
}

fn class_balance(df: &DataFrame, columns: &[String], check: &ClassBalanceCheck, cap: usize, label: Option<&str>, where_: &str) -> Result<Findings, DataError> {
    let name = match (&check.column, label) {
        (Some(c), _) => c.clone(),
        (None, Some(l)) if !columns.iter().any(|c| c == l) => {
            let mut f = Findings::new(CheckUnit::Classes, 0, cap);
            f.message = format!("no label column `{l}` in this table; skipped");
            return Ok(f);
        }
        (None, Some(l)) => l.to_string(),
        (None, None) => return Err(DataError::Invalid(format!("{where_}: a `class_balance` check needs `column` (or the label from the recipe)"))),
    };
    select_columns(columns, std::slice::from_ref(&name), where_)?;
    let col = df.column(&name)?.as_materialized_series().clone();
    let numeric = col.dtype().is_primitive_numeric();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for v in cell_texts(&col)?.into_iter().flatten() {
        *counts.entry(v).or_default() += 1;
    }
    let mut classes: Vec<(String, usize)> = counts.into_iter().collect();
    if numeric {
        classes.sort_by(|a, b| a.0.parse::<f64>().unwrap_or(0.0).total_cmp(&b.0.parse::<f64>().unwrap_or(0.0)));
    }
    let labelled: usize = classes.iter().map(|c| c.1).sum();
    let mut f = Findings::new(CheckUnit::Classes, classes.len(), cap);
    let largest = classes.iter().map(|c| c.1).max().unwrap_or(0);
    let smallest = classes.iter().map(|c| c.1).min().unwrap_or(0);
    // Rarest classes first in the samples: they are the ones to look at.
    let mut order: Vec<usize> = (0..classes.len()).collect();
    order.sort_by_key(|&i| (classes[i].1, i));
    for &i in &order {
        let (class, n) = &classes[i];
        let share = *n as f64 / labelled.max(1) as f64;
        let too_rare = check.min_fraction.is_some_and(|m| share < m);
        let too_small = check.max_ratio.is_some_and(|r| largest as f64 > r * *n as f64);
        if too_rare || too_small {
            f.fail(i, 0, &name, || format!("class `{class}`: {n} rows ({:.2}%, largest class {largest})", share * 100.0));
        }
    }
    let ratio = if smallest == 0 { f64::INFINITY } else { largest as f64 / smallest as f64 };
    f.message = format!(
        "{} classes in {labelled} labelled rows; smallest {smallest}, largest {largest} (ratio {ratio:.2}); expected{}{}",
        classes.len(),
        check.min_fraction.map(|m| format!(" each ≥ {:.2}%", m * 100.0)).unwrap_or_default(),
        check.max_ratio.map(|r| format!(" ratio ≤ {r}")).unwrap_or_default(),
    );
    Ok(f)
}

pub(crate) fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(max).collect::<String>())
    }
}

pub(crate) fn fmt_bound(b: Option<f64>) -> String {
    b.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// A numeric column as f64 values (nulls as `None`); a non-numeric column is an error.
pub(crate) fn numeric_column(df: &DataFrame, name: &str, where_: &str) -> Result<Vec<Option<f64>>, DataError> {
    let col = df.column(name)?.as_materialized_series();
    if !col.dtype().is_primitive_numeric() {
        // Name the first value that is not a number, so the user can find it in the file.
        let texts = cell_texts(col)?;
        let first = texts.iter().enumerate().find_map(|(row, t)| t.as_deref().filter(|t| t.trim().parse::<f64>().is_err()).map(|t| (row, t.to_string())));
        let at = first.map(|(row, t)| format!(" (row {row}: `{}`)", shorten(&t, 40))).unwrap_or_default();
        return Err(DataError::Invalid(format!("{where_}: column `{name}` is not numeric (it is {}){at}", col.dtype())));
    }
    let cast = col.cast(&DataType::Float64)?;
    Ok(cast.f64()?.iter().collect())
}

/// Each cell as text; integers and whole floats print without a fraction so `3` matches `3.0`.
pub fn cell_texts(col: &Series) -> Result<Vec<Option<String>>, DataError> {
    if col.dtype().is_primitive_numeric() {
        let cast = col.cast(&DataType::Float64)?;
        Ok(cast.f64()?.iter().map(|v| v.map(|f| if f.fract() == 0.0 && f.abs() < 1e15 { (f as i64).to_string() } else { f.to_string() })).collect())
    } else {
        let cast = col.cast(&DataType::String)?;
        Ok(cast.str()?.iter().map(|v| v.map(str::to_string)).collect())
    }
}
