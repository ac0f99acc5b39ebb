//! Data-quality checks: every check runs (a full report, not the first failure), each with its
//! status, failing count and fraction, and a sample of failing rows.

use polars::prelude::*;
use serde::Serialize;

use crate::{select_columns, DataError};
use distill_spec::{scalar_text, CheckKind, CheckSpec, Severity};

/// How many failing rows a check lists.
pub const SAMPLE_ROWS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    Warn,
    Error,
}

/// One failing cell: 0-based data row (not counting the header), column, value as text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailingRow {
    pub row: usize,
    pub column: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub id: String,
    pub kind: String,
    pub status: CheckStatus,
    /// Failing rows (or, for `row_count`, 1 when the count is out of bounds).
    pub failing: usize,
    pub fraction: f64,
    pub message: String,
    pub samples: Vec<FailingRow>,
}

#[derive(Debug, Clone, Serialize)]
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
        let mut out = format!("{:<16} {:<10} {:<6} {:>8} {:>9}  details\n", "check", "kind", "status", "failing", "fraction");
        for c in &self.checks {
            let status = match c.status {
                CheckStatus::Pass => "pass",
                CheckStatus::Warn => "WARN",
                CheckStatus::Error => "ERROR",
            };
            out += &format!("{:<16} {:<10} {:<6} {:>8} {:>8.2}%  {}\n", c.id, c.kind, status, c.failing, c.fraction * 100.0, c.message);
            for s in &c.samples {
                out += &format!("{:<16}   row {} column {}: {}\n", "", s.row, s.column, s.value);
            }
        }
        if self.checks.iter().any(|c| !c.samples.is_empty()) {
            out += "(rows are 0-based data rows; in a CSV file with a header, row N is line N + 2)\n";
        }
        out
    }
}

/// Runs every check on `df`.
pub fn run_checks(df: &DataFrame, checks: &[CheckSpec]) -> Result<CheckReport, DataError> {
    let rows = df.height();
    let columns: Vec<String> = df.get_column_names().iter().map(|c| c.to_string()).collect();
    let mut results = Vec::with_capacity(checks.len());
    for (i, check) in checks.iter().enumerate() {
        let where_ = format!("data.checks[{i}] ({})", check.name());
        let mut failing_rows = std::collections::BTreeSet::new();
        let mut samples = Vec::new();
        let mut note = |row: usize, column: &str, value: String, rows: &mut std::collections::BTreeSet<usize>| {
            if rows.insert(row) && samples.len() < SAMPLE_ROWS {
                samples.push(FailingRow { row, column: column.to_string(), value });
            }
        };
        let message = match check.kind {
            CheckKind::NotNull => {
                let patterns = check.columns.as_ref().map(|c| c.patterns()).unwrap_or_else(|| vec!["*".into()]);
                for name in select_columns(&columns, &patterns, &where_)? {
                    let col = df.column(&name)?.as_materialized_series().clone();
                    for (row, is_null) in col.is_null().iter().enumerate() {
                        if is_null == Some(true) {
                            note(row, &name, "null".into(), &mut failing_rows);
                        }
                    }
                }
                "values must not be null".to_string()
            }
            CheckKind::Range => {
                let patterns = check.columns.as_ref().map(|c| c.patterns()).unwrap_or_else(|| vec!["*".into()]);
                let (lo, hi) = (check.min.unwrap_or(f64::NEG_INFINITY), check.max.unwrap_or(f64::INFINITY));
                for name in select_columns(&columns, &patterns, &where_)? {
                    let values = numeric_column(df, &name, &where_)?;
                    for (row, v) in values.into_iter().enumerate() {
                        if let Some(v) = v {
                            if !(lo..=hi).contains(&v) {
                                note(row, &name, v.to_string(), &mut failing_rows);
                            }
                        }
                    }
                }
                format!("values within [{}, {}]", fmt_bound(check.min), fmt_bound(check.max))
            }
            CheckKind::InSet => {
                let name = check.column.clone().unwrap_or_default();
                select_columns(&columns, std::slice::from_ref(&name), &where_)?;
                let allowed: Vec<String> = check.values.iter().flatten().filter_map(scalar_text).collect();
                let col = df.column(&name)?.as_materialized_series().clone();
                for (row, value) in cell_texts(&col)?.into_iter().enumerate() {
                    if let Some(v) = value {
                        if !allowed.contains(&v) {
                            note(row, &name, v, &mut failing_rows);
                        }
                    }
                }
                format!("{name} in {{{}}}", allowed.join(", "))
            }
            CheckKind::RowCount => {
                let (lo, hi) = (check.min.unwrap_or(0.0), check.max.unwrap_or(f64::INFINITY));
                let ok = (lo..=hi).contains(&(rows as f64));
                if !ok {
                    failing_rows.insert(0);
                }
                format!("{rows} rows; expected [{}, {}]", fmt_bound(check.min), fmt_bound(check.max))
            }
        };
        let failing = failing_rows.len();
        let status = match (failing, check.severity) {
            (0, _) => CheckStatus::Pass,
            (_, Severity::Warn) => CheckStatus::Warn,
            (_, Severity::Error) => CheckStatus::Error,
        };
        let fraction = if check.kind == CheckKind::RowCount {
            failing as f64
        } else if rows == 0 {
            0.0
        } else {
            failing as f64 / rows as f64
        };
        results.push(CheckResult { id: check.name(), kind: check.kind.as_str().into(), status, failing, fraction, message, samples });
    }
    Ok(CheckReport { rows, checks: results })
}

fn fmt_bound(b: Option<f64>) -> String {
    b.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// A numeric column as f64 values (nulls as `None`); a non-numeric column is an error.
pub(crate) fn numeric_column(df: &DataFrame, name: &str, where_: &str) -> Result<Vec<Option<f64>>, DataError> {
    let col = df.column(name)?.as_materialized_series();
    if !col.dtype().is_primitive_numeric() {
        return Err(DataError::Invalid(format!("{where_}: column `{name}` is not numeric (it is {})", col.dtype())));
    }
    let cast = col.cast(&DataType::Float64)?;
    Ok(cast.f64()?.iter().collect())
}

/// Each cell as text; integers and whole floats print without a fraction so `3` matches `3.0`.
pub(crate) fn cell_texts(col: &Series) -> Result<Vec<Option<String>>, DataError> {
    if col.dtype().is_primitive_numeric() {
        let cast = col.cast(&DataType::Float64)?;
        Ok(cast
            .f64()?
            .iter()
            .map(|v| v.map(|f| if f.fract() == 0.0 && f.abs() < 1e15 { (f as i64).to_string() } else { f.to_string() }))
            .collect())
    } else {
        let cast = col.cast(&DataType::String)?;
        Ok(cast.str()?.iter().map(|v| v.map(str::to_string)).collect())
    }
}
