"""Leslie Smith's learning-rate range test (Smith, 2017, "Cyclical Learning Rates for
Training Neural Networks", section 3.3; fastai's ``lr_find``).

Train for ``steps`` batches (300: fastai's 100 scattered the suggestion over ±0.3 decades
by seed on mnist1d, 300 over ±0.07) while the LR grows exponentially from ``start_lr`` to
``end_lr``, smoothing the batch loss with a bias-corrected EMA, and stop once the
smoothed loss exceeds ``diverge`` times its minimum (or is not finite). The suggested LR
is the one at the smoothed loss's minimum after the first tenth of the sweep, divided
by 10 (fastai's ``minimum`` rule: the minimum itself is already too large to train at).
The first tenth is left out as fastai leaves it out: its average holds a few batches,
and on an 8%-positive table a second batch with one positive in 64 made the average of
the first two the minimum (a suggestion of 1e-8). The model's weights are restored.

Fallbacks, each with a warning and ``fallback=True``: fewer rows than one batch, a
sweep that diverges within its first 10% of steps, a smoothed loss that never falls
0.1% below its start, and one still falling at ``end_lr`` (no minimum: seen on a
128-row table) all return ``fallback_lr`` instead of a suggestion. With fewer batches
than steps the data is cycled (reshuffled each pass).
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ._validation import check_class_outputs, check_float, check_int, user_stacklevel
from .imbalance import weighted_loss

SWEEP_STEPS = 300


@dataclass
class RangeTest:
    """The sweep: ``lrs[i]`` and the smoothed loss there; the suggestion and why."""

    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    suggestion: float = 1e-3
    fallback: bool = False
    reason: str = ""


def lr_find(model: nn.Module, train_data: tuple, *, loss: str = "auto",
            optimizer: Callable | None = None, batch_size: int = 64, start_lr: float = 1e-7,
            end_lr: float = 10.0, steps: int = SWEEP_STEPS, beta: float = 0.98,
            diverge: float = 4.0, fallback_lr: float = 1e-3, prepare: Callable | None = None,
            logit_adjustment: torch.Tensor | None = None, seed: int = 0) -> RangeTest:
    """Run the range test on ``model`` with ``train_data = (X, y)``; see the module
    docstring. ``optimizer``: a function of the parameters and the LR (default RAdam).
    ``prepare``: the input transform the training uses (a standardization layer);
    ``logit_adjustment``: added to the logits inside the loss, as ``fit`` does."""
    check_int("steps", steps, 2)
    check_int("batch_size", batch_size, 1)
    for name, value in (("start_lr", start_lr), ("end_lr", end_lr), ("diverge", diverge),
                        ("fallback_lr", fallback_lr)):
        check_float(name, value, positive=True)
    if not start_lr < end_lr:
        raise ValueError(f"end_lr: expected more than start_lr={start_lr}, got {end_lr}")
    X, y = (torch.as_tensor(a) for a in train_data)
    X = X.float()
    if loss == "auto":
        loss = "mse" if y.is_floating_point() else "cross_entropy"
    result = RangeTest(suggestion=fallback_lr)
    if len(y) < batch_size:
        return _fallback(result, f"{len(y)} rows are fewer than one batch of {batch_size}")
    prepare = prepare or nn.Identity()
    device = next(model.parameters()).device  # batches go where the model is
    if logit_adjustment is not None:
        logit_adjustment = logit_adjustment.to(device)
    saved = copy.deepcopy(model.state_dict())
    opt = (optimizer or (lambda params, lr: torch.optim.RAdam(params, lr=lr)))(
        model.parameters(), start_lr)
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=gen)
    batches = len(y) // batch_size
    ratio = (end_lr / start_lr) ** (1 / (steps - 1))
    ema, best = 0.0, math.inf
    model.train()
    try:
        for step in range(steps):
            lr = start_lr * ratio**step
            for group in opt.param_groups:
                group["lr"] = lr
            b = step % batches
            if step and b == 0:  # a new pass over the data, reshuffled
                order = torch.randperm(len(y), generator=gen)
            idx = order[b * batch_size:(b + 1) * batch_size]
            out = model(prepare(X[idx].to(device)))
            if logit_adjustment is not None:
                check_class_outputs(out.shape[-1], len(logit_adjustment))
                out = out + logit_adjustment
            yb = y[idx].to(device)
            target = yb if loss == "cross_entropy" else yb.reshape(out.shape)
            value = weighted_loss(out, target, loss)
            opt.zero_grad()
            value.backward()
            opt.step()
            current = value.item()  # a host sync per step: a short, one-off sweep
            ema = beta * ema + (1 - beta) * current
            smoothed = ema / (1 - beta ** (step + 1))
            if not math.isfinite(smoothed) or smoothed > diverge * best:
                break
            result.lrs.append(lr)
            result.losses.append(smoothed)
            best = min(best, smoothed)
    finally:
        model.load_state_dict(saved)
    skip = steps // 10  # a few batches' average, not yet a curve (fastai skips them too)
    if len(result.losses) < skip + 2:  # (two points past the skipped tenth, at least)
        return _fallback(result, f"the loss diverged after {len(result.losses)} of {steps} "
                                 "steps")
    at = min(range(skip, len(result.losses)), key=result.losses.__getitem__)
    if result.losses[at] > (1 - 1e-3) * result.losses[skip]:
        return _fallback(result, "the loss never decreased (by 0.1% of its start)")
    if at == steps - 1:  # no rise seen: the end of the sweep, not a minimum
        return _fallback(result, f"the loss was still falling at end_lr={end_lr:g}")
    result.suggestion = result.lrs[at] / 10
    result.reason = (f"the smoothed loss is lowest at lr {result.lrs[at]:.3g}; a tenth of "
                     "that")
    return result


def _fallback(result: RangeTest, why: str) -> RangeTest:
    result.fallback, result.reason = True, f"{why}: using lr {result.suggestion:g}"
    warnings.warn(f"lr_find: {result.reason}", RuntimeWarning, stacklevel=user_stacklevel())
    return result
