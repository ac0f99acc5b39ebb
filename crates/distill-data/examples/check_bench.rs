//! Benchmark of the data-quality checks: a generated table of 1,000,000 rows × 64 f32 columns
//! plus an integer label, with a few planted defects, through the full table-check list (schema,
//! not_null, finite, range, in_set, unique, row_count, class_balance, sql). Prints rows/s.
//!
//! ```text
//! cargo build --release -p distill -p distill-data --example check_bench
//! target/release/examples/check_bench [--rows N] [--write FILE.parquet]
//! ```
//!
//! (Naming both packages keeps cargo's feature set that of the workspace build, so polars is
//! not built a second time.)
//!
//! `--write` also saves the table as Parquet, so `benches/checks_polars.py` can run the same
//! checks on the same data with Python polars.

use std::time::Instant;

use distill_data::run_checks_with_label;
use distill_spec::CheckSpec;
use polars::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const FEATURES: usize = 64;
const CLASSES: i64 = 10;

const CHECKS: &str = r#"
- {id: schema,  kind: schema, types: {"c*": float, label: int}}
- {id: nulls,   kind: not_null, columns: all}
- {id: finite,  kind: finite, columns: "c*"}
- {id: range,   kind: range, columns: "c*", min: 0, max: 1}
- {id: labels,  kind: in_set, column: label, values: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]}
- {id: dupes,   kind: unique}
- {id: size,    kind: row_count, min: 1000}
- {id: balance, kind: class_balance, column: label, min_fraction: 0.05}
- {id: sql,     kind: sql, predicate: "c0 >= 0 AND c1 < 1 AND label IN (0, 1, 2, 3, 4, 5, 6, 7, 8, 9)"}
"#;

/// Uniform [0, 1) features and labels, seeded; defects planted at fixed rows: NaN in c3 (rows
/// 10, 20), a null in c5 (row 30), 2.0 in c7 (row 40), row 50 repeats row 49.
fn table(rows: usize) -> DataFrame {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut columns: Vec<Vec<Option<f32>>> = (0..FEATURES).map(|_| (0..rows).map(|_| Some(rng.gen::<f32>())).collect()).collect();
    let mut label: Vec<i64> = (0..rows).map(|_| rng.gen_range(0..CLASSES)).collect();
    if rows > 50 {
        columns[3][10] = Some(f32::NAN);
        columns[3][20] = Some(f32::NAN);
        columns[5][30] = None;
        columns[7][40] = Some(2.0);
        for c in columns.iter_mut() {
            c[50] = c[49];
        }
        label[50] = label[49];
    }
    let mut cols: Vec<Column> = columns.into_iter().enumerate().map(|(j, v)| Column::new(format!("c{j}").into(), v)).collect();
    cols.push(Column::new("label".into(), label));
    DataFrame::new(rows, cols).expect("columns of equal length")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let rows: usize = arg("--rows").map(|r| r.parse().expect("--rows N")).unwrap_or(1_000_000);
    let checks: Vec<CheckSpec> = serde_yaml::from_str(CHECKS).expect("benchmark checks parse");

    let df = table(rows);
    if let Some(path) = arg("--write") {
        let mut file = std::fs::File::create(&path).expect("create the Parquet file");
        ParquetWriter::new(&mut file).finish(&mut df.clone()).expect("write Parquet");
        println!("wrote {path}");
    }
    // One warm-up, then the best of three (the machine is shared).
    let mut best = f64::INFINITY;
    let mut report = None;
    for _ in 0..4 {
        let t = Instant::now();
        report = Some(run_checks_with_label(&df, &checks, Some("label")).expect("checks run"));
        best = best.min(t.elapsed().as_secs_f64());
    }
    let report = report.expect("ran");
    for c in &report.checks {
        let rows: Vec<usize> = c.samples.iter().map(|s| s.row).collect();
        println!("{:<8} {:<6} failing {:>3}  sample rows {rows:?}", c.id, format!("{:?}", c.status).to_lowercase(), c.failing);
    }
    println!("{} checks on {rows} rows x {} columns: {:.3} s, {:.0} rows/s", report.checks.len(), FEATURES + 1, best, rows as f64 / best);
}
