"""Leslie Smith's rule on mnist1d: batch B vs 4B, same LR vs rescaled LR, 3 seeds.

An MLP (40-256-256-10) trained with SGD (momentum 0.9) for the same number of epochs
at batch size B with LR lr0, and at 4B with (a) lr0 and (b) ``scale_hparams`` (linear
rule: 4 x lr0). Reports final validation loss and accuracy, mean ± std over seeds.

Run: ``.venv/bin/python examples/leslie_rescaling.py [--epochs 30] [--seeds 3]``.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch import nn

from bagoftricks import RunningStandardizer, scale_hparams
from bagoftricks.data import mnist1d


def run(ds, batch: int, lr: float, epochs: int, seed: int) -> tuple[float, float]:
    std = RunningStandardizer().fit(torch.as_tensor(ds.X).split(512))
    X, y = std.transform(torch.as_tensor(ds.X)), torch.as_tensor(ds.y)
    Xv, yv = std.transform(torch.as_tensor(ds.X_rest)), torch.as_tensor(ds.y_rest)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(40, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                          nn.Linear(256, 10))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=gen).split(batch):
            opt.zero_grad()
            nn.functional.cross_entropy(model(X[idx]), y[idx]).backward()
            opt.step()
    with torch.no_grad():
        out = model(Xv)
        accuracy = (out.argmax(1) == yv).float().mean().item()
        return nn.functional.cross_entropy(out, yv).item(), accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.01)
    args = parser.parse_args()
    torch.set_num_threads(2)
    ds = mnist1d()
    big = 4 * args.batch
    rescaled = scale_hparams(args.lr, args.batch, big, momentum=0.9).lr
    runs = [(f"B={args.batch}, lr={args.lr:g}", args.batch, args.lr),
            (f"B={big}, same lr={args.lr:g}", big, args.lr),
            (f"B={big}, rescaled lr={rescaled:g}", big, rescaled)]
    print(f"mnist1d, SGD momentum 0.9, {args.epochs} epochs, {args.seeds} seeds")
    print(f"{'run':32s} {'val loss':>18s} {'val accuracy':>18s}")
    for name, batch, lr in runs:
        res = np.array([run(ds, batch, lr, args.epochs, s) for s in range(args.seeds)])
        m, sd = res.mean(0), res.std(0)
        print(f"{name:32s} {m[0]:10.4f} ± {sd[0]:.4f} {m[1]:10.4f} ± {sd[1]:.4f}")


if __name__ == "__main__":
    main()
