//! Warm re-runs through the binary: a second run of an unchanged recipe finds the data snapshot
//! and the evaluation in the cache as well as the models, and writes the same metrics; a changed
//! byte in the data file invalidates the snapshot (its mtime alone does not); `--force evaluate`
//! measures again; targets are still checked on every run; `plan`, `lock.json` and `cache
//! ls|verify|gc` know both stages. Peak memory is reported per stage.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::distill_in;
use serde_json::Value;

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn hits(run: &Path) -> Vec<String> {
    json(&run.join("metrics.json"))["cache_hits"].as_array().unwrap().iter().map(|h| h.as_str().unwrap().to_string()).collect()
}

/// The digits recipe, small, on a copy of its data file in a temporary folder.
struct Bench {
    dir: tempfile::TempDir,
}

impl Bench {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/digits.csv"), dir.path().join("digits.csv")).unwrap();
        Self { dir }
    }
    fn data(&self) -> PathBuf {
        self.dir.path().join("digits.csv")
    }
    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }
    fn args(&self, command: &str, extra: &[&str]) -> Vec<String> {
        let pipeline = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/digits-kd.yaml");
        let source = format!("data.source.path={}", self.data().display());
        let mut args: Vec<String> =
            [command, pipeline.to_str().unwrap(), "--cache-dir", self.cache().to_str().unwrap(), "--set", &source].map(String::from).to_vec();
        for set in ["teacher.model.hidden=[32]", "teacher.train.epochs=6", "student.train.epochs=6", "evaluate.targets.min_accuracy=0.5"] {
            args.extend(["--set".to_string(), set.to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }
    /// Runs into `runs/digits-kd/<name>` (under the temporary folder); returns the run and its output.
    fn run(&self, name: &str, extra: &[&str]) -> (PathBuf, Output) {
        let out = self.dir.path().join("runs").join("digits-kd").join(name);
        let mut args = self.args("run", extra);
        args.extend(["--out".to_string(), out.display().to_string()]);
        let o = distill_in(&args.iter().map(String::as_str).collect::<Vec<_>>(), self.dir.path());
        (out, o)
    }
    fn ok(&self, name: &str, extra: &[&str]) -> PathBuf {
        let (out, o) = self.run(name, extra);
        assert!(o.status.success(), "{}", text(&o));
        out
    }
    fn distill(&self, args: &[&str]) -> Output {
        distill_in(args, self.dir.path())
    }
}

/// `metrics.json` without what differs from run to run by its nature: wall times, what was
/// found in the cache, peak memory.
fn comparable(run: &Path) -> Value {
    let mut m = json(&run.join("metrics.json"));
    for key in ["seconds", "cache_hits", "peak_rss"] {
        m.as_object_mut().unwrap().remove(key);
    }
    for role in ["teacher", "student", "baseline"] {
        m[role].as_object_mut().unwrap().remove("train_seconds");
    }
    m
}

#[test]
fn a_warm_run_finds_every_stage_and_writes_the_same_metrics() {
    let b = Bench::new();
    let cold = b.ok("cold", &[]);
    assert_eq!(hits(&cold), Vec::<String>::new());
    let warm = b.ok("warm", &[]);
    assert_eq!(hits(&warm), ["data", "teacher", "teacher_logits", "student", "baseline", "export", "quantize", "evaluate"]);
    assert_eq!(comparable(&cold), comparable(&warm), "the same metrics, latency included (measured once)");
    let m = json(&warm.join("metrics.json"));
    assert_eq!(m["student"]["train_seconds"], 0.0, "nothing was trained in the warm run");
    assert!(json(&cold.join("metrics.json"))["student"]["train_seconds"].as_f64().unwrap() > 0.0);
    for file in ["history.json", "checks.json", "student.safetensors", "teacher.safetensors", "baseline.safetensors", "student.onnx", "student.int8.onnx"] {
        assert_eq!(std::fs::read(cold.join(file)).unwrap(), std::fs::read(warm.join(file)).unwrap(), "{file}");
    }
    let log = std::fs::read_to_string(warm.join("run.log")).unwrap();
    assert!(log.contains("data: snapshot found, the source was not parsed again"), "{log}");
    assert!(log.contains("evaluate: cache hit"), "{log}");
    let lock = json(&warm.join("lock.json"));
    let stages: Vec<(&str, bool)> = lock["stages"].as_array().unwrap().iter().map(|s| (s["stage"].as_str().unwrap(), s["cached"].as_bool().unwrap())).collect();
    assert_eq!(
        stages,
        [("data", true), ("teacher", true), ("logits", true), ("student", true), ("baseline", true), ("export", true), ("quantize", true), ("evaluate", true)]
    );
    assert_eq!(lock["data_fingerprint"], json(&cold.join("lock.json"))["data_fingerprint"]);
    // Peak memory per stage, in the order the stages ran.
    let peaks: Vec<&str> = m["peak_rss"]["stages"].as_array().unwrap().iter().map(|s| s["stage"].as_str().unwrap()).collect();
    assert_eq!(peaks, ["data", "teacher", "logits", "student", "baseline", "export", "quantize", "evaluate"]);
    assert!(m["peak_rss"]["stages"].as_array().unwrap().iter().all(|s| s["peak_rss_mb"].as_f64().unwrap() > 1.0), "{}", m["peak_rss"]);

    // `plan` says the same before a third run.
    let args = b.args("plan", &[]);
    let o = b.distill(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", text(&o));
    let plan = text(&o);
    for stage in ["data", "teacher", "logits", "student", "baseline", "export", "quantize", "evaluate"] {
        assert!(plan.lines().any(|l| l.trim_start().starts_with(&format!("{stage} ")) && l.contains(" cached ")), "{stage}: {plan}");
    }

    // The targets are checked against the cached metrics: a target the student misses is exit 3.
    let (strict, o) = b.run("strict", &["--set", "evaluate.targets.min_accuracy=0.9999"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(hits(&strict).contains(&"evaluate".to_string()), "a target is not part of the evaluation's key");
    assert_eq!(json(&strict.join("metrics.json"))["targets_met"], false);

    // `--force evaluate` measures again; the models stay cached.
    let forced = b.ok("forced", &["--force", "evaluate"]);
    assert_eq!(hits(&forced), ["data", "teacher", "teacher_logits", "student", "baseline", "export", "quantize"]);
    assert!(std::fs::read_to_string(forced.join("run.log")).unwrap().contains("evaluate: --force, measuring again"));
    let (f, w) = (json(&forced.join("metrics.json")), json(&warm.join("metrics.json")));
    assert_eq!(f["student"]["evaluation"], w["student"]["evaluation"], "the same test metrics");
    assert!(f["student"]["latency"]["runs"].as_u64().unwrap() > 0, "latency measured");

    // The cache knows both kinds: listed, verified, and kept by gc for the runs that use them.
    let cache = b.cache();
    let ls = text(&b.distill(&["cache", "ls", "--cache-dir", cache.to_str().unwrap()]));
    assert!(ls.lines().any(|l| l.starts_with("data")) && ls.lines().any(|l| l.starts_with("evaluate")), "{ls}");
    assert_eq!(b.distill(&["cache", "verify", "--cache-dir", cache.to_str().unwrap()]).status.code(), Some(0));
    let o = b.distill(&["cache", "gc", "--cache-dir", cache.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(hits(&b.ok("after-gc", &[])), ["data", "teacher", "teacher_logits", "student", "baseline", "export", "quantize", "evaluate"]);
}

#[test]
fn the_snapshot_follows_the_data_files_bytes() {
    let b = Bench::new();
    let first = b.ok("first", &[]);
    // The same bytes written again (a new mtime): still the snapshot.
    let bytes = std::fs::read(b.data()).unwrap();
    std::fs::write(b.data(), &bytes).unwrap();
    assert_eq!(hits(&b.ok("rewritten", &[]))[0], "data");

    // One pixel of the last row changed (same size): the source is parsed again.
    let mut changed = String::from_utf8(bytes).unwrap();
    let cut = changed.trim_end().rfind('\n').unwrap() + 1;
    let row: Vec<&str> = changed[cut..].trim_end().split(',').collect();
    let first_value = if row[0] == "0" { "1" } else { "0" };
    let new_row = std::iter::once(first_value).chain(row[1..].iter().copied()).collect::<Vec<_>>().join(",");
    changed.replace_range(cut.., &format!("{new_row}\n"));
    std::fs::write(b.data(), &changed).unwrap();
    let edited = b.ok("edited", &[]);
    assert!(!hits(&edited).contains(&"data".to_string()), "{:?}", hits(&edited));
    let log = std::fs::read_to_string(edited.join("run.log")).unwrap();
    assert!(!log.contains("snapshot found") && log.contains("data: snapshot stored"), "{log}");
    assert_ne!(json(&edited.join("lock.json"))["data_fingerprint"], json(&first.join("lock.json"))["data_fingerprint"]);

    // A corrupted snapshot is reported and prepared again, with the same result.
    let snapshots: Vec<PathBuf> =
        std::fs::read_dir(b.cache().join("data")).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "snapshot")).collect();
    assert_eq!(snapshots.len(), 2, "{snapshots:?}");
    for path in &snapshots {
        let mut bytes = std::fs::read(path).unwrap();
        let at = bytes.len() - 7;
        bytes[at] ^= 0x55;
        std::fs::write(path, bytes).unwrap();
    }
    let o = b.distill(&["cache", "verify", "--cache-dir", b.cache().to_str().unwrap()]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    let again = b.ok("again", &[]);
    let log = std::fs::read_to_string(again.join("run.log")).unwrap();
    assert!(log.contains("the data snapshot is unusable"), "{log}");
    assert!(!hits(&again).contains(&"data".to_string()));
    assert_eq!(json(&again.join("lock.json"))["data_fingerprint"], json(&edited.join("lock.json"))["data_fingerprint"]);
    assert_eq!(hits(&b.ok("repaired", &[]))[0], "data", "the snapshot was replaced");
}

#[test]
fn force_data_parses_the_source_again() {
    let b = Bench::new();
    let first = b.ok("first", &[]);
    let forced = b.ok("forced", &["--force", "data"]);
    assert_eq!(hits(&forced), ["teacher", "teacher_logits", "student", "baseline", "export", "quantize", "evaluate"], "the same data, so the same models");
    assert_eq!(json(&forced.join("lock.json"))["data_fingerprint"], json(&first.join("lock.json"))["data_fingerprint"]);
}
