//! Data for distill, through polars: load a table, run the pipeline's data-quality checks, and
//! turn it into what training needs — dense f32 feature matrices, class indices and stable row ids
//! for seeded train/validation/test splits, scaled with statistics from the training rows only.
//!
//! Also: split checks over the prepared splits (`leakage`, `drift`), seeded augmentation of the
//! training split, and `profile`, which proposes checks from a table.
//!
//! Not here: models (distill-nn) and caching (distill-cache).

mod augment;
mod checks;
mod feature_health;
mod file;
mod idx;
mod load;
mod predicate;
mod prepare;
mod profile;
mod repeats;
mod row_checks;
mod split_checks;
mod stream;

pub use augment::{augment_row_id, is_augmented, AUGMENT_ROW_ID_BASE};
pub use checks::{cell_texts, run_checks, run_checks_with_label, CheckReport, CheckResult, CheckStatus, CheckUnit, FailingRow, SAMPLE_ROWS};
pub use file::{closest, suggest_column, Compression};
pub use idx::{load_idx, read_idx, IdxArray};
pub use load::{expand_env, load_source, load_table, load_table_with, resolve_path};
pub use predicate::{check_predicate_size, predicate_size, PredicateSize, MAX_PREDICATE_BYTES, MAX_PREDICATE_NESTING, MAX_PREDICATE_OPERATORS};
pub use prepare::{feature_matrix, prepare, shape, LabelState, Prepared, Scaling, Split, Tables, TEST_ROW_ID_BASE, TRANSFER_ROW_ID_BASE};
pub use profile::{profile, profile_file};
pub use row_checks::{parse_predicate, predicate_problems};
pub use split_checks::{check_drift, check_leakage, describe_row, ks, prepare_and_check, psi, run_split_checks};
pub use stream::{chunk_rows, prepare_streamed, Streamed, TransferFile, DEFAULT_CHUNK_ROWS};

/// What went wrong with the data, naming the file, column and row where it can.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {message}")]
    Load { path: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

impl From<polars::prelude::PolarsError> for DataError {
    fn from(e: polars::prelude::PolarsError) -> Self {
        DataError::Invalid(e.to_string())
    }
}

/// `*`-wildcard match of a column name against a pattern.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn rec(p: &[u8], n: &[u8]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some(b'*') => (0..=n.len()).any(|i| rec(&p[1..], &n[i..])),
            Some(c) => n.first() == Some(c) && rec(&p[1..], &n[1..]),
        }
    }
    rec(pattern.as_bytes(), name.as_bytes())
}

/// Column names matching any of `patterns`, in table order; a pattern matching nothing is an error.
pub fn select_columns(columns: &[String], patterns: &[String], what: &str) -> Result<Vec<String>, DataError> {
    for p in patterns {
        if !columns.iter().any(|c| glob_match(p, c)) {
            return Err(DataError::Invalid(format!("{what}: no column matches `{p}` (columns: {})", preview(columns))));
        }
    }
    Ok(columns.iter().filter(|c| patterns.iter().any(|p| glob_match(p, c))).cloned().collect())
}

fn preview(columns: &[String]) -> String {
    if columns.len() <= 8 {
        columns.join(", ")
    } else {
        format!("{}, ... ({} in all)", columns[..8].join(", "), columns.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("p*", "p12"));
        assert!(glob_match("*", "label"));
        assert!(glob_match("a*c", "abbc"));
        assert!(!glob_match("p*", "label"));
        assert!(!glob_match("p1", "p12"));
    }
}
