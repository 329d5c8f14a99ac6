"""The training loop's wing: the trick protocol, one adapter per chapter, and ``fit``."""

from .adapters import (
    BalancedWeights,
    BiasInit,
    Centralization,
    Clipping,
    LeslieRescaling,
    LogitAdjustment,
    LossAccumulation,
    Oversampling,
    Plateau,
    Standardization,
    Tricks,
)
from .fit import fit
from .protocol import Context, FitResult, History, Trick

__all__ = ["BalancedWeights", "BiasInit", "Centralization", "Clipping", "Context",
           "FitResult", "History", "LeslieRescaling", "LogitAdjustment", "LossAccumulation",
           "Oversampling", "Plateau", "Standardization", "Trick", "Tricks", "fit"]
