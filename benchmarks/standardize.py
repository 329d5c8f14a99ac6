"""Batch-at-a-time standardization statistics: throughput vs the anchors.

X: 10,000,000 x 32 float32 with values around 1e6 (1e6 + N(0, 1) per feature scale), in
batches of 65,536. Throughput is GB/s of input read. Anchors: scikit-learn
``StandardScaler.partial_fit``, a naive NumPy float64 Chan merge, NumPy whole-array
``mean``/``std`` with dtype float64, and the roofline: one plain read of every batch
(``sum(0)``, the faster of NumPy and torch). Also checks the offset-1e6 accuracy.

Run: ``.venv/bin/python benchmarks/standardize.py [--n 10000000]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.preprocessing import StandardScaler

from bagoftricks import RunningStandardizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import median_time  # noqa: E402


def numpy_chan(X: np.ndarray, batch: int):
    n, mean, m2 = 0, np.zeros(X.shape[1]), np.zeros(X.shape[1])
    for i in range(0, len(X), batch):
        b = X[i:i + batch].astype(np.float64)
        nb, mb = len(b), b.mean(0)
        m2b = ((b - mb) ** 2).sum(0)
        delta, tot = mb - mean, n + nb
        mean = mean + delta * nb / tot
        m2 = m2 + m2b + delta**2 * n * nb / tot
        n = tot
    return mean, np.sqrt(m2 / n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--batch", type=int, default=65_536)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    X = (1e6 + rng.standard_normal((args.n, 32), dtype=np.float32)
         * rng.uniform(0.5, 2, 32).astype(np.float32)).astype(np.float32)
    Xt = torch.from_numpy(X)
    gb = X.nbytes / 1e9
    batches = [Xt[i:i + args.batch] for i in range(0, args.n, args.batch)]
    np_batches = [X[i:i + args.batch] for i in range(0, args.n, args.batch)]

    def ours():
        s = RunningStandardizer()
        for b in batches:
            s.update(b)
        return s.mean.numpy(), s.std.numpy()

    def sklearn_partial_fit():
        s = StandardScaler()
        for b in np_batches:
            s.partial_fit(b)
        return s.mean_, s.scale_

    def numpy_whole():
        return X.mean(0, dtype=np.float64), X.std(0, dtype=np.float64)

    def roofline_numpy():
        for b in np_batches:
            b.sum(0)

    def roofline_torch():
        for b in batches:
            b.sum(0)

    fns = {"ours: RunningStandardizer.update": ours,
           "scikit-learn partial_fit": sklearn_partial_fit,
           "NumPy float64 Chan merge": lambda: numpy_chan(X, args.batch),
           "NumPy whole-array float64": numpy_whole,
           "roofline: NumPy sum(0) per batch": roofline_numpy,
           "roofline: torch sum(0) per batch": roofline_torch}
    results, outputs = {}, {}
    for name, fn in fns.items():
        results[name], outputs[name] = median_time(fn, args.repeats)
    ref_mean, ref_std = outputs["NumPy whole-array float64"]
    ours_t = results["ours: RunningStandardizer.update"]
    roof = min(results["roofline: NumPy sum(0) per batch"],
               results["roofline: torch sum(0) per batch"])
    print(f"X: {args.n:,} x 32 float32 around 1e6 ({gb:.2f} GB), batches of {args.batch:,}, "
          f"median of {args.repeats}, 2 threads")
    print(f"{'method':36s} {'seconds':>8s} {'GB/s':>7s} {'ours is':>10s}")
    for name, t in results.items():
        print(f"{name:36s} {t:8.3f} {gb / t:7.2f} {t / ours_t:9.2f}x")
    print(f"ours vs partial_fit: {results['scikit-learn partial_fit'] / ours_t:.2f}x faster; "
          f"ours reaches {roof / ours_t:.2f} of the roofline")
    for name in ("ours: RunningStandardizer.update", "scikit-learn partial_fit"):
        mean, std = outputs[name]
        print(f"{name}: max rel. error of std {np.max(np.abs(std / ref_std - 1)):.2e}, "
              f"of mean {np.max(np.abs(mean / ref_mean - 1)):.2e} (vs NumPy float64)")


if __name__ == "__main__":
    main()
