//! Plugins through the real binary: example and deliberately broken plugin libraries, built
//! here with cargo, named by real pipeline files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

/// Builds the example plugins and every broken fixture once; returns the library folder.
fn plugin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-plugins");
        let fixtures = ["panics", "non-finite", "duplicate-names", "no-entry", "wrong-abi"].map(|f| format!("tests/fixtures/plugins/{f}"));
        for dir in ["plugins/cosine-kd".to_string(), "plugins/resmlp".to_string()].iter().chain(&fixtures) {
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir).join("Cargo.toml");
            let o = Command::new(env!("CARGO"))
                .args(["build", "--release", "--quiet", "--manifest-path"])
                .arg(&manifest)
                .env("CARGO_TARGET_DIR", &target)
                .output()
                .expect("cargo runs");
            assert!(o.status.success(), "building {dir}: {}", String::from_utf8_lossy(&o.stderr));
        }
        target.join("release")
    })
}

fn lib(name: &str) -> String {
    use std::env::consts::{DLL_PREFIX, DLL_SUFFIX};
    plugin_dir().join(format!("{DLL_PREFIX}{name}{DLL_SUFFIX}")).display().to_string()
}

fn distill(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_distill"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("DISTILL_PLUGIN_DIR", plugin_dir())
        .env_remove("RUST_LOG")
        .output()
        .expect("the distill binary runs")
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn metrics(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap()
}

/// The iris recipe with the given loss kind and plugin list.
fn iris(out: &Path, cache: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["run", "pipelines/iris-kd.yaml", "--out", out.to_str().unwrap(), "--cache-dir", cache.to_str().unwrap()];
    args.extend(extra);
    distill(&args)
}

#[test]
fn a_plugin_loss_trains_like_the_built_in_loss_it_reimplements() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let plugin = format!("plugins=[{{path: {}}}]", lib("cosine_kd"));
    let built_in = tmp.path().join("built-in");
    let o = iris(&built_in, &cache, &["--set", &plugin]);
    assert!(o.status.success(), "{}", err(&o));
    let via_plugin = tmp.path().join("plugin");
    let o = iris(&via_plugin, &cache, &["--set", &plugin, "--set", "student.loss.kind=plugin_hinton_kd"]);
    assert!(o.status.success(), "{}", err(&o));
    let (a, b) = (metrics(&built_in), metrics(&via_plugin));
    assert_eq!(a["student"]["accuracy"], b["student"]["accuracy"]);
    assert_eq!(a["student"]["teacher_agreement"], b["student"]["teacher_agreement"]);
    // Same gradients up to float rounding: the trained weights agree closely.
    let weights = |d: &Path| std::fs::read(d.join("student.safetensors")).unwrap();
    let (wa, wb) = (weights(&built_in), weights(&via_plugin));
    assert_eq!(wa.len(), wb.len());
    let floats = |w: &[u8]| w[w.len() - 4 * 35..].chunks(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect::<Vec<_>>();
    let max_diff = floats(&wa).iter().zip(floats(&wb)).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(max_diff < 1e-3, "weights differ by {max_diff}");
}

#[test]
fn the_shipped_plugin_recipe_runs_and_inspect_lists_the_plugin() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = distill(&[
        "run",
        "pipelines/digits-cosine-kd.yaml",
        "--out",
        out.to_str().unwrap(),
        "--cache-dir",
        tmp.path().join("c").to_str().unwrap(),
        "--set",
        "teacher.model.hidden=[32]",
        "--set",
        "teacher.train.epochs=5",
        "--set",
        "student.train.epochs=5",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(metrics(&out)["student"]["accuracy"].as_f64().unwrap() > 0.5);
    let o = distill(&["plugins", "inspect", &lib("cosine_kd")]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && text.contains("cosine_kd") && text.contains("plugin_hinton_kd") && text.contains("ABI version:   1"), "{text}");
    let o = distill(&["validate", "pipelines/digits-cosine-kd.yaml"]);
    assert!(o.status.success(), "{}", err(&o));
}

#[test]
fn plugin_faults_are_errors_that_name_plugin_symbol_and_key_with_no_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![format!("plugins=[{{path: {}}}]", lib("fixture_panics")), "student.loss.kind=panicking_loss".into()], "panicked"),
        (vec![format!("plugins=[{{path: {}}}]", lib("fixture_panics")), "student.loss.kind=failing_loss".into()], "failing_loss"),
        (vec![format!("plugins=[{{path: {}}}]", lib("cosine_kd")), "student.loss.kind=no_such_loss".into()], "cosine_kd"),
        (vec!["plugins=[{path: /nonexistent/libnothing.so}]".into(), "student.loss.kind=x".into()], "plugins[0].path"),
        (vec![], "unknown loss `x`"),
    ];
    for (i, (sets, expected)) in cases.into_iter().enumerate() {
        let out = tmp.path().join(format!("run{i}"));
        let mut extra: Vec<&str> = Vec::new();
        for s in &sets {
            extra.extend(["--set", s.as_str()]);
        }
        if sets.is_empty() {
            extra.extend(["--set", "student.loss.kind=x"]);
        }
        let o = iris(&out, &cache, &extra);
        let e = err(&o);
        assert_eq!(o.status.code(), Some(2), "case {i}: {e}");
        assert!(e.contains(expected), "case {i}: expected `{expected}` in {e}");
        assert!(!e.contains("thread 'main' panicked"), "case {i}: {e}");
        assert!(!out.exists(), "case {i}: a failed run leaves no outputs");
    }
    let o = distill(&["plugins", "inspect", "Cargo.toml"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_plugin_architecture_trains_like_the_built_in_network_it_describes() {
    // resmlp with no residual blocks is `dense(width), relu, dense(classes)`: the built-in
    // `hidden: [width]` MLP, so the same seed must give the same model and metrics.
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let plugin = format!("plugins=[{{path: {}}}]", lib("resmlp"));
    let built_in = tmp.path().join("built-in");
    let o = iris(&built_in, &cache, &["--set", &plugin, "--set", "student.model={hidden: [6]}"]);
    assert!(o.status.success(), "{}", err(&o));
    let via_plugin = tmp.path().join("plugin");
    let o = iris(&via_plugin, &cache, &["--set", &plugin, "--set", "student.model={arch: resmlp, params: {width: 6, blocks: 0}}"]);
    assert!(o.status.success(), "{}", err(&o));
    let (a, b) = (metrics(&built_in), metrics(&via_plugin));
    for key in ["accuracy", "params", "teacher_agreement"] {
        assert_eq!(a["student"][key], b["student"][key], "{key}");
    }
    // Same tensors bit for bit (the headers differ only in the recorded model spec).
    let tensors = |d: &Path| {
        let bytes = std::fs::read(d.join("student.safetensors")).unwrap();
        let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        bytes[8 + header..].to_vec()
    };
    assert_eq!(tensors(&built_in), tensors(&via_plugin));
}

#[test]
fn the_shipped_plugin_architecture_recipe_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = distill(&[
        "run",
        "pipelines/digits-resmlp.yaml",
        "--out",
        out.to_str().unwrap(),
        "--cache-dir",
        tmp.path().join("c").to_str().unwrap(),
        "--set",
        "teacher.model.hidden=[32]",
        "--set",
        "teacher.train.epochs=5",
        "--set",
        "student.train.epochs=10",
        "--set",
        "export={formats: [onnx, onnx_int8]}",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    let m = metrics(&out);
    assert!(m["student"]["accuracy"].as_f64().unwrap() > 0.5, "{m}");
    // The plugin's layer list exports like a built-in one: the ONNX files run (tract) and the f32
    // one gives distill's logits.
    let artifacts = m["deployment"]["artifacts"].as_array().unwrap_or_else(|| panic!("no deployment: {m}"));
    assert_eq!(artifacts.len(), 2, "{m}");
    for a in artifacts {
        assert!(out.join(a["file"].as_str().unwrap()).is_file(), "{a}");
        assert!(a["agreement_with_distill"].as_f64().unwrap() > 0.95, "{a}");
    }
    let f32 = artifacts.iter().find(|a| a["format"] == "onnx").unwrap();
    assert_eq!(f32["agreement_with_distill"], 1.0, "{f32}");
    assert!(f32["max_abs_logit_diff"].as_f64().unwrap() <= 1e-4, "{f32}");
    // 64 inputs, width 24, one residual block (two dense 24x24), 10 classes.
    let params = 64 * 24 + 24 + 2 * (24 * 24 + 24) + 24 * 10 + 10;
    assert_eq!(m["student"]["params"], params, "{m}");
    let o = distill(&["validate", "pipelines/digits-resmlp.yaml"]);
    assert!(o.status.success(), "{}", err(&o));
}

#[test]
fn every_plugin_fault_through_the_binary_is_its_own_error_with_no_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let with = |library: &str, key: &str, value: &str| vec![format!("plugins=[{{path: {}}}]", lib(library)), format!("{key}={value}")];
    let loss = "student.loss.kind";
    let arch = "student.model";
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (with("fixture_no_entry", loss, "x"), vec!["plugins[0].path", "not a distill plugin", "distill_plugin_entry"]),
        (with("fixture_wrong_abi", loss, "x"), vec!["plugins[0].path", "ABI version", "distill_plugin_entry"]),
        (with("fixture_duplicate_names", loss, "twice"), vec!["plugins[0].path", "fixture-duplicate-names", "`twice` is declared more than once"]),
        (with("fixture_non_finite", loss, "nan_loss"), vec!["student.loss", "fixture-non-finite", "loss `nan_loss`", "non-finite loss value"]),
        (with("fixture_non_finite", loss, "inf_grad"), vec!["student.loss", "loss `inf_grad`", "non-finite gradient"]),
        (with("fixture_non_finite", loss, "short_grad"), vec!["student.loss", "loss `short_grad`", "gradient"]),
        (with("fixture_panics", arch, "{arch: panicking_arch}"), vec!["student.model.arch", "fixture-panics", "architecture `panicking_arch`", "panicked"]),
        (with("fixture_non_finite", arch, "{arch: wrong_width_arch}"), vec!["student.model.arch", "architecture `wrong_width_arch`", "invalid result"]),
        (with("resmlp", arch, "{arch: resmlp, params: {width: 0}}"), vec!["student.model.arch", "resmlp", "`width` must be at least 1"]),
        (with("resmlp", arch, "{arch: no_such_arch}"), vec!["student.model.arch", "no plugin provides architecture `no_such_arch`", "resmlp"]),
        (vec!["student.model={arch: resmlp}".into()], vec!["student.model.arch", "unknown architecture `resmlp`", "plugins:"]),
    ];
    for (i, (sets, expected)) in cases.into_iter().enumerate() {
        let out = tmp.path().join(format!("run{i}"));
        let mut extra: Vec<&str> = Vec::new();
        for s in &sets {
            extra.extend(["--set", s.as_str()]);
        }
        let o = iris(&out, &cache, &extra);
        let e = err(&o);
        assert_eq!(o.status.code(), Some(2), "case {i}: {e}");
        for want in expected {
            assert!(e.contains(want), "case {i}: expected `{want}` in {e}");
        }
        assert!(!e.contains("thread 'main' panicked"), "case {i}: {e}");
        assert!(!out.exists(), "case {i}: a failed run leaves no outputs");
    }
}

/// Exit code 2 with an error, never a signal (a SIGBUS from mapping a short file has no code).
fn refused(o: &Output, what: &str) -> String {
    use std::os::unix::process::ExitStatusExt;
    let e = err(o);
    assert_eq!(o.status.code(), Some(2), "{what}: status {:?} signal {:?}: {e}", o.status, o.status.signal());
    assert!(!e.contains("panicked"), "{what}: {e}");
    e
}

#[test]
fn truncated_or_not_a_file_plugin_libraries_are_errors_naming_the_key_never_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let real = std::fs::read(lib("cosine_kd")).unwrap();
    let fifo = tmp.path().join("fifo.so");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let mut cases: Vec<(PathBuf, &str)> = Vec::new();
    for (name, len) in [("cut-tail.so", real.len() - 1), ("cut-half.so", real.len() / 2), ("cut-header.so", 40), ("empty.so", 0)] {
        let path = tmp.path().join(name);
        std::fs::write(&path, &real[..len]).unwrap();
        cases.push((path, if len == 0 { "empty" } else { "truncated or corrupt" }));
    }
    cases.push((tmp.path().join("dir.so"), "is a directory"));
    std::fs::create_dir(&cases.last().unwrap().0).unwrap();
    cases.push((fifo, "is a FIFO"));
    for (path, expected) in &cases {
        let set = format!("plugins=[{{path: {}}}]", path.display());
        let loss = "student.loss.kind=plugin_hinton_kd";
        let e = refused(&distill(&["validate", "pipelines/iris-kd.yaml", "--set", &set, "--set", loss]), "validate");
        assert!(e.contains("plugins[0].path") && e.contains(&path.display().to_string()) && e.contains(expected), "validate {}: {e}", path.display());
        let out = tmp.path().join("run");
        let e = refused(&iris(&out, &tmp.path().join("cache"), &["--set", &set, "--set", loss]), "run");
        assert!(e.contains("plugins[0].path") && e.contains(expected), "run {}: {e}", path.display());
        assert!(!out.exists());
        let e = refused(&distill(&["plugins", "inspect", path.to_str().unwrap()]), "inspect");
        assert!(e.contains(&path.display().to_string()) && e.contains(expected), "inspect {}: {e}", path.display());
    }
}

#[test]
fn a_plugin_library_rewritten_while_distill_loads_it_never_crashes_distill() {
    let tmp = tempfile::tempdir().unwrap();
    let real = std::fs::read(lib("cosine_kd")).unwrap();
    let path = tmp.path().join("libchanging.so");
    std::fs::write(&path, &real).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // A build rewriting the library in place: truncate, then write it again in pieces.
    let writer = {
        let (path, stop, real) = (path.clone(), stop.clone(), real.clone());
        std::thread::spawn(move || {
            use std::io::Write;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut f = std::fs::File::create(&path).unwrap();
                for chunk in real.chunks(real.len() / 8 + 1) {
                    f.write_all(chunk).unwrap();
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        })
    };
    let (mut loaded, mut refused_count) = (0, 0);
    for _ in 0..20 {
        let o = distill(&["plugins", "inspect", path.to_str().unwrap()]);
        match o.status.code() {
            Some(0) => loaded += 1,
            _ => {
                refused(&o, "inspect while rewritten");
                refused_count += 1;
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(loaded + refused_count, 20, "every attempt loaded the library or refused it with an error");
}

#[test]
fn two_plugins_of_one_recipe_are_two_libraries() {
    // Each library is loaded from a private copy; two copies must never be taken for one.
    let plugins = format!("plugins=[{{path: {}}}, {{path: {}}}]", lib("cosine_kd"), lib("resmlp"));
    let o = distill(&[
        "validate",
        "pipelines/iris-kd.yaml",
        "--set",
        &plugins,
        "--set",
        "student.loss.kind=plugin_hinton_kd",
        "--set",
        "student.model={arch: resmlp, params: {width: 6, blocks: 0}}",
    ]);
    assert!(o.status.success(), "{}", err(&o));
}
