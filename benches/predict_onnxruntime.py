"""`distill predict` against Python onnxruntime on the same exported model and rows (same machine,
same sitting): end to end, both read the CSV, run the model over every row and write the
predictions (row id, class, probabilities) as CSV.

    distill run pipelines/digits-kd.yaml --out /tmp/digits-run
    python3 -m venv /tmp/ortenv && /tmp/ortenv/bin/pip install onnxruntime numpy
    /tmp/ortenv/bin/python benches/predict_onnxruntime.py target/release/distill /tmp/digits-run/student.onnx ROWS

ROWS (default 200000) rows are made by repeating datasets/digits.csv. Prints rows/s of each, the
best of 3 runs.
"""

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


def onnxruntime_predict(model, data, out, timing):
    start = time.perf_counter()
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    props = session.get_modelmeta().custom_metadata_map
    features = json.loads(props["distill.feature_names"])
    classes = json.loads(props["distill.class_names"])
    with open(data) as f:
        header = f.readline().strip().split(",")
    table = np.loadtxt(data, delimiter=",", skiprows=1, dtype=np.float32)
    x = np.ascontiguousarray(table[:, [header.index(c) for c in features]])
    run = time.perf_counter()
    probs = session.run(["probabilities"], {"features": x})[0]
    timing["inference"] = time.perf_counter() - run
    predicted = probs.argmax(axis=1)
    names = np.array(classes)[predicted]
    body = np.column_stack([np.arange(len(x)).astype(str), names, np.char.mod("%.7g", probs)])
    with open(out, "w") as f:
        f.write("row_id,predicted," + ",".join(f"p_{c}" for c in classes) + "\n")
        np.savetxt(f, body, fmt="%s", delimiter=",")
    timing["total"] = time.perf_counter() - start
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
        timing = {}
        n, t = best(lambda: onnxruntime_predict(model, data, out, timing))
        print(f"python onnxruntime {ort.__version__} (numpy CSV read and write): {n} rows in {t:.3f} s = {n / t:,.0f} rows/s; "
              f"session.run alone {timing['inference']:.3f} s = {n / timing['inference']:,.0f} rows/s")

if __name__ == "__main__":
    main()
