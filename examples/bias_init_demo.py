"""Last-layer bias initialization on imbalanced bundled data: step-0 and step-100 loss.

Run: ``.venv/bin/python examples/bias_init_demo.py [--steps 100]``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bagoftricks import init_bias_, initial_loss
from bagoftricks.data import Dataset, breast_cancer_rare, digits_zipf


@dataclass
class BiasRow:
    dataset: str
    kind: str
    best_label_only: float
    step0_zero_bias: float
    step0_init_bias: float
    final_zero_bias: float
    final_init_bias: float


def _mlp(p: int, out: int, seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(p, 64), nn.ReLU(), nn.Linear(64, out))


def _train_losses(ds: Dataset, init: bool, steps: int, seed: int) -> tuple[float, float]:
    X = (ds.X - ds.X.mean(0)) / np.where(ds.X.std(0) > 0, ds.X.std(0), 1.0)
    X, y = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(ds.y)
    binary = ds.num_classes == 2
    model = _mlp(X.shape[1], 1 if binary else ds.num_classes, seed)
    kind = "sigmoid" if binary else "softmax"
    if init:
        init_bias_(model[-1], ds.y, kind)
    else:
        nn.init.zeros_(model[-1].bias)
    if binary:
        def loss_fn(out, t):
            return nn.functional.binary_cross_entropy_with_logits(out[:, 0], t.float())
    else:
        loss_fn = nn.functional.cross_entropy
    with torch.no_grad():
        first = float(loss_fn(model(X), y))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(len(y), (32,), generator=gen)
        opt.zero_grad()
        loss_fn(model(X[idx]), y[idx]).backward()
        opt.step()
    with torch.no_grad():
        return first, float(loss_fn(model(X), y))


def bias_init_table(steps: int = 100, seed: int = 0) -> list[BiasRow]:
    """Step-0 and step-``steps`` training loss with zero bias vs ``init_bias_``."""
    rows = []
    for ds in (breast_cancer_rare(), digits_zipf()):
        kind = "sigmoid" if ds.num_classes == 2 else "softmax"
        zero = _train_losses(ds, False, steps, seed)
        init = _train_losses(ds, True, steps, seed)
        rows.append(BiasRow(ds.name, kind, initial_loss(ds.y, kind), zero[0], init[0],
                            zero[1], init[1]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    header = ("dataset", "kind", "label-only", "step0 b=0", "step0 init",
              f"step{args.steps} b=0", f"step{args.steps} init")
    print(" | ".join(header))
    for r in bias_init_table(args.steps, args.seed):
        print(" | ".join([r.dataset, r.kind] + [f"{v:.4f}" for v in (
            r.best_label_only, r.step0_zero_bias, r.step0_init_bias, r.final_zero_bias,
            r.final_init_bias)]))


if __name__ == "__main__":
    main()
