"""One adapter per chapter: when each trick runs inside ``fit`` and what state it saves.

The chapter objects stay usable by hand exactly as they are; an adapter only decides
where in the loop one of them acts. ``Tricks`` is the switchboard that builds the list
in the order that makes them compose (the loss measured first; the balance trick before
bias init, which reads the effective prior it publishes; clipping before the
centralizing step; the plateau scheduler last, on the final optimizer).
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, replace

import torch

from .._validation import check_choice
from ..accumulate import LossAccumulator
from ..bias import init_bias_
from ..centralize import Centralized, _coupled_weight_decay, clip_grads_
from ..flat_grads import FlatGradients
from ..imbalance import class_weights
from ..models import last_linear
from ..plateau import FluctuationPlateau
from ..prior import check_tau, effective_prior
from ..sampler import OversamplingSampler
from ..scaling import scale_hparams
from ..standardize import (
    PER,
    TRAINING_FLOOR,
    Standardize,
    standardize_per,
    training_standardizer,
)
from .protocol import Context, Trick


class LossAccumulation(Trick):
    """Loss accumulation: the epoch's size-weighted ``train_loss`` from the batch losses
    already computed (no host sync per step; one at the end of the epoch)."""

    state_key = "loss_accumulation"

    def __init__(self, nan_policy: str = "raise") -> None:
        self.accumulator = LossAccumulator(nan_policy)
        self.rank = 0

    def setup(self, ctx: Context) -> None:
        self.rank = ctx.rank

    def on_batch_end(self, ctx: Context, loss: torch.Tensor, weight) -> None:
        self.accumulator.update(loss, n=weight)

    def on_epoch_end(self, ctx: Context, record: dict) -> None:
        record["train_loss"] = self.accumulator.compute()  # a host sync: once per epoch
        self.accumulator.reset()

    def state_dict(self) -> dict:
        """The partial sums reduced over ranks: a collective, every rank calls it."""
        return self.accumulator.state_dict(reduce=True)

    def load_state_dict(self, state: dict) -> None:
        if self.rank == 0:  # the saved sums are already over every rank
            self.accumulator.load_state_dict(state)


class Standardization(Trick):
    """Batch-at-a-time standardization: mean and std from one float64 pass over the
    inputs; each batch is standardized as it is drawn (no standardized copy), by the
    float32 ``Standardize`` layer the saved model also uses. Recomputed on resume.

    ``per``: ``"feature"`` (a table's columns; per channel for ``N x C x ...`` inputs)
    or ``"channel"`` (images and signals: one mean and std per channel over every
    position, as torchvision's ``Normalize``; a flat ``(n, positions)`` input is one
    channel). Per-feature statistics give a pixel that is almost always blank a z-score
    of 40 and cost digits-zipf 0.8 points; per channel they tie (README, "standardization
    on image-like inputs"). ``dim``: the feature axis, overriding ``per``.
    ``scale_floor`` and ``with_mean``: ``RunningStandardizer``'s (a fraction of the
    median std; subtract the mean or only scale)."""

    def __init__(self, dim: int | None = None, scale_floor: float = TRAINING_FLOOR,
                 with_mean: bool = True, per: str = "feature") -> None:
        check_choice("per", per, PER)
        self.dim, self.scale_floor, self.with_mean, self.per = dim, scale_floor, with_mean, per

    def setup(self, ctx: Context) -> None:
        ctx.standardizer = training_standardizer(ctx.inputs(), self.per, self.dim,
                                                 self.scale_floor, self.with_mean)
        layer = Standardize(ctx.standardizer).to(ctx.device)
        ctx.prepare = layer.forward  # no module-call overhead

    def __repr__(self) -> str:
        return f"Standardization(per={self.per!r})"


class Oversampling(Trick):
    """Oversampling by indices: every class drawn up to the largest one each epoch
    (``OversamplingSampler`` owns the batch order). The loss then sees every present
    class equally often, so the effective prior it publishes is uniform over them."""

    def setup(self, ctx: Context) -> None:
        if ctx.head != "softmax":
            return
        ctx.sampler = OversamplingSampler(ctx.y.numpy(), seed=ctx.seed,
                                          num_replicas=ctx.world, rank=ctx.rank)
        ctx.prior = torch.as_tensor(effective_prior(ctx.prior, oversample=True))


class BalancedWeights(Trick):
    """Balanced class weights: the loss weighs class ``c`` by ``n / (K n_c)``
    (scikit-learn's ``"balanced"``). The weighted prior it publishes is uniform."""

    def setup(self, ctx: Context) -> None:
        if ctx.head != "softmax":
            return
        weights = class_weights(ctx.y.numpy(), num_classes=ctx.num_classes)
        ctx.class_weight = torch.as_tensor(weights, dtype=torch.float32)
        ctx.prior = torch.as_tensor(effective_prior(ctx.prior, class_weight=weights))


class LogitAdjustment(Trick):
    """The logit-adjusted loss (Menon et al., 2021): ``CE(f + τ log π, y)`` on the
    natural data, so the raw logits ``f`` model the prior ``π^(1 − τ)`` (uniform for
    ``τ = 1``), which it publishes; no sample is repeated and no weight is changed."""

    def __init__(self, tau: float = 1.0) -> None:
        self.tau = check_tau(tau)

    def setup(self, ctx: Context) -> None:
        if ctx.head != "softmax":
            return
        log_prior = torch.log(ctx.prior.clamp_min(1e-12)).float()
        ctx.logit_adjustment = self.tau * log_prior
        ctx.prior = torch.as_tensor(effective_prior(ctx.prior, tau=self.tau))

    def __repr__(self) -> str:
        return f"LogitAdjustment(tau={self.tau})"


class BiasInit(Trick):
    """Last-layer bias initialization: the head's bias set so that the model's output at
    initialization is the label distribution the loss sees (``ctx.prior``, the effective
    prior when a balance trick changed it; the label mean for a linear head)."""

    def setup(self, ctx: Context) -> None:
        head = last_linear(ctx.model)
        if head is None:
            return
        if ctx.head == "softmax":
            # the raw logits model ctx.prior; the loss adds ctx.logit_adjustment to them
            init_bias_(head, None, "softmax", prior=ctx.prior.numpy())
        else:
            init_bias_(head, ctx.y, "linear")


class LeslieRescaling(Trick):
    """Leslie Smith's rule: the LR tuned at ``reference_batch_size`` rescaled to the
    batch size trained with (``scale_hparams``, ``rule`` "sqrt" for Adam-family, "linear"
    for SGD)."""

    def __init__(self, reference_batch_size: int, rule: str = "sqrt") -> None:
        self.reference_batch_size, self.rule = reference_batch_size, rule

    def setup(self, ctx: Context) -> None:
        for group in ctx.optimizer.param_groups:
            group["lr"] = scale_hparams(group["lr"], self.reference_batch_size, ctx.batch_size,
                                        rule=self.rule).lr
            if "initial_lr" in group:  # a scheduler already attached starts from it
                group["initial_lr"] = group["lr"]


def _flat_gradients(ctx: Context) -> FlatGradients | None:
    """The run's flat gradient buffer, made by the first trick that asks: on one process
    and the CPU only (DDP owns the gradients on several; elsewhere torch's foreach
    kernels are fused already)."""
    if ctx.gradients is None and ctx.world == 1:
        params = [p for p in ctx.model.parameters() if p.requires_grad]
        if FlatGradients.supports(params):
            ctx.gradients = FlatGradients(params)
    return ctx.gradients


class Centralization(Trick):
    """Gradient centralization after clipping, before the step: ``Centralized``'s rule on
    the run's optimizer (every gradient with ``ndim > 1``, groups with
    ``centralize=False`` skipped, and with coupled weight decay the paper's
    ``GC(grad + wd p)``); on the CPU without coupled weight decay, one compiled pass
    over the flat gradient buffer."""

    def setup(self, ctx: Context) -> None:
        self.centralizer = Centralized(ctx.optimizer)
        groups = [g for g in ctx.optimizer.param_groups if g.get("centralize", True)]
        grads = _flat_gradients(ctx)
        self.flat = None
        if grads is not None and not any(_coupled_weight_decay(ctx.optimizer, g)
                                         for g in groups):
            with contextlib.suppress(ValueError):  # a parameter outside the model
                self.flat = grads, grads.rows_of(p for g in groups for p in g["params"]
                                                      if p.requires_grad)

    def before_optimizer_step(self, ctx: Context) -> None:
        if self.flat is None:
            self.centralizer.centralize()
        else:
            grads, rows = self.flat
            grads.centralize_(rows)


class Clipping(Trick):
    """Gradient clipping by the global norm, torch's rule: one compiled pass over the
    flat gradient buffer on the CPU, ``clip_grads_`` (fused) elsewhere."""

    def __init__(self, max_norm: float = 1.0) -> None:
        self.max_norm = max_norm

    def setup(self, ctx: Context) -> None:
        self.params = [p for p in ctx.model.parameters() if p.requires_grad]
        self.flat = _flat_gradients(ctx)

    def before_optimizer_step(self, ctx: Context) -> None:
        if self.flat is not None:
            self.flat.clip_(self.max_norm)
        else:
            clip_grads_([p.grad for p in self.params if p.grad is not None], self.max_norm)


class Plateau(Trick):
    """LR plateau detection from EMA fluctuations (``FluctuationPlateau``), stepped once
    an epoch on ``monitor``: ``"val_loss"`` (the training loss without validation data),
    ``"train_loss"`` (which does not rise when the model starts to overfit) or
    ``"calibrated_val_loss"`` (a classifier's validation loss after temperature scaling,
    which does not rise with overconfidence alone; ``val_loss`` for a regression)."""

    state_key = "plateau"

    def __init__(self, monitor: str = "val_loss", **options) -> None:
        self.monitor = check_choice("plateau_monitor", monitor, PLATEAU_MONITORS)
        self.options = options

    def setup(self, ctx: Context) -> None:
        self.scheduler = FluctuationPlateau(ctx.optimizer, **self.options)

    def on_epoch_end(self, ctx: Context, record: dict) -> None:
        metric = record.get(self.monitor, record.get("val_loss", record.get("train_loss")))
        if metric is None:
            raise ValueError("tricks: the plateau scheduler needs val_data or the loss "
                             "accumulation trick (a loss to watch)")
        self.scheduler.step(metric)

    def state_dict(self) -> dict:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state)


BALANCE = (None, "oversample", "weights", "logit_adjust")
PLATEAU_MONITORS = ("val_loss", "train_loss", "calibrated_val_loss")


@dataclass(frozen=True)
class Tricks:
    """Which tricks the loop uses; ``build()`` gives the adapters in composing order.
    Each applies only where the task allows it (balance and bias init's prior:
    classification).

    The defaults are what the paired evidence of ``benchmarks/outcome.py`` supports (8
    seeds, 150 epochs, five bundled tasks, Adam at 1e-2): a trick is on only where it
    hurts on no task. Bias init, standardization, centralization, clipping and the
    plateau scheduler each hurt on at least one task and are off (``Tricks.all()``
    switches every one on); the logit-adjusted loss is on (+1.35 points of balanced
    accuracy on mnist1d-zipf; on digits-zipf +0.03, worse in 4 of 8 seeds).

    ``balance``: ``"oversample"``, ``"weights"``, ``"logit_adjust"`` (with ``tau``) or
    ``None``. ``reference_batch_size``:
    the batch size ``lr`` was tuned at; when it differs, ``lr`` is rescaled by
    ``scale_hparams`` with ``rescale_rule``. ``accumulate``: measure the training loss
    (on in ``Tricks.none()`` too: it changes no update). ``plateau_monitor``: the loss
    the plateau scheduler watches, ``"val_loss"``, ``"train_loss"`` or
    ``"calibrated_val_loss"``. ``standardize``:
    ``True`` or ``"feature"`` (per column of a table, per channel of ``N x C x ...``
    inputs), ``"channel"`` (images and signals given flat: one mean and std for all
    positions; see ``Standardization``) or ``False``.
    """

    bias_init: bool = False
    balance: str | None = "logit_adjust"
    standardize: bool | str = False
    centralize: bool = False
    clip_norm: float | None = None
    plateau: bool = False
    reference_batch_size: int | None = None
    rescale_rule: str = "sqrt"
    accumulate: bool = True
    tau: float = 1.0
    plateau_monitor: str = "val_loss"

    def __post_init__(self) -> None:
        if self.balance not in BALANCE:
            raise ValueError(f"tricks.balance: expected one of {BALANCE}, got "
                             f"{self.balance!r}")
        check_tau(self.tau, "tricks.tau")
        standardize_per(self.standardize, "tricks.standardize")
        check_choice("tricks.plateau_monitor", self.plateau_monitor, PLATEAU_MONITORS)

    @classmethod
    def none(cls) -> Tricks:
        """The plain run: every training trick off (the loss is still measured)."""
        return cls(balance=None)

    @classmethod
    def all(cls, **overrides) -> Tricks:
        """Every trick on: bias init, the logit-adjusted loss, standardization,
        centralization, clipping at norm 1 and the plateau scheduler (``overrides``
        change any of them, for example ``balance="oversample"``)."""
        return cls(**{"bias_init": True, "standardize": True, "centralize": True,
                      "clip_norm": 1.0, "plateau": True, **overrides})

    def without(self, name: str) -> Tricks:
        """These tricks with ``name`` switched off (for ablations)."""
        off = {"clip_norm": None, "balance": None, "reference_batch_size": None}
        return replace(self, **{name: off.get(name, False)})

    def plus(self, name: str) -> Tricks:
        """These tricks with ``name`` switched on as ``Tricks.all()`` has it."""
        return replace(self, **{name: getattr(Tricks.all(), name)})

    def off(self) -> list[str]:
        """The names of the tricks ``Tricks.all()`` has and these do not."""
        return [n for n in Tricks.all().on() if n not in self.on()]

    def on(self) -> list[str]:
        """The names of the tricks switched on (the loss measurement aside)."""
        return [k for k, v in asdict(self).items() if v not in (False, None)
                and k not in ("rescale_rule", "accumulate", "tau", "plateau_monitor")]

    def build(self) -> list[Trick]:
        """The adapters, in the order that makes them compose."""
        tricks: list[Trick] = [LossAccumulation()] if self.accumulate else []
        if self.standardize:
            tricks.append(Standardization(per=standardize_per(self.standardize)))
        if self.balance == "oversample":
            tricks.append(Oversampling())
        elif self.balance == "weights":
            tricks.append(BalancedWeights())
        elif self.balance == "logit_adjust":
            tricks.append(LogitAdjustment(self.tau))
        if self.bias_init:
            tricks.append(BiasInit())
        if self.reference_batch_size:
            tricks.append(LeslieRescaling(self.reference_batch_size, self.rescale_rule))
        if self.clip_norm:  # clip, then centralize: before_optimizer_step runs in order
            tricks.append(Clipping(self.clip_norm))
        if self.centralize:
            tricks.append(Centralization())
        if self.plateau:
            tricks.append(Plateau(self.plateau_monitor))
        return tricks
