//! End-to-end tests through the real `distill` binary on real pipeline files and data.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn distill(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_distill"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .env_remove("DISTILL_CACHE_DIR")
        .output()
        .expect("the distill binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// A small but real digits run: the shipped pipeline with a smaller teacher and budget.
const SMALL: [&str; 8] =
    ["--set", "teacher.model.hidden=[32]", "--set", "teacher.train.epochs=8", "--set", "student.train.epochs=8", "--set", "evaluate.targets.min_accuracy=0.5"];

fn run_small(out: &Path, cache: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["run", "pipelines/digits-kd.yaml", "--out", out.to_str().unwrap(), "--cache-dir", cache.to_str().unwrap()];
    args.extend(SMALL);
    args.extend(extra);
    distill(&args)
}

#[test]
fn full_run_then_second_run_hits_the_logit_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let (first, second, cache) = (tmp.path().join("first"), tmp.path().join("second"), tmp.path().join("cache"));

    let o = run_small(&first, &cache, &[]);
    assert!(o.status.success(), "stderr:\n{}", stderr(&o));
    let m = read_json(&first.join("metrics.json"));
    // 64-32-10 teacher and 64-16-10 student.
    assert_eq!(m["teacher"]["params"], 64 * 32 + 32 + 32 * 10 + 10);
    assert_eq!(m["student"]["params"], 64 * 16 + 16 + 16 * 10 + 10);
    assert_eq!(m["baseline"]["params"], m["student"]["params"]);
    for model in ["teacher", "student", "baseline"] {
        let acc = m[model]["accuracy"].as_f64().unwrap();
        assert!(acc > 0.6 && acc <= 1.0, "{model} accuracy {acc}");
    }
    assert_eq!(m["cache_hits"], serde_json::json!([]));
    for file in
        ["pipeline.resolved.yaml", "lock.json", "checks.json", "history.json", "run.log", "teacher.safetensors", "student.safetensors", "baseline.safetensors"]
    {
        assert!(first.join(file).is_file(), "{file} missing from the run directory");
    }
    let lock = read_json(&first.join("lock.json"));
    let logits_file = PathBuf::from(lock["logits_file"].as_str().unwrap());
    assert!(logits_file.is_file(), "the logits are cached in Parquet");
    assert!(stdout(&o).contains("student"), "a summary table is printed");
    let html = std::fs::read_to_string(first.join("report.html")).unwrap();
    for id in ["recipe", "checks", "metrics", "targets", "curves", "calibration", "confusion"] {
        assert!(html.contains(&format!("<section id=\"{id}\"")) || html.contains(&format!("id=\"{id}\"")), "section {id} missing");
    }
    for plot in ["plot-loss-teacher", "plot-loss-student", "plot-loss-baseline", "plot-val-accuracy", "plot-reliability", "plot-confusion-student"] {
        let at = html.find(&format!("id=\"{plot}\"")).unwrap_or_else(|| panic!("{plot} missing"));
        assert!(html[at..].contains("<svg"), "{plot} has no inline SVG");
    }
    assert!(!html.contains("src=\"http"), "the report is self-contained");
    let evaluation = &m["student"]["evaluation"];
    for key in ["top_k_accuracy", "macro_f1", "nll", "ece", "confusion", "per_class", "reliability"] {
        assert!(!evaluation[key].is_null(), "metrics.json student.evaluation.{key}");
    }
    assert!(m["student"]["latency"]["p95_ms"].as_f64().unwrap() >= m["student"]["latency"]["p50_ms"].as_f64().unwrap());
    assert!(m["student"]["size_bytes"].as_u64().unwrap() > 4 * 1210);
    // `distill report` redraws the report from the run directory.
    std::fs::remove_file(first.join("report.html")).unwrap();
    assert!(distill(&["report", first.to_str().unwrap()]).status.success());
    assert!(first.join("report.html").is_file());

    let o = run_small(&second, &cache, &[]);
    assert!(o.status.success(), "stderr:\n{}", stderr(&o));
    let log = std::fs::read_to_string(second.join("run.log")).unwrap();
    assert!(log.contains("teacher: cache hit, skipped training"), "run.log:\n{log}");
    assert!(log.contains("teacher logits: cache hit, skipped inference"), "run.log:\n{log}");
    let m2 = read_json(&second.join("metrics.json"));
    assert_eq!(m2["cache_hits"], serde_json::json!(["data", "teacher", "teacher_logits", "student", "baseline", "export", "quantize", "evaluate"]));
    assert_eq!(read_json(&second.join("lock.json"))["logits_key"], lock["logits_key"]);
    // Same recipe, data and seed: the same metrics.
    for model in ["teacher", "student", "baseline"] {
        assert_eq!(m[model]["accuracy"], m2[model]["accuracy"], "{model}");
    }

    // Changing the student does not touch the teacher's cache; changing the teacher does.
    let third = tmp.path().join("third");
    assert!(run_small(&third, &cache, &["--set", "student.loss.temperature=4"]).status.success());
    assert_eq!(read_json(&third.join("metrics.json"))["cache_hits"], serde_json::json!(["data", "teacher", "teacher_logits", "baseline"]));
    let o = distill(&["compare", first.to_str().unwrap(), third.to_str().unwrap(), "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let c: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let keys: Vec<&str> = c["differing_keys"].as_array().unwrap().iter().map(|k| k["path"].as_str().unwrap()).collect();
    assert_eq!(keys, ["student.loss.temperature"], "only the changed key differs");
    assert!(c["metrics"].as_array().unwrap().iter().any(|r| r["path"] == "student.accuracy"));
    let o = distill(&["compare", first.to_str().unwrap(), third.to_str().unwrap()]);
    assert!(stdout(&o).contains("student.loss.temperature"));
    let fourth = tmp.path().join("fourth");
    assert!(run_small(&fourth, &cache, &["--set", "teacher.train.epochs=9"]).status.success());
    assert_eq!(read_json(&fourth.join("metrics.json"))["cache_hits"], serde_json::json!(["data", "baseline"]), "the baseline does not depend on the teacher");
}

#[test]
fn iris_with_string_labels_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = distill(&["run", "pipelines/iris-kd.yaml", "--out", out.to_str().unwrap(), "--cache-dir", tmp.path().join("c").to_str().unwrap()]);
    assert!(o.status.success(), "stderr:\n{}", stderr(&o));
    let m = read_json(&out.join("metrics.json"));
    assert_eq!(m["classes"], 3);
    assert!(m["teacher"]["accuracy"].as_f64().unwrap() > 0.85);
}

#[test]
fn malformed_pipelines_name_file_line_and_key() {
    let cases = [
        ("unknown-key", ":10:", "student.loss.temprature: unknown field `temprature`"),
        ("wrong-type", ":9:", "teacher.train.epochs: invalid type: string \"many\""),
        ("missing-field", ":4:", "data: missing field `label`"),
        ("bad-value", ":12:", "student.loss.temperature: must be > 0, got -1"),
        ("bad-version", ":1:", "version: unsupported version 2"),
        ("check-key", ":8:", "data.checks[1].min: `min` does not apply to a `not_null` check"),
        ("syntax", ":5:", "did not find expected ',' or '}'"),
        ("unknown-enum", ":7:", "teacher.model.activation: unknown variant `swish`"),
    ];
    for (name, line, message) in cases {
        let file = format!("tests/fixtures/bad/{name}.yaml");
        for command in ["validate", "run"] {
            let tmp = tempfile::tempdir().unwrap();
            let out = tmp.path().join("run");
            let o = distill(&[command, &file, "--out", out.to_str().unwrap()][..if command == "run" { 4 } else { 2 }]);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(2), "{command} {name}: {err}");
            assert!(err.contains(&format!("{file}{line}")), "{command} {name}: no file and line in: {err}");
            assert!(err.contains(message), "{command} {name}: expected `{message}` in: {err}");
            assert!(!err.contains("panicked"), "{err}");
            assert!(!out.exists(), "a rejected pipeline must not create a run directory");
        }
    }
}

#[test]
fn set_override_errors_name_the_key() {
    let o = distill(&["validate", "pipelines/digits-kd.yaml", "--set", "student.loss.alpha=2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("student.loss.alpha: must be in [0, 1], got 2"), "{}", stderr(&o));
    let o = distill(&["validate", "pipelines/digits-kd.yaml", "--set", "student.loss.tempreature=2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown field `tempreature`"), "{}", stderr(&o));
    let o = distill(&["validate", "pipelines/digits-kd.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn failing_data_check_stops_the_run_before_the_teacher() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, cache) = (tmp.path().join("run"), tmp.path().join("cache"));
    let o = distill(&["run", "tests/fixtures/bad-rows.yaml", "--out", out.to_str().unwrap(), "--cache-dir", cache.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("row 1 column b: null"), "{err}");
    assert!(err.contains("row 2 column b: 9.5"), "{err}");
    assert!(err.contains("row 3 column label: z"), "{err}");
    let report = read_json(&out.join("checks.json"));
    let statuses: Vec<&str> = report["checks"].as_array().unwrap().iter().map(|c| c["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["error", "error", "error", "pass"], "every check runs, not only up to the first failure");
    // The run's lease and the snapshot's lock create folders; no file (not even the data
    // snapshot) is stored outside the leases.
    let stored = files_under(&cache, &cache.join("leases"));
    assert!(stored.is_empty(), "nothing was trained or cached: {stored:?}");
    assert!(!out.join("metrics.json").exists());

    let o = distill(&["check", "tests/fixtures/bad-rows.yaml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("unit-range"));
    let o = distill(&["check", "pipelines/digits-kd.yaml"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn missed_target_exits_3_after_writing_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = distill(&[
        "run",
        "pipelines/iris-kd.yaml",
        "--out",
        out.to_str().unwrap(),
        "--cache-dir",
        tmp.path().join("c").to_str().unwrap(),
        "--set",
        "evaluate.targets.max_params=10",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stdout(&o).contains("max_params") && stdout(&o).contains("MISSED"));
    let m = read_json(&out.join("metrics.json"));
    assert_eq!(m["targets_met"], false);
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("| max_params | 10 |"), "{report}");
}

#[test]
fn missing_data_file_is_a_clear_error() {
    let o = distill(&["run", "pipelines/digits-kd.yaml", "--set", "data.source.path=nowhere.csv", "--out", "/nonexistent-dir-for-distill-test/x"]);
    // The run directory cannot be created either; whichever comes first, it is an error, not a panic.
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = distill(&["check", "pipelines/digits-kd.yaml", "--set", "data.source.path=nowhere.csv"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nowhere.csv: file not found"), "{}", stderr(&o));
}

#[test]
fn transfer_rows_never_feed_the_hard_label_term_and_the_baseline_never_sees_them() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |name: &str, transfer_file: &str| {
        let out = tmp.path().join(name);
        let set = format!("data.transfer.source.path={transfer_file}");
        let o = distill(&[
            "run",
            "tests/fixtures/iris-transfer.yaml",
            "--out",
            out.to_str().unwrap(),
            "--cache-dir",
            tmp.path().join("c").to_str().unwrap(),
            "--set",
            &set,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        out
    };
    let null = run("null", "iris-transfer-null-labels.csv");
    let wrong = run("wrong", "iris-transfer-wrong-labels.csv");
    let m = read_json(&null.join("metrics.json"));
    let rows = &m["rows"];
    assert_eq!(rows["train_labelled"], 12);
    assert_eq!(rows["train_unlabelled"], 30, "the transfer file's rows join training without labels");
    assert_eq!(rows["baseline_train"], rows["train_labelled"], "the baseline sees only labelled rows");
    assert_eq!(m["student"]["per_seed"].as_array().unwrap().len(), 2);
    assert!(m["student"]["accuracy_std"].is_number());
    // Labels in a transfer file are ignored: the student trains bit for bit the same.
    let student = |dir: &Path| std::fs::read(dir.join("student.safetensors")).unwrap();
    assert!(student(&null) == student(&wrong), "wrong transfer labels changed training");
    let w = read_json(&wrong.join("metrics.json"));
    assert_eq!(w["student"]["per_seed"], m["student"]["per_seed"]);
}

#[test]
fn asking_for_cuda_in_a_cpu_build_is_a_clear_error_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let yaml = std::fs::read_to_string("pipelines/iris-kd.yaml").unwrap().replacen("seed:", "device: cuda:1\nseed:", 1);
    let file = tmp.path().join("gpu.yaml");
    std::fs::write(&file, yaml).unwrap();
    let o = distill(&["validate", file.to_str().unwrap()]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("gpu.yaml:") && e.contains("device: `cuda:1`") && e.contains("--features cuda"), "{e}");
    let out = tmp.path().join("run");
    let o = distill(&["run", "pipelines/iris-kd.yaml", "--device", "cuda", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("`cuda:0` needs distill built with CUDA support"), "{}", stderr(&o));
    assert!(!out.exists());
    let o = distill(&["run", "pipelines/iris-kd.yaml", "--device", "gpu", "--out", out.to_str().unwrap()]);
    assert!(o.status.code() == Some(2) && stderr(&o).contains("unknown device `gpu`"), "{}", stderr(&o));
}

#[test]
fn a_diverging_model_is_an_error_naming_it_and_is_never_cached() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, cache) = (tmp.path().join("run"), tmp.path().join("cache"));
    let o = distill(&[
        "run",
        "pipelines/iris-kd.yaml",
        "--out",
        out.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
        "--set",
        "student.train.optimizer.lr=1.0e30",
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("training the student: the loss") && err.contains("lower student.train.optimizer.lr"), "{err}");
    assert!(!out.exists(), "a failed run leaves no run directory");
    let ls = distill(&["cache", "--cache-dir", cache.to_str().unwrap(), "ls"]);
    assert!(ls.status.success(), "{}", stderr(&ls));
    assert!(stdout(&ls).contains("teacher") && !stdout(&ls).contains("student"), "only the finite teacher is cached:\n{}", stdout(&ls));
}

/// Every file under `dir`, recursively, except those under `skip`.
fn files_under(dir: &Path, skip: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files = Vec::new();
    for path in entries.flatten().map(|e| e.path()).filter(|p| p != skip) {
        if path.is_dir() {
            files.extend(files_under(&path, skip));
        } else {
            files.push(path);
        }
    }
    files
}
