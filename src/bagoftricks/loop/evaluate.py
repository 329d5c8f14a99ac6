"""Validation: the loss and the task's metrics of a model on held-out data."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

from ..calibration import calibrated_nll, fit_class_bias, fit_temperature
from ..metrics import classification_metrics, regression_metrics


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable, prepare: Callable, head: str,
             num_classes: int | None, shift: nn.Module | None = None,
             seen: torch.Tensor | None = None, class_bias: bool = False) -> dict:
    """``val_loss`` and the metrics of ``model`` on the ``(x, y)`` batches of the
    validation data, in eval mode (the model is put back in train mode); ``shift`` moves
    a classifier's logits to the prior it predicts under (see ``FitResult.predictor``).
    A classifier's record adds the ``temperature`` fitted to these logits (on the rows of
    the classes ``seen`` in training: the model cannot predict the others; 1 where the
    logits are not finite) and the ``calibrated_val_loss`` under it; with ``class_bias``
    also the per-class ``class_bias`` fitted after it (``fit_class_bias``; the
    calibrated loss stays the temperature's, so the kept epoch does not move). The metrics are
    those of the scores under the shifted prior without the temperature (as before it
    was fitted: with a prior shift, dividing by T moves decisions toward the prior), on
    the CPU, once."""
    model.eval()
    outs, ys = [], []
    for xb, yb in batches:
        outs.append(model(prepare(xb)).float())
        ys.append(yb)
    out, y = torch.cat(outs), torch.cat(ys)
    model.train()
    out, y = out.cpu(), y.cpu()
    if head == "softmax":
        if num_classes > out.shape[1]:
            raise ValueError(f"val_data: label {num_classes - 1} is beyond the model's "
                             f"{out.shape[1]} outputs")
        c = shift.shift.cpu() if shift is not None else torch.zeros(out.shape[1])
        raw, c = out[:, :num_classes], c[:num_classes]
        among = None if seen is None else seen.cpu()  # the classes training had
        fitted = torch.ones(len(y), dtype=torch.bool) if among is None else among[y]
        finite = bool(torch.isfinite(raw).all())
        usable = finite and bool(fitted.any())
        t = fit_temperature(raw[fitted], y[fitted], c, among) if usable else 1.0
        scores = raw + c
        val_loss = nn.functional.cross_entropy(scores, y).item()
        record = {"val_loss": val_loss,
                  "calibrated_val_loss": calibrated_nll(raw, y, t, c) if finite else val_loss,
                  "temperature": t}
        if class_bias:
            record["class_bias"] = (fit_class_bias(raw[fitted] / t, y[fitted], c, among)
                                    if usable else np.zeros(num_classes)).tolist()
        return {**record, **classification_metrics(y.numpy(), scores.softmax(1).numpy())}
    pred = out.reshape(y.shape)
    return {"val_loss": nn.functional.mse_loss(pred, y.float()).item(),
            **regression_metrics(y.numpy(), pred.numpy())}
