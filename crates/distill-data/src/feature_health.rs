//! What is wrong with the feature matrix before a model sees it. Columns that carry nothing
//! (constant, or NaN in every training row) are loud warnings; values that are not finite — in
//! the data, or made so by scaling — are errors naming the column and row, so a model never
//! trains to chance on them without a word.

use distill_spec::{ScaleKind, Warning};

use crate::prepare::{Split, TEST_ROW_ID_BASE, TRANSFER_ROW_ID_BASE};
use crate::{describe_row, is_augmented, DataError};

/// How many column names a warning lists before "and N more".
const SHOWN: usize = 8;

/// Feature columns of the training rows `x` (row-major, `names.len()` wide) that cannot help a
/// model: NaN in every row, or one value in every row.
pub(crate) fn useless_features(x: &[f32], names: &[String]) -> Vec<Warning> {
    let width = names.len();
    let n = x.len().checked_div(width).unwrap_or(0);
    let mut out = Vec::new();
    if n == 0 {
        return out;
    }
    let (mut all_nan, mut constant) = (Vec::new(), Vec::new());
    for (j, name) in names.iter().enumerate() {
        let (mut nan, mut lo, mut hi) = (0usize, f32::INFINITY, f32::NEG_INFINITY);
        for i in 0..n {
            let v = x[i * width + j];
            if v.is_nan() {
                nan += 1;
            } else {
                (lo, hi) = (lo.min(v), hi.max(v));
            }
        }
        if nan == n {
            all_nan.push(name.as_str());
        } else if nan == 0 && lo == hi {
            constant.push(format!("{name} = {lo}"));
        }
    }
    if !all_nan.is_empty() {
        out.push(Warning::new("data.features", format!("{} feature column(s) are NaN in every training row: {}", all_nan.len(), list(&all_nan))));
    }
    if !constant.is_empty() {
        let names: Vec<&str> = constant.iter().map(String::as_str).collect();
        let message = format!("{} feature column(s) have one value in every training row and carry no information: {}", constant.len(), list(&names));
        out.push(Warning::new("data.features", message));
    }
    out
}

/// "a, b, c and 5 more".
fn list(items: &[&str]) -> String {
    let shown = items[..items.len().min(SHOWN)].join(", ");
    match items.len().checked_sub(SHOWN) {
        Some(more) if more > 0 => format!("{shown} and {more} more"),
        _ => shown,
    }
}

/// The first value of `splits` that is NaN or infinite is an error naming its column and row.
/// `scaled` is the scaling that was applied (values finite before it became infinite through
/// it: each such column is also a warning) or `None` for the values as read.
pub(crate) fn refuse_non_finite(splits: [&Split; 3], names: &[String], file: &str, scaled: Option<ScaleKind>) -> Result<(), DataError> {
    let width = names.len();
    let mut first: Option<(usize, u64, f32)> = None;
    let mut columns = Vec::new();
    for split in splits {
        for (i, v) in split.x.iter().enumerate().filter(|(_, v)| !v.is_finite()) {
            let j = i % width;
            first.get_or_insert((j, split.row_ids[i / width], *v));
            if !columns.contains(&names[j].as_str()) {
                columns.push(names[j].as_str());
            }
        }
    }
    let Some((j, id, value)) = first else { return Ok(()) };
    let (name, row) = (&names[j], describe_row(id));
    let within = if id >= TEST_ROW_ID_BASE || is_augmented(id) {
        String::new()
    } else if id >= TRANSFER_ROW_ID_BASE {
        " of data.transfer.source".into()
    } else {
        format!(" of {file}")
    };
    Err(DataError::Invalid(match scaled {
        None => format!(
            "data.features: column `{name}` {row}{within} is {value}: a model cannot learn from values that are not finite (columns with such values: {}); fix or drop those rows (a `finite` check lists them all)",
            list(&columns)
        ),
        Some(kind) => {
            let kind = scale_name(kind);
            for c in &columns {
                tracing::warn!("data.scale: `{kind}` scaling turns values of column `{c}` into ±inf (its training values are too close together or too large for f32)");
            }
            format!("data.scale: column `{name}` {row}{within} is {value} after `{kind}` scaling; choose another `data.scale.kind` or rescale the column (columns affected: {})", list(&columns))
        }
    }))
}

fn scale_name(kind: ScaleKind) -> &'static str {
    match kind {
        ScaleKind::None => "none",
        ScaleKind::Minmax => "minmax",
        ScaleKind::MinmaxGlobal => "minmax_global",
        ScaleKind::Standard => "standard",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_and_all_nan_columns_are_named() {
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let x = [1.0, 0.0, f32::NAN, 2.0, 0.0, f32::NAN, 3.0, 0.0, f32::NAN];
        assert_eq!(
            useless_features(&x, &names).iter().map(Warning::to_string).collect::<Vec<_>>(),
            [
                "data.features: 1 feature column(s) are NaN in every training row: c",
                "data.features: 1 feature column(s) have one value in every training row and carry no information: b = 0"
            ]
        );
        assert!(useless_features(&[1.0, 2.0, 3.0, 4.0], &names[..2]).is_empty());
        let many: Vec<&str> = (0..10).map(|_| "p").collect();
        assert_eq!(list(&many), "p, p, p, p, p, p, p, p and 2 more");
    }
}
