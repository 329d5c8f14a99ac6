"""Input checks at the boundary of the linear models: clear errors naming the argument,
worded as scikit-learn's own validation words them (its estimator checks match them)."""

from __future__ import annotations

import sys
import warnings

import numpy as np

from .._validation import user_stacklevel

try:  # scikit-learn's own classes when it is installed, so its checks recognise them
    from sklearn.exceptions import DataConversionWarning, NotFittedError
except ImportError:  # pragma: no cover - scikit-learn is optional
    class DataConversionWarning(UserWarning):
        """A column vector ``y`` was flattened (scikit-learn's warning)."""

    class NotFittedError(ValueError, AttributeError):
        """A model was used before ``fit`` (scikit-learn's exception)."""


def is_tensor(value) -> bool:
    """Whether ``value`` is a torch tensor, without importing torch (the GLM path runs
    without it: a process that has not imported torch holds no tensor)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def as_float_array(value, name: str, ndim=(1, 2), dtype=None,
                   check_finite: bool = True) -> np.ndarray:
    """A float NumPy array (float64 unless ``dtype`` or float32 input says so), finite
    unless ``check_finite=False`` (for callers that detect it more cheaply later).
    Accepts tensors, pandas objects and object arrays of numbers; refuses sparse
    matrices, complex numbers and empty arrays."""
    if value is None:
        raise ValueError(f"{name}: requires {name} to be passed, but the target {name} is "
                         f"None" if name == "y" else f"{name}: is None")
    if is_tensor(value):
        value = value.detach().cpu().numpy()
    if hasattr(value, "tocsr") or type(value).__module__.startswith("scipy.sparse"):
        raise TypeError(f"{name}: sparse input is not supported; pass a dense array "
                        f"(.toarray())")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: cannot be read as an array ({err})") from None
    if arr.dtype.kind == "c":
        raise ValueError(f"{name}: Complex data not supported")
    if arr.dtype.kind == "O":  # numbers stored as objects (pandas' object columns)
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as err:  # numpy's words: "argument must be a ..."
            raise TypeError(f"{name}: must be numeric ({err})") from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name}: must be numeric, got dtype {arr.dtype}")
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if arr.ndim not in ndims:
        hint = ("; Reshape your data with .reshape(-1, 1) for one feature or "
                ".reshape(1, -1) for one sample") if ndims == (2,) and arr.ndim == 1 else ""
        raise ValueError(f"{name}: expected {' or '.join(f'{d}-D' for d in ndims)}, "
                         f"got shape {arr.shape}{hint}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: Found array with 0 sample(s) (shape={arr.shape}) while a "
                         f"minimum of 1 is required.")
    if arr.ndim == 2 and arr.shape[1] == 0:
        raise ValueError(f"{name}: Found array with 0 feature(s) (shape={arr.shape}) while "
                         f"a minimum of 1 is required.")
    target = dtype or (np.float32 if arr.dtype == np.float32 else np.float64)
    arr = np.ascontiguousarray(arr, dtype=target)
    if check_finite and not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return arr


def as_target(y, n: int) -> np.ndarray:
    """``y`` as a 1-D array of ``n`` entries of any dtype; a column vector ``(n, 1)`` is
    flattened with a warning (scikit-learn's convention) at the user's line."""
    if y is None:
        raise ValueError("y: requires y to be passed, but the target y is None")
    if is_tensor(y):
        y = y.detach().cpu().numpy()
    if hasattr(y, "tocsr") or type(y).__module__.startswith("scipy.sparse"):
        raise TypeError("y: sparse input is not supported; pass a dense array")
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        warnings.warn("A column-vector y was passed when a 1d array was expected; y is "
                      "flattened to (n_samples,)", DataConversionWarning,
                      stacklevel=user_stacklevel())
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"y: expected 1-D, got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"y: has {arr.shape[0]} rows, X has {n}")
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
