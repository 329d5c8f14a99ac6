"""Validation: the loss and the task's metrics of a model on held-out data."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from ..metrics import classification_metrics, regression_metrics


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable, prepare: Callable, head: str,
             num_classes: int | None, shift: nn.Module | None = None) -> dict:
    """``val_loss`` and the metrics of ``model`` on the ``(x, y)`` batches of the
    validation data, in eval mode (the model is put back in train mode); ``shift`` moves
    a classifier's logits to the prior it predicts under (see ``FitResult.predictor``).
    The metrics are computed on the CPU, once."""
    model.eval()
    outs, ys = [], []
    for xb, yb in batches:
        outs.append(model(prepare(xb)).float())
        ys.append(yb)
    out, y = torch.cat(outs), torch.cat(ys)
    if shift is not None:
        out = shift(out)
    model.train()
    out, y = out.cpu(), y.cpu()
    if head == "softmax":
        if num_classes > out.shape[1]:
            raise ValueError(f"val_data: label {num_classes - 1} is beyond the model's "
                             f"{out.shape[1]} outputs")
        out = out[:, :num_classes]
        val = nn.functional.cross_entropy(out, y).item()
        return {"val_loss": val, **classification_metrics(y.numpy(), out.softmax(1).numpy())}
    pred = out.reshape(y.shape)
    return {"val_loss": nn.functional.mse_loss(pred, y.float()).item(),
            **regression_metrics(y.numpy(), pred.numpy())}
