"""Class imbalance end to end: which balance option, and are its probabilities right?

On mnist1d-zipf, digits-zipf and breast-cancer-rare, an MLP (128-64) is trained as
``fit`` ships (its default optimizer, learning rate, batch size and tricks) with each
balance option: none ("plain"), balanced weights, oversampling and the logit-adjusted
loss (the default); the plain model is also adjusted post hoc (Menon et al., 2021).
20% of the training set is held out to pick the best epoch (by calibrated validation loss,
as `fit` does by default).

- Decisions: balanced accuracy and the rarest class's recall on held-out data, each
  model's balanced scores deciding (the plain model's own scores for "plain").
- Probabilities: on held-out data resampled to the *training* prior, the log loss and
  the worst ratio of a class's mean predicted probability to its rate, with the
  correction to the true prior (what ``predict`` outputs) and without it (the effective
  prior the raw logits model; both temperature-scaled as the predictor is).
- "class bias": the logit-adjusted loss with ``fit(class_bias=True)`` (a bias a class
  fitted on the validation rows after the temperature).
- An outside reference on the same splits: scikit-learn's ``LogisticRegression``
  (standardized features, C=1), unweighted, deciding by its own scores: how close a
  well-regularized linear model gets to each class's rate with the same rows.

    python examples/prior_evidence.py [--seeds 5] [--epochs 150] [--lr 1e-3] [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, log_loss, recall_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bagoftricks import Tricks, fit
from bagoftricks.data import load, stratified_split
from bagoftricks.models import tabular_mlp

VARIANTS = {"plain": (None, False), "balanced weights": ("weights", False),
            "oversampling": ("oversample", False), "logit-adjusted loss": ("logit_adjust", False),
            "logit-adjusted loss, class bias": ("logit_adjust", True)}
REFERENCE = "scikit-learn logistic regression"


def breast_cancer_rare(seed: int, rate: float = 0.01):
    """Train: half of scikit-learn's breast cancer with malignant kept at ``rate``;
    held out: the other half (its own mix of classes)."""
    X, target = load_breast_cancer(return_X_y=True)
    y = (target == 0).astype(np.int64)
    pool, held = stratified_split(y, 0.5, seed)
    rng = np.random.default_rng(seed)
    neg, pos = pool[y[pool] == 0], pool[y[pool] == 1]
    keep = np.concatenate([neg, rng.choice(pos, max(2, round(rate * len(neg))), False)])
    return X[keep].astype(np.float32), y[keep], X[held].astype(np.float32), y[held]


def dataset(name: str, seed: int):
    if name == "breast-cancer-rare":
        return breast_cancer_rare(seed)
    ds = load(name, seed=seed)
    return ds.X, ds.y, ds.X_rest, ds.y_rest


def at_training_prior(X, y, prior, n, seed):
    """``n`` held-out rows drawn with replacement so the classes follow ``prior``."""
    rng = np.random.default_rng(seed)
    sizes = np.round(prior * n).astype(int)
    idx = np.concatenate([rng.choice(np.flatnonzero(y == c), s) for c, s in enumerate(sizes)])
    return X[idx], y[idx]


def probabilities(module, X):
    with torch.no_grad():
        p = module(torch.as_tensor(X)).double().softmax(1).numpy()
    return p / p.sum(1, keepdims=True)


def calibration(p, y, k):
    """(log loss, the worst |mean predicted probability / rate - 1| over classes)."""
    rates = np.bincount(y, minlength=k) / len(y)
    worst = np.max(np.abs(p.mean(0) / rates - 1))
    p = np.clip(p, 1e-7, 1)
    return log_loss(y, p / p.sum(1, keepdims=True), labels=np.arange(k)), worst


def run(name: str, seeds: int, epochs: int, options: dict):
    rows = {v: [] for v in [*VARIANTS, "plain, adjusted post hoc", REFERENCE]}
    for seed in range(seeds):
        X, y, Xh, yh = dataset(name, seed)
        k = int(max(y.max(), yh.max())) + 1
        tr, va = stratified_split(y, 0.2, seed)
        prior = np.bincount(y[tr], minlength=k) / len(tr)
        rare = int(np.argmin(np.where(prior > 0, prior, np.inf)))
        Xp, yp = at_training_prior(Xh, yh, prior, 20000, seed)
        for variant, (balance, class_bias) in VARIANTS.items():
            t0 = time.perf_counter()
            res = fit(tabular_mlp(X.shape[1], k, seed=seed), (X[tr], y[tr]),
                      val_data=(X[va], y[va]), epochs=epochs, tricks=Tricks(balance=balance),
                      class_bias=class_bias, seed=seed, log="none", **options)
            seconds = time.perf_counter() - t0
            deciders = {variant: res.predictor if balance is None
                        else res.predictor_for("balanced")}
            if balance is None:
                deciders["plain, adjusted post hoc"] = res.predictor_for("balanced")
            raw = probabilities(res.predictor_for(res.effective_prior), Xp)
            corrected = probabilities(res.predictor, Xp)
            for key, decider in deciders.items():
                pred = probabilities(decider, Xh).argmax(1)
                rows[key].append([balanced_accuracy_score(yh, pred),
                                  recall_score(yh, pred, labels=[rare], average="macro"),
                                  *calibration(corrected, yp, k), *calibration(raw, yp, k),
                                  res.best_epoch, seconds])
        t0 = time.perf_counter()
        ref = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
        ref.fit(X[tr], y[tr])
        seconds = time.perf_counter() - t0
        p = np.zeros((len(Xp), k))
        p[:, ref.classes_] = ref.predict_proba(Xp)
        pred, scores = ref.predict(Xh), calibration(p, yp, k)  # no prior to correct
        rows[REFERENCE].append([balanced_accuracy_score(yh, pred),
                                recall_score(yh, pred, labels=[rare], average="macro"),
                                *scores, *scores, 0, seconds])
    return {key: np.array(v) for key, v in rows.items()}


def cell(values, fmt=".3f"):
    return f"{values.mean():{fmt}} ± {values.std():{fmt}}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--lr", type=float, help="instead of fit's default learning rate")
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 epochs, one dataset")
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = ["mnist1d-zipf", "digits-zipf", "breast-cancer-rare"]
    if args.quick:
        args.seeds, args.epochs, names = 1, 2, ["digits-zipf"]
    header = ("| dataset | run | balanced acc | rarest recall | log loss, corrected | worst "
              "mean-p / rate − 1, corrected | log loss, raw | worst, raw | best epoch | s |")
    print(header)
    print("|" + "---|" * 10)
    for name in names:
        results = run(name, args.seeds, args.epochs, {} if args.lr is None else {"lr": args.lr})
        plain_loss = results["plain"][:, 2].mean()
        for key, r in results.items():
            print(f"| {name} | {key} | {cell(r[:, 0])} | {cell(r[:, 1])} | {cell(r[:, 2])} | "
                  f"{cell(r[:, 3], '.2f')} | {cell(r[:, 4])} | {cell(r[:, 5], '.2f')} | "
                  f"{cell(r[:, 6], '.1f')} | {cell(r[:, 7], '.1f')} |", flush=True)
        print(f"<!-- {name}: plain log loss {plain_loss:.4f} -->")


if __name__ == "__main__":
    main()
