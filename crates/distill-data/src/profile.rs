//! `profile`: a starting set of checks inferred from a table, as the recipe's `checks:` YAML.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use distill_spec::{DataFormat, SourceSpec};
use polars::prelude::*;

use crate::checks::cell_texts;
use crate::load::{infer_format, load_table, load_table_with};
use crate::{glob_match, DataError};

/// Columns this distinct or fewer get an `in_set` check (text and bool columns).
const MAX_SET_TEXT: usize = 20;
/// Integer columns this distinct or fewer get an `in_set` check instead of a `range`.
const MAX_SET_INT: usize = 10;
/// Label columns this distinct or fewer get an `in_set` check.
const MAX_SET_LABEL: usize = 100;
/// Numbered columns (`p0`, `p1`, ...) this many or more share one glob.
const MIN_GROUP: usize = 3;

/// One column's observations.
struct Col {
    name: String,
    dtype: DataType,
    nulls: usize,
    /// NaN or ±inf values (float columns).
    non_finite: usize,
    /// Finite min and max (numeric columns with a finite value).
    min_max: Option<(f64, f64)>,
    /// Distinct non-null values as text, up to a limit (`None` past it).
    distinct: Option<BTreeSet<String>>,
    /// Whether every non-null value is distinct.
    all_distinct: bool,
}

/// A column or a group of numbered columns that one glob selects.
struct Unit {
    /// The YAML text that selects it: a name or a glob.
    selector: String,
    /// Short id part.
    id: String,
    members: Vec<usize>,
}

/// Proposes checks for `df` in the recipe's YAML (`checks:` and its list, ready to paste under
/// `data:`): `schema` with the observed types, `row_count`, `not_null` where there are no nulls
/// (thresholds at the observed rate where there are), `finite`, `range` per column or per glob
/// of numbered columns from the observed min/max, `in_set` for low-cardinality columns and the
/// label, `unique` for whole rows and key-like columns, `class_balance` for the label, and
/// warn-level `leakage` and `drift`. Review the bounds: they describe this file, not the domain.
pub fn profile(df: &DataFrame, label: Option<&str>) -> String {
    let rows = df.height();
    let cols: Vec<Col> = df.columns().iter().map(|c| observe(c.as_materialized_series())).collect();
    let names: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
    let label = label.filter(|l| names.iter().any(|n| n == l));
    let is_label = |c: &Col| Some(c.name.as_str()) == label;
    let units = group(&cols, &names, label);

    let mut out = format!(
        "# checks proposed by distill profile from {rows} rows × {} columns{}; review the bounds before use\n",
        cols.len(),
        label.map(|l| format!(" (label `{l}`)")).unwrap_or_default()
    );
    out += "checks:\n";
    let mut item = |yaml: String, note: Option<String>| {
        out += &format!("  - {{{yaml}}}");
        if let Some(n) = note {
            out += &format!("   # {n}");
        }
        out.push('\n');
    };

    // Schema: every column with its type, or required by name when it has no schema type (so
    // `allow_extra: false` never fails on a column of this file); no others.
    let (mut types, mut untyped) = (Vec::new(), Vec::new());
    for u in &units {
        match common_type(u.members.iter().map(|&j| &cols[j].dtype)) {
            Some(t) => types.push(format!("{}: {t}", q(&u.selector))),
            None => untyped.push(u.selector.as_str()),
        }
    }
    if !units.is_empty() {
        let required = if untyped.is_empty() { String::new() } else { format!("columns: {}, ", list(untyped.into_iter())) };
        item(format!("id: schema, kind: schema, {required}types: {{{}}}, allow_extra: false", types.join(", ")), None);
    }

    // Row count: a little slack below what is there now.
    if rows > 0 {
        item(format!("id: row-count, kind: row_count, min: {}", (rows as f64 * 0.9).floor().max(1.0)), Some(format!("{rows} rows now")));
    }

    // Not null: one check for the columns without nulls; thresholds for the ones with nulls.
    let clean: Vec<&Unit> = units.iter().filter(|u| u.members.iter().all(|&j| cols[j].nulls == 0)).collect();
    if clean.len() == units.len() && !units.is_empty() {
        item("id: not-null, kind: not_null, columns: all".into(), None);
    } else if !clean.is_empty() {
        item(format!("id: not-null, kind: not_null, columns: {}", list(clean.iter().map(|u| u.selector.as_str()))), None);
    }
    for u in units.iter().filter(|u| u.members.iter().any(|&j| cols[j].nulls > 0)) {
        let nulls = u.members.iter().map(|&j| cols[j].nulls).max().unwrap_or(0);
        let pct = 100.0 * nulls as f64 / rows.max(1) as f64;
        let limit = (2.0 * pct).ceil().clamp(1.0, 100.0);
        item(
            format!("id: {}, kind: not_null, columns: {}, warn: \"> 0\", error: \"> {limit}%\"", q(&format!("nulls-{}", u.id)), q(&u.selector)),
            Some(format!("nulls now: {nulls} ({pct:.2}%)")),
        );
    }

    // Finite: float columns that hold no NaN or infinity.
    let floats: Vec<&Unit> = units.iter().filter(|u| u.members.iter().all(|&j| cols[j].dtype.is_float() && cols[j].non_finite == 0)).collect();
    if !floats.is_empty() {
        item(format!("id: finite, kind: finite, columns: {}", list(floats.iter().map(|u| u.selector.as_str()))), None);
    }

    // In-set for low-cardinality columns and the label; range for the other numeric columns.
    let mut in_set_done = HashSet::new();
    for u in &units {
        let [j] = u.members[..] else { continue };
        let c = &cols[j];
        let limit = if is_label(c) {
            MAX_SET_LABEL
        } else if c.dtype.is_integer() {
            MAX_SET_INT
        } else if matches!(c.dtype, DataType::String | DataType::Boolean) {
            MAX_SET_TEXT
        } else {
            continue;
        };
        let Some(values) = &c.distinct else { continue };
        // A column where nearly every value is new is an id or free text, not a category.
        if values.is_empty() || values.len() > limit || (!is_label(c) && values.len() * 2 > rows) {
            continue;
        }
        let mut values: Vec<&String> = values.iter().collect();
        let numeric = c.dtype.is_primitive_numeric();
        if numeric {
            values.sort_by(|a, b| a.parse::<f64>().unwrap_or(0.0).total_cmp(&b.parse::<f64>().unwrap_or(0.0)));
        }
        let shown: Vec<String> = values.iter().map(|v| if numeric { v.to_string() } else { q(v) }).collect();
        item(format!("id: {}, kind: in_set, column: {}, values: [{}]", q(&format!("set-{}", u.id)), q(&c.name), shown.join(", ")), None);
        in_set_done.insert(j);
    }
    for u in &units {
        if u.members.iter().any(|j| in_set_done.contains(j) || is_label(&cols[*j])) {
            continue;
        }
        // Infinite values would fail any bound; `finite` is the check for them.
        if u.members.iter().any(|&j| cols[j].non_finite > 0) {
            item(
                format!("id: {}, kind: finite, columns: {}, severity: warn", q(&format!("finite-{}", u.id)), q(&u.selector)),
                Some("NaN or ±inf now; no range proposed".into()),
            );
            continue;
        }
        let bounds = u.members.iter().filter_map(|&j| cols[j].min_max).fold(None, |acc: Option<(f64, f64)>, (lo, hi)| match acc {
            None => Some((lo, hi)),
            Some((a, b)) => Some((a.min(lo), b.max(hi))),
        });
        if let Some((lo, hi)) = bounds {
            item(
                format!("id: {}, kind: range, columns: {}, min: {}, max: {}", q(&format!("range-{}", u.id)), q(&u.selector), bound(lo, false), bound(hi, true)),
                None,
            );
        }
    }

    // Unique: whole rows, and key-like columns (integers or text, every value distinct).
    let duplicates = duplicate_rows(df);
    match duplicates {
        Some(0) => item("id: unique-rows, kind: unique".into(), None),
        Some(n) => item("id: unique-rows, kind: unique, severity: warn".into(), Some(format!("rows repeating an earlier row now: {n}"))),
        None => {}
    }
    for c in &cols {
        let keyish = c.dtype.is_integer() || matches!(c.dtype, DataType::String);
        if keyish && c.all_distinct && c.nulls == 0 && rows > 1 && !is_label(c) {
            item(format!("id: {}, kind: unique, columns: [{}]", q(&format!("unique-{}", c.name)), q(&c.name)), None);
        }
    }

    // Class balance: at least half the smallest class's share now.
    if let Some(l) = label {
        if let Some(Some(shares)) = cols.iter().find(|c| c.name == l).map(|c| class_shares(df, &c.name)) {
            if shares.len() >= 2 {
                let smallest = shares.values().cloned().fold(f64::INFINITY, f64::min);
                let min_fraction = ((smallest / 2.0) * 1000.0).floor().max(1.0) / 1000.0;
                item(
                    format!("id: class-balance, kind: class_balance, column: {}, min_fraction: {min_fraction}", q(l)),
                    Some(format!("{} classes; smallest share now {:.2}%", shares.len(), smallest * 100.0)),
                );
            }
        }
    }

    // Split checks: run after the split, on the features.
    item("id: leakage, kind: leakage, severity: warn".into(), Some("validation/test rows identical to a training row".into()));
    let ks = ks_critical(rows);
    item(
        format!("id: drift, kind: drift, method: ks, max_distance: {}, severity: warn", bound(ks, true)),
        Some(format!("train vs test per feature; KS critical value at α = 0.01 for an 80/20 split of {rows} rows")),
    );
    out
}

/// `distill profile FILE`: loads the file and proposes its checks. A CSV whose header row looks
/// like data (every column name a number; polars renames repeats `N_duplicated_K`) was written
/// without a header: it is profiled again with `header: false`, and the output says so.
pub fn profile_file(path: &Path, label: Option<&str>) -> Result<String, DataError> {
    let df = load_table(path, None)?;
    let is_csv = matches!(infer_format(path), Ok(DataFormat::Csv));
    if !is_csv || !looks_like_data(df.get_column_names().iter().map(|n| n.as_str())) {
        return Ok(profile(&df, label));
    }
    let mut source = SourceSpec::new(path);
    source.header = Some(false);
    let df = load_table_with(path, None, &source)?;
    let names: Vec<String> = df.get_column_names().iter().map(|n| n.to_string()).collect();
    let note = format!(
        "# {}: the first row looks like data, not a header (every field is a number), so it was read with `header: false`:\n\
         # use `source: {{path: ..., header: false}}` in the recipe (and `column_names: [...]` to name the {} columns {} ... {})\n",
        path.display(),
        names.len(),
        names.first().map(String::as_str).unwrap_or_default(),
        names.last().map(String::as_str).unwrap_or_default()
    );
    Ok(note + &profile(&df, label))
}

/// Whether every header field is a number (or polars' rename of a repeated one).
fn looks_like_data<'a>(mut names: impl Iterator<Item = &'a str>) -> bool {
    names.all(|n| {
        let n = n.split_once("_duplicated_").map_or(n, |(head, _)| head);
        n.trim().parse::<f64>().is_ok()
    })
}

fn observe(s: &Series) -> Col {
    let name = s.name().to_string();
    let dtype = s.dtype().clone();
    let nulls = s.null_count();
    let (mut non_finite, mut min_max) = (0, None);
    if dtype.is_primitive_numeric() {
        if let Ok(cast) = s.cast(&DataType::Float64) {
            for v in cast.f64().into_iter().flat_map(|c| c.iter()).flatten() {
                if !v.is_finite() {
                    non_finite += 1;
                } else {
                    min_max = Some(match min_max {
                        None => (v, v),
                        Some((lo, hi)) => (f64::min(lo, v), f64::max(hi, v)),
                    });
                }
            }
        }
    }
    let (mut distinct, mut all_distinct) = (None, false);
    let countable = dtype.is_integer() || matches!(dtype, DataType::String | DataType::Boolean);
    if countable {
        if let Ok(texts) = cell_texts(s) {
            let mut set: HashSet<&str> = HashSet::new();
            let mut repeated = false;
            for t in texts.iter().flatten() {
                repeated |= !set.insert(t.as_str());
            }
            all_distinct = !repeated;
            if set.len() <= MAX_SET_LABEL {
                distinct = Some(set.into_iter().map(str::to_string).collect());
            }
        }
    }
    Col { name, dtype, nulls, non_finite, min_max, distinct, all_distinct }
}

/// Columns as units: numbered numeric columns with a shared stem (`p0`, `p1`, ...) become one
/// glob (`p*`) when the glob selects exactly them; every other column stands alone.
fn group(cols: &[Col], names: &[String], label: Option<&str>) -> Vec<Unit> {
    let mut stems: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (j, c) in cols.iter().enumerate() {
        let stem = c.name.trim_end_matches(|ch: char| ch.is_ascii_digit());
        if stem.len() < c.name.len() && !stem.is_empty() && !stem.contains('*') && c.dtype.is_primitive_numeric() && Some(c.name.as_str()) != label {
            stems.entry(stem.to_string()).or_default().push(j);
        }
    }
    let mut grouped: BTreeMap<usize, Unit> = BTreeMap::new();
    let mut taken = HashSet::new();
    for (stem, members) in stems {
        let glob = format!("{stem}*");
        let matched: Vec<usize> = names.iter().enumerate().filter(|(_, n)| glob_match(&glob, n)).map(|(j, _)| j).collect();
        if members.len() >= MIN_GROUP && matched == members {
            taken.extend(members.iter().copied());
            grouped.insert(members[0], Unit { selector: glob, id: stem.trim_end_matches(['_', '-', '.']).to_string(), members });
        }
    }
    for (j, c) in cols.iter().enumerate() {
        if !taken.contains(&j) {
            grouped.insert(j, Unit { selector: c.name.clone(), id: c.name.clone(), members: vec![j] });
        }
    }
    grouped.into_values().collect()
}

/// The two-sample KS distance that a random 80/20 split of `rows` rows exceeds with probability
/// 0.01 (`c(α) √((n + m) / (n m))`, c(0.01) = 1.628): a fixed distance flags most features of a
/// small table by chance alone. At most 1 (every distance passes).
fn ks_critical(rows: usize) -> f64 {
    let (n, m) = ((rows as f64 * 0.8).max(1.0), (rows as f64 * 0.2).max(1.0));
    (1.628 * ((n + m) / (n * m)).sqrt()).min(1.0)
}

/// The schema type all of `dtypes` have; `number` for a mix of integers and floats.
fn common_type<'a>(dtypes: impl Iterator<Item = &'a DataType>) -> Option<&'static str> {
    let mut found = None;
    for d in dtypes {
        let t = type_name(d)?;
        found = Some(match found {
            None => t,
            Some(f) if f == t => f,
            Some("int" | "float" | "number") if matches!(t, "int" | "float") => "number",
            Some(_) => return None,
        });
    }
    found
}

fn type_name(d: &DataType) -> Option<&'static str> {
    if d.is_integer() {
        Some("int")
    } else if d.is_float() {
        Some("float")
    } else if matches!(d, DataType::String) {
        Some("string")
    } else if matches!(d, DataType::Boolean) {
        Some("bool")
    } else {
        None
    }
}

/// Rows that repeat an earlier row; `None` when a column cannot be read as text.
fn duplicate_rows(df: &DataFrame) -> Option<usize> {
    let texts: Vec<Vec<Option<String>>> = df.columns().iter().map(|c| cell_texts(c.as_materialized_series()).ok()).collect::<Option<_>>()?;
    // A corrupt file can decode to columns shorter than the table (found by fuzzing Parquet).
    if texts.iter().any(|t| t.len() != df.height()) {
        return None;
    }
    let mut seen = HashSet::with_capacity(df.height());
    let mut repeats = 0;
    for row in 0..df.height() {
        let key: Vec<&str> = texts.iter().map(|t| t[row].as_deref().unwrap_or("\u{0}")).collect();
        if !seen.insert(key.join("\u{1f}")) {
            repeats += 1;
        }
    }
    Some(repeats)
}

/// Each class's share of the non-null labels.
fn class_shares(df: &DataFrame, label: &str) -> Option<BTreeMap<String, f64>> {
    let texts = cell_texts(df.column(label).ok()?.as_materialized_series()).ok()?;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for t in texts.into_iter().flatten() {
        *counts.entry(t).or_default() += 1;
    }
    let total: usize = counts.values().sum();
    Some(counts.into_iter().map(|(k, n)| (k, n as f64 / total.max(1) as f64)).collect())
}

fn list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    format!("[{}]", items.map(q).collect::<Vec<_>>().join(", "))
}

/// A YAML scalar for `s`: plain when that reads back as the same string, else double-quoted.
pub(crate) fn q(s: &str) -> String {
    let plain = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !matches!(s.to_ascii_lowercase().as_str(), "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null" | "nan" | "inf");
    if plain {
        s.to_string()
    } else {
        // A JSON string is a valid YAML double-quoted scalar.
        serde_json::to_string(s).unwrap_or_else(|_| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
    }
}

/// A short decimal at or beyond `v` (below it for a lower bound, above for an upper), so the
/// observed values pass the check: the fewest significant digits within 1e-6 (relative) of `v`.
pub(crate) fn bound(v: f64, up: bool) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    let magnitude = v.abs().log10().floor() as i32;
    for digits in 1..=17 {
        let scale = 10f64.powi(digits - 1 - magnitude);
        let r = if up { (v * scale).ceil() / scale } else { (v * scale).floor() / scale };
        let text = format!("{r}");
        if let Ok(p) = text.parse::<f64>() {
            let outside = if up { p >= v } else { p <= v };
            if outside && (p - v).abs() <= 1e-6 * v.abs() {
                return text;
            }
        }
    }
    format!("{v}")
}

#[cfg(test)]
mod file_tests {
    use super::*;

    #[test]
    fn a_header_of_numbers_is_data() {
        assert!(looks_like_data(["5.1", "3.5", "1.4", "0.2_duplicated_0"].into_iter()));
        assert!(!looks_like_data(["sepal_length", "5.1"].into_iter()));
    }

    #[test]
    fn ks_threshold_shrinks_with_the_rows_and_never_passes_one() {
        assert!((ks_critical(150) - 0.3323).abs() < 1e-3, "{}", ks_critical(150));
        assert!(ks_critical(100_000) < 0.02);
        assert_eq!(ks_critical(2), 1.0);
    }

    #[test]
    fn mixed_numeric_groups_are_numbers_and_other_types_are_named_not_typed() {
        assert_eq!(common_type([DataType::Int64, DataType::Float64, DataType::Int32].iter()), Some("number"));
        assert_eq!(common_type([DataType::Int64, DataType::String].iter()), None);
        let df = df!("when" => [Some(1i64), None], "x" => [1.0f64, 2.0]).unwrap();
        let df = df.lazy().with_column(col("when").cast(DataType::Date)).collect().unwrap();
        let text = profile(&df, None);
        assert!(text.contains("kind: schema, columns: [when], types: {x: float}, allow_extra: false"), "{text}");
    }
}
