"""GLM and WLS speed: ours vs statsmodels and scikit-learn, float64, side by side.

Binomial: n = 1,000,000, p = 50, 5% positives, balanced sample weights: our ``GLM``
vs statsmodels ``GLM(Binomial, var_weights)`` vs scikit-learn
``LogisticRegression(C=inf, solver="newton-cholesky", tol=1e-10)``. WLS at p = 100:
``wls`` vs statsmodels ``WLS``. Each run in its own process (peak memory above X);
agreement is the largest coefficient difference to statsmodels.

Run: ``.venv/bin/python benchmarks/glm.py [--n 1000000]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import peak_rss_mb, run_isolated  # noqa: E402

METHODS = ("ours GLM", "statsmodels GLM", "scikit-learn newton-cholesky", "ours wls",
           "statsmodels WLS")


def problem(n: int, p: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    beta = rng.normal(0, 0.3, p)
    eta = X @ beta
    eta += np.log(0.05 / 0.95) - np.quantile(eta, 0.5)
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    w = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))  # balanced
    return X, y, w


def one(method: str, n: int) -> dict:
    import statsmodels.api as sm
    from sklearn.linear_model import LogisticRegression

    from bagoftricks.linear import GLM, wls

    p = 100 if "wls" in method.lower() else 50
    X, y, w = problem(n, p)
    if "wls" in method.lower():
        y = X @ np.linspace(-1, 1, p) + np.random.default_rng(1).standard_normal(n)
    base = peak_rss_mb()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "ours GLM":
            m = GLM("binomial").fit(X, y, sample_weight=w)
            coef, extra = np.r_[m.intercept_, m.coef_], {"iterations": m.n_iter_}
        elif method == "statsmodels GLM":
            r = sm.GLM(y, sm.add_constant(X), family=sm.families.Binomial(),
                       var_weights=w).fit(tol=1e-10)
            coef, extra = np.asarray(r.params), {"iterations": r.fit_history["iteration"]}
        elif method == "scikit-learn newton-cholesky":
            m = LogisticRegression(C=np.inf, solver="newton-cholesky", tol=1e-10,
                                   max_iter=100).fit(X, y, sample_weight=w)
            coef, extra = np.r_[m.intercept_, m.coef_[0]], {"iterations": int(m.n_iter_[0])}
        elif method == "ours wls":
            c, i = wls(X, y, sample_weight=w)
            coef, extra = np.r_[i, c], {}
        else:
            r = sm.WLS(y, sm.add_constant(X), weights=w).fit()
            coef, extra = np.asarray(r.params), {}
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "peak_over_X": (peak_rss_mb() - base) / (X.nbytes / 2**20),
            "coef": coef.tolist(), **extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.n)))
        return
    res = {m: run_isolated(__file__, "--n", str(args.n), "--one", m, timeout=3600)
           for m in METHODS}
    print(f"n = {args.n:,}, float64, balanced weights; binomial p = 50 (5% positives), "
          f"WLS p = 100; each method in its own process")
    print(f"{'method':30s} {'seconds':>8s} {'iters':>6s} {'peak/X':>7s} {'ours is':>9s} "
          f"{'max |Δcoef| vs statsmodels':>28s}")
    for m, r in res.items():
        group = "wls" if "wls" in m.lower() else "glm"
        ours = res["ours wls" if group == "wls" else "ours GLM"]
        ref = res["statsmodels WLS" if group == "wls" else "statsmodels GLM"]
        diff = np.abs(np.array(r["coef"]) - np.array(ref["coef"])).max()
        print(f"{m:30s} {r['seconds']:8.2f} {str(r.get('iterations', '-')):>6s} "
              f"{r['peak_over_X']:7.2f} {r['seconds'] / ours['seconds']:8.1f}x {diff:28.2e}")


if __name__ == "__main__":
    main()
