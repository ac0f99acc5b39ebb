//! The cache never loses or keeps bad data, through the binary: `cache gc` removes only what no
//! finished or running run can use (runs in progress hold a lease), refuses a missing runs
//! directory and lists before removing with `--dry-run`; an artifact whose record matches but
//! that does not load is reported by `cache verify` and replaced by the next run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use serde_json::Value;

fn distill(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_distill"))
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .env_remove("DISTILL_CACHE_DIR")
        .env_remove("DISTILL_TEST_PAUSE_BEFORE_RENAME")
        .output()
        .expect("distill runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
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
    fn run_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join("runs").join("iris-kd").join(name)
    }
    /// Runs the iris recipe into `runs/iris-kd/<name>`; asserts it succeeded.
    fn run(&self, name: &str) -> PathBuf {
        let out = self.run_dir(name);
        let pipeline = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/iris-kd.yaml");
        let o = distill(&["run", pipeline.to_str().unwrap(), "--out", out.to_str().unwrap(), "--cache-dir", self.cache().to_str().unwrap()], self.dir.path());
        assert!(o.status.success(), "{}", text(&o));
        out
    }
    fn cache_cmd(&self, args: &[&str]) -> Output {
        let cache = self.cache();
        let mut all = vec!["cache"];
        all.extend(args);
        all.extend(["--cache-dir", cache.to_str().unwrap()]);
        distill(&all, self.dir.path())
    }
    /// Every artifact and record in the cache's artifact folders.
    fn files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for kind in distill_pipeline::artifact_kinds() {
            if let Ok(list) = std::fs::read_dir(self.cache().join(kind.dir)) {
                out.extend(list.filter_map(|e| e.ok().map(|e| e.path())));
            }
        }
        out.sort();
        out
    }
}

fn hits(run: &Path) -> Value {
    json(&run.join("metrics.json"))["cache_hits"].clone()
}

/// Makes every file an hour old, as if the runs that wrote them were long over.
fn backdate(files: &[PathBuf]) {
    let old = SystemTime::now() - Duration::from_secs(3600);
    for f in files {
        std::fs::File::options().write(true).open(f).unwrap().set_modified(old).unwrap();
    }
}

#[test]
fn gc_needs_its_runs_directory_and_a_dry_run_lists_without_removing() {
    let b = Bench::new();
    let run = b.run("a");
    let before = b.files();
    // The data snapshot, teacher, logits, student, baseline and evaluation, and their records.
    assert_eq!(before.len(), 12, "six artifacts and their records: {before:?}");

    let o = b.cache_cmd(&["gc", "--runs", "no-such-runs"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--runs no-such-runs: not a directory"), "{}", text(&o));
    assert_eq!(b.files(), before, "nothing was removed");

    std::fs::remove_dir_all(&run).unwrap();
    let o = b.cache_cmd(&["gc", "--dry-run"]);
    assert!(o.status.success(), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    let listed: Vec<&str> = stdout.lines().filter_map(|l| l.strip_prefix("would remove ")).collect();
    assert_eq!(listed.len(), 12, "{}", text(&o));
    for f in &before {
        assert!(listed.contains(&f.to_str().unwrap()), "{} not listed", f.display());
    }
    assert_eq!(b.files(), before, "a dry run removes nothing");
    assert!(b.cache_cmd(&["gc"]).status.success());
    assert!(b.files().is_empty());
}

#[test]
fn gc_keeps_what_a_run_in_progress_holds_or_wrote_and_ignores_leases_of_ended_runs() {
    let b = Bench::new();
    let run = b.run("a");
    let lock = json(&run.join("lock.json"));
    std::fs::remove_dir_all(&run).unwrap();
    backdate(&b.files());
    let key = |stage: &str| lock["stages"].as_array().unwrap().iter().find(|s| s["stage"] == stage).unwrap()["fingerprint"].as_str().unwrap().to_string();

    // A run in progress (this test process) holds the teacher and writes a new student.
    let cache = distill_cache::Cache::new(b.cache(), &distill_pipeline::artifact_kinds());
    let mut lease = cache.lease().unwrap();
    lease.hold(&key("teacher")).unwrap();
    let student = cache.artifact("student", &key("student"));
    let fresh = cache.artifact("student", "written-by-the-live-run");
    cache.store("student", "written-by-the-live-run", &fresh, &std::fs::read(&student).unwrap(), "iris-kd").unwrap();
    // And a lease left by a run that was killed: its process has ended.
    let mut ended = Command::new("true").spawn().unwrap();
    let dead = ended.id();
    ended.wait().unwrap();
    let stale = b.cache().join("leases").join("stale.json");
    let record = serde_json::json!({"pid": dead, "proc_start": null, "started_ms": 1, "keys": [key("logits")]});
    std::fs::write(&stale, record.to_string()).unwrap();

    let o = b.cache_cmd(&["gc"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("1 runs in progress"), "{out}");
    assert!(out.contains(&format!("kept (a run in progress may use it) {}", cache.artifact("teacher", &key("teacher")).display())), "{out}");
    assert!(out.contains(&format!("kept (a run in progress may use it) {}", fresh.display())), "{out}");
    assert!(out.contains(&format!("removed stale lease {}", stale.display())), "{out}");
    assert!(cache.artifact("teacher", &key("teacher")).exists() && fresh.exists());
    assert!(!cache.artifact("logits", &key("logits")).exists(), "a stale lease protects nothing");
    assert!(!student.exists() && !stale.exists());

    drop(lease);
    backdate(&b.files());
    let o = b.cache_cmd(&["gc"]);
    assert!(o.status.success() && text(&o).contains("0 runs in progress"), "{}", text(&o));
    assert!(b.files().is_empty(), "once the run has ended: {:?}", b.files());
}

/// Replaces an artifact's bytes and rewrites its record to match, as another tool could.
fn plant(artifact: &Path, bytes: &[u8]) {
    let mut name = artifact.file_name().unwrap().to_os_string();
    name.push(".entry.json");
    let record_path = artifact.with_file_name(name);
    let mut record = json(&record_path);
    record["blake3"] = distill_cache::hash_bytes(bytes).into();
    record["bytes"] = bytes.len().into();
    std::fs::write(artifact, bytes).unwrap();
    std::fs::write(&record_path, record.to_string()).unwrap();
}

#[test]
fn an_artifact_whose_record_matches_but_that_does_not_load_is_reported_and_replaced() {
    let b = Bench::new();
    let first = b.run("a");
    let lock = json(&first.join("lock.json"));
    let logits = PathBuf::from(lock["logits_file"].as_str().unwrap());
    let cache = distill_cache::Cache::new(b.cache(), &distill_pipeline::artifact_kinds());
    let teacher = cache.artifact("teacher", lock["teacher_key"].as_str().unwrap());
    let half = std::fs::read(&teacher).unwrap();
    plant(&teacher, &half[..half.len() / 2]);
    plant(&logits, b"PAR1 not a parquet file PAR1");
    assert_eq!(cache.load_verified(&logits).unwrap().unwrap(), b"PAR1 not a parquet file PAR1", "the checksums match");

    let o = b.cache_cmd(&["verify"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let report = String::from_utf8_lossy(&o.stdout).to_string();
    for (path, why) in [(&teacher, "not a safetensors file"), (&logits, "the file does not load")] {
        assert!(report.lines().any(|l| l.starts_with("BAD") && l.contains(path.to_str().unwrap()) && l.contains(why)), "{}: {report}", path.display());
    }

    // The next run recomputes both and replaces them; the one after finds every stage.
    let second = b.run("b");
    assert_eq!(hits(&second), serde_json::json!(["data", "student", "baseline", "evaluate"]), "the same teacher and logits again, so the students hit");
    let o = b.cache_cmd(&["verify"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(std::fs::read(&teacher).unwrap(), half, "the good artifact is back");
    assert_eq!(hits(&b.run("c")), serde_json::json!(["data", "teacher", "teacher_logits", "student", "baseline", "evaluate"]));
}

#[test]
fn an_artifact_that_loads_but_does_not_fit_the_recipe_is_replaced_not_retrained_forever() {
    let b = Bench::new();
    let first = b.run("a");
    let lock = json(&first.join("lock.json"));
    let cache = distill_cache::Cache::new(b.cache(), &distill_pipeline::artifact_kinds());
    let teacher = std::fs::read(cache.artifact("teacher", lock["teacher_key"].as_str().unwrap())).unwrap();
    let student_key = lock["stages"].as_array().unwrap().iter().find(|s| s["stage"] == "student").unwrap()["fingerprint"].as_str().unwrap().to_string();
    let student = cache.artifact("student", &student_key);
    let good = std::fs::read(&student).unwrap();
    // Valid safetensors with a matching record, but the teacher's shape: it loads, it does not fit.
    plant(&student, &teacher);
    assert_eq!(b.cache_cmd(&["verify"]).status.code(), Some(0), "verify sees a loadable file");

    let second = b.run("b");
    assert_eq!(hits(&second), serde_json::json!(["data", "teacher", "teacher_logits", "baseline", "evaluate"]), "the student is retrained (the same weights)");
    assert_eq!(std::fs::read(&student).unwrap(), good, "and the misfit is replaced by what it retrained");
    assert_eq!(hits(&b.run("c")), serde_json::json!(["data", "teacher", "teacher_logits", "student", "baseline", "evaluate"]), "so the next run finds it");
}

#[test]
fn gc_racing_a_run_leaves_every_artifact_the_run_records() {
    let b = Bench::new();
    std::fs::create_dir_all(b.dir.path().join("runs")).unwrap();
    let out = b.run_dir("racing");
    let pipeline = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/iris-kd.yaml");
    let child = Command::new(env!("CARGO_BIN_EXE_distill"))
        .args(["run", pipeline.to_str().unwrap(), "--out", out.to_str().unwrap(), "--cache-dir", b.cache().to_str().unwrap()])
        .env("DISTILL_TEST_PAUSE_BEFORE_RENAME", "logits:3000")
        .env_remove("DISTILL_CACHE_DIR")
        .env_remove("RUST_LOG")
        .current_dir(b.dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Paused with the teacher stored and the logits in their temporary file: gc now.
    let started = std::time::Instant::now();
    while !b.files().iter().any(|p| p.to_string_lossy().ends_with(".tmp")) {
        assert!(started.elapsed() < Duration::from_secs(120), "the run never reached the logits");
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = b.cache_cmd(&["gc"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let lock = json(&out.join("lock.json"));
    let cache = distill_cache::Cache::new(b.cache(), &distill_pipeline::artifact_kinds());
    for stage in lock["stages"].as_array().unwrap().iter().filter(|s| s["stage"] != "data") {
        let path = cache.artifact(stage["stage"].as_str().unwrap(), stage["fingerprint"].as_str().unwrap());
        assert!(matches!(cache.load_verified(&path), Ok(Some(_))), "{} was removed under the run", path.display());
    }
}
