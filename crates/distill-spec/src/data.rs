//! The `data:` section: sources, features, split, scaling, checks and the transfer set.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::types::yes;
use crate::{AugmentSpec, CheckSpec};

/// The data stage: where rows come from, which column is the label, how to split and check them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// The data file: `{path, format}` (CSV options, or IDX `labels`, beside them).
    pub source: SourceSpec,
    /// Name of the label column. Integer or string classes; string classes are sorted by name.
    pub label: String,
    /// Which columns are features (default: every column but the label).
    #[serde(default)]
    pub features: FeatureSpec,
    /// Train/validation/test fractions (default: 20 % test, no validation), seeded.
    #[serde(default)]
    pub split: SplitSpec,
    /// A separate file for the test split (same columns), e.g. Fashion-MNIST's t10k files.
    /// With it, `split.test` must be left out: every source row is for training and validation.
    #[serde(default)]
    pub test_source: Option<SourceSpec>,
    /// Feature scaling (default none), fitted on the training split only.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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

/// The transfer set: training rows the student sees without their labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
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
    /// Leave out of the student's training the rows without a label whose teacher confidence
    /// (the teacher's largest softmax probability) is below this value, in (0, 1]; labelled rows
    /// always stay. The student then trains for the optimiser steps it would take on every row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_teacher_confidence: Option<f64>,
    /// Weigh each row without a label in the student's loss by the teacher's `confidence`
    /// (largest probability) or `entropy` (1 - H / ln k, its certainty); labelled rows weigh 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<TransferWeight>,
}

/// How an unlabelled row's loss term is weighted from the teacher's prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransferWeight {
    /// The teacher's largest softmax probability.
    Confidence,
    /// One minus the teacher's entropy over ln(classes).
    Entropy,
}

/// A data file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
/// A data file's format.
pub enum DataFormat {
    /// Comma-separated (or `delimiter`) text with a header line (or `header: false`).
    Csv,
    /// Apache Parquet.
    Parquet,
    /// MNIST-style IDX (u8 images, gzipped or not): pixels become columns `px0`, `px1`, ...
    Idx,
}

/// Feature columns: `include` (names or `*` globs) minus `exclude`. The label is never a feature.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    /// Feature columns: names or `*` globs (default: every column). Each must match a column.
    #[serde(default)]
    pub include: Option<Vec<String>>,
    /// Columns (names or `*` globs) left out of the features.
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// Train/validation/test split, seeded by the pipeline seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleSpec {
    /// `none` (default), `minmax`, `minmax_global` or `standard`.
    #[serde(default)]
    pub kind: ScaleKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
/// How features are scaled.
pub enum ScaleKind {
    /// Features as they are.
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
        crate::augment::validate_augment(&format!("{path}.augment[{i}]"), a, bad);
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
    fn csv_options_image_and_augment_validate() {
        let ok = problems(
            "  test_source: {path: d.txt, format: csv, header: false, delimiter: \";\", null_values: [NA], comment: \"#\", column_names: [a, y]}\n  image: {height: 8, width: 8}\n  augment:\n    - {kind: gaussian_noise, std: 0.5, copies: 2}\n    - {kind: mixup, alpha: 0.2}\n    - {kind: oversample, method: smote, ratio: 0.5, neighbours: 3}\n    - {kind: shift, pixels: 2}\n    - {kind: flip}",
        );
        assert!(ok.is_empty(), "{ok:?}");
        let p = problems(
            "  test_source: {path: t.parquet, format: parquet, delimiter: \";\"}\n  transfer: {source: {path: u.csv, delimiter: \"ab\", column_names: [a, a]}}\n  image: {height: 0, width: 8}\n  augment:\n    - {kind: gaussian_noise, std: -1}\n    - {kind: mixup, alpha: 0}\n    - {kind: oversample, method: duplicate, neighbours: 3, ratio: 1.5}\n    - {kind: shift, pixels: 0, copies: 0}",
        );
        let paths: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        for want in [
            "data.test_source.delimiter",
            "data.transfer.source.delimiter",
            "data.transfer.source.column_names[1]",
            "data.image.height",
            "data.augment[0].std",
            "data.augment[1].alpha",
            "data.augment[2].neighbours",
            "data.augment[2].ratio",
            "data.augment[3].pixels",
            "data.augment[3].copies",
        ] {
            assert!(paths.contains(&want), "{want} not in {p:?}");
        }
        // Keys of another kind, and missing ones, are errors of the file itself.
        let err = |text: &str| serde_yaml::from_str::<AugmentSpec>(text).unwrap_err().to_string();
        assert_eq!(err("{kind: blur}"), "kind: unknown kind `blur`, expected one of `gaussian_noise`, `mixup`, `oversample`, `shift`, `flip`");
        assert_eq!(err("{kind: gaussian_noise}"), "`gaussian_noise` needs `std`");
        assert!(err("{kind: mixup, alpha: 0.1, std: 1}").starts_with("std: `std` does not apply to `mixup`; expected one of `kind`, `copies`, `alpha`"));
        assert_eq!(err("{kind: flip, copies: 2}"), "copies: `copies` does not apply to `flip`; expected `kind`");
        let err = serde_yaml::from_str::<SourceSpec>("{path: a.csv, separator: \";\"}").unwrap_err().to_string();
        assert!(err.contains("unknown field `separator`"), "{err}");
    }
}
