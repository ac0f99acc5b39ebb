"""`distill predict` against Python onnxruntime on the same exported model and rows (same machine,
same sitting): end to end, both read the CSV, run the model over every row and write the
predictions (row id, class, probabilities) as CSV.

    distill run pipelines/digits-kd.yaml --out /tmp/digits-run
    python3 -m venv /tmp/ortenv && /tmp/ortenv/bin/pip install onnxruntime numpy
    /tmp/ortenv/bin/python benches/predict_onnxruntime.py target/release/distill /tmp/digits-run/student.onnx ROWS

ROWS (default 200000) rows are made by repeating datasets/digits.csv. Prints rows/s of each, the
best of 3 runs.
"""

import csv
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort


def make_rows(path, rows):
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "datasets", "digits.csv")) as f:
        lines = f.read().splitlines()
    header, body = lines[0], lines[1:]
    with open(path, "w") as f:
        f.write(header + "\n")
        for i in range(rows):
            f.write(body[i % len(body)] + "\n")


def onnxruntime_predict(model, data, out):
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    props = session.get_modelmeta().custom_metadata_map
    features = json.loads(props["distill.feature_names"])
    classes = json.loads(props["distill.class_names"])
    with open(data, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        cols = [header.index(c) for c in features]
        x = np.array([[float(r[c]) for c in cols] for r in reader], dtype=np.float32)
    probs = session.run(["probabilities"], {"features": x})[0]
    predicted = probs.argmax(axis=1)
    with open(out, "w") as f:
        f.write("row_id,predicted," + ",".join(f"p_{c}" for c in classes) + "\n")
        for i, (c, p) in enumerate(zip(predicted, probs)):
            f.write(f"{i},{classes[c]}," + ",".join(f"{v:.7g}" for v in p) + "\n")
    return len(x)


def best(f, runs=3):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        rows = f()
        times.append(time.perf_counter() - start)
    return rows, min(times)


def main():
    distill, model = sys.argv[1], sys.argv[2]
    rows = int(sys.argv[3]) if len(sys.argv) > 3 else 200_000
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "rows.csv")
        make_rows(data, rows)
        out = os.path.join(tmp, "preds.csv")

        def with_distill():
            subprocess.run([distill, "predict", model, "--data", data, "--out", out], check=True, capture_output=True)
            return rows

        n, t = best(with_distill)
        print(f"distill predict (tract-onnx): {n} rows in {t:.3f} s = {n / t:,.0f} rows/s")
        n, t = best(lambda: onnxruntime_predict(model, data, out))
        print(f"python onnxruntime {ort.__version__}: {n} rows in {t:.3f} s = {n / t:,.0f} rows/s")


if __name__ == "__main__":
    main()
