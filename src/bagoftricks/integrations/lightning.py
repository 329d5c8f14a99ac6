"""``BagOfTricks``: the tricks as one Lightning callback.

``Trainer(callbacks=[BagOfTricks()])`` is the whole change to a user's code::

    trainer = lightning.pytorch.Trainer(max_epochs=30, callbacks=[BagOfTricks()])
    trainer.fit(module, train_loader, val_loader)

What it does, each switchable:

- ``bias_init``: the last ``nn.Linear`` of the module gets the bias that makes the
  step-0 loss the best label-only loss (softmax: the log of the prior the loss sees,
  the effective prior under ``balance``; one output with 0/1 labels: the log-odds;
  otherwise the label mean). Labels come from ``labels=`` or the train dataset.
- ``balance``: ``"oversample"`` swaps an ``OversamplingSampler`` into the train
  DataLoader (it never shards itself, so Lightning's ``DistributedSamplerWrapper`` shards
  it exactly once under DDP: each rank gets its share, the ranks together the whole
  oversampled epoch); ``"weights"`` and ``"logit_adjust"`` need the module's training
  step to use ``callback.loss(logits, y)`` (checked at the first batch).
  ``callback.correct(logits)`` then moves the trained model's scores from the prior its
  loss saw to the training labels' (or ``prior="balanced"``, or K probabilities).
- ``standardize``: mean and std from one pass over the train loader, as ``fit``'s
  ``Standardization`` computes them (``True`` or ``"feature"``: per column of a table,
  per channel of ``N x C x ...`` inputs; ``"channel"``: an image or signal given flat is
  one channel; the same scale floor), held
  by a ``Standardize`` layer registered on the module (``bagoftricks_standardize``, so
  checkpoints save it) and applied to the first argument of ``module(x)`` by a forward
  pre-hook: the training step must call ``self(x)`` (checked at the first batch).
- ``centralize``: gradient centralization in ``on_before_optimizer_step``. Lightning
  calls that hook *before* its own ``gradient_clip_val`` clipping, so the threshold
  is compared with the centralized gradient's norm (never larger than the raw norm);
  both operations are linear, so the result is still centralized and differs from
  bagoftricks' own loop (clip, then centralize) only in when the clip engages.
- ``plateau``: a ``FluctuationPlateau`` on each optimizer, stepped on every rank with
  ``monitor`` averaged over the ranks, at the end of each training epoch in which the
  metric was logged (after validation for a validation metric).
- ``log_loss``: the epoch's size-weighted training loss from a ``LossAccumulator``
  (no sync per step, one at the epoch's end), logged as ``train_loss_epoch``.

Its state (the plateau schedulers) is saved in Lightning checkpoints and restored.
"""

from __future__ import annotations

import os
import warnings

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader

from ..accumulate import LossAccumulator
from ..centralize import Centralized
from ..labels import dataset_labels
from ..plateau import FluctuationPlateau
from ..sampler import OversamplingSampler
from ..standardize import Standardize, standardize_per, training_standardizer
from .common import Priors, balanced_loss, check_balance, corrected, init_head_, priors_for

STANDARDIZE_NAME = "bagoftricks_standardize"


class BagOfTricks(pl.Callback):
    """The tricks inside a Lightning ``Trainer``; see the module docstring.

    Parameters
    ----------
    labels : the training labels (default: read from the train DataLoader's dataset).
    bias_init, standardize, centralize, plateau, log_loss : switch each trick.
    balance : None, ``"oversample"``, ``"weights"`` or ``"logit_adjust"`` (with ``tau``).
    monitor : the logged metric the plateau scheduler watches.
    mode : ``"min"`` or ``"max"`` for ``monitor``.
    plateau_options : more ``FluctuationPlateau`` arguments (``window``, ``factor``, ...).
    seed : the oversampling sampler's seed (default: ``PL_GLOBAL_SEED`` or 0).
    """

    def __init__(self, *, labels=None, bias_init: bool = True, balance: str | None = None,
                 tau: float = 1.0, standardize: bool | str = False, centralize: bool = True,
                 plateau: bool = True, monitor: str = "val_loss", mode: str = "min",
                 plateau_options: dict | None = None, log_loss: bool = True,
                 seed: int | None = None) -> None:
        check_balance(balance, tau)
        self.labels, self.balance, self.tau = labels, balance, tau
        self.standardize = standardize_per(standardize)  # None, "feature" or "channel"
        self.bias_init, self.centralize = bias_init, centralize
        self.plateau, self.monitor = plateau, monitor
        self.plateau_options = {"mode": mode, **(plateau_options or {})}
        self.log_loss, self.seed = log_loss, seed
        self.priors: Priors | None = None
        self.schedulers: list[FluctuationPlateau] = []
        self._centralizers: dict[int, Centralized] = {}
        self._saved_state: dict | None = None
        self._accumulator = LossAccumulator()
        self._checks: dict[str, bool] = {}
        self._validated = False
        self._patched = None

    # -- setup: before Lightning restores a checkpoint, so resumed weights win --------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        needs_loader = self.standardize or self.balance == "oversample" or (
            self.labels is None and (self.bias_init or self.balance))
        loader = _train_loader(trainer) if needs_loader else None
        labels = None
        if self.bias_init or self.balance:
            labels = dataset_labels(getattr(loader, "dataset", None), self.labels)
        if labels is not None:
            self.priors = priors_for(pl_module, labels, self.balance, self.tau)
        if self.bias_init:
            init_head_(pl_module, labels, self.priors)
        if self.standardize:
            self._add_standardization(pl_module, loader)
        if self.balance == "oversample":
            self._oversample(trainer, labels)
        if self.balance in ("weights", "logit_adjust"):
            self._checks["loss"] = False

    def _add_standardization(self, pl_module, loader) -> None:
        standardizer = training_standardizer((_inputs(batch) for batch in loader),
                                             self.standardize)
        pl_module.add_module(STANDARDIZE_NAME, Standardize(standardizer))
        self._checks["standardize"] = False

        def standardize_first(module, args):
            self._checks["standardize"] = True
            return (getattr(module, STANDARDIZE_NAME)(args[0]), *args[1:])
        pl_module.register_forward_pre_hook(standardize_first)

    def _oversample(self, trainer: pl.Trainer, labels: np.ndarray) -> None:
        # Lightning asks its data source for the train loader (again when it reloads
        # dataloaders); the loader it gets carries the oversampling sampler. This uses
        # Lightning's private ``fit_loop._data_source`` (tested with the pinned version).
        source = trainer.fit_loop._data_source
        original = source.dataloader
        seed = self.seed if self.seed is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))

        def oversampled():
            return _with_sampler(original(), OversamplingSampler(labels, seed=seed))
        source.dataloader = oversampled
        self._patched = source

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if self._patched is not None:
            del self._patched.dataloader  # the class's own method again
            self._patched = None

    # -- the optimizers exist from here on ---------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.plateau:
            self.schedulers = [FluctuationPlateau(opt, **self.plateau_options)
                               for opt in trainer.optimizers]
            if self._saved_state is not None:
                for scheduler, state in zip(self.schedulers, self._saved_state["plateau"],
                                            strict=True):
                    scheduler.load_state_dict(state)
        if self.centralize:
            self._centralizers = {id(opt): Centralized(opt) for opt in trainer.optimizers}

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy with ``balance``'s class weights or logit adjustment (plain
        cross-entropy without one): what the training step computes its loss with."""
        self._checks["loss"] = True
        if self.priors is None:
            return torch.nn.functional.cross_entropy(logits, target)
        return balanced_loss(logits, target, self.priors)

    def correct(self, logits: torch.Tensor, prior=None) -> torch.Tensor:
        """The trained model's logits moved from the prior its loss saw to ``prior``
        (default: the training labels'; ``"balanced"``; or K probabilities): after a
        balance choice, probabilities that hold as the classes occur."""
        return corrected(self.priors, logits, prior)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self.centralize:
            centralizer = self._centralizers.get(id(optimizer))
            if centralizer is None:  # an optimizer Lightning wrapped after on_fit_start
                centralizer = self._centralizers[id(optimizer)] = Centralized(optimizer)
            centralizer.centralize()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        missing = [name for name, seen in self._checks.items() if not seen]
        if missing:
            raise ValueError(_MISSING[missing[0]])
        self._checks.clear()
        if self.log_loss:
            loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
            if isinstance(loss, torch.Tensor):
                self._accumulator.update(loss.detach(), n=_batch_size(batch))

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._validated = True

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = dict(trainer.callback_metrics)
        if self.log_loss and self._accumulator.steps > 0:  # the same on every rank
            value = self._accumulator.compute()  # summed over ranks: one sync an epoch
            self._accumulator.reset()
            pl_module.log("train_loss_epoch", value, on_epoch=True, sync_dist=False)
            metrics["train_loss_epoch"] = value
        if not self.plateau:
            return
        fresh = self._validated or not self.monitor.startswith("val")
        self._validated = False
        if self.monitor not in metrics:
            if not fresh:  # no validation this epoch (check_val_every_n_epoch > 1)
                return
            raise ValueError(f"monitor: {self.monitor!r} was never logged (logged: "
                             f"{sorted(metrics)}); log it with self.log({self.monitor!r}, ...)"
                             f" or pass BagOfTricks(monitor=...) or plateau=False")
        if fresh:
            for scheduler in self.schedulers:
                scheduler.step(float(metrics[self.monitor]))

    # -- checkpoints ------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"plateau": [s.state_dict() for s in self.schedulers]}

    def load_state_dict(self, state_dict: dict) -> None:
        self._saved_state = state_dict  # applied in on_fit_start, once optimizers exist


_MISSING = {
    "loss": "balance: 'weights' and 'logit_adjust' change the loss; compute the training "
            "step's loss with callback.loss(logits, y) (or use balance='oversample')",
    "standardize": "standardize: the forward pre-hook never ran; call the module itself "
                   "(self(x)) in training_step, or pass standardize=False",
}


def _train_loader(trainer: pl.Trainer) -> DataLoader:
    loader = trainer.fit_loop._data_source.dataloader()
    if not isinstance(loader, DataLoader):
        raise ValueError(f"train_dataloaders: expected one torch DataLoader, got "
                         f"{type(loader).__name__}; pass labels= and balance=None, "
                         f"standardize=False")
    return loader


def _with_sampler(loader: DataLoader, sampler) -> DataLoader:
    """The same DataLoader with ``sampler`` instead of its own (shuffle off)."""
    if not isinstance(loader, DataLoader) or loader.batch_size is None:
        raise ValueError("balance: 'oversample' needs one DataLoader built with batch_size "
                         "(not a batch_sampler)")
    if not isinstance(loader.sampler, (torch.utils.data.RandomSampler,
                                       torch.utils.data.SequentialSampler)):
        warnings.warn(f"balance: the train DataLoader's {type(loader.sampler).__name__} is "
                      f"replaced by an OversamplingSampler", UserWarning, stacklevel=2)
    extra = {"prefetch_factor": loader.prefetch_factor,
             "persistent_workers": loader.persistent_workers} if loader.num_workers else {}
    return DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=sampler,
                      num_workers=loader.num_workers, collate_fn=loader.collate_fn,
                      pin_memory=loader.pin_memory, drop_last=loader.drop_last,
                      timeout=loader.timeout, worker_init_fn=loader.worker_init_fn,
                      multiprocessing_context=loader.multiprocessing_context,
                      generator=loader.generator, **extra)


def _inputs(batch) -> torch.Tensor:
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    if not isinstance(x, torch.Tensor):
        raise ValueError("standardize: batches must be tensors or (x, y) tuples; pass "
                         "standardize=False and standardize in the module")
    return x


def _batch_size(batch) -> int:
    return len(_inputs(batch))
