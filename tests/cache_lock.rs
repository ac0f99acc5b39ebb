//! Tasks sharing one cache compute each artifact once: two runs started together on the same
//! cache race for the teacher; one trains it under the artifact's lock, the other waits and
//! finds it (its lock.json says it came from the cache). `cache gc` meanwhile keeps what the
//! writer is writing.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn teacher_cached(run: &Path) -> bool {
    let lock = json(&run.join("lock.json"));
    lock["stages"].as_array().unwrap().iter().find(|s| s["stage"] == "teacher").unwrap()["cached"].as_bool().unwrap()
}

#[test]
fn two_runs_racing_for_the_teacher_train_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = common::generated::write_recipe(dir.path(), 1500);
    let cache = dir.path().join("cache");
    let start = |name: &str| {
        Command::new(env!("CARGO_BIN_EXE_distill"))
            .args(["run", recipe.to_str().unwrap(), "--cache-dir", cache.to_str().unwrap(), "--out", dir.path().join(name).to_str().unwrap()])
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .env_remove("DISTILL_CACHE_DIR")
            // The writer holds the lock a while before storing, so the other is surely waiting.
            .env("DISTILL_TEST_PAUSE_BEFORE_RENAME", "teacher:2000")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (start("a"), start("b"));
    // While one writes: gc keeps its files (a writer holding the lock).
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let runs = dir.path().join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    let gc = Command::new(env!("CARGO_BIN_EXE_distill"))
        .args(["cache", "gc", "--runs", runs.to_str().unwrap(), "--cache-dir", cache.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(gc.status.success(), "{}", String::from_utf8_lossy(&gc.stderr));
    let logs: Vec<String> = [a, b]
        .into_iter()
        .map(|child| {
            let o = child.wait_with_output().unwrap();
            let log = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
            assert!(o.status.success(), "{log}");
            log
        })
        .collect();
    let cached = [teacher_cached(&dir.path().join("a")), teacher_cached(&dir.path().join("b"))];
    assert_eq!(cached.iter().filter(|c| !**c).count(), 1, "exactly one trained the teacher: {cached:?}\n{}", logs.join("\n----\n"));
    let waiter = &logs[cached.iter().position(|c| *c).unwrap()];
    assert!(waiter.contains("another task is computing this artifact; waiting for it"), "{waiter}");
    assert!(waiter.contains("teacher: computed by another task while this one waited"), "{waiter}");
    assert_eq!(logs.iter().filter(|l| l.contains("pausing 2000 ms before renaming the teacher")).count(), 1, "one teacher write");
    let metrics: Vec<Value> = ["a", "b"].iter().map(|r| json(&dir.path().join(r).join("metrics.json"))).collect();
    assert_eq!(metrics[0]["student"]["accuracy"], metrics[1]["student"]["accuracy"]);
    let leftovers = common::generated::files_ending(&cache.join("teachers"), ".lock");
    assert!(leftovers.is_empty(), "locks are released: {leftovers:?}");
}
