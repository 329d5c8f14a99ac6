"""The trick protocol: what a trick sees (``Context``), when it runs (``Trick``'s hooks),
and what ``fit`` returns (``History``, ``FitResult``).

A trick is an object with a few optional hooks, called by ``fit`` in list order:

- ``setup(ctx)``: once, before training (and before a checkpoint is loaded). It may set
  the bias of the head, wrap ``ctx.optimizer``, replace ``ctx.sampler`` (the batch
  order), set ``ctx.prepare`` (the input transform), ``ctx.class_weight`` (the loss's
  per-class weights) or ``ctx.prior`` (the label distribution the loss sees: a trick that
  changes it publishes the effective prior here, so later tricks read it).
- ``on_epoch_start(ctx, epoch)``.
- ``on_batch_end(ctx, loss, weight)``: after the optimizer step; ``loss`` is this rank's
  (weighted) mean batch loss, ``weight`` its total weight (the batch size unweighted).
- ``before_optimizer_step(ctx)``: after ``backward`` (gradients final: unscaled,
  averaged over ranks), before ``optimizer.step()``.
- ``on_epoch_end(ctx, record)``: with the epoch's record (validation metrics included);
  it may add entries, such as ``train_loss``.

Stateful tricks define ``state_key`` (unique), ``state_dict()`` and
``load_state_dict(state)``; a checkpoint holds ``{"tricks": {state_key: state}}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from ..calibration import Temperature
from ..flat_grads import FlatGradients
from ..prior import PriorShift, target_prior
from ..sampler import EpochSampler
from ..standardize import RunningStandardizer, Standardize
from .inputs import device_of


@dataclass
class Context:
    """What a trick sees and may change. ``inputs()`` iterates over the training inputs
    in CPU chunks (one pass; every rank sees them all) and ``y`` holds the training
    labels (CPU); ``device`` is where the model trains; ``head`` is ``"softmax"``
    (classification) or ``"linear"`` (regression); ``true_prior`` the training labels'
    class distribution and ``prior`` the one the raw logits model (the effective prior,
    once a balance trick changed it; None for regression); ``logit_adjustment`` is added
    to the logits inside the loss (the logit-adjusted loss); ``gradients``, when a trick
    made one, is the flat gradient buffer the loop zeroes instead of the optimizer."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    inputs: Callable[[], Iterator[torch.Tensor]]
    y: torch.Tensor
    head: str
    num_classes: int | None
    prior: torch.Tensor | None
    sampler: EpochSampler
    batch_size: int
    seed: int
    epochs: int
    world: int
    rank: int
    prepare: Callable[[torch.Tensor], torch.Tensor] = nn.Identity()
    class_weight: torch.Tensor | None = None
    logit_adjustment: torch.Tensor | None = None
    standardizer: RunningStandardizer | None = None
    true_prior: torch.Tensor | None = None
    device: torch.device = torch.device("cpu")
    gradients: FlatGradients | None = None


class Trick:
    """Base class of the tricks ``fit`` composes: every hook is optional (a no-op here),
    and ``fit`` calls only the hooks a subclass overrides."""

    state_key: str | None = None

    def setup(self, ctx: Context) -> None:
        """Once, before training."""

    def on_epoch_start(self, ctx: Context, epoch: int) -> None:
        """Before each epoch (0-based ``epoch``)."""

    def before_optimizer_step(self, ctx: Context) -> None:
        """After backward, before ``optimizer.step()``."""

    def on_batch_end(self, ctx: Context, loss: torch.Tensor, weight) -> None:
        """After each optimizer step, with this rank's batch loss and weight."""

    def on_epoch_end(self, ctx: Context, record: dict) -> None:
        """After each epoch, with its record (may add entries)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` returned."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@dataclass
class History:
    """Per-epoch records: train_loss, val_loss, metrics, lr, seconds."""

    epochs: list[dict] = field(default_factory=list)

    def series(self, key: str) -> list:
        return [e.get(key) for e in self.epochs]


@dataclass
class FitResult:
    """What ``fit`` returns. ``model`` holds the best epoch's weights when ``keep_best``
    was on (``best_epoch``, 1-based, and its ``best_value``), else the last epoch's."""

    model: nn.Module
    history: History
    standardizer: RunningStandardizer | None
    task: str
    num_classes: int | None
    best_epoch: int | None = None
    best_value: float | None = None
    prior: torch.Tensor | None = None            # the training labels' class prior
    effective_prior: torch.Tensor | None = None  # the prior the raw logits model

    @property
    def _kept(self) -> dict:
        """The history record of the epoch whose weights ``model`` holds (the best, else
        the last; empty before any)."""
        epochs = self.history.epochs
        return epochs[self.best_epoch - 1] if self.best_epoch else (epochs[-1] if epochs
                                                                   else {})

    @property
    def temperature(self) -> float:
        """What the predictor divides the logits by: the temperature fitted at the kept
        epoch (1 without validation)."""
        return self._kept.get("temperature", 1.0)

    @property
    def class_bias(self) -> list | None:
        """The per-class bias the predictor adds after the temperature, fitted at the kept
        epoch (``fit(class_bias=True)``; else None)."""
        return self._kept.get("class_bias")

    def predictor_for(self, prior=None) -> nn.Module:
        """The ready-to-use module: the standardization layer (if any), the model, and
        for a classifier the division of its logits by ``temperature`` and their shift
        from the effective prior to ``prior`` (default: the training data's true prior;
        ``"balanced"``: uniform over the classes seen in training; or K probabilities, a
        deployment prior, positive for every class seen in training and 0 for the
        others)."""
        layers = [Standardize(self.standardizer)] if self.standardizer is not None else []
        layers.append(self.model)
        if self.temperature != 1.0 or self.class_bias is not None:
            layers.append(Temperature(self.temperature, self.class_bias))
        if self.prior is not None:
            prior = target_prior(prior, self.prior)
            if not torch.equal(torch.as_tensor(prior, dtype=torch.float64),
                               self.effective_prior.double()):
                layers.append(PriorShift(self.effective_prior, prior))
        return layers[0] if len(layers) == 1 else nn.Sequential(*layers).to(
            device_of(self.model))

    @property
    def predictor(self) -> nn.Module:
        """``predictor_for()``: probabilities under the training data's prior."""
        return self.predictor_for()
