//! `extends:` through the binary: merge rules, paths relative to the file that writes them, errors
//! located in the file (base or child) that wrote the key, cycles, `--set` origins, and
//! `pipeline.resolved.yaml` as the merged recipe.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn distill(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_distill"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("DISTILL_CACHE_DIR")
        .output()
        .expect("the distill binary runs")
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, body).unwrap();
    path
}

/// A base in `shared/` (data path relative to it) and a folder with the data one level up.
fn workspace() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("data")).unwrap();
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/iris.csv"), tmp.path().join("data/iris.csv")).unwrap();
    write(
        tmp.path(),
        "recipes/shared/iris.yaml",
        "# base\nversion: 1\nseed: 3\ndescription: from the base\n\
         data:\n  source: {path: ../../data/iris.csv}\n  label: species\n  split: {test: 0.3, stratify: true}\n  scale: {kind: standard}\n\
         \x20 checks:\n    - {id: rows, kind: row_count, min: 100}\n    - {id: no-nulls, kind: not_null, columns: all}\n\
         teacher:\n  model: {hidden: [16, 16], dropout: 0.1}\n  train: {epochs: 5, batch: 16, optimizer: {lr: 1.0e-2}}\n\
         student:\n  model: {hidden: [4]}\n  loss: {kind: kd, temperature: 2, alpha: 0.5}\n  train: {epochs: 5, batch: 16}\n\
         evaluate:\n  targets: {min_accuracy: 0.1, max_params: 5000}\n",
    );
    tmp
}

const CHILD: &str = "version: 1\nextends: shared/iris.yaml\nname: iris-child\ndescription: null\n\
    data:\n  checks:\n    - {id: only, kind: row_count, min: 10}\n\
    teacher:\n  model: {hidden: [8]}\n\
    student:\n  loss: {temperature: 4}\n\
    evaluate:\n  targets: {max_params: null}\n";

#[test]
fn a_child_merges_over_its_base_and_runs_with_the_merged_recipe() {
    let tmp = workspace();
    let child = write(tmp.path(), "recipes/child.yaml", CHILD);
    let o = distill(&["validate", "--explain", child.to_str().unwrap()], tmp.path());
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let line = |start: &str| out.lines().find(|l| l.trim_start().starts_with(start)).unwrap_or_else(|| panic!("no `{start}` in\n{out}")).to_string();
    let base = tmp.path().join("recipes/shared/iris.yaml");
    let (base, child_name) = (base.display().to_string(), child.display().to_string());
    // Scalars and lists replaced, maps merged key by key, null removes, base paths rebased.
    assert!(line("hidden: [8]").ends_with(&format!("# {child_name}:9")), "{out}");
    assert!(line("dropout: 0.1").ends_with(&format!("# {base}:14")), "{out}");
    assert!(line("temperature: 4").contains(&child_name) && line("alpha: 0.5").contains(&base), "{out}");
    assert!(line("- id: only").contains(&child_name) && !out.contains("no-nulls"), "the child's list replaces the base's:\n{out}");
    assert!(!out.contains("description") && !out.contains("max_params"), "null removed the keys:\n{out}");
    assert!(line("min_accuracy: 0.1").contains(&base), "{out}");
    assert!(line("path: ../data/iris.csv").contains(&base), "the base's path is rebased to the child's folder:\n{out}");
    assert!(!out.contains("extends:"), "{out}");

    // The merged recipe runs; its resolved file is the merge (and the data was found).
    let run = tmp.path().join("run");
    let o = distill(&["run", child.to_str().unwrap(), "--out", run.to_str().unwrap(), "--cache-dir", tmp.path().join("c").to_str().unwrap()], tmp.path());
    assert!(matches!(o.status.code(), Some(0 | 3)), "{}", text(&o).1);
    let resolved = std::fs::read_to_string(run.join("pipeline.resolved.yaml")).unwrap();
    for want in [
        "name: iris-child",
        "path: ../data/iris.csv",
        "temperature: 4.0",
        "alpha: 0.5",
        "- 8\n",
        "dropout: 0.1",
        "id: only",
        "max_params: null",
        "description: null",
    ] {
        assert!(resolved.contains(want), "`{want}` missing from\n{resolved}");
    }
    assert!(!resolved.contains("no-nulls") && !resolved.contains("extends"), "{resolved}");
}

#[test]
fn errors_point_at_the_file_that_wrote_the_key() {
    let tmp = workspace();
    let base = tmp.path().join("recipes/shared/iris.yaml");
    let body = std::fs::read_to_string(&base).unwrap();
    // An unknown key and a bad value written in the base: the base's file and line.
    std::fs::write(&base, body.replace("  train: {epochs: 5, batch: 16}\n", "  train: {epochs: 0, batch: 16}\n")).unwrap();
    let child = write(tmp.path(), "recipes/child.yaml", CHILD);
    let (_, err) = text(&distill(&["validate", child.to_str().unwrap()], tmp.path()));
    assert!(err.contains(&format!("{}:19:", base.display())) && err.contains("student.train.epochs: must be at least 1"), "{err}");
    std::fs::write(&base, body.replace("seed: 3\n", "seed: 3\nsede: 4\n")).unwrap();
    let (_, err) = text(&distill(&["validate", child.to_str().unwrap()], tmp.path()));
    assert!(err.contains(&format!("{}:4:1: sede: unknown field `sede`", base.display())), "{err}");
    // The same in the child: the child's file and line.
    std::fs::write(&base, &body).unwrap();
    write(tmp.path(), "recipes/child.yaml", &CHILD.replace("  loss: {temperature: 4}", "  loss: {temprature: 4}"));
    let (_, err) = text(&distill(&["validate", child.to_str().unwrap()], tmp.path()));
    assert!(err.contains(&format!("{}:11:", child.display())) && err.contains("student.loss.temprature: unknown field"), "{err}");
    // A value from --set says so.
    write(tmp.path(), "recipes/child.yaml", CHILD);
    let (_, err) = text(&distill(&["validate", child.to_str().unwrap(), "--set", "student.loss.alpha=x"], tmp.path()));
    assert!(err.contains("student.loss.alpha: invalid type") && err.contains("(the value comes from --set student.loss.alpha=x)"), "{err}");
}

#[test]
fn cycles_missing_bases_and_other_versions_are_errors_with_a_location() {
    let tmp = tempfile::tempdir().unwrap();
    let a = write(tmp.path(), "a.yaml", "version: 1\nname: a\nextends: b.yaml\n");
    write(tmp.path(), "b.yaml", "# b\nextends: sub/c.yaml\n");
    write(tmp.path(), "sub/c.yaml", "version: 1\n\nextends: ../a.yaml\n");
    let o = distill(&["validate", "a.yaml"], tmp.path());
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(err.contains("sub/c.yaml:3:1: extends: `extends` makes a cycle: a.yaml → b.yaml → sub/c.yaml → a.yaml"), "{err}");

    write(tmp.path(), "b.yaml", "extends: nowhere.yaml\n");
    let (_, err) = text(&distill(&["validate", a.to_str().unwrap()], tmp.path()));
    assert!(err.contains("b.yaml:1:1: extends: cannot read the base file") && err.contains("nowhere.yaml"), "{err}");

    write(tmp.path(), "b.yaml", "extends: sub/c.yaml\n");
    write(tmp.path(), "sub/c.yaml", "# c\nversion: 2\n");
    let (_, err) = text(&distill(&["validate", "a.yaml"], tmp.path()));
    assert!(err.contains("sub/c.yaml:2:1: version: the base has version 2 but a.yaml has version 1"), "{err}");

    write(tmp.path(), "b.yaml", "extends: [x.yaml]\n");
    let (_, err) = text(&distill(&["validate", "a.yaml"], tmp.path()));
    assert!(err.contains("b.yaml:1:1: extends: must be the path of a base recipe"), "{err}");
}

#[test]
fn set_with_an_empty_value_is_an_error_and_null_removes_the_key() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = distill(&["validate", "pipelines/digits-kd.yaml", "--set", "student.loss="], repo);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(err.contains("student.loss: --set student.loss=: empty value for `student.loss`"), "{err}");
    let o = distill(&["validate", "--explain", "pipelines/digits-kd.yaml", "--set", "student.loss=null", "--set", "student.train.epochs=3"], repo);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(!out.contains("loss:") && !out.contains("temperature"), "the key was removed:\n{out}");
    let epochs = out.lines().find(|l| l.contains("epochs: 3")).unwrap_or_else(|| panic!("{out}"));
    assert!(epochs.ends_with("# --set student.train.epochs=3"), "{out}");
}

#[test]
fn the_digits_recipes_share_one_base() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for name in ["digits-kd", "digits-cnn", "digits-cosine-kd", "digits-resmlp", "digits-transfer", "digits-transfer-strict", "digits-sweep"] {
        let o = distill(&["validate", "--explain", &format!("pipelines/{name}.yaml")], repo);
        let (out, _) = text(&o);
        // The plugin recipes validate only once their plugins are built; the merge works regardless.
        assert!(out.contains("extends pipelines/base/digits.yaml") && out.contains("path: ../datasets/digits.csv"), "{name}:\n{out}");
    }
}
