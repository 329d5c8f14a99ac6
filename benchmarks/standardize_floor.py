"""What standardization's scale floor buys, and which part of standardizing hurts: the
defaults, and the defaults plus standardization at several floors
(``RunningStandardizer(scale_floor=)``), 8 paired seeds, 150 epochs, the final metric's
paired difference to the defaults.

``--parts`` adds three variants that take standardization apart: centering each feature
only (a trick of this file, from float64 statistics of the training inputs); scaling
each feature only, by its std floored at the median std
(``Standardization(with_mean=False, scale_floor=1)``); and one mean and one std for all
features, per-channel statistics for an image or signal of one channel
(``Tricks(standardize="channel")``).

    python benchmarks/standardize_floor.py [--floors 0,0.1,0.25,0.5,1] [--parts] [TASK ...]

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
from bagoftricks.loop.protocol import Context, Trick

sys.path.insert(0, str(Path(__file__).resolve().parent))
from outcome import TASKS, model_for, split  # noqa: E402


class CenterOnly(Trick):
    """Each feature's float64 training mean subtracted, nothing divided."""

    def setup(self, ctx: Context) -> None:
        mean = torch.cat(list(ctx.inputs())).double().mean(0).float().to(ctx.device)
        ctx.prepare = lambda x: x - mean


PARTS = {"center only": CenterOnly,
         "scale only (floor 1)": lambda: Standardization(with_mean=False, scale_floor=1.0),
         "per channel": lambda: Standardization(per="channel")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("tasks", nargs="*", choices=[[], *TASKS])  # none given: the default
    parser.add_argument("--floors", default="0,0.1,0.25,0.5,1")
    parser.add_argument("--parts", action="store_true")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=150)
    args = parser.parse_args()
    args.tasks = args.tasks or ["digits-zipf", "mnist1d-zipf", "breast-cancer-rare"]
    torch.set_num_threads(1)
    variants = [None] + [float(f) for f in args.floors.split(",") if f] + (
        list(PARTS) if args.parts else [])
    for task in args.tasks:
        train, val, k = split(TASKS[task])
        metric = "balanced_accuracy" if "zipf" in task or "rare" in task else "accuracy"
        t0, finals = time.perf_counter(), {v: [] for v in variants}
        for seed in range(args.seeds):
            for variant in variants:
                tricks = Tricks().build()
                if variant is not None:  # after the loss accumulation, as Tricks builds it
                    tricks.insert(1, PARTS[variant]() if variant in PARTS
                                  else Standardization(scale_floor=variant))
                res = fit(model_for(task, train[0].shape[1], k, seed), train, val_data=val,
                          epochs=args.epochs, seed=seed, log="none", tricks=tricks)
                finals[variant].append(res.history.series(metric)[-1])
        base = np.array(finals[None])
        for variant in variants[1:]:
            d = np.array(finals[variant]) - base
            name = variant if variant in PARTS else f"floor {variant}"
            print(f"{task}  {name:<26}  final {np.mean(finals[variant]):.4f}  "
                  f"- defaults {d.mean():+.4f} ± {d.std():.4f}  worse in "
                  f"{(d < 0).sum()}/{len(d)}", flush=True)
        print(f"{task}  defaults final {base.mean():.4f}  ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
