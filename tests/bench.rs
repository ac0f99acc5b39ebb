//! `distill bench` through the real binary with tiny sizes: the reports parse and their numbers
//! hang together. No timing is asserted.

use std::process::{Command, Output};

use serde_json::Value;

fn distill(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_distill")).args(args).env_remove("RUST_LOG").output().expect("the distill binary runs")
}

fn json_of(o: &Output) -> Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

fn positive(v: &Value, key: &str) -> f64 {
    let x = v[key].as_f64().unwrap_or_else(|| panic!("{key} missing in {v}"));
    assert!(x > 0.0 && x.is_finite(), "{key} = {x}");
    x
}

#[test]
fn bench_train_reports_both_models_against_the_gemm_ceiling() {
    let o = distill(&["bench", "train", "--rows", "300", "--steps", "2", "--student-steps", "3", "--warmup", "1", "--gemm-size", "64", "--json"]);
    let report = json_of(&o);
    let ceiling = positive(&report["gemm"], "gflops");
    assert!(report["threads"].as_u64().unwrap() >= 1);
    let models = report["models"].as_array().unwrap();
    let names: Vec<&str> = models.iter().map(|m| m["model"].as_str().unwrap()).collect();
    assert_eq!(names, ["784-1200-1200-10", "784-64-10"]);
    for (m, (params, steps)) in models.iter().zip([(784 * 1200 + 1200 + 1200 * 1200 + 1200 + 1200 * 10 + 10, 2), (784 * 64 + 64 + 64 * 10 + 10, 3)]) {
        assert_eq!(m["params"].as_u64(), Some(params));
        assert_eq!(m["steps"].as_u64(), Some(steps));
        let (rate, gflops) = (positive(m, "samples_per_s"), positive(m, "gflops"));
        assert!((gflops - 6.0 * params as f64 * rate / 1e9).abs() < 1e-6 * gflops, "{m}");
        assert!((m["ceiling_fraction"].as_f64().unwrap() - gflops / ceiling).abs() < 1e-9);
        assert!(m["loss"].as_f64().unwrap().is_finite());
    }

    // The table a person reads has a row per model and the ceiling line.
    let o = distill(&["bench", "train", "--rows", "200", "--steps", "1", "--student-steps", "1", "--warmup", "0", "--gemm-size", "32"]);
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    for needle in ["784-1200-1200-10", "784-64-10", "samples/s", "GEMM ceiling (32×32×32 f32)"] {
        assert!(text.contains(needle), "{needle} missing in:\n{text}");
    }
}

#[test]
fn bench_infer_reports_inference_and_parquet_rates() {
    let dir = tempfile::tempdir().unwrap();
    let o = distill(&["bench", "infer", "--rows", "1500", "--gemm-size", "64", "--out", dir.path().to_str().unwrap(), "--json"]);
    let report = json_of(&o);
    assert_eq!(report["inference"]["rows"].as_u64(), Some(1500));
    assert_eq!(report["inference"]["model"].as_str(), Some("784-1200-1200-10"));
    positive(&report["inference"], "rows_per_s");
    // The ceiling is measured in the same run and the share follows from it.
    assert_eq!(report["gemm"]["size"].as_u64(), Some(64));
    let (gflops, ceiling) = (report["inference"]["gflops"].as_f64().unwrap(), report["gemm"]["gflops"].as_f64().unwrap());
    assert!((report["inference"]["ceiling_fraction"].as_f64().unwrap() - gflops / ceiling).abs() < 1e-9);
    positive(&report["parquet"], "rows_per_s");
    // 1,500 rows × 10 f32 logits: the file held at least the raw values.
    assert!(report["parquet"]["bytes"].as_u64().unwrap() > 1500 * 10 * 4 / 2);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the timed file is removed");
}

#[test]
fn bench_rejects_empty_sizes() {
    let o = distill(&["bench", "train", "--rows", "0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--rows must be at least 1"));
}

#[test]
fn bench_cache_times_a_cold_and_a_warm_run() {
    let recipe = concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/iris-kd.yaml");
    let report = json_of(&distill(&["bench", "cache", recipe, "--set", "evaluate.latency=false", "--json"]));
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs[0]["cache_hits"], serde_json::json!([]));
    assert_eq!(runs[1]["cache_hits"], serde_json::json!(["data", "teacher", "teacher_logits", "student", "baseline", "evaluate"]));
    for run in runs {
        positive(run, "seconds");
    }
    positive(&report, "warm_over_cold");
}
