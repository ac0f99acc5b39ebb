"""A large transfer set for measuring a streamed logits shard's peak memory (README, "Running on a
cluster"): a labelled source (CSV, SOURCE_ROWS rows) and an unlabelled transfer file (Parquet, ROWS
rows x 64 float32 features, row groups of 131,072 rows, written a row group at a time so this
script never holds the data), plus a recipe that uses both. The data is not committed.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install pyarrow numpy
    /tmp/venv/bin/python benches/transfer_set.py /tmp/big 20000000
    distill logits /tmp/big/recipe.yaml --teacher-only
    /usr/bin/time -v distill logits /tmp/big/recipe.yaml --shard 0/4   # "Maximum resident set size"
"""

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

FEATURES = 64
GROUP = 131_072
SOURCE_ROWS = 20_000

RECIPE = """version: 1
name: big-transfer
seed: 1
data:
  source: {path: source.csv}
  label: label
  split: {test: 0.2, val: 0.1}
  scale: {kind: standard}
  transfer: {source: {path: transfer.parquet}}
teacher:
  model: {arch: mlp, hidden: [128]}
  train: {epochs: 2, batch: 256, optimizer: {kind: adam, lr: 1.0e-3}}
student:
  model: {arch: mlp, hidden: [16]}
  loss: {kind: kd, temperature: 2, alpha: 0.5}
  train: {epochs: 1, batch: 256, optimizer: {kind: adam, lr: 1.0e-3}}
evaluate:
  latency: false
"""


def features(rng, n):
    return rng.normal(size=(n, FEATURES)).astype(np.float32)


def main():
    out, rows = Path(sys.argv[1]), int(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    x = features(rng, SOURCE_ROWS)
    label = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
    header = ",".join([f"f{j}" for j in range(FEATURES)] + ["label"])
    np.savetxt(out / "source.csv", np.column_stack([x, label]), delimiter=",", header=header, comments="", fmt=["%.6f"] * FEATURES + ["%d"])
    schema = pa.schema([(f"f{j}", pa.float32()) for j in range(FEATURES)])
    with pq.ParquetWriter(out / "transfer.parquet", schema, compression="snappy") as w:
        for start in range(0, rows, GROUP):
            block = features(rng, min(GROUP, rows - start))
            w.write_table(pa.Table.from_arrays([pa.array(block[:, j]) for j in range(FEATURES)], schema=schema))
    (out / "recipe.yaml").write_text(RECIPE)
    print(f"{out}: source.csv ({SOURCE_ROWS} rows), transfer.parquet ({rows} rows x {FEATURES}), recipe.yaml")


if __name__ == "__main__":
    main()
