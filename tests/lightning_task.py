"""A small imbalanced classification task as a LightningModule, for the integration tests
(in-process and in the multi-process scenarios)."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def data(n: int = 240, features: int = 5, rates=(0.75, 0.2, 0.05), seed: int = 0):
    """Features shifted by class, labels drawn at ``rates``; raw scale 100 for the first
    feature so that standardization matters."""
    g = torch.Generator().manual_seed(seed)
    y = torch.multinomial(torch.tensor(rates), n, replacement=True, generator=g)
    X = torch.randn(n, features, generator=g) + y[:, None].float()
    X[:, 0] = X[:, 0] * 100 + 50
    return X, y


def loaders(n: int = 240, batch_size: int = 32, seed: int = 0):
    X, y = data(n, seed=seed)
    Xv, yv = data(n // 2, seed=seed + 1)
    return (DataLoader(TensorDataset(X, y), batch_size=batch_size, shuffle=True),
            DataLoader(TensorDataset(Xv, yv), batch_size=batch_size))


class Classifier(pl.LightningModule):
    """An MLP; ``loss_fn`` replaces cross-entropy (``callback.loss`` for a balanced loss);
    ``call_self=False`` calls the network directly (bypassing the module's forward)."""

    def __init__(self, features: int = 5, classes: int = 3, lr: float = 1e-2,
                 loss_fn=None, call_self: bool = True, log_val: bool = True) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features, 16), nn.ReLU(), nn.Linear(16, classes))
        self.lr, self.loss_fn, self.call_self, self.log_val = lr, loss_fn, call_self, log_val
        self.seen: list[torch.Tensor] = []  # the training labels, batch by batch
        self.seen_index: list[torch.Tensor] = []  # the row indices, for (x, y, index) data
        self.losses: list[tuple[float, int]] = []  # (batch loss, batch size)

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch[:2]
        self.seen.append(y)
        if len(batch) > 2:
            self.seen_index.append(batch[2])
        logits = self(x) if self.call_self else self.net(x)
        loss = (self.loss_fn or F.cross_entropy)(logits, y)
        self.losses.append((loss.item(), len(y)))
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch[:2]
        if self.log_val:
            self.log("val_loss", F.cross_entropy(self(x), y), sync_dist=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def trainer(callbacks, max_epochs: int = 3, **kwargs) -> pl.Trainer:
    options = {"accelerator": "cpu", "devices": 1, "logger": False,
               "enable_checkpointing": False, "enable_progress_bar": False,
               "enable_model_summary": False, "num_sanity_val_steps": 0, **kwargs}
    return pl.Trainer(max_epochs=max_epochs, callbacks=callbacks, **options)
