//! ONNX export through the binary: a run exports its student (and teacher) as f32 and int8 ONNX;
//! every file is loaded by onnx.checker and run by onnxruntime (a venv under the target dir) and
//! by tract (`distill predict MODEL.onnx`), and compared with distill's own network
//! (`distill predict RUN_DIR`) on held-back rows: f32 logits within 1e-4 and the same classes;
//! int8 runs with its accuracy loss reported; targets checked on the int8 model.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{distill_in, provision, target_dir};
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn distill(args: &[&str]) -> Output {
    distill_in(args, root())
}

fn ok(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "exit {:?}\n{err}", o.status.code());
    err
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Python with onnx and onnxruntime, provisioned once under the target directory.
fn ort_python() -> PathBuf {
    provision(&target_dir().join("py-venv-onnx"), &["onnx", "onnxruntime", "numpy"]).unwrap_or_else(|e| panic!("cannot provision onnxruntime: {e}"))
}

/// onnxruntime's view of `model` on the feature columns of `data`.
fn onnxruntime(model: &Path, data: &Path) -> Value {
    let script = root().join("tests/fixtures/onnx/ort_check.py");
    let o = Command::new(ort_python()).arg(script).arg(model).arg(data).output().unwrap();
    assert!(o.status.success(), "onnxruntime on {}:\n{}", model.display(), String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// A CSV's rows as (header, rows of cells).
fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(str::to_string).collect();
    (header, lines.map(|l| l.split(',').map(str::to_string).collect()).collect())
}

/// `logit_*` columns of a `distill predict --logits` CSV, row by row, and the predicted classes.
fn predicted(path: &Path) -> (Vec<Vec<f64>>, Vec<String>) {
    let (header, rows) = read_csv(path);
    let cols: Vec<usize> = header.iter().enumerate().filter(|(_, h)| h.starts_with("logit_")).map(|(i, _)| i).collect();
    let class = header.iter().position(|h| h == "predicted").unwrap();
    (rows.iter().map(|r| cols.iter().map(|&c| r[c].parse().unwrap()).collect()).collect(), rows.iter().map(|r| r[class].clone()).collect())
}

fn argmax(row: &[f64]) -> usize {
    row.iter().enumerate().fold(0, |best, (i, v)| if *v > row[best] { i } else { best })
}

fn max_diff(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs())).fold(0.0, f64::max)
}

/// The logits onnxruntime computed, as rows.
fn ort_logits(v: &Value) -> Vec<Vec<f64>> {
    v["logits"].as_array().unwrap().iter().map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()).collect()
}

/// digits.csv split into the training file and the held-back rows the recipe tests on.
fn split_digits(dir: &Path) -> (PathBuf, PathBuf) {
    let text = std::fs::read_to_string(root().join("datasets/digits.csv")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (header, rows) = (lines[0], &lines[1..]);
    let cut = rows.len() - 300;
    let write = |name: &str, rows: &[&str]| {
        let path = dir.join(name);
        std::fs::write(&path, format!("{header}\n{}\n", rows.join("\n"))).unwrap();
        path
    };
    (write("train.csv", &rows[..cut]), write("held.csv", &rows[cut..]))
}

/// Every layer kind an MLP student has: dense, layer norm, gelu, a residual block with tanh,
/// dropout (removed in the export), relu.
const RECIPE: &str = "version: 1
name: export-mlp
seed: 3
data:
  source: {path: train.csv}
  test_source: {path: held.csv}
  label: label
  split: {val: 0.1, stratify: true}
  scale: {kind: minmax}
  checks:
    - {id: pixel-range, kind: range, columns: 'p*', min: 0, max: 16}
teacher:
  model: {hidden: [64]}
  train: {epochs: 6, batch: 32}
student:
  model:
    layers: [{dense: 24}, {norm: layer}, {activation: gelu}, {residual: [{dense: 24}, {activation: tanh}]}, {dropout: 0.1}, {activation: relu}]
  train: {epochs: 12, batch: 32, optimizer: {lr: 3.0e-3}}
export: {formats: [onnx, onnx_int8], teacher: true, calibration_rows: 256}
evaluate:
  targets: {min_accuracy: 0.5, checked_on: onnx_int8}
";

#[test]
fn exported_mlp_models_match_distill_in_onnxruntime_and_tract_and_predict_checks_its_input() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, held) = split_digits(tmp.path());
    let recipe = tmp.path().join("recipe.yaml");
    std::fs::write(&recipe, RECIPE).unwrap();
    let run = tmp.path().join("run");
    let cache = tmp.path().join("cache");
    ok(&distill(&["run", recipe.to_str().unwrap(), "--out", run.to_str().unwrap(), "--cache-dir", cache.to_str().unwrap()]));

    // metrics.json: every artifact measured in-process (tract) next to distill's own model.
    let m = json(&run.join("metrics.json"));
    let d = &m["deployment"];
    let artifacts = d["artifacts"].as_array().unwrap();
    let find =
        |role: &str, format: &str| artifacts.iter().find(|a| a["role"] == role && a["format"] == format).unwrap_or_else(|| panic!("{role} {format}: {d}"));
    for role in ["student", "teacher"] {
        let f32 = find(role, "onnx");
        assert!(f32["max_abs_logit_diff"].as_f64().unwrap() <= 1e-4, "{f32}");
        assert_eq!(f32["agreement_with_distill"], 1.0, "{f32}");
        assert_eq!(f32["accuracy"], m[role]["accuracy"], "the f32 export has distill's accuracy");
        let int8 = find(role, "onnx_int8");
        assert!(int8["size_bytes"].as_u64().unwrap() < f32["size_bytes"].as_u64().unwrap(), "int8 is smaller");
        assert!(int8["latency"]["p95_ms"].as_f64().unwrap() > 0.0 && int8["throughput_rows_per_s"].as_f64().unwrap() > 0.0);
    }
    let q = &d["quantization"];
    let drop = q["accuracy_drop"].as_f64().unwrap();
    assert!((q["accuracy_f32"].as_f64().unwrap() - q["accuracy_int8"].as_f64().unwrap() - drop).abs() < 1e-12, "{q}");
    assert!(drop.abs() < 0.05, "int8 loses little: {q}");
    // The targets were checked on the int8 model.
    assert_eq!(d["targets_on"], "onnx_int8");
    let acc_target = m["targets"].as_array().unwrap().iter().find(|t| t["name"] == "min_accuracy").unwrap();
    assert_eq!(acc_target["value"], find("student", "onnx_int8")["accuracy"]);
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("## Deployment") && report.contains("student.int8.onnx") && report.contains("targets checked on the deployed model"), "{report}");
    assert!(std::fs::read_to_string(run.join("report.html")).unwrap().contains("<section id=\"deployment\">"));

    // distill's own network on the held-back rows (the run directory), and tract on each file.
    let native = tmp.path().join("native.csv");
    let err = ok(&distill(&["predict", run.to_str().unwrap(), "--data", held.to_str().unwrap(), "--logits", "--out", native.to_str().unwrap()]));
    let (native_logits, native_classes) = predicted(&native);
    assert_eq!(native_logits.len(), 300);
    // The held-back rows are the test split: predict's accuracy is the test accuracy.
    let acc = m["student"]["accuracy"].as_f64().unwrap();
    assert!(err.contains(&format!("accuracy {acc:.4} on the 300 rows with a label")), "{err}");
    let tract = tmp.path().join("tract.csv");
    let model = run.join("student.onnx");
    ok(&distill(&["predict", model.to_str().unwrap(), "--data", held.to_str().unwrap(), "--logits", "--out", tract.to_str().unwrap()]));
    let (tract_logits, tract_classes) = predicted(&tract);
    assert!(max_diff(&native_logits, &tract_logits) <= 1e-4);
    assert_eq!(native_classes, tract_classes);

    // onnxruntime + onnx.checker on every exported file.
    for (file, f32) in [("student.onnx", true), ("student.int8.onnx", false), ("teacher.onnx", true), ("teacher.int8.onnx", false)] {
        let v = onnxruntime(&run.join(file), &held);
        assert!(v["opset"].as_i64().unwrap() >= 17, "{file}: {}", v["opset"]);
        assert_eq!(v["inputs"], serde_json::json!(["features"]));
        assert_eq!(v["props"]["distill.feature_names"].as_str().unwrap().matches("\"p").count(), 64);
        assert!(v["props"]["distill.weights_blake3"].as_str().unwrap().len() == 64 && v["props"].get("distill.recipe_blake3").is_some());
        assert!(v["probabilities_sum"].as_array().unwrap().iter().all(|s| (s.as_f64().unwrap() - 1.0).abs() < 1e-4));
        let ops = v["ops"].as_array().unwrap();
        assert!(!ops.iter().any(|o| o == "Dropout"), "{file}: dropout is removed");
        assert_eq!(ops.iter().any(|o| o == "QuantizeLinear"), !f32, "{file}: {ops:?}");
        if file == "student.onnx" {
            let ort = ort_logits(&v);
            assert!(max_diff(&native_logits, &ort) <= 1e-4, "onnxruntime against distill: {}", max_diff(&native_logits, &ort));
            let classes: Vec<usize> = ort.iter().map(|r| argmax(r)).collect();
            let native: Vec<usize> = native_logits.iter().map(|r| argmax(r)).collect();
            assert_eq!(classes, native, "identical predictions");
        }
        if file == "student.int8.onnx" {
            let ort = ort_logits(&v);
            let same = ort.iter().zip(&native_logits).filter(|(a, b)| argmax(a) == argmax(b)).count();
            assert!(same >= 270, "int8 in onnxruntime agrees with f32 on {same}/300 rows");
        }
    }

    // `distill export` writes the run's models again (here: into another file).
    let again = tmp.path().join("again.int8.onnx");
    ok(&distill(&["export", run.to_str().unwrap(), "--format", "onnx_int8", "--out", again.to_str().unwrap()]));
    assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(run.join("student.int8.onnx")).unwrap());
    std::fs::remove_file(run.join("student.onnx")).unwrap();
    ok(&distill(&["export", run.to_str().unwrap()]));
    assert!(max_diff(&native_logits, &ort_logits(&onnxruntime(&run.join("student.onnx"), &held))) <= 1e-4, "made again from the weights");

    predict_rejects_bad_files(tmp.path(), &model, &held);
    predict_checks_the_rows_first(tmp.path(), &run, &model, &held);
}

/// `--check` runs the recipe's row checks on the file: a value out of range is exit 1 naming the
/// check, and nothing is written; a clean file predicts; a model file has no recipe to check with.
fn predict_checks_the_rows_first(dir: &Path, run: &Path, model: &Path, held: &Path) {
    let out = dir.join("checked.csv");
    let predict =
        |model: &Path, data: &Path| distill(&["predict", model.to_str().unwrap(), "--data", data.to_str().unwrap(), "--check", "--out", out.to_str().unwrap()]);
    let err = ok(&predict(run, held));
    assert!(err.contains("pixel-range") && err.contains("predicted 300 rows"), "{err}");
    assert_eq!(read_csv(&out).1.len(), 300);
    std::fs::remove_file(&out).unwrap();

    let (header, mut rows) = read_csv(held);
    let p5 = header.iter().position(|h| h == "p5").unwrap();
    rows[7][p5] = "99".into();
    let body: Vec<String> = rows.iter().map(|r| r.join(",")).collect();
    let bad = dir.join("out-of-range.csv");
    std::fs::write(&bad, format!("{}\n{}\n", header.join(","), body.join("\n"))).unwrap();
    let o = predict(run, &bad);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("pixel-range") && err.contains("nothing was predicted"), "{err}");
    assert!(!out.exists(), "no output when a check fails");

    let o = predict(model, held);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--check") && err.contains("needs a run directory"), "{err}");
}

/// Missing and extra columns, text in a feature, a null: exit 2 naming column and row, no file.
fn predict_rejects_bad_files(dir: &Path, model: &Path, held: &Path) {
    let (header, rows) = read_csv(held);
    let write = |name: &str, header: &[String], rows: &[Vec<String>]| {
        let path = dir.join(name);
        let body: Vec<String> = rows.iter().map(|r| r.join(",")).collect();
        std::fs::write(&path, format!("{}\n{}\n", header.join(","), body.join("\n"))).unwrap();
        path
    };
    let p5 = header.iter().position(|h| h == "p5").unwrap();
    let drop_col = |r: &Vec<String>| r.iter().enumerate().filter(|(i, _)| *i != p5).map(|(_, c)| c.clone()).collect::<Vec<_>>();
    let missing = write("missing.csv", &drop_col(&header), &rows.iter().map(drop_col).collect::<Vec<_>>());
    let mut extra_header = header.clone();
    extra_header.push("note".into());
    let extra = write("extra.csv", &extra_header, &rows.iter().map(|r| [r.clone(), vec!["x".into()]].concat()).collect::<Vec<_>>());
    let mut texty = rows.clone();
    texty[2][p5] = "seven".into();
    let text = write("text.csv", &header, &texty);
    let mut holey = rows.clone();
    holey[4][p5] = String::new();
    let null = write("null.csv", &header, &holey);
    for (file, wants) in
        [(&missing, vec!["p5"]), (&extra, vec!["`note`", "not a feature"]), (&text, vec!["p5", "row 2", "seven"]), (&null, vec!["p5", "row 4", "null"])]
    {
        let out = dir.join("preds.parquet");
        let o = distill(&["predict", model.to_str().unwrap(), "--data", file.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{}: {err}", file.display());
        for w in wants {
            assert!(err.contains(w), "{}: wants {w}: {err}", file.display());
        }
        assert!(!out.exists(), "no partial output");
    }
}

#[test]
fn cnn_students_and_teachers_export_with_their_channels_last_maps() {
    let tmp = tempfile::tempdir().unwrap();
    let (run, cache) = (tmp.path().join("run"), tmp.path().join("cache"));
    // A CNN student with a residual conv block, average pooling and a layer norm on the map.
    let student = "student.model={arch: cnn, layers: [{conv: {filters: 4, kernel: 3, padding: 1}}, {activation: relu}, \
                   {residual: [{conv: {filters: 4, kernel: 3, padding: 1}}, {activation: relu}]}, {pool: {size: 2, kind: avg}}, \
                   {norm: layer}, {conv: {filters: 6, kernel: 2, stride: 2}}, {pool: 2}, {dense: 16}, {activation: relu}]}";
    let args = [
        "run",
        "pipelines/digits-cnn.yaml",
        "--out",
        run.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
        "--set",
        "teacher.train.epochs=3",
        "--set",
        "student.train.epochs=8",
        "--set",
        student,
    ];
    let o = distill(&args);
    assert!(matches!(o.status.code(), Some(0 | 3)), "{}", String::from_utf8_lossy(&o.stderr));
    let m = json(&run.join("metrics.json"));
    for a in m["deployment"]["artifacts"].as_array().unwrap() {
        if a["format"] == "onnx" {
            assert!(a["max_abs_logit_diff"].as_f64().unwrap() <= 1e-4 && a["agreement_with_distill"] == 1.0, "{a}");
        }
    }
    // The raw test rows in a CSV; distill's own student and teacher against onnxruntime.
    let data = tmp.path().join("rows.csv");
    std::fs::copy(root().join("datasets/digits.csv"), &data).unwrap();
    let native = tmp.path().join("native.csv");
    ok(&distill(&["predict", run.to_str().unwrap(), "--data", data.to_str().unwrap(), "--logits", "--out", native.to_str().unwrap()]));
    let (native_logits, _) = predicted(&native);
    let v = onnxruntime(&run.join("student.onnx"), &data);
    assert!(v["ops"].as_array().unwrap().iter().any(|o| o == "Conv") && v["ops"].as_array().unwrap().iter().any(|o| o == "Transpose"));
    let ort = ort_logits(&v);
    assert!(max_diff(&native_logits, &ort) <= 1e-4, "{}", max_diff(&native_logits, &ort));
    assert!(ort.iter().zip(&native_logits).all(|(a, b)| argmax(a) == argmax(b)));
    // The CNN teacher through tract and onnxruntime; its int8 form runs in onnxruntime too.
    let tract = tmp.path().join("teacher.csv");
    let teacher = run.join("teacher.onnx");
    ok(&distill(&["predict", teacher.to_str().unwrap(), "--data", data.to_str().unwrap(), "--logits", "--out", tract.to_str().unwrap()]));
    let (tract_logits, _) = predicted(&tract);
    assert!(max_diff(&tract_logits, &ort_logits(&onnxruntime(&teacher, &data))) <= 1e-4);
    let int8 = ort_logits(&onnxruntime(&run.join("teacher.int8.onnx"), &data));
    let same = int8.iter().zip(&tract_logits).filter(|(a, b)| argmax(a) == argmax(b)).count();
    assert!(same as f64 >= 0.9 * int8.len() as f64, "int8 CNN teacher agrees on {same}/{}", int8.len());
}
