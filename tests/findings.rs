//! Values distill used to clamp or ignore without a word, and sizes that cannot fit, through the
//! binary: each is a warning under the run's summary (and in metrics.json) or an error, naming
//! the key; sizes are refused before anything is allocated, with the estimate and the memory.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

fn distill(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = common::distill_command(args, Path::new(env!("CARGO_MANIFEST_DIR")));
    c.envs(env.iter().copied()).output().expect("distill runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A recipe in `dir` over `data` (a CSV there) whose sections get the given extra lines.
fn recipe(dir: &Path, data: &str, label: &str, data_extra: &str, teacher_train: &str, student_train: &str, extra: &str) -> PathBuf {
    let text = format!(
        "version: 1\nname: findings\nseed: 1\ndata:\n  source: {{path: {data}}}\n  label: {label}\n  split: {{test: 0.3, stratify: true}}\n{data_extra}\
         teacher:\n  model: {{hidden: [4]}}\n  train: {teacher_train}\nstudent:\n  model: {{hidden: [2]}}\n  train: {student_train}\n  baseline: true\n{extra}"
    );
    let path = dir.join("findings.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run(recipe: &Path, dir: &Path, env: &[(&str, &str)]) -> (Output, PathBuf) {
    let (out, cache) = (dir.join("run"), dir.join("cache"));
    let args = ["run", recipe.to_str().unwrap(), "--out", out.to_str().unwrap(), "--cache-dir", cache.to_str().unwrap()];
    (distill(&args, env), out)
}

#[test]
fn accepted_but_odd_values_are_warnings_under_the_summary_naming_their_keys() {
    let tmp = tempfile::tempdir().unwrap();
    // A header that repeats `a`, and fractional float labels (two values, so two classes).
    let mut csv = String::from("a,b,a,y\n");
    for i in 0..60 {
        csv += &format!("{},{},{},{}\n", i % 7, (i * 3) % 11, i % 5, if i % 2 == 0 { "0.5" } else { "1.5" });
    }
    std::fs::write(tmp.path().join("d.csv"), csv).unwrap();
    let checks = "  checks:\n    - {id: plenty, kind: row_count, min: 1000, severity: warn}\n";
    let student = "{epochs: 2, batch: 500, schedule: {kind: cosine, warmup_epochs: 4}}";
    let r = recipe(tmp.path(), "d.csv", "y", checks, "{epochs: 2, batch: 8}", student, "evaluate: {top_k: 5}\n");

    let o = distill(&["validate", r.to_str().unwrap()], &[]);
    assert!(
        o.status.success() && text(&o).contains("warning: ") && text(&o).contains("student.train.schedule.warmup_epochs: 4 warm-up epochs of 2"),
        "{}",
        text(&o)
    );

    let (o, out) = run(&r, tmp.path(), &[]);
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{}", text(&o));
    let summary = &stdout[stdout.find("warning(s):").unwrap_or_else(|| panic!("no warnings under the summary: {stdout}"))..];
    for expected in [
        "warning: student.train.schedule.warmup_epochs: 4 warm-up epochs",
        "warning: student.train.batch: 500 is more than the 42 rows the student trains on",
        "warning: student.train.batch: 500 is more than the 42 rows the baseline trains on",
        "warning: evaluate.top_k: 5 is more than the 2 classes",
        "warning: data.label: column `y` holds fractional numbers, so each of its 2 distinct values is a class",
        "warning: data.source: the header repeats column names, so they were renamed: `a_duplicated_0` (a second `a`)",
        "warning: data.checks: check `plenty` (row_count) warned",
    ] {
        assert!(summary.contains(expected), "missing {expected:?} in:\n{summary}");
    }
    assert!(!summary.contains("teacher.train.batch"), "the teacher's batch fits: {summary}");
    let metrics: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    let keys: Vec<&str> = metrics["warnings"].as_array().unwrap().iter().map(|w| w["key"].as_str().unwrap()).collect();
    assert!(keys.contains(&"evaluate.top_k") && keys.contains(&"data.checks") && keys.contains(&"data.label"), "{keys:?}");
}

#[test]
fn duplicate_check_ids_and_a_plugin_listed_twice_are_errors_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let iris = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/iris.csv");
    let checks = "  checks:\n    - {kind: not_null, columns: all}\n    - {kind: not_null, columns: [species]}\n    - {id: n, kind: row_count, min: 1}\n    - {id: n, kind: unique}\n";
    let r = recipe(tmp.path(), iris.to_str().unwrap(), "species", checks, "{epochs: 1}", "{epochs: 1}", "plugins: [{path: lib.so}, {path: lib.so}]\n");
    let o = distill(&["validate", r.to_str().unwrap()], &[]);
    let e = text(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("data.checks[1]: check id `not_null` is also data.checks[0]'s"), "{e}");
    assert!(e.contains("data.checks[3].id: check id `n` is also data.checks[2]'s"), "{e}");
    assert!(e.contains("plugins[1].path: `lib.so` is listed twice (also plugins[0])"), "{e}");
}

#[test]
fn sizes_that_cannot_fit_are_refused_before_allocation_with_key_estimate_and_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let iris = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/iris.csv");
    let iris = iris.to_str().unwrap();
    // Refused by `validate` already: no data can make these fit.
    for (key, teacher, student) in [("student.train.epochs", "{epochs: 1}", "{epochs: 1000000000000}"), ("teacher.model.hidden", "{epochs: 1}", "{epochs: 1}")]
    {
        let mut r = recipe(tmp.path(), iris, "species", "", teacher, student, "");
        if key == "teacher.model.hidden" {
            let t = std::fs::read_to_string(&r).unwrap().replace("hidden: [4]", "hidden: [100000000]");
            r = tmp.path().join("wide.yaml");
            std::fs::write(&r, t).unwrap();
        }
        let o = distill(&["validate", r.to_str().unwrap()], &[("DISTILL_MEMORY_LIMIT", "16G")]);
        let e = text(&o);
        assert_eq!(o.status.code(), Some(2), "{e}");
        assert!(e.contains(&format!("{key}: needs about")) && e.contains("more than the 16.0 GiB (DISTILL_MEMORY_LIMIT) of memory"), "{e}");
        let (o, out) = run(&r, tmp.path(), &[("DISTILL_MEMORY_LIMIT", "16G")]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(!out.exists(), "a refused recipe leaves no run directory");
    }
    // Ten million augmented copies pass `validate` (one row could fit) and are refused once the
    // 150 rows are known, before any is made.
    let augment = "  augment: [{kind: gaussian_noise, std: 0.1, copies: 10000000}]\n";
    let r = recipe(tmp.path(), iris, "species", augment, "{epochs: 1}", "{epochs: 1}", "");
    assert!(distill(&["validate", r.to_str().unwrap()], &[("DISTILL_MEMORY_LIMIT", "16G")]).status.success());
    let (o, _) = run(&r, tmp.path(), &[("DISTILL_MEMORY_LIMIT", "16G")]);
    let e = text(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("data.augment[0].copies: with 150 rows, 4 features and 3 classes, this needs about") && e.contains("1500000000 augmented rows"), "{e}");

    // Thousands of classes: the confusion matrices of the metrics and report would not fit.
    let mut csv = String::from("x,y\n");
    for i in 0..6000 {
        csv += &format!("{},{}\n", i % 13, i % 3000);
    }
    std::fs::write(tmp.path().join("many.csv"), csv).unwrap();
    let r = recipe(tmp.path(), "many.csv", "y", "", "{epochs: 1}", "{epochs: 1}", "");
    let (o, _) = run(&r, tmp.path(), &[("DISTILL_MEMORY_LIMIT", "1G")]);
    let e = text(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("data.label: with 6000 rows, 1 features and 3000 classes") && e.contains("3000×3000 confusion matrices") && e.contains("1.0 GiB"),
        "{e}"
    );
}

/// Found by fuzzing the IDX loader: a header of no images with huge images aborted allocating
/// ~10¹³ empty columns. Now an error naming the file, through `distill check`.
#[test]
fn an_idx_file_of_no_images_is_an_error_not_an_abort() {
    let tmp = tempfile::tempdir().unwrap();
    let mut images = vec![0u8, 0, 8, 3];
    for d in [0u32, 196_608, 50_331_656] {
        images.extend(d.to_be_bytes());
    }
    std::fs::write(tmp.path().join("img-idx3-ubyte"), &images).unwrap();
    std::fs::write(tmp.path().join("lab-idx1-ubyte"), [0u8, 0, 8, 1, 0, 0, 0, 0]).unwrap();
    let source = "  source: {path: img-idx3-ubyte, labels: lab-idx1-ubyte, format: idx}\n";
    let yaml = format!("version: 1\nname: idx\ndata:\n{source}  label: label\nteacher: {{model: {{hidden: [4]}}}}\nstudent: {{model: {{hidden: [2]}}}}\n");
    let r = tmp.path().join("idx.yaml");
    std::fs::write(&r, yaml).unwrap();
    let o = distill(&["check", r.to_str().unwrap()], &[]);
    let e = text(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("img-idx3-ubyte") && e.contains("holds no images"), "{e}");
}

/// Found by fuzzing the Parquet loader: a corrupt footer made polars panic ("thrift bool
/// field"); now an error naming the file, exit 2 (the footer check finds it before polars reads).
#[test]
fn a_parquet_file_whose_metadata_does_not_decode_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("corrupt.parquet");
    std::fs::write(&path, include_bytes!("fixtures/data/thrift-panic.parquet")).unwrap();
    let o = distill(&["profile", path.to_str().unwrap()], &[]);
    let e = text(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("corrupt.parquet") && e.contains("corrupt Parquet footer: the metadata does not decode"), "{e}");
}

/// Corrupt footers that made polars ask for 100+ GB and abort (the allocator's abort cannot be
/// caught): list lengths of 2^31 - 1 row groups, schema elements and key/value pairs (the three
/// aborts fuzzing found in the Parquet loader, rebuilt by hand), and a row group claiming 2^61 rows
/// (which polars read as a table of 2^61 rows), and a data page header with a negative value count
/// (libFuzzer's). distill-parquet checks the footer and the page headers first: an error
/// naming the file and what is wrong, exit 2, as a data file, as a recipe's source and as
/// external teacher logits.
#[test]
fn corrupt_parquet_footers_are_errors_before_polars_allocates() {
    let tmp = tempfile::tempdir().unwrap();
    let files: [(&str, &[u8], &str); 5] = [
        ("row-groups", include_bytes!("fixtures/data/corrupt-footer-row-groups.parquet"), "a length of 2147483647"),
        ("schema", include_bytes!("fixtures/data/corrupt-footer-schema.parquet"), "a length of 2147483647"),
        ("key-value", include_bytes!("fixtures/data/corrupt-footer-key-value.parquet"), "a length of 2147483647"),
        ("row-count", include_bytes!("fixtures/data/corrupt-footer-row-count.parquet"), "row group 0's row count is 2305843009213693952"),
        // libFuzzer's: a data page header whose value count is negative (polars reserved it as a usize).
        ("page-header", include_bytes!("fixtures/data/corrupt-page-header.parquet"), "its value count is -"),
    ];
    for (name, bytes, why) in files {
        let path = tmp.path().join(format!("{name}.parquet"));
        std::fs::write(&path, bytes).unwrap();
        let o = distill(&["profile", path.to_str().unwrap()], &[]);
        let e = text(&o);
        assert_eq!(o.status.code(), Some(2), "{name}: {e}");
        assert!(e.contains(&format!("{name}.parquet")) && e.contains("corrupt Parquet") && e.contains(why), "{name}: {e}");
        assert!(!e.contains("memory allocation"), "{e}");
    }
    // The same file as a recipe's source (`check`), and as a teacher's external logits (`run`).
    std::fs::write(tmp.path().join("data.csv"), "a,b,label\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n9,1,0\n2,3,1\n4,5,0\n6,7,1\n8,9,0\n1,3,1\n").unwrap();
    let source = "version: 1\nname: x\ndata: {source: {path: row-groups.parquet}, label: label}\nteacher: {model: {arch: mlp, hidden: [4]}}\nstudent: {model: {arch: mlp, hidden: [2]}}\n";
    std::fs::write(tmp.path().join("source.yaml"), source).unwrap();
    let o = distill(&["check", tmp.path().join("source.yaml").to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("row-groups.parquet") && text(&o).contains("corrupt Parquet footer"), "{}", text(&o));
    let logits = "version: 1\nname: x\ndata: {source: {path: data.csv}, label: label, split: {test: 0.2}}\nteacher: {logits: {path: schema.parquet}}\nstudent: {model: {arch: mlp, hidden: [2]}, train: {epochs: 1}}\n";
    std::fs::write(tmp.path().join("logits.yaml"), logits).unwrap();
    let o = distill(&["run", tmp.path().join("logits.yaml").to_str().unwrap(), "--out", tmp.path().join("run").to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("schema.parquet") && text(&o).contains("corrupt Parquet footer"), "{}", text(&o));
}
