"""Weighted least squares: ``beta = (XᵀWX)⁻¹ XᵀWy`` by a Cholesky solve of the
equilibrated normal equations, refined from the data when they are ill-conditioned."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from .solve import equilibrated_rcond, normal_equations, refine, solve_normal
from .validate import as_float_array, check_weights


class WLSResult(NamedTuple):
    coef: np.ndarray | torch.Tensor        # (p,) or (p, k) for k targets
    intercept: float | np.ndarray | torch.Tensor


def wls(X, y, sample_weight=None, fit_intercept: bool = True,
        rank_deficient: str = "pinv") -> WLSResult:
    """Weighted least squares by a Cholesky solve of ``XᵀWX`` (built by SYRK).

    ``X`` (n, p) and ``y`` (n,) or (n, k), NumPy arrays or torch tensors (the result
    has the type of ``X``); ``sample_weight`` (n,) non-negative. When ``XᵀWX`` is
    singular or ill-conditioned, a warning names the dependent columns and a
    least-squares solve is used (``rank_deficient="raise"`` raises instead).
    """
    is_torch = isinstance(X, torch.Tensor)
    Xn = as_float_array(X, "X", ndim=2)
    yn = as_float_array(y, "y", ndim=(1, 2), dtype=Xn.dtype)
    if yn.shape[0] != Xn.shape[0]:
        raise ValueError(f"y: has {yn.shape[0]} rows, X has {Xn.shape[0]}")
    if rank_deficient not in ("raise", "pinv"):
        raise ValueError(f"rank_deficient: expected 'raise' or 'pinv', got {rank_deficient!r}")
    w = check_weights(sample_weight, Xn.shape[0], Xn.dtype)
    sw = np.sqrt(w)
    A, b = normal_equations(Xn, sw, (yn.T * sw).T, fit_intercept)
    names = (["intercept"] if fit_intercept else []) + [f"x{j}" for j in range(Xn.shape[1])]
    beta = solve_normal(A, b, fallback=rank_deficient, names=names)
    if 1e-12 < equilibrated_rcond(A) < 1e-6:  # solved, but digits were lost: two passes
        beta = refine(Xn, sw, (yn.T * sw).T, fit_intercept, A, beta)
    coef, intercept = (beta[1:], beta[0]) if fit_intercept else (beta, np.zeros_like(beta[0]))
    if is_torch:
        return WLSResult(torch.as_tensor(coef, device=X.device),
                         torch.as_tensor(intercept, device=X.device))
    return WLSResult(coef, intercept if np.ndim(intercept) else float(intercept))
