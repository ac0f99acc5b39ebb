//! Data-quality checks, profile, CSV options, split checks and augmentation, through the public API.

use std::path::{Path, PathBuf};

use distill_data::*;
use distill_spec::{CheckSpec, DataSpec};
use polars::prelude::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/data")
}

fn quality() -> DataFrame {
    load_table(&fixtures().join("quality.csv"), None).unwrap()
}

fn checks(yaml: &str) -> Vec<CheckSpec> {
    serde_yaml::from_str(yaml).unwrap()
}

fn one(df: &DataFrame, yaml: &str) -> CheckResult {
    let report = run_checks(df, &checks(&format!("[{yaml}]"))).unwrap();
    assert_eq!(report.checks.len(), 1);
    report.checks.into_iter().next().unwrap()
}

fn rows(c: &CheckResult) -> Vec<usize> {
    c.samples.iter().map(|s| s.row).collect()
}

#[test]
fn schema_checks_columns_types_and_extras() {
    let df = quality();
    let ok = one(&df, "{kind: schema, columns: [id, a], types: {id: int, \"a\": float, name: string, label: string}}");
    assert_eq!(ok.status, CheckStatus::Pass, "{}", ok.message);
    let bad = one(&df, "{kind: schema, columns: [id, weight], types: {id: float, name: string}, allow_extra: false}");
    assert_eq!(bad.status, CheckStatus::Error);
    assert_eq!(bad.unit, CheckUnit::Columns);
    let found: Vec<(&str, &str)> = bad.samples.iter().map(|s| (s.column.as_str(), s.value.as_str())).collect();
    assert!(found.contains(&("weight", "missing")), "{found:?}");
    assert!(found.iter().any(|(c, v)| *c == "id" && v.contains("expected float")), "{found:?}");
    assert!(found.iter().any(|(c, v)| *c == "b" && v.contains("unexpected")), "{found:?}");
    // missing weight, id's type, extra a, b and label
    assert_eq!(bad.failing, 5, "{found:?}");
}

#[test]
fn not_null_finite_and_range() {
    let df = quality();
    let c = one(&df, "{kind: not_null, columns: all}");
    assert_eq!((c.status, c.failing, rows(&c)), (CheckStatus::Error, 1, vec![1]));
    assert_eq!(c.samples[0].column, "b");
    assert!((c.fraction - 0.1).abs() < 1e-12);
    assert_eq!(one(&df, "{kind: not_null, columns: [a, \"l*\"]}").status, CheckStatus::Pass);

    let c = one(&df, "{kind: finite, columns: all}");
    assert_eq!((c.status, rows(&c)), (CheckStatus::Error, vec![2, 4]), "{c:?}");
    assert!(c.message.contains("2 non-numeric columns skipped"), "{}", c.message);
    assert_eq!(one(&df, "{kind: finite, columns: [a, id]}").status, CheckStatus::Pass);

    let c = one(&df, "{kind: range, columns: a, min: 0, max: 1}");
    assert_eq!((c.status, rows(&c)), (CheckStatus::Error, vec![3]));
    assert_eq!(c.samples[0].value, "5");
    assert_eq!(one(&df, "{kind: range, columns: a, min: 0, max: 5}").status, CheckStatus::Pass);
}

#[test]
fn a_range_over_many_columns_counts_each_failing_row_once() {
    // 100 columns (counted a group of columns at a time): row r fails in columns r and r + 50.
    let columns: Vec<Column> = (0..100)
        .map(|j| {
            let values: Vec<f32> = (0..80)
                .map(|r| {
                    if r < 40 && (j == r || j == r + 50) {
                        300.0
                    } else if r == 70 {
                        f32::NAN
                    } else {
                        1.0
                    }
                })
                .collect();
            Column::new(format!("px{j}").into(), values)
        })
        .collect();
    let df = DataFrame::new(80, columns).unwrap();
    let c = one(&df, "{kind: range, columns: \"px*\", min: 0, max: 255}");
    assert_eq!((c.status, c.failing, c.total), (CheckStatus::Error, 40, 80), "{c:?}");
    assert_eq!(rows(&c), [0, 1, 2, 3, 4], "the first failing rows, NaN is not out of range");
    assert_eq!((c.samples[1].column.as_str(), c.samples[1].value.as_str()), ("px1", "300"));
    assert_eq!(one(&df, "{kind: range, columns: \"px*\", min: 0, max: 300}").failing, 0);
}

#[test]
fn thresholds_decide_the_status() {
    let df = quality();
    // 1 failing row of 10 = 10%.
    let status = |t: &str| one(&df, &format!("{{kind: range, columns: a, min: 0, max: 1, {t}}}")).status;
    assert_eq!(status("error: \"> 5%\""), CheckStatus::Error);
    assert_eq!(status("error: \"> 20%\""), CheckStatus::Warn, "below `error`, any failure warns when `warn` is left out");
    assert_eq!(status("warn: \"> 0\", error: \"> 20%\""), CheckStatus::Warn);
    assert_eq!(status("warn: \"> 1\", error: \"> 20%\""), CheckStatus::Pass);
    assert_eq!(status("warn: \">= 1\""), CheckStatus::Warn);
    assert_eq!(status("warn: 0"), CheckStatus::Warn, "a bare number is a count");
    assert_eq!(status("error: \">= 10%\""), CheckStatus::Error);
    assert_eq!(status("severity: warn"), CheckStatus::Warn);
    assert_eq!(status("severity: error"), CheckStatus::Error);
    assert_eq!(status("id: plain"), CheckStatus::Error, "no thresholds: any failure is an error");
}

#[test]
fn in_set_unique_and_row_count() {
    let df = quality();
    let c = one(&df, "{kind: in_set, column: label, values: [cat, dog]}");
    assert_eq!((c.status, rows(&c)), (CheckStatus::Error, vec![9]));
    assert_eq!(c.samples[0].value, "bird");
    assert_eq!(one(&df, "{kind: in_set, column: id, values: [0, 1, 2, 3, 4, 5, 7, 8, 9]}").status, CheckStatus::Pass);

    let c = one(&df, "{kind: unique}");
    assert_eq!((c.failing, rows(&c)), (1, vec![6]));
    assert!(c.samples[0].value.contains("repeats row 5"), "{}", c.samples[0].value);
    let c = one(&df, "{kind: unique, columns: [id]}");
    assert_eq!(rows(&c), vec![6]);
    let c = one(&df, "{kind: unique, columns: name, samples: 2}");
    assert_eq!(c.failing, 10 - 3, "three distinct names; every repeat counts");
    assert_eq!(c.samples.len(), 2);
    assert_eq!(one(&df, "{kind: unique, columns: [a, b, name], samples: 0}").samples.len(), 0);

    let c = one(&df, "{kind: row_count, min: 20}");
    assert_eq!((c.status, c.failing, c.unit), (CheckStatus::Error, 1, CheckUnit::Table));
    assert_eq!(one(&df, "{kind: row_count, min: 20, severity: warn}").status, CheckStatus::Warn);
    assert_eq!(one(&df, "{kind: row_count, min: 5, max: 10}").status, CheckStatus::Pass);
}

#[test]
fn class_balance_uses_the_column_or_the_label() {
    let df = quality();
    // cat 7, dog 2, bird 1.
    let c = one(&df, "{kind: class_balance, column: label, min_fraction: 0.15}");
    assert_eq!((c.status, c.failing, c.total, c.unit), (CheckStatus::Error, 1, 3, CheckUnit::Classes));
    assert!(c.samples[0].value.contains("class `bird`: 1 rows"), "{}", c.samples[0].value);
    let c = one(&df, "{kind: class_balance, column: label, max_ratio: 3}");
    assert_eq!(c.failing, 2, "bird (7:1) and dog (7:2)");
    assert_eq!(one(&df, "{kind: class_balance, column: label, max_ratio: 7}").status, CheckStatus::Pass);

    let spec = checks("[{kind: class_balance, min_fraction: 0.15}]");
    let without = run_checks(&df, &spec).unwrap();
    assert_eq!(without.checks[0].status, CheckStatus::Error);
    assert!(without.checks[0].message.contains("needs `column`"), "{}", without.checks[0].message);
    let with = run_checks_with_label(&df, &spec, Some("label")).unwrap();
    assert_eq!(with.checks[0].failing, 1);
    let transfer = df.drop("label").unwrap();
    let skipped = run_checks_with_label(&transfer, &spec, Some("label")).unwrap();
    assert_eq!(skipped.checks[0].status, CheckStatus::Pass, "{}", skipped.checks[0].message);
}

#[test]
fn every_check_runs_even_when_one_cannot() {
    let df = quality();
    let report = run_checks(
        &df,
        &checks("[{id: typo, kind: not_null, columns: [nope]}, {id: text, kind: range, columns: name, min: 0}, {id: size, kind: row_count, min: 1}, {id: leak, kind: leakage}]"),
    )
    .unwrap();
    let ids: Vec<&str> = report.checks.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["typo", "text", "size"], "split checks are left to run_split_checks");
    assert_eq!(report.checks[0].status, CheckStatus::Error);
    assert!(report.checks[0].message.contains("no column matches `nope`"), "{}", report.checks[0].message);
    assert!(report.checks[1].message.contains("not numeric"), "{}", report.checks[1].message);
    assert_eq!(report.checks[2].status, CheckStatus::Pass);
    assert!(report.has_errors());
    let table = report.table();
    assert!(table.contains("typo") && table.contains("ERROR"), "{table}");
}

#[test]
fn samples_name_row_column_and_value_in_the_table() {
    let report = run_checks(&quality(), &checks("[{id: unit-a, kind: range, columns: a, max: 1}, {id: cols, kind: schema, columns: [zz]}]")).unwrap();
    let table = report.table();
    assert!(table.contains("row 3 column a: 5"), "{table}");
    assert!(table.contains("zz: missing"), "{table}");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["checks"][0]["unit"], "rows");
    assert_eq!(json["checks"][1]["unit"], "columns");
}

/// `profile` output parses as the recipe's `checks:`, validates inside a pipeline, and passes on
/// the data it came from.
fn profile_round_trip(df: &DataFrame, label: Option<&str>) -> (String, Vec<CheckSpec>) {
    let text = profile(df, label);
    #[derive(serde::Deserialize)]
    struct Doc {
        checks: Vec<CheckSpec>,
    }
    let doc: Doc = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let indented: String = text.lines().map(|l| format!("  {l}\n")).collect();
    let pipeline = format!(
        "version: 1\nname: p\ndata:\n  source: {{path: x.csv}}\n  label: {}\n{indented}teacher: {{model: {{hidden: [4]}}}}\nstudent: {{model: {{hidden: [2]}}}}\n",
        label.unwrap_or("label")
    );
    if let Err(e) = distill_spec::parse_str(&pipeline, "p.yaml".as_ref(), &[]) {
        panic!("{e}\n{pipeline}");
    }
    let report = run_checks_with_label(df, &doc.checks, label).unwrap();
    for c in &report.checks {
        assert_ne!(c.status, CheckStatus::Error, "{} fails on its own data: {}\n{text}", c.id, c.message);
    }
    (text, doc.checks)
}

#[test]
fn profile_of_digits_uses_a_glob_and_passes() {
    let df = load_table(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/digits.csv"), None).unwrap();
    let (text, specs) = profile_round_trip(&df, Some("label"));
    assert!(text.contains("columns: \"p*\", min: 0, max: 16"), "{text}");
    assert!(text.contains("kind: in_set, column: label, values: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"), "{text}");
    assert!(text.contains("not_null, columns: all"), "{text}");
    let kinds: Vec<&str> = specs.iter().map(|c| c.kind.as_str()).collect();
    for k in ["schema", "row_count", "not_null", "range", "in_set", "unique", "class_balance", "leakage", "drift"] {
        assert!(kinds.contains(&k), "{k} missing: {text}");
    }
}

#[test]
fn profile_of_messy_data_passes_and_quotes_what_needs_it() {
    let df = quality();
    let (text, _) = profile_round_trip(&df, Some("label"));
    assert!(text.contains("kind: not_null, columns: b, warn: \"> 0\", error: \"> 20%\""), "{text}");
    assert!(text.contains("unique-rows, kind: unique, severity: warn"), "{text}");
    assert!(text.contains("values: [bird, cat, dog]"), "{text}");
    let iris = load_table(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/iris.csv"), None).unwrap();
    let label = iris.get_column_names().last().unwrap().to_string();
    profile_round_trip(&iris, Some(&label));
    // Odd column names and float32 bounds round outwards.
    let odd = df!("weird name" => [0.1f32, 0.3, 0.7], "yes" => ["true", "no", "1"], "k" => [1i64, 2, 3]).unwrap();
    let (text, _) = profile_round_trip(&odd, None);
    assert!(text.contains("\"weird name\""), "{text}");
}

#[test]
fn csv_options_header_delimiter_nulls_comments_names() {
    let source: distill_spec::SourceSpec = serde_yaml::from_str(
        "{path: semicolon.txt, format: csv, header: false, delimiter: \";\", null_values: [NA, \"?\"], comment: \"#\", column_names: [id, x, z, cls]}",
    )
    .unwrap();
    let df = load_source(&source, &fixtures()).unwrap();
    assert_eq!(df.shape(), (3, 4));
    assert_eq!(df.get_column_names().iter().map(|c| c.as_str()).collect::<Vec<_>>(), ["id", "x", "z", "cls"]);
    assert_eq!(df.column("x").unwrap().null_count(), 1);
    assert_eq!(df.column("z").unwrap().null_count(), 1);
    assert!(df.column("x").unwrap().dtype().is_float());

    let mut wrong = source.clone();
    wrong.column_names = Some(vec!["a".into()]);
    let err = load_source(&wrong, &fixtures()).unwrap_err().to_string();
    assert!(err.contains("semicolon.txt") && err.contains("1 names but the file has 4 columns"), "{err}");
    let mut headerless = source.clone();
    headerless.column_names = None;
    let df = load_source(&headerless, &fixtures()).unwrap();
    assert_eq!(df.get_column_names()[0].as_str(), "column_1");
}

// ---- split checks and augmentation -------------------------------------------------------

fn data_spec(extra: &str) -> DataSpec {
    serde_yaml::from_str(&format!("source: {{path: x.csv}}\nlabel: y\nsplit: {{test: 0.25, val: 0.25}}\nscale: {{kind: standard}}\n{extra}")).unwrap()
}

fn frame(n: usize) -> DataFrame {
    let a: Vec<f64> = (0..n).map(|i| (i % 17) as f64).collect();
    let b: Vec<f64> = (0..n).map(|i| ((i * 7) % 11) as f64 * 0.5).collect();
    let y: Vec<i64> = (0..n).map(|i| if i % 5 == 0 { 1 } else { 0 }).collect();
    df!("a" => a, "b" => b, "y" => y).unwrap()
}

fn tables(source: DataFrame, test: Option<DataFrame>) -> Tables {
    Tables { source, test, transfer: None }
}

#[test]
fn leakage_finds_held_out_rows_identical_to_training_rows() {
    // 17 × 11 feature combinations repeat with period 187: 400 rows share many feature rows.
    let p = prepare(&tables(frame(400), None), &data_spec(""), 1).unwrap();
    let c = check_leakage(&p, &checks("[{id: leak, kind: leakage}]")[0]);
    assert_eq!(c.status, CheckStatus::Error);
    assert!(c.failing > 0 && c.total == p.val.len() + p.test.len());
    assert!(c.samples[0].value.contains("has the features of training row"), "{}", c.samples[0].value);
    // Unique rows: no leakage.
    let p = prepare(&tables(frame(150), None), &data_spec(""), 1).unwrap();
    let c = check_leakage(&p, &checks("[{kind: leakage}]")[0]);
    assert_eq!((c.status, c.failing), (CheckStatus::Pass, 0), "{}", c.message);
    // Comparing fewer features finds more.
    let c = check_leakage(&p, &checks("[{kind: leakage, columns: [a], warn: \"> 0\"}]")[0]);
    assert_eq!(c.status, CheckStatus::Warn);
    assert!(c.failing > 0);
}

#[test]
fn drift_compares_train_and_test_per_feature() {
    let shifted = {
        let mut t = frame(100);
        let a: Vec<f64> = (0..100).map(|i| (i % 17) as f64 + 9.0).collect();
        t.replace("a", Column::new("a".into(), a)).unwrap();
        t
    };
    let spec = data_spec("");
    let mut spec_file = spec.clone();
    spec_file.split.test = None;
    let p = prepare(&tables(frame(300), Some(shifted)), &spec_file, 1).unwrap();
    for method in ["psi", "ks"] {
        let c = check_drift(&p, &checks(&format!("[{{id: d, kind: drift, method: {method}}}]"))[0]);
        assert_eq!((c.status, c.failing, c.total), (CheckStatus::Error, 1, 2), "{method}: {}", c.message);
        assert_eq!(c.samples[0].column, "a");
    }
    let same = prepare(&tables(frame(300), Some(frame(100))), &spec_file, 1).unwrap();
    let report = run_split_checks(&same, &checks("[{kind: drift, method: ks}, {kind: drift}, {kind: not_null}]")).unwrap();
    assert_eq!(report.checks.len(), 2, "only split checks run here");
    for c in &report.checks {
        assert_eq!(c.status, CheckStatus::Pass, "{}", c.message);
    }
    assert!(ks(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]) == 0.0 && ks(&[1.0, 2.0], &[5.0, 6.0]) == 1.0);
    assert!(psi(&[1.0, 2.0, 3.0, 4.0], &[1.0, 2.0, 3.0, 4.0], 4).abs() < 1e-12);
}

#[test]
fn augmentation_is_seeded_training_only_and_fingerprinted() {
    let plain = prepare(&tables(frame(200), None), &data_spec(""), 3).unwrap();
    let augment = "augment:\n  - {kind: gaussian_noise, std: 0.1, copies: 2}\n  - {kind: mixup, alpha: 0.4}\n  - {kind: oversample}\n  - {kind: oversample, method: duplicate, ratio: 0.5}\n";
    let a = prepare(&tables(frame(200), None), &data_spec(augment), 3).unwrap();
    let again = prepare(&tables(frame(200), None), &data_spec(augment), 3).unwrap();
    let other_seed = prepare(&tables(frame(200), None), &data_spec(augment), 4).unwrap();
    assert_eq!(a.train, again.train, "same seed, same rows");
    assert_eq!(a.fingerprint, again.fingerprint);
    assert_ne!(a.fingerprint, plain.fingerprint, "augmented rows are part of the data's identity");
    assert_ne!(a.train.x, other_seed.train.x);
    // Validation, test and the original training rows are untouched, scaling included.
    assert_eq!(a.val, plain.val);
    assert_eq!(a.test, plain.test);
    assert_eq!(a.train.original(), plain.train);

    let n = plain.train.len();
    let ids = &a.train.row_ids[n..];
    assert!(ids.iter().all(|&id| is_augmented(id)));
    assert_eq!(ids[0], augment_row_id(0, 0));
    assert_eq!(ids.iter().filter(|&&id| (augment_row_id(0, 0)..augment_row_id(1, 0)).contains(&id)).count(), 2 * n);
    let mixed: Vec<usize> = (0..a.train.len()).filter(|&i| (augment_row_id(1, 0)..augment_row_id(2, 0)).contains(&a.train.row_ids[i])).collect();
    assert_eq!(mixed.len(), n);
    assert!(mixed.iter().all(|&i| a.train.state[i] == LabelState::Unlabelled), "mixup rows carry no label");
    // SMOTE tops the rare class up to the common one; duplicate to half of it, which it has.
    let count = |k: usize, class: u32| {
        (0..a.train.len()).filter(|&i| (augment_row_id(k, 0)..augment_row_id(k + 1, 0)).contains(&a.train.row_ids[i]) && a.train.y[i] == class).count()
    };
    let (common, rare) = (plain.train.y.iter().filter(|&&y| y == 0).count(), plain.train.y.iter().filter(|&&y| y == 1).count());
    assert_eq!(count(2, 1), common - rare);
    assert_eq!(count(2, 0), 0);
    assert_eq!(count(3, 1), (common as f64 * 0.5).ceil() as usize - rare);
    assert_eq!(a.train.augmented(), a.train.len() - n);
    // Split checks ignore augmented rows.
    let leak = check_leakage(&a, &checks("[{kind: leakage}]")[0]);
    let leak_plain = check_leakage(&plain, &checks("[{kind: leakage}]")[0]);
    assert_eq!(leak.failing, leak_plain.failing);
}

#[test]
fn smote_rows_lie_between_same_class_rows() {
    let mut spec = data_spec("augment: [{kind: oversample, neighbours: 2}]");
    spec.scale = Default::default();
    let p = prepare(&tables(frame(200), None), &spec, 5).unwrap();
    let width = p.features();
    let rare: Vec<&[f32]> =
        (0..p.train.len()).filter(|&i| !is_augmented(p.train.row_ids[i]) && p.train.y[i] == 1).map(|i| &p.train.x[i * width..(i + 1) * width]).collect();
    let (lo, hi) = rare.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), r| (lo.min(r[0]), hi.max(r[0])));
    for i in (0..p.train.len()).filter(|&i| is_augmented(p.train.row_ids[i])) {
        assert_eq!(p.train.y[i], 1);
        assert_eq!(p.train.state[i], LabelState::Labelled);
        let v = p.train.x[i * width];
        assert!((lo..=hi).contains(&v), "{v} outside [{lo}, {hi}]");
    }
}

#[test]
fn image_augmentations_need_and_use_the_shape() {
    // 2×3 images; pixel values name their position.
    let n = 40;
    let mut cols: Vec<Column> = (0..6).map(|j| Column::new(format!("px{j}").into(), (0..n).map(|i| (j * 10 + i % 3) as f32).collect::<Vec<f32>>())).collect();
    cols.push(Column::new("y".into(), (0..n).map(|i| (i % 2) as i64).collect::<Vec<i64>>()));
    let df = DataFrame::new(n, cols).unwrap();
    let base = "source: {path: x.csv}\nlabel: y\nsplit: {test: 0.25}\n";
    let spec = |extra: &str| -> DataSpec { serde_yaml::from_str(&format!("{base}{extra}")).unwrap() };
    let err = prepare(&tables(df.clone(), None), &spec("augment: [{kind: flip}]"), 1).unwrap_err().to_string();
    assert!(err.contains("data.augment[0] (flip)") && err.contains("data.image"), "{err}");
    let err = prepare(&tables(df.clone(), None), &spec("image: {height: 2, width: 2}\naugment: [{kind: flip}]"), 1).unwrap_err().to_string();
    assert!(err.contains("6 features"), "{err}");

    let p = prepare(&tables(df.clone(), None), &spec("image: {height: 2, width: 3}\naugment: [{kind: flip}, {kind: shift, pixels: 1, copies: 3}]"), 1).unwrap();
    let again =
        prepare(&tables(df.clone(), None), &spec("image: {height: 2, width: 3}\naugment: [{kind: flip}, {kind: shift, pixels: 1, copies: 3}]"), 1).unwrap();
    assert_eq!(p.train, again.train, "same seed, same shifted and flipped rows");
    assert_eq!(p.image.map(|i| (i.height, i.width)), Some((2, 3)));
    let n_train = p.train.original().len();
    assert_eq!(p.train.augmented(), n_train * 4);
    let first = &p.train.x[..6];
    let flipped = &p.train.x[n_train * 6..n_train * 6 + 6];
    assert_eq!(flipped, [first[2], first[1], first[0], first[5], first[4], first[3]]);
    assert_eq!(p.train.y[n_train], p.train.y[0]);
    // A shifted image keeps some pixels and zero-fills the rest.
    let shifted = &p.train.x[2 * n_train * 6..2 * n_train * 6 + 6];
    assert!(shifted.contains(&0.0) && shifted != first, "{shifted:?}");
}
