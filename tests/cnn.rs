//! The `cnn` model through the binary: `pipelines/digits-cnn.yaml` trains a CNN teacher on the
//! 8×8 digits, and recipes whose conv layers do not fit the images are rejected with the key.

use std::path::Path;
use std::process::{Command, Output};

fn distill(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_distill"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .env_remove("DISTILL_CACHE_DIR")
        .output()
        .expect("distill runs")
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The JSON header of a safetensors file (8-byte little-endian length, then the header).
fn safetensors_header(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    serde_json::from_slice(&bytes[8..8 + len]).unwrap()
}

/// The shipped recipe on a small budget.
const SHORT: [&str; 4] = ["--set", "teacher.train.epochs=4", "--set", "student.train.epochs=10"];

#[test]
fn the_digits_cnn_recipe_trains_a_cnn_teacher_deterministically() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |name: &str| {
        let out = tmp.path().join(name);
        let cache = tmp.path().join(format!("cache-{name}"));
        let mut args = vec!["run", "pipelines/digits-cnn.yaml", "--out", out.to_str().unwrap(), "--cache-dir", cache.to_str().unwrap()];
        args.extend(SHORT);
        let o = distill(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        out
    };
    let a = run("a");
    let m = json(&a.join("metrics.json"));
    // conv 3·3·1·16+16, conv 3·3·16·32+32, dense (2·2·32)·64+64 after two 2×2 max-pools, output 64·10+10.
    assert_eq!(m["teacher"]["params"], 160 + 4640 + 8256 + 650);
    let teacher = m["teacher"]["accuracy"].as_f64().unwrap();
    assert!(teacher > 0.8, "a CNN teacher after 4 epochs: {teacher} (chance is 0.1)");
    assert!(m["student"]["accuracy"].as_f64().unwrap() > 0.7);
    let history = json(&a.join("history.json"));
    let losses: Vec<f64> = history["teacher"].as_array().unwrap().iter().map(|e| e["train_loss"].as_f64().unwrap()).collect();
    assert!(losses.last() < losses.first(), "the teacher's loss goes down: {losses:?}");
    let header = safetensors_header(&a.join("teacher.safetensors"));
    assert_eq!(header["convs.1.weight"]["shape"], serde_json::json!([32, 16, 3, 3]), "PyTorch's Conv2d layout");
    assert_eq!(header["layers.0.weight"]["shape"], serde_json::json!([64, 128]));
    // Same recipe and seed, fresh cache: the same numbers.
    let b = json(&run("b").join("metrics.json"));
    assert_eq!(m["teacher"]["accuracy"], b["teacher"]["accuracy"]);
    assert_eq!(m["teacher"]["evaluation"]["nll"], b["teacher"]["evaluation"]["nll"]);
    assert_eq!(m["student"]["accuracy"], b["student"]["accuracy"]);
}

#[test]
fn conv_layers_that_do_not_fit_the_images_are_rejected_with_the_key() {
    let o = distill(&["validate", "pipelines/digits-cnn.yaml", "--set", "teacher.model.conv=[{filters: 4, kernel: 9}]"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("teacher.model.conv[0]") && err.contains("9×9 kernel is larger than its 8×8×1 input"), "{err}");
    let o = distill(&["validate", "pipelines/digits-cnn.yaml", "--set", "data.image=null"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("pipelines/digits-cnn.yaml:") && err.contains("teacher.model.arch") && err.contains("data.image"), "{err}");
    // The image shape against the data's columns is known once the data loads; nothing is left behind.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = distill(&[
        "run",
        "pipelines/digits-cnn.yaml",
        "--out",
        out.to_str().unwrap(),
        "--cache-dir",
        tmp.path().join("c").to_str().unwrap(),
        "--set",
        "data.image.width=4",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("teacher.model: data.image is 8×4×1 = 32 values per row, but there are 64 features"), "{err}");
    assert!(!out.exists());
}
