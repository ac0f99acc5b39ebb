//! `distill run --resume` through the real binary: a run stopped after an epoch (the test hook
//! `DISTILL_TEST_INTERRUPT_AFTER=model:epoch` stops the process (exit 137, no cleanup) right after that epoch's
//! checkpoint, like a kill) continues from its checkpoint to the same final metrics and weights
//! as an uninterrupted run.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// The digits recipe, small enough for a test, with dropout (masks draw from the RNG) and SGD
/// with momentum and a cosine schedule for the student (optimiser state and step count matter).
fn run(out: &Path, cache: &Path, interrupt: Option<&str>, resume: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_distill"));
    cmd.args(["run", "pipelines/digits-kd.yaml", "--out"]).arg(out).arg("--cache-dir").arg(cache);
    for set in [
        "teacher.model={hidden: [32], dropout: 0.2}",
        "teacher.train.epochs=5",
        "student.train={epochs: 5, batch: 32, optimizer: {kind: sgd, lr: 0.05, momentum: 0.9}, schedule: {kind: cosine}}",
        "evaluate.latency=false",
    ] {
        cmd.args(["--set", set]);
    }
    if resume {
        cmd.arg("--resume");
    }
    match interrupt {
        Some(at) => cmd.env("DISTILL_TEST_INTERRUPT_AFTER", at),
        None => cmd.env_remove("DISTILL_TEST_INTERRUPT_AFTER"),
    };
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).env_remove("RUST_LOG").output().expect("the distill binary runs")
}

fn metrics(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap()
}

/// The tensor bytes of a safetensors file (the header holds run-specific metadata).
fn tensors(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    bytes[8 + header..].to_vec()
}

fn checkpoints(cache: &Path) -> usize {
    std::fs::read_dir(cache.join("checkpoints"))
        .map(|d| d.filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "ckpt"))).count())
        .unwrap_or(0)
}

#[test]
fn an_interrupted_run_resumes_to_the_same_result_as_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    let o = run(&whole, &tmp.path().join("cache-whole"), None, false);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let expected = metrics(&whole);

    for (i, at) in ["teacher:3", "student:2"].into_iter().enumerate() {
        let cache = tmp.path().join(format!("cache{i}"));
        let o = run(&tmp.path().join(format!("stopped{i}")), &cache, Some(at), false);
        assert!(!o.status.success(), "{at}: the hook stops the run");
        assert_eq!(checkpoints(&cache), 1, "{at}: one checkpoint left behind");

        let resumed = tmp.path().join(format!("resumed{i}"));
        let o = run(&resumed, &cache, None, true);
        let log = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{at}: {log}");
        assert!(log.contains("resuming from the checkpoint of an interrupted run"), "{at}: {log}");
        let got = metrics(&resumed);
        for model in ["teacher", "student", "baseline"] {
            assert_eq!(got[model]["accuracy"], expected[model]["accuracy"], "{at}: {model}");
        }
        assert_eq!(got["student"]["teacher_agreement"], expected["student"]["teacher_agreement"], "{at}");
        for file in ["teacher.safetensors", "student.safetensors", "baseline.safetensors"] {
            assert_eq!(tensors(&resumed.join(file)), tensors(&whole.join(file)), "{at}: {file}");
        }
        assert_eq!(checkpoints(&cache), 0, "{at}: checkpoints are removed once training completes");
    }
}

#[test]
fn without_resume_a_left_checkpoint_is_ignored_and_the_run_starts_over() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let o = run(&tmp.path().join("stopped"), &cache, Some("teacher:2"), false);
    assert!(!o.status.success());
    let o = run(&tmp.path().join("fresh"), &cache, None, false);
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{log}");
    assert!(!log.contains("resuming"), "{log}");
}
