"""The check list of `crates/distill-data/examples/check_bench.rs`, written in Python polars, on
the same Parquet file, for a like-for-like speed comparison (same machine, same sitting).

    cargo run --release -p distill-data --example check_bench -- --write /tmp/checks.parquet
    python3 -m venv /tmp/plenv && /tmp/plenv/bin/pip install polars
    /tmp/plenv/bin/python benches/checks_polars.py /tmp/checks.parquet

Like distill: one lazy select counts the failing rows of every row check, then only the failing
checks fetch their first 5 failing rows; schema and class balance are read from the schema and a
group-by. Prints the same per-check lines and rows/s.
"""

import sys
import time

import polars as pl

SAMPLES = 5


def run(df: pl.DataFrame):
    feats = [c for c in df.columns if c.startswith("c")]
    out = {}
    # schema: c* float, label int
    schema = df.schema
    out["schema"] = sum(1 for c in feats if not schema[c].is_float()) + (0 if schema["label"].is_integer() else 1)
    not_finite = [~pl.col(c).is_finite() for c in feats]
    outside = [((pl.col(c) < 0) | (pl.col(c) > 1)) & ~pl.col(c).is_nan() for c in feats]
    masks = {
        "nulls": pl.any_horizontal([pl.col(c).is_null() for c in df.columns]),
        "finite": pl.any_horizontal([m.fill_null(False) for m in not_finite]),
        "range": pl.any_horizontal([m.fill_null(False) for m in outside]),
        "labels": ~pl.col("label").cast(pl.Float64).is_in(list(map(float, range(10)))) & pl.col("label").is_not_null(),
        "sql": ~pl.sql_expr("c0 >= 0 AND c1 < 1 AND label IN (0, 1, 2, 3, 4, 5, 6, 7, 8, 9)").fill_null(False),
    }
    counts = [m.sum().alias(k) for k, m in masks.items()]
    counts.append((pl.len() - pl.struct(df.columns).n_unique()).alias("dupes"))
    row = df.lazy().select(counts).collect().row(0, named=True)
    out.update(row)
    out["size"] = 0 if df.height >= 1000 else 1
    shares = df.group_by("label").len().with_columns(share=pl.col("len") / pl.col("len").sum())
    out["balance"] = shares.filter(pl.col("share") < 0.05).height
    samples = {}
    indexed = df.lazy().with_row_index("row")
    for k, m in masks.items():
        if out[k]:
            samples[k] = indexed.filter(m).head(SAMPLES).collect()["row"].to_list()
    if out["dupes"]:
        first = pl.col("row").min().over(df.columns).alias("first")
        samples["dupes"] = indexed.with_columns(first).filter(pl.col("row") != pl.col("first")).head(SAMPLES).collect()["row"].to_list()
    return out, samples


def main():
    df = pl.read_parquet(sys.argv[1])
    best = float("inf")
    for _ in range(4):
        t = time.perf_counter()
        out, samples = run(df)
        best = min(best, time.perf_counter() - t)
    for k in ["schema", "nulls", "finite", "range", "labels", "dupes", "size", "balance", "sql"]:
        print(f"{k:<8} failing {out[k]:>3}  sample rows {samples.get(k, [])}")
    print(f"python polars {pl.__version__}: {df.height} rows x {df.width} columns: {best:.3f} s, {df.height / best:.0f} rows/s")


if __name__ == "__main__":
    main()
