"""``bagoftricks doctor``: what the data says about each trick, from one streaming pass."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .prior import effective_prior
from .scaling import scale_hparams
from .tabular import scan


def doctor_report(data: Path, target: str, task: str | None, batch_size: int, lr: float,
                  reference_batch_size: int, balance: str = "logit_adjust") -> dict:
    """Everything ``doctor`` says about a file, from one streaming pass."""
    s = scan(data, target, task)
    report = {"file": str(data), "rows": s.rows, "task": s.schema.task,
              "features": len(s.schema.feature_names()),
              "constant_columns": s.constant,
              "non_finite": {c: n for c, n in s.nonfinite.items() if n},
              "target_problems": s.target_problems,
              "classes_too_small_to_validate": s.small_classes}
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
    return report


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
