"""RAdam on raw, unstandardized features: none vs clipping vs standardization, 5 seeds.

scikit-learn's breast cancer (30 features spanning about 1e-3 to 4e3), an MLP
(30-64-64-1) trained full-batch-free with minibatches of 32 by RAdam at a high learning
rate, three ways: raw features without clipping, raw with ``clip_grad_norm_`` (max norm
1), and standardized by ``RunningStandardizer``. Reports the final training loss, steps
with a non-finite loss, and the largest gradient norm; saves the loss curves as a PNG.

Run: ``.venv/bin/python examples/radam_raw_features.py [--lr 0.05] [--out radam.png]``.
"""

from __future__ import annotations

import argparse
import math

import matplotlib
import numpy as np
import torch
from sklearn.datasets import load_breast_cancer
from torch import nn

from bagoftricks import RunningStandardizer, clip_grad_norm_

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

VARIANTS = ("raw, no clipping", "raw + clipping", "standardized")


def train(variant: str, seed: int, lr: float, epochs: int):
    X, y = load_breast_cancer(return_X_y=True)
    X, y = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)
    if variant == "standardized":
        X = RunningStandardizer().fit(X.split(64)).transform(X)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(30, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                          nn.Linear(64, 1))
    opt = torch.optim.RAdam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    curve, nan_steps, max_norm = [], 0, 0.0
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=gen).split(32):
            opt.zero_grad()
            loss = nn.functional.binary_cross_entropy_with_logits(model(X[idx])[:, 0], y[idx])
            loss.backward()
            norm = torch.linalg.vector_norm(torch.stack([
                torch.linalg.vector_norm(p.grad) for p in model.parameters()])).item()
            if not math.isfinite(loss.item()):
                nan_steps += 1
            elif math.isfinite(norm):
                max_norm = max(max_norm, norm)
            if variant == "raw + clipping":
                clip_grad_norm_(model.parameters(), max_norm=1.0)
            opt.step()
        with torch.no_grad():
            curve.append(nn.functional.binary_cross_entropy_with_logits(
                model(X)[:, 0], y).item())
    return curve, nan_steps, max_norm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default="radam_raw_features.png")
    args = parser.parse_args()
    torch.set_num_threads(2)
    fig, ax = plt.subplots(figsize=(7, 4))
    print(f"breast cancer, RAdam lr={args.lr:g}, batches of 32, {args.epochs} epochs, "
          f"{args.seeds} seeds")
    print(f"{'variant':20s} {'final loss (median, max)':>28s} {'NaN steps':>10s} "
          f"{'max grad norm':>14s}")
    for color, variant in zip(("C3", "C1", "C2"), VARIANTS, strict=True):
        finals, nans, norms = [], 0, 0.0
        for seed in range(args.seeds):
            curve, nan_steps, max_norm = train(variant, seed, args.lr, args.epochs)
            finals.append(curve[-1])
            nans, norms = nans + nan_steps, max(norms, max_norm)
            ax.plot(curve, color=color, alpha=0.6, label=variant if seed == 0 else None)
        f = np.array(finals)
        print(f"{variant:20s} {np.median(f):14.4g} {np.nanmax(f):13.4g} {nans:10d} "
              f"{norms:14.4g}")
    ax.set(yscale="log", xlabel="epoch", ylabel="training BCE",
           title=f"RAdam (lr {args.lr:g}) on raw breast-cancer features")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
