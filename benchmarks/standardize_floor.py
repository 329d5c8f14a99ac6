"""What standardization's scale floor buys: the defaults, and the defaults plus
standardization at several floors (``RunningStandardizer(scale_floor=)``), 8 paired
seeds, 150 epochs, the final metric's paired difference to the defaults.

    python benchmarks/standardize_floor.py [--floors 0,0.1,0.25,0.5,1] [TASK ...]

Tasks as in ``outcome.py`` (default: digits-zipf, mnist1d-zipf, breast-cancer-rare).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bagoftricks import Tricks, fit
from bagoftricks.loop.adapters import Standardization

sys.path.insert(0, str(Path(__file__).resolve().parent))
from outcome import TASKS, model_for, split  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("tasks", nargs="*", choices=list(TASKS),
                        default=["digits-zipf", "mnist1d-zipf", "breast-cancer-rare"])
    parser.add_argument("--floors", default="0,0.1,0.25,0.5,1")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=150)
    args = parser.parse_args()
    torch.set_num_threads(1)
    floors = [None] + [float(f) for f in args.floors.split(",")]
    for task in args.tasks:
        train, val, k = split(TASKS[task])
        metric = "balanced_accuracy" if "zipf" in task or "rare" in task else "accuracy"
        t0, finals = time.perf_counter(), {f: [] for f in floors}
        for seed in range(args.seeds):
            for floor in floors:
                tricks = Tricks().build()
                if floor is not None:  # after the loss accumulation, as Tricks builds it
                    tricks.insert(1, Standardization(scale_floor=floor))
                res = fit(model_for(task, train[0].shape[1], k, seed), train, val_data=val,
                          epochs=args.epochs, seed=seed, log="none", tricks=tricks)
                finals[floor].append(res.history.series(metric)[-1])
        base = np.array(finals[None])
        for floor in floors[1:]:
            d = np.array(finals[floor]) - base
            print(f"{task}  floor {floor:<5}  final {np.mean(finals[floor]):.4f}  "
                  f"- defaults {d.mean():+.4f} ± {d.std():.4f}  worse in "
                  f"{(d < 0).sum()}/{len(d)}", flush=True)
        print(f"{task}  defaults final {base.mean():.4f}  ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
