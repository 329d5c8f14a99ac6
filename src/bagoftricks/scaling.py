"""Leslie Smith's constant relationship (DESIGN.md chapter 5).

The SGD noise scale is ``g ≈ lr · N / (B · (1 − m))`` (Smith & Le 2018, "A Bayesian
Perspective on Generalization and Stochastic Gradient Descent"; Smith et al. 2018,
"Don't Decay the Learning Rate, Increase the Batch Size"), and weight decay enters the
same balance (Smith 2018, "A disciplined approach to neural network
hyper-parameters"): doubling the batch size allows doubling the learning rate, or
doubling the weight decay. Keeping ``g`` fixed when ``B → B'`` and ``m → m'`` gives the
factor ``k = (B'/B) · (1 − m')/(1 − m)`` (``rule="linear"``, for SGD). For Adam-family
optimizers the update is normalized by the gradient's second moment and the usual rule
is ``k = sqrt(B'/B)`` (``rule="sqrt"``; Hoffer et al. 2017, Malladi et al. 2022), with no
momentum term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

RULES = ("linear", "sqrt")
SCALES = ("lr", "weight_decay")


@dataclass(frozen=True)
class Scaled:
    """Hyper-parameters after rescaling, and the factor applied."""

    lr: float
    weight_decay: float | None
    batch_size: int
    momentum: float | None
    factor: float


def _positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and value > 0):
        raise ValueError(f"{name}: expected a positive number, got {value!r}")
    return float(value)


def _momentum(name: str, value) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{name}: expected a number in [0, 1), got {value!r}")
    return float(value)


def scale_hparams(lr: float, batch_size: int, new_batch_size: int, *,
                  weight_decay: float | None = None, momentum: float | None = None,
                  new_momentum: float | None = None, rule: str = "linear",
                  scale: str = "lr") -> Scaled:
    """Rescale ``lr`` (or ``weight_decay``) when the batch size or momentum changes.

    Parameters
    ----------
    lr, batch_size : the tuned learning rate and the batch size it was tuned at.
    new_batch_size : the batch size to run at.
    weight_decay : the tuned weight decay (needed with ``scale="weight_decay"``).
    momentum, new_momentum : SGD momentum before and after (``rule="linear"`` only).
    rule : ``"linear"`` (SGD, ``k = B'/B · (1−m')/(1−m)``) or ``"sqrt"`` (Adam family,
        ``k = sqrt(B'/B)``).
    scale : which knob absorbs ``k``: ``"lr"`` or ``"weight_decay"``.
    """
    if rule not in RULES:
        raise ValueError(f"rule: expected one of {RULES}, got {rule!r}")
    if scale not in SCALES:
        raise ValueError(f"scale: expected one of {SCALES}, got {scale!r}")
    lr = _positive("lr", lr)
    for name, value in (("batch_size", batch_size), ("new_batch_size", new_batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
    if weight_decay is not None and (not isinstance(weight_decay, (int, float))
                                     or not math.isfinite(weight_decay) or weight_decay < 0):
        raise ValueError(f"weight_decay: expected a number >= 0, got {weight_decay!r}")
    m, m_new = _momentum("momentum", momentum), _momentum("new_momentum", new_momentum)
    if m_new is not None and m is None:
        raise ValueError("momentum: give the tuned momentum along with new_momentum")
    m_new = m if m_new is None else m_new
    ratio = new_batch_size / batch_size
    if rule == "sqrt":
        if m is not None and m_new != m:
            raise ValueError("new_momentum: momentum rescaling is defined for SGD "
                             "(rule='linear'), not for the Adam family")
        factor = math.sqrt(ratio)
    else:
        factor = ratio * ((1 - m_new) / (1 - m) if m is not None else 1.0)
    if scale == "weight_decay":
        if weight_decay is None:
            raise ValueError("weight_decay: required with scale='weight_decay'")
        return Scaled(lr, weight_decay * factor, new_batch_size, m_new, factor)
    return Scaled(lr * factor, weight_decay, new_batch_size, m_new, factor)
