//! Sharded teacher logits through the binary: `distill logits --shard I/N` writes the parts of a
//! partitioned Parquet dataset that pyarrow.dataset reads as one table, bitwise the logits one
//! process computes; a run whose logits are complete in parts assembles them (the same file,
//! the same students) and one with parts missing names and computes them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn distill(args: &[&str], cwd: &Path) -> Output {
    common::distill_in(args, cwd)
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", text(&o));
    text(&o)
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// The single logits file of a cache (there is one teacher).
fn whole_file(cache: &Path) -> PathBuf {
    common::generated::only_file(&cache.join("logits"), ".parquet")
}

fn student_accuracy(run: &Path) -> f64 {
    json(&run.join("metrics.json"))["student"]["accuracy"].as_f64().unwrap()
}

const PYARROW_CHECK: &str = r#"
import sys, pyarrow as pa, pyarrow.dataset as ds, pyarrow.parquet as pq
parts = ds.dataset(sys.argv[1], format="parquet").to_table().sort_by("row_id")
whole = pq.read_table(sys.argv[2]).sort_by("row_id")
assert parts.num_rows == whole.num_rows, (parts.num_rows, whole.num_rows)
assert parts.column("row_id").equals(whole.column("row_id"))
bits = lambda t: t.column("logits").combine_chunks().flatten().view(pa.uint32())
assert bits(parts).equals(bits(whole)), "the logits differ in some bit"
print("rows", parts.num_rows, "files", len(ds.dataset(sys.argv[1], format="parquet").files))
"#;

#[test]
fn four_shards_are_bitwise_one_process_read_as_one_table_and_used_by_run() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = common::generated::write_recipe(dir.path(), 4000);
    let r = recipe.to_str().unwrap();
    let (sharded, single) = (dir.path().join("sharded"), dir.path().join("single"));
    let (c1, c2) = (sharded.to_str().unwrap(), single.to_str().unwrap());
    let mut ranges = Vec::new();
    for i in 0..4 {
        let out = ok(distill(&["logits", r, "--shard", &format!("{i}/4"), "--cache-dir", c1], dir.path()));
        assert_eq!(out.contains("teacher: key") && out.contains("(in the cache)"), i > 0, "the first shard trains the teacher, the rest find it: {out}");
        assert_eq!(out.contains("every part is in the cache"), i == 3, "{out}");
        ranges.push(out);
    }
    // The same shard again is found, not recomputed.
    assert!(ok(distill(&["logits", r, "--shard", "1/4", "--cache-dir", c1], dir.path())).contains("part-1-of-4.parquet (in the cache)"));
    ok(distill(&["logits", r, "--cache-dir", c2], dir.path()));
    let whole = whole_file(&single);
    let key = whole.file_stem().unwrap().to_str().unwrap().to_string();
    let parts_dir = sharded.join("logits").join(&key);
    assert!(!sharded.join("logits").join(format!("{key}.parquet")).exists(), "only parts so far");

    let manifest = json(&parts_dir.join("_manifest.json"));
    assert_eq!(manifest["count"], 4);
    let parts = manifest["parts"].as_array().unwrap();
    let mut next = 0;
    for (i, part) in parts.iter().enumerate() {
        let file = parts_dir.join(part["file"].as_str().unwrap());
        assert_eq!(part["file"], format!("part-{i}-of-4.parquet"));
        assert_eq!(part["rows"][0].as_u64().unwrap(), next, "contiguous ranges");
        next = part["rows"][1].as_u64().unwrap();
        assert!(next > part["rows"][0].as_u64().unwrap(), "every shard has rows here");
        assert_eq!(part["blake3"].as_str().unwrap(), blake3::hash(&std::fs::read(&file).unwrap()).to_hex().as_str());
    }
    assert_eq!(next, manifest["rows"].as_u64().unwrap());

    let python = common::provision(&common::target_dir().join("py-venv-shards"), &["pyarrow"]).unwrap();
    let o = Command::new(python).args(["-c", PYARROW_CHECK]).arg(&parts_dir).arg(&whole).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("files 4"), "{}", text(&o));

    // A run over the parts assembles them into the very file one process writes.
    let plan = ok(distill(&["plan", r, "--cache-dir", c1], dir.path()));
    assert!(plan.contains("all 4 parts are in the cache"), "{plan}");
    let (run1, run2) = (dir.path().join("run1"), dir.path().join("run2"));
    let log = ok(distill(&["run", r, "--cache-dir", c1, "--out", run1.to_str().unwrap()], dir.path()));
    assert!(log.contains("assembling the parts in the cache (no inference)"), "{log}");
    assert_eq!(std::fs::read(whole_file(&sharded)).unwrap(), std::fs::read(&whole).unwrap(), "the same bytes");
    ok(distill(&["run", r, "--cache-dir", c2, "--out", run2.to_str().unwrap()], dir.path()));
    assert_eq!(json(&run1.join("lock.json"))["logits_blake3"], json(&run2.join("lock.json"))["logits_blake3"]);
    assert_eq!(student_accuracy(&run1), student_accuracy(&run2));
}

#[test]
fn missing_parts_are_named_and_computed_by_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = common::generated::write_recipe(dir.path(), 4000);
    let r = recipe.to_str().unwrap();
    let cache = dir.path().join("cache");
    let c = cache.to_str().unwrap();
    for i in [0, 2] {
        ok(distill(&["logits", r, "--shard", &format!("{i}/4"), "--cache-dir", c], dir.path()));
    }
    let plan = ok(distill(&["plan", r, "--cache-dir", c], dir.path()));
    assert!(plan.contains("parts 1, 3 of 4 missing"), "{plan}");
    let log = ok(distill(&["run", r, "--cache-dir", c, "--out", dir.path().join("run").to_str().unwrap()], dir.path()));
    assert!(log.contains("parts 1, 3 of 4 missing; computing them here"), "{log}");
    let single = dir.path().join("single");
    ok(distill(&["logits", r, "--cache-dir", single.to_str().unwrap()], dir.path()));
    assert_eq!(std::fs::read(whole_file(&cache)).unwrap(), std::fs::read(whole_file(&single)).unwrap());
}

#[test]
fn the_shard_comes_from_the_scheduler_and_bad_specs_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = common::generated::write_recipe(dir.path(), 1500);
    let r = recipe.to_str().unwrap();
    let cache = dir.path().join("cache");
    let o = Command::new(env!("CARGO_BIN_EXE_distill"))
        .args(["logits", r, "--cache-dir", cache.to_str().unwrap()])
        .current_dir(dir.path())
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env("JOB_COMPLETION_INDEX", "1")
        .env("SLURM_ARRAY_TASK_COUNT", "9")
        .args(["--shards", "2"])
        .output()
        .unwrap();
    assert!(text(&o).contains("part-1-of-2.parquet (computed)"), "{}", text(&o));
    let o = distill(&["logits", r, "--shard", "2/2", "--cache-dir", cache.to_str().unwrap()], dir.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("--shard 2/2: the index must be in 0..2"), "{}", text(&o));
    let o = distill(&["logits", r, "--shards", "2", "--cache-dir", cache.to_str().unwrap()], dir.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("neither is set"), "{}", text(&o));
    let o = distill(&["logits", r, "--shard", "0/2", "--set", "teacher.cache={top_k: 2}", "--cache-dir", cache.to_str().unwrap()], dir.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("teacher.cache.top_k: sharded logits are stored full"), "{}", text(&o));
}

/// A transfer file of `rows` rows of the recipe's eight features, shifted from the source's
/// distribution (so a scaling fitted without them would differ), in row groups of 700 rows;
/// `nan_at`: one feature of that row is NaN.
const WRITE_TRANSFER: &str = r#"
import sys, random, pyarrow as pa, pyarrow.parquet as pq
path, rows, nan_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(7)
cols = {f"f{j}": [rng.uniform(-1.0, 3.0) for _ in range(rows)] for j in range(8)}
if nan_at >= 0:
    cols["f3"][nan_at] = float("nan")
pq.write_table(pa.table(cols), path, row_group_size=700)
"#;

fn streamed_recipe(dir: &Path, transfer_rows: usize, nan_at: i64) -> PathBuf {
    let recipe = common::generated::write_recipe(dir, 1500);
    let yaml = std::fs::read_to_string(&recipe).unwrap();
    let yaml = yaml.replace("  scale: {kind: standard}\n", "  scale: {kind: standard}\n  transfer: {source: {path: transfer.parquet}}\n");
    std::fs::write(&recipe, yaml).unwrap();
    let python = common::provision(&common::target_dir().join("py-venv-shards"), &["pyarrow"]).unwrap();
    let o = Command::new(python)
        .args(["-c", WRITE_TRANSFER])
        .arg(dir.join("transfer.parquet"))
        .arg(transfer_rows.to_string())
        .arg(nan_at.to_string())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    recipe
}

/// `distill logits --shard` with chunks of one inference block (512 rows).
fn streamed(args: &[&str], cwd: &Path) -> Output {
    common::distill_command(args, cwd).env("DISTILL_STREAM_CHUNK_ROWS", "1").output().unwrap()
}

#[test]
fn shards_stream_the_transfer_file_in_chunks_and_equal_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = streamed_recipe(dir.path(), 5000, -1);
    let r = recipe.to_str().unwrap();
    let (sharded, single) = (dir.path().join("sharded"), dir.path().join("single"));
    let (c1, c2) = (sharded.to_str().unwrap(), single.to_str().unwrap());
    // With checks on the transfer file, a shard without the teacher in the cache loads the data
    // whole (the teacher is trained after every check); no logits are written here.
    let checked = ["--set", "data.checks=[{id: f0-finite, kind: finite, columns: [f0]}]", "--cache-dir"];
    let other = dir.path().join("checked");
    let o = streamed(&["logits", r, "--teacher-only", checked[0], checked[1], checked[2], other.to_str().unwrap()], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let first = ok(streamed(&["logits", r, "--shard", "0/3", checked[0], checked[1], checked[2], other.to_str().unwrap()], dir.path()));
    assert!(first.contains("teacher logits: streaming the transfer file"), "the teacher is in the cache now: {first}");
    let fresh = dir.path().join("fresh");
    let whole_load = ok(streamed(&["logits", r, "--shard", "0/3", checked[0], checked[1], checked[2], fresh.to_str().unwrap()], dir.path()));
    assert!(whole_load.contains("the data is loaded whole (the teacher is not in the cache"), "{whole_load}");

    // Without such checks every shard streams; the first trains the teacher.
    for i in 0..3 {
        let out = ok(streamed(&["logits", r, "--shard", &format!("{i}/3"), "--cache-dir", c1], dir.path()));
        assert!(out.contains("teacher logits: streaming the transfer file"), "{out}");
        assert!(out.contains("transfer rows streamed") && out.contains("chunk=512"), "{out}");
        assert_eq!(out.contains("teacher: key") && out.contains("(in the cache)"), i > 0, "{out}");
        assert_eq!(out.contains("every part is in the cache"), i == 2, "{out}");
    }
    ok(distill(&["logits", r, "--cache-dir", c2], dir.path()));
    let whole = whole_file(&single);
    let key = whole.file_stem().unwrap().to_str().unwrap().to_string();
    let parts_dir = sharded.join("logits").join(&key);
    let manifest = json(&parts_dir.join("_manifest.json"));
    assert_eq!(manifest["rows"].as_u64().unwrap(), manifest["parts"][2]["rows"][1].as_u64().unwrap());
    assert!(manifest["rows"].as_u64().unwrap() > 5000, "the source's training rows and the 5000 transfer rows: {manifest}");

    let python = common::provision(&common::target_dir().join("py-venv-shards"), &["pyarrow"]).unwrap();
    let o = Command::new(python).args(["-c", PYARROW_CHECK]).arg(&parts_dir).arg(&whole).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("files 3"), "{}", text(&o));
    // The streamed data has the fingerprint of the data in memory: a run finds and assembles the parts.
    let log = ok(distill(&["run", r, "--cache-dir", c1, "--out", dir.path().join("run").to_str().unwrap()], dir.path()));
    assert!(log.contains("assembling the parts in the cache (no inference)"), "{log}");
    assert_eq!(std::fs::read(whole_file(&sharded)).unwrap(), std::fs::read(&whole).unwrap(), "the same bytes");
}

#[test]
fn a_streamed_chunk_with_a_value_that_is_not_finite_is_an_error_naming_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = streamed_recipe(dir.path(), 3000, 2100);
    let r = recipe.to_str().unwrap();
    let cache = dir.path().join("cache");
    let c = cache.to_str().unwrap();
    let o = streamed(&["logits", r, "--shard", "0/2", "--cache-dir", c], dir.path());
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("column `f3` transfer row 2100 of data.transfer.source is NaN"), "{}", text(&o));
}
