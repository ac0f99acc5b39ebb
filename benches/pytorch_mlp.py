#!/usr/bin/env python3
"""PyTorch reference for `distill bench train|infer`: the same models, batch and optimiser.

Trains the 784-1200-1200-10 teacher and the 784-64-10 student (ReLU, Adam lr 1e-3, cross-entropy,
batch 128) on random Fashion-MNIST-shaped data (uniform [0, 1) features, 10 classes), and times
teacher inference over 60,000 rows. Optional: CI does not need torch. Usage:

    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch
    /tmp/torchenv/bin/python benches/pytorch_mlp.py [--threads 2] [--steps 150] [--student-steps 2000]
"""

import argparse
import json
import time

import torch
from torch import nn


def mlp(widths):
    layers = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def train_throughput(widths, x, y, batch, lr, warmup, steps):
    model = mlp(widths)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    rows = x.shape[0]
    params = sum(p.numel() for p in model.parameters())

    def run(n):
        done, samples = 0, 0
        while done < n:
            order = torch.randperm(rows)
            for start in range(0, rows, batch):
                if done == n:
                    break
                idx = order[start:start + batch]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(x[idx]), y[idx])
                loss.backward()
                opt.step()
                done += 1
                samples += len(idx)
        return samples

    run(warmup)
    t0 = time.perf_counter()
    samples = run(steps)
    seconds = time.perf_counter() - t0
    return {
        "model": "-".join(map(str, widths)),
        "params": params,
        "steps": steps,
        "seconds": seconds,
        "samples_per_s": samples / seconds,
        "gflops": 6 * params * samples / seconds / 1e9,
    }


def gemm_ceiling(n, reps=5):
    a, b = torch.rand(n, n), torch.rand(n, n)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rows", type=int, default=60_000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--student-steps", type=int, default=2000)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--infer-rows", type=int, default=60_000)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.rand(args.rows, 784)
    y = torch.randint(0, 10, (args.rows,))
    models = [
        train_throughput([784, 1200, 1200, 10], x, y, args.batch, args.lr, args.warmup, args.steps),
        train_throughput([784, 64, 10], x, y, args.batch, args.lr, args.warmup, args.student_steps),
    ]

    teacher = mlp([784, 1200, 1200, 10]).eval()
    xi = torch.rand(args.infer_rows, 784)
    with torch.inference_mode():
        teacher(xi[:1024])
        t0 = time.perf_counter()
        for start in range(0, args.infer_rows, 1024):
            teacher(xi[start:start + 1024])
        seconds = time.perf_counter() - t0

    print(json.dumps({
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "gemm_1024_gflops": gemm_ceiling(1024),
        "models": models,
        "inference": {"rows": args.infer_rows, "seconds": seconds, "rows_per_s": args.infer_rows / seconds},
    }, indent=2))


if __name__ == "__main__":
    main()
