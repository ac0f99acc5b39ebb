//! From a checked table to training matrices: features, classes, seeded splits, scaling.

use std::collections::BTreeMap;

use polars::prelude::*;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::checks::{cell_texts, numeric_column};
use crate::{select_columns, DataError};
use distill_spec::{DataSpec, ScaleKind};

/// One split: row ids (0-based data rows of the source file), features (row-major) and classes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Split {
    pub row_ids: Vec<u64>,
    pub x: Vec<f32>,
    pub y: Vec<u32>,
}

impl Split {
    pub fn len(&self) -> usize {
        self.y.len()
    }

    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
}

/// Everything training needs from the data stage.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub feature_names: Vec<String>,
    /// Class names in index order (numeric labels sort numerically, text labels by name).
    pub class_names: Vec<String>,
    pub train: Split,
    pub val: Split,
    pub test: Split,
    /// blake3 of the prepared matrices, labels, ids and class names: the data's identity.
    pub fingerprint: String,
}

impl Prepared {
    pub fn features(&self) -> usize {
        self.feature_names.len()
    }

    pub fn classes(&self) -> usize {
        self.class_names.len()
    }
}

/// Splits (seeded, optionally stratified) and scales the table described by `spec`.
pub fn prepare(df: &DataFrame, spec: &DataSpec, seed: u64) -> Result<Prepared, DataError> {
    let columns: Vec<String> = df.get_column_names().iter().map(|c| c.to_string()).collect();
    if !columns.contains(&spec.label) {
        return Err(DataError::Invalid(format!("data.label: there is no column `{}` (columns: {})", spec.label, columns.join(", "))));
    }
    let include = spec.features.include.clone().unwrap_or_else(|| vec!["*".into()]);
    let mut feature_names = select_columns(&columns, &include, "data.features.include")?;
    let excluded = select_columns(&columns, &spec.features.exclude, "data.features.exclude")?;
    feature_names.retain(|c| c != &spec.label && !excluded.contains(c));
    if feature_names.is_empty() {
        return Err(DataError::Invalid("data.features: no feature columns are left".into()));
    }

    // Classes.
    let label_col = df.column(&spec.label)?.as_materialized_series();
    let texts = cell_texts(label_col)?;
    let numeric_labels = label_col.dtype().is_primitive_numeric();
    let mut names: Vec<String> = Vec::new();
    for (row, t) in texts.iter().enumerate() {
        match t {
            None => return Err(DataError::Invalid(format!("column `{}` row {row}: the label is null", spec.label))),
            Some(t) if !names.contains(t) => names.push(t.clone()),
            _ => {}
        }
    }
    if numeric_labels {
        names.sort_by(|a, b| a.parse::<f64>().unwrap_or(0.0).total_cmp(&b.parse::<f64>().unwrap_or(0.0)));
    } else {
        names.sort();
    }
    if names.len() < 2 {
        return Err(DataError::Invalid(format!("column `{}`: need at least 2 classes, found {}", spec.label, names.len())));
    }
    let index: BTreeMap<&str, u32> = names.iter().enumerate().map(|(i, n)| (n.as_str(), i as u32)).collect();
    let y_all: Vec<u32> = texts.iter().map(|t| t.as_deref().map(|t| index[t]).unwrap_or(0)).collect();

    // Features, row-major.
    let rows = df.height();
    let width = feature_names.len();
    let mut x_all = vec![0f32; rows * width];
    for (j, name) in feature_names.iter().enumerate() {
        let values = numeric_column(df, name, "data.features")?;
        for (row, v) in values.into_iter().enumerate() {
            match v {
                Some(v) => x_all[row * width + j] = v as f32,
                None => {
                    return Err(DataError::Invalid(format!(
                        "column `{name}` row {row}: null feature value (add a `not_null` check to see all of them)"
                    )))
                }
            }
        }
    }

    // Seeded split: per class when stratified, over all rows otherwise.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let groups: Vec<Vec<usize>> = if spec.split.stratify {
        (0..names.len() as u32).map(|c| (0..rows).filter(|&r| y_all[r] == c).collect()).collect()
    } else {
        vec![(0..rows).collect()]
    };
    let (mut train_rows, mut val_rows, mut test_rows) = (Vec::new(), Vec::new(), Vec::new());
    let sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
    let test_counts = allocate(&sizes, (rows as f64 * spec.split.test).round() as usize);
    let left: Vec<usize> = sizes.iter().zip(&test_counts).map(|(s, t)| s - t).collect();
    let val_counts = allocate(&left, ((rows as f64 * spec.split.val).round() as usize).min(left.iter().sum()));
    for ((mut group, n_test), n_val) in groups.into_iter().zip(test_counts).zip(val_counts) {
        group.shuffle(&mut rng);
        test_rows.extend_from_slice(&group[..n_test]);
        val_rows.extend_from_slice(&group[n_test..n_test + n_val]);
        train_rows.extend_from_slice(&group[n_test + n_val..]);
    }
    for r in [&mut train_rows, &mut val_rows, &mut test_rows] {
        r.sort_unstable();
    }
    if train_rows.is_empty() || test_rows.is_empty() {
        return Err(DataError::Invalid(format!(
            "data.split: {rows} rows give {} training and {} test rows; both must be non-empty",
            train_rows.len(),
            test_rows.len()
        )));
    }

    let take = |rows: &[usize]| Split {
        row_ids: rows.iter().map(|&r| r as u64).collect(),
        x: rows.iter().flat_map(|&r| x_all[r * width..(r + 1) * width].iter().copied()).collect(),
        y: rows.iter().map(|&r| y_all[r]).collect(),
    };
    let (mut train, mut val, mut test) = (take(&train_rows), take(&val_rows), take(&test_rows));
    if let Some((offset, factor)) = fit_scale(spec.scale.kind, &train.x, width) {
        for split in [&mut train, &mut val, &mut test] {
            for (i, v) in split.x.iter_mut().enumerate() {
                *v = (*v - offset[i % width]) * factor[i % width];
            }
        }
    }

    let mut hasher = blake3::Hasher::new();
    hasher.update(b"distill-data/v1");
    for name in names.iter().chain(&feature_names) {
        hasher.update(name.as_bytes());
        hasher.update(&[0]);
    }
    for split in [&train, &val, &test] {
        hasher.update(&(split.len() as u64).to_le_bytes());
        for id in &split.row_ids {
            hasher.update(&id.to_le_bytes());
        }
        for v in &split.x {
            hasher.update(&v.to_le_bytes());
        }
        for c in &split.y {
            hasher.update(&c.to_le_bytes());
        }
    }
    let fingerprint = hasher.finalize().to_hex().to_string();
    tracing::info!(train = train.len(), val = val.len(), test = test.len(), features = width, classes = names.len(), "prepared data");
    Ok(Prepared { feature_names, class_names: names, train, val, test, fingerprint })
}

/// Splits `total` across groups in proportion to their sizes (largest remainder), so the split
/// sizes match the requested fractions overall, not just per class.
fn allocate(sizes: &[usize], total: usize) -> Vec<usize> {
    let all: usize = sizes.iter().sum();
    if all == 0 {
        return vec![0; sizes.len()];
    }
    let exact: Vec<f64> = sizes.iter().map(|&s| s as f64 * total as f64 / all as f64).collect();
    let mut counts: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())).then(a.cmp(&b)));
    let mut missing = total.saturating_sub(counts.iter().sum());
    for &g in order.iter().cycle().take(sizes.len() * 2) {
        if missing == 0 {
            break;
        }
        if counts[g] < sizes[g] {
            counts[g] += 1;
            missing -= 1;
        }
    }
    counts
}

/// Per-feature (offset, factor) fitted on the training rows; `None` for no scaling.
/// A constant feature keeps factor 1 so it maps to 0 instead of dividing by zero.
fn fit_scale(kind: ScaleKind, x: &[f32], width: usize) -> Option<(Vec<f32>, Vec<f32>)> {
    let n = x.len() / width;
    let column = |j: usize| (0..n).map(move |i| x[i * width + j] as f64);
    match kind {
        ScaleKind::None => None,
        ScaleKind::Minmax => Some(
            (0..width)
                .map(|j| {
                    let (lo, hi) = column(j).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
                    let range = hi - lo;
                    (lo as f32, if range > 0.0 { (1.0 / range) as f32 } else { 1.0 })
                })
                .unzip(),
        ),
        ScaleKind::Standard => Some(
            (0..width)
                .map(|j| {
                    let mean = column(j).sum::<f64>() / n as f64;
                    let var = column(j).map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
                    (mean as f32, if var > 0.0 { (1.0 / var.sqrt()) as f32 } else { 1.0 })
                })
                .unzip(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(stratify: bool) -> DataSpec {
        let text = format!(
            "source: {{path: x.csv}}\nlabel: y\nsplit: {{test: 0.25, val: 0.25, stratify: {stratify}}}\nscale: {{kind: minmax}}"
        );
        serde_yaml::from_str(&text).unwrap()
    }

    fn frame() -> DataFrame {
        let a: Vec<f64> = (0..40).map(|i| i as f64).collect();
        let y: Vec<&str> = (0..40).map(|i| if i % 4 == 0 { "rare" } else { "common" }).collect();
        df!("a" => a, "y" => y).unwrap()
    }

    #[test]
    fn stratified_split_is_seeded_and_keeps_proportions() {
        let p = prepare(&frame(), &spec(true), 3).unwrap();
        assert_eq!(p.class_names, vec!["common", "rare"]);
        assert_eq!((p.train.len(), p.val.len(), p.test.len()), (20, 10, 10));
        let rare_in_test = p.test.y.iter().filter(|&&c| c == 1).count();
        assert!((2..=3).contains(&rare_in_test), "{rare_in_test}");
        let again = prepare(&frame(), &spec(true), 3).unwrap();
        assert_eq!(p.test.row_ids, again.test.row_ids);
        assert_eq!(p.fingerprint, again.fingerprint);
        let other = prepare(&frame(), &spec(true), 4).unwrap();
        assert_ne!(p.test.row_ids, other.test.row_ids);
        assert_ne!(p.fingerprint, other.fingerprint);
    }

    #[test]
    fn minmax_uses_training_statistics() {
        let p = prepare(&frame(), &spec(false), 1).unwrap();
        let lo = p.train.x.iter().cloned().fold(f32::INFINITY, f32::min);
        let hi = p.train.x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        assert_eq!((lo, hi), (0.0, 1.0));
    }
}
