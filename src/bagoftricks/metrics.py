"""Task metrics for the reference loop, in NumPy (scikit-learn stays test-only)."""

from __future__ import annotations

import numpy as np


def per_class_recall(y: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Recall of each class (NaN for a class absent from ``y``)."""
    hits = np.bincount(y[pred == y], minlength=num_classes).astype(float)
    support = np.bincount(y, minlength=num_classes).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return hits / support


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve: the Mann-Whitney statistic with mid-ranks for ties."""
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    ranks = np.empty(len(s))
    # mid-ranks: each run of equal scores gets the mean of its positions (1-based)
    _, start, counts = np.unique(s, return_index=True, return_counts=True)
    ranks[order] = np.repeat(start + (counts + 1) / 2.0, counts)
    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(y: np.ndarray, score: np.ndarray) -> float:
    """PR-AUC as average precision: ``sum (R_k - R_{k-1}) P_k`` over distinct thresholds."""
    order = np.argsort(-score, kind="mergesort")
    y, s = y[order], score[order]
    tp = np.cumsum(y == 1)
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each threshold
    n_pos = tp[-1]
    if n_pos == 0:
        return float("nan")
    precision = tp[last] / (last + 1)
    recall = tp[last] / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def classification_metrics(y: np.ndarray, proba: np.ndarray) -> dict:
    """Accuracy, balanced accuracy, per-class recall, and ROC-AUC/PR-AUC when binary."""
    k = proba.shape[1]
    pred = proba.argmax(1)
    recall = per_class_recall(y, pred, k)
    out = {"accuracy": float((pred == y).mean()),
           "balanced_accuracy": float(np.nanmean(recall)),
           "recall": [None if np.isnan(r) else float(r) for r in recall]}
    if k == 2:
        out["roc_auc"] = roc_auc(y, proba[:, 1])
        out["pr_auc"] = average_precision(y, proba[:, 1])
    return out


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict:
    """RMSE and R² (per output averaged, as scikit-learn's ``r2_score`` default)."""
    y2, p2 = y.reshape(len(y), -1), pred.reshape(len(pred), -1)
    ss_res = ((y2 - p2) ** 2).sum(0)
    ss_tot = ((y2 - y2.mean(0)) ** 2).sum(0)
    # a constant target: 1 when predicted exactly, else 0 (scikit-learn's force_finite)
    r2 = np.where(ss_tot > 0, 1 - ss_res / np.where(ss_tot > 0, ss_tot, 1),
                  np.where(ss_res == 0, 1.0, 0.0))
    return {"rmse": float(np.sqrt(((y2 - p2) ** 2).mean())), "r2": float(r2.mean())}
