"""Bundled datasets: deterministic imbalanced versions of scikit-learn's sets.

Nothing is downloaded; scikit-learn ships these files (install the ``demo`` extra).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Dataset:
    """Features, integer labels and a description of one bundled dataset."""

    name: str
    X: np.ndarray  # (n, p) float32
    y: np.ndarray  # (n,) int64
    num_classes: int
    description: str
    X_rest: np.ndarray | None = None  # the samples left out by the subsampling, if useful
    y_rest: np.ndarray | None = None  # as a test set (for digits: nearly balanced)


def stratified_split(y: np.ndarray, fraction: float, seed: int = 0):
    """Indices ``(train, held_out)`` keeping each class's share (regression: random).

    Every class keeps at least one row in training; a class with a single row is not
    validated, with a warning naming it."""
    rng = np.random.default_rng(seed)
    if y.dtype.kind in "iu":
        held, single = [], []
        for c in np.unique(y):
            rows = rng.permutation(np.flatnonzero(y == c))
            if len(rows) == 1:
                single.append(int(c))
            held.append(rows[:min(len(rows) - 1, max(1, round(fraction * len(rows))))])
        if single:
            warnings.warn(f"class(es) {single} have a single row: kept for training, none left "
                          "to validate them", stacklevel=2)
        held = np.concatenate(held)
    else:
        held = rng.permutation(len(y))[:max(1, round(fraction * len(y)))]
    mask = np.zeros(len(y), bool)
    mask[held] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def zipf_counts(counts: np.ndarray, exponent: float = 1.0) -> np.ndarray:
    """Per-class sizes ``n_k = floor(n_min / (k + 1) ** exponent)`` (at least 2 each)."""
    base = counts.min()
    ranks = np.arange(1, len(counts) + 1, dtype=np.float64)
    return np.maximum(2, np.floor(base / ranks**exponent)).astype(np.int64)


def subsample_classes(y: np.ndarray, sizes: np.ndarray, seed: int = 0) -> np.ndarray:
    """Sorted indices keeping ``sizes[k]`` samples of class ``k``, chosen by ``seed``."""
    rng = np.random.default_rng(seed)
    keep = [rng.choice(np.flatnonzero(y == k), size=int(s), replace=False)
            for k, s in enumerate(sizes)]
    return np.sort(np.concatenate(keep))


def digits_zipf(seed: int = 0) -> Dataset:
    """scikit-learn digits (8x8 images, 10 classes) with Zipf-subsampled classes (10:1)."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    idx = subsample_classes(y, zipf_counts(np.bincount(y)), seed)
    rest = np.setdiff1d(np.arange(len(y)), idx)
    return Dataset("digits-zipf", X[idx].astype(np.float32), y[idx].astype(np.int64), 10,
                   "scikit-learn digits, class k kept at 1/(k+1) of the smallest class",
                   X[rest].astype(np.float32), y[rest].astype(np.int64))


def breast_cancer_rare(positive_fraction: float = 0.01, seed: int = 0) -> Dataset:
    """scikit-learn breast cancer (30 raw features) with malignant (label 1) made rare."""
    from sklearn.datasets import load_breast_cancer

    X, target = load_breast_cancer(return_X_y=True)
    y = (target == 0).astype(np.int64)  # malignant is 0 in scikit-learn: make it positive
    n_neg = int((y == 0).sum())
    n_pos = max(2, round(positive_fraction * n_neg / (1 - positive_fraction)))
    idx = subsample_classes(y, np.array([n_neg, n_pos]), seed)
    return Dataset("breast-cancer-rare", X[idx].astype(np.float32), y[idx], 2,
                   f"scikit-learn breast cancer, malignant kept at {n_pos} of {n_neg + n_pos}")


def mnist1d(seed: int = 0) -> Dataset:
    """mnist1d (40-long 1-D signals, 10 classes), generated locally by its package;
    ``seed`` is added to the package's default generation seed (42)."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed += seed
    d = make_dataset(args)
    return Dataset("mnist1d", d["x"].astype(np.float32), d["y"].astype(np.int64), 10,
                   "mnist1d, 4000 train / 1000 test signals (balanced)",
                   d["x_test"].astype(np.float32), d["y_test"].astype(np.int64))


def mnist1d_zipf(seed: int = 0) -> Dataset:
    """mnist1d's training signals with Zipf-subsampled classes (10:1); the left-out
    training signals plus the test split (nearly balanced) form the held-out set."""
    full = mnist1d()
    idx = subsample_classes(full.y, zipf_counts(np.bincount(full.y)), seed)
    rest = np.setdiff1d(np.arange(len(full.y)), idx)
    return Dataset("mnist1d-zipf", full.X[idx], full.y[idx], 10,
                   "mnist1d, class k kept at 1/(k+1) of the smallest class",
                   np.concatenate([full.X[rest], full.X_rest]),
                   np.concatenate([full.y[rest], full.y_rest]))


DATASETS = {"mnist1d-zipf": mnist1d_zipf, "digits-zipf": digits_zipf,
            "breast-cancer-rare": breast_cancer_rare, "mnist1d": mnist1d}


def load(name: str, seed: int = 0) -> Dataset:
    """Load a bundled dataset by name (see ``DATASETS``)."""
    if name not in DATASETS:
        raise ValueError(f"dataset: unknown {name!r}; choose from {sorted(DATASETS)}")
    return DATASETS[name](seed=seed)
