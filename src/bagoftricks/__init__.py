"""bagoftricks: tricks that make neural nets train faster and correctly."""

from importlib.metadata import PackageNotFoundError, version

from .accumulate import LossAccumulator
from .bias import bias_for, init_bias_, initial_loss
from .centralize import Centralized, centralize_, clip_grad_norm_
from .imbalance import class_weights, sample_weights, weighted_loss
from .linear import GLM, wls
from .loop import Context, FitResult, History, Trick, Tricks, fit
from .plateau import FluctuationPlateau
from .sampler import OversamplingSampler
from .scaling import Scaled, scale_hparams
from .standardize import RunningStandardizer, Standardize

try:
    __version__ = version("bagoftricks")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = [
    "Centralized",
    "Context",
    "FitResult",
    "FluctuationPlateau",
    "GLM",
    "History",
    "LossAccumulator",
    "OversamplingSampler",
    "RunningStandardizer",
    "Scaled",
    "Standardize",
    "Trick",
    "Tricks",
    "bias_for",
    "centralize_",
    "clip_grad_norm_",
    "class_weights",
    "fit",
    "init_bias_",
    "initial_loss",
    "sample_weights",
    "scale_hparams",
    "weighted_loss",
    "wls",
    "__version__",
]
