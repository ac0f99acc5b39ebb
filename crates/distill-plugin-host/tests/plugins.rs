//! Builds the example plugins (plugins/) and the broken fixture plugins
//! (tests/fixtures/plugins/) with cargo, loads the real shared libraries and checks what the
//! host makes of them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use distill_plugin_host::{inspect, Layer, Plugin, PluginError, PluginRegistry, ABI_VERSION};
use serde_json::{json, Value};

/// (crate directory relative to the workspace root, library name).
const PLUGINS: &[(&str, &str)] = &[
    ("plugins/cosine-kd", "cosine_kd"),
    ("plugins/resmlp", "resmlp"),
    ("tests/fixtures/plugins/panics", "fixture_panics"),
    ("tests/fixtures/plugins/non-finite", "fixture_non_finite"),
    ("tests/fixtures/plugins/wrong-abi", "fixture_wrong_abi"),
    ("tests/fixtures/plugins/duplicate-names", "fixture_duplicate_names"),
    ("tests/fixtures/plugins/no-entry", "fixture_no_entry"),
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds every plugin once per test run into one shared target directory (so their common
/// dependencies compile once) and returns the directory holding the libraries.
fn built() -> &'static Path {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let result = DIR.get_or_init(|| {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugins");
        for (dir, _) in PLUGINS {
            let manifest = workspace_root().join(dir).join("Cargo.toml");
            let output = Command::new(env!("CARGO"))
                .args(["build", "--release", "--quiet", "--manifest-path"])
                .arg(&manifest)
                .env("CARGO_TARGET_DIR", &target)
                .output()
                .map_err(|e| format!("cannot run cargo: {e}"))?;
            if !output.status.success() {
                return Err(format!("building {} failed:\n{}", manifest.display(), String::from_utf8_lossy(&output.stderr)));
            }
        }
        Ok(target.join("release"))
    });
    match result {
        Ok(dir) => dir,
        Err(e) => panic!("{e}"),
    }
}

fn lib(name: &str) -> PathBuf {
    use std::env::consts::{DLL_PREFIX, DLL_SUFFIX};
    built().join(format!("{DLL_PREFIX}{name}{DLL_SUFFIX}"))
}

/// A batch of `n` rows and `k` classes with varied logits.
fn batch(n: usize, k: usize, seed: f32) -> (Vec<f32>, Vec<f32>, Vec<u32>) {
    let student = (0..n * k).map(|i| (i as f32 * 0.37 + seed).sin() * 3.0).collect();
    let teacher = (0..n * k).map(|i| (i as f32 * 0.91 + 2.0 * seed).cos() * 4.0).collect();
    let labels = (0..n).map(|i| ((i * 7 + seed as usize) % k) as u32).collect();
    (student, teacher, labels)
}

/// Reference Hinton KD, written independently of the plugin:
/// `alpha T² KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) CE(s, y)`, mean over rows.
fn reference_hinton(student: &[f32], teacher: &[f32], labels: &[u32], k: usize, t: f64, alpha: f64) -> (f64, Vec<f64>) {
    fn softmax(z: &[f32], t: f64) -> Vec<f64> {
        let m = z.iter().map(|&v| v as f64 / t).fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = z.iter().map(|&v| (v as f64 / t - m).exp()).collect();
        let s: f64 = e.iter().sum();
        e.into_iter().map(|v| v / s).collect()
    }
    let n = labels.len();
    let mut loss = 0.0;
    let mut grad = vec![0.0; n * k];
    for i in 0..n {
        let (s, tl) = (&student[i * k..(i + 1) * k], &teacher[i * k..(i + 1) * k]);
        let (ps, pt, p1) = (softmax(s, t), softmax(tl, t), softmax(s, 1.0));
        let y = labels[i] as usize;
        let kl: f64 = (0..k).map(|j| pt[j] * (pt[j].ln() - ps[j].ln())).sum();
        loss += alpha * t * t * kl - (1.0 - alpha) * p1[y].ln();
        for j in 0..k {
            let onehot = if j == y { 1.0 } else { 0.0 };
            grad[i * k + j] = (alpha * t * (ps[j] - pt[j]) + (1.0 - alpha) * (p1[j] - onehot)) / n as f64;
        }
    }
    (loss / n as f64, grad)
}

/// The error message names the plugin (name and path) and the symbol.
fn assert_names(err: &PluginError, plugin: &str, lib_name: &str, symbol: &str) {
    let msg = err.to_string();
    assert!(msg.contains(&format!("`{plugin}`")), "no plugin name `{plugin}` in: {msg}");
    assert!(msg.contains(lib_name), "no library path in: {msg}");
    assert!(msg.contains(symbol), "no symbol `{symbol}` in: {msg}");
}

#[test]
fn inspect_lists_losses_and_architectures() {
    let info = inspect(lib("cosine_kd")).unwrap();
    assert_eq!(info.abi_version, ABI_VERSION);
    assert_eq!((info.name.as_str(), info.version.as_str()), ("cosine-kd", "0.1.0"));
    assert_eq!(info.losses, ["cosine_kd", "plugin_hinton_kd"]);
    assert!(info.architectures.is_empty());
    let text = info.to_string();
    assert!(text.contains("cosine_kd, plugin_hinton_kd") && text.contains("ABI version:   1"), "{text}");

    let info = inspect(lib("resmlp")).unwrap();
    assert_eq!(info.name, "resmlp");
    assert!(info.losses.is_empty());
    assert_eq!(info.architectures, ["resmlp"]);
}

#[test]
fn cosine_kd_returns_finite_values_and_full_gradients() {
    let plugin = Plugin::load(lib("cosine_kd")).unwrap();
    let loss = plugin.loss("cosine_kd").unwrap();
    let (student, teacher, labels) = batch(16, 10, 0.5);
    for params in [json!({"temperature": 4.0, "alpha": 0.9}), json!({}), Value::Null] {
        let (value, grad) = loss.value_and_grad(&student, Some(&teacher), &labels, 10, &params).unwrap();
        assert!(value.is_finite() && value > 0.0, "{params}: {value}");
        assert_eq!(grad.len(), 16 * 10);
        assert!(grad.iter().all(|g| g.is_finite()));
    }
    // Empty batch: zero loss, empty gradient.
    let (value, grad) = loss.value_and_grad(&[], Some(&[]), &[], 10, &json!({})).unwrap();
    assert_eq!((value, grad.len()), (0.0, 0));
}

#[test]
fn plugin_hinton_kd_matches_reference() {
    let plugin = Plugin::load(lib("cosine_kd")).unwrap();
    let loss = plugin.loss("plugin_hinton_kd").unwrap();
    for (n, k, t, alpha, seed) in [(8, 10, 2.0, 0.5, 0.1), (5, 3, 4.0, 1.0, 1.7), (32, 10, 1.0, 0.0, 3.0), (1, 2, 8.0, 0.9, 0.0)] {
        let (student, teacher, labels) = batch(n, k, seed);
        let params = json!({"temperature": t, "alpha": alpha});
        let (value, grad) = loss.value_and_grad(&student, Some(&teacher), &labels, k, &params).unwrap();
        let (ref_value, ref_grad) = reference_hinton(&student, &teacher, &labels, k, t, alpha);
        assert!((value - ref_value).abs() < 1e-6, "{params}: {value} vs {ref_value}");
        for (i, (g, r)) in grad.iter().zip(&ref_grad).enumerate() {
            assert!((*g as f64 - r).abs() < 1e-6, "{params} index {i}: {g} vs {r}");
        }
    }
}

#[test]
fn resmlp_describes_a_network_in_the_host_vocabulary() {
    let plugin = Plugin::load(lib("resmlp")).unwrap();
    let arch = plugin.architecture("resmlp").unwrap();
    let layers = arch.describe(64, 10, &json!({"width": 32, "blocks": 2})).unwrap();
    assert_eq!(layers.len(), 2 + 2 * 2 + 1);
    assert_eq!(layers[0], Layer::Dense(32));
    assert!(matches!(&layers[2], Layer::Residual(inner) if inner.first() == Some(&Layer::Dense(32))));
    assert_eq!(layers.last(), Some(&Layer::Dense(10)));
    // A description larger than the first buffer goes through the retry path.
    let big = arch.describe(4, 3, &json!({"width": 8, "blocks": 1000})).unwrap();
    assert_eq!(big.len(), 2 + 2 * 1000 + 1);
    // Parameter errors come back naming the plugin and the symbol.
    let err = arch.describe(4, 3, &json!({"width": 0})).unwrap_err();
    assert!(matches!(err, PluginError::Failed { .. }));
    assert_names(&err, "resmlp", "resmlp", "architecture `resmlp`");
    assert!(err.to_string().contains("`width` must be at least 1"));
}

#[test]
fn a_panic_in_a_plugin_is_an_error_and_the_process_survives() {
    let plugin = Plugin::load(lib("fixture_panics")).unwrap();
    let loss = plugin.loss("panicking_loss").unwrap();
    let (student, teacher, labels) = batch(3, 4, 0.0);
    for _ in 0..2 {
        let err = loss.value_and_grad(&student, Some(&teacher), &labels, 4, &json!({})).unwrap_err();
        assert!(matches!(err, PluginError::Panicked { .. }), "{err:?}");
        assert_names(&err, "fixture-panics", "fixture_panics", "loss `panicking_loss`");
        assert!(err.to_string().contains("panicked: fixture loss panicked on a batch of 3 rows"), "{err}");
    }
    let err = plugin.architecture("panicking_arch").unwrap().describe(4, 3, &Value::Null).unwrap_err();
    assert!(matches!(err, PluginError::Panicked { .. }), "{err:?}");
    assert_names(&err, "fixture-panics", "fixture_panics", "architecture `panicking_arch`");
    assert!(err.to_string().contains("index out of bounds"), "{err}");

    let err = plugin.loss("failing_loss").unwrap().value_and_grad(&student, None, &labels, 4, &Value::Null).unwrap_err();
    assert!(matches!(err, PluginError::Failed { .. }), "{err:?}");
    assert_names(&err, "fixture-panics", "fixture_panics", "loss `failing_loss`");
    assert!(err.to_string().contains("fixture loss refuses this batch"));

    // Still alive, and other plugins still work.
    let good = Plugin::load(lib("cosine_kd")).unwrap().loss("cosine_kd").unwrap();
    assert!(good.value_and_grad(&student, Some(&teacher), &labels, 4, &json!({})).is_ok());
}

#[test]
fn non_finite_and_malformed_outputs_are_errors() {
    let plugin = Plugin::load(lib("fixture_non_finite")).unwrap();
    let (student, teacher, labels) = batch(3, 4, 0.0);
    let call = |name: &str| plugin.loss(name).unwrap().value_and_grad(&student, Some(&teacher), &labels, 4, &json!({})).unwrap_err();

    let err = call("nan_loss");
    assert!(matches!(err, PluginError::NonFinite { .. }), "{err:?}");
    assert_names(&err, "fixture-non-finite", "fixture_non_finite", "loss `nan_loss`");
    assert!(err.to_string().contains("non-finite loss value: NaN"), "{err}");

    let err = call("inf_grad");
    assert!(matches!(err, PluginError::NonFinite { .. }), "{err:?}");
    assert!(err.to_string().contains("gradient at row 2, class 3: inf"), "{err}");

    let err = call("short_grad");
    assert_names(&err, "fixture-non-finite", "fixture_non_finite", "loss `short_grad`");
    assert!(err.to_string().contains("11 gradient values for a 3 × 4 batch (expected 12)"), "{err}");

    let err = plugin.architecture("wrong_width_arch").unwrap().describe(4, 3, &json!({})).unwrap_err();
    assert!(matches!(err, PluginError::BadOutput { .. }), "{err:?}");
    assert_names(&err, "fixture-non-finite", "fixture_non_finite", "architecture `wrong_width_arch`");
    assert!(err.to_string().contains("4 outputs but the data has 3 classes"), "{err}");
}

#[test]
fn wrong_abi_version_is_refused() {
    let err = Plugin::load(lib("fixture_wrong_abi")).unwrap_err();
    assert!(matches!(err, PluginError::AbiMismatch { found: 999, expected: ABI_VERSION, .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("fixture_wrong_abi") && msg.contains("ABI version 999") && msg.contains("distill_plugin_entry"), "{msg}");
}

#[test]
fn a_name_declared_twice_is_refused() {
    let err = Plugin::load(lib("fixture_duplicate_names")).unwrap_err();
    assert!(matches!(&err, PluginError::DuplicateName { name, kind: "loss", .. } if name == "twice"), "{err:?}");
    assert_names(&err, "fixture-duplicate-names", "fixture_duplicate_names", "loss `twice`");
}

#[test]
fn a_library_without_the_entry_symbol_is_not_a_plugin() {
    let err = Plugin::load(lib("fixture_no_entry")).unwrap_err();
    assert!(matches!(err, PluginError::NotAPlugin { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("fixture_no_entry") && msg.contains("not a distill plugin (no `distill_plugin_entry`)"), "{msg}");
}

#[test]
fn a_missing_file_is_an_error_naming_the_path() {
    let path = built().join("libdoes_not_exist.so");
    let err = Plugin::load(&path).unwrap_err();
    assert!(matches!(err, PluginError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    // A file that exists but is not a shared library: refused before the loader sees it.
    let not_lib = Path::new(env!("CARGO_TARGET_TMPDIR")).join("not-a-library.so");
    std::fs::write(&not_lib, b"hello").unwrap();
    let err = Plugin::load(&not_lib).unwrap_err();
    assert!(matches!(err, PluginError::BadFile { source: distill_plugin_host::FileProblem::NotElf, .. }), "{err:?}");
    assert!(err.to_string().contains("not-a-library.so") && err.to_string().contains("not an ELF shared library"), "{err}");
}

#[test]
fn registry_looks_up_names_and_refuses_clashes() {
    let mut registry = PluginRegistry::new();
    registry.load(lib("cosine_kd")).unwrap();
    registry.load(lib("resmlp")).unwrap();
    // The same library again is a no-op, not a clash.
    registry.load(lib("cosine_kd")).unwrap();
    assert_eq!(registry.plugins().len(), 2);
    assert_eq!(registry.loss_names(), ["cosine_kd", "plugin_hinton_kd"]);
    assert_eq!(registry.architecture_names(), ["resmlp"]);
    assert!(registry.loss("cosine_kd").is_some() && registry.loss("resmlp").is_none());
    assert!(registry.architecture("resmlp").is_some());

    let err = registry.require_loss("cosin_kd").unwrap_err();
    assert_eq!(err.to_string(), "no plugin provides loss `cosin_kd`; available: cosine_kd, plugin_hinton_kd");
    let err = registry.require_architecture("mlp").unwrap_err();
    assert_eq!(err.to_string(), "no plugin provides architecture `mlp`; available: resmlp");

    // A copy of the same library under another path declares the same names: a clash.
    let copy = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}cosine_kd_copy{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX));
    std::fs::copy(lib("cosine_kd"), &copy).unwrap();
    let err = registry.load(&copy).unwrap_err();
    assert!(matches!(&err, PluginError::DuplicateName { other: Some(_), .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("cosine_kd_copy") && msg.contains("also in plugin `cosine-kd`"), "{msg}");
}

#[test]
fn inputs_that_do_not_fit_the_batch_are_refused_before_the_call() {
    let loss = Plugin::load(lib("cosine_kd")).unwrap().loss("cosine_kd").unwrap();
    let (student, teacher, labels) = batch(3, 4, 0.0);
    let err = loss.value_and_grad(&student[1..], Some(&teacher), &labels, 4, &json!({})).unwrap_err();
    assert!(matches!(err, PluginError::BadInput { .. }), "{err:?}");
    assert_names(&err, "cosine-kd", "cosine_kd", "loss `cosine_kd`");
    let err = loss.value_and_grad(&student, Some(&teacher[1..]), &labels, 4, &json!({})).unwrap_err();
    assert!(err.to_string().contains("teacher logits have 11 values"), "{err}");
    let err = loss.value_and_grad(&student, Some(&teacher), &[0, 4, 1], 4, &json!({})).unwrap_err();
    assert!(err.to_string().contains("label 4 in row 1 is out of range for 4 classes"), "{err}");
    // Missing teacher and bad parameters are the plugin's own errors.
    let err = loss.value_and_grad(&student, None, &labels, 4, &json!({"alpha": 0.5})).unwrap_err();
    assert!(matches!(err, PluginError::Failed { .. }) && err.to_string().contains("needs teacher logits"), "{err}");
    let err = loss.value_and_grad(&student, Some(&teacher), &labels, 4, &json!({"alpah": 0.5})).unwrap_err();
    assert!(err.to_string().contains("unknown parameter `alpah`"), "{err}");
}

#[test]
fn handles_keep_the_library_alive_and_work_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<distill_plugin_host::PluginLoss>();
    assert_send_sync::<distill_plugin_host::PluginArch>();
    assert_send_sync::<PluginRegistry>();

    let loss = {
        let mut registry = PluginRegistry::new();
        registry.load(lib("cosine_kd")).unwrap();
        registry.require_loss("plugin_hinton_kd").unwrap()
        // The registry and its Plugin are dropped here; the loss keeps the library loaded.
    };
    let (student, teacher, labels) = batch(8, 5, 0.3);
    let expected = loss.value_and_grad(&student, Some(&teacher), &labels, 5, &json!({})).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..50 {
                    let got = loss.value_and_grad(&student, Some(&teacher), &labels, 5, &json!({})).unwrap();
                    assert_eq!(got, expected);
                }
            });
        }
    });
}
