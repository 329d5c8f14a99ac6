"""Weighted normal equations: the Gram matrix by a symmetric rank-k update, a Cholesky
solve, a rank check that names dependent columns, and an lstsq/pinv fallback."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
from scipy.linalg.blas import dsyrk, ssyrk


class RankDeficientError(ValueError):
    """X has columns that are linear combinations of the others."""


def gram(Xw: np.ndarray, sw: np.ndarray | None) -> np.ndarray:
    """``[sw, Xw]ᵀ[sw, Xw]`` (intercept first when ``sw`` is given), lower triangle by
    SYRK (half the flops of a general matmul), then mirrored."""
    syrk = dsyrk if Xw.dtype == np.float64 else ssyrk
    # Xw is C-ordered (n, p): Xwᵀ is Fortran-ordered, so SYRK reads it without a copy.
    xtx = syrk(1.0, Xw.T, trans=0, lower=1)
    xtx = np.tril(xtx) + np.tril(xtx, -1).T
    if sw is None:
        return xtx
    p = Xw.shape[1]
    out = np.empty((p + 1, p + 1), dtype=xtx.dtype)
    out[1:, 1:] = xtx
    out[0, 1:] = out[1:, 0] = Xw.T @ sw
    out[0, 0] = sw @ sw
    return out


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
