"""Reading labels: arrays, tensors and lists as they are, or an iterable of batches
(``(x, y)``, ``(x, y, w)`` or bare ``y``) one batch at a time."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch


def as_numpy(value, name: str) -> np.ndarray:
    """A NumPy view or copy of a tensor, array or list; ``name`` labels the error."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype == torch.bfloat16:
            value = value.float()
        return value.numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: cannot be read as an array ({err})") from None


def label_batches(y, sample_weight=None):
    """Yield ``(y, w)`` NumPy pairs from arrays or from an iterable of batches."""
    if isinstance(y, (torch.Tensor, np.ndarray, list, tuple)):
        yield as_numpy(y, "y"), None if sample_weight is None else as_numpy(
            sample_weight, "sample_weight")
        return
    if not isinstance(y, Iterable) or isinstance(y, (str, bytes)):
        raise ValueError(f"y: expected labels (tensor, array, list) or an iterable of batches, "
                         f"got {type(y).__name__}")
    if sample_weight is not None:
        raise ValueError("sample_weight: with an iterable of batches, pass weights as the "
                         "third element of each batch (x, y, w) instead")
    for batch in y:
        if isinstance(batch, (tuple, list)):
            if len(batch) < 2:
                raise ValueError("y: a batch tuple must be (x, y) or (x, y, w)")
            weight = as_numpy(batch[2], "sample_weight") if len(batch) > 2 else None
            yield as_numpy(batch[1], "y"), weight
        else:
            yield as_numpy(batch, "y"), None
