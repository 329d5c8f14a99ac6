"""Weighted least squares and GLMs by Newton's method / IRLS (DESIGN.md chapter 3)."""

from .glm import GLM, ConvergenceWarning, PerfectSeparationWarning
from .solve import RankDeficientError
from .wls import WLSResult, wls

__all__ = ["GLM", "ConvergenceWarning", "PerfectSeparationWarning", "RankDeficientError",
           "WLSResult", "wls"]
