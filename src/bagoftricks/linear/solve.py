"""Weighted normal equations: the Gram matrix by a symmetric rank-k update, a Cholesky
solve, a rank check that names dependent columns, and an lstsq/pinv fallback."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
from scipy.linalg.blas import dsyrk, ssyrk


class RankDeficientError(ValueError):
    """X has columns that are linear combinations of the others."""


def normal_equations(X: np.ndarray, sw: np.ndarray, rhs: np.ndarray, fit_intercept: bool,
                     block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """``A = [1, X]ᵀ W [1, X]`` and ``b = [1, X]ᵀ sqrt(W) rhs`` (intercept first when
    ``fit_intercept``), with ``sw = sqrt(W)`` and ``rhs`` of shape (n,) or (n, k).

    Rows are taken ``block`` at a time into ``Z = [sw, sqrt(W) X, rhs]``, which stays in
    cache while one SYRK (half the flops of a general matmul) adds ``ZᵀZ``'s lower
    triangle: every product needed comes from that one call, X is read once per call
    and no ``n x p`` temporary is made.
    """
    n, p = X.shape
    r = rhs.reshape(n, -1)
    k = r.shape[1]
    syrk = dsyrk if X.dtype == np.float64 else ssyrk
    width = 1 + p + k
    acc = np.zeros((width, width), dtype=X.dtype, order="F")
    buf = np.empty((min(block, n), width), dtype=X.dtype)
    for start in range(0, n, block):
        stop = min(start + block, n)
        Z = buf[:stop - start]
        Z[:, 0] = sw[start:stop]
        np.multiply(X[start:stop], sw[start:stop, None], out=Z[:, 1:1 + p])
        Z[:, 1 + p:] = r[start:stop]
        # Z is C-ordered (rows, width): Zᵀ is Fortran-ordered, so SYRK reads it as it is.
        acc = syrk(1.0, Z.T, beta=1.0, c=acc, trans=0, lower=1, overwrite_c=1)
    full = np.tril(acc).astype(np.float64)
    full = full + np.tril(full, -1).T
    first = 0 if fit_intercept else 1
    A = full[first:1 + p, first:1 + p]
    b = full[1 + p:, first:1 + p].T
    return A, b.reshape((A.shape[0],) + rhs.shape[1:])


def dependent_columns(A: np.ndarray, rtol: float = 1e-10) -> np.ndarray:
    """Indices of the columns of a PSD Gram matrix that pivoted QR finds dependent."""
    d = np.sqrt(np.clip(np.diag(A), 0, None))
    zero = d <= rtol * max(d.max(), 1e-300)
    scale = np.where(zero, 1.0, d)
    C = A / scale[:, None] / scale[None, :]
    C[zero, :] = 0
    C[:, zero] = 0
    _, R, piv = scipy.linalg.qr(C, pivoting=True, mode="economic")
    diag = np.abs(np.diag(R))
    rank = int((diag > rtol * max(diag[0], 1e-300)).sum()) if len(diag) else 0
    return np.sort(piv[rank:])


def solve_normal(A: np.ndarray, b: np.ndarray, *, fallback: str = "raise",
                 names=None) -> np.ndarray:
    """Solve ``A x = b`` for a symmetric PSD ``A`` by Cholesky.

    When ``A`` is singular or ill-conditioned (reciprocal condition < 1e-12), either
    raise ``RankDeficientError`` naming the dependent columns (``fallback="raise"``)
    or warn and use the minimum-norm least-squares solution (``fallback="pinv"``).
    """
    try:
        c, low = scipy.linalg.cho_factor(A, lower=True, check_finite=False)
        rcond = np.min(np.diag(c)) ** 2 / np.max(np.diag(c)) ** 2
        if rcond > 1e-12:
            return scipy.linalg.cho_solve((c, low), b, check_finite=False)
    except np.linalg.LinAlgError:
        pass
    bad = dependent_columns(A)
    label = [names[i] for i in bad] if names is not None else bad.tolist()
    if fallback == "raise" and len(bad):
        raise RankDeficientError(
            f"X: rank-deficient, columns {label} are linear combinations of the others "
            "(pass rank_deficient='pinv' for a minimum-norm solution)")
    warnings.warn(f"X: ill-conditioned normal equations (dependent columns {label}); "
                  "using a least-squares (pinv) solve", RuntimeWarning, stacklevel=3)
    return scipy.linalg.lstsq(A, b, cond=1e-12, check_finite=False)[0]
