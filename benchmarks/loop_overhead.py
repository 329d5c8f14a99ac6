"""What ``fit`` costs over a hand-written loop on the same model, data and batches.

One thread, mnist1d made exactly balanced (so oversampling adds no samples), batches of
64; the 128-64 MLP of the demo and the mnist1d reference CNN. Every variant trains from
the same initial weights on the same batch order (``ShuffleSampler``'s, a pure function
of the seed and the epoch); the variants run interleaved, in shuffled order, and the
table reports the median seconds per epoch and the ratio to the hand-written loop (torch's
Adam, the standard recipe). ``fit`` runs with that same optimizer, so the ratio is the
loop's and the tricks' cost alone; then with its default optimizer (Adam, fused), against
a hand-written loop with the fused Adam too. If Lightning is installed, its loop on the
same work is timed as another anchor.

    python benchmarks/loop_overhead.py [--epochs 2] [--repeats 7]
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from bagoftricks import Tricks, clip_grad_norm_, fit
from bagoftricks.data import load
from bagoftricks.models import tabular_mlp
from bagoftricks.sampler import ShuffleSampler


def balanced_mnist1d() -> tuple[torch.Tensor, torch.Tensor]:
    ds = load("mnist1d")
    n = np.bincount(ds.y).min()
    keep = np.sort(np.concatenate([np.flatnonzero(ds.y == c)[:n] for c in range(10)]))
    return torch.as_tensor(ds.X[keep]), torch.as_tensor(ds.y[keep])


class SmallCNN(nn.Module):
    """The mnist1d reference CNN (``ConvBase`` of the mnist1d repository's models): three
    1-D convolutions of 25 channels with stride 2 and a linear head (5,535 parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(1, 25, 5, stride=2, padding=1)
        self.conv2 = nn.Conv1d(25, 25, 3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(25, 25, 3, stride=2, padding=1)
        self.head = nn.Linear(125, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x.unsqueeze(1)))
        x = F.relu(self.conv2(x))
        return self.head(F.relu(self.conv3(x)).flatten(1))


def adam(params, lr):
    """torch's Adam as a user writes it (not fused)."""
    return torch.optim.Adam(params, lr=lr)


def hand_loop(model, X, y, epochs, batch_size, extras: bool, fused: bool = False):
    """The standard recipe: Adam at 1e-2, loss summed on the device, one read per
    epoch; ``extras``: with ``clip_grad_norm_`` and per-tensor centralization."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, fused=fused or None)
    sampler = ShuffleSampler(len(y), seed=0, num_replicas=1, rank=0)
    params = [p for p in model.parameters()]
    for epoch in range(epochs):
        total = torch.zeros((), dtype=torch.float64)
        for batch, _ in sampler.global_batches(batch_size, epoch):
            loss = F.cross_entropy(model(X[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            if extras:
                clip_grad_norm_(params, 1.0)
                with torch.no_grad():
                    for p in params:
                        if p.grad is not None and p.grad.ndim > 1:
                            p.grad -= p.grad.mean(dim=tuple(range(1, p.grad.ndim)),
                                                  keepdim=True)
            opt.step()
            total += loss.detach() * len(batch)
        total.item()


def lightning_loop(model, X, y, epochs, batch_size):
    import logging
    import warnings

    import lightning as L

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = model

        def training_step(self, batch, _):
            xb, yb = batch
            return F.cross_entropy(self.model(xb), yb)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-2)

    class Batches:  # an iterable of (x, y): one loader (a list would be many loaders)
        def __init__(self):
            sampler = ShuffleSampler(len(y), seed=0, num_replicas=1, rank=0)
            self.batches = [(X[b], y[b]) for b, _ in sampler.global_batches(batch_size, 0)]

        def __iter__(self):
            return iter(self.batches)

        def __len__(self):
            return len(self.batches)

    batches = Batches()
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(Module(), train_dataloaders=batches)


def variants(X, y, epochs, batch_size):
    def fit_with(tricks, optimizer=adam):
        return lambda m: fit(m, (X, y), epochs=epochs, batch_size=batch_size, tricks=tricks,
                             optimizer=optimizer, log="none")

    out = {
        "hand-written loop": lambda m: hand_loop(m, X, y, epochs, batch_size, False),
        "hand-written + clip + centralize": lambda m: hand_loop(m, X, y, epochs, batch_size,
                                                                 True),
        "fit, Tricks.none()": fit_with(Tricks.none()),
        "fit, Tricks() (defaults)": fit_with(Tricks()),
        "fit, Tricks.all()": fit_with(Tricks.all()),
        "hand-written loop, fused Adam": lambda m: hand_loop(m, X, y, epochs, batch_size,
                                                              False, fused=True),
        "fit, Tricks.all(), fused Adam (default)": fit_with(Tricks.all(), None),
    }
    try:
        import lightning  # noqa: F401
        out["Lightning Trainer"] = lambda m: lightning_loop(m, X, y, epochs, batch_size)
    except ImportError:
        pass
    return out


def measure(name, make_model, X, y, epochs, batch_size, repeats):
    runs = variants(X, y, epochs, batch_size)
    times = {k: [] for k in runs}
    base = make_model()
    for run in runs.values():  # warm-up: first-call imports and compilation
        run(copy.deepcopy(base))
    for _ in range(repeats):
        order = list(runs)
        random.shuffle(order)
        for key in order:
            model = copy.deepcopy(base)
            t0 = time.perf_counter()
            runs[key](model)
            times[key].append((time.perf_counter() - t0) / epochs)
    anchor = statistics.median(times["hand-written loop"])
    print(f"\n{name}: {len(y)} samples, batches of {batch_size}, {epochs} epochs x "
          f"{repeats} interleaved repeats, 1 thread")
    print(f"{'variant':40s} {'s/epoch':>9s} {'spread':>8s} {'x hand-written':>15s}")
    for key, t in times.items():
        med = statistics.median(t)
        spread = (max(t) - min(t)) / 2
        print(f"{key:40s} {med:9.4f} {spread:8.4f} {med / anchor:15.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    random.seed(0)
    X, y = balanced_mnist1d()
    measure("mnist1d MLP 128-64", lambda: tabular_mlp(40, 10, (128, 64), seed=0), X, y,
            args.epochs, 64, args.repeats)
    torch.manual_seed(0)
    measure("mnist1d reference CNN (3 conv + linear)", SmallCNN, X, y, args.epochs, 64,
            args.repeats)
