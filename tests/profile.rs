//! `distill profile` proposes checks that pass on the file it profiled, through the binary: the
//! proposed list pasted into a recipe makes `distill check` report no error-level failure, for
//! plain, mixed-type and headerless files; a headerless CSV is detected and said to be one.

use std::path::Path;
use std::process::{Command, Output};

fn distill(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_distill")).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).env_remove("RUST_LOG").output().expect("distill runs")
}

fn out(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Profiles `file`, pastes the checks into a recipe over it and runs `distill check`; returns
/// the profile's output and the check's.
fn profile_then_check(dir: &Path, file: &Path, label: &str, source_extra: &str, data_extra: &str) -> (String, Output) {
    let o = distill(&["profile", file.to_str().unwrap(), "--label", label]);
    assert!(o.status.success(), "{}", out(&o));
    let proposed = String::from_utf8_lossy(&o.stdout).to_string();
    let indented: String = proposed.lines().filter(|l| !l.starts_with('#')).map(|l| format!("  {l}\n")).collect();
    let recipe = dir.join("profiled.yaml");
    let text = format!(
        "version: 1\nname: p\nseed: 1\ndata:\n  source: {{path: {}{source_extra}}}\n  label: {label}\n{data_extra}  split: {{test: 0.2, stratify: true}}\n{indented}\
         teacher: {{model: {{hidden: [8]}}}}\nstudent: {{model: {{hidden: [4]}}}}\n",
        file.display()
    );
    std::fs::write(&recipe, text).unwrap();
    (proposed, distill(&["check", recipe.to_str().unwrap()]))
}

fn assert_no_errors(check: &Output, what: &str) {
    let report = String::from_utf8_lossy(&check.stdout).to_string();
    assert_eq!(check.status.code(), Some(0), "{what}: {}", out(check));
    assert!(!report.lines().any(|l| l.contains(" ERROR ")), "{what}: {report}");
}

#[test]
fn profiled_checks_pass_on_the_files_they_came_from() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (file, label) in [("datasets/iris.csv", "species"), ("datasets/digits.csv", "label")] {
        let (proposed, check) = profile_then_check(tmp.path(), &repo.join(file), label, "", "");
        assert!(proposed.contains("allow_extra: false"), "{proposed}");
        assert_no_errors(&check, file);
        let report = String::from_utf8_lossy(&check.stdout).to_string();
        assert!(report.lines().any(|l| l.starts_with("schema ") && l.contains("pass")), "{file}: {report}");
        assert!(report.lines().any(|l| l.starts_with("drift ") && l.contains("pass")), "a sample-size aware distance: {report}");
    }
    // Integers and floats under one glob, and a text column of dates.
    let mixed = tmp.path().join("mixed.csv");
    let rows: String = (0..60).map(|i| format!("{i},{}.5,{},{},2024-01-{:02},{}\n", i % 7, i % 5, i % 3, 1 + i % 28, ["a", "b"][i % 2])).collect();
    std::fs::write(&mixed, format!("id,x0,x1,x2,day,label\n{rows}")).unwrap();
    let (proposed, check) = profile_then_check(tmp.path(), &mixed, "label", "", "  features: {exclude: [day]}\n");
    assert!(proposed.contains("\"x*\": number"), "{proposed}");
    assert_no_errors(&check, "mixed");
}

#[test]
fn a_headerless_csv_is_detected_and_its_checks_pass_with_header_false() {
    let tmp = tempfile::tempdir().unwrap();
    let digits = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/digits.csv")).unwrap();
    let headerless = tmp.path().join("digits-no-header.csv");
    std::fs::write(&headerless, digits.split_once('\n').unwrap().1).unwrap();
    let (proposed, check) = profile_then_check(tmp.path(), &headerless, "column_65", ", header: false", "");
    assert!(proposed.contains("the first row looks like data, not a header") && proposed.contains("header: false"), "{proposed}");
    assert!(proposed.contains("1797 rows × 65 columns"), "the first row is a row: {proposed}");
    assert!(!proposed.contains("_duplicated_"), "{proposed}");
    assert_no_errors(&check, "headerless");
}
