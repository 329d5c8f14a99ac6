"""Does every default trick earn its place? Paired seeds, each trick removed in turn.

On each bundled task, an MLP 128-64 (RAdam 1e-3, batches of 32) is trained plain, with
the defaults (``Tricks()``) and with the defaults minus each trick, over paired seeds
(the same initial weights and split per seed). The metric is the one ``fit`` keeps the
model for (the best epoch by validation loss): accuracy on mnist1d, balanced accuracy on
the imbalanced tasks. For each trick the table prints the paired difference "defaults
minus (defaults without it)" — what the trick adds — its spread, and in how many seeds
it lost. The rule the defaults follow: a trick is on only where it adds >= 0 on average
and loses in at most 3 of 8 seeds on every task.

    python benchmarks/outcome.py [--seeds 8] [--epochs 30] [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from bagoftricks import Tricks, fit
from bagoftricks.data import load, stratified_split
from bagoftricks.models import tabular_mlp

TASKS = ["mnist1d", "mnist1d-zipf", "digits-zipf", "breast-cancer-rare"]


def split(name: str):
    ds = load(name)
    if ds.X_rest is not None:
        return (ds.X, ds.y), (ds.X_rest, ds.y_rest), ds.num_classes
    tr, va = stratified_split(ds.y, 0.3, 0)
    return (ds.X[tr], ds.y[tr]), (ds.X[va], ds.y[va]), ds.num_classes


def score(name: str, tricks: Tricks, seed: int, epochs: int, data) -> tuple[float, float]:
    train, val, k = data
    t0 = time.perf_counter()
    res = fit(tabular_mlp(train[0].shape[1], k, seed=seed), train, val_data=val,
              epochs=epochs, batch_size=32, lr=1e-3, tricks=tricks, seed=seed, log="none")
    metric = "accuracy" if name == "mnist1d" else "balanced_accuracy"
    return res.history.epochs[res.best_epoch - 1][metric], time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="2 seeds, 2 epochs, one task")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tasks = TASKS[1:2] if args.quick else TASKS
    if args.quick:
        args.seeds, args.epochs = 2, 2
    variants = {"plain": Tricks.none(), "defaults": Tricks()}
    variants.update({f"without {n}": Tricks().without(n) for n in Tricks().on()})
    print("| task | run | metric at the best epoch | defaults minus this run, paired | seeds "
          "this run beat the defaults | s |\n|---|---|---|---|---|---|")
    for name in tasks:
        data = split(name)
        scores = {v: [score(name, t, s, args.epochs, data) for s in range(args.seeds)]
                  for v, t in variants.items()}
        base = np.array([m for m, _ in scores["defaults"]])
        for v, runs in scores.items():
            m = np.array([x for x, _ in runs])
            secs = np.mean([s for _, s in runs])
            diff = base - m  # what the defaults have over this run, paired by seed
            print(f"| {name} | {v} | {m.mean():.4f} ± {m.std():.4f} | "
                  f"{diff.mean():+.4f} ± {diff.std():.4f} | {(diff < 0).sum()} of "
                  f"{len(m)} | {secs:.1f} |", flush=True)


if __name__ == "__main__":
    main()
