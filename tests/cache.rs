//! The teacher cache through the binary: corruption is caught and recomputed, `--force`,
//! `plan`, `cache ls|verify|gc`, and the files read by Python tools.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod common;

fn distill(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_distill"))
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .env_remove("DISTILL_CACHE_DIR")
        .output()
        .expect("distill runs")
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
    // The recomputed logits are the same bytes, so the students trained on them are found again.
    assert_eq!(hits(&second), serde_json::json!(["data", "teacher", "student", "baseline", "evaluate"]));
    assert_eq!(json(&second.join("metrics.json"))["student"]["accuracy"], json(&first.join("metrics.json"))["student"]["accuracy"]);
    assert_eq!(distill(&["cache", "verify", "--cache-dir", b.cache().to_str().unwrap()], b.dir.path()).status.code(), Some(0));

    // A truncated teacher file is caught too; so is an artifact whose record is missing.
    let weights = b.cache().join("teachers").join(format!("{}.safetensors", lock["teacher_key"].as_str().unwrap()));
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let (o, third) = b.run("c", &[]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("cached teacher weights are unusable; retraining"));
    // Retraining is deterministic: the same weights, so the (intact) logits are found again.
    assert_eq!(hits(&third), serde_json::json!(["data", "teacher_logits", "student", "baseline", "evaluate"]));
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
    assert_eq!(
        hits(&forced),
        serde_json::json!(["data", "student", "baseline", "evaluate"]),
        "--force teacher retrains it and recomputes its logits (the same, so the students hit)"
    );
    let (_, logits_only) = b.run("c", &["--force", "logits"]);
    assert_eq!(hits(&logits_only), serde_json::json!(["data", "teacher", "student", "baseline", "evaluate"]));
    let (_, some) = b.run("c2", &["--force", "student,baseline"]);
    assert_eq!(hits(&some), serde_json::json!(["data", "teacher", "teacher_logits", "evaluate"]), "retrained: the same weights, so the same evaluation");
    let (_, repeated) = b.run("c3", &["--force", "student", "--force", "logits"]);
    assert_eq!(hits(&repeated), serde_json::json!(["data", "teacher", "baseline", "evaluate"]));
    let (_, all) = b.run("c4", &["--force"]);
    assert_eq!(hits(&all), serde_json::json!([]));
    let (o, _) = b.run("c5", &["--force", "students"]);
    assert_eq!(o.status.code(), Some(2), "an unknown stage is refused");

    let pipeline = repo().join("pipelines/iris-kd.yaml");
    let cache = b.cache();
    let o = distill(&["plan", pipeline.to_str().unwrap(), "--cache-dir", cache.to_str().unwrap()], b.dir.path());
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    for stage in ["teacher   cached", "logits    cached", "student   cached", "baseline  cached", "evaluate  cached", "data      cached"] {
        assert!(text.contains(stage), "{stage}: {text}");
    }
    assert!(text.contains("unchanged since"), "plan compares with the last run: {text}");
    let plan = |sets: &[&str]| {
        let mut args = vec!["plan", pipeline.to_str().unwrap(), "--cache-dir", cache.to_str().unwrap()];
        args.extend(sets);
        let o = distill(&args, b.dir.path());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let text = plan(&["--set", "teacher.train.epochs=7"]);
    assert!(text.contains("teacher   run") && text.contains("changed since") && text.contains(": teacher.train"), "{text}");
    assert!(text.contains("logits    run") && text.contains("student   run") && text.contains("baseline  cached"), "{text}");
    let text = plan(&["--set", "student.loss.temperature=5"]);
    assert!(text.contains("teacher   cached") && text.contains("logits    cached") && text.contains("baseline  cached"), "{text}");
    assert!(text.lines().any(|l| l.contains("student   run") && l.ends_with(": student.loss")), "the changed key is named: {text}");
    let text = plan(&["--force", "baseline"]);
    assert!(text.contains("student   cached") && text.contains("baseline  run") && text.contains("--force"), "{text}");

    // A second teacher, then forget the first run: gc keeps only what remaining runs use.
    let (_, other) = b.run("other", &["--set", "teacher.train.epochs=7"]);
    let ls = String::from_utf8_lossy(&distill(&["cache", "ls", "--cache-dir", cache.to_str().unwrap()], b.dir.path()).stdout).to_string();
    assert_eq!(ls.lines().filter(|l| l.starts_with("teacher")).count(), 2, "{ls}");
    for run in ["a", "b", "c", "c2", "c3", "c4"] {
        std::fs::remove_dir_all(b.dir.path().join("runs").join("iris-kd").join(run)).unwrap();
    }
    let o = distill(&["cache", "gc", "--cache-dir", cache.to_str().unwrap()], b.dir.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let keys: Vec<String> = distill_cache_keys(&cache);
    let lock = b.lock(&other);
    assert_eq!(keys.len(), 6, "data, teacher, logits, student, baseline, evaluate: {keys:?}");
    for stage in lock["stages"].as_array().unwrap() {
        assert!(keys.contains(&stage["fingerprint"].as_str().unwrap().to_string()), "{stage}");
    }
    let _ = first;
}

fn distill_cache_keys(cache: &Path) -> Vec<String> {
    let mut keys = Vec::new();
    for dir in ["data", "teachers", "logits", "students", "baselines", "evaluations"] {
        for e in std::fs::read_dir(cache.join(dir)).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().to_string();
            if !name.ends_with(".entry.json") {
                keys.push(name.split('.').next().unwrap().to_string());
            }
        }
    }
    keys
}

/// Python's pyarrow and safetensors read what distill writes. The tests install them into their
/// own virtual environment (`common::python`); set DISTILL_SKIP_PYTHON=1 to skip where Python
/// packages cannot be installed.
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
    let o = Command::new(common::python()).args(["-c", script, &logits, run.join("teacher.safetensors").to_str().unwrap()]).output().expect("python3 runs");
    assert!(o.status.success(), "python failed: {}", String::from_utf8_lossy(&o.stderr));
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

fn metrics(run: &Path) -> Value {
    json(&run.join("metrics.json"))
}

/// Runs `b.run` and insists on success.
fn ok(b: &Bench, name: &str, extra: &[&str]) -> PathBuf {
    let (o, run) = b.run(name, extra);
    assert!(o.status.success(), "{name}: {}", String::from_utf8_lossy(&o.stderr));
    run
}

#[test]
fn unchanged_reruns_hit_every_stage_with_the_same_metrics_and_relevant_changes_miss() {
    let b = Bench::new();
    let first = ok(&b, "a", &[]);
    assert_eq!(hits(&first), serde_json::json!([]));
    let again = ok(&b, "b", &[]);
    assert_eq!(hits(&again), serde_json::json!(["data", "teacher", "teacher_logits", "student", "baseline", "evaluate"]));
    let log = std::fs::read_to_string(again.join("run.log")).unwrap();
    assert!(log.contains("student: cache hit, skipped training") && log.contains("baseline: cache hit, skipped training"), "{log}");
    // A hit reports what the miss did: every test metric and the training history.
    let (m1, m2) = (metrics(&first), metrics(&again));
    for model in ["teacher", "student", "baseline"] {
        for key in ["accuracy", "params", "val_accuracy", "teacher_agreement", "evaluation", "size_bytes"] {
            assert_eq!(m1[model][key], m2[model][key], "{model}.{key}");
        }
    }
    assert_eq!(m2["student"]["train_seconds"], 0.0, "nothing was trained");
    assert_eq!(json(&first.join("history.json")), json(&again.join("history.json")));
    let (l1, l2) = (b.lock(&first), b.lock(&again));
    assert_eq!(
        l1["stages"].as_array().unwrap().iter().map(|s| s["fingerprint"].clone()).collect::<Vec<_>>(),
        l2["stages"].as_array().unwrap().iter().map(|s| s["fingerprint"].clone()).collect::<Vec<_>>()
    );
    let stages: Vec<&str> = l2["stages"].as_array().unwrap().iter().map(|s| s["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, ["data", "teacher", "logits", "student", "baseline", "evaluate"]);
    for s in l2["stages"].as_array().unwrap().iter().skip(1) {
        assert_eq!(s["artifact"].as_str().unwrap().len(), 64, "every stage records its artifact's blake3: {s}");
        assert_eq!(s["cached"], true);
    }
    for key in ["distill_version", "pipeline_sha", "data_fingerprint"] {
        assert!(l2[key].as_str().is_some_and(|v| !v.is_empty()), "lock.json {key}");
    }

    // A student-only change: the teacher, its logits and the baseline are reused.
    let student_only = ok(&b, "student-loss", &["--set", "student.loss.temperature=4"]);
    assert_eq!(hits(&student_only), serde_json::json!(["data", "teacher", "teacher_logits", "baseline"]));

    // Every change the teacher depends on misses the teacher and its logits.
    let rows = b.dir.path().join("iris-fewer.csv");
    let csv = std::fs::read_to_string(repo().join("datasets/iris.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    std::fs::write(&rows, lines[..lines.len() - 1].join("\n") + "\n").unwrap();
    let source = format!("data.source.path={}", rows.display());
    let changes: [(&str, Vec<&str>); 5] = [
        ("data rows", vec!["--set", &source]),
        ("preprocessing", vec!["--set", "data.scale.kind=minmax"]),
        ("teacher architecture", vec!["--set", "teacher.model.hidden=[16, 16]"]),
        ("teacher training", vec!["--set", "teacher.train.epochs=50"]),
        ("augmentation", vec!["--set", "data.augment=[{kind: gaussian_noise, std: 0.05, copies: 1}]"]),
    ];
    for (i, (what, sets)) in changes.iter().enumerate() {
        // Targets do not enter any key; a lower bar keeps weaker variants from exiting with 3.
        let run = ok(&b, &format!("change{i}"), &[sets.as_slice(), &["--set", "evaluate.targets.min_accuracy=0"]].concat());
        let h = hits(&run);
        assert!(!h.as_array().unwrap().iter().any(|s| s == "teacher" || s == "teacher_logits" || s == "student"), "{what}: {h}");
    }

    // Given weights: the logits are keyed by the weights' bytes, so the trained teacher's own
    // weights find its logits, and other weights miss.
    let own = format!("teacher.weights={}", first.join("teacher.safetensors").display());
    let given = ok(&b, "given", &["--set", &own]);
    assert_eq!(hits(&given), serde_json::json!(["data", "teacher_logits", "student", "baseline"]), "a given teacher has no history: evaluated again");
    let mut bytes = std::fs::read(first.join("teacher.safetensors")).unwrap();
    *bytes.last_mut().unwrap() ^= 1; // the lowest mantissa bit of the last bias
    let nudged = b.dir.path().join("nudged.safetensors");
    std::fs::write(&nudged, bytes).unwrap();
    let other = format!("teacher.weights={}", nudged.display());
    let given_other = ok(&b, "given-other", &["--set", &other]);
    assert_eq!(hits(&given_other), serde_json::json!(["data", "baseline"]), "other weights, other logits");
}

/// The logits of a finished run as an external file (the cache's own schema, other metadata).
fn external_from(run: &Path, out: &Path, edit: impl FnOnce(&mut Vec<u64>, &mut Vec<f32>, &mut Vec<String>)) {
    let lock = json(&run.join("lock.json"));
    let file = distill_cache::read_logits(Path::new(lock["logits_file"].as_str().unwrap())).unwrap();
    let (mut ids, mut logits, mut names) = (file.row_ids, file.logits, file.meta.class_names);
    edit(&mut ids, &mut logits, &mut names);
    let meta = distill_cache::LogitMeta { teacher_fingerprint: "pytorch".into(), data_fingerprint: "elsewhere".into(), class_names: names, top_k: None };
    distill_cache::write_logits(out, &meta, &ids, &logits).unwrap();
}

#[test]
fn external_logits_drive_a_run_and_bad_ones_are_rejected() {
    let b = Bench::new();
    let first = ok(&b, "a", &[]);
    let file = b.dir.path().join("teacher-logits.parquet");
    external_from(&first, &file, |_, _, _| {});
    let teacher = format!("teacher={{logits: {{path: {}}}}}", file.display());
    let ext = ok(&b, "ext", &["--set", &teacher]);
    let (m1, m2) = (metrics(&first), metrics(&ext));
    assert_eq!(m1["student"]["accuracy"], m2["student"]["accuracy"], "the same logits train the same student");
    let without_agreement = |m: &Value| {
        let mut e = m["student"]["evaluation"].clone();
        e.as_object_mut().unwrap().remove("teacher_agreement");
        e
    };
    assert_eq!(without_agreement(&m1), without_agreement(&m2));
    assert!(m2["student"]["evaluation"].get("teacher_agreement").is_none(), "no teacher test logits, no agreement");
    assert!(m2.get("teacher").is_none() && m2.get("compression").is_none(), "no teacher model, no teacher metrics: {m2}");
    assert!(m2["student"].get("teacher_agreement").is_none());
    assert!(ext.join("report.html").is_file() && !ext.join("teacher.safetensors").exists());
    let lock = b.lock(&ext);
    assert_eq!(lock["stages"][1]["inputs"].as_object().unwrap().keys().collect::<Vec<_>>(), ["teacher.logits"]);
    // A file written by pyarrow the plain way (int64 ids, variable-length float64 lists, no
    // metadata) trains the same student.
    if std::env::var_os("DISTILL_SKIP_PYTHON").is_none() {
        let ours = distill_cache::read_logits(&file).unwrap();
        let py_file = b.dir.path().join("from-python.parquet");
        let script = "import json, sys, pyarrow as pa, pyarrow.parquet as pq\nd = json.load(sys.stdin)\nk = 3\nrows = [d['logits'][i * k:(i + 1) * k] for i in range(len(d['ids']))]\npq.write_table(pa.table({'row_id': pa.array(d['ids'], pa.int64()), 'logits': pa.array(rows, pa.list_(pa.float64()))}), sys.argv[1])";
        let mut py =
            Command::new(common::python()).args(["-c", script, py_file.to_str().unwrap()]).stdin(std::process::Stdio::piped()).spawn().expect("python3 runs");
        let payload = serde_json::json!({"ids": ours.row_ids, "logits": ours.logits});
        std::io::Write::write_all(&mut py.stdin.take().unwrap(), payload.to_string().as_bytes()).unwrap();
        assert!(py.wait().unwrap().success(), "pyarrow writes the file");
        let set = format!("teacher={{logits: {{path: {}}}}}", py_file.display());
        let from_python = ok(&b, "ext-python", &["--set", &set]);
        assert_eq!(metrics(&from_python)["student"]["accuracy"], m1["student"]["accuracy"]);
    }
    let o = distill(
        &["plan", repo().join("pipelines/iris-kd.yaml").to_str().unwrap(), "--cache-dir", b.cache().to_str().unwrap(), "--set", &teacher],
        b.dir.path(),
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("teacher   given   external logits") && text.contains("logits    cached") && text.contains("student   cached"), "{text}");
    // The logits' key covers the file's content: another file misses.
    external_from(&first, &file, |_, l, _| l[0] += 0.5);
    let changed = ok(&b, "ext2", &["--set", &teacher]);
    assert_ne!(b.lock(&changed)["logits_key"], lock["logits_key"]);

    // With the test rows' ids too, the teacher's test metrics come from the file.
    let iris_rows = 150u64;
    external_from(&first, &file, |ids, l, _| {
        for id in 0..iris_rows {
            if !ids.contains(&id) {
                ids.push(id);
                l.extend([1.0, 0.0, 0.0]);
            }
        }
    });
    let with_test = ok(&b, "ext-test", &["--set", &teacher]);
    let m = metrics(&with_test);
    assert_eq!(m["teacher"]["params"], 0);
    assert!(
        m["teacher"]["accuracy"].as_f64().unwrap() > 0.2 && m["teacher"]["accuracy"].as_f64().unwrap() < 0.5,
        "every test row predicted setosa: {}",
        m["teacher"]
    );
    assert!(m["student"]["teacher_agreement"].is_number());

    // Bad files: a missing row, another class count, a NaN. Exit 2, no run directory.
    type Edit = Box<dyn FnOnce(&mut Vec<u64>, &mut Vec<f32>, &mut Vec<String>)>;
    let bad: [(&str, Edit, &str); 3] = [
        (
            "missing",
            Box::new(|ids, l, _| {
                ids.remove(0);
                l.drain(..3);
            }),
            "no logits for training row_id",
        ),
        (
            "classes",
            Box::new(|ids, l, names| {
                names.pop();
                *l = vec![0.5; ids.len() * 2];
            }),
            "says 2 classes; the data has 3",
        ),
        ("nan", Box::new(|_, l, _| l[4] = f32::NAN), "row 1 (row_id"),
    ];
    for (name, edit, message) in bad {
        let path = b.dir.path().join(format!("{name}.parquet"));
        external_from(&first, &path, edit);
        let set = format!("teacher={{logits: {{path: {}}}}}", path.display());
        let (o, run) = b.run(name, &["--set", &set]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains("teacher.logits.path") && err.contains(&format!("{name}.parquet")) && err.contains(message), "{name}: {err}");
        assert!(!run.exists(), "{name}: no partial run directory");
    }
    // The recipe: logits exclude a model, weights and training; errors point at the key.
    let o = distill(
        &["validate", repo().join("pipelines/iris-kd.yaml").to_str().unwrap(), "--set", &format!("teacher.logits={{path: {}}}", file.display())],
        b.dir.path(),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("teacher.model") && err.contains("leave `model` out") && err.contains("teacher.train"), "{err}");
    let o = distill(&["validate", repo().join("pipelines/iris-kd.yaml").to_str().unwrap(), "--set", "teacher={}"], b.dir.path());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.code() == Some(2) && err.contains("teacher.model") && err.contains("needs a `model`"), "{err}");
}

#[test]
fn top_k_logits_train_like_full_ones_when_k_is_every_class_and_still_train_when_small() {
    let b = Bench::new();
    let full = ok(&b, "full", &[]);
    let all = ok(&b, "top3", &["--set", "teacher.cache={top_k: 3}"]);
    assert_eq!(hits(&all), serde_json::json!(["data", "teacher", "baseline"]), "K is part of the logits' key");
    let (m1, m2) = (metrics(&full), metrics(&all));
    assert_eq!(m1["student"]["evaluation"], m2["student"]["evaluation"], "top_k = classes rebuilds every logit exactly");
    let tensors = |run: &Path| {
        let bytes = std::fs::read(run.join("student.safetensors")).unwrap();
        let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        bytes[8 + header..].to_vec()
    };
    assert_eq!(tensors(&full), tensors(&all));
    let one = ok(&b, "top1", &["--set", "teacher.cache={top_k: 1}"]);
    assert!(metrics(&one)["student"]["accuracy"].as_f64().unwrap() > 0.6);
    let path = PathBuf::from(b.lock(&one)["logits_file"].as_str().unwrap());
    let file = distill_cache::read_logits(&path).unwrap();
    assert_eq!(file.meta.top_k, Some(1));
    for row in file.logits.chunks(3) {
        let mut sorted = row.to_vec();
        sorted.sort_by(f32::total_cmp);
        assert_eq!(sorted[0], sorted[1], "the two dropped logits share the tail's mass: {row:?}");
    }
    let (o, _) = b.run("too-big", &["--set", "teacher.cache={top_k: 4}"]);
    assert!(o.status.code() == Some(2) && String::from_utf8_lossy(&o.stderr).contains("teacher.cache.top_k: 4 is more than the 3 classes"));
    if std::env::var_os("DISTILL_SKIP_PYTHON").is_none() {
        let script = "import sys, pyarrow.parquet as pq; t = pq.read_table(sys.argv[1]); print(t.schema.names, t.schema.field('topk_indices').type, t.schema.field('topk_values').type, pq.ParquetFile(sys.argv[1]).metadata.metadata[b'distill.top_k'].decode())";
        let o = Command::new(common::python()).args(["-c", script, path.to_str().unwrap()]).output().expect("python3 runs");
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let out = out.replace("element: ", "item: "); // pyarrow names the list's field either way
        assert_eq!(
            out.trim(),
            "['row_id', 'topk_indices', 'topk_values', 'tail_logsumexp'] fixed_size_list<item: uint32>[1] fixed_size_list<item: float>[1] 1"
        );
    }
}

fn tmp_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.to_string_lossy().ends_with(".tmp")).collect()).unwrap_or_default()
}

#[test]
fn a_writer_killed_before_the_rename_leaves_nothing_a_later_run_would_use() {
    let b = Bench::new();
    let out = b.dir.path().join("runs").join("iris-kd").join("killed");
    let cache = b.cache();
    let mut child = Command::new(env!("CARGO_BIN_EXE_distill"))
        .args(["run", repo().join("pipelines/iris-kd.yaml").to_str().unwrap(), "--out", out.to_str().unwrap(), "--cache-dir", cache.to_str().unwrap()])
        .env("DISTILL_TEST_PAUSE_BEFORE_RENAME", "logits:60000")
        .env_remove("DISTILL_CACHE_DIR")
        .current_dir(b.dir.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let logits_dir = cache.join("logits");
    let started = std::time::Instant::now();
    while tmp_files(&logits_dir).is_empty() {
        assert!(started.elapsed().as_secs() < 120, "the logits' temporary file never appeared");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before writing the logits");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no cleanup runs.
    child.wait().unwrap();
    let left: Vec<_> = std::fs::read_dir(&logits_dir).unwrap().filter_map(|e| e.ok().map(|e| e.path())).collect();
    let complete: Vec<_> = left.iter().filter(|p| !p.to_string_lossy().ends_with(".tmp") && !p.to_string_lossy().ends_with(".lock")).collect();
    assert!(complete.is_empty(), "only the temporary file (and the killed writer's lock) is there: {complete:?}");
    assert!(!out.join("lock.json").exists() && !out.join("metrics.json").exists());
    let o = distill(&["cache", "verify", "--cache-dir", cache.to_str().unwrap()], b.dir.path());
    assert_eq!(o.status.code(), Some(0), "the leftover is not an entry: {}", String::from_utf8_lossy(&o.stdout));

    let again = ok(&b, "again", &[]);
    assert_eq!(hits(&again), serde_json::json!(["data", "teacher"]), "the logits are computed again");
    assert_eq!(tmp_files(&logits_dir).len(), 1, "a run ignores another process's temporary file");
    let locks = std::fs::read_dir(&logits_dir).unwrap().filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".lock"))).count();
    assert_eq!(locks, 0, "the killed writer's lock was taken over, and released after the store");
    assert!(distill(&["cache", "gc", "--cache-dir", cache.to_str().unwrap()], b.dir.path()).status.success());
    assert!(tmp_files(&logits_dir).is_empty(), "gc removes leftover temporary files");
    assert_eq!(hits(&ok(&b, "third", &[])), serde_json::json!(["data", "teacher", "teacher_logits", "student", "baseline", "evaluate"]));
}

#[test]
fn two_runs_sharing_a_cache_at_once_both_succeed_and_leave_one_valid_entry_per_key() {
    let b = Bench::new();
    let cache = b.cache();
    let spawn = |name: &str| {
        let out = b.dir.path().join("runs").join("iris-kd").join(name);
        Command::new(env!("CARGO_BIN_EXE_distill"))
            .args(["run", repo().join("pipelines/iris-kd.yaml").to_str().unwrap(), "--out", out.to_str().unwrap(), "--cache-dir", cache.to_str().unwrap()])
            .env_remove("DISTILL_CACHE_DIR")
            .env_remove("RUST_LOG")
            .current_dir(b.dir.path())
            .output()
    };
    let (x, y) = std::thread::scope(|s| {
        let x = s.spawn(|| spawn("x").unwrap());
        let y = s.spawn(|| spawn("y").unwrap());
        (x.join().unwrap(), y.join().unwrap())
    });
    for o in [&x, &y] {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let o = distill(&["cache", "verify", "--cache-dir", cache.to_str().unwrap()], b.dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    assert_eq!(distill_cache_keys(&cache).len(), 6, "one entry per stage (data to evaluate)");
    let runs = b.dir.path().join("runs").join("iris-kd");
    assert_eq!(metrics(&runs.join("x"))["student"]["accuracy"], metrics(&runs.join("y"))["student"]["accuracy"]);
}
