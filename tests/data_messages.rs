//! Data problems a user can act on, through the binary: paths that are not files say what they
//! are, compressed CSV is read, a nested Parquet column and a missing label name the file and
//! the column (the closest names, not all of them), and an oversized `sql` predicate is refused
//! with the check's id instead of overflowing the stack.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

fn distill(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_distill")).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).env_remove("RUST_LOG").output().expect("distill runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn iris() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/iris.csv")
}

/// A recipe in `dir` over `source` (a YAML flow mapping) with the given checks.
fn recipe(dir: &Path, name: &str, source: &str, label: &str, checks: &[String]) -> PathBuf {
    let checks: String = checks.iter().map(|c| format!("    - {c}\n")).collect();
    let text = format!(
        "version: 1\nname: {name}\nseed: 1\ndata:\n  source: {source}\n  label: {label}\n  split: {{test: 0.3, stratify: true}}\n  checks:\n    - {{id: rows, kind: row_count, min: 1}}\n{checks}\
         teacher:\n  model: {{hidden: [4]}}\n  train: {{epochs: 1}}\nstudent:\n  model: {{hidden: [2]}}\n  train: {{epochs: 1}}\n"
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn check(recipe: &Path) -> Output {
    distill(&["check", recipe.to_str().unwrap()])
}

#[cfg(unix)]
#[test]
fn paths_that_are_not_regular_files_say_what_they_are() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("pipe.csv");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let dir = tmp.path().join("folder.csv");
    std::fs::create_dir(&dir).unwrap();
    let looped = tmp.path().join("loop.csv");
    std::os::unix::fs::symlink(&looped, &looped).unwrap();
    for (path, expected) in
        [(&fifo, "is a FIFO (named pipe), not a regular file"), (&dir, "is a directory, not a regular file"), (&looped, "a symbolic link loop")]
    {
        let r = recipe(tmp.path(), "notfile", &format!("{{path: {}}}", path.display()), "species", &[]);
        let o = check(&r);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{e}");
        assert!(e.contains(&path.display().to_string()) && e.contains(expected) && !e.contains("not found"), "{}: {e}", path.display());
        let o = distill(&["profile", path.to_str().unwrap()]);
        assert!(o.status.code() == Some(2) && stderr(&o).contains(expected), "profile: {}", stderr(&o));
    }
}

#[test]
fn gzipped_and_zstd_csv_are_read_whatever_their_name() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = std::fs::read(iris()).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&raw).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd_frame(&raw);
    for (name, bytes) in [("iris.csv.gz", &gz), ("iris-gzipped.csv", &gz), ("iris.csv.zst", &zst)] {
        let path = tmp.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let r = recipe(tmp.path(), "compressed", &format!("{{path: {}}}", path.display()), "species", &[]);
        let o = check(&r);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("rows"), "{name}");
    }
}

/// A zstd frame of `bytes` in raw (stored) blocks: valid zstd without a compressor.
fn zstd_frame(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![0x28, 0xb5, 0x2f, 0xfd, 0xa0]; // magic; single segment, 4-byte content size
    out.extend((bytes.len() as u32).to_le_bytes());
    let chunks: Vec<&[u8]> = bytes.chunks(100_000).collect();
    for (i, c) in chunks.iter().enumerate() {
        let header = ((c.len() as u32) << 3) | u32::from(i + 1 == chunks.len()); // raw block, last flag
        out.extend(&header.to_le_bytes()[..3]);
        out.extend(*c);
    }
    out
}

#[test]
fn a_nested_parquet_column_is_an_error_naming_file_and_column() {
    if std::env::var_os("DISTILL_SKIP_PYTHON").is_some() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("nested.parquet");
    let script = "import sys, pyarrow as pa, pyarrow.parquet as pq\npq.write_table(pa.table({'x': [1.0, 2.0, 3.0], 'tags': [[1, 2], [3], []], 'label': [0, 1, 0]}), sys.argv[1])";
    let o = Command::new(common::python()).args(["-c", script, path.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let r = recipe(tmp.path(), "nested", &format!("{{path: {}}}", path.display()), "label", &[]);
    let e = stderr(&check(&r));
    assert!(e.contains(&path.display().to_string()) && e.contains("column `tags` is nested") && !e.contains("cannot cast"), "{e}");
}

#[test]
fn a_missing_label_shows_the_closest_column_names_not_all_of_them() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("wide.csv");
    let header: Vec<String> = std::iter::once("label".to_string()).chain((0..784).map(|i| format!("px{i}"))).collect();
    let row: Vec<String> = (0..785).map(|i| (i % 2).to_string()).collect();
    std::fs::write(&path, format!("{}\n{}\n{}\n", header.join(","), row.join(","), row.join(","))).unwrap();
    let r = recipe(tmp.path(), "wide", &format!("{{path: {}}}", path.display()), "labels", &[]);
    let o = distill(&["run", r.to_str().unwrap(), "--out", tmp.path().join("run").to_str().unwrap(), "--cache-dir", tmp.path().join("c").to_str().unwrap()]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("data.label: there is no column `labels`") && e.contains("closest: `label`") && e.contains("785 columns"), "{e}");
    assert!(!e.contains("px783") && e.len() < 1000, "not every column: {e}");
}

#[test]
fn an_oversized_sql_predicate_is_refused_naming_the_check_not_a_stack_overflow() {
    let tmp = tempfile::tempdir().unwrap();
    let source = format!("{{path: {}}}", iris().display());
    let chain = |n: usize| (0..n).map(|i| format!("sepal_length > {}", i % 3)).collect::<Vec<_>>().join(" OR ");
    let deep = format!("{}sepal_length > 0{}", "(".repeat(30), ")".repeat(30));
    // 5,000 terms overflowed the stack before; 2,000 took seconds to check.
    let cases =
        [("huge", chain(5000), "bytes; at most 65536"), ("long", chain(2000), "3999 operators; at most 1000"), ("deep", deep, "nests parentheses 30 deep")];
    for (id, predicate, expected) in cases {
        let r = recipe(tmp.path(), id, &source, "species", &[format!("{{id: {id}, kind: sql, predicate: \"{predicate}\"}}")]);
        for command in ["validate", "check"] {
            let o = distill(&[command, r.to_str().unwrap()]);
            let e = stderr(&o);
            assert_eq!(o.status.code(), Some(2), "{command} {id}: {e}");
            assert!(e.contains(&format!("data.checks[1] ({id}).predicate")) && e.contains(expected), "{command} {id}: {e}");
        }
    }
    // Just inside the bound, the check runs (and passes: every iris sepal is longer than 2).
    let r = recipe(tmp.path(), "inside", &source, "species", &[format!("{{id: inside, kind: sql, predicate: \"{}\"}}", chain(450))]);
    let o = check(&r);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}
