//! The teacher cache through the binary: corruption is caught and recomputed, `--force`,
//! `plan`, `cache ls|verify|gc`, and the files read by Python tools.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn distill(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_distill")).args(args).current_dir(cwd).env_remove("RUST_LOG").env_remove("DISTILL_CACHE_DIR").output().expect("distill runs")
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

struct Bench {
    dir: tempfile::TempDir,
}

impl Bench {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }
    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }
    /// Runs the iris recipe into `runs/<name>` under the temporary folder.
    fn run(&self, name: &str, extra: &[&str]) -> (Output, PathBuf) {
        let out = self.dir.path().join("runs").join("iris-kd").join(name);
        let pipeline = repo().join("pipelines/iris-kd.yaml");
        let cache = self.cache();
        let mut args = vec!["run", pipeline.to_str().unwrap(), "--out", out.to_str().unwrap(), "--cache-dir", cache.to_str().unwrap()];
        args.extend(extra);
        (distill(&args, self.dir.path()), out)
    }
    fn lock(&self, run: &Path) -> Value {
        json(&run.join("lock.json"))
    }
}

fn hits(run: &Path) -> Value {
    json(&run.join("metrics.json"))["cache_hits"].clone()
}

#[test]
fn corrupt_or_incomplete_entries_are_recomputed_never_used() {
    let b = Bench::new();
    let (o, first) = b.run("a", &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lock = b.lock(&first);
    let logits = PathBuf::from(lock["logits_file"].as_str().unwrap());

    // Flip one byte in the middle of the Parquet file: still parseable, but not what was written.
    let mut bytes = std::fs::read(&logits).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&logits, &bytes).unwrap();
    let o = distill(&["cache", "verify", "--cache-dir", b.cache().to_str().unwrap()], b.dir.path());
    assert_eq!(o.status.code(), Some(1), "verify reports the corruption");
    assert!(String::from_utf8_lossy(&o.stdout).contains("checksum mismatch"));
    let (o, second) = b.run("b", &[]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("cached logits are unusable; recomputing"));
    assert_eq!(hits(&second), serde_json::json!(["teacher"]));
    assert_eq!(json(&second.join("metrics.json"))["student"]["accuracy"], json(&first.join("metrics.json"))["student"]["accuracy"]);
    assert_eq!(distill(&["cache", "verify", "--cache-dir", b.cache().to_str().unwrap()], b.dir.path()).status.code(), Some(0));

    // A truncated teacher file is caught too; so is an artifact whose record is missing.
    let weights = b.cache().join("teachers").join(format!("{}.safetensors", lock["teacher_key"].as_str().unwrap()));
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let (o, third) = b.run("c", &[]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("cached teacher weights are unusable; retraining"));
    // Retraining is deterministic: the same weights, so the (intact) logits are found again.
    assert_eq!(hits(&third), serde_json::json!(["teacher_logits"]));
    assert_eq!(b.lock(&third)["teacher_weights"], lock["teacher_weights"]);
    std::fs::remove_file(PathBuf::from(format!("{}.entry.json", weights.display()))).unwrap();
    let (o, _) = b.run("d", &[]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no entry record"));
}

#[test]
fn force_plan_ls_and_gc() {
    let b = Bench::new();
    let (_, first) = b.run("a", &[]);
    let (o, forced) = b.run("b", &["--force", "teacher"]);
    assert!(o.status.success());
    assert_eq!(hits(&forced), serde_json::json!([]), "--force teacher retrains it and recomputes its logits");
    let (_, logits_only) = b.run("c", &["--force", "logits"]);
    assert_eq!(hits(&logits_only), serde_json::json!(["teacher"]));

    let pipeline = repo().join("pipelines/iris-kd.yaml");
    let cache = b.cache();
    let o = distill(&["plan", pipeline.to_str().unwrap(), "--cache-dir", cache.to_str().unwrap()], b.dir.path());
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(text.contains("teacher   cached") && text.contains("logits    cached"), "{text}");
    assert!(text.contains("same teacher_key as"), "plan compares with the last run: {text}");
    let o = distill(&["plan", pipeline.to_str().unwrap(), "--cache-dir", cache.to_str().unwrap(), "--set", "teacher.train.epochs=7"], b.dir.path());
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(text.contains("teacher   run") && text.contains("teacher_key changed since"), "{text}");

    // A second teacher, then forget the first run: gc keeps only what remaining runs use.
    let (_, other) = b.run("other", &["--set", "teacher.train.epochs=7"]);
    let ls = String::from_utf8_lossy(&distill(&["cache", "ls", "--cache-dir", cache.to_str().unwrap()], b.dir.path()).stdout).to_string();
    assert_eq!(ls.lines().filter(|l| l.starts_with("teacher")).count(), 2, "{ls}");
    for run in ["a", "b", "c"] {
        std::fs::remove_dir_all(b.dir.path().join("runs").join("iris-kd").join(run)).unwrap();
    }
    let o = distill(&["cache", "gc", "--cache-dir", cache.to_str().unwrap()], b.dir.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let keys: Vec<String> = distill_cache_keys(&cache);
    let lock = b.lock(&other);
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.contains(&lock["teacher_key"].as_str().unwrap().to_string()));
    assert!(keys.contains(&lock["logits_key"].as_str().unwrap().to_string()));
    let _ = first;
}

fn distill_cache_keys(cache: &Path) -> Vec<String> {
    let mut keys = Vec::new();
    for dir in ["teachers", "logits"] {
        for e in std::fs::read_dir(cache.join(dir)).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().to_string();
            if !name.ends_with(".entry.json") {
                keys.push(name.split('.').next().unwrap().to_string());
            }
        }
    }
    keys
}

/// Python's pyarrow and safetensors read what distill writes. `.ci/run` installs them; set
/// DISTILL_SKIP_PYTHON=1 to skip where Python packages cannot be installed.
#[test]
fn python_tools_read_the_logit_cache_and_the_weights() {
    if std::env::var_os("DISTILL_SKIP_PYTHON").is_some() {
        eprintln!("skipped: DISTILL_SKIP_PYTHON is set");
        return;
    }
    let b = Bench::new();
    let (o, run) = b.run("a", &[]);
    assert!(o.status.success());
    let lock = b.lock(&run);
    let logits = lock["logits_file"].as_str().unwrap().to_string();
    let ours = distill_cache::read_logits(Path::new(&logits)).unwrap();
    let script = r#"
import json, sys
import pyarrow.parquet as pq
from safetensors.numpy import load_file
t = pq.read_table(sys.argv[1])
footer = pq.ParquetFile(sys.argv[1]).metadata.metadata
meta = {k.decode(): v.decode() for k, v in footer.items() if k.decode().startswith("distill.")}
logits = t.column("logits").to_pylist()
w = load_file(sys.argv[2])
print(json.dumps({
    "rows": t.num_rows,
    "types": [str(t.schema.field("row_id").type), str(t.schema.field("logits").type)],
    "meta": meta,
    "first_ids": t.column("row_id").to_pylist()[:5],
    "first_logits": logits[0],
    "weights": {k: list(v.shape) for k, v in w.items()},
}))
"#;
    let o = Command::new("python3").args(["-c", script, &logits, run.join("teacher.safetensors").to_str().unwrap()]).output().expect("python3 runs");
    assert!(o.status.success(), "python failed (install pyarrow and safetensors, or set DISTILL_SKIP_PYTHON=1): {}", String::from_utf8_lossy(&o.stderr));
    let py: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(py["rows"].as_u64().unwrap() as usize, ours.row_ids.len());
    assert_eq!(py["types"][0], "uint64");
    assert!(py["types"][1].as_str().unwrap().starts_with("fixed_size_list<") && py["types"][1].as_str().unwrap().ends_with("float>[3]"), "{}", py["types"]);
    assert_eq!(py["meta"]["distill.num_classes"], "3");
    assert_eq!(py["meta"]["distill.class_names"], r#"["setosa","versicolor","virginica"]"#);
    assert_eq!(py["meta"]["distill.teacher_fingerprint"], lock["teacher_weights"]);
    let ids: Vec<u64> = serde_json::from_value(py["first_ids"].clone()).unwrap();
    assert_eq!(ids, ours.row_ids[..5]);
    let first: Vec<f32> = serde_json::from_value(py["first_logits"].clone()).unwrap();
    assert_eq!(first, ours.logits[..3]);
    // Teacher 4-32-32-3 in PyTorch's nn.Linear layout.
    assert_eq!(py["weights"]["layers.0.weight"], serde_json::json!([32, 4]));
    assert_eq!(py["weights"]["layers.2.bias"], serde_json::json!([3]));
}
