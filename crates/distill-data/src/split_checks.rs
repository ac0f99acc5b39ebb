//! Checks over the prepared splits: `leakage` (held-out rows identical to training rows) and
//! `drift` (per-feature distribution distance between the training and test splits).
//!
//! [`prepare_and_check`] prepares the splits and appends these checks to the table checks'
//! report; stop the run when it has errors, as for the table checks. Augmented training rows are left
//! out of both: they are not data, and noise copies would hide exact duplicates.

use std::collections::HashMap;

use crate::augment::is_augmented;
use crate::checks::{not_run, sample_cap, CheckReport, CheckResult, CheckUnit, Findings};
use crate::prepare::{prepare, Prepared, Split, Tables, TEST_ROW_ID_BASE, TRANSFER_ROW_ID_BASE};
use crate::{select_columns, DataError};
use distill_spec::{CheckKind, CheckSpec, DataSpec, DriftMethod};

/// Runs the split checks (`leakage`, `drift`) among `checks`; other kinds are skipped. `rows` of
/// the report is the number of training rows that are data (augmented rows left out).
pub fn run_split_checks(p: &Prepared, checks: &[CheckSpec]) -> Result<CheckReport, DataError> {
    let mut out = Vec::new();
    for check in checks {
        let result = match &check.kind {
            CheckKind::Leakage(_) => check_leakage(p, check),
            CheckKind::Drift(_) => check_drift(p, check),
            _ => continue,
        };
        out.push(result);
    }
    let rows = p.train.row_ids.iter().filter(|&&id| !is_augmented(id)).count();
    Ok(CheckReport { rows, checks: out })
}

/// Prepares the splits and adds the split checks' results to `report` (the table checks'), so the
/// report is complete even when a table check already failed. When the data cannot be split and
/// a table check already failed (e.g. nulls in a feature), the split checks are reported as not
/// run and `None` is returned; when the table checks passed, that error is returned.
pub fn prepare_and_check(tables: &Tables, spec: &DataSpec, seed: u64, report: &mut CheckReport) -> Result<Option<Prepared>, DataError> {
    let prepared = match prepare(tables, spec, seed) {
        Ok(p) => p,
        Err(e) if report.has_errors() => {
            let why = format!("the data could not be split ({e})");
            report.checks.extend(spec.checks.iter().filter(|c| c.kind.needs_split()).map(|c| not_run(c, CheckUnit::Rows, why.clone())));
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    report.checks.extend(run_split_checks(&prepared, &spec.checks)?.checks);
    Ok(Some(prepared))
}

/// The features `check.columns` selects (all by default), as indices into `feature_names`.
fn feature_indices(p: &Prepared, check: &CheckSpec) -> Result<Vec<usize>, DataError> {
    let patterns = check.kind.columns().map(|c| c.patterns()).unwrap_or_else(|| vec!["*".into()]);
    let names = select_columns(&p.feature_names, &patterns, &format!("check `{}` (features)", check.name()))?;
    Ok(p.feature_names.iter().enumerate().filter(|(_, n)| names.contains(n)).map(|(j, _)| j).collect())
}

/// How a row id reads in a report.
pub fn describe_row(id: u64) -> String {
    if is_augmented(id) {
        format!("augmented row {id}")
    } else if id >= TEST_ROW_ID_BASE {
        format!("test_source row {}", id - TEST_ROW_ID_BASE)
    } else if id >= TRANSFER_ROW_ID_BASE {
        format!("transfer row {}", id - TRANSFER_ROW_ID_BASE)
    } else {
        format!("row {id}")
    }
}

/// `leakage`: validation and test rows whose selected features equal those of a training row
/// (transfer rows included, augmented rows not). Compared after scaling, which maps equal inputs
/// to equal values. Failing counts held-out rows; samples name both rows.
pub fn check_leakage(p: &Prepared, check: &CheckSpec) -> CheckResult {
    let cols = match feature_indices(p, check) {
        Ok(c) => c,
        Err(e) => return not_run(check, CheckUnit::Rows, e.to_string()),
    };
    let width = p.features();
    let key = |s: &Split, i: usize| -> Vec<u32> {
        // -0.0 and 0.0 are the same value.
        cols.iter()
            .map(|&j| {
                let v = s.x[i * width + j];
                if v == 0.0 {
                    0
                } else {
                    v.to_bits()
                }
            })
            .collect()
    };
    let mut seen: HashMap<Vec<u32>, u64> = HashMap::with_capacity(p.train.len());
    for i in 0..p.train.len() {
        let id = p.train.row_ids[i];
        if !is_augmented(id) {
            seen.entry(key(&p.train, i)).or_insert(id);
        }
    }
    let total = p.val.len() + p.test.len();
    let mut f = Findings::new(CheckUnit::Rows, total, sample_cap(check));
    let mut offset = 0;
    for (name, split) in [("val", &p.val), ("test", &p.test)] {
        for i in 0..split.len() {
            if let Some(&train_id) = seen.get(&key(split, i)) {
                let id = split.row_ids[i];
                let row = (id % TRANSFER_ROW_ID_BASE) as usize;
                f.fail(offset + i, row, name, || format!("{} has the features of training {}", describe_row(id), describe_row(train_id)));
            }
        }
        offset += split.len();
    }
    f.message = format!("{} of {total} validation/test rows repeat a training row ({} features compared)", f.failing(), cols.len());
    f.finish(check)
}

/// `drift`: per selected feature, PSI or KS distance between the training rows (augmented rows
/// left out) and the test rows; a feature fails when its distance exceeds `max_distance`.
/// Failing counts features; samples list the largest distances first.
pub fn check_drift(p: &Prepared, check: &CheckSpec) -> CheckResult {
    let CheckKind::Drift(drift) = &check.kind else {
        return not_run(check, CheckUnit::Columns, format!("a `{}` check is not a drift check", check.kind.as_str()));
    };
    let cols = match feature_indices(p, check) {
        Ok(c) => c,
        Err(e) => return not_run(check, CheckUnit::Columns, e.to_string()),
    };
    let method = drift.method.unwrap_or_default();
    let limit = drift.max_distance.unwrap_or(match method {
        DriftMethod::Psi => 0.2,
        DriftMethod::Ks => 0.1,
    });
    let bins = drift.bins.unwrap_or(10).max(2);
    let width = p.features();
    let train_rows: Vec<usize> = (0..p.train.len()).filter(|&i| !is_augmented(p.train.row_ids[i])).collect();
    let mut distances: Vec<(usize, f64)> = Vec::with_capacity(cols.len());
    for &j in &cols {
        let a: Vec<f64> = train_rows.iter().map(|&i| p.train.x[i * width + j] as f64).collect();
        let b: Vec<f64> = (0..p.test.len()).map(|i| p.test.x[i * width + j] as f64).collect();
        let d = match method {
            DriftMethod::Psi => psi(&a, &b, bins),
            DriftMethod::Ks => ks(&a, &b),
        };
        distances.push((j, d));
    }
    let mut order: Vec<usize> = (0..distances.len()).collect();
    order.sort_by(|&x, &y| distances[y].1.total_cmp(&distances[x].1).then(x.cmp(&y)));
    let name = match method {
        DriftMethod::Psi => "psi",
        DriftMethod::Ks => "ks",
    };
    let mut f = Findings::new(CheckUnit::Columns, cols.len(), sample_cap(check));
    for &k in &order {
        let (j, d) = distances[k];
        if d > limit {
            f.fail(j, 0, &p.feature_names[j], || format!("{name} {d:.4} > {limit}"));
        }
    }
    let worst = order.first().map(|&k| format!("; largest: {} {name} {:.4}", p.feature_names[distances[k].0], distances[k].1)).unwrap_or_default();
    f.message = format!("{} of {} features drift between train and test ({name} > {limit}){worst}", f.failing(), cols.len());
    f.finish(check)
}

/// Population stability index of `b` against `a`, over up to `bins` quantile bins of `a`.
/// Empty bins get a small floor so the logarithm stays finite.
pub fn psi(a: &[f64], b: &[f64], bins: usize) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let mut sorted = a.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut edges: Vec<f64> = (1..bins).map(|k| sorted[(k * sorted.len() / bins).min(sorted.len() - 1)]).collect();
    edges.dedup();
    let share = |values: &[f64]| -> Vec<f64> {
        let mut counts = vec![0usize; edges.len() + 1];
        for v in values {
            // Bin k holds values in [edges[k-1], edges[k]).
            counts[edges.partition_point(|e| e <= v)] += 1;
        }
        counts.iter().map(|&c| (c as f64 / values.len() as f64).max(1e-4)).collect()
    };
    let (pa, pb) = (share(a), share(b));
    pa.iter().zip(&pb).map(|(x, y)| (y - x) * (y / x).ln()).sum()
}

/// Two-sample Kolmogorov–Smirnov statistic: the largest gap between the empirical CDFs.
pub fn ks(a: &[f64], b: &[f64]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (mut i, mut j, mut d) = (0, 0, 0f64);
    while i < a.len() && j < b.len() {
        let v = if a[i] <= b[j] { a[i] } else { b[j] };
        while i < a.len() && a[i] <= v {
            i += 1;
        }
        while j < b.len() && b[j] <= v {
            j += 1;
        }
        d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    d
}
