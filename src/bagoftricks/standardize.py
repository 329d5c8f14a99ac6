"""Batch-at-a-time standardization (DESIGN.md chapter 6).

Never store a standardized copy: accumulate per-feature count, mean and M2 in float64
one batch at a time and merge them by Chan et al.'s rule
``delta = mean_b - mean_a; mean = mean_a + delta * n_b / n;
M2 = M2_a + M2_b + delta**2 * n_a * n_b / n``, then standardize each batch as it is
loaded. Zero-variance features get scale 1.
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from . import distributed
from .kernels import shifted_moments
from .moments import chan_merge

_POLICIES = ("raise", "omit")
PER = ("feature", "channel")  # what the statistics are per; see ``feature_axis``
TRAINING_FLOOR = 0.25  # the scale floor training uses (README: image-like inputs)


def standardize_per(value, name: str = "standardize") -> str | None:
    """What a ``standardize`` switch asks for: ``"feature"`` (also ``True``), ``"channel"``
    or ``None`` (``False``); anything else is one error naming ``name``."""
    if value is False or value is None:
        return None
    if value is True:
        return "feature"
    if value not in PER:
        raise ValueError(f"{name}: expected True, False or one of {PER}, got {value!r}")
    return value


def feature_axis(ndim: int, per: str = "feature") -> int | None:
    """The ``dim`` for batches of ``ndim`` axes: the channels (axis 1) of ``N x C x ...``
    inputs; for a 2-D batch a table's columns (``per="feature"``, axis -1) or, for an
    image or signal given flat (``per="channel"``), none: one channel of positions."""
    if ndim > 2:
        return 1
    return -1 if per == "feature" else None


def shifted_sums(rows: torch.Tensor, shift: torch.Tensor, out: torch.Tensor) -> tuple:
    """Per-feature sums of ``d = rows - shift`` and of ``d**2`` in float64, with torch ops
    writing ``d`` into ``out`` (the path off the CPU kernel, for example on a GPU)."""
    torch.sub(rows, shift, out=out)
    return out.sum(0, dtype=torch.float64), out.square_().sum(0, dtype=torch.float64)


def _stat_shape(ndim: int, dim: int | None) -> list:
    """The shape that broadcasts per-feature statistics over a batch of ``ndim`` axes
    (one value for all when ``dim`` is None)."""
    shape = [1] * ndim
    if dim is not None:
        shape[dim] = -1
    return shape


class RunningStandardizer:
    """Per-feature mean and standard deviation accumulated one batch at a time.

    Parameters
    ----------
    dim : the feature axis of a batch (``-1`` for tabular ``(n, p)``, ``1`` for channels of
        ``(N, C, H, W)``); statistics reduce over every other axis. ``None``: no feature
        axis, one mean and one std over every value (an image or signal of one channel,
        given flat as ``(n, positions)``).
    unbiased : divide M2 by ``count - 1`` instead of ``count`` (population, the default,
        matches scikit-learn's ``StandardScaler``).
    nan_policy : ``"raise"`` (a NaN in a batch is an error) or ``"omit"`` (NaNs are left
        out per feature; each feature keeps its own count).
    scale_floor : the smallest scale, as a fraction of the median standard deviation of
        the features that vary (0, the default, as scikit-learn). A pixel that is
        almost always blank has a tiny std, and its rare strokes become z-scores of 40
        (digits' border pixels); a floor keeps such features from dominating the input.
    with_mean : subtract the mean (True, the default) or only divide by the scale
        (scikit-learn's ``StandardScaler(with_mean=False)``). Centering each feature was
        what cost accuracy on the bundled imbalanced tasks (README, "which part of
        standardizing hurts").
    """

    def __init__(self, dim: int | None = -1, unbiased: bool = False, nan_policy: str = "raise",
                 scale_floor: float = 0.0, with_mean: bool = True):
        if nan_policy not in _POLICIES:
            raise ValueError(f"nan_policy: expected one of {_POLICIES}, got {nan_policy!r}")
        if not (isinstance(scale_floor, (int, float)) and 0 <= scale_floor < float("inf")):
            raise ValueError(f"scale_floor: expected a number >= 0, got {scale_floor!r}")
        if not isinstance(with_mean, bool):
            raise ValueError(f"with_mean: expected True or False, got {with_mean!r}")
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, numbers.Integral)):
            raise ValueError(f"dim: expected an axis (an integer) or None, got {dim!r}")
        self.dim = None if dim is None else int(dim)
        self.unbiased, self.nan_policy = bool(unbiased), nan_policy
        self.scale_floor, self.with_mean = float(scale_floor), bool(with_mean)
        self.count = self.mean_ = self.m2 = None  # per feature, float64
        self._buf = None                          # scratch space (GPU path) across batches

    # -- accumulation -------------------------------------------------------------------
    def _rows(self, batch) -> torch.Tensor:
        """The batch as a 2-D (values, features) view with the feature axis last."""
        x = torch.as_tensor(batch)
        if not x.is_floating_point():
            x = x.double()
        elif x.dtype in (torch.float16, torch.bfloat16):  # their sums of squares overflow
            x = x.float()
        if x.ndim < 2:
            raise ValueError(f"batch: expected shape (n, features, ...), got {tuple(x.shape)}; "
                             "use x.reshape(-1, 1) for a single feature")
        if self.dim is None:
            rows = x.reshape(-1, 1)
        elif -x.ndim <= self.dim < x.ndim:
            x = x.movedim(self.dim, -1)
            rows = x.reshape(-1, x.shape[-1])
        else:
            raise ValueError(f"dim: {self.dim} is out of range for a batch of shape "
                             f"{tuple(x.shape)}")
        if self.count is not None and rows.shape[1] != self.count.shape[0]:
            raise ValueError(f"batch: has {rows.shape[1]} features, earlier batches had "
                             f"{self.count.shape[0]}")
        return rows

    def _batch_stats(self, rows: torch.Tensor) -> tuple:
        """(count, mean, M2) of one batch, per feature, in float64."""
        m = rows.shape[0]
        # Sums of d = x - shift with the shift near the data (the running mean; for the
        # first batch its own float64 mean) stay small and lose nothing in float32.
        shift = (rows.mean(0, dtype=torch.float64) if self.mean_ is None else self.mean_)
        shift = torch.where(torch.isfinite(shift), shift, 0).to(rows.dtype)
        if rows.device.type == "cpu" and rows.dtype in (torch.float32, torch.float64):
            # one fused pass (numba) with float64 accumulators: close to a plain read
            s1, s2 = (torch.from_numpy(a) for a in shifted_moments(
                rows.detach().contiguous().numpy(), shift.numpy()))
        else:  # elsewhere (a GPU): torch ops into a reused buffer
            if self._buf is None or self._buf.shape[0] < m or self._buf.dtype != rows.dtype \
                    or self._buf.device != rows.device:
                self._buf = torch.empty_like(rows)
            s1, s2 = shifted_sums(rows, shift, self._buf[:m])
        if bool(torch.isfinite(s2).all() and torch.isfinite(s1).all()):
            mean_d = s1 / m
            m2 = s2 - m * mean_d**2
            if bool((s2 <= 100 * m2).all()):  # little cancellation: the sums suffice
                return torch.full_like(s1, m), mean_d + shift.double(), m2
            var, mean = torch.var_mean(rows.double(), dim=0, correction=0)
            return torch.full_like(s1, m), mean, var * m
        return self._nonfinite_stats(rows)

    def _nonfinite_stats(self, rows: torch.Tensor) -> tuple:
        if torch.isinf(rows).any():
            raise ValueError("batch: contains infinite values")
        if self.nan_policy == "raise":
            raise ValueError("batch: contains NaN (use nan_policy='omit' to leave NaNs out "
                             "per feature)")
        nan = torch.isnan(rows)
        x = torch.where(nan, 0, rows).double()
        n = (~nan).sum(0, dtype=torch.float64)
        mean = x.sum(0) / torch.where(n > 0, n, 1.0)
        m2 = torch.where(nan, 0, x - mean).pow(2).sum(0)
        return n, mean, m2

    def update(self, batch) -> RunningStandardizer:
        """Add one batch (tensor or array); returns self."""
        rows = self._rows(batch)
        if rows.shape[0] == 0:
            return self
        stats = self._batch_stats(rows)
        if self.count is None:
            self.count, self.mean_, self.m2 = stats
        else:
            dev = self.count.device
            self.count, self.mean_, self.m2 = chan_merge(
                (self.count, self.mean_, self.m2), tuple(s.to(dev) for s in stats))
        return self

    def fit(self, batches: Iterable) -> RunningStandardizer:
        """Update with every batch of an iterable (``(x, ...)`` tuples use ``x``)."""
        for batch in batches:
            self.update(batch[0] if isinstance(batch, (tuple, list)) else batch)
        if self.count is None:
            raise ValueError("batches: empty, nothing to fit")
        return self

    def merge(self, other: RunningStandardizer) -> RunningStandardizer:
        """Fold ``other``'s statistics into this one (exact, any order); returns self."""
        if other.count is None:
            return self
        if self.count is None:
            self.count, self.mean_, self.m2 = other.count, other.mean_, other.m2
            return self
        if other.count.shape != self.count.shape:
            raise ValueError(f"other: has {other.count.shape[0]} features, this has "
                             f"{self.count.shape[0]}")
        dev = self.count.device
        self.count, self.mean_, self.m2 = chan_merge(
            (self.count, self.mean_, self.m2), tuple(t.to(dev) for t in (
                other.count, other.mean_, other.m2)))
        return self

    def sync(self) -> RunningStandardizer:
        """Merge the statistics of every rank (rank order, so all ranks agree exactly)."""
        self._check_fitted()
        dev = self.count.device
        merged = distributed.merge_moments(self.count, self.mean_, self.m2)
        self.count, self.mean_, self.m2 = (t.to(dev) for t in merged)
        return self

    # -- statistics ---------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if self.count is None:
            raise RuntimeError("RunningStandardizer: no batch seen yet (call update or fit)")

    @property
    def n_seen(self) -> torch.Tensor:
        """Per-feature number of values seen (float64)."""
        self._check_fitted()
        return self.count

    @property
    def mean(self) -> torch.Tensor:
        """Per-feature mean (float64)."""
        self._check_fitted()
        return self.mean_

    @property
    def var(self) -> torch.Tensor:
        """Per-feature variance (float64), population unless ``unbiased``."""
        self._check_fitted()
        denom = self.count - 1 if self.unbiased else self.count
        return self.m2 / torch.where(denom > 0, denom, 1.0)

    @property
    def std(self) -> torch.Tensor:
        return self.var.sqrt()

    @property
    def scale(self) -> torch.Tensor:
        """What ``transform`` divides by: ``std``, at least ``scale_floor`` times the
        median std of the varying features; zero-variance features at 1."""
        std = self.std
        varying = std[std > 0]
        floor = (self.scale_floor * varying.quantile(0.5).item()  # NumPy's median
                 if self.scale_floor and len(varying) else 0.0)
        return torch.where(std > 0, std.clamp(min=floor), 1.0)

    @property
    def shift(self) -> torch.Tensor:
        """What ``transform`` subtracts: the mean, or zeros without ``with_mean``."""
        return self.mean if self.with_mean else torch.zeros_like(self.mean)

    # -- using it -----------------------------------------------------------------------
    def _check_width(self, x: torch.Tensor) -> None:
        self._check_fitted()
        width = self.count.shape[0]
        if self.dim is None:
            return
        if not -x.ndim <= self.dim < x.ndim or x.shape[self.dim] != width:
            raise ValueError(f"batch: shape {tuple(x.shape)} has no axis {self.dim} of "
                             f"{width} features, the width this standardizer was fitted on")

    def _broadcast(self, x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        return value.to(device=x.device).reshape(_stat_shape(x.ndim, self.dim))

    def transform(self, batch) -> torch.Tensor:
        """``(batch - shift) / scale``, computed in float64, returned in the batch's
        floating dtype (the default dtype for integer input) and device."""
        x = torch.as_tensor(batch)
        self._check_width(x)
        dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
        x64 = x.to(torch.float64)
        return ((x64 - self._broadcast(x64, self.shift)) / self._broadcast(x64, self.scale)).to(
            dtype)

    def inverse_transform(self, batch) -> torch.Tensor:
        """``batch * scale + shift``, in the batch's dtype and device."""
        x = torch.as_tensor(batch)
        self._check_width(x)
        x64 = x.to(torch.float64)
        return (x64 * self._broadcast(x64, self.scale) + self._broadcast(x64, self.shift)).to(
            x.dtype)

    def state_dict(self) -> dict:
        self._check_fitted()
        return {"count": self.count.cpu(), "mean": self.mean.cpu(), "m2": self.m2.cpu(),
                "dim": self.dim, "unbiased": self.unbiased, "nan_policy": self.nan_policy,
                "scale_floor": self.scale_floor, "with_mean": self.with_mean}

    def load_state_dict(self, state: dict) -> None:
        self.dim = None if state["dim"] is None else int(state["dim"])
        self.unbiased = bool(state["unbiased"])
        self.nan_policy = state["nan_policy"]
        self.scale_floor = float(state.get("scale_floor", 0.0))  # (older states: none)
        self.with_mean = bool(state.get("with_mean", True))
        self.count, self.mean_, self.m2 = state["count"], state["mean"], state["m2"]


class Standardize(nn.Module):
    """Standardize inputs inside a model from a fitted ``RunningStandardizer``.

    The mean and scale are registered buffers, saved and moved with the model.
    """

    def __init__(self, standardizer: RunningStandardizer | None = None, *,
                 num_features: int | None = None, dim: int | None = -1) -> None:
        """From a fitted ``standardizer``, or empty (``num_features`` wide, identity
        until a saved ``state_dict`` is loaded into it)."""
        super().__init__()
        if standardizer is not None:
            dim, mean, scale = standardizer.dim, standardizer.shift, standardizer.scale
        elif num_features is not None:
            mean, scale = torch.zeros(num_features), torch.ones(num_features)
        else:
            raise ValueError("standardizer: give a fitted RunningStandardizer or num_features")
        self.dim = dim
        self.register_buffer("mean", mean.float())
        # (a positive scale below float32's range would divide by 0: the smallest normal)
        self.register_buffer("scale", scale.float().clamp(min=torch.finfo(torch.float32).tiny))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == self.mean.dtype and self.dim in (None, -1, x.ndim - 1):
            return (x - self.mean) / self.scale  # features last: plain broadcasting
        shape = _stat_shape(x.ndim, self.dim)
        return (x - self.mean.reshape(shape).to(x.dtype)) / self.scale.reshape(shape).to(x.dtype)


def training_standardizer(batches: Iterable, per: str = "feature", dim: int | None = None,
                          scale_floor: float = TRAINING_FLOOR,
                          with_mean: bool = True) -> RunningStandardizer:
    """The standardizer training fits: one pass over ``batches``, its feature axis ``dim``
    or, when None, the one ``feature_axis`` gives the first batch for ``per``."""
    batches = iter(batches)
    first = next(batches, None)
    if first is None:
        raise ValueError("batches: empty, nothing to fit")
    if dim is None:
        dim = feature_axis(first.ndim, per)
    return RunningStandardizer(dim=dim, scale_floor=scale_floor, with_mean=with_mean).fit(
        itertools.chain([first], batches))


def standardized_columns(X, rows) -> np.ndarray:
    """``X`` (rows x columns) with each column standardized by the statistics of the rows
    ``rows``, as ``bagoftricks fit`` trains; float32."""
    X = torch.as_tensor(X, dtype=torch.float32)
    with torch.no_grad():
        return Standardize(training_standardizer([X[torch.as_tensor(rows)]]))(X).numpy()
