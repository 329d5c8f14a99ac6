"""Reading labels: arrays, tensors and lists as they are, an iterable of batches
(``(x, y)``, ``(x, y, w)`` or bare ``y``) one batch at a time, or a dataset's labels."""

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


def dataset_labels(dataset, labels=None) -> np.ndarray:
    """The training labels: ``labels`` when given, else the dataset's ``targets`` (torchvision)
    or ``labels``/``label`` column (Hugging Face ``datasets``), a ``TensorDataset``'s second
    tensor, or one pass reading ``dataset[i]`` (a pair ``(x, y)`` or a dict with
    ``"labels"``/``"label"``). Raises ``ValueError`` saying how to pass them otherwise."""
    if labels is None:
        labels = _labels_of(dataset)
    elif hasattr(dataset, "__len__") and len(labels) != len(dataset):
        raise ValueError(f"labels: {len(labels)} labels for a training set of "
                         f"{len(dataset)} rows")
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    out = np.asarray(labels)
    if out.ndim != 1 or out.size == 0 or out.dtype.kind not in "biuf":
        raise ValueError(f"labels: expected a non-empty 1-D numeric array, got shape "
                         f"{out.shape} of {out.dtype}")
    if out.dtype.kind == "f" and not np.all(np.isfinite(out)):
        raise ValueError("labels: contain NaN or infinite values")
    return out


def _labels_of(dataset):
    for name in ("targets", "labels", "label"):
        value = getattr(dataset, name, None)
        if value is not None and not callable(value):
            return value
    if getattr(dataset, "column_names", None) is not None:  # a datasets.Dataset
        for name in ("labels", "label"):
            if name in dataset.column_names:
                return dataset[name]
    if isinstance(dataset, torch.utils.data.TensorDataset) and len(dataset.tensors) > 1:
        return dataset.tensors[1]
    if dataset is None or not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
        raise ValueError(f"labels: cannot read the training labels from "
                         f"{type(dataset).__name__} (not a map-style dataset); pass labels=")
    return [_label_of(dataset[i], type(dataset).__name__) for i in range(len(dataset))]


def _label_of(item, name: str):
    if isinstance(item, dict):
        for key in ("labels", "label"):
            if key in item:
                return np.asarray(item[key]).item()
    elif isinstance(item, (tuple, list)) and len(item) >= 2:
        return np.asarray(item[1]).item()
    raise ValueError(f"labels: the items of {name} are neither (x, y) pairs nor dicts with "
                     f"'labels'; pass labels=")
