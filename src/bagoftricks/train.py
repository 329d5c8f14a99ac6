"""The reference training loop: it only composes the chapter objects.

``fit`` trains a model on in-memory tensors ``(X, y)`` with every trick of ``Tricks``
that applies to the task, checkpoints atomically (every epoch, and every
``checkpoint_every`` steps), and resumes exactly: the batch order is a pure function of
``(seed, epoch)``, and the checkpoint holds the model, the optimizer, every trick's state,
the RNG state, the epoch and the position inside it.
"""

from __future__ import annotations

import gc
import hashlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import distributed
from ._validation import check_int
from .accumulate import LossAccumulator
from .bias import init_bias_
from .centralize import Centralized, clip_grad_norm_
from .files import atomic_save
from .imbalance import class_weights, weighted_loss
from .metrics import classification_metrics, regression_metrics
from .plateau import FluctuationPlateau
from .sampler import OversamplingSampler, epoch_seed
from .scaling import scale_hparams
from .standardize import RunningStandardizer, Standardize

CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class Tricks:
    """Which tricks the loop uses; each applies only where the task allows it.

    ``balance``: ``"oversample"`` (``OversamplingSampler``), ``"weights"`` (balanced
    ``weighted_loss``) or ``None``; classification only. ``reference_batch_size``: the
    batch size ``lr`` was tuned at; when it differs, ``lr`` is rescaled by
    ``scale_hparams`` with ``rescale_rule``.
    """

    bias_init: bool = True
    balance: str | None = "oversample"
    standardize: bool = True
    centralize: bool = True
    clip_norm: float | None = 1.0
    plateau: bool = True
    reference_batch_size: int | None = None
    rescale_rule: str = "sqrt"

    @classmethod
    def none(cls) -> Tricks:
        """The plain run: every trick off."""
        return cls(bias_init=False, balance=None, standardize=False, centralize=False,
                   clip_norm=None, plateau=False)

    def without(self, name: str) -> Tricks:
        """These tricks with ``name`` switched off (for ablations)."""
        off = {"clip_norm": None, "balance": None, "reference_batch_size": None}
        return replace(self, **{name: off.get(name, False)})

    def on(self) -> list[str]:
        return [k for k, v in asdict(self).items() if v not in (False, None)
                and k != "rescale_rule"]


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

    @property
    def predictor(self) -> nn.Module:
        """The ready-to-use module: the standardization layer (if any), then the model."""
        if self.standardizer is None:
            return self.model
        return nn.Sequential(Standardize(self.standardizer), self.model)


MAXIMIZED = ("accuracy", "balanced_accuracy", "roc_auc", "pr_auc", "r2")


class BestEpoch:
    """The weights of the best epoch by one recorded metric, and the epochs since it
    (early stopping after ``patience`` epochs without improvement)."""

    def __init__(self, metric: str, mode: str, patience: int | None) -> None:
        self.metric, self.mode, self.patience = metric, mode, patience
        self.epoch: int | None = None
        self.value: float | None = None
        self.weights: dict | None = None
        self.stale = 0

    def update(self, record: dict, model: nn.Module) -> bool:
        """Account for one epoch's ``record``; True when training should stop."""
        value = record.get(self.metric)
        if not isinstance(value, (int, float)):
            usable = [k for k, v in record.items() if isinstance(v, (int, float))
                      and k != "epoch"]
            raise ValueError(f"keep_best: {self.metric!r} is not recorded by this run "
                             f"(recorded: {', '.join(usable)})")
        if value == value and (self.value is None or (
                value < self.value if self.mode == "min" else value > self.value)):
            self.epoch, self.value, self.stale = record["epoch"], float(value), 0
            self.weights = {k: t.detach().clone() for k, t in model.state_dict().items()}
        else:
            self.stale += 1
        return self.patience is not None and self.stale >= self.patience

    def state_dict(self) -> dict:
        return {"metric": self.metric, "mode": self.mode, "patience": self.patience,
                "epoch": self.epoch, "value": self.value, "weights": self.weights,
                "stale": self.stale}

    def load_state_dict(self, state: dict) -> None:
        if (state["metric"], state["mode"]) != (self.metric, self.mode):
            raise ValueError(f"keep_best: the checkpoint tracked {state['metric']!r} "
                             f"({state['mode']}), this run {self.metric!r} ({self.mode})")
        self.epoch, self.value = state["epoch"], state["value"]
        self.weights, self.stale = state["weights"], state["stale"]


def _best_tracker(keep_best, patience, has_val: bool) -> BestEpoch | None:
    """``keep_best``: "auto" (val_loss when there is validation data, else None), None,
    a metric name (its direction known), or ``(name, "min" | "max")``."""
    if keep_best == "auto":
        keep_best = "val_loss" if has_val else None
    if patience is not None:
        check_int("patience", patience, 1)
        if keep_best is None:
            raise ValueError("patience: early stopping needs keep_best (a metric to watch)")
    if keep_best is None:
        return None
    if isinstance(keep_best, str):
        keep_best = (keep_best, "max" if keep_best in MAXIMIZED else "min")
    if not (isinstance(keep_best, tuple) and len(keep_best) == 2
            and isinstance(keep_best[0], str) and keep_best[1] in ("min", "max")):
        raise ValueError(f"keep_best: expected 'auto', None, a metric name or (name, 'min' | "
                         f"'max'), got {keep_best!r}")
    return BestEpoch(keep_best[0], keep_best[1], patience)


def _last_linear(model: nn.Module) -> nn.Module | None:
    last = None
    for m in model.modules():
        if isinstance(m, nn.Linear) and m.bias is not None:
            last = m
    return last


def _pair(data, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(X float32, y)`` as tensors of the same length."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(f"{name}: expected a pair (X, y), got {type(data).__name__}")
    X, y = (torch.as_tensor(a) for a in data)
    if len(X) != len(y):
        raise ValueError(f"{name}: X has {len(X)} rows but y has {len(y)}")
    if len(X) == 0:
        raise ValueError(f"{name}: no rows")
    return X.float(), y


def _digest(X: torch.Tensor, y: torch.Tensor) -> str:
    """A content hash of a dataset, so a resumed run can tell that its data changed."""
    h = hashlib.blake2b(digest_size=16)
    for t in (X, y):
        a = t.detach().cpu().contiguous().numpy()
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def _load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, weights_only=True)
    except Exception:  # any unpickling or zip error means the same thing here
        raise ValueError(f"checkpoint_dir: {path} is not a checkpoint written by bagoftricks, "
                         "or it is corrupted") from None


def _check_same_run(saved: dict, run: dict, done: int, epochs: int) -> None:
    """Refuse to resume a checkpoint with other data or settings, or fewer epochs."""
    changed = [k for k in run if saved.get(k) != run[k]]
    if changed:
        raise ValueError(f"resume: the checkpoint was written with other {', '.join(changed)}; "
                         "resume with the same data and settings, or start a new run")
    if epochs < done:
        raise ValueError(f"epochs: the checkpoint has already trained {done} epochs, more than "
                         f"the {epochs} asked for")


def _task(y: torch.Tensor) -> tuple[str, int | None]:
    if y.is_floating_point():
        return "regression", None
    return "classification", int(y.max()) + 1


class _Logger:
    """A rich progress bar per epoch on a terminal; plain lines otherwise."""

    def __init__(self, mode: str, epochs: int) -> None:
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        self.mode, self.epochs, self.progress = mode, epochs, None

    def start(self, epoch: int, steps: int) -> None:
        if self.mode == "bar":
            from rich.progress import Progress
            self.progress = Progress(transient=True)
            self.progress.start()
            self.task = self.progress.add_task(f"epoch {epoch + 1}/{self.epochs}", total=steps)

    def advance(self) -> None:
        if self.progress is not None:
            self.progress.advance(self.task)

    def end(self, record: dict) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        if self.mode in ("bar", "lines"):
            val = record.get("val_loss")
            val = f"{val:.4f}" if val is not None else "-"
            print(f"epoch {record['epoch']:>3d}/{self.epochs}  train {record['train_loss']:.4f}"
                  f"  val {val}  lr {record['lr']:.3g}  {record['seconds']:.2f}s",
                  file=sys.stderr, flush=True)


def fit(model: nn.Module, train_data: tuple, *, val_data: tuple | None = None,
        loss: str = "auto", optimizer: Callable | None = None, lr: float = 1e-3,
        epochs: int = 20, batch_size: int = 64, tricks: Tricks = Tricks(),
        checkpoint_dir: str | os.PathLike | None = None, resume: bool = False,
        checkpoint_every: int | None = None, seed: int = 0,
        callbacks: Sequence[Callable] = (), log: str = "auto",
        keep_best: str | tuple | None = "auto", patience: int | None = None) -> FitResult:
    """Train ``model`` on ``train_data = (X, y)`` with the tricks of ``tricks``.

    Started by ``torchrun``, it trains with ``DistributedDataParallel``: every rank takes
    the same global batch of ``batch_size`` and its strided share of it, so the per-epoch
    losses equal the one-process run's; only rank 0 logs and writes checkpoints, and
    every rank resumes from them.

    ``y``: integer class labels (classification: cross-entropy over ``K = max + 1``
    outputs) or floats (regression: MSE). ``optimizer``: a function of the parameters
    and ``lr`` returning a torch optimizer (default RAdam). ``callbacks``: called as
    ``callback(epoch_record)`` after each epoch. ``log``: ``"auto"`` (a progress bar on a
    terminal, else one line per epoch), ``"bar"``, ``"lines"`` or ``"none"``.
    ``keep_best``: the metric whose best epoch's weights the returned model holds
    (``"auto"``: ``"val_loss"`` when ``val_data`` is given; a name such as
    ``"balanced_accuracy"``, whose direction is known, or ``(name, "min" | "max")``;
    ``None`` keeps the last epoch). ``patience``: stop after that many epochs without
    improvement. Returns a ``FitResult`` with the model, the ``History``, the best epoch
    and the fitted standardizer (``result.predictor`` applies it).
    """
    X, y = _pair(train_data, "train_data")
    task, k = _task(y)
    if val_data is not None:
        val_data = _pair(val_data, "val_data")
        if task == "classification":  # a class seen only in validation still counts
            k = max(k, int(val_data[1].max()) + 1)
    if loss == "auto":
        loss = "cross_entropy" if task == "classification" else "mse"
    if epochs < 1 or batch_size < 1:
        raise ValueError("epochs, batch_size: must be positive")
    if tricks.balance not in (None, "oversample", "weights"):
        raise ValueError(f"tricks.balance: expected None, 'oversample' or 'weights', got "
                         f"{tricks.balance!r}")
    classification = task == "classification"
    std = RunningStandardizer().fit(X.split(65536)) if tricks.standardize else None
    if tricks.bias_init and not resume:
        head = _last_linear(model)
        if head is not None:
            init_bias_(head, y, "softmax" if classification else "linear")
    if tricks.reference_batch_size and tricks.reference_batch_size != batch_size:
        lr = scale_hparams(lr, tricks.reference_batch_size, batch_size,
                           rule=tricks.rescale_rule).lr
    make_opt = optimizer or (lambda params, lr: torch.optim.RAdam(params, lr=lr))
    opt = make_opt(model.parameters(), lr)
    if tricks.centralize:
        opt = Centralized(opt)
    sched = FluctuationPlateau(opt) if tricks.plateau else None
    cw = None
    if classification and tricks.balance == "weights":
        cw = torch.zeros(k)
        present = np.unique(y.numpy())
        cw[present] = torch.as_tensor(class_weights(y.numpy()), dtype=torch.float32)
    sampler = (OversamplingSampler(y.numpy(), seed=seed, num_replicas=1, rank=0)
               if classification and tricks.balance == "oversample" else None)
    acc = LossAccumulator()
    history, start_epoch, start_step = History(), 0, 0
    ckpt = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir is not None else None
    if ckpt is not None:
        ckpt.parent.mkdir(parents=True, exist_ok=True)
    best = _best_tracker(keep_best, patience, val_data is not None)
    stopped = False
    run = {"lr": lr, "batch_size": batch_size, "seed": seed, "loss": loss,
           "tricks": asdict(tricks), "keep_best": best and (best.metric, best.mode),
           "patience": patience, "train_data": _digest(X, y),
           "val_data": _digest(*val_data) if val_data is not None else None}
    if resume and ckpt is not None and ckpt.exists():
        state = _load_checkpoint(ckpt)
        _check_same_run(state.get("run", {}), run, state["epoch"], epochs)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if sched is not None:
            sched.load_state_dict(state["plateau"])
        if distributed.rank() == 0:  # the saved sums are already over every rank
            acc.load_state_dict(state["accumulator"])
        torch.set_rng_state(state["rng"])
        history.epochs = state["history"]
        start_epoch, start_step = state["epoch"], state["step"]
        if best is not None:
            best.load_state_dict(state["best"])
        stopped = state["stopped"]

    def save(epoch: int, step: int) -> None:
        if ckpt is None:
            return
        acc_state = acc.state_dict(reduce=True)  # a collective: before the rank check
        if distributed.rank() != 0:
            return
        atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                      "plateau": sched.state_dict() if sched is not None else {},
                      "accumulator": acc_state, "rng": torch.get_rng_state(), "run": run,
                      "history": history.epochs, "epoch": epoch, "step": step,
                      "best": best.state_dict() if best is not None else None,
                      "stopped": stopped}, ckpt)

    # Batches are standardized as they are drawn (no standardized copy of X), by the
    # float32 layer the saved model also uses.
    prepare = Standardize(std) if std is not None else nn.Identity()

    def batch_weight(yb):
        return cw[yb].sum() if cw is not None else torch.tensor(float(len(yb)))

    # Under torchrun every rank holds the data, takes the same global batch and trains on
    # its strided share; each rank's loss is scaled so that DDP's gradient average is the
    # gradient of the global batch's weighted mean (exactly as on one process).
    world, rank = distributed.world_size(), distributed.rank()
    if batch_size % world:
        raise ValueError(f"batch_size: {batch_size} is not divisible by the {world} ranks")
    net = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model)
    logger = _Logger(log if rank == 0 else "none", epochs)
    for epoch in range(start_epoch, epochs):
        if stopped:  # early-stopped before a resume
            break
        if sampler is not None:
            sampler.set_epoch(epoch)
            order = sampler.epoch_indices().long()
        else:
            gen = torch.Generator().manual_seed(epoch_seed(seed, epoch))
            order = torch.randperm(len(y), generator=gen)
        batches = order.split(batch_size)
        t0 = time.perf_counter()
        logger.start(epoch, len(batches))
        model.train()
        for step in range(start_step, len(batches)):
            idx = batches[step]
            mine = idx[rank::world]
            out = net(prepare(X[mine]))
            target = y[mine] if loss == "cross_entropy" else y[mine].float().reshape(out.shape)
            mean = weighted_loss(out, target, loss, class_weight=cw)
            share = batch_weight(y[mine])
            opt.zero_grad()
            (mean * (share * world / batch_weight(y[idx]))).backward()
            if tricks.clip_norm:
                clip_grad_norm_(model.parameters(), tricks.clip_norm)
            opt.step()
            acc.update(mean, n=share)  # the epoch's weighted mean over every rank
            logger.advance()
            if checkpoint_every and (step + 1) % checkpoint_every == 0 and \
                    step + 1 < len(batches):
                save(epoch, step + 1)
        start_step = 0
        record = {"epoch": epoch + 1, "train_loss": acc.compute(),
                  "lr": opt.param_groups[0]["lr"]}
        acc.reset()
        if val_data is not None:
            record.update(evaluate(model, val_data, prepare, task, k))
        if sched is not None:
            sched.step(record.get("val_loss", record["train_loss"]))
        record["seconds"] = time.perf_counter() - t0
        history.epochs.append(record)
        logger.end(record)
        for callback in callbacks if rank == 0 else ():
            callback(record)
        stopped = best is not None and best.update(record, model)
        save(epoch + 1, 0)
    if net is not model:  # free DDP's reducer now: collected after the process group is
        del net           # destroyed, it aborts the process ("terminate called ...")
        gc.collect()
    if best is None or best.weights is None:
        return FitResult(model, history, std, task, k)
    model.load_state_dict(best.weights)
    return FitResult(model, history, std, task, k, best.epoch, best.value)


@torch.no_grad()
def evaluate(model: nn.Module, data: tuple, prepare: nn.Module, task: str,
             num_classes: int | None) -> dict:
    """Validation loss and the task's metrics."""
    model.eval()
    X, y = (torch.as_tensor(a) for a in data)
    out = torch.cat([model(prepare(xb)) for xb in X.float().split(8192)])
    model.train()
    if task == "classification":
        if num_classes > out.shape[1]:
            raise ValueError(f"val_data: label {num_classes - 1} is beyond the model's "
                             f"{out.shape[1]} outputs")
        out = out[:, :num_classes]
        val = nn.functional.cross_entropy(out, y).item()
        return {"val_loss": val, **classification_metrics(y.numpy(),
                                                          out.softmax(1).numpy())}
    pred = out.reshape(y.shape)
    return {"val_loss": nn.functional.mse_loss(pred, y.float()).item(),
            **regression_metrics(y.numpy(), pred.numpy())}


def tabular_mlp(in_features: int, out_features: int, hidden: Sequence[int] = (128, 64),
                seed: int = 0) -> nn.Sequential:
    """The MLP the command line trains: Linear-ReLU blocks and a linear head, initialized
    from ``seed`` without touching the caller's global RNG."""
    layers: list[nn.Module] = []
    width = in_features
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)
