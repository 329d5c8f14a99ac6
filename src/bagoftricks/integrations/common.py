"""What both framework callbacks need: the head they initialize, the priors a balance
choice gives, the balanced loss and the correction of the trained model's scores (the
labels come from ``labels.dataset_labels``)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_choice
from ..bias import init_bias_
from ..imbalance import class_weights
from ..loop.adapters import BALANCE
from ..models import last_linear
from ..prior import check_tau, effective_prior, prior_correction, target_prior


def check_balance(balance, tau) -> None:
    """``balance`` one of the loop's choices and ``tau`` a number >= 0."""
    check_choice("balance", balance, BALANCE)
    check_tau(tau)


def head_of(model: nn.Module, labels: np.ndarray) -> tuple[nn.Linear, str]:
    """The model's last linear layer and its kind: ``"softmax"`` for class indices into
    its outputs, ``"sigmoid"`` for one output and 0/1 labels, ``"linear"`` otherwise."""
    head = last_linear(model)
    if head is None or head.bias is None:
        raise ValueError(f"model: {type(model).__name__} has no nn.Linear with a bias "
                         f"as its last linear layer; pass bias_init=False")
    whole = labels.dtype.kind in "biu" or bool(np.all(labels == np.round(labels)))
    if head.out_features == 1:
        binary = whole and set(np.unique(labels).tolist()) <= {0, 1}
        return head, ("sigmoid" if binary else "linear")
    if not whole:
        return head, "linear"
    if labels.min() < 0 or labels.max() >= head.out_features:
        raise ValueError(f"labels: class indices must lie in [0, {head.out_features}) for "
                         f"the head's {head.out_features} outputs; got {labels.min()}.."
                         f"{labels.max()}")
    return head, "softmax"


class Priors:
    """The class priors of ``labels`` under a balance choice: ``true`` (the data's),
    ``effective`` (what the raw logits model), and the loss's ``class_weight`` or
    ``logit_adjustment`` (None where the choice does not use one)."""

    def __init__(self, labels: np.ndarray, num_classes: int, balance: str | None,
                 tau: float = 1.0) -> None:
        check_balance(balance, tau)
        codes = labels.astype(np.int64)
        self.true = np.bincount(codes, minlength=num_classes) / codes.size
        self.class_weight = self.logit_adjustment = None
        weights = None
        if balance == "weights":
            weights = class_weights(codes, num_classes=num_classes)
            self.class_weight = torch.as_tensor(weights, dtype=torch.float32)
        elif balance == "logit_adjust":
            log_prior = np.log(np.maximum(self.true, 1e-12))
            self.logit_adjustment = torch.as_tensor(tau * log_prior, dtype=torch.float32)
        self.effective = effective_prior(self.true, class_weight=weights,
                                         oversample=balance == "oversample",
                                         tau=tau if balance == "logit_adjust" else None)


def corrected(priors: Priors | None, logits: torch.Tensor, prior=None) -> torch.Tensor:
    """A softmax head's raw ``logits``, which model the effective prior the loss saw,
    moved to ``prior``: None, the training labels' (probabilities as they occur);
    ``"balanced"`` (decisions that treat the classes equally); or K probabilities (a
    deployment prior), as ``FitResult.predictor_for`` takes it."""
    if priors is None:
        raise ValueError("correct: no class priors yet; they are set when training starts, "
                         "for a softmax head with bias_init or balance on")
    to = target_prior(prior, torch.as_tensor(priors.true), "prior")
    return prior_correction(logits, priors.effective, to)


def priors_for(model: nn.Module, labels: np.ndarray, balance: str | None,
               tau: float) -> Priors | None:
    """The ``Priors`` of a softmax head (None for a sigmoid or linear head, where a
    balance choice is an error)."""
    head, kind = head_of(model, labels)
    if kind == "softmax":
        return Priors(labels, head.out_features, balance, tau)
    if balance:
        raise ValueError(f"balance: {balance!r} needs class labels and a softmax head; this "
                         f"head is {kind}")
    return None


def init_head_(model: nn.Module, labels: np.ndarray, priors: Priors | None) -> str:
    """Set the head's bias from the labels (the effective prior for softmax) and return
    the head's kind."""
    head, kind = head_of(model, labels)
    if kind == "softmax":
        init_bias_(head, None, kind, prior=priors.effective)
    else:
        init_bias_(head, labels.astype(np.float64), kind)
    return kind


def balanced_loss(logits: torch.Tensor, target: torch.Tensor, priors: Priors,
                  reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy with the balance choice's class weights or logit adjustment
    (``"mean"``: the weighted mean, as ``F.cross_entropy(weight=...)``; ``"sum"``)."""
    if priors.logit_adjustment is not None:
        logits = logits + priors.logit_adjustment.to(logits)
    weight = None if priors.class_weight is None else priors.class_weight.to(logits)
    return F.cross_entropy(logits, target, weight=weight, reduction=reduction)
