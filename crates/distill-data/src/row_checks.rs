//! Row-level checks (`not_null`, `finite`, `range`, `in_set`, `unique`, `sql`) as polars lazy
//! expressions, evaluated in as few passes over the table as possible:
//!
//! 1. every check becomes one aggregate expression (its failing-row count) and all of them run
//!    in a single lazy `select`, which polars evaluates in parallel over the columns;
//! 2. only the checks that found failures run a second, filtered query for their first
//!    `samples` failing rows (row number, column, value).
//!
//! A row fails a multi-column check once, however many of its cells fail.

use polars::prelude::*;

use crate::checks::{cell_texts, fmt_bound, sample_cap, shorten, CheckUnit, FailingRow, Findings};
use crate::{select_columns, DataError};
use distill_spec::{scalar_text, CheckKind, CheckSpec};

/// The column polars numbers the rows in for sample queries (not a name users pick).
const ROW: &str = "__distill_row";
/// The first row with the same key, for `unique` samples.
const FIRST: &str = "__distill_first";

/// One row-level check, compiled to polars expressions.
pub(crate) struct RowRule {
    kind: RowKind,
    /// Per checked column: its name and whether that cell fails (true = failing).
    cells: Vec<(String, Expr)>,
    message: String,
}

enum RowKind {
    /// A row fails when any of its cells fails.
    Cells,
    /// A row fails when an earlier row has the same values in these columns.
    Unique { columns: Vec<String>, whole_rows: bool },
    /// A row fails when the predicate is false or null; samples show the columns it reads.
    Sql { predicate: Expr, reads: Vec<String> },
}

/// Whether a check kind is evaluated here.
pub(crate) fn is_row_check(kind: &CheckKind) -> bool {
    matches!(kind, CheckKind::NotNull(_) | CheckKind::Finite(_) | CheckKind::Range(_) | CheckKind::InSet(_) | CheckKind::Unique(_) | CheckKind::Sql(_))
}

/// Compiles one row check against the table's schema; a column it names that is missing or of the
/// wrong type is an error (the check is reported as not run), and so is a bad `sql` predicate.
pub(crate) fn compile(df: &DataFrame, columns: &[String], check: &CheckSpec, where_: &str) -> Result<RowRule, DataError> {
    let patterns = check.kind.columns().map(|c| c.patterns()).unwrap_or_else(|| vec!["*".into()]);
    let cells = |names: Vec<String>, fails: &dyn Fn(&str, &DataType) -> Option<Expr>| -> Vec<(String, Expr)> {
        names.into_iter().filter_map(|n| fails(&n, df.schema().get(n.as_str()).unwrap_or(&DataType::Null)).map(|e| (n, e))).collect()
    };
    let rule = |cells, message| RowRule { kind: RowKind::Cells, cells, message };
    Ok(match &check.kind {
        CheckKind::NotNull(_) => {
            let names = select_columns(columns, &patterns, where_)?;
            let n = names.len();
            rule(cells(names, &|n, _| Some(col(n).is_null())), format!("values must not be null ({n} columns)"))
        }
        CheckKind::Finite(_) => {
            let names = select_columns(columns, &patterns, where_)?;
            let skipped = names.iter().filter(|n| !df.schema().get(n.as_str()).is_some_and(|t| t.is_primitive_numeric())).count();
            // Integers are always finite; text columns are skipped (and said so).
            let cells = cells(names, &|n, t| t.is_float().then(|| col(n).is_finite().not()));
            let note = if skipped > 0 { format!("; {skipped} non-numeric columns skipped") } else { String::new() };
            rule(cells, format!("values must be finite (no NaN or ±inf){note}"))
        }
        CheckKind::Range(range) => {
            let names = select_columns(columns, &patterns, where_)?;
            if let Some(bad) = names.iter().find(|n| !df.schema().get(n.as_str()).is_some_and(|t| t.is_primitive_numeric())) {
                return Err(not_numeric(df, bad, where_));
            }
            let (lo, hi) = (range.min.unwrap_or(f64::NEG_INFINITY), range.max.unwrap_or(f64::INFINITY));
            let outside = |n: &str, _: &DataType| {
                let v = col(n).cast(DataType::Float64);
                // NaN is not a bound violation; the `finite` check reports it.
                Some(v.clone().lt(lit(lo)).or(v.clone().gt(lit(hi))).and(v.is_nan().not()))
            };
            rule(cells(names, &outside), format!("values within [{}, {}]", fmt_bound(range.min), fmt_bound(range.max)))
        }
        CheckKind::InSet(in_set) => {
            let name = in_set.column.clone();
            select_columns(columns, std::slice::from_ref(&name), where_)?;
            let allowed: Vec<String> = in_set.values.iter().filter_map(scalar_text).collect();
            let dtype = df.schema().get(name.as_str()).cloned().unwrap_or(DataType::Null);
            // Numbers compare as numbers (so `3` matches 3.0), everything else as text.
            let (value, set) = if dtype.is_primitive_numeric() {
                let numbers: Vec<f64> = allowed.iter().filter_map(|v| v.parse().ok()).collect();
                (col(name.as_str()).cast(DataType::Float64), Series::new("allowed".into(), numbers))
            } else {
                (col(name.as_str()).cast(DataType::String), Series::new("allowed".into(), allowed.clone()))
            };
            let outside = value.clone().is_in(lit(set).implode(false), false).not().and(value.is_not_null());
            rule(vec![(name.clone(), outside)], format!("{name} in {{{}}}", allowed.join(", ")))
        }
        CheckKind::Unique(_) => {
            let names = select_columns(columns, &patterns, where_)?;
            let whole_rows = names.len() == columns.len();
            RowRule { kind: RowKind::Unique { columns: names, whole_rows }, cells: Vec::new(), message: String::new() }
        }
        CheckKind::Sql(sql) => {
            let text = sql.predicate.clone();
            let predicate = parse_predicate(&text).map_err(|e| DataError::Invalid(format!("{where_}.predicate: {e}")))?;
            let reads: Vec<String> = predicate.clone().meta().root_names().iter().map(|n| n.to_string()).collect();
            if let Some(missing) = reads.iter().find(|n| !columns.contains(n)) {
                return Err(DataError::Invalid(format!("{where_}.predicate: unknown column `{missing}` in `{text}`")));
            }
            let schema =
                df.clone().lazy().select([predicate.clone()]).collect_schema().map_err(|e| DataError::Invalid(format!("{where_}.predicate: `{text}`: {e}")))?;
            match schema.get_at_index(0).map(|(_, t)| t.clone()) {
                Some(DataType::Boolean) => {}
                other => {
                    return Err(DataError::Invalid(format!(
                        "{where_}.predicate: `{text}` is not a true/false condition (it gives {})",
                        other.map(|t| t.to_string()).unwrap_or_default()
                    )))
                }
            }
            RowRule { kind: RowKind::Sql { predicate, reads }, cells: Vec::new(), message: format!("every row satisfies `{text}`") }
        }
        other => return Err(DataError::Invalid(format!("{where_}: `{}` is not a row check", other.as_str()))),
    })
}

/// Parses a `sql` check's predicate without any data (so `distill validate` can report it).
pub fn parse_predicate(text: &str) -> Result<Expr, String> {
    crate::predicate::check_predicate_size(text)?;
    polars::sql::sql_expr(text).map_err(|e| format!("cannot parse `{text}` as a SQL condition: {e}"))
}

fn not_numeric(df: &DataFrame, name: &str, where_: &str) -> DataError {
    let dtype = df.schema().get(name).map(|t| t.to_string()).unwrap_or_default();
    DataError::Invalid(format!("{where_}: column `{name}` is not numeric (it is {dtype})"))
}

impl RowRule {
    /// The failing-row count, as an aggregate over the whole table.
    fn count(&self) -> Expr {
        match &self.kind {
            // Counted apart, on the few rows whose hash repeats (`repeats`).
            RowKind::Unique { .. } => lit(0u64),
            _ => self.failing().cast(DataType::UInt64).sum(),
        }
    }

    /// Row-wise: true where the row fails (not for `unique`, which needs its window column).
    fn failing(&self) -> Expr {
        match &self.kind {
            RowKind::Sql { predicate, .. } => predicate.clone().fill_null(lit(false)).not(),
            // A row fails when any of its cells does; no cells, no failures.
            _ => self.cells.iter().map(|(_, e)| e.clone().fill_null(lit(false))).reduce(Expr::or).unwrap_or(lit(false)),
        }
    }

    /// The first `cap` failing rows of a check that found `failing` of them.
    fn samples(&self, df: &DataFrame, cap: usize) -> Result<Vec<FailingRow>, DataError> {
        let rows = df.clone().lazy().with_row_index(ROW, None);
        let limit = cap as IdxSize;
        Ok(match &self.kind {
            RowKind::Cells => {
                let mut picked = vec![col(ROW)];
                for (j, (name, fails)) in self.cells.iter().enumerate() {
                    picked.push(fails.clone().fill_null(lit(false)).alias(format!("f{j}")));
                    picked.push(col(name.as_str()).alias(format!("v{j}")));
                }
                let found = rows.filter(self.failing()).limit(limit).select(picked).collect()?;
                let row_numbers = row_numbers(&found, ROW)?;
                let mut out = Vec::with_capacity(found.height());
                for (i, &row) in row_numbers.iter().enumerate() {
                    // The first failing column of the row is the one shown.
                    for (j, (name, _)) in self.cells.iter().enumerate() {
                        if found.column(&format!("f{j}"))?.as_materialized_series().bool()?.get(i) == Some(true) {
                            let value = cell_text(found.column(&format!("v{j}"))?.as_materialized_series(), i)?;
                            out.push(FailingRow { row, column: name.clone(), value });
                            break;
                        }
                    }
                }
                out
            }
            RowKind::Unique { columns, .. } => {
                // Only rows whose key hash repeats can repeat a key: the window runs over those.
                let rows = crate::repeats::candidates(df, columns, ROW)?.lazy();
                let keys: Vec<Expr> = columns.iter().map(|c| col(c.as_str())).collect();
                let first = col(ROW).min().over(&keys)?.alias(FIRST);
                let found = rows.with_column(first).filter(col(ROW).neq(col(FIRST))).limit(limit).collect()?;
                let (row_numbers, firsts) = (row_numbers(&found, ROW)?, row_numbers(&found, FIRST)?);
                let texts: Vec<Vec<Option<String>>> =
                    columns.iter().map(|c| cell_texts(found.column(c)?.as_materialized_series())).collect::<Result<_, _>>()?;
                (0..found.height())
                    .map(|i| {
                        let shown: Vec<&str> = texts.iter().map(|t| t[i].as_deref().unwrap_or("null")).collect();
                        FailingRow {
                            row: row_numbers[i],
                            column: columns.join(","),
                            value: format!("({}) repeats row {}", shorten(&shown.join(", "), 80), firsts[i]),
                        }
                    })
                    .collect()
            }
            RowKind::Sql { reads, .. } => {
                let found = rows.filter(self.failing()).limit(limit).collect()?;
                let row_numbers = row_numbers(&found, ROW)?;
                let mut out = Vec::with_capacity(found.height());
                for (i, &row) in row_numbers.iter().enumerate() {
                    let values: Vec<String> = reads
                        .iter()
                        .map(|c| Ok(format!("{c}={}", cell_text(found.column(c)?.as_materialized_series(), i)?)))
                        .collect::<Result<_, DataError>>()?;
                    out.push(FailingRow { row, column: reads.join(","), value: values.join(", ") });
                }
                out
            }
        })
    }

    /// The message, once the failing count is known.
    fn message(&self, failing: usize) -> String {
        match &self.kind {
            RowKind::Unique { whole_rows: true, .. } => format!("no duplicate rows ({failing} repeats of earlier rows)"),
            RowKind::Unique { columns, .. } => format!("unique key ({}); {failing} repeats of earlier rows", columns.join(", ")),
            _ => self.message.clone(),
        }
    }
}

fn row_numbers(df: &DataFrame, name: &str) -> Result<Vec<usize>, DataError> {
    let c = df.column(name)?.as_materialized_series().cast(&DataType::UInt64)?;
    Ok(c.u64()?.iter().map(|v| v.unwrap_or(0) as usize).collect())
}

fn cell_text(series: &Series, i: usize) -> Result<String, DataError> {
    let one = series.slice(i as i64, 1);
    Ok(cell_texts(&one)?.into_iter().next().flatten().unwrap_or_else(|| "null".into()))
}

/// Evaluates compiled row checks: one pass for every count, then one filtered query per check
/// that failed (at most its `samples` rows). An expression polars rejects at run time (e.g. a
/// type error in a predicate) makes only its own check fail to run.
pub(crate) fn evaluate(df: &DataFrame, rules: &[(&CheckSpec, RowRule)]) -> Vec<Result<Findings, DataError>> {
    if rules.is_empty() {
        return Vec::new();
    }
    let counts = match count_all(df, rules) {
        Ok(counts) => counts,
        // Something in the batch failed: count one check at a time to tell which it was.
        Err(_) => rules.iter().map(|r| count_all(df, std::slice::from_ref(r)).and_then(|mut c| c.remove(0))).collect(),
    };
    rules
        .iter()
        .zip(counts)
        .map(|((check, rule), count)| {
            let failing = count?;
            let cap = sample_cap(check);
            let samples = if failing > 0 && cap > 0 { rule.samples(df, cap)? } else { Vec::new() };
            let mut f = Findings::counted(CheckUnit::Rows, df.height(), failing, samples);
            f.message = rule.message(failing);
            Ok(f)
        })
        .collect()
}

/// Columns one query of a wide check reads at a time (see [`count_wide`]).
const WIDE: usize = 32;

/// The failing rows of a check over many columns (`range` over 784 pixels), a group of columns
/// at a time OR-ed into one mask: one expression over every column makes polars cast and hold
/// them all at once (for Fashion-MNIST, 784 columns as f64 and their masks: about 0.9 GB).
fn count_wide(df: &DataFrame, rule: &RowRule) -> Result<usize, DataError> {
    let mut failing: Option<BooleanChunked> = None;
    for group in rule.cells.chunks(WIDE) {
        let any = group.iter().map(|(_, e)| e.clone().fill_null(lit(false))).reduce(Expr::or).unwrap_or(lit(false));
        let part = df.clone().lazy().select([any.alias("failing")]).collect()?;
        let part = part.column("failing")?.as_materialized_series().bool()?.clone();
        failing = Some(match failing {
            Some(m) => &m | &part,
            None => part,
        });
    }
    Ok(failing.map_or(0, |m| m.num_trues()))
}

/// Every rule's failing count from one lazy `select` (wide ones apart, see [`count_wide`]).
fn count_all(df: &DataFrame, rules: &[(&CheckSpec, RowRule)]) -> Result<Vec<Result<usize, DataError>>, DataError> {
    let wide = |r: &RowRule| matches!(r.kind, RowKind::Cells) && r.cells.len() > WIDE;
    let exprs: Vec<Expr> = rules.iter().enumerate().filter(|(_, (_, r))| !wide(r)).map(|(i, (_, r))| r.count().alias(format!("c{i}"))).collect();
    let out = if exprs.is_empty() { DataFrame::empty() } else { df.clone().lazy().select(exprs).collect()? };
    Ok(rules
        .iter()
        .enumerate()
        .map(|(i, (_, rule))| {
            if let RowKind::Unique { columns, .. } = &rule.kind {
                return crate::repeats::count(df, columns);
            }
            if wide(rule) {
                return count_wide(df, rule);
            }
            let c = out.column(&format!("c{i}"))?.as_materialized_series().cast(&DataType::UInt64)?;
            Ok(c.u64()?.get(0).unwrap_or(0) as usize)
        })
        .collect())
}

/// `(key, message)` for each `sql` check whose predicate does not parse, found before any data
/// is read (`distill validate`, and `check`/`run` before loading).
pub fn predicate_problems(checks: &[CheckSpec]) -> Vec<(String, String)> {
    checks
        .iter()
        .enumerate()
        .filter_map(|(i, c)| match &c.kind {
            CheckKind::Sql(sql) => parse_predicate(&sql.predicate).err().map(|e| (format!("data.checks[{i}] ({}).predicate", c.name()), e)),
            _ => None,
        })
        .collect()
}
