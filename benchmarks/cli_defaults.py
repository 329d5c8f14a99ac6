"""Do the command line's defaults help on users' tables? ``bagoftricks fit`` as it
trained until this round (raw features, ``--lr 1e-2``: the mnist1d recipe) against the
range test (``--lr auto``), standardized features (``--standardize``) and both (the
defaults now), trained as the command line trains (its MLP 128-64, 30 epochs, batches
of 64, the default balance option, 10% held out for the best epoch).

Tables, each written to CSV and split 80/20 by seed (stratified): scikit-learn's breast
cancer, wine and digits, statsmodels' Fair affairs data (any affair, 6,366 rows), a
churn table with charges in the thousands (5,000 rows, 14% churn) and scikit-learn's
diabetes (regression). Per table and variant: the held-out log loss (regression: RMSE;
lower is better), its paired difference to the old default and in how many seeds the
variant was better, the LRs the range test chose and the seconds of a whole ``fit``.

    python benchmarks/cli_defaults.py [--seeds 8] [--tables breast-cancer churn]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn import datasets
from sklearn.metrics import log_loss

from bagoftricks.data import stratified_split
from bagoftricks.model_io import load_model, train_and_save
from bagoftricks.tabular import load


def _frame(X, y, names=None) -> pd.DataFrame:
    df = pd.DataFrame(X, columns=names or [f"x{i}" for i in range(X.shape[1])])
    df["target"] = y
    return df


def churn(n: int = 5000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"tenure": rng.integers(1, 72, n).astype(float),
                       "charges": rng.normal(70, 30, n) * 100,
                       "plan": rng.choice(["basic", "pro", "max"], n)})
    logit = -2.5 + 0.0004 * (df.charges - 7000) - 0.03 * (df.tenure - 36) + 0.8 * (
        df.plan == "basic")
    df["target"] = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return df


def fair() -> pd.DataFrame:
    from statsmodels.datasets import fair as fair_data
    df = fair_data.load_pandas().data
    df["target"] = (df.pop("affairs") > 0).astype(int)
    return df


TABLES = {
    "breast-cancer": lambda: _frame(*datasets.load_breast_cancer(return_X_y=True)),
    "wine": lambda: _frame(*datasets.load_wine(return_X_y=True)),
    "digits": lambda: _frame(*datasets.load_digits(return_X_y=True)),
    "fair": fair,
    "churn": churn,
    "diabetes": lambda: _frame(*datasets.load_diabetes(return_X_y=True)).assign(
        target=lambda d: d.target.astype(float)),
}


def score(model_dir: Path, test: Path) -> float:
    """Held-out log loss (classification) or RMSE (regression) of a model folder."""
    model, schema = load_model(model_dir)
    X, y = load(test, schema)
    with torch.no_grad():
        out = model(torch.from_numpy(X)).double()
    if schema.task == "regression":
        return float(np.sqrt(np.mean((out[:, 0].numpy() - y) ** 2)))
    return log_loss(y, out.softmax(1).numpy(), labels=np.arange(out.shape[1]))


VARIANTS = {"raw, --lr 1e-2 (the old default)": (False, 1e-2), "raw, --lr auto": (False, "auto"),
            "standardized, --lr 1e-2": (True, 1e-2),
            "standardized, --lr auto (the default)": (True, "auto")}


def run(seed: int, standardize: bool, lr, folder: Path) -> tuple[float, float, float]:
    """(held-out score, the LR trained at, seconds) of one ``fit``."""
    t0 = time.perf_counter()
    res = train_and_save(folder / "train.csv", "target", folder / "model", task=None,
                         epochs=30, batch_size=64, lr=lr, seed=seed, resume=False,
                         log="none", overwrite=True, standardize=standardize)
    seconds = time.perf_counter() - t0
    return score(folder / "model", folder / "test.csv"), res.history.epochs[0]["lr"], seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--tables", nargs="+", choices=list(TABLES), default=list(TABLES))
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # (range-test fallbacks are shown by their LR)
    print("| table | rows | score (lower is better) | variant | score | − old default, "
          "paired | seeds better | LRs chosen | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for table in args.tables:
        df = TABLES[table]()
        regression = df.target.dtype.kind == "f"
        runs = {v: [] for v in VARIANTS}
        for seed in range(args.seeds):
            labels = np.zeros(len(df), int) if regression else pd.factorize(df.target)[0]
            tr, te = stratified_split(labels, 0.2, seed)
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                df.iloc[tr].to_csv(folder / "train.csv", index=False)
                df.iloc[te].to_csv(folder / "test.csv", index=False)
                for v, (standardize, lr) in VARIANTS.items():
                    runs[v].append(run(seed, standardize, lr, folder))
        old = np.array(runs[next(iter(VARIANTS))])[:, 0]
        for v, rows in runs.items():
            a = np.array(rows)
            diff = a[:, 0] - old
            print(f"| {table} | {len(df)} | {'RMSE' if regression else 'log loss'} | {v} | "
                  f"{a[:, 0].mean():.4f} ± {a[:, 0].std():.4f} | {diff.mean():+.4f} ± "
                  f"{diff.std():.4f} | {(diff < 0).sum()}/{len(diff)} | "
                  f"{a[:, 1].min():.2g}–{a[:, 1].max():.2g} | {a[:, 2].mean():.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
