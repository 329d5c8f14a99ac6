"""``bagoftricks doctor``: what the data says about each trick, from one streaming pass
(and a second for the LR range test on a sample of the rows)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .prior import effective_prior
from .scaling import scale_hparams
from .tabular import check_trainable, sample, scan


def doctor_report(data: Path, target: str, task: str | None, batch_size: int, lr: float,
                  reference_batch_size: int, balance: str = "logit_adjust",
                  range_test: bool = True, standardize: bool = True) -> dict:
    """Everything ``doctor`` says about a file: one streaming pass, and with
    ``range_test`` the LR ``bagoftricks fit --lr auto`` would find."""
    s = scan(data, target, task)
    report = {"file": str(data), "rows": s.rows, "task": s.schema.task,
              "features": len(s.schema.feature_names()),
              "constant_columns": s.constant,
              "non_finite": {c: n for c, n in s.nonfinite.items() if n},
              "target_problems": s.target_problems,
              "classes_too_small_to_validate": s.small_classes}
    adjustment = None  # what the logit-adjusted loss adds to the logits (tau = 1)
    if s.schema.task == "classification":
        counts = np.array(list(s.class_counts.values()), dtype=float)
        p = counts / counts.sum()
        weights = counts.sum() / (len(counts) * counts)
        effective = effective_prior(p, **{
            "oversample": {"oversample": True}, "weights": {"class_weight": weights},
            "logit_adjust": {"tau": 1.0}, "none": {}}[balance])
        logq = np.log(effective)
        # the loss sees the effective prior (the natural one under the logit-adjusted loss)
        seen = p if balance == "logit_adjust" else effective
        if balance == "logit_adjust":
            adjustment = np.log(p)

        def per_class(values):
            return dict(zip(s.class_counts, np.round(values, 6).tolist(), strict=True))
        report.update({
            "classes": s.class_counts,
            "imbalance_ratio": float(counts.max() / counts.min()),
            "balanced_weights": per_class(weights),
            "oversampled_epoch_size": int(len(counts) * counts.max()),
            "balance": balance,
            "effective_prior": per_class(effective),
            "bias_init": per_class(logq - logq.mean()),
            "loss_at_init": float(-(seen * np.log(seen)).sum()),
            "loss_at_zero_bias": math.log(len(counts)),
            "prior_correction": per_class(np.log(p) - logq)})
    feats = []
    if s.standardizer is not None:
        for c, m, sd in zip(s.schema.numeric, s.standardizer.mean.tolist(),
                            s.standardizer.std.tolist(), strict=True):
            feats.append({"column": c, "mean": m, "std": sd,
                          "needs_standardizing": bool(sd > 0 and (abs(m) > 3 * sd or
                                                                  not 0.2 < sd < 5))})
    report["feature_scales"] = feats
    report["needs_standardizing"] = [f["column"] for f in feats if f["needs_standardizing"]]
    report["lr"] = {"reference_batch_size": reference_batch_size, "lr": lr,
                    "batch_size": batch_size,
                    "rescaled_lr_sgd": scale_hparams(lr, reference_batch_size,
                                                     batch_size).lr,
                    "rescaled_lr_adam": scale_hparams(lr, reference_batch_size, batch_size,
                                                      rule="sqrt").lr}
    if range_test:
        report["lr_range_test"] = _range_test(data, s, task, batch_size, adjustment,
                                              standardize)
    return report


def _range_test(data: Path, s, task: str | None, batch_size: int, adjustment,
                standardize: bool) -> dict:
    """``fit --lr auto``'s sweep: the model it trains (seed 0), its optimizer, its
    standardization and its loss's logit adjustment, on as many rows as the sweep uses,
    drawn from the whole file (the standardization's statistics are the sample's)."""
    import warnings

    import torch

    from .loop.fit import adam
    from .lr_find import SWEEP_STEPS, lr_find
    from .model_io import HIDDEN
    from .models import tabular_mlp
    from .standardize import standardized_columns

    try:
        check_trainable(s, task)
    except ValueError as err:
        return {"skipped": str(err)}
    X, y = sample(data, s.schema, SWEEP_STEPS * batch_size)
    if standardize:
        X = standardized_columns(X, np.arange(len(X)))
    k = len(s.schema.classes) if s.schema.task == "classification" else 1
    if adjustment is not None:
        adjustment = torch.as_tensor(adjustment, dtype=torch.float32)
    with warnings.catch_warnings(record=True):  # a fallback is reported, not warned
        warnings.simplefilter("always")
        found = lr_find(tabular_mlp(X.shape[1], k, HIDDEN, seed=0),
                        (torch.from_numpy(X), torch.from_numpy(y)), optimizer=adam,
                        batch_size=batch_size, logit_adjustment=adjustment)
    return {"suggestion": found.suggestion, "fallback": found.fallback,
            "reason": found.reason, "rows": len(y)}


def json_safe(value, path: str = "", notes: list | None = None):
    """``value`` with every NaN or infinite float replaced by None (strict JSON has no
    NaN/Infinity), each replacement described in ``notes``."""
    if isinstance(value, dict):
        return {k: json_safe(v, f"{path}.{k}" if path else str(k), notes)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, f"{path}[{i}]", notes) for i, v in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        if notes is not None:
            notes.append(f"{path} is {value} (written as null)")
        return None
    return value
