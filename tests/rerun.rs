//! `distill rerun RUN_DIR` through the binary: the same metrics from the run's resolved recipe
//! (from any working directory), and a warning, or with `--strict` a refusal, that names what
//! differs from then (data, distill version).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

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

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// The shipped iris recipe in `recipes/`, its data in `data/`, run once into `first` (with a
/// `--set`, which the re-run must keep).
fn first_run(tmp: &Path) -> PathBuf {
    std::fs::create_dir_all(tmp.join("data")).unwrap();
    std::fs::create_dir_all(tmp.join("recipes")).unwrap();
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/iris.csv"), tmp.join("data/iris.csv")).unwrap();
    let recipe =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/iris-kd.yaml")).unwrap().replace("../datasets/iris.csv", "../data/iris.csv");
    std::fs::write(tmp.join("recipes/iris.yaml"), recipe).unwrap();
    let o = distill(&["run", "recipes/iris.yaml", "--out", "first", "--cache-dir", "cache", "--set", "student.train.epochs=40"], tmp);
    assert!(matches!(o.status.code(), Some(0 | 3)), "{}", stderr(&o));
    tmp.join("first")
}

#[test]
fn a_rerun_repeats_the_run_and_compare_shows_the_same_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let first = first_run(tmp.path());
    // From another folder: the recipe's relative paths still mean what they meant.
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let second = tmp.path().join("second");
    let o = distill(&["rerun", first.to_str().unwrap(), "--out", second.to_str().unwrap(), "--force"], &elsewhere);
    assert!(matches!(o.status.code(), Some(0 | 3)), "{}", stderr(&o));
    assert!(!stderr(&o).contains("warning"), "nothing changed:\n{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(first.join("pipeline.resolved.yaml")).unwrap(), std::fs::read_to_string(second.join("pipeline.resolved.yaml")).unwrap());
    let (a, b) = (json(&first.join("metrics.json")), json(&second.join("metrics.json")));
    assert_eq!(b["cache_hits"], serde_json::json!([]), "--force retrained every stage");
    for role in ["teacher", "student", "baseline"] {
        for key in ["accuracy", "params"] {
            assert_eq!(a[role][key], b[role][key], "{role}.{key}");
        }
        assert_eq!(a[role]["evaluation"]["nll"], b[role]["evaluation"]["nll"], "{role} nll");
    }
    let o = distill(&["compare", first.to_str().unwrap(), second.to_str().unwrap(), "--format", "json"], tmp.path());
    let c: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
    assert_eq!(c["differing_keys"], serde_json::json!([]), "{c}");
}

#[test]
fn what_changed_since_the_run_is_a_warning_or_with_strict_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let first = first_run(tmp.path());
    let data = tmp.path().join("data/iris.csv");
    std::fs::write(&data, std::fs::read_to_string(&data).unwrap().replacen("5.1,3.5,1.4,0.2", "5.2,3.5,1.4,0.2", 1)).unwrap();
    let o = distill(&["rerun", "first", "--strict", "--out", "strict", "--cache-dir", "cache"], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not re-run (--strict)") && stderr(&o).contains("data fingerprint:"), "{}", stderr(&o));
    assert!(!tmp.path().join("strict").exists(), "a refused re-run creates no run directory");
    let o = distill(&["rerun", "first", "--out", "warned", "--cache-dir", "cache"], tmp.path());
    assert!(matches!(o.status.code(), Some(0 | 3)), "{}", stderr(&o));
    assert!(stderr(&o).contains("warning: first: the present differs") && stderr(&o).contains("data fingerprint:"), "{}", stderr(&o));
    assert!(tmp.path().join("warned/metrics.json").is_file());

    // Another distill version wrote the lock.
    let lock_path = first.join("lock.json");
    let mut lock = json(&lock_path);
    lock["distill_version"] = "0.0.1".into();
    std::fs::write(&lock_path, serde_json::to_string(&lock).unwrap()).unwrap();
    let o = distill(&["rerun", "first", "--strict"], tmp.path());
    assert!(stderr(&o).contains(&format!("distill version: 0.0.1 then, {} now", env!("CARGO_PKG_VERSION"))), "{}", stderr(&o));
    // A lock from before `recipe_dir`, and a folder that is no run.
    lock.as_object_mut().unwrap().remove("recipe_dir");
    std::fs::write(&lock_path, serde_json::to_string(&lock).unwrap()).unwrap();
    let o = distill(&["rerun", "first"], tmp.path());
    assert!(stderr(&o).contains("has no `recipe_dir`"), "{}", stderr(&o));
    let o = distill(&["rerun", "data"], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("lock.json (is this a distill run directory?)"), "{}", stderr(&o));
}
