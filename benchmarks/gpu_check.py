"""The GPU check (``make gpu-check``): the CUDA tests and the multi-process ones (with the
GPU visible: one process per GPU, or the CPU when there are fewer), then a timing of the
loop on the GPU — a hand-written loop, ``fit`` in fp32, bf16 and fp16 — on the mnist1d reference CNN
and the demo's MLP, with figures to paste into the README under the card's name.

Without CUDA it says so and exits 0 (everything else is tested on the CPU).

    python benchmarks/gpu_check.py [--epochs 5] [--batch-size 256]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from bagoftricks import Tricks, fit
from bagoftricks.models import tabular_mlp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loop_overhead import SmallCNN, balanced_mnist1d  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CUDA_TESTS = ["tests/test_cuda.py", "tests/test_inputs.py", "tests/test_glm.py",
              "tests/distributed", "-k", "cuda or distributed"]


def hand_loop(model, X, y, epochs, batch_size):
    """The standard recipe on the device: Adam, the loss summed on the GPU, one read per
    epoch."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        total = torch.zeros((), device=X.device)
        for idx in torch.randperm(len(y), device=X.device).split(batch_size):
            loss = F.cross_entropy(model(X[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)
        (total / len(y)).item()


def seconds(run, repeats=3) -> float:
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        run()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def glm_seconds(n: int = 1_000_000, p: int = 50) -> None:
    """A weighted logistic GLM of n x p on the CPU (every core) and on the GPU."""
    import numpy as np

    from bagoftricks.linear import GLM

    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, p))
    y = (rng.random(n) < 1 / (1 + np.exp(-X[:, :5].sum(1) / 3))).astype(float)
    w = rng.uniform(0.5, 2, n)
    fits, secs = {}, {}
    for device in ("cpu", "cuda"):
        GLM("binomial", device=device).fit(X[:20000], y[:20000], sample_weight=w[:20000])
        t0 = time.perf_counter()
        fits[device] = GLM("binomial", device=device).fit(X, y, sample_weight=w)
        torch.cuda.synchronize()
        secs[device] = time.perf_counter() - t0
    gap = np.abs(fits["cpu"].coef_ - fits["cuda"].coef_).max()
    print(f"\nGLM binomial {n}x{p}, weighted: CPU ({torch.get_num_threads()} threads) "
          f"{secs['cpu']:.2f} s, GPU {secs['cuda']:.2f} s ({secs['cpu'] / secs['cuda']:.1f}x), "
          f"max |coef gap| {gap:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu-check: no CUDA device here; the CUDA tests are skipped and nothing is timed")
        return
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", *CUDA_TESTS], cwd=ROOT)
    X, y = balanced_mnist1d()
    Xd, yd = X.cuda(), y.cuda()
    name = torch.cuda.get_device_name()
    print(f"\n{name}, torch {torch.__version__}, mnist1d ({len(y)} rows), batches of "
          f"{args.batch_size}, {args.epochs} epochs, median of 3, seconds per epoch")
    print(f"{'model':5s} {'run':22s} {'s/epoch':>8s} {'x hand':>7s} {'final train loss':>17s}")
    for label, make in (("MLP", lambda: tabular_mlp(40, 10, seed=0)), ("CNN", SmallCNN)):
        hand = seconds(lambda make=make: hand_loop(make().cuda(), Xd, yd, args.epochs,
                                                   args.batch_size)) / args.epochs
        print(f"{label:5s} {'hand-written, fp32':22s} {hand:8.3f} {1.0:7.2f}")
        for precision in ("32", "bf16", "16"):
            for tricks, tname in ((Tricks.none(), "plain"), (Tricks.all(), "all tricks")):
                result = {}

                def run(make=make, tricks=tricks, precision=precision, result=result):
                    result["fit"] = fit(make(), (X, y), epochs=args.epochs,
                                        batch_size=args.batch_size, tricks=tricks, lr=1e-3,
                                        optimizer=lambda p, lr: torch.optim.Adam(p, lr=lr),
                                        device="cuda", precision=precision, log="none")
                s = seconds(run) / args.epochs
                loss = result["fit"].history.series("train_loss")[-1]
                print(f"{label:5s} {f'fit {tname}, {precision}':22s} {s:8.3f} {s / hand:7.2f} "
                      f"{loss:17.4f}")
    glm_seconds()
    sys.exit(tests.returncode)


if __name__ == "__main__":
    main()
