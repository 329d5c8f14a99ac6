"""Keeping the best epoch: its weights by one recorded metric, and early stopping."""

from __future__ import annotations

from torch import nn

from .._validation import check_int

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
        """(The checkpoint's run settings hold ``keep_best``: a resume that tracks another
        metric is refused before this.)"""
        self.epoch, self.value = state["epoch"], state["value"]
        self.weights, self.stale = state["weights"], state["stale"]


def best_tracker(keep_best, patience, has_val: bool, classifier: bool) -> BestEpoch | None:
    """``keep_best``: "auto" (with validation data, a classifier's calibrated_val_loss and
    a regression's val_loss; else None), None, a metric name (its direction known), or
    ``(name, "min" | "max")``."""
    if keep_best == "auto":
        keep_best = None if not has_val else (
            "calibrated_val_loss" if classifier else "val_loss")
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
