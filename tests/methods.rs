//! Methods and statistics through the binary: the paired gain over seeds (interval and
//! p-value), the `keep` rule, and confidence-aware transfer sets, on the shipped digits recipes.

mod common;

use std::path::Path;
use std::process::Output;

use serde_json::Value;

fn distill(args: &[&str]) -> Output {
    common::distill_in(args, Path::new(env!("CARGO_MANIFEST_DIR")))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// The `--set`s that make `digits-transfer` small: a small teacher and short budgets.
const TRANSFER_SETS: [&str; 10] = [
    "--set",
    "teacher.model.hidden=[32]",
    "--set",
    "teacher.train.epochs=10",
    "--set",
    "student.train.epochs=6",
    "--set",
    "evaluate.latency=false",
    "--set",
    "evaluate.targets={}",
];

/// `digits-transfer` (100 labels, 3 seeds) with a small teacher and short budgets.
fn run_transfer(out: &Path, cache: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["run", "pipelines/digits-transfer.yaml", "--out", out.to_str().unwrap(), "--cache-dir", cache.to_str().unwrap()];
    args.extend(TRANSFER_SETS);
    args.extend(extra);
    distill(&args)
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "exit {:?}\nstderr:\n{}", o.status.code(), String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn per_seed(m: &Value, role: &str) -> Vec<(u64, f64)> {
    m[role]["per_seed"].as_array().unwrap().iter().map(|s| (s["seed"].as_u64().unwrap(), s["accuracy"].as_f64().unwrap())).collect()
}

#[test]
fn several_seeds_give_the_paired_gain_with_its_interval_and_p_value() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, cache) = (tmp.path().join("run"), tmp.path().join("cache"));
    let stdout = ok(&run_transfer(&out, &cache, &[]));
    let m = read_json(&out.join("metrics.json"));
    let (s, b) = (per_seed(&m, "student"), per_seed(&m, "baseline"));
    assert_eq!(s.iter().map(|p| p.0).collect::<Vec<_>>(), [0, 1, 2]);
    // Recomputed here from the per-seed accuracies: paired differences, t with 2 degrees of
    // freedom (95% critical value 4.302653, two-sided p from F(t) = 1/2 + t / (2 √(2 + t²))).
    let d: Vec<f64> = s.iter().zip(&b).map(|(s, b)| s.1 - b.1).collect();
    let mean = d.iter().sum::<f64>() / 3.0;
    let sd = (d.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
    let se = sd / 3f64.sqrt();
    let t = mean / se;
    let p = 1.0 - t.abs() / (2.0 + t * t).sqrt();
    let g = &m["gain"];
    assert_eq!(g["n"], 3);
    assert_eq!(g["seeds"], serde_json::json!([0, 1, 2]));
    let close = |key: &str, want: f64| assert!((g[key].as_f64().unwrap() - want).abs() < 1e-9, "{key}: {} vs {want}", g[key]);
    close("mean", mean);
    close("std", sd);
    close("t", t);
    close("p_value", p);
    assert!((g["ci95"][0].as_f64().unwrap() - (mean - 4.302_652_729_749_464 * se)).abs() < 1e-9);
    assert!((g["ci95"][1].as_f64().unwrap() - (mean + 4.302_652_729_749_464 * se)).abs() < 1e-9);
    let text = g["text"].as_str().unwrap();
    assert!(text.starts_with(&format!("gain {:+.1} pt [", 100.0 * mean)) && text.ends_with(", 3 seeds"), "{text}");
    assert!(stdout.contains(text), "the summary table prints it:\n{stdout}");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains(text), "the report prints it");
    // One seed has no spread to test against: no gain block.
    let one = tmp.path().join("one");
    ok(&run_transfer(&one, &cache, &["--set", "student.seeds=[0]"]));
    assert!(read_json(&one.join("metrics.json")).get("gain").is_none());
}

#[test]
fn the_keep_rule_is_declared_recorded_and_part_of_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let with_val = ["--set", "data.split.val=0.15", "--set", "student.seeds=[0]", "--set", "student.train.epochs=12"];
    let best = tmp.path().join("best");
    ok(&run_transfer(&best, &cache, &[&with_val[..], &["--set", "student.train.keep=best_val"]].concat()));
    let m = read_json(&best.join("metrics.json"));
    let history = read_json(&best.join("history.json"));
    // best_val: the first epoch of the highest validation accuracy, for student and baseline.
    for (role, stage) in [("student", "student"), ("baseline", "baseline")] {
        let accs: Vec<f64> = history[stage].as_array().unwrap().iter().map(|e| e["val_accuracy"].as_f64().unwrap()).collect();
        let top = accs.iter().copied().fold(f64::MIN, f64::max);
        let first = accs.iter().position(|&a| a == top).unwrap() + 1;
        assert_eq!(m[role]["kept"], serde_json::json!({"rule": "best_val", "epochs": [first]}), "{role}");
        assert_eq!(m[role]["val_accuracy"].as_f64().unwrap(), top, "{role}: the kept weights score the best validation accuracy");
    }
    assert_eq!(m["teacher"]["kept"]["rule"], "last");
    let lock = read_json(&best.join("lock.json"));
    assert_eq!(lock["keep"], serde_json::json!({"baseline": "best_val", "student": "best_val", "teacher": "last"}));
    assert!(std::fs::read_to_string(best.join("report.md")).unwrap().contains("student best_val (epoch"));

    // `last` is another model: its own cache key, the last epoch kept.
    let last = tmp.path().join("last");
    ok(&run_transfer(&last, &cache, &[&with_val[..], &["--set", "student.train.keep=last"]].concat()));
    let m = read_json(&last.join("metrics.json"));
    let hits: Vec<&str> = m["cache_hits"].as_array().unwrap().iter().map(|h| h.as_str().unwrap()).collect();
    assert!(hits.contains(&"teacher") && !hits.contains(&"student") && !hits.contains(&"baseline"), "{hits:?}");
    let epochs = read_json(&last.join("history.json"))["student"].as_array().unwrap().len();
    assert_eq!(m["student"]["kept"], serde_json::json!({"rule": "last", "epochs": [epochs]}));

    // best_val never looks at the test split: without validation rows it is an error.
    let o = run_transfer(&tmp.path().join("bad"), &cache, &["--set", "student.train.keep=best_val"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("student.train.keep: `best_val` needs validation rows"), "{err}");
    assert!(!tmp.path().join("bad").exists());
}

#[test]
fn the_confidence_filter_keeps_the_rows_above_the_threshold_and_the_report_shows_the_histograms() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let seed = ["--set", "student.seeds=[0]"];
    let plain = tmp.path().join("plain");
    ok(&run_transfer(&plain, &cache, &seed));
    let base = read_json(&plain.join("metrics.json"));
    let conf = &base["transfer_confidence"];
    let (labelled, unlabelled): (Vec<u64>, Vec<u64>) =
        (0..10).map(|i| (conf["labelled"][i].as_u64().unwrap(), conf["unlabelled"][i].as_u64().unwrap())).unzip();
    assert_eq!(labelled.iter().sum::<u64>(), 100);
    assert_eq!(unlabelled.iter().sum::<u64>(), base["rows"]["train"].as_u64().unwrap() - 100);
    assert!(conf.get("unlabelled_kept").is_none());

    // 0.9 is the last bin's lower edge: the filter keeps exactly that bin's unlabelled rows.
    let filtered = tmp.path().join("filtered");
    let stdout = ok(&run_transfer(&filtered, &cache, &[&seed[..], &["--set", "data.transfer.min_teacher_confidence=0.9"]].concat()));
    let m = read_json(&filtered.join("metrics.json"));
    let kept = m["transfer_confidence"]["unlabelled_kept"].as_u64().unwrap();
    assert_eq!(kept, unlabelled[9], "the teacher (a cache hit) is the same, so are its confidences");
    assert!(kept > 0 && kept < unlabelled.iter().sum::<u64>(), "the case must filter something: {kept}");
    let line = format!("kept {kept} of {} unlabelled rows", unlabelled.iter().sum::<u64>());
    assert!(stdout.contains(&line), "{stdout}");
    let report = std::fs::read_to_string(filtered.join("report.md")).unwrap();
    assert!(report.contains(&line) && report.contains("teacher confidence, unlabelled rows"), "{report}");
    // The student trained on the labelled rows and the kept ones only.
    let log = std::fs::read_to_string(filtered.join("run.log")).unwrap();
    assert!(log.contains(&format!("rows={}", 100 + kept)) && log.contains("kept="), "{log}");
    let hits: Vec<&str> = m["cache_hits"].as_array().unwrap().iter().map(|h| h.as_str().unwrap()).collect();
    assert!(hits.contains(&"teacher_logits") && hits.contains(&"baseline") && !hits.contains(&"student"), "{hits:?}");

    // Weighting by the teacher's confidence: another student, the same rows.
    let weighted = tmp.path().join("weighted");
    ok(&run_transfer(&weighted, &cache, &[&seed[..], &["--set", "data.transfer.weight=entropy"]].concat()));
    let w = read_json(&weighted.join("metrics.json"));
    assert_eq!(w["transfer_confidence"]["weight"], "entropy");
    assert!(!w["cache_hits"].as_array().unwrap().iter().any(|h| h == "student"));
    assert!(std::fs::read_to_string(weighted.join("report.md")).unwrap().contains("unlabelled rows weighted by"));

    let o = run_transfer(&tmp.path().join("bad"), &cache, &["--set", "data.transfer.min_teacher_confidence=1.5"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("data.transfer.min_teacher_confidence: must be in (0, 1], got 1.5"));
}

fn hits(m: &Value) -> Vec<String> {
    m["cache_hits"].as_array().unwrap().iter().map(|h| h.as_str().unwrap().to_string()).collect()
}

#[test]
fn several_teachers_are_each_cached_evaluated_and_combined() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let teachers =
        ["--set", "student.seeds=[0]", "--set", "teachers=[{model: {hidden: [24]}, train: {epochs: 10}}, {model: {hidden: [16]}, train: {epochs: 10}}]"];
    let first = tmp.path().join("first");
    let stdout = ok(&run_transfer(&first, &cache, &teachers));
    let m = read_json(&first.join("metrics.json"));
    let e = &m["ensemble"];
    assert_eq!(e["rule"], "mean_probs");
    assert_eq!(e["temperature"], 2.0, "the student's KD temperature");
    let names: Vec<&str> = e["teachers"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["teacher", "teacher2", "teacher3"]);
    let params: Vec<u64> = e["teachers"].as_array().unwrap().iter().map(|t| t["params"].as_u64().unwrap()).collect();
    assert_eq!(params, [64 * 32 + 32 + 330, 64 * 24 + 24 + 250, 64 * 16 + 16 + 170]);
    assert_eq!(e["teachers"][0]["accuracy"], m["teacher"]["accuracy"]);
    for t in e["teachers"].as_array().unwrap().iter().chain([e]) {
        let a = t["accuracy"].as_f64().unwrap();
        assert!(a > 0.5 && a <= 1.0, "{t}");
    }
    assert!(stdout.contains("ensemble (mean_probs, T = 2): test accuracy") && stdout.contains("teacher3 (weight 0.333)"), "{stdout}");
    let report = std::fs::read_to_string(first.join("report.md")).unwrap();
    assert!(report.contains("ensemble (mean_probs, T = 2)"), "{report}");
    // Each teacher's logits are their own cache entry.
    let lock = read_json(&first.join("lock.json"));
    let stages: Vec<&str> = lock["stages"].as_array().unwrap().iter().map(|s| s["stage"].as_str().unwrap()).collect();
    assert_eq!(stages.iter().filter(|s| **s == "teacher").count(), 3);
    assert_eq!(stages.iter().filter(|s| **s == "logits").count(), 3);
    let logits: std::collections::HashSet<&str> =
        lock["stages"].as_array().unwrap().iter().filter(|s| s["stage"] == "logits").map(|s| s["artifact"].as_str().unwrap()).collect();
    assert_eq!(logits.len(), 3, "three different logit files");

    // Another rule: every teacher and its logits from the cache, a new student.
    let again = tmp.path().join("again");
    ok(&run_transfer(&again, &cache, &[&teachers[..], &["--set", "ensemble={rule: mean_logits}"]].concat()));
    let h = hits(&read_json(&again.join("metrics.json")));
    for stage in ["teacher", "teacher2", "teacher3", "teacher_logits", "teacher2_logits", "teacher3_logits", "baseline"] {
        assert!(h.contains(&stage.to_string()), "{stage} not a hit: {h:?}");
    }
    assert!(!h.contains(&"student".to_string()));

    // All the weight on the first teacher's logits is that teacher alone: the same student.
    let alone = tmp.path().join("alone");
    ok(&run_transfer(&alone, &cache, &["--set", "student.seeds=[0]"]));
    let only = tmp.path().join("only");
    ok(&run_transfer(&only, &cache, &[&teachers[..], &["--set", "ensemble={rule: mean_logits, weights: [1, 0, 0]}"]].concat()));
    let (a, o) = (read_json(&alone.join("metrics.json")), read_json(&only.join("metrics.json")));
    assert_eq!(a["student"]["accuracy"], o["student"]["accuracy"]);
    assert_eq!(o["ensemble"]["accuracy"], a["teacher"]["accuracy"]);

    // The shipped three-teacher recipe is valid as it is.
    let v = distill(&["validate", "pipelines/digits-ensemble.yaml"]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));

    let bad = run_transfer(&tmp.path().join("bad"), &cache, &[&teachers[..], &["--set", "ensemble={weights: [1, 1]}"]].concat());
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("ensemble.weights: needs one weight per teacher (3"), "{}", String::from_utf8_lossy(&bad.stderr));
}

/// `--set` for a loss of KD plus a feature hint with these keys.
fn hint_loss(hint: &str) -> String {
    format!("student.loss={{terms: {{kd: {{weight: 0.5, temperature: 2}}, ce: {{weight: 0.5}}, hint: {{{hint}}}}}}}")
}

/// The tensor bytes of a safetensors file (its header holds run-specific metadata).
fn tensors(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    bytes[8 + header..].to_vec()
}

#[test]
fn a_feature_hint_trains_with_the_student_and_its_projection_is_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let seed = ["--set", "student.seeds=[0]"];
    let plain = tmp.path().join("plain");
    ok(&run_transfer(&plain, &cache, &[&seed[..], &["--set", "student.loss={terms: {kd: {weight: 0.5, temperature: 2}, ce: {weight: 0.5}}}"]].concat()));
    let hinted = tmp.path().join("hinted");
    let hint = hint_loss("weight: 0.5, teacher_layer: 0, student_layer: 0");
    ok(&run_transfer(&hinted, &cache, &[&seed[..], &["--set", &hint]].concat()));
    let (p, h) = (read_json(&plain.join("metrics.json")), read_json(&hinted.join("metrics.json")));
    assert_eq!(h["student"]["params"], p["student"]["params"], "the projection is not part of the student");
    assert_eq!(std::fs::metadata(hinted.join("student.safetensors")).unwrap().len(), std::fs::metadata(plain.join("student.safetensors")).unwrap().len());
    let found = hits(&h);
    assert!(found.contains(&"teacher".to_string()) && !found.contains(&"features".to_string()) && !found.contains(&"student".to_string()), "{found:?}");
    assert_ne!(h["student"]["evaluation"]["nll"], p["student"]["evaluation"]["nll"], "the hint changed the student");
    assert!(std::fs::read_to_string(hinted.join("report.md")).unwrap().contains("feature hint"));

    // Features computed on the fly train the very same student as cached ones; nothing is stored.
    let computed = tmp.path().join("computed");
    ok(&run_transfer(&computed, &cache, &[&seed[..], &["--set", &hint_loss("weight: 0.5, teacher_layer: 0, student_layer: 0, features: computed")]].concat()));
    assert_eq!(tensors(&computed.join("student.safetensors")), tensors(&hinted.join("student.safetensors")));
    assert!(!hits(&read_json(&computed.join("metrics.json"))).contains(&"features".to_string()));
    let stored: Vec<_> =
        std::fs::read_dir(cache.join("features")).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().ends_with(".features.parquet")).collect();
    assert_eq!(stored.len(), 1, "one feature file for one teacher and layer");

    let cosine = tmp.path().join("cosine");
    ok(&run_transfer(&cosine, &cache, &[&seed[..], &["--set", &hint_loss("weight: 0.5, teacher_layer: 0, student_layer: 0, measure: cosine")]].concat()));
    let found = hits(&read_json(&cosine.join("metrics.json")));
    assert!(found.contains(&"features".to_string()) && !found.contains(&"student".to_string()), "the same layer's features are a cache hit: {found:?}");

    let o = run_transfer(&tmp.path().join("bad"), &cache, &[&seed[..], &["--set", &hint_loss("weight: 1, teacher_layer: 4, student_layer: 0")]].concat());
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("student.loss.terms.hint.teacher_layer: the teacher has no hidden layer 4"), "{err}");
    let old = run_transfer(&tmp.path().join("old"), &cache, &[&seed[..], &["--set", "student.hint={teacher_layer: 0, student_layer: 0}"]].concat());
    assert_eq!(old.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&old.stderr).contains("the hint is a loss term now: `student.loss.terms.hint"), "{}", String::from_utf8_lossy(&old.stderr));
    let alone = run_transfer(&tmp.path().join("alone"), &cache, &["--set", "student.loss={terms: {hint: {weight: 1, teacher_layer: 0, student_layer: 0}}}"]);
    assert_eq!(alone.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&alone.stderr).contains("a hint adds to the logit terms"), "{}", String::from_utf8_lossy(&alone.stderr));
}

#[test]
fn a_hinted_student_resumes_to_the_same_weights_as_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let hint = hint_loss("weight: 0.5, teacher_layer: 0, student_layer: 0");
    let args = ["--set", "student.seeds=[0]", "--set", hint.as_str()];
    let whole = tmp.path().join("whole");
    ok(&run_transfer(&whole, &tmp.path().join("cache-whole"), &args));
    let cache = tmp.path().join("cache");
    let out = tmp.path().join("stopped");
    let mut stopped = vec!["run", "pipelines/digits-transfer.yaml", "--out", out.to_str().unwrap(), "--cache-dir", cache.to_str().unwrap()];
    stopped.extend(TRANSFER_SETS.iter().chain(&args));
    let o = common::distill_command(&stopped, Path::new(env!("CARGO_MANIFEST_DIR"))).env("DISTILL_TEST_INTERRUPT_AFTER", "student:3").output().unwrap();
    assert!(!o.status.success(), "the hook stops the run after the student's epoch 3");
    let resumed = tmp.path().join("resumed");
    let o = run_transfer(&resumed, &cache, &[&args[..], &["--resume"]].concat());
    let log = ok(&o) + &String::from_utf8_lossy(&o.stderr);
    assert!(log.contains("resuming from the checkpoint of an interrupted run"), "{log}");
    assert_eq!(tensors(&resumed.join("student.safetensors")), tensors(&whole.join("student.safetensors")), "the projection was restored too");
}

#[test]
fn plan_compares_each_teacher_with_its_own_record() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/digits-transfer.yaml");
    let cache = tmp.path().join("cache");
    let teachers =
        |epochs: u32| format!("teachers=[{{model: {{hidden: [24]}}, train: {{epochs: 10}}}}, {{model: {{hidden: [16]}}, train: {{epochs: {epochs}}}}}]");
    let (first, changed) = (teachers(10), teachers(12));
    let args = |verb: &'static str, sets: &str| -> Vec<String> {
        let mut args: Vec<String> =
            [verb, recipe.to_str().unwrap(), "--cache-dir", cache.to_str().unwrap(), "--set", "student.seeds=[0]", "--set", sets].map(String::from).into();
        args.extend(TRANSFER_SETS.map(String::from));
        args
    };
    let run = |verb: &'static str, sets: &str| {
        let args = args(verb, sets);
        ok(&common::distill_in(&args.iter().map(String::as_str).collect::<Vec<_>>(), tmp.path()))
    };
    run("run", &first);
    let text = run("plan", &changed);
    let line =
        |stage: &str| text.lines().find(|l| l.trim_start().starts_with(&format!("{stage} "))).unwrap_or_else(|| panic!("no {stage}: {text}")).to_string();
    assert!(line("teacher").contains("unchanged since") && line("teacher2").contains("unchanged since"), "{text}");
    assert!(line("teacher3").contains("changed since") && line("teacher3").ends_with(": teacher.train"), "only its budget changed: {text}");
}
