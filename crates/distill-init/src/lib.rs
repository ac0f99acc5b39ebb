//! `distill init DATAFILE`: a complete, commented starting recipe for a data file.
//!
//! The file's layout is sniffed (Parquet or CSV, gzip, delimiter, header), the table is loaded
//! the way the recipe will load it, the label is taken or guessed, the features are the numeric
//! columns without nulls, the checks are `distill profile`'s (so the data passes them), and the
//! teacher and student are sized from the shape of the data. The text is validated as a recipe
//! before it is returned.

mod columns;
mod render;
mod sniff;

use std::path::{Path, PathBuf};

use distill_spec::{DataFormat, SourceSpec};

pub use sniff::{sniff, Kind, Sniffed};

/// What to write a recipe for.
pub struct Request<'a> {
    pub data: &'a Path,
    /// The label column; guessed when `None`.
    pub label: Option<&'a str>,
    /// Where the recipe will be written (its data path is relative to it).
    pub out: &'a Path,
}

/// The recipe, and what was guessed (for the terminal).
pub struct Written {
    pub text: String,
    pub notes: Vec<String>,
}

/// Writes the recipe text for `req` (nothing is written to disk here).
pub fn recipe(req: &Request) -> Result<Written, String> {
    let sniffed = sniff(req.data)?;
    let source = source_spec(req.data, &sniffed);
    // The loader decompresses gzip and zstd by their bytes, as `distill run` will.
    let df = distill_data::load_table_with(req.data, source.format, &source).map_err(|e| e.to_string())?;
    let cols = columns::observe(&df)?;
    let (label, label_note) = columns::label(&cols, req.label, df.height())?;
    let (features, left_out) = columns::features(&cols, label, df.height());
    if features.is_empty() {
        return Err(format!("{}: no numeric column without nulls besides the label `{}`: nothing to train on", req.data.display(), cols[label].name));
    }
    let checks = distill_data::profile(&df, Some(&cols[label].name));
    let facts = render::Facts {
        command: format!("distill init {}", req.data.display()),
        recipe: req.out.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
        path: data_path(req.data, req.out)?,
        sniffed,
        rows: df.height(),
        cols: &cols,
        label,
        label_note: label_note.clone(),
        features: &features,
        left_out: &left_out,
        checks: &checks,
        name: name_of(req.data),
        schema: schema_path(req.out),
    };
    let text = render::recipe(&facts);
    // The recipe must be one `distill validate` accepts; anything else is a bug here.
    distill_spec::parse_str(&text, req.out, &[])
        .map_err(|e| format!("the recipe written for {} does not validate (a bug in distill init):\n{e}", req.data.display()))?;
    let mut notes = vec![format!("label `{}`{}", cols[label].name, label_note.map(|n| format!(" ({n})")).unwrap_or_default())];
    notes.extend(left_out.iter().map(|(j, why)| format!("column `{}` is not a feature: {why}", cols[*j].name)));
    Ok(Written { text, notes })
}

/// The source options the sniffed layout needs (CSV: header and delimiter).
fn source_spec(path: &Path, sniffed: &Sniffed) -> SourceSpec {
    let mut spec = SourceSpec::new(path);
    match sniffed.kind {
        Kind::Parquet => spec.format = Some(DataFormat::Parquet),
        Kind::Csv { delimiter, header } => {
            spec.format = Some(DataFormat::Csv);
            spec.header = (!header).then_some(false);
            spec.delimiter = (delimiter != b',').then(|| (delimiter as char).to_string());
        }
    }
    spec
}

/// The data path relative to the recipe's folder (both with links resolved), or absolute when
/// the two share nothing but the root (a relative path would then break when either moves).
fn data_path(data: &Path, out: &Path) -> Result<String, String> {
    let data = std::fs::canonicalize(data).map_err(|e| format!("{}: {e}", data.display()))?;
    let out_dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let out_dir = std::fs::canonicalize(out_dir).map_err(|e| format!("{}: the recipe's folder: {e}", out_dir.display()))?;
    let dir = data.parent().unwrap_or(Path::new("/"));
    if out_dir.components().zip(dir.components()).take_while(|(a, b)| a == b).count() <= 1 {
        return Ok(data.to_string_lossy().into_owned());
    }
    let rel: PathBuf = distill_spec::relative_to(&out_dir, dir).join(data.file_name().unwrap_or_default());
    Ok(rel.to_string_lossy().into_owned())
}

/// `schema/distill.schema.json` in the recipe's folder or the nearest folder above that has one
/// (a distill checkout, or a project that keeps the schema there), relative to the recipe.
fn schema_path(out: &Path) -> Option<String> {
    let out_dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let out_dir = std::fs::canonicalize(out_dir).ok()?;
    let dir = out_dir.ancestors().find(|d| d.join("schema/distill.schema.json").is_file())?;
    let rel = distill_spec::relative_to(&out_dir, dir).join("schema/distill.schema.json");
    Some(rel.to_string_lossy().into_owned())
}

/// The recipe's name: the file name without its extensions, as letters, digits, `-` and `_`.
fn name_of(path: &Path) -> String {
    let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = file.split('.').next().unwrap_or_default();
    let name: String = stem.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect();
    if name.trim_matches('-').is_empty() {
        "recipe".into()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_file() {
        assert_eq!(name_of(Path::new("/x/iris.csv.gz")), "iris");
        assert_eq!(name_of(Path::new("my data.parquet")), "my-data");
        assert_eq!(name_of(Path::new(".csv")), "recipe");
    }
}
