"""Class priors: the one the loss sees, and moving scores from one prior to another.

A balance trick changes the label distribution the loss sees, so a model trained with
it learns ``p'(y|x) ∝ p(y|x) π'_y / π_y`` for the *effective* prior ``π'``. The scores
are moved back to the true prior ``π`` (or any deployment prior) by adding
``log π − log π'`` to the logits (softmax), which for one sigmoid output is King &
Zeng's (2001) prior correction of the intercept, ``b0 − log(((1 − τ)/τ)(ȳ/(1 − ȳ)))``.
Moving to the uniform prior is Menon et al.'s (2021) post-hoc logit adjustment.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def check_prior(prior, name: str = "prior", num_classes: int | None = None) -> np.ndarray:
    """``prior`` as a float64 vector of positive probabilities summing to 1.

    Raises ``ValueError`` naming ``name`` for a wrong length, a negative, zero or
    non-finite entry (a zero prior forbids a class the model predicts), or a sum that
    is not 1 (within 1e-6)."""
    p = np.asarray(prior, dtype=np.float64).reshape(-1)
    if num_classes is not None and len(p) != num_classes:
        raise ValueError(f"{name}: expected {num_classes} class probabilities, got {len(p)}")
    if not np.all(np.isfinite(p)) or np.any(p <= 0):
        raise ValueError(f"{name}: every class needs a positive probability, got "
                         f"{np.round(p, 6).tolist()}")
    if abs(p.sum() - 1) > 1e-6:
        raise ValueError(f"{name}: the probabilities sum to {p.sum():.6g}, not 1")
    return p


def check_tau(tau, name: str = "tau") -> float:
    """``tau`` of the logit-adjusted loss: a number >= 0."""
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not tau >= 0:
        raise ValueError(f"{name}: expected a number >= 0, got {tau!r}")
    return float(tau)


def effective_prior(prior, *, class_weight=None, oversample: bool = False,
                    tau: float | None = None) -> np.ndarray:
    """The prior the loss (or the raw logits) sees: ``π'_c ∝ π_c · w_c · r_c``.

    ``class_weight``: per-class loss weights ``w``. ``oversample``: every present class
    drawn up to the largest (``r_c = max π / π_c``). ``tau``: the logit-adjusted loss
    ``CE(f + τ log π, y)``, whose raw logits ``f`` model ``π^(1 − τ)``. Classes absent
    from ``prior`` (probability 0) stay at 0."""
    p = np.asarray(prior, dtype=np.float64).reshape(-1)
    if np.any(p < 0) or not np.isclose(p.sum(), 1):
        raise ValueError("prior: expected non-negative probabilities summing to 1")
    out = p.copy()
    if class_weight is not None:
        out = out * np.asarray(class_weight, dtype=np.float64)
    if oversample:
        out = (out > 0).astype(np.float64)
    if tau is not None:
        out = np.where(out > 0, out ** (1.0 - check_tau(tau)), 0.0)
    return out / out.sum()


def prior_correction(logits: torch.Tensor, from_prior, to_prior,
                     head: str = "softmax") -> torch.Tensor:
    """Scores of a model trained under ``from_prior``, moved to ``to_prior``.

    ``head="softmax"``: ``logits + log to − log from`` over the last axis (K priors).
    ``head="sigmoid"``: one logit per output, priors are the positive rates (scalars or
    one per output): ``logit + logit(to) − logit(from)`` (King & Zeng)."""
    shift = prior_shift(from_prior, to_prior, head)
    return logits + torch.as_tensor(shift, dtype=logits.dtype, device=logits.device)


def prior_shift(from_prior, to_prior, head: str = "softmax") -> np.ndarray:
    """What ``prior_correction`` adds to the logits (NumPy float64).

    Softmax: a class with probability 0 under both priors (one the training data never
    had) gets no shift; a zero under only one of them is an error."""
    if head == "softmax":
        src = np.asarray(from_prior, dtype=np.float64).reshape(-1)
        dst = np.asarray(to_prior, dtype=np.float64).reshape(-1)
        if len(dst) != len(src):
            raise ValueError(f"to_prior: expected {len(src)} class probabilities, got "
                             f"{len(dst)}")
        unseen = (src == 0) & (dst == 0)
        # the classes some prior covers must each be positive under both
        check_prior(src[~unseen], "from_prior")
        check_prior(dst[~unseen], "to_prior")
        shift = np.zeros_like(src)
        shift[~unseen] = np.log(dst[~unseen]) - np.log(src[~unseen])
        return shift
    if head == "sigmoid":
        src, dst = (np.asarray(p, dtype=np.float64) for p in (from_prior, to_prior))
        for name, p in (("from_prior", src), ("to_prior", dst)):
            if not np.all((p > 0) & (p < 1)):
                raise ValueError(f"{name}: sigmoid positive rates must lie in (0, 1)")
        return np.log(dst / (1 - dst)) - np.log(src / (1 - src))
    raise ValueError(f"head: expected 'softmax' or 'sigmoid', got {head!r}")


class PriorShift(nn.Module):
    """Adds ``log to − log from`` to a softmax model's logits: the last layer of a
    predictor whose probabilities hold under the prior ``to``."""

    def __init__(self, from_prior, to_prior) -> None:
        super().__init__()
        shift = prior_shift(from_prior, to_prior, "softmax")
        self.register_buffer("shift", torch.as_tensor(shift, dtype=torch.float32))

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits + self.shift.to(logits.dtype)


def target_prior(prior, true_prior: torch.Tensor, name: str = "prior"):
    """The class prior that ``prior`` asks for: ``None``, the training data's
    (``true_prior``, a tensor); ``"balanced"``, uniform over the classes seen in
    training; or K probabilities, positive for every class seen in training and 0 for
    the others (``parse_prior`` reads the command line's spelling)."""
    seen = (true_prior > 0).numpy()  # the classes the training data had
    if prior is None:
        return true_prior
    if isinstance(prior, str):
        if prior != "balanced":
            raise ValueError(f"{name}: expected None, 'balanced' or {len(seen)} class "
                             f"probabilities, got {prior!r}")
        return seen / seen.sum()
    prior = np.asarray(prior, dtype=np.float64).reshape(-1)
    if len(prior) != len(seen):
        raise ValueError(f"{name}: expected {len(seen)} class probabilities, got {len(prior)}")
    if np.any(prior[~seen] != 0):
        raise ValueError(f"{name}: classes {np.flatnonzero(~seen).tolist()} never appear in "
                         f"the training data; their probability must be 0")
    check_prior(prior[seen], name)
    return prior


def parse_prior(text: str, classes: list, true_prior) -> np.ndarray:
    """A ``--prior`` value: ``"true"`` (the training data's), ``"balanced"`` (uniform) or
    ``"name=p,name=p,..."`` naming every class once."""
    k = len(classes)
    if text == "true":
        return check_prior(true_prior, "--prior", k)
    if text == "balanced":
        return np.full(k, 1.0 / k)
    names = [str(c) for c in classes]
    values = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in names:
            raise ValueError(f"--prior: expected 'true', 'balanced' or name=probability for "
                             f"the classes {', '.join(names)}; got {part.strip()!r}")
        try:
            values[name] = float(value)
        except ValueError:
            raise ValueError(f"--prior: {value.strip()!r} is not a probability") from None
    missing = [n for n in names if n not in values]
    if missing:
        raise ValueError(f"--prior: no probability for the classes {', '.join(missing)}")
    return check_prior([values[n] for n in names], "--prior", k)
