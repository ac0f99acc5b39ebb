//! The newer recipe keys through the binary: augmentation, split checks, thresholds, optimisers,
//! layer lists and weighted losses, and `distill profile`.

use std::path::Path;
use std::process::{Command, Output};

fn distill(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_distill")).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).env_remove("RUST_LOG").output().expect("distill runs")
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn a_recipe_using_the_newer_keys_runs_and_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |name: &str| {
        let out = tmp.path().join(name);
        let o = distill(&["run", "tests/fixtures/iris-features.yaml", "--out", out.to_str().unwrap(), "--cache-dir", tmp.path().join("c").to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        out
    };
    let (a, b) = (run("a"), run("b"));
    let m = json(&a.join("metrics.json"));
    // 4·16+16 + 16·16+16 + 2·16 (layer norm) + 16·3+3 = 435 teacher parameters.
    assert_eq!(m["teacher"]["params"], 435);
    assert!(m["rows"]["train"].as_u64().unwrap() > m["rows"]["baseline_train"].as_u64().unwrap(), "augmented rows join training");
    let checks = json(&a.join("checks.json"));
    let ids: Vec<&str> = checks["checks"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    for id in ["nulls", "finite", "balance", "dupes", "leak", "drift"] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    assert_eq!(m["student"]["accuracy"], json(&b.join("metrics.json"))["student"]["accuracy"]);
    assert!(m["student"]["accuracy"].as_f64().unwrap() > 0.6);
}

#[test]
fn leakage_between_splits_stops_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = distill(&[
        "run",
        "tests/fixtures/iris-features.yaml",
        "--out",
        out.to_str().unwrap(),
        "--cache-dir",
        tmp.path().join("c").to_str().unwrap(),
        "--set",
        "data.source.path=leaky-iris.csv",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    let checks = json(&out.join("checks.json"));
    let leak = checks["checks"].as_array().unwrap().iter().find(|c| c["id"] == "leak").unwrap().clone();
    assert_eq!(leak["status"], "error");
    assert!(leak["failing"].as_u64().unwrap() > 0);
    assert!(!out.join("metrics.json").exists());
}

#[test]
fn profile_prints_checks_that_a_pipeline_accepts() {
    let o = distill(&["profile", "datasets/digits.csv", "--label", "label"]);
    assert!(o.status.success());
    let checks = String::from_utf8_lossy(&o.stdout).to_string();
    let tmp = tempfile::tempdir().unwrap();
    let recipe = tmp.path().join("p.yaml");
    let indented: String = checks.lines().filter(|l| !l.starts_with('#')).map(|l| format!("  {l}\n")).collect();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/digits.csv");
    std::fs::write(&recipe, format!("version: 1\nname: p\ndata:\n  source: {{path: {}}}\n  label: label\n{indented}teacher: {{model: {{hidden: [8]}}}}\nstudent: {{model: {{hidden: [4]}}}}\n", data.display())).unwrap();
    let o = distill(&["check", recipe.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_teacher_can_be_loaded_from_saved_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let first = tmp.path().join("first");
    let o = distill(&["run", "pipelines/iris-kd.yaml", "--out", first.to_str().unwrap(), "--cache-dir", tmp.path().join("c1").to_str().unwrap()]);
    assert!(o.status.success());
    let weights = format!("teacher.weights={}", first.join("teacher.safetensors").display());
    let second = tmp.path().join("second");
    let o = distill(&[
        "run",
        "pipelines/iris-kd.yaml",
        "--out",
        second.to_str().unwrap(),
        "--cache-dir",
        tmp.path().join("c2").to_str().unwrap(),
        "--set",
        &weights,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("loaded given weights"));
    let (a, b) = (json(&first.join("metrics.json")), json(&second.join("metrics.json")));
    assert_eq!(a["teacher"]["evaluation"]["nll"], b["teacher"]["evaluation"]["nll"], "the same teacher");
    assert_eq!(json(&first.join("lock.json"))["logits_key"], json(&second.join("lock.json"))["logits_key"]);
    // Weights of another shape are an error naming the key and the tensor.
    let third = tmp.path().join("third");
    let o = distill(&["run", "pipelines/iris-kd.yaml", "--out", third.to_str().unwrap(), "--set", &weights, "--set", "teacher.model.hidden=[8]"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("teacher.weights") && err.contains("layers.0.weight"), "{err}");
    assert!(!third.exists());
}
