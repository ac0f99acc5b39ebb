// What each fuzz target does with one input, shared by the libFuzzer binaries. Errors are fine;
// a panic, abort or hang is a bug. Each binary includes this module and calls one function.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// libfuzzer-sys's panic hook aborts on every panic, even one distill catches on purpose (polars'
/// Parquet reader panics on some corrupt pages; `load_table` turns that into an error). This hook
/// only prints: a panic that escapes the target still aborts, at libfuzzer-sys's boundary, and
/// is kept as a crash.
pub fn crashes_are_escaped_panics() {
    std::panic::set_hook(Box::new(|info| eprintln!("panic (a crash only if it escapes distill): {info}")));
}

/// The recipe parser: any text through parse and validation (YAML → validated `Pipeline`), then
/// the spec's warnings, memory estimates and serialisation of what it accepted.
pub fn recipe(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // `extends:` bases would be read relative to a folder that does not exist.
    if let Ok(p) = distill_spec::parse_str(text, Path::new("/nonexistent-fuzz/recipe.yaml"), &[]) {
        let _ = distill_spec::warnings(&p);
        let _ = distill_spec::memory::needs(&p, &distill_spec::Shape { rows: 1000, features: 64, classes: 10 });
        let _ = serde_yaml::to_string(&p);
    }
}

/// The CSV loader (plain, gzip or zstd by its bytes) and the profile of what it loads.
pub fn csv(data: &[u8]) {
    table(&as_file(data, "csv"), distill_spec::DataFormat::Csv);
}

/// The Parquet loader and the profile of what it loads.
pub fn parquet(data: &[u8]) {
    table(&as_file(data, "parquet"), distill_spec::DataFormat::Parquet);
}

/// The IDX (MNIST format) reader on one file, gzipped or not; and, the first byte saying where
/// the labels file starts, the images-with-labels table of the two.
pub fn idx(data: &[u8]) {
    let _ = distill_data::read_idx(&as_file(data, "idx3-ubyte"));
    if let Some((&cut, rest)) = data.split_first() {
        let cut = (cut as usize * rest.len() / 255).min(rest.len());
        let images = as_file(&rest[..cut], "images-idx3-ubyte");
        let labels = as_file(&rest[cut..], "labels-idx1-ubyte");
        let _ = distill_data::load_idx(&images, Some(&labels));
    }
}

fn table(path: &Path, format: distill_spec::DataFormat) {
    if let Ok(df) = distill_data::load_table(path, Some(format)) {
        let label = df.get_column_names().last().map(|c| c.to_string());
        let _ = distill_data::profile(&df, label.as_deref());
    }
}

/// The input as a file (the loaders read paths), one per process and kind, in the temp folder.
fn as_file(data: &[u8], ext: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("distill-fuzz-{}.{ext}", std::process::id()));
    std::fs::write(&path, data).expect("the temp folder is writable");
    path
}
