//! `distill init` through the binary: on each shipped dataset and on generated files of other
//! shapes (headerless, `;`-delimited, Parquet, string labels, null labels, id and text columns),
//! the written recipe passes `distill check` on its own data and `distill run` finishes it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use polars::prelude::*;

fn distill(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_distill"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("DISTILL_CACHE_DIR")
        .output()
        .expect("the distill binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `init` on `data` (extra args after it), then `check` (exit 0) and `run` (exit 0 or 3) on the
/// recipe; returns the recipe text.
fn init_check_run(dir: &Path, data: &Path, extra: &[&str]) -> String {
    let recipe = dir.join(format!("{}.yaml", data.file_name().unwrap().to_string_lossy().replace('.', "-")));
    let mut args = vec!["init", data.to_str().unwrap(), "--out", recipe.to_str().unwrap()];
    args.extend(extra);
    let o = distill(&args, dir);
    assert!(o.status.success(), "init {}: {}", data.display(), stderr(&o));
    let text = std::fs::read_to_string(&recipe).unwrap();
    let o = distill(&["check", recipe.to_str().unwrap()], dir);
    assert_eq!(o.status.code(), Some(0), "check on its own data:\n{text}\n{}", stderr(&o));
    let out = dir.join(format!("run-{}", data.file_name().unwrap().to_string_lossy()));
    let o = distill(&["run", recipe.to_str().unwrap(), "--out", out.to_str().unwrap(), "--cache-dir", dir.join("cache").to_str().unwrap()], dir);
    assert!(matches!(o.status.code(), Some(0 | 3)), "run:\n{text}\n{}", stderr(&o));
    assert!(out.join("metrics.json").is_file());
    text
}

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets").join(name)
}

#[test]
fn shipped_datasets_get_recipes_that_check_and_run() {
    let tmp = tempfile::tempdir().unwrap();
    let iris = init_check_run(tmp.path(), &shipped("iris.csv"), &[]);
    assert!(iris.contains("label: species") && iris.contains("was guessed: the last text column with few distinct values (3 classes)"), "{iris}");
    assert!(iris.contains("values: [setosa, versicolor, virginica]") && iris.contains("kind: row_count"), "{iris}");
    assert!(iris.contains("hidden: [32, 32]") && iris.contains("hidden: [4]"), "{iris}");
    let digits = init_check_run(tmp.path(), &shipped("digits.csv"), &[]);
    assert!(digits.contains("label: label") && digits.contains("guessed from its name"), "{digits}");
    assert!(
        digits.contains("kind: range, columns: \"p*\", min: 0, max: 16") && digits.contains("hidden: [256, 256]") && digits.contains("hidden: [16]"),
        "{digits}"
    );
    // A given label is used as it is, with no guess to report.
    let given = init_check_run(tmp.path(), &shipped("iris.csv"), &["--label", "species", "--force"]);
    assert!(given.contains("label: species") && !given.contains("guessed"), "{given}");
}

/// 120 rows: two informative features, an `id`, a text note, a feature with a null, a class.
fn rows(label: impl Fn(usize) -> String) -> Vec<[String; 6]> {
    (0..120)
        .map(|i| {
            let c = i % 3;
            let f1 = format!("{:.2}", c as f64 * 2.0 + (i % 7) as f64 * 0.1);
            let f2 = format!("{:.2}", 5.0 - c as f64 + (i % 5) as f64 * 0.05);
            let gappy = if i == 17 { String::new() } else { format!("{}", i % 11) };
            [format!("{}", i + 1), f1, format!("note {}", i % 4), gappy, f2, label(c)]
        })
        .collect()
}

fn write_csv(path: &Path, header: Option<&str>, delimiter: char, rows: &[[String; 6]]) {
    let mut text = header.map(|h| format!("{h}\n")).unwrap_or_default();
    for r in rows {
        text += &format!("{}\n", r.join(&delimiter.to_string()));
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn generated_files_of_other_shapes_get_recipes_that_check_and_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("data")).unwrap();

    // Headerless and semicolon-delimited, integer classes in the last column.
    let headerless = dir.join("data/plain.txt");
    write_csv(&headerless, None, ';', &rows(|c| c.to_string()));
    let text = init_check_run(dir, &headerless, &[]);
    assert!(text.contains("header: false") && text.contains("delimiter: \";\"") && text.contains("label: column_6"), "{text}");
    assert!(text.contains("path: data/plain.txt"), "the data path is relative to the recipe:\n{text}");
    // The id (a row key), the text column and the column with a null are not features.
    for left_out in ["column_1: a row key", "column_3: not numeric", "column_4: 1 nulls"] {
        assert!(text.contains(left_out), "{left_out}:\n{text}");
    }
    assert!(text.contains("features: {exclude: [column_1, column_3, column_4]}"), "{text}");

    // A header, string labels in a column not named like a label, tab-delimited.
    let tabs = dir.join("data/flowers.tsv");
    write_csv(&tabs, Some("id\tlength\tnote\tcount\twidth\tkind"), '\t', &rows(|c| ["red", "green", "blue"][c].to_string()));
    let text = init_check_run(dir, &tabs, &[]);
    assert!(text.contains("delimiter: \"\\t\"") && text.contains("label: kind") && text.contains("values: [blue, green, red]"), "{text}");

    // Parquet, with rows whose label is null: they become a transfer set.
    let pq = dir.join("data/table.parquet");
    let data = rows(|c| format!("c{c}"));
    let label: Vec<Option<String>> = data.iter().enumerate().map(|(i, r)| if i % 10 == 9 { None } else { Some(r[5].clone()) }).collect();
    let num = |j: usize| data.iter().map(|r| r[j].parse::<f64>().unwrap()).collect::<Vec<_>>();
    let mut df = df!("a" => num(1), "b" => num(4), "target" => label).unwrap();
    ParquetWriter::new(std::fs::File::create(&pq).unwrap()).finish(&mut df).unwrap();
    let text = init_check_run(dir, &pq, &[]);
    assert!(
        text.contains("format: parquet") && text.contains("label: target") && text.contains("transfer: {}") && text.contains("12 rows have no label"),
        "{text}"
    );
}

#[test]
fn gzipped_csv_is_read_like_any_other() {
    let tmp = tempfile::tempdir().unwrap();
    let gz = tmp.path().join("iris.csv.gz");
    let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::default());
    enc.write_all(&std::fs::read(shipped("iris.csv")).unwrap()).unwrap();
    enc.finish().unwrap();
    // The loader reads gzipped CSV, so init does too, and the recipe checks and runs.
    let text = init_check_run(tmp.path(), &gz, &[]);
    assert!(text.contains("gzip-compressed") && text.contains("label: species") && text.contains("iris.csv.gz"), "{text}");
}

#[test]
fn an_existing_recipe_is_not_overwritten_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("recipe.yaml");
    std::fs::write(&out, "mine\n").unwrap();
    let iris = shipped("iris.csv");
    let o = distill(&["init", iris.to_str().unwrap()], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("recipe.yaml exists; pass --force"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "mine\n");
    let o = distill(&["init", iris.to_str().unwrap(), "--label", "colour", "--out", "other.yaml"], tmp.path());
    assert!(stderr(&o).contains("--label colour: no such column (columns: sepal_length"), "{}", stderr(&o));
    let o = distill(&["init", iris.to_str().unwrap(), "--force"], tmp.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read_to_string(&out).unwrap().starts_with("# Written by `distill init"));
}
