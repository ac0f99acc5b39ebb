//! Reading CSV and Parquet files into a polars DataFrame.

use std::fs::File;
use std::path::Path;

use polars::prelude::*;

use crate::DataError;
use distill_spec::DataFormat;

/// Reads a table; the format comes from `format` or the file extension.
pub fn load_table(path: &Path, format: Option<DataFormat>) -> Result<DataFrame, DataError> {
    let shown = path.display().to_string();
    let err = |message: String| DataError::Load { path: shown.clone(), message };
    let format = match format {
        Some(f) => f,
        None => match path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
            Some("csv") => DataFormat::Csv,
            Some("parquet" | "pq") => DataFormat::Parquet,
            other => return Err(err(format!("cannot tell the format from the extension {other:?}; set `format: csv|parquet`"))),
        },
    };
    if !path.is_file() {
        return Err(err("file not found".into()));
    }
    let df = match format {
        DataFormat::Csv => CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(10_000))
            .try_into_reader_with_file_path(Some(path.to_path_buf()))
            .and_then(|r| r.finish()),
        DataFormat::Parquet => File::open(path)
            .map_err(|e| PolarsError::IO { error: Arc::new(e), msg: None })
            .and_then(|f| ParquetReader::new(f).finish()),
    }
    .map_err(|e| err(e.to_string()))?;
    tracing::info!(path = %shown, rows = df.height(), columns = df.width(), "loaded table");
    Ok(df)
}
