"""Weighted normal equations: the Gram matrix by a symmetric rank-k update, a Cholesky
solve, a rank check that names dependent columns, and an lstsq/pinv fallback."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg

from .._validation import user_stacklevel


class RankDeficientError(ValueError):
    """X has columns that are linear combinations of the others."""

GRAM_BLOCK_ROWS = 1024  # rows per product in normal_equations: a block stays in cache


class Gram:
    """``ZᵀZ`` accumulated one block of rows at a time, for ``Z = [sw, sqrt(W) X, rhs]``.

    One matrix product per block (NumPy's or torch's), so X is read once per pass and
    no ``n x p`` temporary is made. NumPy's matmul rather than SciPy's SYRK (half the
    flops): the rest of a pass runs in NumPy's BLAS, and two BLAS libraries' thread pools
    taking turns fought for the cores (a 1e5 x 150 logit fit took 2.1x as long on 2
    cores; ``benchmarks/glm.py``).
    """

    def __init__(self, width: int, like) -> None:
        self.numpy = isinstance(like, np.ndarray)
        self.acc = (np.zeros((width, width), dtype=like.dtype) if self.numpy
                    else like.new_zeros((width, width)))

    def add(self, Z) -> None:
        self.acc += Z.T @ Z

    def normal_equations(self, p: int, fit_intercept: bool) -> tuple[np.ndarray, np.ndarray]:
        """``A`` ((p [+1]) x (p [+1]), intercept first) and ``b`` (one column per rhs)."""
        full = (self.acc if self.numpy else self.acc.cpu().numpy()).astype(np.float64)
        first = 0 if fit_intercept else 1
        return full[first:1 + p, first:1 + p], full[1 + p:, first:1 + p].T


def normal_equations(X: np.ndarray, sw: np.ndarray, rhs: np.ndarray, fit_intercept: bool,
                     block: int = GRAM_BLOCK_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """``A = [1, X]ᵀ W [1, X]`` and ``b = [1, X]ᵀ sqrt(W) rhs`` (intercept first when
    ``fit_intercept``), ``sw = sqrt(W)``, ``rhs`` (n,) or (n, k), by ``Gram`` blocks."""
    n, p = X.shape
    r = rhs.reshape(n, -1)
    gram = Gram(1 + p + r.shape[1], X)
    buf = np.empty((min(block, n), 1 + p + r.shape[1]), dtype=X.dtype)
    for start in range(0, n, block):
        stop = min(start + block, n)
        Z = buf[:stop - start]
        Z[:, 0] = sw[start:stop]
        np.multiply(X[start:stop], sw[start:stop, None], out=Z[:, 1:1 + p])
        Z[:, 1 + p:] = r[start:stop]
        gram.add(Z)
    A, b = gram.normal_equations(p, fit_intercept)
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


def equilibrated_rcond(A: np.ndarray) -> float:
    """The reciprocal condition (Cholesky diagonal ratio squared) of ``A`` scaled to a
    unit diagonal: how many digits the normal equations lose, whatever the units."""
    d = np.sqrt(np.clip(np.diag(A), 0, None))
    d = np.where(d > 0, d, 1.0)
    try:
        c = scipy.linalg.cholesky(A / d[:, None] / d[None, :], lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        return 0.0
    return float(np.min(np.diag(c)) ** 2 / np.max(np.diag(c)) ** 2)


def refine(X: np.ndarray, sw: np.ndarray, rhs: np.ndarray, fit_intercept: bool,
           A: np.ndarray, beta: np.ndarray, penalty: np.ndarray | None = None) -> np.ndarray:
    """One step of iterative refinement from the data itself (the corrected semi-normal
    equations): the weighted residual of ``beta`` in float64, then
    ``A δ = Xᵀ √W r − P β`` (``P = diag(penalty)``, included in ``A``). Two passes over
    X; it brings an ill-conditioned fit from the normal equations' ``κ²·ε`` error to
    about ``κ·ε``."""
    X64 = X.astype(np.float64, copy=False)
    coef, b0 = (beta[1:], beta[0]) if fit_intercept else (beta, 0.0)
    fitted = X64 @ coef + b0
    r = rhs.astype(np.float64, copy=False) - (sw * fitted.T).T if rhs.ndim > 1 else \
        rhs.astype(np.float64, copy=False) - sw * fitted
    g = X64.T @ (sw * r.T).T
    if fit_intercept:
        g = np.concatenate([(sw @ r)[None] if r.ndim > 1 else [sw @ r], g])
    if penalty is not None:
        g = g - penalty * beta
    return beta + solve_normal(A, g, fallback="pinv")


def solve_normal(A: np.ndarray, b: np.ndarray, *, fallback: str = "raise",
                 names=None) -> np.ndarray:
    """Solve ``A x = b`` for a symmetric PSD ``A`` by Cholesky, after equilibrating it.

    ``A`` is scaled to unit diagonal (``D^-1/2 A D^-1/2``, the columns of X scaled by
    their weighted norms) before factoring and before the conditioning test, so the
    units of a column never decide the solution: a column in units of 1e6 gives the
    same fit as the same column in units of 1. When the equilibrated matrix is still
    singular or ill-conditioned (reciprocal condition < 1e-12), either raise
    ``RankDeficientError`` naming the dependent columns (``fallback="raise"``) or warn
    and use the minimum-norm least-squares solution of the equilibrated system
    (``fallback="pinv"``).
    """
    d = np.sqrt(np.clip(np.diag(A), 0, None))
    d = np.where(d > 0, d, 1.0)
    scaled = A / d[:, None] / d[None, :]
    rhs = b / (d[:, None] if b.ndim > 1 else d)
    unscale = d[:, None] if b.ndim > 1 else d
    try:
        c, low = scipy.linalg.cho_factor(scaled, lower=True, check_finite=False)
        rcond = np.min(np.diag(c)) ** 2 / np.max(np.diag(c)) ** 2
        if rcond > 1e-12:
            return scipy.linalg.cho_solve((c, low), rhs, check_finite=False) / unscale
    except np.linalg.LinAlgError:
        pass
    bad = dependent_columns(A)
    label = [names[i] for i in bad] if names is not None else bad.tolist()
    if fallback == "raise" and len(bad):
        raise RankDeficientError(
            f"X: rank-deficient, columns {label} are linear combinations of the others "
            "(pass rank_deficient='pinv' for a minimum-norm solution)")
    warnings.warn(f"X: ill-conditioned normal equations even with equilibrated columns "
                  f"(dependent columns {label}); using a least-squares (pinv) solve",
                  RuntimeWarning, stacklevel=user_stacklevel())
    return scipy.linalg.lstsq(scaled, rhs, cond=1e-12, check_finite=False)[0] / unscale


def inverse_psd(A: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive (semi-)definite matrix: Cholesky, else pinv."""
    try:
        factor = scipy.linalg.cho_factor(A, lower=True)
        return scipy.linalg.cho_solve(factor, np.eye(len(A)))
    except np.linalg.LinAlgError:
        return np.linalg.pinv(A, hermitian=True)
