"""``BagOfTricksCallback``: the tricks inside a Hugging Face ``Trainer``, where it allows.

::

    callback = BagOfTricksCallback(balance="logit_adjust")
    trainer = Trainer(model, args, train_dataset=train, eval_dataset=val,
                      callbacks=[callback], compute_loss_func=callback.compute_loss)

- ``bias_init``: at the start of a fresh run (not a resumed one) the model's last
  ``nn.Linear`` gets the bias that makes the step-0 loss the best label-only loss, from
  the effective prior under ``balance``. Labels come from ``labels=`` or the train
  dataset (a ``labels``/``label`` column, ``targets``, or ``dataset[i]``).
- ``balance``: ``"weights"`` or ``"logit_adjust"`` through ``compute_loss_func=
  callback.compute_loss`` (checked at the first step). The loss is summed and divided
  by the Trainer's ``num_items_in_batch``, so gradient accumulation adds up exactly
  (balanced weights average 1 over the training set). The Trainer's ``eval_loss`` uses
  the same loss: for ``"logit_adjust"`` that is the loss of the true-prior probabilities.
  The Trainer builds its own sampler, so oversampling is not offered here.
  ``callback.correct(logits)`` then moves the trained model's scores from the prior its
  loss saw to the training labels' (or ``prior="balanced"``, or K probabilities).
- ``centralize``: gradient centralization in ``on_pre_optimizer_step``, which the
  Trainer calls after its ``max_grad_norm`` clipping (bagoftricks' own order).
- ``plateau``: a ``FluctuationPlateau`` stepped on ``monitor`` at each evaluation. A
  cut also scales the Trainer's own schedule (its ``base_lrs``), so the two compose
  multiplicatively instead of the schedule undoing the cut at the next step. Its state
  is written to ``bagoftricks.json`` in each checkpoint folder and read on resume.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from transformers import TrainerCallback

from ..centralize import Centralized
from ..labels import dataset_labels
from ..plateau import FluctuationPlateau
from .common import Priors, balanced_loss, check_balance, corrected, init_head_, priors_for

STATE_FILE = "bagoftricks.json"


class BagOfTricksCallback(TrainerCallback):
    """The tricks inside a ``transformers.Trainer``; see the module docstring.

    Parameters
    ----------
    labels : the training labels (default: read from the train dataset).
    bias_init, centralize, plateau : switch each trick.
    balance : None, ``"weights"`` or ``"logit_adjust"`` (with ``tau``).
    monitor : the evaluation metric the plateau scheduler watches (``"eval_loss"``).
    mode : ``"min"`` or ``"max"`` for ``monitor``.
    plateau_options : more ``FluctuationPlateau`` arguments (``window``, ``factor``, ...).
    """

    def __init__(self, *, labels=None, bias_init: bool = True, balance: str | None = None,
                 tau: float = 1.0, centralize: bool = True, plateau: bool = True,
                 monitor: str = "eval_loss", mode: str = "min",
                 plateau_options: dict | None = None) -> None:
        if balance == "oversample":
            raise ValueError("balance: the Trainer builds its own sampler; use 'weights' "
                             "or 'logit_adjust' (or the Lightning callback to oversample)")
        check_balance(balance, tau)
        self.labels, self.balance, self.tau = labels, balance, tau
        self.bias_init, self.centralize, self.plateau = bias_init, centralize, plateau
        self.monitor = monitor
        self.plateau_options = {"mode": mode, **(plateau_options or {})}
        self.priors: Priors | None = None
        self.scheduler: FluctuationPlateau | None = None
        self._centralizer: Centralized | None = None
        self._loss_used = balance is None

    def on_train_begin(self, args, state, control, model=None, optimizer=None,
                       lr_scheduler=None, train_dataloader=None, **kwargs):
        labels = None
        if self.bias_init or self.balance:
            labels = dataset_labels(getattr(train_dataloader, "dataset", None), self.labels)
            self.priors = priors_for(model, labels, self.balance, self.tau)
        if self.bias_init and state.global_step == 0:  # a resumed run keeps its weights
            init_head_(model, labels, self.priors)
        inner = getattr(optimizer, "optimizer", optimizer)  # accelerate's wrapper
        if self.centralize:
            self._centralizer = Centralized(inner)
        if self.plateau:
            if args.eval_strategy == "no":
                raise ValueError(f"plateau: the Trainer never evaluates, so {self.monitor!r} "
                                 f"is never logged; set eval_strategy='epoch' (or 'steps') "
                                 f"or pass plateau=False")
            if isinstance(lr_scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                raise ValueError("plateau: the Trainer already has a plateau scheduler; "
                                 "pass plateau=False or lr_scheduler_type='constant'")
            self.scheduler = FluctuationPlateau(inner, **self.plateau_options)
            if state.global_step > 0:
                self._load(Path(args.output_dir) / f"checkpoint-{state.global_step}")

    def compute_loss(self, outputs, labels, num_items_in_batch=None) -> torch.Tensor:
        """The balanced loss for ``Trainer(compute_loss_func=...)``: summed, divided by
        ``num_items_in_batch`` when the Trainer passes it (else by the batch size)."""
        self._loss_used = True
        if self.priors is None:
            raise ValueError("compute_loss: the training labels are not known yet; the "
                             "callback must be in the Trainer's callbacks")
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        n = len(labels) if num_items_in_batch is None else num_items_in_batch
        return balanced_loss(logits, labels, self.priors, reduction="sum") / n

    def correct(self, logits: torch.Tensor, prior=None) -> torch.Tensor:
        """The trained model's logits moved from the prior its loss saw to ``prior``
        (default: the training labels'; ``"balanced"``; or K probabilities): after a
        balance choice, probabilities that hold as the classes occur."""
        return corrected(self.priors, logits, prior)

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        if not self._loss_used:
            raise ValueError(f"balance: {self.balance!r} changes the loss; pass "
                             f"compute_loss_func=callback.compute_loss to the Trainer")
        if self._centralizer is not None:
            self._centralizer.centralize()

    def on_evaluate(self, args, state, control, metrics=None, lr_scheduler=None, **kwargs):
        if self.scheduler is None:
            return
        metrics = metrics or {}
        if self.monitor not in metrics:
            raise ValueError(f"monitor: {self.monitor!r} is not among the evaluation metrics "
                             f"{sorted(metrics)}; pass BagOfTricksCallback(monitor=...)")
        before = self.scheduler.get_last_lr()
        if self.scheduler.step(float(metrics[self.monitor])) and lr_scheduler is not None \
                and hasattr(lr_scheduler, "base_lrs"):
            after = self.scheduler.get_last_lr()
            lr_scheduler.base_lrs = [base * new / old if old else base for base, new, old
                                     in zip(lr_scheduler.base_lrs, after, before, strict=True)]

    def on_save(self, args, state, control, **kwargs):
        if self.scheduler is not None and state.is_world_process_zero:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                (folder / STATE_FILE).write_text(json.dumps(self.scheduler.state_dict()))

    def _load(self, folder: Path) -> None:
        path = folder / STATE_FILE
        if not path.exists():
            warnings.warn(f"resume: no {STATE_FILE} in {folder}; the plateau scheduler "
                          f"starts afresh", UserWarning, stacklevel=3)
            return
        self.scheduler.load_state_dict(json.loads(path.read_text()))
