"""Input checks at the boundary of the linear models: clear errors naming the argument."""

from __future__ import annotations

import numpy as np
import torch


def as_float_array(value, name: str, ndim=(1, 2), dtype=None,
                   check_finite: bool = True) -> np.ndarray:
    """A float NumPy array (float64 unless ``dtype`` or float32 input says so), finite
    unless ``check_finite=False`` (for callers that detect it more cheaply later)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: cannot be read as an array ({err})") from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name}: must be numeric, got dtype {arr.dtype}")
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if arr.ndim not in ndims:
        raise ValueError(f"{name}: expected {' or '.join(f'{d}-D' for d in ndims)}, "
                         f"got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: empty")
    target = dtype or (np.float32 if arr.dtype == np.float32 else np.float64)
    arr = np.ascontiguousarray(arr, dtype=target)
    if check_finite and not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return arr


def check_weights(sample_weight, n: int, dtype) -> np.ndarray:
    if sample_weight is None:
        return np.ones(n, dtype=dtype)
    w = as_float_array(sample_weight, "sample_weight", ndim=1, dtype=dtype)
    if w.shape[0] != n:
        raise ValueError(f"sample_weight: has {w.shape[0]} entries for {n} rows")
    if (w < 0).any():
        raise ValueError(f"sample_weight: negative weight at index {int(np.argmin(w))}")
    if not (w > 0).any():
        raise ValueError("sample_weight: all weights are zero")
    return w
