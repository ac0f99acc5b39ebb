//! Sweeps through the binary: one teacher for every point, a re-run computes nothing, an extended
//! sweep computes only its new points, the recommendation meets the targets, and a bad sweep key
//! is an error at its line before anything runs.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn distill(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_distill"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("DISTILL_CACHE_DIR")
        .output()
        .expect("distill runs")
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// Iris with a small teacher, a validation split and a two-key sweep.
fn recipe(dir: &Path, hidden: &str) -> std::path::PathBuf {
    let iris = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/iris.csv");
    let text = format!(
        "version: 1\nname: iris-sweep\nseed: 3\n\
         data: {{source: {{path: {}}}, label: species, split: {{test: 0.3, val: 0.2, stratify: true}}, scale: {{kind: standard}}}}\n\
         teacher: {{model: {{hidden: [16]}}, train: {{epochs: 40, batch: 16, optimizer: {{lr: 1.0e-2}}}}}}\n\
         student:\n  model: {{hidden: [4]}}\n  train: {{epochs: 40, batch: 16, optimizer: {{lr: 1.0e-2}}}}\n  seeds: [1, 2]\n  baseline: true\n\
         evaluate: {{latency: false, targets: {{min_accuracy: 0.6}}}}\n\
         sweep:\n  grid:\n    student.model.hidden: {hidden}\n    student.loss.temperature: [1, 4]\n",
        iris.display()
    );
    let path = dir.join("sweep.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run(dir: &Path, recipe: &Path, out: &str) -> Value {
    let o = distill(dir, &["run", recipe.to_str().unwrap(), "--out", out, "--cache-dir", "cache"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    json(&dir.join(out).join("metrics.json"))
}

fn hits(m: &Value, index: u64) -> Vec<String> {
    let point = m["points"].as_array().unwrap().iter().find(|p| p["index"] == index).unwrap_or_else(|| panic!("point {index}: {m}"));
    point["cache_hits"].as_array().unwrap().iter().map(|h| h.as_str().unwrap().to_string()).collect()
}

#[test]
fn one_teacher_for_every_point_and_only_new_points_are_computed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let first = run(dir, &recipe(dir, "[[2], [8]]"), "a");
    assert_eq!(first["points"].as_array().unwrap().len(), 4);
    assert!(!hits(&first, 0).contains(&"teacher".to_string()), "the first point trains the teacher");
    for i in 1..4 {
        assert!(hits(&first, i).contains(&"teacher".to_string()) && hits(&first, i).contains(&"teacher_logits".to_string()), "point {i} reuses it");
    }
    // Points run in key order (temperature, then width). The baseline does not depend on the
    // temperature: the second temperature finds the first's.
    assert!(!hits(&first, 1).contains(&"baseline@1".to_string()) && hits(&first, 2).contains(&"baseline@1".to_string()), "{:?}", hits(&first, 2));
    for name in ["sweep.md", "sweep-params.svg", "points/000/metrics.json", "points/003/lock.json"] {
        assert!(dir.join("a").join(name).is_file(), "{name}");
    }
    assert!(std::fs::read_to_string(dir.join("a/sweep-params.svg")).unwrap().contains("Pareto front"));
    assert_eq!(first["decided_on"], "validation");
    let rec = &first["recommendation"];
    let chosen = first["points"].as_array().unwrap().iter().find(|p| p["index"] == rec["index"]).unwrap();
    assert_eq!(chosen["meets_targets"], true);
    let smallest_meeting = first["points"].as_array().unwrap().iter().filter(|p| p["meets_targets"] == true).map(|p| p["params"].as_u64().unwrap()).min();
    assert_eq!(rec["params"].as_u64(), smallest_meeting);

    let again = run(dir, &recipe(dir, "[[2], [8]]"), "b");
    for i in 0..4 {
        let h = hits(&again, i);
        assert_eq!(h.len(), 1 + 2 + 2 * 2 + 1, "point {i} computes nothing (data, teacher, logits, two seeds, evaluate): {h:?}");
    }
    for i in 0..4 {
        assert_eq!(again["points"][i]["accuracy"], first["points"][i]["accuracy"], "point {i}: a hit gives the same metrics");
    }
    assert_eq!(again["recommendation"], first["recommendation"]);

    // Two points at a time on a fresh cache: the same numbers.
    let o = distill(dir, &["run", recipe(dir, "[[2], [8]]").to_str().unwrap(), "--out", "par", "--cache-dir", "cache2", "--set", "sweep.parallel=2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let parallel = json(&dir.join("par/metrics.json"));
    for i in 0..4 {
        assert_eq!(parallel["points"][i]["accuracy"], first["points"][i]["accuracy"], "point {i}");
        assert_eq!(parallel["points"][i]["val_accuracy"], first["points"][i]["val_accuracy"], "point {i}");
    }

    // One more width: only its two points train a student.
    let more = run(dir, &recipe(dir, "[[2], [8], [16]]"), "c");
    assert_eq!(more["points"].as_array().unwrap().len(), 6);
    let trained: Vec<&str> = more["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| !p["cache_hits"].as_array().unwrap().iter().any(|h| h.as_str().unwrap().starts_with("student")))
        .map(|p| p["keys"]["student.model.hidden"].as_str().unwrap())
        .collect();
    assert_eq!(trained, ["[16]", "[16]"], "only the new width's points train students");
}

#[test]
fn a_bad_sweep_key_is_an_error_at_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let path = recipe(tmp.path(), "[[2]]");
    let text = std::fs::read_to_string(&path).unwrap().replace("    student.model.hidden:", "    student.model.hiden:");
    std::fs::write(&path, text).unwrap();
    let o = distill(tmp.path(), &["run", path.to_str().unwrap(), "--out", "x", "--cache-dir", "cache"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("{}:14:5: sweep.student.model.hiden: = [2]: unknown field `hiden`", path.display())), "{err}");
    assert!(err.contains("unknown field `hiden`"), "{err}");
    assert!(!tmp.path().join("x").exists(), "nothing ran");
    let o = distill(tmp.path(), &["validate", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "validate checks every point too: {}", String::from_utf8_lossy(&o.stderr));
}
