"""Class imbalance by weighting (DESIGN.md chapter 3).

Balanced weights ``w_c = n / (K * n_c)`` (scikit-learn's ``"balanced"``) and a weighted
loss ``sum_i w_i * l_i / sum_i w_i``: the weighted gradient descent of the chapter, whose
gradient is ``sum_i w_i grad l_i / sum_i w_i``. Oversampling lives in ``sampler.py``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .labels import as_numpy, label_batches

SCHEMES = ("balanced", "uniform")
LOSSES = ("cross_entropy", "bce_with_logits", "mse")


def class_counts(y) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct labels and their counts, from labels or an iterable of batches."""
    counts: dict = {}
    for yb, _ in label_batches(y):
        if yb.ndim != 1:
            raise ValueError(f"y: labels must be 1-D, got shape {yb.shape}")
        if yb.dtype.kind == "f" and not np.all(np.isfinite(yb)):
            raise ValueError("y: contains NaN or infinite labels")
        values, n = np.unique(yb, return_counts=True)
        for v, c in zip(values.tolist(), n.tolist(), strict=True):
            counts[v] = counts.get(v, 0) + c
    if not counts:
        raise ValueError("y: empty, no labels to weight")
    classes = np.array(sorted(counts))
    return classes, np.array([counts[c] for c in classes.tolist()], dtype=np.int64)


def class_weights(y, scheme: str = "balanced", classes=None, *,
                  num_classes: int | None = None) -> np.ndarray:
    """Per-class weights aligned with ``classes`` (default: the sorted distinct labels).

    ``num_classes=K`` (class indices ``0..K-1``) returns the full length-K vector a
    loss indexes by label, with weight 0 for a class absent from ``y``.

    ``"balanced"``: ``n / (K * n_c)`` over the K classes present, equal to scikit-learn's
    ``compute_class_weight("balanced", classes=classes, y=y)``; a class of ``classes``
    never seen in ``y`` has no defined weight and is an error (as in scikit-learn), so
    is a label missing from ``classes``. ``"uniform"``: all ones. ``y`` may be labels
    (any sortable dtype, strings included) or an iterable of label batches.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme: expected one of {SCHEMES}, got {scheme!r}")
    seen, counts = class_counts(y)
    if num_classes is not None:
        if classes is not None:
            raise ValueError("num_classes: give either classes or num_classes, not both")
        if seen.dtype.kind not in "iu" or seen[0] < 0 or seen[-1] >= num_classes:
            raise ValueError(f"y: labels must be class indices 0..{num_classes - 1} with "
                             f"num_classes={num_classes}")
        full = np.zeros(num_classes)
        full[seen] = class_weights(y, scheme)
        return full
    if classes is None:
        classes = seen
    else:
        classes = as_numpy(classes, "classes")
        if classes.ndim != 1 or len(classes) == 0:
            raise ValueError("classes: expected a non-empty 1-D list of labels")
        extra = np.setdiff1d(seen, classes)
        if len(extra):
            raise ValueError(f"classes: does not include the labels {extra.tolist()[:5]} of y")
    if scheme == "uniform":
        return np.ones(len(classes))
    missing = np.setdiff1d(classes, seen)
    if len(missing):
        raise ValueError(f"classes: {missing.tolist()[:5]} never occur in y, so a balanced "
                         "weight n / (K * n_c) is undefined for them")
    weights = counts.sum() / (len(seen) * counts.astype(np.float64))
    return weights[np.searchsorted(seen, classes)]


def sample_weights(y, scheme: str = "balanced") -> np.ndarray:
    """Per-sample weights ``w_i = class_weight[y_i]`` (scikit-learn's
    ``compute_sample_weight``)."""
    y = as_numpy(y, "y")
    classes, _ = class_counts(y)
    return class_weights(y, scheme)[np.searchsorted(classes, y)]


def weighted_loss(input: torch.Tensor, target: torch.Tensor, loss: str = "cross_entropy", *,
                  sample_weight: torch.Tensor | None = None,
                  class_weight: torch.Tensor | None = None, return_weight: bool = False):
    """``sum_i w_i l_i / sum_i w_i``: a weighted mean of per-sample losses.

    ``return_weight=True`` returns ``(mean, sum_i w_i)`` (the batch's size, an int, when
    unweighted): what a loop needs to combine batches or ranks exactly.

    ``loss``: ``"cross_entropy"`` (``input`` (n, K) logits, ``target`` (n,) class indices),
    ``"bce_with_logits"`` (``input``/``target`` (n,) or (n, d), targets in [0, 1]), or
    ``"mse"`` ((n,) or (n, d); per-sample loss averaged over columns). ``w_i`` is
    ``sample_weight[i]`` times ``class_weight[target_i]`` (for BCE, ``class_weight`` is
    ``[w_negative, w_positive]`` applied per element). For cross-entropy with only
    ``class_weight`` this equals ``F.cross_entropy(..., weight=class_weight)``.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss: expected one of {LOSSES}, got {loss!r}")
    if input.shape[0] != target.shape[0]:
        raise ValueError(f"target: {target.shape[0]} rows for {input.shape[0]} predictions")
    if loss == "cross_entropy" and sample_weight is None and class_weight is None \
            and input.shape[0]:  # unweighted: torch's fused mean
        mean = F.cross_entropy(input, target)
        return (mean, input.shape[0]) if return_weight else mean
    if loss == "cross_entropy":
        per = F.cross_entropy(input, target, reduction="none")
        w = per.new_ones(per.shape)
        if class_weight is not None:
            w = w * class_weight.to(per)[target]
    elif loss == "bce_with_logits":
        per = F.binary_cross_entropy_with_logits(input, target.to(input.dtype), reduction="none")
        w = per.new_ones(per.shape)
        if class_weight is not None:
            cw = class_weight.to(per)
            if cw.shape != (2,):
                raise ValueError("class_weight: expected [w_negative, w_positive] for BCE")
            w = torch.where(target.to(per.dtype) > 0.5, cw[1], cw[0]).expand_as(per)
    else:
        if class_weight is not None:
            raise ValueError("class_weight: not defined for mse (use sample_weight)")
        if input.shape != target.shape:  # broadcasting (n, 1) against (n,) is a silent bug
            raise ValueError(f"target: shape {tuple(target.shape)} does not match the "
                             f"input's {tuple(input.shape)}")
        per = F.mse_loss(input, target.to(input.dtype), reduction="none")
        if per.ndim > 1:
            per = per.reshape(per.shape[0], -1).mean(1)
        w = per.new_ones(per.shape)
    if sample_weight is not None:
        sw = sample_weight.to(per)
        if sw.shape != (per.shape[0],):
            raise ValueError(f"sample_weight: expected shape ({per.shape[0]},), got "
                             f"{tuple(sw.shape)}")
        w = w * (sw if per.ndim == 1 else sw[:, None])
    # A batch whose weights are all zero contributes a zero loss, not 0/0 = NaN.
    total = w.sum()
    mean = (w * per).sum() / total.clamp_min(torch.finfo(per.dtype).tiny)
    return (mean, total) if return_weight else mean
