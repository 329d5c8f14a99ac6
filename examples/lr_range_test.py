"""Does ``fit(lr="auto")`` (Leslie Smith's range test) pick a better LR than the default?

mnist1d (3,200 training signals, 800 held out), the demo's MLP 128-64, plain training,
batches of 64, paired seeds: Adam and RAdam, each at 1e-3, at 1e-2 and at the range
test's suggestion. Prints best and final validation accuracy (mean ± std), the LRs the
test chose, and the paired difference of "auto" against 1e-3.

    python examples/lr_range_test.py [--seeds 5] [--epochs 30]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

from bagoftricks import Tricks, fit
from bagoftricks.data import load, stratified_split
from bagoftricks.models import tabular_mlp

OPTIMIZERS = {"Adam": lambda params, lr: torch.optim.Adam(params, lr=lr),
              "RAdam": lambda params, lr: torch.optim.RAdam(params, lr=lr)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", RuntimeWarning)  # (fallbacks are counted below)
    ds = load("mnist1d")
    tr, va = stratified_split(ds.y, 0.2, 0)
    print(f"{'optimizer':9s} {'lr':>6s} {'best acc':>16s} {'final acc':>16s} {'lr used':>14s} "
          f"{'s/run':>6s}")
    for name, make in OPTIMIZERS.items():
        rows = {}
        for lr in (1e-3, 1e-2, "auto"):
            for seed in range(args.seeds):
                t0 = time.perf_counter()
                res = fit(tabular_mlp(40, 10, seed=seed), (ds.X[tr], ds.y[tr]),
                          val_data=(ds.X[va], ds.y[va]), epochs=args.epochs, batch_size=64,
                          lr=lr, optimizer=make, tricks=Tricks.none(), seed=seed, log="none")
                acc = res.history.series("accuracy")
                rows.setdefault(lr, []).append((max(acc), acc[-1], res.history.epochs[0]["lr"],
                                                time.perf_counter() - t0))
            a = np.array(rows[lr])
            print(f"{name:9s} {lr!s:>6s} {a[:, 0].mean():.4f} ± {a[:, 0].std():.4f} "
                  f"{a[:, 1].mean():.4f} ± {a[:, 1].std():.4f} "
                  f"{a[:, 2].min():6.2g}..{a[:, 2].max():<6.2g} {a[:, 3].mean():6.2f}")
        diff = np.array(rows["auto"])[:, 0] - np.array(rows[1e-3])[:, 0]
        print(f"{name}: auto - 1e-3, best accuracy {diff.mean():+.4f} ± {diff.std():.4f}, "
              f"better in {(diff > 0).sum()} of {len(diff)} seeds")


if __name__ == "__main__":
    main()
