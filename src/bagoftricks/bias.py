"""Last-layer bias initialization (DESIGN.md chapter 2).

With the last layer's weights small, its bias alone sets the first predictions; the
right bias makes the step-0 loss equal the best label-only loss (``initial_loss``):

- ``"linear"`` (MSE):   ``b = weighted mean of y`` per output; loss = ``Var(y)``.
- ``"sigmoid"`` (BCE):  ``b = log((p + eps) / (1 - p + eps))`` per column; loss = ``H(p)``.
- ``"softmax"`` (CE):   ``b_k = log(p_k + eps) - mean_j log(p_j + eps)``; loss = ``H(p)``.

Labels may be a tensor, array or list, or an iterable of batches (for example a
DataLoader yielding ``(x, y)`` or ``(x, y, w)``); batches are reduced one at a time, so
the labels are never materialized.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import distributed
from .labels import label_batches
from .moments import chan_merge

KINDS = ("linear", "sigmoid", "softmax")


@dataclass
class LabelStats:
    """Weighted first and second moments of the labels, merged batch by batch.

    ``total`` is the sum of weights, ``mean`` the weighted per-column mean (for softmax
    the class prior) and ``m2`` the weighted sum of squared deviations (linear only).
    """

    kind: str
    total: float
    mean: np.ndarray
    m2: np.ndarray | None

    @property
    def var(self) -> np.ndarray:
        return self.m2 / self.total


def _check_weights(w, n: int) -> np.ndarray:
    if w is None:
        return np.ones(n)
    w = w.astype(np.float64, copy=False).reshape(-1) if w.dtype.kind in "biuf" else None
    if w is None:
        raise ValueError("sample_weight: must be numeric")
    if w.shape[0] != n:
        raise ValueError(f"sample_weight: has {w.shape[0]} entries for {n} labels")
    if not np.all(np.isfinite(w)):
        raise ValueError("sample_weight: contains NaN or infinite values")
    if np.any(w < 0):
        raise ValueError(f"sample_weight: negative weight {w.min()} at index {int(np.argmin(w))}")
    return w


def _check_finite(y: np.ndarray) -> np.ndarray:
    if y.dtype.kind not in "biuf":
        raise ValueError(f"y: labels must be numeric, got dtype {y.dtype}")
    y = y.astype(np.float64, copy=False)
    bad = ~np.isfinite(y)
    if bad.any():
        raise ValueError(f"y: contains NaN or infinite values (first at flat index "
                         f"{int(np.flatnonzero(bad)[0])})")
    return y


def _batch_moments(kind: str, y: np.ndarray, w: np.ndarray, num_classes: int | None):
    """Weighted column sums (and, for linear, the batch mean and M2) of one batch."""
    if kind == "softmax":
        if y.ndim == 1:
            if np.any(y != np.round(y)) or np.any(y < 0):
                raise ValueError("y: softmax labels must be non-negative whole numbers "
                                 "(class indices)")
            labels = y.astype(np.int64)
            top = int(labels.max()) + 1 if labels.size else 0
            if num_classes is not None and top > num_classes:
                raise ValueError(f"y: label {top - 1} out of range for num_classes={num_classes}")
            if num_classes is None and top > 1000 + 2 * len(np.unique(labels)):
                # a bincount up to a stray ID-like label would take gigabytes
                raise ValueError(f"y: label {top - 1} is far beyond the "
                                 f"{len(np.unique(labels))} distinct labels; class indices must "
                                 "run 0..K-1 (pass num_classes=K if K really is that large)")
            return np.bincount(labels, weights=w, minlength=num_classes or 0), None, None
        if y.ndim != 2:
            raise ValueError(f"y: softmax targets must be (n,) class indices or (n, K) "
                             f"probabilities, got shape {y.shape}")
        if num_classes is not None and y.shape[1] != num_classes:
            raise ValueError(f"y: has {y.shape[1]} columns but num_classes={num_classes}")
        if np.any(y < 0) or not np.allclose(y.sum(1), 1.0, atol=1e-6):
            raise ValueError("y: (n, K) softmax targets must be non-negative rows summing to 1")
        return w @ y, None, None
    if y.ndim not in (1, 2):
        raise ValueError(f"y: {kind} targets must have shape (n,) or (n, d), got {y.shape}")
    y2 = y.reshape(len(y), -1)
    if kind == "sigmoid" and (np.any(y2 < 0) or np.any(y2 > 1)):
        raise ValueError("y: sigmoid targets must lie in [0, 1] (0/1 labels or probabilities)")
    sums = w @ y2
    if kind != "linear":
        return sums, None, None
    wsum = w.sum()
    mean = sums / wsum if wsum > 0 else np.zeros_like(sums)
    return sums, mean, w @ (y2 - mean) ** 2


def label_stats(y, kind: str, sample_weight=None, num_classes: int | None = None) -> LabelStats:
    """Reduce labels (arrays or an iterable of batches) to the statistics bias init needs."""
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 2):
        raise ValueError(f"num_classes: expected an int >= 2, got {num_classes!r}")
    total, sums, mean, m2, column, seen = 0.0, None, None, None, None, 0
    for yb, wb in label_batches(y, sample_weight):
        yb = _check_finite(yb)
        if yb.ndim == 0:
            raise ValueError("y: expected an array of labels, got a scalar")
        if yb.shape[0] == 0:
            continue
        wb = _check_weights(wb, yb.shape[0])
        bsums, bmean, bm2 = _batch_moments(kind, yb, wb, num_classes)
        is_column = yb.ndim == 1
        grows = kind == "softmax" and is_column  # class indices: K may grow batch to batch
        if column is not None and (is_column != column or (len(bsums) != len(sums)
                                                           and not grows)):
            raise ValueError(f"y: batch of shape {yb.shape} does not match earlier batches")
        column = is_column if column is None else column
        seen += yb.shape[0]
        btotal = float(wb.sum())
        if sums is None:
            sums, mean, m2 = bsums, bmean, bm2
        else:
            if len(bsums) > len(sums):  # softmax labels: a batch saw a higher class
                sums = np.pad(sums, (0, len(bsums) - len(sums)))
            elif len(bsums) < len(sums):
                bsums = np.pad(bsums, (0, len(sums) - len(bsums)))
            sums = sums + bsums
            if kind == "linear" and btotal > 0:  # weighted counts, Chan's merge
                _, mean, m2 = chan_merge((total, mean, m2), (btotal, bmean, bm2))
        total += btotal
    if distributed.is_distributed():  # sharded labels: every rank gets the global stats
        seen, total, sums, mean, m2 = _reduce_over_ranks(kind, seen, total, sums, mean, m2)
    if seen == 0:
        raise ValueError("y: empty, no labels to initialize from")
    if total <= 0:
        raise ValueError("sample_weight: all weights are zero")
    if kind == "softmax" and len(sums) < 2:
        raise ValueError("y: softmax needs at least 2 classes; pass num_classes")
    return LabelStats(kind, total, mean if kind == "linear" else sums / total, m2)


def _reduce_over_ranks(kind, seen, total, sums, mean, m2):
    """Global label statistics from every rank's shard: counts and sums all-reduced, the
    linear kind's moments merged by Chan's rule (rank order, identical on every rank)."""
    local_width = torch.tensor([0.0 if sums is None else float(len(sums))], dtype=torch.float64)
    width = int(max(t.item() for t in distributed.all_gather(local_width)))

    def pad(a):
        a = np.zeros(width) if a is None else np.asarray(a, dtype=np.float64)
        return torch.as_tensor(np.pad(a, (0, width - len(a))))
    if kind == "linear":
        count = torch.full((width,), float(total), dtype=torch.float64)
        _, mu, s = distributed.merge_moments(count, pad(mean), pad(m2))
        mean, m2 = mu.numpy(), s.numpy()
    head = distributed.all_reduce_sum(torch.tensor([float(seen), float(total)],
                                                   dtype=torch.float64))
    sums = distributed.all_reduce_sum(pad(sums)).numpy()
    return int(head[0]), float(head[1]), sums, mean, m2


def _prior_stats(prior, kind: str) -> LabelStats:
    p = np.asarray(prior, dtype=np.float64).reshape(-1)
    if kind == "linear":
        raise ValueError("prior: a linear head has no label prior (give y)")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or (kind == "sigmoid" and np.any(p > 1)):
        raise ValueError(f"prior: expected probabilities, got {np.round(p, 6).tolist()}")
    if kind == "softmax" and (len(p) < 2 or abs(p.sum() - 1) > 1e-6):
        raise ValueError(f"prior: softmax needs K >= 2 class probabilities summing to 1, got "
                         f"{len(p)} summing to {p.sum():.6g}")
    return LabelStats(kind, 1.0, p, None)


def _bias_from_stats(stats: LabelStats, eps: float) -> np.ndarray:
    p = stats.mean
    if stats.kind == "linear":
        return p
    if stats.kind == "sigmoid":
        return np.log((p + eps) / (1.0 - p + eps))
    logp = np.log(p + eps)
    return logp - logp.mean()


def _check_eps(eps: float) -> float:
    if not (isinstance(eps, (int, float)) and np.isfinite(eps) and 0 < eps < 1):
        raise ValueError(f"eps: expected a number in (0, 1), got {eps!r}")
    return float(eps)


def bias_for(y, kind: str, sample_weight=None, eps: float = 1e-8, *,
             num_classes: int | None = None, dtype: torch.dtype | None = None,
             prior=None) -> torch.Tensor:
    """The last-layer bias that makes the step-0 loss the best label-only loss.

    Parameters
    ----------
    y : tensor, array, list, or iterable of batches ``(x, y)`` / ``(x, y, w)``
        ``"linear"``: real targets (n,) or (n, d). ``"sigmoid"``: 0/1 labels or
        probabilities (n,) or multi-label (n, d). ``"softmax"``: class indices (n,) in
        ``[0, K)`` or one-hot/probability rows (n, K).
    kind : {"linear", "sigmoid", "softmax"}
    sample_weight : (n,) non-negative weights, optional (arrays only).
    eps : keeps ``log(0)`` finite for a class never seen.
    num_classes : K for softmax class indices (default: largest label + 1).
    dtype : of the result (default: torch's default dtype).
    prior : the label distribution the loss sees, when it is not ``y``'s own (the
        effective prior of a balance trick, ``bagoftricks.prior.effective_prior``):
        softmax class probabilities (K,), or sigmoid positive rates (d,). ``y`` is then
        not read; the step-0 loss is the entropy of ``prior``.

    Returns
    -------
    torch.Tensor of shape (d,) (d = 1 for 1-D linear/sigmoid targets) or (K,).
    """
    eps = _check_eps(eps)
    if prior is not None:
        stats = _prior_stats(prior, kind)
    else:
        stats = label_stats(y, kind, sample_weight, num_classes)
    bias = _bias_from_stats(stats, eps)
    return torch.as_tensor(bias, dtype=dtype or torch.get_default_dtype())


def initial_loss(y, kind: str, sample_weight=None, eps: float = 1e-8, *,
                 num_classes: int | None = None, reduction: str = "mean") -> float:
    """The best label-only loss: what a model initialized by ``bias_for`` (with the same
    ``eps``) starts at, ``H(p)`` up to ``eps``.

    Linear: the weighted population variance of y (MSE). Sigmoid: the binary entropy
    ``H(p)`` of each column's positive rate (BCE). Softmax: the entropy of the class
    prior ``-sum p_k log p_k`` (CE). Samples are averaged with their weights (like a
    weighted loss normalized by the sum of weights). For several output columns,
    ``reduction="mean"`` averages over columns (torch's default ``reduction="mean"``
    of ``MSELoss``/``BCEWithLogitsLoss``) and ``"sum"`` adds them.
    """
    eps = _check_eps(eps)
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction: expected 'mean' or 'sum', got {reduction!r}")
    stats = label_stats(y, kind, sample_weight, num_classes)
    p = stats.mean
    # the model's probabilities at that bias: p moved by eps (never 0 or 1)
    if kind == "softmax":
        return float(-(p * np.log((p + eps) / (1 + len(p) * eps))).sum())
    if kind == "linear":
        per_column = stats.var
    else:
        q = (p + eps) / (1 + 2 * eps)
        per_column = -(p * np.log(q) + (1 - p) * np.log(1 - q))
    return float(per_column.mean() if reduction == "mean" else per_column.sum())


def init_bias_(layer: torch.nn.Module, y, kind: str, **kwargs) -> torch.Tensor:
    """Write ``bias_for(y, kind, **kwargs)`` into ``layer.bias`` in place and return it.

    ``layer`` is an ``nn.Linear`` or any module with a 1-D ``bias``. For softmax class
    indices, ``num_classes`` defaults to the bias length. The shapes must match.
    """
    bias = getattr(layer, "bias", None)
    if not isinstance(bias, torch.Tensor):
        raise ValueError(f"layer: {type(layer).__name__} has no bias tensor "
                         "(was it built with bias=False?)")
    if bias.ndim != 1:
        raise ValueError(f"layer: bias must be 1-D, got shape {tuple(bias.shape)}")
    if kind == "softmax":
        kwargs.setdefault("num_classes", bias.numel())
    value = bias_for(y, kind, **kwargs)
    if value.shape != bias.shape:
        raise ValueError(f"layer: bias has shape {tuple(bias.shape)} but the labels give "
                         f"{tuple(value.shape)} ({kind})")
    with torch.no_grad():
        bias.copy_(value.to(dtype=bias.dtype, device=bias.device))
    return bias
