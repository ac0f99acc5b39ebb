//! On a real scheduler: a one-node Slurm cluster on this machine (`tests/fixtures/slurm/
//! local-cluster.sh`, started here when it is not up; installed with apt-get where it is not).
//! Jobs are submitted with `sbatch --wait`: four logit shards as an array equal one process
//! bitwise; a digits sweep submitted with `distill submit --slurm` gives the local run's metrics;
//! a task killed mid-way and submitted again finishes with the same result; two tasks racing for
//! one artifact compute it once. Where Slurm cannot be installed the tests say so and pass.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};

use common::generated::{files_ending, only_file};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_distill");

/// One test at a time has the cluster (racing tasks need both CPUs at once).
static SERIAL: Mutex<()> = Mutex::new(());

/// Whether the cluster is up (started if need be); `false`, with a message, only when Slurm
/// cannot be installed here.
fn cluster() -> bool {
    static UP: OnceLock<Result<(), String>> = OnceLock::new();
    let up = UP.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/slurm/local-cluster.sh");
        let o = Command::new("bash").arg(&script).arg("start").output().map_err(|e| format!("bash: {e}"))?;
        let says = text(&o);
        match o.status.code() {
            Some(0) => Ok(()),
            Some(3) => Err(says),
            _ => panic!("{} start failed: {says}", script.display()),
        }
    });
    match up {
        Ok(()) => true,
        Err(why) => {
            eprintln!("skipped: Slurm cannot be installed on this machine ({})", why.trim());
            false
        }
    }
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn q(p: &Path) -> String {
    distill_cluster::quote(&p.display().to_string())
}

/// `sbatch --wait` of a shell command (an array of `array` tasks when given) in `dir`, with
/// `env` exported to the job; the job's exit status and its logs.
fn sbatch(dir: &Path, name: &str, array: Option<usize>, env: &[(&str, &str)], command: &str) -> (bool, String) {
    let log = dir.join(format!("{name}-%a.out"));
    let mut cmd = Command::new("sbatch");
    cmd.args(["--wait", "--parsable", "--job-name", name, "--chdir"]).arg(dir).arg("--output").arg(&log);
    if let Some(n) = array {
        cmd.arg(format!("--array=0-{}", n - 1));
    }
    cmd.args(["--wrap", command]).env_remove("RUST_LOG").env_remove("DISTILL_CACHE_DIR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().expect("sbatch runs");
    let mut logs = text(&o);
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.to_string_lossy().contains(&format!("/{name}-"))).collect();
    files.sort();
    for f in files {
        logs += &format!("\n--- {}\n{}", f.display(), std::fs::read_to_string(&f).unwrap_or_default());
    }
    (o.status.success(), logs)
}

fn local(dir: &Path, args: &[&str]) -> String {
    let o = Command::new(BIN).args(args).current_dir(dir).env_remove("RUST_LOG").env_remove("DISTILL_CACHE_DIR").output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    text(&o)
}

fn logit_file(cache: &Path) -> PathBuf {
    only_file(&cache.join("logits"), ".parquet")
}

/// The cluster to this test alone and a fresh folder; `None` where Slurm cannot be installed.
fn on_cluster() -> Option<(MutexGuard<'static, ()>, tempfile::TempDir)> {
    let one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    cluster().then(|| (one, tempfile::tempdir().unwrap()))
}

#[test]
fn four_shards_as_an_array_job_are_bitwise_one_process() {
    let Some((_one, dir)) = on_cluster() else { return };
    let recipe = common::generated::write_recipe(dir.path(), 4000);
    let (shared, single) = (dir.path().join("shared"), dir.path().join("single"));
    // The teacher first, then the array (as `distill submit` chains them).
    let teacher = format!("{BIN} logits {} --cache-dir {} --teacher-only", q(&recipe), q(&shared));
    let (ok, logs) = sbatch(dir.path(), "teacher", None, &[], &teacher);
    assert!(ok, "{logs}");
    let (ok, logs) = sbatch(dir.path(), "logits", Some(4), &[], &format!("{BIN} logits {} --cache-dir {}", q(&recipe), q(&shared)));
    assert!(ok, "{logs}");
    for i in 0..4 {
        assert!(logs.contains(&format!("part-{i}-of-4.parquet (computed)")), "{logs}");
    }
    assert_eq!(logs.matches("teacher: key").count(), 4);
    assert_eq!(logs.matches("(in the cache)").count(), 4, "every task found the teacher: {logs}");
    local(dir.path(), &["logits", recipe.to_str().unwrap(), "--cache-dir", single.to_str().unwrap()]);
    let assembled = local(dir.path(), &["logits", recipe.to_str().unwrap(), "--cache-dir", shared.to_str().unwrap()]);
    assert!(assembled.contains("logits: key") && assembled.contains("(computed)"), "{assembled}");
    assert_eq!(std::fs::read(logit_file(&shared)).unwrap(), std::fs::read(logit_file(&single)).unwrap(), "bitwise the same file");
}

const SWEEP: &str = "version: 1
extends: BASE
name: slurm-sweep
teacher: {train: {epochs: 5}}
student:
  train: {epochs: 8}
  seeds: [1, 2]
evaluate: {latency: false}
sweep:
  grid:
    student.model.hidden: [[4], [16]]
    student.loss.temperature: [1, 4]
";

/// What a sweep's metrics.json says about each point, less timings and cache hits.
fn points(run: &Path) -> Vec<Value> {
    let metrics = json(&run.join("metrics.json"));
    metrics["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let mut p = p.clone();
            for key in ["cache_hits", "seconds", "dir", "train_seconds"] {
                p.as_object_mut().unwrap().remove(key);
            }
            p
        })
        .collect()
}

#[test]
fn a_sweep_submitted_as_jobs_gives_the_local_metrics() {
    let Some((_one, dir)) = on_cluster() else { return };
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/base/digits.yaml");
    let recipe = dir.path().join("sweep.yaml");
    std::fs::write(&recipe, SWEEP.replace("BASE", base.to_str().unwrap())).unwrap();
    let r = recipe.to_str().unwrap();
    let (here, there) = (dir.path().join("local"), dir.path().join("cluster"));
    let local_cache = dir.path().join("local-cache");
    let o = Command::new(BIN)
        .args(["run", r, "--cache-dir", local_cache.to_str().unwrap(), "--out", here.to_str().unwrap()])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(matches!(o.status.code(), Some(0 | 3)), "{}", text(&o));

    let shared = dir.path().join("shared");
    let o = Command::new(BIN)
        .args(["submit", r, "--slurm", "--shards", "4", "--wait", "--cache-dir", shared.to_str().unwrap(), "--out", there.to_str().unwrap()])
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let mut logs = text(&o);
    if let Ok(list) = std::fs::read_dir(there.join("jobs/logs")) {
        for f in list.map(|e| e.unwrap().path()) {
            logs += &format!("\n--- {}\n{}", f.display(), std::fs::read_to_string(&f).unwrap_or_default());
        }
    }
    assert!(o.status.success() || o.status.code() == Some(3), "{logs}");
    assert!(logs.contains("8 student tasks, 4 logit shards"), "{logs}");
    let tasks: Vec<_> = std::fs::read_dir(there.join("tasks")).unwrap().collect();
    assert_eq!(tasks.len(), 8, "one task per point and seed");
    assert_eq!(points(&there), points(&here), "the same metrics as the local run");
    let parts = json(&logit_file(&shared).with_extension("").join("_manifest.json"));
    assert_eq!(parts["count"], 4, "the logits came from four shards");
    assert_eq!(std::fs::read(logit_file(&shared)).unwrap(), std::fs::read(logit_file(&local_cache)).unwrap());
    let hits = json(&there.join("points/000/metrics.json"))["cache_hits"].clone();
    assert!(hits.as_array().unwrap().iter().any(|h| h == "student@1"), "the report job trained nothing: {hits}");
}

#[test]
fn a_task_killed_mid_way_and_submitted_again_finishes_with_the_same_result() {
    let Some((_one, dir)) = on_cluster() else { return };
    let recipe = common::generated::write_recipe(dir.path(), 1500);
    let shared = dir.path().join("shared");
    let task = format!("{BIN} logits {} --set teacher.train.epochs=4 --cache-dir {} --teacher-only --resume", q(&recipe), q(&shared));
    // The hook ends the task right after epoch 2's checkpoint with no cleanup, as SIGKILL would.
    let (ok, logs) = sbatch(dir.path(), "killed", None, &[("DISTILL_TEST_INTERRUPT_AFTER", "teacher:2")], &task);
    assert!(!ok && logs.contains("stopping after teacher epoch 2"), "{logs}");
    assert_eq!(files_ending(&shared.join("teachers"), ".lock").len(), 1, "the killed task left its lock behind");
    let (ok, logs) = sbatch(dir.path(), "again", None, &[], &task);
    assert!(ok, "{logs}");
    assert!(logs.contains("taking over a stale lock"), "{logs}");
    assert!(logs.contains("resuming from the checkpoint of an interrupted run"), "{logs}");
    let whole = dir.path().join("whole");
    local(dir.path(), &["logits", recipe.to_str().unwrap(), "--set", "teacher.train.epochs=4", "--cache-dir", whole.to_str().unwrap(), "--teacher-only"]);
    let weights = |cache: &Path| std::fs::read(only_file(&cache.join("teachers"), ".safetensors")).unwrap();
    assert_eq!(weights(&shared), weights(&whole), "bit-identical to an uninterrupted run");
}

#[test]
fn two_array_tasks_racing_for_one_artifact_compute_it_once() {
    let Some((_one, dir)) = on_cluster() else { return };
    let recipe = common::generated::write_recipe(dir.path(), 1500);
    let shared = dir.path().join("shared");
    let out = dir.path().join("run");
    let task = format!("{BIN} run {} --cache-dir {} --out {}-$SLURM_ARRAY_TASK_ID", q(&recipe), q(&shared), q(&out));
    let (ok, logs) = sbatch(dir.path(), "race", Some(2), &[("DISTILL_TEST_PAUSE_BEFORE_RENAME", "teacher:5000")], &task);
    assert!(ok, "{logs}");
    let cached: Vec<bool> = (0..2)
        .map(|i| {
            let lock = json(&dir.path().join(format!("run-{i}")).join("lock.json"));
            lock["stages"].as_array().unwrap().iter().find(|s| s["stage"] == "teacher").unwrap()["cached"].as_bool().unwrap()
        })
        .collect();
    assert_eq!(cached.iter().filter(|c| !**c).count(), 1, "one task trained the teacher: {logs}");
    assert_eq!(logs.matches("pausing 5000 ms before renaming the teacher").count(), 1, "{logs}");
    assert!(logs.contains("teacher: computed by another task while this one waited"), "{logs}");
}

#[test]
fn a_dry_run_prints_the_chained_scripts_and_k8s_the_indexed_jobs_without_a_scheduler() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/digits-sweep.yaml");
    let (cache, out) = (dir.path().join("cache"), dir.path().join("out"));
    let submit = |extra: &[&str]| {
        let mut args = vec!["submit", recipe.to_str().unwrap(), "--shards", "3", "--cache-dir", cache.to_str().unwrap(), "--out", out.to_str().unwrap()];
        args.extend(extra);
        local(dir.path(), &args)
    };
    let dry = submit(&["--slurm", "--dry-run", "--partition", "gpu"]);
    assert!(dry.contains("#SBATCH --array=0-2\n") && dry.contains("#SBATCH --array=0-44\n"), "3 shards; 15 points x 3 seeds: {dry}");
    assert!(dry.contains("#SBATCH --partition=gpu\n"));
    assert!(dry.contains("STUDENTS=$(sbatch --parsable --kill-on-invalid-dep=yes --dependency=afterok:$LOGITS "), "{dry}");
    assert!(dry.contains("44) set -- --set sweep=null --set student.loss.temperature=4 --set 'student.model.hidden=[64]' --set 'student.seeds=[3]'; task=point-014-seed-3 ;;"), "{dry}");
    assert!(!out.exists(), "a dry run writes nothing");
    let k8s = submit(&["--k8s"]);
    let docs: Vec<serde_yaml::Value> = k8s.split("\n---\n").skip(1).map(|d| serde_yaml::from_str(d).unwrap()).collect();
    let completions: Vec<u64> = docs.iter().map(|d| d["spec"]["completions"].as_u64().unwrap()).collect();
    assert_eq!(completions, [1, 3, 45, 1]);
    assert!(k8s.contains("kubectl wait --for=condition=complete"));
    let o = Command::new(BIN).args(["submit", recipe.to_str().unwrap(), "--slurm", "--k8s"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "one scheduler: {}", text(&o));
}
