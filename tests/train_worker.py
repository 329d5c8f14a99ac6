"""Run ``fit`` in a subprocess; optionally SIGKILL itself at a given optimizer step.

Usage: train_worker.py CHECKPOINT_DIR OUT.pt [--resume] [--kill-at-step N] [--dataset]
Writes the final model state and history to OUT.pt. ``--dataset`` passes the data as a
plain map-style Dataset (labels found by one pass) instead of tensors.
"""

import os
import signal
import sys

import numpy as np
import torch

from bagoftricks import Tricks, fit
from bagoftricks.models import tabular_mlp


def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6)).astype(np.float32) * [1, 10, 100, 1, 1, 1]
    y = (X[:, 0] + 0.1 * X[:, 1] > 1.2).astype(np.int64)  # ~12% positives
    return X, y


class Rows(torch.utils.data.Dataset):
    """(x, y) items and nothing else: no ``targets``, so ``fit`` reads the labels."""

    def __init__(self, X, y):
        self.X, self.y = torch.as_tensor(X), torch.as_tensor(y)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.X[i], self.y[i]


def inputs(X, y, dataset: bool):
    return Rows(X, y) if dataset else (X, y)


def main() -> None:
    torch.set_num_threads(1)
    ckpt, out = sys.argv[1], sys.argv[2]
    resume = "--resume" in sys.argv
    kill_at = int(sys.argv[sys.argv.index("--kill-at-step") + 1]) if "--kill-at-step" in \
        sys.argv else None
    if kill_at is not None:
        original = torch.optim.Adam.step
        calls = [0]

        def step(self, *args, **kwargs):
            calls[0] += 1
            if calls[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)  # no clean-up, like a real crash
            return original(self, *args, **kwargs)
        torch.optim.Adam.step = step
    X, y = data()
    model = tabular_mlp(6, 2, (16,), seed=0)
    dataset = "--dataset" in sys.argv
    result = fit(model, inputs(X[:240], y[:240], dataset),
                 val_data=inputs(X[240:], y[240:], dataset), epochs=4,
                 batch_size=16, tricks=Tricks.all(), checkpoint_dir=ckpt, resume=resume,
                 checkpoint_every=5, seed=3, log="none")
    history = [{k: v for k, v in e.items() if k != "seconds"} for e in result.history.epochs]
    torch.save({"model": model.state_dict(), "history": history}, out)


if __name__ == "__main__":
    main()
