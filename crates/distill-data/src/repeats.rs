//! The `unique` check's repeats, counted exactly without encoding every row: the key columns are
//! hashed one at a time and combined (vectorised, a few passes over the table), and only rows
//! whose hash is not unique can repeat an earlier key. Those few rows — the repeats and the rows
//! they repeat, plus any hash collisions — are compared by their keys as polars would compare the
//! whole table (a struct of the columns). On a table without repeats that is no row at all.

use std::collections::HashMap;

use polars::prelude::*;

use crate::DataError;

/// The rows whose key hash occurs more than once, with their row numbers in `row`.
pub(crate) fn candidates(df: &DataFrame, columns: &[String], row: &str) -> Result<DataFrame, DataError> {
    let state = PlSeedableRandomStateQuality::seed_from_u64(0);
    let mut hashes = Vec::with_capacity(df.height());
    for (i, name) in columns.iter().enumerate() {
        let series = df.column(name)?.as_materialized_series();
        if i == 0 {
            series.vec_hash(state.clone(), &mut hashes)?;
        } else {
            series.vec_hash_combine(state.clone(), &mut hashes)?;
        }
    }
    let mut seen: HashMap<u64, u32> = HashMap::with_capacity(hashes.len());
    for &h in &hashes {
        *seen.entry(h).or_default() += 1;
    }
    let rows: Vec<IdxSize> = hashes.iter().enumerate().filter(|(_, h)| seen[h] > 1).map(|(i, _)| i as IdxSize).collect();
    let picked = df.select(columns.iter().map(|c| c.as_str()))?;
    let index = IdxCa::from_vec(row.into(), rows);
    let mut out = picked.take(&index)?;
    out.with_column(index.into_series().into_column())?;
    Ok(out)
}

/// How many rows repeat an earlier row's key (rows minus distinct keys), over the candidates.
pub(crate) fn count(df: &DataFrame, columns: &[String]) -> Result<usize, DataError> {
    if columns.is_empty() || df.height() < 2 {
        return Ok(0);
    }
    let few = candidates(df, columns, "__distill_row")?;
    if few.height() == 0 {
        return Ok(0);
    }
    let key = as_struct(columns.iter().map(|c| col(c.as_str())).collect());
    let out = few.lazy().select([(len().cast(DataType::Int64) - key.n_unique().cast(DataType::Int64)).alias("repeats")]).collect()?;
    Ok(out.column("repeats")?.as_materialized_series().cast(&DataType::UInt64)?.u64()?.get(0).unwrap_or(0) as usize)
}
