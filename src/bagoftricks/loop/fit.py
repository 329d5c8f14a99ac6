"""The training loop: a thin, hand-written-looking loop that calls the tricks' hooks.

Batch order is a pure function of ``(seed, epoch)`` owned by ``ctx.sampler``, so a run
resumes exactly from a checkpoint holding the model, the optimizer, every trick's
state, the RNG state, the epoch and the position inside it. Under ``torchrun`` every
rank takes the same global batches and its strided share of each.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn
from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

from .. import distributed
from .._validation import check_choice, check_class_outputs, check_float, check_int
from ..imbalance import weighted_loss
from ..lr_find import SWEEP_STEPS, lr_find
from ..prior import PriorShift, target_prior
from ..sampler import ShuffleSampler
from . import checkpoint
from .adapters import Tricks
from .best import best_tracker
from .evaluate import evaluate
from .inputs import (
    MAX_RETRIES,
    as_input,
    check_precision,
    device_of,
    overflowed,
    resolve_device,
)
from .log import Logger
from .protocol import Context, FitResult, History, Trick

DEFAULTS = Tricks()  # the default tricks (frozen: safe to share)
FUSED_DEVICES = _get_fused_kernels_supported_devices()


def fit(model: nn.Module, train_data: tuple, *, val_data: tuple | None = None,
        loss: str = "auto", optimizer: Callable | None = None, lr: float | str = 1e-2,
        epochs: int = 20, batch_size: int = 64, tricks: Tricks | Sequence[Trick] = DEFAULTS,
        checkpoint_dir: str | os.PathLike | None = None, resume: bool = False,
        checkpoint_every: int | None = None, seed: int = 0,
        callbacks: Sequence[Callable] = (), log: str = "auto",
        keep_best: str | tuple | None = "auto", patience: int | None = None, val_prior=None,
        class_bias: bool = False, labels=None, device="auto", precision: str = "32",
        compile: bool | dict = False, loader_options: dict | None = None) -> FitResult:
    """Train ``model`` on ``train_data`` with ``tricks``.

    Parameters
    ----------
    train_data, val_data : ``(X, y)`` arrays or tensors (batches indexed on the device:
        the fast path), or map-style Datasets of ``(x, y)`` items (read through a
        DataLoader with ``loader_options``); ``y`` integer class labels (cross-entropy
        over the model's outputs) or floats (regression, MSE). Inputs of any shape:
        ``N x C x ...`` inputs are standardized per channel.
    labels : the training Dataset's labels (default: its ``targets``, a
        ``TensorDataset``'s second tensor, or one pass over its items).
    device : ``"auto"`` (this rank's GPU under torchrun, else CUDA, MPS, the CPU) or a
        device; the model trains there and is returned where it was given (on the CPU,
        as Lightning does, when it came on the CPU).
    precision : ``"32"``, ``"bf16"`` (autocast) or ``"16"`` (autocast and a
        ``GradScaler``: unscale, then the tricks' clipping and centralization, then the
        step; GPU only).
    compile : ``True`` (or ``torch.compile`` keyword arguments) compiles the forward pass.
    loader_options : DataLoader options for Dataset inputs (``num_workers``,
        ``pin_memory``, ``persistent_workers``, ``prefetch_factor``, ...).
    loss : ``"auto"``, ``"cross_entropy"`` or ``"mse"``.
    optimizer : a function of the parameters and ``lr`` returning a torch optimizer
        (default Adam, fused where torch has the kernel: at 1e-2 the defaults match or
        beat the reference recipe on four of five bundled tasks, where RAdam at 1e-3
        with every trick lost 1.6-6.5 points on each; ``benchmarks/outcome.py``).
    lr : the learning rate, or ``"auto"``: Leslie Smith's range test (``lr_find``) on
        300 batches' worth of training rows drawn at random (a Dataset's through its
        loader), run after the tricks' setup (standardization and the loss's logit
        adjustment included) at the batch size trained with, so the Leslie rescaling has
        nothing left to do (``bagoftricks fit``'s default; ``benchmarks/cli_defaults.py``).
    tricks : a ``Tricks`` switchboard, or a list of ``Trick`` objects (for example
        ``[*Tricks().build(), MyTrick()]``), whose hooks run in list order.
    checkpoint_dir, resume, checkpoint_every : checkpoints every epoch (and every
        ``checkpoint_every`` steps); ``resume`` continues one, refusing other data or
        settings. Only rank 0 writes.
    callbacks : ``callback(record)`` after each epoch (rank 0).
    log : ``"auto"`` (a bar on a terminal, else lines), ``"bar"``, ``"lines"`` or ``"none"``.
    keep_best : the metric whose best epoch's weights the returned model holds (``"auto"``:
        with ``val_data``, a classifier's ``"calibrated_val_loss"``, the validation log
        loss after temperature scaling, and a regression's ``"val_loss"``; a name such as
        ``"balanced_accuracy"``, whose direction is known, or ``(name, "min" | "max")``;
        ``None`` keeps the last epoch). A classifier's predictor divides its logits by
        the temperature fitted at the epoch it keeps (``FitResult.temperature``).
    patience : stop after that many epochs without improvement of ``keep_best``.
    val_prior : the class prior ``val_data`` follows when it is not the training data's (a
        held-out set drawn balanced, say): ``"balanced"`` or K probabilities. Validation
        is scored, and the temperature fitted, under it; the predictor still outputs
        probabilities under the training prior (``predictor_for`` moves them).
    class_bias : also fit one bias a class on the validation logits after the temperature
        (bias-corrected temperature scaling; ``FitResult.class_bias``), which the
        predictor adds: each class's mean predicted probability is matched to its rate
        on ``val_data``. Off by default: it pays where the validation rows are many and
        the model unsure (mnist1d-zipf, 8-79 rows a class: the worst class's
        probability off by 14% instead of 39%, log loss 1.161 instead of 1.176) and
        costs where a class has a handful (digits-zipf, 3-35: 29% instead of 21%; a
        class with one row: 4.9x; ``examples/prior_evidence.py``).

    Returns
    -------
    FitResult
        The model, the ``History``, the best epoch and the fitted standardizer
        (``result.predictor`` applies it).
    """
    device = resolve_device(device)
    if device.type == "cuda" and distributed.is_distributed():  # NCCL's current device
        torch.cuda.set_device(device)
    autocast_dtype = check_precision(precision, device)
    train = as_input(train_data, labels, device, loader_options, "train_data")
    y = train.labels
    head, k = ("softmax", int(y.max()) + 1) if not y.is_floating_point() else ("linear", None)
    if val_data is not None:
        val_data = as_input(val_data, None, device, loader_options, "val_data")
        if head == "softmax":  # a class seen only in validation still counts
            k = max(k, int(val_data.labels.max()) + 1)
    loss = check_choice("loss", loss, ("auto", "cross_entropy", "mse"))
    if loss == "auto":
        loss = "cross_entropy" if head == "softmax" else "mse"
    check_int("epochs", epochs, 1)
    check_int("batch_size", batch_size, 1)
    world, rank = distributed.world_size(), distributed.rank()
    if batch_size % world:
        raise ValueError(f"batch_size: {batch_size} is not divisible by the {world} ranks")
    config = tricks
    tricks = list(tricks.build() if isinstance(tricks, Tricks) else tricks)
    _check_tricks(tricks, checkpoint_dir is not None)
    best = best_tracker(keep_best, patience, val_data is not None, head == "softmax")

    auto_lr = lr == "auto"
    if not auto_lr:
        check_float("lr", lr, positive=True)
    make_optimizer = optimizer or adam
    prior = (torch.bincount(y, minlength=k).double() / len(y)) if head == "softmax" else None
    for name, value in (("val_prior", val_prior is not None), ("class_bias", class_bias)):
        if value and (val_data is None or head != "softmax"):
            raise ValueError(f"{name}: only for a classifier given val_data")
    scored = prior if val_prior is None else torch.as_tensor(target_prior(
        val_prior, prior, "val_prior"))  # the prior validation is scored under
    home = device_of(model)
    model.to(device)
    ctx = Context(model, make_optimizer(model.parameters(), 1e-3 if auto_lr else lr),
                  train.inputs, y, head, k, prior,
                  ShuffleSampler(len(y), seed, num_replicas=world, rank=rank), batch_size,
                  seed, epochs, world, rank, true_prior=prior, device=device)
    for trick in tricks:
        trick.setup(ctx)
    class_weight, adjustment = (None if t is None else t.to(device)
                                for t in (ctx.class_weight, ctx.logit_adjustment))
    if auto_lr and not resume:  # (a resumed run takes its LR from the checkpoint)
        sweep = train.sample(SWEEP_STEPS * batch_size, seed)  # only the rows it uses
        found = lr_find(model, sweep, loss=loss, optimizer=make_optimizer,
                        batch_size=batch_size, prepare=ctx.prepare,
                        logit_adjustment=ctx.logit_adjustment, seed=seed).suggestion
        for group in ctx.optimizer.param_groups:  # every rank takes the same LR
            group["lr"] = distributed.mean_over_ranks(found)
    seen = prior > 0 if head == "softmax" else None  # the classes training had
    # validation scores the model as it will predict, under the prior val_data follows
    to_val = None if head != "softmax" or torch.equal(ctx.prior, scored) else PriorShift(
        ctx.prior, scored).to(device)
    epoch_start, before_step, batch_end, epoch_end = (
        [getattr(t, hook) for t in tricks if getattr(type(t), hook) is not getattr(Trick, hook)]
        for hook in ("on_epoch_start", "before_optimizer_step", "on_batch_end", "on_epoch_end"))

    scaler = torch.amp.GradScaler(device.type) if precision == "16" else None
    path = Path(checkpoint_dir) / checkpoint.CHECKPOINT if checkpoint_dir is not None else None
    run = path and {  # what a checkpoint must match to be resumed (hashing the data: only then)
        "lr": lr, "batch_size": batch_size, "seed": seed, "loss": loss,
        "tricks": repr(config) if isinstance(config, Tricks) else [repr(t) for t in tricks],
        "keep_best": best and (best.metric, best.mode), "patience": patience,
        "val_prior": None if val_prior is None else scored.tolist(),
        "train_data": train.digest(),
        "val_data": val_data.digest() if val_data is not None else None,
        "precision": precision,
        **({"class_bias": True} if class_bias else {})}  # (checkpoints from before it: off)
    history, start_epoch, start_step, stopped = History(), 0, 0, False
    if resume and path is not None and path.exists():
        state = checkpoint.load(path, run, epochs)
        model.load_state_dict(state["model"])
        ctx.optimizer.load_state_dict(state["optimizer"])
        if scaler is not None:
            scaler.load_state_dict(state["scaler"])
        for trick in tricks:
            if trick.state_key is not None:
                trick.load_state_dict(state["tricks"][trick.state_key])
        torch.set_rng_state(state["rng"])
        history.epochs, stopped = state["history"], state["stopped"]
        start_epoch, start_step = state["epoch"], state["step"]
        if best is not None:
            best.load_state_dict(state["best"])

    def save(epoch: int, step: int) -> None:
        if path is None:
            return
        states = {t.state_key: t.state_dict() for t in tricks if t.state_key}  # collectives
        if rank == 0:
            checkpoint.save(path, {
                "model": model.state_dict(), "optimizer": ctx.optimizer.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None,
                "tricks": states, "rng": torch.get_rng_state(), "run": run,
                "history": history.epochs, "epoch": epoch, "step": step,
                "best": best.state_dict() if best is not None else None, "stopped": stopped})

    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    opt, prepare, logger = ctx.optimizer, ctx.prepare, Logger(log if rank == 0 else "none", epochs)
    zero_grad = opt.zero_grad if ctx.gradients is None else ctx.gradients.zero_
    autocast = (contextlib.nullcontext() if autocast_dtype is None  # (free in full precision)
                else torch.autocast(device.type, autocast_dtype))

    def forward_backward(xb, yb, global_rows):
        """The batch's loss and its gradients (unscaled again in float16)."""
        with autocast:
            out = net(prepare(xb))
            if head == "softmax":
                check_class_outputs(out.shape[-1], k)
            if adjustment is not None:  # the logit-adjusted loss
                out = out + adjustment
            target = yb if loss == "cross_entropy" else yb.reshape(out.shape)
            mean, weight = weighted_loss(out.float(), target, loss, class_weight=class_weight,
                                         return_weight=True)
        zero_grad()
        # DDP averages gradients over ranks: scale so the average is the gradient of the
        # whole global batch's mean (exactly the one-process run's)
        scaled = mean * distributed.rank_share(weight, global_rows) if world > 1 else mean
        if scaler is None:
            scaled.backward()
        else:  # unscaled before the tricks clip and centralize
            scaler.scale(scaled).backward()
            scaler.unscale_(opt)
        return mean, weight

    with distributed.data_parallel(model, device) as net:
        if compile:
            net = torch.compile(net, **(compile if isinstance(compile, dict) else {}))
        for epoch in range(start_epoch, epochs):
            if stopped:  # early-stopped before a resume
                break
            for hook in epoch_start:
                hook(ctx, epoch)
            batches = ctx.sampler.global_batches(batch_size, epoch)
            t0 = time.perf_counter()
            logger.start(epoch, len(batches))
            model.train()
            for step, (xb, yb) in enumerate(train.epoch(batches, start_step), start_step):
                rows = len(batches[step][0])  # the global batch's
                mean, weight = forward_backward(xb, yb, rows)
                if scaler is not None:  # an overflowed batch again at the halved scale
                    for _ in range(MAX_RETRIES):
                        if not overflowed(scaler, opt):
                            break
                        mean, weight = forward_backward(xb, yb, rows)
                for hook in before_step:
                    hook(ctx)
                if scaler is None:
                    opt.step()
                else:
                    scaler.step(opt)
                    scaler.update()
                for hook in batch_end:
                    hook(ctx, mean.detach(), weight)
                logger.advance()
                if checkpoint_every and (step + 1) % checkpoint_every == 0 \
                        and step + 1 < len(batches):
                    save(epoch, step + 1)
            start_step = 0
            record = {"epoch": epoch + 1, "lr": opt.param_groups[0]["lr"]}
            if val_data is not None:
                with autocast:
                    record.update(evaluate(model, val_data.validation(), prepare, head, k,
                                           to_val, seen, class_bias))
            for hook in epoch_end:
                hook(ctx, record)
            record["seconds"] = time.perf_counter() - t0
            history.epochs.append(record)
            logger.end(record)
            for callback in callbacks if rank == 0 else ():
                callback(record)
            stopped = best is not None and best.update(record, model)
            save(epoch + 1, 0)
    task = "classification" if head == "softmax" else "regression"
    if best is not None and best.weights is not None:
        model.load_state_dict(best.weights)
    model.to(home)
    return FitResult(model, history, ctx.standardizer, task, k,
                     best and best.epoch, best and best.value, prior, ctx.prior)


def adam(params, lr: float) -> torch.optim.Adam:
    """``fit``'s default optimizer: torch's Adam, fused where torch has the kernel for
    every trainable parameter (float, on the CPU or a GPU): the same updates to
    rounding; a hand-written loop with it takes 0.73x the time on the mnist1d MLP
    (``benchmarks/loop_overhead.py``)."""
    params = list(params)
    fused = all(p.is_floating_point() and p.device.type in FUSED_DEVICES
                for p in params if p.requires_grad)
    return torch.optim.Adam(params, lr=lr, fused=fused or None)


def _check_tricks(tricks: list, checkpointing: bool) -> None:
    """Every trick is a ``Trick``; when checkpointing, every stateful one has a unique
    ``state_key``."""
    for trick in tricks:
        if not isinstance(trick, Trick):
            raise TypeError(f"tricks: expected Trick objects, got {type(trick).__name__}")
    if not checkpointing:
        return
    keys = []
    for trick in tricks:
        stateful = type(trick).state_dict is not Trick.state_dict
        if stateful and not trick.state_key:
            raise ValueError(f"tricks: {type(trick).__name__} saves state but has no state_key; "
                             "give it a unique string to checkpoint it")
        keys += [trick.state_key] if trick.state_key else []
    if len(keys) != len(set(keys)):
        raise ValueError(f"tricks: state_key values must be unique, got {keys}")
