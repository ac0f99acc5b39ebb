//! The data stage through the `distill` binary: planted defects, the `sql` check, every loader
//! (CSV options, Parquet, IDX plain and gzipped) and bad input files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn distill(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_distill")).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).env_remove("RUST_LOG").output().expect("distill runs")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data").join(name)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `distill check` with `--json`; the exit code and the report.
fn check(recipe: &Path, extra: &[&str]) -> (Option<i32>, Value, Output) {
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("checks.json");
    let mut args = vec!["check", recipe.to_str().unwrap(), "--json", report.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = distill(&args);
    let value = if report.exists() { json(&report) } else { Value::Null };
    (o.status.code(), value, o)
}

/// A recipe in `dir` over `source` (a YAML mapping) with `checks` (YAML list items, one a line).
fn recipe(dir: &Path, source: &str, checks: &[&str]) -> PathBuf {
    let items: String = checks.iter().map(|c| format!("    - {c}\n")).collect();
    let text = format!(
        "version: 1\nname: t\ndata:\n  source: {source}\n  label: label\n  split: {{test: 0.25}}\n  checks:\n{items}teacher: {{model: {{hidden: [4]}}}}\nstudent: {{model: {{hidden: [2]}}}}\n"
    );
    let path = dir.join("recipe.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn by_id<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("no check {id} in {report}"))
}

fn sample_rows(c: &Value) -> Vec<u64> {
    c["samples"].as_array().unwrap().iter().map(|s| s["row"].as_u64().unwrap()).collect()
}

/// The ids of the checks at error level, in report order.
fn errors(report: &Value) -> Vec<String> {
    report["checks"].as_array().unwrap().iter().filter(|c| c["status"] == "error").map(|c| c["id"].as_str().unwrap().to_string()).collect()
}

fn assert_planted(report: &Value) {
    assert_eq!(errors(report), ["nulls", "f2-range", "dupes", "leak"], "{report:#}");
    let nulls = by_id(report, "nulls");
    assert_eq!((nulls["failing"].as_u64(), sample_rows(nulls)), (Some(1), vec![7]));
    assert_eq!(nulls["samples"][0]["column"], "note");
    let range = by_id(report, "f2-range");
    assert_eq!((range["failing"].as_u64(), sample_rows(range)), (Some(1), vec![20]));
    assert_eq!((range["samples"][0]["column"].as_str(), range["samples"][0]["value"].as_str()), (Some("f2"), Some("42")));
    let dupes = by_id(report, "dupes");
    assert_eq!((dupes["failing"].as_u64(), sample_rows(dupes)), (Some(1), vec![12]));
    assert!(dupes["samples"][0]["value"].as_str().unwrap().ends_with("repeats row 11"), "{dupes}");
    let leak = by_id(report, "leak");
    assert_eq!((leak["failing"].as_u64(), sample_rows(leak)), (Some(1), vec![3]));
    assert_eq!(leak["samples"][0]["value"], "test_source row 3 has the features of training row 5");
    // The other checks ran and passed, on the source and on the test file.
    for id in ["columns", "finite", "labels", "size", "balance", "positive", "test_source:nulls", "test_source:dupes", "test_source:positive"] {
        assert_eq!(by_id(report, id)["status"], "pass", "{id}: {report:#}");
    }
}

#[test]
fn planted_defects_are_exactly_what_check_and_run_report() {
    let recipe = fixture("planted.yaml");
    let (code, report, o) = check(&recipe, &[]);
    assert_eq!(code, Some(1), "{}", stderr(&o));
    assert_planted(&report);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("row 20 column f2: 42") && table.contains("row 7 column note: null"), "{table}");

    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = distill(&["run", recipe.to_str().unwrap(), "--out", out.to_str().unwrap(), "--cache-dir", tmp.path().join("c").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_planted(&json(&out.join("checks.json")));
    assert!(!out.join("metrics.json").exists() && !out.join("teacher.safetensors").exists(), "stopped before the teacher");
}

#[test]
fn sql_check_fails_false_and_null_rows_and_shows_what_it_read() {
    let tmp = tempfile::tempdir().unwrap();
    let source = format!("{{path: {}}}", fixture("planted.csv").display());
    let r = recipe(
        tmp.path(),
        &source,
        &[
            "{id: ok, kind: sql, predicate: \"f1 > 0 AND label IN (0, 1)\"}",
            "{id: small, kind: sql, predicate: \"f2 < 10\", severity: warn}",
            "{id: noted, kind: sql, predicate: \"note <> 'zz'\"}",
            "{id: either, kind: sql, predicate: \"f1 < 2 OR f3 > 5\", samples: 2, warn: \"> 0\", error: \"> 50%\"}",
        ],
    );
    let (code, report, o) = check(&r, &[]);
    assert_eq!(code, Some(1), "{}", stderr(&o));
    assert_eq!(by_id(&report, "ok")["status"], "pass");
    let small = by_id(&report, "small");
    assert_eq!((small["status"].as_str(), small["failing"].as_u64(), sample_rows(small)), (Some("warn"), Some(1), vec![20]));
    assert_eq!((small["samples"][0]["column"].as_str(), small["samples"][0]["value"].as_str()), (Some("f2"), Some("f2=42")));
    // A null makes the predicate null: the row fails.
    let noted = by_id(&report, "noted");
    assert_eq!((noted["status"].as_str(), noted["failing"].as_u64(), sample_rows(noted)), (Some("error"), Some(1), vec![7]));
    assert_eq!(noted["samples"][0]["value"], "note=null");
    let either = by_id(&report, "either");
    let failing = either["failing"].as_u64().unwrap();
    assert!(failing > 20 && failing < 40 && either["status"] == "error", "{either}");
    assert_eq!(sample_rows(either), [1, 3], "the first failing rows, capped by `samples`");
    assert!((either["fraction"].as_f64().unwrap() - failing as f64 / 40.0).abs() < 1e-12);
}

#[test]
fn a_bad_sql_predicate_is_an_error_naming_the_check_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let source = format!("{{path: {}}}", fixture("planted.csv").display());
    for (predicate, says, validate_catches) in
        [("f1 >>> 0", "cannot parse", true), ("nope > 0", "unknown column `nope`", false), ("f1 + 1", "not a true/false condition", false)]
    {
        let r = recipe(tmp.path(), &source, &["{id: fine, kind: not_null}", &format!("{{id: bad, kind: sql, predicate: \"{predicate}\"}}")]);
        let (code, report, o) = check(&r, &[]);
        let err = stderr(&o);
        assert_eq!(code, Some(2), "{predicate}: {err}");
        assert!(err.contains("data.checks[1] (bad).predicate") && err.contains(says), "{predicate}: {err}");
        assert!(!err.contains("panicked") && report.is_null(), "{err}");
        let v = distill(&["validate", r.to_str().unwrap()]);
        assert_eq!(v.status.code(), Some(if validate_catches { 2 } else { 0 }), "{predicate}: {}", stderr(&v));
        if validate_catches {
            assert!(stderr(&v).contains("recipe.yaml: data.checks[1] (bad).predicate: cannot parse"), "{}", stderr(&v));
        }
    }
    let r = recipe(tmp.path(), &source, &["{id: bad, kind: sql}"]);
    let v = distill(&["validate", r.to_str().unwrap()]);
    assert_eq!(v.status.code(), Some(2));
    assert!(stderr(&v).contains("data.checks[0]") && stderr(&v).contains("needs `predicate`"), "{}", stderr(&v));
}

#[test]
fn csv_without_header_with_delimiter_nulls_and_comments_loads_through_a_recipe() {
    let tmp = tempfile::tempdir().unwrap();
    let source = format!(
        "{{path: {}, format: csv, header: false, delimiter: \";\", null_values: [NA, \"?\"], comment: \"#\", column_names: [id, x, z, label]}}",
        fixture("semicolon.txt").display()
    );
    let r = recipe(
        tmp.path(),
        &source,
        &[
            "{id: nulls, kind: not_null, columns: [x, z]}",
            "{id: size, kind: row_count, min: 3, max: 3}",
            "{id: types, kind: schema, types: {x: float, z: float, label: string}}",
        ],
    );
    let (code, report, o) = check(&r, &[]);
    assert_eq!(code, Some(1), "{}", stderr(&o));
    assert_eq!(report["rows"], 3, "comment lines skipped");
    let nulls = by_id(&report, "nulls");
    assert_eq!(sample_rows(nulls), [0, 1], "`NA` and `?` are nulls");
    assert_eq!(nulls["samples"][0]["column"], "z");
    assert_eq!(nulls["samples"][1]["column"], "x");
    assert_eq!(by_id(&report, "size")["status"], "pass");
    assert_eq!(by_id(&report, "types")["status"], "pass", "{report:#}");
}

#[test]
fn parquet_sources_are_checked_like_csv() {
    let tmp = tempfile::tempdir().unwrap();
    let parquet = fixture("planted.parquet");
    let checks = [
        "{id: nulls, kind: not_null}",
        "{id: range, kind: range, columns: \"f*\", min: 0, max: 10}",
        "{id: dupes, kind: unique}",
        "{id: types, kind: schema, types: {\"f*\": float, note: string, label: int}}",
    ];
    let (_, from_parquet, _) = check(&recipe(tmp.path(), &format!("{{path: {}}}", parquet.display()), &checks), &[]);
    let (code, from_csv, o) = check(&recipe(tmp.path(), &format!("{{path: {}}}", fixture("planted.csv").display()), &checks), &[]);
    assert_eq!(code, Some(1), "{}", stderr(&o));
    assert_eq!(from_parquet["rows"], 40);
    for id in ["nulls", "range", "dupes", "types"] {
        assert_eq!(by_id(&from_parquet, id), by_id(&from_csv, id), "{id}");
    }
    assert_eq!(sample_rows(by_id(&from_parquet, "range")), [20]);
}

fn idx(dims: &[u32], values: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend(values);
    b
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn idx_images_plain_and_gzipped_become_pixel_columns() {
    let tmp = tempfile::tempdir().unwrap();
    // 20 images of 2×2 pixels; image i has pixel values 10·i + p, so image 3's pixel 2 is 32.
    let n = 20u8;
    let pixels: Vec<u8> = (0..n).flat_map(|i| (0..4).map(move |p| (10 * i as u32 + p) as u8)).collect();
    let labels: Vec<u8> = (0..n).map(|i| i % 2).collect();
    std::fs::write(tmp.path().join("images-idx3-ubyte"), idx(&[n as u32, 2, 2], &pixels)).unwrap();
    std::fs::write(tmp.path().join("labels-idx1-ubyte"), idx(&[n as u32], &labels)).unwrap();
    std::fs::write(tmp.path().join("images-idx3-ubyte.gz"), gzip(&idx(&[n as u32, 2, 2], &pixels))).unwrap();
    std::fs::write(tmp.path().join("labels-idx1-ubyte.gz"), gzip(&idx(&[n as u32], &labels))).unwrap();
    let checks = [
        "{id: shape, kind: schema, columns: [px0, px1, px2, px3, label], allow_extra: false}",
        "{id: bright, kind: range, columns: \"px*\", max: 150}",
        "{id: size, kind: row_count, min: 20, max: 20}",
    ];
    let mut reports = Vec::new();
    for suffix in ["", ".gz"] {
        let source = format!("{{path: images-idx3-ubyte{suffix}, labels: labels-idx1-ubyte{suffix}}}");
        let (code, report, o) = check(&recipe(tmp.path(), &source, &checks), &[]);
        assert_eq!(code, Some(1), "{}", stderr(&o));
        assert_eq!(report["rows"], 20);
        assert_eq!(by_id(&report, "shape")["status"], "pass", "{report:#}");
        assert_eq!(by_id(&report, "size")["status"], "pass");
        let bright = by_id(&report, "bright");
        // Images 15..19 have pixels above 150: 15·10 + p for p ≥ 1, and every pixel of 16..19.
        assert_eq!((bright["failing"].as_u64(), sample_rows(bright)), (Some(5), vec![15, 16, 17, 18, 19]));
        assert_eq!((bright["samples"][0]["column"].as_str(), bright["samples"][0]["value"].as_str()), (Some("px1"), Some("151")));
        reports.push(report);
    }
    assert_eq!(reports[0], reports[1], "gzipped and plain files load the same");
}

/// `distill check` on `bad-input.yaml` with its source swapped for `file`; exit 2 and the error.
fn bad_input(overrides: &[&str]) -> String {
    let mut args = vec!["check", "tests/fixtures/data/bad-input.yaml"];
    for o in overrides {
        args.extend(["--set", o]);
    }
    let o = distill(&args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{overrides:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn bad_input_files_are_errors_naming_file_row_and_column() {
    let o = distill(&["check", "tests/fixtures/data/bad-input.yaml"]);
    assert_eq!(o.status.code(), Some(0), "the clean file passes: {}", stderr(&o));

    let err = bad_input(&["data.source.path=ragged.csv"]);
    assert!(err.contains("ragged.csv") && err.contains("line 6") && err.contains("4 fields"), "{err}");
    let err = bad_input(&["data.source.path=non-numeric.csv"]);
    assert!(err.contains("non-numeric.csv") && err.contains("column `b`") && err.contains("row 7: `abc`"), "{err}");
    let err = bad_input(&["data.source.path=empty.csv"]);
    assert!(err.contains("empty.csv") && err.contains("empty"), "{err}");
    let err = bad_input(&["data.source.path=header-only.csv"]);
    assert!(err.contains("header-only.csv") && err.contains("no rows"), "{err}");
    let err = bad_input(&["data.label=species"]);
    assert!(err.contains("clean.csv") && err.contains("data.label") && err.contains("no column `species`"), "{err}");
    let err = bad_input(&["data.source.path=null-label.csv"]);
    assert!(err.contains("null-label.csv") && err.contains("column `label` row 4: the label is null"), "{err}");
    let err = bad_input(&["data.features.include=[\"z*\"]"]);
    assert!(err.contains("clean.csv") && err.contains("data.features.include") && err.contains("no column matches `z*`"), "{err}");

    // An IDX file whose header promises more values than it holds.
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("short-idx3-ubyte.gz");
    std::fs::write(&images, gzip(&idx(&[3, 2, 2], &[0; 10]))).unwrap();
    let err = bad_input(&[&format!("data.source.path={}", images.display())]);
    assert!(err.contains("short-idx3-ubyte.gz") && err.contains("need 12 values, the file has 10"), "{err}");
}
