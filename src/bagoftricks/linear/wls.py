"""Weighted least squares: ``beta = (XᵀWX)⁻¹ XᵀWy`` by a Cholesky solve of the
equilibrated normal equations, refined from the data when they are ill-conditioned."""

from __future__ import annotations

import numpy as np

from .solve import equilibrated_rcond, inverse_psd, normal_equations, refine, solve_normal
from .validate import as_float_array, check_weights, is_tensor


class WLSResult(tuple):
    """The fit, a pair ``(coef, intercept)`` (so ``coef, intercept = wls(...)``), with:

    ``bse``: standard errors of ``[intercept, *coef]`` (``(p + 1,)``, or ``(p + 1, k)``
    for k targets; without an intercept, of ``coef``) from ``scale * (XᵀWX)⁻¹``, as
    statsmodels' ``WLS(...).fit().bse``; ``scale``: the residual variance
    ``Σ w r² / df_resid`` (per target); ``df_resid``: rows minus coefficients."""

    def __new__(cls, coef, intercept, bse: np.ndarray, scale, df_resid: int):
        result = super().__new__(cls, (coef, intercept))
        result.bse, result.scale, result.df_resid = bse, scale, df_resid
        return result

    coef = property(lambda self: self[0])
    intercept = property(lambda self: self[1])


def wls(X, y, sample_weight=None, fit_intercept: bool = True,
        rank_deficient: str = "pinv") -> WLSResult:
    """Weighted least squares by a Cholesky solve of ``XᵀWX`` (built block by block).

    ``X`` (n, p) and ``y`` (n,) or (n, k), NumPy arrays or torch tensors (the result
    has the type of ``X``); ``sample_weight`` (n,) non-negative. When ``XᵀWX`` is
    singular or ill-conditioned, a warning names the dependent columns and a
    least-squares solve is used (``rank_deficient="raise"`` raises instead).
    """
    is_torch = is_tensor(X)
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
    residual = yn - Xn @ coef - intercept  # one more pass, for the standard errors
    df_resid = max(Xn.shape[0] - len(beta), 1)
    scale = (w * (residual.T ** 2)).sum(-1) / df_resid
    bse = np.sqrt(np.multiply.outer(np.diag(inverse_psd(A)), np.atleast_1d(scale)))
    bse, scale = (bse[:, 0], float(scale)) if yn.ndim == 1 else (bse, scale)
    if is_torch:
        import torch

        return WLSResult(torch.as_tensor(coef, device=X.device),
                         torch.as_tensor(intercept, device=X.device), bse, scale, df_resid)
    return WLSResult(coef, intercept if np.ndim(intercept) else float(intercept), bse, scale,
                     df_resid)
