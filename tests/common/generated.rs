//! A generated classification table and a tiny recipe over it, for the tests of sharded logits
//! (enough training rows for several inference blocks; a teacher that trains in well under a
//! second).

use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Writes `data.csv` (`rows` rows, 8 features, 3 classes that depend on the features) and
/// `recipe.yaml` into `dir`; returns the recipe.
pub fn write_recipe(dir: &Path, rows: usize) -> PathBuf {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut csv = (0..8).map(|j| format!("f{j},")).collect::<String>() + "label\n";
    for _ in 0..rows {
        let x: Vec<f64> = (0..8).map(|_| next() * 2.0 - 1.0).collect();
        let score = x[0] + 0.5 * x[1] - x[2] * x[3];
        let label = if score < -0.3 {
            0
        } else if score < 0.4 {
            1
        } else {
            2
        };
        for v in &x {
            write!(csv, "{v:.5},").unwrap();
        }
        writeln!(csv, "{label}").unwrap();
    }
    std::fs::write(dir.join("data.csv"), csv).unwrap();
    let recipe = dir.join("recipe.yaml");
    std::fs::write(&recipe, RECIPE).unwrap();
    recipe
}

/// The files in `dir` whose names end with `suffix`.
pub fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    files
}

/// The one file in `dir` whose name ends with `suffix` (a cache with one teacher has one).
pub fn only_file(dir: &Path, suffix: &str) -> PathBuf {
    let files = files_ending(dir, suffix);
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

const RECIPE: &str = "version: 1
name: generated
seed: 3
data:
  source: {path: data.csv, format: csv}
  label: label
  features: {exclude: [label]}
  split: {test: 0.2, val: 0.1, stratify: true}
  scale: {kind: standard}
teacher:
  model: {arch: mlp, hidden: [32]}
  train: {epochs: 2, batch: 64, optimizer: {kind: adam, lr: 1.0e-2}}
student:
  model: {arch: mlp, hidden: [4]}
  loss: {kind: kd, temperature: 2, alpha: 0.5}
  train: {epochs: 2, batch: 64, optimizer: {kind: adam, lr: 1.0e-2}}
evaluate:
  latency: false
";
