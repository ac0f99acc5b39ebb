//! Reading a recipe's data files (CSV, Parquet, IDX) into a polars DataFrame.

use std::fs::File;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::file::{compression_of, read_decompressed, regular_file};
use crate::idx::load_idx;
use crate::DataError;
use distill_spec::{DataFormat, SourceSpec};

/// Replaces `${VAR}` and `${VAR:-default}` with environment values; an unset variable without a
/// default is an error that names it.
pub fn expand_env(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| format!("unclosed `${{` in `{text}`"))?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        match (std::env::var(name).ok().filter(|v| !v.is_empty()), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(format!("environment variable `{name}` is not set (used in `{text}`)")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The path a recipe means: environment variables expanded, relative to the recipe's folder.
pub fn resolve_path(base_dir: &Path, path: &Path) -> Result<PathBuf, DataError> {
    let text = path.to_string_lossy();
    let expanded = PathBuf::from(expand_env(&text).map_err(DataError::Invalid)?);
    Ok(if expanded.is_absolute() { expanded } else { base_dir.join(expanded) })
}

/// Reads the table a `source:` describes.
pub fn load_source(source: &SourceSpec, base_dir: &Path) -> Result<DataFrame, DataError> {
    let path = resolve_path(base_dir, &source.path)?;
    let labels = source.labels.as_ref().map(|l| resolve_path(base_dir, l)).transpose()?;
    let format = match source.format {
        Some(f) => f,
        None if labels.is_some() => DataFormat::Idx,
        None => infer_format(&path)?,
    };
    if format == DataFormat::Idx {
        if source.has_csv_options() {
            return Err(DataError::Load {
                path: path.display().to_string(),
                message: "CSV options (header, delimiter, null_values, comment, column_names) do not apply to IDX files".into(),
            });
        }
        return load_idx(&path, labels.as_deref());
    }
    load_table_with(&path, Some(format), source)
}

pub(crate) fn infer_format(path: &Path) -> Result<DataFormat, DataError> {
    let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    // Compression is found from the bytes; the name only says the format inside.
    let name = name.strip_suffix(".gz").or_else(|| name.strip_suffix(".zst")).unwrap_or(&name);
    if name.ends_with(".csv") {
        Ok(DataFormat::Csv)
    } else if name.ends_with(".parquet") || name.ends_with(".pq") {
        Ok(DataFormat::Parquet)
    } else if name.contains("idx") && name.ends_with("-ubyte") {
        Ok(DataFormat::Idx)
    } else {
        Err(DataError::Load { path: path.display().to_string(), message: "cannot tell the format from the file name; set `format: csv|parquet|idx`".into() })
    }
}

/// Reads a CSV or Parquet table; the format comes from `format` or the file name.
pub fn load_table(path: &Path, format: Option<DataFormat>) -> Result<DataFrame, DataError> {
    load_table_with(path, format, &SourceSpec::new(path))
}

/// [`load_table`] with the CSV options of `options` (header, delimiter, null values, comment
/// prefix, column names); its `path` and `format` are not used.
pub fn load_table_with(path: &Path, format: Option<DataFormat>, options: &SourceSpec) -> Result<DataFrame, DataError> {
    let shown = path.display().to_string();
    let err = |message: String| DataError::Load { path: shown.clone(), message };
    let format = match format {
        Some(f) => f,
        None => infer_format(path)?,
    };
    regular_file(path).map_err(err)?;
    if std::fs::metadata(path).map(|m| m.len() == 0).unwrap_or(false) {
        return Err(err("the file is empty".into()));
    }
    if format != DataFormat::Csv && options.has_csv_options() {
        return Err(err("CSV options (header, delimiter, null_values, comment, column_names) apply only to CSV files".into()));
    }
    if format == DataFormat::Idx {
        return load_idx(path, None);
    }
    let mut df = read_frame(path, format, options).map_err(err)?;
    if let Some(names) = &options.column_names {
        if names.len() != df.width() {
            return Err(err(format!("column_names lists {} names but the file has {} columns", names.len(), df.width())));
        }
        df.set_column_names(names.as_slice()).map_err(|e| err(format!("column_names: {e}")))?;
    }
    if let Some((name, dtype)) = df.schema().iter().find(|(_, t)| t.is_nested()) {
        return Err(err(format!(
            "column `{name}` is nested ({dtype}); distill reads flat columns only (numbers, strings, booleans): flatten it or drop it from the file"
        )));
    }
    if df.height() == 0 {
        return Err(err(format!("the file has no rows (columns: {})", df.get_column_names().iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", "))));
    }
    tracing::info!(path = %shown, rows = df.height(), columns = df.width(), "loaded table");
    Ok(df)
}

/// The CSV or Parquet table in `path`, decompressed first when its bytes are gzip or zstd
/// (whatever its name), so polars never sees compressed bytes it cannot read.
fn read_frame(path: &Path, format: DataFormat, options: &SourceSpec) -> Result<DataFrame, String> {
    let separator = match options.delimiter.as_deref() {
        None => b',',
        Some(d) if d.len() == 1 && d.is_ascii() && d != "\"" && d != "\n" && d != "\r" => d.as_bytes()[0],
        Some(d) => return Err(format!("delimiter must be one ASCII character other than a quote or newline, got {d:?}")),
    };
    if options.comment.as_deref() == Some("") {
        return Err("comment must not be empty".into());
    }
    let nulls = options.null_values.clone().map(|v| NullValues::AllColumns(v.into_iter().map(PlSmallStr::from).collect()));
    let comment = options.comment.as_deref().map(CommentPrefix::new_from_str);
    let csv = CsvReadOptions::default()
        .with_has_header(options.header.unwrap_or(true))
        .with_infer_schema_length(Some(10_000))
        .map_parse_options(|o| o.with_separator(separator).with_null_values(nulls.clone()).with_comment_prefix(comment.clone()));
    let compressed = compression_of(path).is_some();
    let (result, text) = if compressed {
        let (bytes, _) = read_decompressed(path)?;
        let result = match format {
            DataFormat::Csv => csv.into_reader_with_file_handle(Cursor::new(bytes.as_slice())).finish(),
            _ => distill_parquet::check(&bytes, memory())
                .map_err(|e| PolarsError::ComputeError(e.into()))
                .and_then(|()| parquet_guarded(|| ParquetReader::new(Cursor::new(bytes.as_slice())).finish())),
        };
        (result, Some(bytes))
    } else {
        let result = match format {
            DataFormat::Csv => csv.try_into_reader_with_file_path(Some(path.to_path_buf())).and_then(|r| r.finish()),
            _ => check_parquet_file(path).map_err(|e| PolarsError::ComputeError(e.into())).and_then(|()| {
                File::open(path).map_err(|e| PolarsError::IO { error: Arc::new(e), msg: None }).and_then(|f| parquet_guarded(|| ParquetReader::new(f).finish()))
            }),
        };
        (result, None)
    };
    result.map_err(|e| {
        let text = text.or_else(|| (format == DataFormat::Csv).then(|| std::fs::read(path).ok()).flatten());
        let ragged = if format == DataFormat::Csv { text.and_then(|t| ragged_line(&t, separator, options.comment.as_deref())) } else { None };
        match ragged {
            // polars' own text ends with advice for its Python API; its first line is enough.
            Some(line) => format!("{line} ({})", e.to_string().lines().next().unwrap_or_default()),
            None => e.to_string(),
        }
    })
}

/// The bytes this process may use, for the Parquet footer check (no figure: no bound).
fn memory() -> u64 {
    distill_spec::memory::Memory::available().map_or(u64::MAX, |m| m.bytes)
}

/// The footer of the Parquet file at `path` checked before polars reads it: a corrupt one is an
/// error, never an allocation of 2^61 bytes that aborts (see `distill-parquet`).
pub(crate) fn check_parquet_file(path: &Path) -> Result<(), String> {
    distill_parquet::check_file(path, memory())
}

/// polars' Parquet reader panics on some corrupt footers (found by fuzzing: "thrift bool
/// field"); such a file is an error like any other unreadable one, not a crash.
pub(crate) fn parquet_guarded(read: impl FnOnce() -> PolarsResult<DataFrame>) -> PolarsResult<DataFrame> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).unwrap_or_else(|panic| {
        let why = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned()).unwrap_or_default();
        Err(PolarsError::ComputeError(format!("the Parquet file is corrupt (its metadata does not decode: {why})").into()))
    })
}

/// For a CSV file polars rejected: the first line whose number of fields differs from the first
/// line's (quoted separators respected), so the error can point at it. `None` if all agree.
fn ragged_line(bytes: &[u8], separator: u8, comment: Option<&str>) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    let fields = |line: &str| {
        let mut quoted = false;
        1 + line
            .bytes()
            .filter(|&b| {
                if b == b'"' {
                    quoted = !quoted;
                }
                b == separator && !quoted
            })
            .count()
    };
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !comment.is_some_and(|c| l.starts_with(c)));
    let (_, first) = lines.next()?;
    let expected = fields(first);
    lines.find(|(_, l)| fields(l) != expected).map(|(i, l)| format!("line {} has {} fields, the first line has {expected}", i + 1, fields(l)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_environment_variables() {
        std::env::set_var("DISTILL_TEST_DIR", "/data");
        assert_eq!(expand_env("${DISTILL_TEST_DIR}/x.csv").unwrap(), "/data/x.csv");
        assert_eq!(expand_env("${DISTILL_TEST_UNSET_VAR:-/usr/share}/y").unwrap(), "/usr/share/y");
        assert!(expand_env("${DISTILL_TEST_UNSET_VAR}/y").unwrap_err().contains("DISTILL_TEST_UNSET_VAR"));
        assert_eq!(expand_env("plain.csv").unwrap(), "plain.csv");
    }
}
