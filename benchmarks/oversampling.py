"""Oversampling: our sampler vs imbalanced-learn, WeightedRandomSampler and randperm.

Each method runs in its own process so its peak memory (above the labels and X it is
given) is its own; each is timed alike (one untimed warm-up call, then the median of
``--repeats``). imbalanced-learn appears twice: resampling a 16-column X (what users call)
and resampling only a column of row indices, the like-for-like anchor for our sampler,
which returns indices. Run: ``.venv/bin/python benchmarks/oversampling.py [--n 10000000]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import median_time, peak_rss_mb, run_isolated  # noqa: E402

METHODS = ("randperm floor", "ours: construct epoch", "ours: set-up + first epoch",
           "imblearn RandomOverSampler: X (n, 16)", "imblearn RandomOverSampler: indices only",
           "ours: full iteration", "WeightedRandomSampler: full iteration")


def labels(case: str, n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    if case == "binary-1%":
        return (rng.random(n) < 0.01).astype(np.int64)
    p = 1 / np.arange(1, 11)
    return rng.choice(10, size=n, p=p / p.sum()).astype(np.int64)


def one(method: str, case: str, n: int, repeats: int) -> dict:
    torch.set_num_threads(2)
    y = labels(case, n)
    counts = np.bincount(y)
    epoch = len(counts) * int(counts.max())
    if method.endswith("X (n, 16)"):
        X = np.random.default_rng(1).random((n, 16), dtype=np.float32)
    elif method.endswith("indices only"):
        X = np.arange(n).reshape(-1, 1)  # the resampled column is the epoch's row indices
    from imblearn.over_sampling import RandomOverSampler
    from torch.utils.data import WeightedRandomSampler

    from bagoftricks import OversamplingSampler
    torch.randperm(1000)  # warm up torch's allocator and thread pool outside the measure
    base = peak_rss_mb()
    if method == "randperm floor":
        def fn():
            return torch.randperm(epoch, dtype=torch.int32)
    elif method == "ours: construct epoch":
        sampler = OversamplingSampler(y)

        def fn():
            return sampler.epoch_indices()
    elif method == "ours: set-up + first epoch":
        def fn():
            return OversamplingSampler(y).epoch_indices()
    elif method.startswith("imblearn"):
        def fn():
            return RandomOverSampler(random_state=0).fit_resample(X, y)
    elif method == "ours: full iteration":
        def fn():
            return sum(1 for _ in OversamplingSampler(y))
    else:
        w = torch.as_tensor((1.0 / counts)[y])

        def fn():
            return sum(1 for _ in WeightedRandomSampler(w, num_samples=epoch))
    seconds, _ = median_time(fn, repeats)
    return {"seconds": seconds, "peak_mb": peak_rss_mb() - base}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", nargs=2, metavar=("METHOD", "CASE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], args.one[1], args.n, args.repeats)))
        return
    print(f"n = {args.n:,} labels; 2 threads; each method: 1 warm-up call, median of "
          f"{args.repeats}")
    for case in ("binary-1%", "zipf-10"):
        res = {m: run_isolated(__file__, "--n", str(args.n), "--repeats", str(args.repeats),
                               "--one", m, case) for m in METHODS}
        floor, ours = res["randperm floor"], res["ours: set-up + first epoch"]
        print(f"\n{case}")
        print(f"{'method':40s} {'seconds':>9s} {'peak MiB':>9s}  ratio")
        for m, r in res.items():
            if m.endswith("full iteration"):
                ref, what = res["ours: full iteration"], "x ours (iteration)"
            elif m in ("randperm floor", "ours: construct epoch"):
                ref, what = floor, "x floor"
            else:
                ref, what = ours, "x ours (construction)"
            print(f"{m:40s} {r['seconds']:9.3f} {r['peak_mb']:9.0f}  "
                  f"{r['seconds'] / ref['seconds']:.2f} {what}")
        epoch = res["ours: construct epoch"]
        print(f"epoch construction / floor: {epoch['seconds'] / floor['seconds']:.2f}x time")
        for m in METHODS:
            if m.startswith("imblearn"):
                r = res[m]
                print(f"{m} / ours: {r['seconds'] / ours['seconds']:.1f}x time, "
                      f"{r['peak_mb'] / max(ours['peak_mb'], 1):.1f}x peak memory")


if __name__ == "__main__":
    main()
