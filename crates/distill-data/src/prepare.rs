//! From a checked table to training matrices: features, classes, seeded splits, scaling.

use std::collections::BTreeMap;

use polars::prelude::*;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::augment::{augment, is_augmented};
use crate::checks::{cell_texts, numeric_column};
use crate::{select_columns, DataError};
use distill_spec::memory::Shape;
use distill_spec::{DataFormat, DataSpec, ImageSpec, ScaleKind, Warning, DEFAULT_TEST_FRACTION};

/// Whether the student may see a training row's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelState {
    /// Labelled for everyone.
    Labelled,
    /// The label exists but the transfer set hides it from the student (and, in the strict
    /// setting, from the teacher).
    Hidden,
    /// No label at all: a null label in the source or a row of the transfer file.
    Unlabelled,
}

/// Row ids of a separate transfer file start here, so they never collide with source rows.
pub const TRANSFER_ROW_ID_BASE: u64 = 1 << 32;
/// Row ids of a separate test file start here.
pub const TEST_ROW_ID_BASE: u64 = 2 << 32;

/// The tables a recipe reads: the source, and optionally a test file and a transfer file.
pub struct Tables {
    pub source: DataFrame,
    pub test: Option<DataFrame>,
    pub transfer: Option<DataFrame>,
}

/// One split: row ids (0-based data rows of the source file), features (row-major), classes and
/// label states. `y` holds 0 for rows without a label; look at `state` before using it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Split {
    pub row_ids: Vec<u64>,
    pub x: Vec<f32>,
    pub y: Vec<u32>,
    pub state: Vec<LabelState>,
}

impl Split {
    pub fn len(&self) -> usize {
        self.y.len()
    }

    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// The rows whose state passes `keep`, as a new split.
    pub fn subset(&self, keep: impl Fn(LabelState) -> bool) -> Split {
        let width = if self.is_empty() { 0 } else { self.x.len() / self.len() };
        let rows: Vec<usize> = (0..self.len()).filter(|&i| keep(self.state[i])).collect();
        Split {
            row_ids: rows.iter().map(|&i| self.row_ids[i]).collect(),
            x: rows.iter().flat_map(|&i| self.x[i * width..(i + 1) * width].iter().copied()).collect(),
            y: rows.iter().map(|&i| self.y[i]).collect(),
            state: rows.iter().map(|&i| self.state[i]).collect(),
        }
    }

    /// [`Split::subset`] without the copy when every row passes (a fully labelled training
    /// split is the teacher's and the baseline's rows as it is).
    pub fn subset_or_all(&self, keep: impl Fn(LabelState) -> bool) -> std::borrow::Cow<'_, Split> {
        if self.state.iter().all(|&s| keep(s)) {
            std::borrow::Cow::Borrowed(self)
        } else {
            std::borrow::Cow::Owned(self.subset(keep))
        }
    }

    pub fn count(&self, state: LabelState) -> usize {
        self.state.iter().filter(|&&s| s == state).count()
    }

    /// The rows that are data, without augmented rows.
    pub fn original(&self) -> Split {
        let width = if self.is_empty() { 0 } else { self.x.len() / self.len() };
        let rows: Vec<usize> = (0..self.len()).filter(|&i| !is_augmented(self.row_ids[i])).collect();
        Split {
            row_ids: rows.iter().map(|&i| self.row_ids[i]).collect(),
            x: rows.iter().flat_map(|&i| self.x[i * width..(i + 1) * width].iter().copied()).collect(),
            y: rows.iter().map(|&i| self.y[i]).collect(),
            state: rows.iter().map(|&i| self.state[i]).collect(),
        }
    }

    /// How many rows were made by `data.augment`.
    pub fn augmented(&self) -> usize {
        self.row_ids.iter().filter(|&&id| is_augmented(id)).count()
    }

    fn extend(&mut self, other: Split) {
        self.row_ids.extend(other.row_ids);
        self.x.extend(other.x);
        self.y.extend(other.y);
        self.state.extend(other.state);
    }
}

/// Everything training needs from the data stage.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub feature_names: Vec<String>,
    /// Class names in index order (numeric labels sort numerically, text labels by name).
    pub class_names: Vec<String>,
    /// Training rows, including the transfer set (rows whose state is not `Labelled`) and, last,
    /// the rows `data.augment` made (ids from `AUGMENT_ROW_ID_BASE`).
    pub train: Split,
    pub val: Split,
    pub test: Split,
    /// blake3 of the prepared matrices, labels, states, ids and class names: the data's identity.
    pub fingerprint: String,
    /// The image shape of the features: `data.image`, or inferred for IDX pixels (`px0..`,
    /// square images); `None` otherwise.
    pub image: Option<ImageSpec>,
    /// What the data does that the recipe may not expect (renamed duplicate columns, a label
    /// read as many classes, features that carry nothing); each was also logged.
    pub warnings: Vec<Warning>,
    /// The feature scaling fitted on the training split, `(x - offset) * factor` per feature;
    /// `None` for `scale: none`. An exported model carries it in its graph.
    pub scaling: Option<Scaling>,
    /// The test split's features before scaling: what an exported model (which scales its
    /// inputs itself) reads when it is evaluated.
    pub test_raw_x: Vec<f32>,
}

/// Per-feature scaling: `(x - offset) * factor`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scaling {
    pub offset: Vec<f32>,
    pub factor: Vec<f32>,
}

impl Prepared {
    pub fn features(&self) -> usize {
        self.feature_names.len()
    }

    pub fn classes(&self) -> usize {
        self.class_names.len()
    }
}

/// Dense f32 features of `names`, row-major; a null or non-numeric value is an error naming it.
pub fn feature_matrix(df: &DataFrame, names: &[String], what: &str) -> Result<Vec<f32>, DataError> {
    feature_matrix_at(df, names, what, 0)
}

/// [`feature_matrix`] of rows that start at row `first` of their file (for the errors' row numbers).
pub(crate) fn feature_matrix_at(df: &DataFrame, names: &[String], what: &str, first: usize) -> Result<Vec<f32>, DataError> {
    let all: Vec<usize> = (0..df.height()).collect();
    let [x, _, _] = split_matrices(df, names, what, [&all, &[], &[]], first)?;
    Ok(x)
}

/// The feature matrices of three row sets (row-major, `names` wide) straight from the table's
/// columns: no matrix of every source row is made first, so the splits are the data's one copy
/// beside the table. Float32 columns are read as they are; other numeric ones through f64, one
/// column at a time. Every row is checked for nulls, in column order, as before the split; errors
/// name row `first + row`.
fn split_matrices(df: &DataFrame, names: &[String], what: &str, rows: [&[usize]; 3], first: usize) -> Result<[Vec<f32>; 3], DataError> {
    let width = names.len();
    let matrix = |n: usize| distill_spec::memory::try_filled(n.saturating_mul(width), 0f32, &format!("{what}: the feature matrix")).map_err(DataError::Invalid);
    let mut out = [matrix(rows[0].len())?, matrix(rows[1].len())?, matrix(rows[2].len())?];
    // Where each table row goes: (split, position); rows in no split are only checked.
    let mut dest = vec![(u8::MAX, 0usize); df.height()];
    for (s, list) in rows.iter().enumerate() {
        for (i, &r) in list.iter().enumerate() {
            dest[r] = (s as u8, i);
        }
    }
    for (j, name) in names.iter().enumerate() {
        let Ok(column) = df.column(name) else { return Err(DataError::Invalid(format!("{what}: there is no feature column `{name}`"))) };
        let mut put = |row: usize, v: Option<f32>| match v {
            Some(v) => {
                if let Some(m) = out.get_mut(dest[row].0 as usize) {
                    m[dest[row].1 * width + j] = v;
                }
                Ok(())
            }
            None => {
                Err(DataError::Invalid(format!("{what}: column `{name}` row {}: null feature value (add a `not_null` check to see all of them)", first + row)))
            }
        };
        let series = column.as_materialized_series();
        if series.dtype() == &DataType::Float32 {
            series.f32()?.iter().enumerate().try_for_each(|(row, v)| put(row, v))?;
        } else {
            numeric_column(df, name, what)?.into_iter().enumerate().try_for_each(|(row, v)| put(row, v.map(|v| v as f32)))?;
        }
    }
    Ok(out)
}

/// The source's splits before the transfer file joins them: features, classes, the seeded split
/// and label states, unscaled; a test file replaces the test split.
pub(crate) struct Sourced {
    pub feature_names: Vec<String>,
    pub classes: Classes,
    pub warnings: Vec<Warning>,
    pub splits: [Split; 3],
}

pub(crate) fn source_splits(tables: &Tables, spec: &DataSpec, seed: u64) -> Result<Sourced, DataError> {
    let df = &tables.source;
    let file = spec.source.path.display().to_string();
    let feature_names = feature_columns(df, spec, &file)?;
    let classes = Classes::of(df, spec)?;
    let mut warnings = table_warnings(tables);
    warnings.extend(classes.warning.clone());

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let [mut train_rows, val_rows, test_rows] = split_rows(tables, spec, &classes, &mut rng)?;
    let state_of = label_states(spec, &mut train_rows, &classes, &mut rng)?;
    let what = format!("data.source ({file})");
    let [train_x, val_x, test_x] = split_matrices(df, &feature_names, &what, [&train_rows, &val_rows, &test_rows], 0)?;
    let take = |rows: &[usize], x: Vec<f32>| Split {
        row_ids: rows.iter().map(|&r| r as u64).collect(),
        x,
        y: rows.iter().map(|&r| classes.y[r].unwrap_or(0)).collect(),
        state: rows.iter().map(|&r| state_of.get(&r).copied().unwrap_or(LabelState::Labelled)).collect(),
    };
    let (train, val, mut test) = (take(&train_rows, train_x), take(&val_rows, val_x), take(&test_rows, test_x));
    if let Some(test_df) = &tables.test {
        test = test_file_split(test_df, spec, &feature_names, &classes)?;
    }
    Ok(Sourced { feature_names, classes, warnings, splits: [train, val, test] })
}

/// Splits (seeded, optionally stratified) and scales the tables described by `spec`; rows of
/// the transfer file join the training split without labels; a test file replaces the test split.
/// Warns about features that cannot help (constant, all NaN) and refuses values that are not
/// finite, naming the column and row, so no model trains on them.
pub fn prepare(tables: &Tables, spec: &DataSpec, seed: u64) -> Result<Prepared, DataError> {
    let file = spec.source.path.display().to_string();
    let Sourced { feature_names, classes, mut warnings, splits: [mut train, val, test] } = source_splits(tables, spec, seed)?;
    let width = feature_names.len();
    if let Some(extra) = &tables.transfer {
        add_transfer_rows(&mut train, extra, spec, &feature_names)?;
    }
    // Augmented rows come after the split (training rows only) and before scaling, on unscaled
    // features, so image shifts and flips move raw pixels.
    let image = image_of(spec, &feature_names);
    let original_x = train.x.len();
    warnings.extend(crate::feature_health::useless_features(&train.x[..original_x], &feature_names));
    crate::feature_health::refuse_non_finite([&train, &val, &test], &feature_names, &file, None)?;
    if !spec.augment.is_empty() {
        let extra = augment(&train, width, &spec.augment, image, seed)?;
        train.extend(extra);
    }
    let test_raw_x = test.x.clone();
    let mut splits = [train, val, test];
    let scaling = fit_scale(spec.scale.kind, &splits[0].x[..original_x], width);
    splits.iter_mut().for_each(|s| apply_scale(scaling.as_ref(), &mut s.x, width));
    crate::feature_health::refuse_non_finite([&splits[0], &splits[1], &splits[2]], &feature_names, &file, Some(spec.scale.kind))?;
    let [train, val, test] = splits;
    let fingerprint = fingerprint(&classes.names, &feature_names, [&train, &val, &test]);
    log_prepared(&train, val.len(), test.len(), width, classes.names.len());
    warnings.iter().for_each(|w| tracing::warn!("{w}"));
    Ok(Prepared { feature_names, class_names: classes.names, train, val, test, fingerprint, image, warnings, scaling, test_raw_x })
}

pub(crate) fn log_prepared(train: &Split, val: usize, test: usize, features: usize, classes: usize) {
    tracing::info!(
        train = train.len(),
        augmented = train.augmented(),
        labelled = train.count(LabelState::Labelled),
        hidden = train.count(LabelState::Hidden),
        unlabelled = train.count(LabelState::Unlabelled),
        val,
        test,
        features,
        classes,
        "prepared data"
    );
}

/// The data's size for the memory estimates, before anything is prepared: the training rows
/// before augmentation (the source's and the transfer file's), the feature columns, the classes.
pub fn shape(tables: &Tables, spec: &DataSpec) -> Result<Shape, DataError> {
    let features = feature_columns(&tables.source, spec, &spec.source.path.display().to_string())?.len();
    let classes = tables.source.column(&spec.label)?.as_materialized_series().drop_nulls().n_unique()?;
    let rows = tables.source.height() + tables.transfer.as_ref().map_or(0, DataFrame::height);
    Ok(Shape { rows: rows as u64, features: features as u64, classes: classes as u64 })
}

/// Columns polars renamed because the file's header repeats a name (`x`, `x_duplicated_0`):
/// the recipe's `x` is then the first of them only.
fn table_warnings(tables: &Tables) -> Vec<Warning> {
    let named = [("data.source", Some(&tables.source)), ("data.test_source", tables.test.as_ref()), ("data.transfer.source", tables.transfer.as_ref())];
    let mut out = Vec::new();
    for (key, df) in named {
        let Some(df) = df else { continue };
        let names: Vec<&str> = df.get_column_names().iter().map(|c| c.as_str()).collect();
        let renamed: Vec<String> = names
            .iter()
            .filter_map(|n| {
                let (base, i) = n.rsplit_once("_duplicated_")?;
                (i.parse::<usize>().is_ok() && names.contains(&base)).then(|| format!("`{n}` (a second `{base}`)"))
            })
            .collect();
        if !renamed.is_empty() {
            let message = format!(
                "the header repeats column names, so they were renamed: {}; `data.label`, `features` and checks that name the column mean its first occurrence (rename the columns in the file or set `column_names`)",
                renamed.join(", ")
            );
            out.push(Warning::new(key, message));
        }
    }
    out
}

/// The feature columns: `features.include` (default all) minus `features.exclude` and the label.
fn feature_columns(df: &DataFrame, spec: &DataSpec, file: &str) -> Result<Vec<String>, DataError> {
    let columns: Vec<String> = df.get_column_names().iter().map(|c| c.to_string()).collect();
    if !columns.contains(&spec.label) {
        return Err(DataError::Invalid(format!(
            "data.label: there is no column `{}` in {file} ({})",
            spec.label,
            crate::suggest_column(&columns, &spec.label)
        )));
    }
    let include = spec.features.include.clone().unwrap_or_else(|| vec!["*".into()]);
    let mut feature_names = select_columns(&columns, &include, &format!("data.features.include ({file})"))?;
    let excluded = select_columns(&columns, &spec.features.exclude, &format!("data.features.exclude ({file})"))?;
    feature_names.retain(|c| c != &spec.label && !excluded.contains(c));
    if feature_names.is_empty() {
        return Err(DataError::Invalid("data.features: no feature columns are left".into()));
    }
    Ok(feature_names)
}

/// The classes of the label column and each source row's class (`None`: no label).
pub(crate) struct Classes {
    /// Class names in index order (numeric labels sort numerically, text labels by name).
    pub names: Vec<String>,
    index: BTreeMap<String, u32>,
    y: Vec<Option<u32>>,
    /// A float label with fractional values: every distinct value became a class.
    warning: Option<Warning>,
}

impl Classes {
    fn of(df: &DataFrame, spec: &DataSpec) -> Result<Self, DataError> {
        let label_col = df.column(&spec.label)?.as_materialized_series();
        let texts = cell_texts(label_col)?;
        let mut names: Vec<String> = Vec::new();
        for t in texts.iter().flatten() {
            if !names.contains(t) {
                names.push(t.clone());
            }
        }
        if label_col.dtype().is_primitive_numeric() {
            names.sort_by(|a, b| a.parse::<f64>().unwrap_or(0.0).total_cmp(&b.parse::<f64>().unwrap_or(0.0)));
        } else {
            names.sort();
        }
        if names.len() < 2 {
            return Err(DataError::Invalid(format!("column `{}`: need at least 2 classes, found {}", spec.label, names.len())));
        }
        let index: BTreeMap<String, u32> = names.iter().enumerate().map(|(i, n)| (n.clone(), i as u32)).collect();
        let y: Vec<Option<u32>> = texts.iter().map(|t| t.as_deref().map(|t| index[t])).collect();
        // Unlabelled rows are a transfer set only when the recipe says so; otherwise a null label
        // is a hole in the data.
        if spec.transfer.is_none() {
            if let Some(row) = y.iter().position(Option::is_none) {
                let missing = y.iter().filter(|y| y.is_none()).count();
                return Err(DataError::Load {
                    path: spec.source.path.display().to_string(),
                    message: format!(
                        "column `{}` row {row}: the label is null ({missing} rows without a label; declare `data.transfer` to use them as a transfer set)",
                        spec.label
                    ),
                });
            }
        }
        let fractional = label_col.dtype().is_float() && texts.iter().flatten().any(|t| t.contains(['.', 'e', 'N', 'i']));
        let warning = fractional.then(|| {
            let shown: Vec<&str> = names.iter().take(4).map(String::as_str).collect();
            Warning::new(
                "data.label",
                format!(
                    "column `{}` holds fractional numbers, so each of its {} distinct values is a class of its own ({}, ...); distill learns classes, not a regression target: round or bin the labels in the file",
                    spec.label,
                    names.len(),
                    shown.join(", ")
                ),
            )
        });
        Ok(Self { names, index, y, warning })
    }
}

/// The seeded split of the labelled source rows into [train, val, test] row numbers: per class
/// when stratified, largest-remainder allocation so the fractions hold overall.
fn split_rows(tables: &Tables, spec: &DataSpec, classes: &Classes, rng: &mut ChaCha8Rng) -> Result<[Vec<usize>; 3], DataError> {
    let y = &classes.y;
    let labelled_rows: Vec<usize> = (0..y.len()).filter(|&r| y[r].is_some()).collect();
    let groups = group_rows(&labelled_rows, |r| y[r].unwrap_or(0), classes.names.len(), spec.split.stratify);
    let n_labelled = labelled_rows.len();
    let (mut train_rows, mut val_rows, mut test_rows) = (Vec::new(), Vec::new(), Vec::new());
    let sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
    let test_fraction = match (&tables.test, spec.split.test) {
        (Some(_), _) => 0.0,
        (None, fraction) => fraction.unwrap_or(DEFAULT_TEST_FRACTION),
    };
    let test_counts = allocate(&sizes, (n_labelled as f64 * test_fraction).round() as usize);
    let left: Vec<usize> = sizes.iter().zip(&test_counts).map(|(s, t)| s - t).collect();
    let val_counts = allocate(&left, ((n_labelled as f64 * spec.split.val).round() as usize).min(left.iter().sum()));
    for ((mut group, n_test), n_val) in groups.into_iter().zip(test_counts).zip(val_counts) {
        group.shuffle(rng);
        test_rows.extend_from_slice(&group[..n_test]);
        val_rows.extend_from_slice(&group[n_test..n_test + n_val]);
        train_rows.extend_from_slice(&group[n_test + n_val..]);
    }
    for r in [&mut train_rows, &mut val_rows, &mut test_rows] {
        r.sort_unstable();
    }
    if train_rows.is_empty() || (test_rows.is_empty() && tables.test.is_none()) {
        return Err(DataError::Invalid(format!(
            "data.split: {n_labelled} labelled rows give {} training and {} test rows; both must be non-empty",
            train_rows.len(),
            test_rows.len()
        )));
    }
    Ok([train_rows, val_rows, test_rows])
}

/// The transfer set: hidden labels among the training rows (seeded), then the source rows
/// without any label, which join `train_rows`.
fn label_states(spec: &DataSpec, train_rows: &mut Vec<usize>, classes: &Classes, rng: &mut ChaCha8Rng) -> Result<BTreeMap<usize, LabelState>, DataError> {
    let y = &classes.y;
    let mut state_of: BTreeMap<usize, LabelState> = train_rows.iter().map(|&r| (r, LabelState::Labelled)).collect();
    if let Some((labelled, stratify)) = spec.transfer.as_ref().and_then(|t| t.labelled.map(|l| (l, t.stratify))) {
        let n_keep = if labelled < 1.0 { (train_rows.len() as f64 * labelled).round() as usize } else { labelled as usize };
        if n_keep > train_rows.len() {
            return Err(DataError::Invalid(format!("data.transfer.labelled: asks for {n_keep} labelled rows but the training split has {}", train_rows.len())));
        }
        let groups = group_rows(train_rows, |r| y[r].unwrap_or(0), classes.names.len(), stratify);
        let sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
        for (mut group, n) in groups.into_iter().zip(allocate(&sizes, n_keep)) {
            group.shuffle(rng);
            for r in &group[n..] {
                state_of.insert(*r, LabelState::Hidden);
            }
        }
    }
    for r in (0..y.len()).filter(|&r| y[r].is_none()) {
        train_rows.push(r);
        state_of.insert(r, LabelState::Unlabelled);
    }
    Ok(state_of)
}

/// The test split from `data.test_source`: every row, labelled with the training classes.
fn test_file_split(test_df: &DataFrame, spec: &DataSpec, feature_names: &[String], classes: &Classes) -> Result<Split, DataError> {
    let mut test = Split::default();
    let what = &format!("data.test_source ({})", spec.test_source.as_ref().map(|t| t.path.display().to_string()).unwrap_or_default());
    test.x = feature_matrix(test_df, feature_names, what)?;
    let labels = test_df.column(&spec.label).map_err(|_| DataError::Invalid(format!("{what}: there is no label column `{}`", spec.label)))?;
    for (row, t) in cell_texts(labels.as_materialized_series())?.into_iter().enumerate() {
        let t = t.ok_or_else(|| DataError::Invalid(format!("{what}: column `{}` row {row}: the label is null", spec.label)))?;
        let class = classes
            .index
            .get(t.as_str())
            .ok_or_else(|| DataError::Invalid(format!("{what}: column `{}` row {row}: class `{t}` does not occur in the training data", spec.label)))?;
        test.y.push(*class);
        test.row_ids.push(TEST_ROW_ID_BASE + row as u64);
        test.state.push(LabelState::Labelled);
    }
    if test.is_empty() {
        return Err(DataError::Invalid(format!("{what}: the test file has no rows")));
    }
    Ok(test)
}

/// The rows of `data.transfer.source` join the training split, unlabelled.
fn add_transfer_rows(train: &mut Split, extra: &DataFrame, spec: &DataSpec, feature_names: &[String]) -> Result<(), DataError> {
    let path = spec.transfer.as_ref().and_then(|t| t.source.as_ref()).map(|s| s.path.display().to_string()).unwrap_or_default();
    let x = feature_matrix(extra, feature_names, &format!("data.transfer.source ({path})"))?;
    let n = extra.height();
    train.row_ids.extend((0..n as u64).map(|i| TRANSFER_ROW_ID_BASE + i));
    train.x.extend(x);
    train.y.extend(std::iter::repeat_n(0, n));
    train.state.extend(std::iter::repeat_n(LabelState::Unlabelled, n));
    Ok(())
}

/// `(x - offset) * factor` per feature with statistics fitted on the original training inputs
/// (transfer rows included, augmented rows not, so augmentation never shifts how the test split
/// is scaled; never validation or test rows); nothing without scaling.
pub(crate) fn apply_scale(scaling: Option<&Scaling>, x: &mut [f32], width: usize) {
    let Some(Scaling { offset, factor }) = scaling else { return };
    for (i, v) in x.iter_mut().enumerate() {
        *v = (*v - offset[i % width]) * factor[i % width];
    }
}

/// blake3 of the prepared matrices, labels, states, ids and class names: the data's identity.
fn fingerprint(class_names: &[String], feature_names: &[String], splits: [&Split; 3]) -> String {
    let mut hash = DataHash::new(class_names, feature_names);
    for split in splits {
        hash.split(split.len(), split.row_ids.iter().copied());
        hash.values(&split.x);
        hash.labels(&split.y, &split.state);
    }
    hash.finish()
}

/// The data fingerprint fed a split at a time (a streamed split in pieces): the same bytes in
/// the same order, so the same hash.
pub(crate) struct DataHash(blake3::Hasher);

impl DataHash {
    pub(crate) fn new(class_names: &[String], feature_names: &[String]) -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"distill-data/v2");
        for name in class_names.iter().chain(feature_names) {
            hasher.update(name.as_bytes());
            hasher.update(&[0]);
        }
        Self(hasher)
    }

    /// A split's row count and its row ids.
    pub(crate) fn split(&mut self, len: usize, ids: impl Iterator<Item = u64>) {
        self.0.update(&(len as u64).to_le_bytes());
        let mut buf = Vec::with_capacity(8 * HASH_PIECE);
        for id in ids {
            buf.extend_from_slice(&id.to_le_bytes());
            if buf.len() >= 8 * HASH_PIECE {
                self.0.update(&buf);
                buf.clear();
            }
        }
        self.0.update(&buf);
    }

    /// Features (after the split's row ids; a split's values may come in pieces).
    pub(crate) fn values(&mut self, x: &[f32]) {
        for piece in x.chunks(HASH_PIECE) {
            let bytes: Vec<u8> = piece.iter().flat_map(|v| v.to_le_bytes()).collect();
            self.0.update(&bytes);
        }
    }

    /// Classes and label states (after the split's values; may come in pieces).
    pub(crate) fn labels(&mut self, y: &[u32], state: &[LabelState]) {
        for (ys, ss) in y.chunks(HASH_PIECE).zip(state.chunks(HASH_PIECE)) {
            let bytes: Vec<u8> = ys.iter().zip(ss).flat_map(|(c, s)| c.to_le_bytes().into_iter().chain([*s as u8])).collect();
            self.0.update(&bytes);
        }
    }

    pub(crate) fn finish(self) -> String {
        self.0.finalize().to_hex().to_string()
    }
}

/// Values hashed per `update` (bounded buffers for any split size).
const HASH_PIECE: usize = 1 << 16;

pub(crate) fn image_of(spec: &DataSpec, features: &[String]) -> Option<ImageSpec> {
    spec.image.or_else(|| infer_image(spec, features))
}

/// The image shape of IDX pixels: features exactly `px0..px{n-1}` with n a square.
fn infer_image(spec: &DataSpec, features: &[String]) -> Option<ImageSpec> {
    let idx = spec.source.format == Some(DataFormat::Idx) || spec.source.labels.is_some();
    let pixels = features.iter().enumerate().all(|(j, n)| n.strip_prefix("px").and_then(|d| d.parse::<usize>().ok()) == Some(j));
    let side = (features.len() as f64).sqrt().round() as usize;
    (idx && pixels && side * side == features.len() && side > 0).then_some(ImageSpec { height: side, width: side, channels: 1 })
}

/// Rows grouped by class when stratifying, else one group.
fn group_rows(rows: &[usize], class: impl Fn(usize) -> u32, classes: usize, stratify: bool) -> Vec<Vec<usize>> {
    if stratify {
        (0..classes as u32).map(|c| rows.iter().copied().filter(|&r| class(r) == c).collect()).collect()
    } else {
        vec![rows.to_vec()]
    }
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
fn fit_scale(kind: ScaleKind, x: &[f32], width: usize) -> Option<Scaling> {
    let mut fit = ScaleFit::new(kind, width);
    fit.add(x);
    if fit.second_pass() {
        fit.add_second(x);
    }
    fit.finish()
}

/// The scaling statistics accumulated over the training rows in row order, in one pass (two for
/// `standard`: the mean, then the variance about it), so rows read a chunk at a time give the
/// very statistics (bit for bit) of the rows in one matrix.
pub(crate) struct ScaleFit {
    kind: ScaleKind,
    width: usize,
    rows: usize,
    lo: Vec<f64>,
    hi: Vec<f64>,
    global: (f32, f32),
    sum: Vec<f64>,
    mean: Option<Vec<f64>>,
    squares: Vec<f64>,
}

impl ScaleFit {
    pub(crate) fn new(kind: ScaleKind, width: usize) -> Self {
        // -0.0 as `Iterator::sum` starts, so an all-(-0.0) column sums as it always did.
        let sums = vec![-0.0; width];
        Self {
            kind,
            width,
            rows: 0,
            lo: vec![f64::INFINITY; width],
            hi: vec![f64::NEG_INFINITY; width],
            global: (f32::INFINITY, f32::NEG_INFINITY),
            sum: sums.clone(),
            mean: None,
            squares: sums,
        }
    }

    /// First pass: rows of `x` (row-major, whole rows).
    pub(crate) fn add(&mut self, x: &[f32]) {
        self.rows += x.len() / self.width;
        match self.kind {
            ScaleKind::None => {}
            ScaleKind::MinmaxGlobal => self.global = x.iter().fold(self.global, |(lo, hi), &v| (lo.min(v), hi.max(v))),
            ScaleKind::Minmax | ScaleKind::Standard => {
                for row in x.chunks(self.width) {
                    for (j, &v) in row.iter().enumerate() {
                        let v = v as f64;
                        (self.lo[j], self.hi[j]) = (self.lo[j].min(v), self.hi[j].max(v));
                        self.sum[j] += v;
                    }
                }
            }
        }
    }

    /// Whether the rows must be given again through [`ScaleFit::add_second`].
    pub(crate) fn second_pass(&self) -> bool {
        self.kind == ScaleKind::Standard
    }

    /// Second pass (`standard`): the same rows in the same order.
    pub(crate) fn add_second(&mut self, x: &[f32]) {
        let n = self.rows as f64;
        let mean = self.mean.get_or_insert_with(|| self.sum.iter().map(|s| s / n).collect());
        for row in x.chunks(self.width) {
            for (j, &v) in row.iter().enumerate() {
                let d = v as f64 - mean[j];
                self.squares[j] += d * d;
            }
        }
    }

    pub(crate) fn finish(self) -> Option<Scaling> {
        self.fitted().map(|(offset, factor)| Scaling { offset, factor })
    }

    fn fitted(self) -> Option<(Vec<f32>, Vec<f32>)> {
        let n = self.rows as f64;
        match self.kind {
            ScaleKind::None => None,
            ScaleKind::Minmax => Some(
                self.lo
                    .iter()
                    .zip(&self.hi)
                    .map(|(&lo, &hi)| {
                        let range = hi - lo;
                        (lo as f32, if range > 0.0 { (1.0 / range) as f32 } else { 1.0 })
                    })
                    .unzip(),
            ),
            ScaleKind::MinmaxGlobal => {
                let (lo, hi) = self.global;
                let factor = if hi > lo { 1.0 / (hi - lo) } else { 1.0 };
                Some((vec![if lo.is_finite() { lo } else { 0.0 }; self.width], vec![factor; self.width]))
            }
            ScaleKind::Standard => {
                let mean = self.mean.unwrap_or_else(|| self.sum.iter().map(|s| s / n).collect());
                Some(
                    mean.iter()
                        .zip(&self.squares)
                        .map(|(&m, &sq)| {
                            let var = sq / n;
                            (m as f32, if var > 0.0 { (1.0 / var.sqrt()) as f32 } else { 1.0 })
                        })
                        .unzip(),
                )
            }
        }
    }
}

#[cfg(test)]
fn tables(source: DataFrame, transfer: Option<DataFrame>) -> Tables {
    Tables { source, test: None, transfer }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(stratify: bool) -> DataSpec {
        let text = format!("source: {{path: x.csv}}\nlabel: y\nsplit: {{test: 0.25, val: 0.25, stratify: {stratify}}}\nscale: {{kind: minmax}}");
        serde_yaml::from_str(&text).unwrap()
    }

    fn frame() -> DataFrame {
        let a: Vec<f64> = (0..40).map(|i| i as f64).collect();
        let y: Vec<&str> = (0..40).map(|i| if i % 4 == 0 { "rare" } else { "common" }).collect();
        df!("a" => a, "y" => y).unwrap()
    }

    #[test]
    fn stratified_split_is_seeded_and_keeps_proportions() {
        let p = prepare(&tables(frame(), None), &spec(true), 3).unwrap();
        assert_eq!(p.class_names, vec!["common", "rare"]);
        assert_eq!((p.train.len(), p.val.len(), p.test.len()), (20, 10, 10));
        let rare_in_test = p.test.y.iter().filter(|&&c| c == 1).count();
        assert!((2..=3).contains(&rare_in_test), "{rare_in_test}");
        let again = prepare(&tables(frame(), None), &spec(true), 3).unwrap();
        assert_eq!(p.test.row_ids, again.test.row_ids);
        assert_eq!(p.fingerprint, again.fingerprint);
        let other = prepare(&tables(frame(), None), &spec(true), 4).unwrap();
        assert_ne!(p.test.row_ids, other.test.row_ids);
        assert_ne!(p.fingerprint, other.fingerprint);
    }

    #[test]
    fn values_that_are_not_finite_never_reach_a_model() {
        let mut a: Vec<f64> = (0..40).map(|i| i as f64).collect();
        a[13] = f64::NAN;
        let y: Vec<&str> = (0..40).map(|i| if i % 2 == 0 { "p" } else { "q" }).collect();
        let err = prepare(&tables(df!("a" => a, "y" => y.clone()).unwrap(), None), &spec(false), 1).unwrap_err().to_string();
        assert!(err.contains("column `a` row 13 of x.csv is NaN"), "{err}");
        // Finite values that scaling pushes past f32's range.
        let wide: Vec<f64> = (0..40).map(|i| if i % 2 == 0 { -3.0e38 } else { 3.0e38 }).collect();
        let err = prepare(&tables(df!("a" => wide, "y" => y).unwrap(), None), &spec(false), 1).unwrap_err().to_string();
        assert!(err.starts_with("data.scale: column `a` row ") && err.contains("is inf after `minmax` scaling"), "{err}");
    }

    #[test]
    fn minmax_uses_training_statistics() {
        let p = prepare(&tables(frame(), None), &spec(false), 1).unwrap();
        let lo = p.train.x.iter().cloned().fold(f32::INFINITY, f32::min);
        let hi = p.train.x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        assert_eq!((lo, hi), (0.0, 1.0));
    }
}

#[cfg(test)]
mod transfer_tests {
    use super::*;

    fn frame(null_labels: usize) -> DataFrame {
        let a: Vec<f64> = (0..60).map(|i| i as f64).collect();
        let y: Vec<Option<i64>> = (0..60).map(|i| if i < null_labels { None } else { Some((i % 3) as i64) }).collect();
        df!("a" => a, "y" => y).unwrap()
    }

    fn spec(transfer: &str) -> DataSpec {
        serde_yaml::from_str(&format!("source: {{path: x.csv}}\nlabel: y\nsplit: {{test: 0.2}}\n{transfer}")).unwrap()
    }

    #[test]
    fn hides_labels_on_a_seeded_stratified_subset() {
        let p = prepare(&tables(frame(0), None), &spec("transfer: {labelled: 9}"), 1).unwrap();
        assert_eq!(p.train.len(), 48);
        assert_eq!(p.train.count(LabelState::Labelled), 9);
        assert_eq!(p.train.count(LabelState::Hidden), 39);
        let labelled = p.train.subset(|s| s == LabelState::Labelled);
        for c in 0..3 {
            assert_eq!(labelled.y.iter().filter(|&&y| y == c).count(), 3, "class {c}");
        }
        assert!(p.test.state.iter().all(|&s| s == LabelState::Labelled));
        let again = prepare(&tables(frame(0), None), &spec("transfer: {labelled: 9}"), 1).unwrap();
        assert_eq!(again.train.state, p.train.state);
    }

    #[test]
    fn null_labels_and_transfer_files_join_training_without_labels() {
        let extra = df!("a" => [100.0f64, 101.0]).unwrap();
        let err = prepare(&tables(frame(6), None), &spec(""), 1).unwrap_err().to_string();
        assert!(err.contains("x.csv") && err.contains("row 0: the label is null") && err.contains("data.transfer"), "{err}");
        let p = prepare(&tables(frame(6), Some(extra)), &spec("transfer: {}"), 1).unwrap();
        assert_eq!(p.train.count(LabelState::Unlabelled), 6 + 2);
        assert!(p.train.row_ids.contains(&TRANSFER_ROW_ID_BASE));
        assert!(!p.test.row_ids.iter().any(|&r| r < 6), "unlabelled rows never land in the test split");
        let missing = df!("b" => [1.0f64]).unwrap();
        let err = prepare(&tables(frame(0), Some(missing)), &spec("transfer: {}"), 1).unwrap_err().to_string();
        assert!(err.contains("no feature column `a`"), "{err}");
    }
}
