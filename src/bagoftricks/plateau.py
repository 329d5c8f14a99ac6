"""Learning rate and loss plateaus (DESIGN.md chapter 4): cut the LR when progress stops.

Smooth the metric with a bias-corrected EMA; the residual ``r_t = ema_t - metric_t`` is
positive while the loss still falls (the EMA lags above it) and alternates in sign on a
plateau. Over the last ``window`` epochs (even, so a clean up/down oscillation cancels),
the net progress ``sum r`` is compared with the fluctuation ``sum |r|``:

    cut  when  sum(r) <= threshold * sum(|r|)

The rule is scale-free (multiplying the loss by any constant changes nothing) and a
rising loss (``sum r < 0``) always counts as no progress. After the ``k``-th cut the
residual window is emptied and the next decision waits ``ceil(window * patience_growth**k)
+ cooldown`` epochs, so the LR is not cut excessively.
"""

from __future__ import annotations

import math
import statistics
from collections import deque

import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau

from . import distributed


class FluctuationPlateau(ReduceLROnPlateau):
    """Multiply every param group's LR by ``factor`` when the metric stops improving.

    A ``ReduceLROnPlateau`` to every ``isinstance`` check (Lightning and the Hugging Face
    Trainer step such schedulers with the monitored metric), with its own rule: the
    parent's ``__init__`` and decision are not used.

    Parameters
    ----------
    optimizer : any ``torch.optim.Optimizer``.
    window : epochs of residuals per decision (even; 16 by default).
    factor : LR multiplier at a cut, in (0, 1).
    beta : EMA smoothing of the metric, in (0, 1).
    threshold : cut when ``sum r <= threshold * sum |r|``, in [0, 1).
    patience_growth : each cut multiplies the wait before the next decision by this (>= 1).
    min_lr : floor of the LR, a number or one per param group.
    cooldown : extra epochs without decisions after a cut.
    mode : ``"min"`` for losses, ``"max"`` for accuracy-like metrics.
    nan_policy : a non-finite metric ``"raise"``\\ s a ``ValueError`` or is left out
        (``"omit"``; ``"skip"`` is an alias).

    Call ``step(metric)`` once per epoch on every rank: the metric is averaged over ranks
    so every rank takes the same decision.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, window: int = 16, factor: float = 0.5,
                 beta: float = 0.5, threshold: float = 0.3, patience_growth: float = 1.5,
                 min_lr: float | list[float] = 0.0, cooldown: int = 0, mode: str = "min",
                 nan_policy: str = "raise", spike_clip: float | None = 2.5,
                 verbose: bool = False) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(f"optimizer: expected a torch.optim.Optimizer, got "
                             f"{type(optimizer).__name__}")
        if isinstance(window, bool) or not isinstance(window, int) or window < 2 or window % 2:
            raise ValueError(f"window: expected an even int >= 2, got {window!r}")
        checks = {"factor": (factor, 0 < factor < 1), "beta": (beta, 0 < beta < 1),
                  "threshold": (threshold, 0 <= threshold < 1),
                  "patience_growth": (patience_growth, patience_growth >= 1),
                  "spike_clip": (spike_clip, spike_clip is None or spike_clip >= 1)}
        for name, (value, ok) in checks.items():
            if not ok:
                raise ValueError(f"{name}: {value!r} is out of range")
        if isinstance(cooldown, bool) or not isinstance(cooldown, int) or cooldown < 0:
            raise ValueError(f"cooldown: expected an int >= 0, got {cooldown!r}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode: expected 'min' or 'max', got {mode!r}")
        if nan_policy not in ("raise", "omit", "skip"):
            raise ValueError(f"nan_policy: expected 'raise' or 'omit', got {nan_policy!r}")
        groups = optimizer.param_groups
        min_lrs = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr] * len(groups)
        if len(min_lrs) != len(groups) or any(m < 0 for m in min_lrs):
            raise ValueError(f"min_lr: expected a number >= 0 or one per param group "
                             f"({len(groups)}), got {min_lr!r}")
        self.optimizer = optimizer
        self.window, self.factor, self.beta, self.threshold = window, factor, beta, threshold
        self.patience_growth, self.cooldown, self.mode = patience_growth, cooldown, mode
        self.spike_clip = spike_clip
        self.min_lrs = [float(m) for m in min_lrs]
        # a group added later (add_param_group) gets the scalar floor, or 0
        self._default_min_lr = 0.0 if isinstance(min_lr, (list, tuple)) else float(min_lr)
        self.nan_policy, self.verbose = ("omit" if nan_policy == "skip" else nan_policy), verbose
        self.last_epoch = 0      # metrics seen (skipped ones excluded)
        self.num_cuts = 0
        self.cut_epochs: list[int] = []
        self._ema = 0.0          # raw EMA accumulator (bias corrected when read)
        self._residuals: deque[float] = deque(maxlen=window)
        self._since_cut = 0

    @property
    def wait(self) -> int:
        """Epochs after the last cut (or the start) before a decision can be made."""
        return math.ceil(self.window * self.patience_growth ** self.num_cuts) + (
            self.cooldown if self.num_cuts else 0)

    def progress_ratio(self) -> float | None:
        """``sum r / sum |r|`` over the current window (None until it is full)."""
        if len(self._residuals) < self.window:
            return None
        total = math.fsum(abs(r) for r in self._residuals)
        return math.fsum(self._residuals) / total if total > 0 else 0.0

    def _clip_spike(self, x: float) -> float:
        """Limit a value to ``spike_clip`` typical deviations from the previous EMA, so
        one spike cannot swing the EMA (a robust, Hampel-style filter)."""
        if self.spike_clip is None or len(self._residuals) < self.window // 2:
            return x
        prev = self._ema / (1 - self.beta ** self.last_epoch)
        typical = statistics.median(abs(r) for r in self._residuals) / self.beta
        bound = self.spike_clip * typical
        return min(max(x, prev - bound), prev + bound)

    def step(self, metric: float, epoch: int | None = None) -> bool:
        """Feed one epoch's metric; returns True when this call cut the LR. ``epoch`` is
        accepted for ``ReduceLROnPlateau.step``'s signature and ignored (deprecated
        there too): epochs are counted by the calls."""
        value = float(metric.item() if isinstance(metric, torch.Tensor) else metric)
        value = distributed.mean_over_ranks(value)
        if not math.isfinite(value):
            if self.nan_policy != "raise":
                return False
            raise ValueError(f"metric: {value} at epoch {self.last_epoch + 1} is not finite "
                             "(use nan_policy='omit' to ignore such epochs)")
        x = self._clip_spike(value if self.mode == "min" else -value)
        self.last_epoch += 1
        self._since_cut += 1
        self._ema = self.beta * self._ema + (1 - self.beta) * x
        ema = self._ema / (1 - self.beta ** self.last_epoch)
        self._residuals.append(ema - x)
        ratio = self.progress_ratio()
        if ratio is None or self._since_cut < self.wait or ratio > self.threshold:
            return False
        return self._cut()

    def _cut(self) -> bool:
        changed = False
        groups = self.optimizer.param_groups
        floors = self.min_lrs + [self._default_min_lr] * (len(groups) - len(self.min_lrs))
        for group, floor in zip(groups, floors, strict=False):
            new = max(group["lr"] * self.factor, floor)
            if group["lr"] - new > 1e-12 * group["lr"]:
                group["lr"], changed = new, True
        if not changed:
            return False
        self.num_cuts += 1
        self.cut_epochs.append(self.last_epoch)
        self._residuals.clear()
        self._since_cut = 0
        if self.verbose:
            print(f"FluctuationPlateau: epoch {self.last_epoch}: LR cut to {self.get_last_lr()}")
        return True

    def get_last_lr(self) -> list[float]:
        """The current LR of every param group (changes made elsewhere included)."""
        return [group["lr"] for group in self.optimizer.param_groups]

    def _config(self) -> dict:
        return {"window": self.window, "factor": self.factor, "beta": self.beta,
                "threshold": self.threshold, "patience_growth": self.patience_growth,
                "cooldown": self.cooldown, "mode": self.mode, "spike_clip": self.spike_clip}

    def state_dict(self) -> dict:
        """The state and, next to it, the configuration it belongs to."""
        return {"config": self._config(), "last_epoch": self.last_epoch,
                "num_cuts": self.num_cuts,
                "cut_epochs": list(self.cut_epochs), "ema": self._ema,
                "residuals": list(self._residuals), "since_cut": self._since_cut}

    def load_state_dict(self, state: dict) -> None:
        """Restore a state; one saved by a differently configured scheduler is refused."""
        saved = state.get("config", self._config())
        changed = [k for k, v in self._config().items() if saved.get(k) != v]
        if changed:
            raise ValueError("state: saved by a FluctuationPlateau with other "
                             + ", ".join(f"{k} ({saved.get(k)!r}, here {getattr(self, k)!r})"
                                         for k in changed))
        self.last_epoch, self.num_cuts = int(state["last_epoch"]), int(state["num_cuts"])
        self.cut_epochs = [int(e) for e in state["cut_epochs"]]
        self._ema, self._since_cut = float(state["ema"]), int(state["since_cut"])
        self._residuals = deque((float(r) for r in state["residuals"]), maxlen=self.window)
