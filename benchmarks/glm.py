"""GLM and WLS speed: ours vs statsmodels and scikit-learn, float64, side by side.

Binomial at 3e5 x 30, 1e6 x 50 and 1e5 x 150, 5% positives, balanced sample weights: our ``GLM``
vs statsmodels ``GLM(Binomial, var_weights)``, scikit-learn
``LogisticRegression(C=inf, solver="newton-cholesky", tol=1e-10)`` and glum
``GeneralizedLinearRegressor(family="binomial", alpha=0, gradient_tol=1e-10)``. WLS at
1e6 x 100: ``wls`` vs statsmodels ``WLS``. Each run in its own process (peak memory above X), timed
alike: one untimed warm-up fit, then the median of ``--repeats``; X is prepared outside
the timed region for all (statsmodels gets its constant column beforehand). The stopping
rules differ (ours: relative deviance change; statsmodels: absolute deviance change,
``tol=1e-10``; scikit-learn: its gradient tolerance ``tol=1e-10``), so each row also
shows its iterations and where it stopped: the largest score component
``|X'W(y - mu)|`` divided by the total weight, computed afterwards in float64 NumPy at
its coefficients. Agreement is the largest coefficient difference to statsmodels.
Where our time goes: passes over X with and without a Gram matrix, and the share in the
matrix products (BLAS) that form the normal equations.

Run: ``.venv/bin/python benchmarks/glm.py [--sizes 300000x30 1000000x50 100000x150]``.
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
from _harness import median_time, peak_rss_mb, run_isolated  # noqa: E402

from bagoftricks.linear.glm import BLOCK_ROWS  # noqa: E402
from bagoftricks.linear.solve import GRAM_BLOCK_ROWS  # noqa: E402

GLMS = ("ours GLM", "statsmodels GLM", "scikit-learn newton-cholesky", "glum")
WLS = ("ours wls", "statsmodels WLS")


def problem(n: int, p: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    beta = rng.normal(0, 0.3, p)
    eta = X @ beta
    eta += np.log(0.05 / 0.95) - np.quantile(eta, 0.5)
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    w = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))  # balanced
    return X, y, w


def one(method: str, n: int, p: int, repeats: int) -> dict:
    import statsmodels.api as sm
    from glum import GeneralizedLinearRegressor
    from sklearn.linear_model import LogisticRegression

    from bagoftricks.linear import GLM, glm, solve, wls

    is_wls = method in WLS
    X, y, w = problem(n, p)
    if is_wls:
        y = X @ np.linspace(-1, 1, p) + np.random.default_rng(1).standard_normal(n)
    Xc = sm.add_constant(X) if method.startswith("statsmodels") else None
    blas = {"calls": 0, "seconds": 0.0}
    add = solve.Gram.add

    def timed_add(gram, Z):  # ours only: how much of a fit forms the Gram matrix (BLAS)
        t0 = time.perf_counter()
        add(gram, Z)
        blas["seconds"] += time.perf_counter() - t0
        blas["calls"] += 1
    solve.Gram.add = timed_add
    score = glm._IRLS.score

    def counted_score(problem, beta):  # ours only: the passes that form no Gram matrix
        t0 = time.perf_counter()
        out = score(problem, beta)
        if problem.X.shape[0] == n:
            blas["score_passes"] += 1
            blas["score_seconds"] += time.perf_counter() - t0
        return out
    glm._IRLS.score = counted_score
    sweep = glm._IRLS.sweep

    def counted_sweep(problem, beta):  # ours only: the passes that form it, over all rows
        t0 = time.perf_counter()
        out = sweep(problem, beta)
        if not problem.streamed and problem.X.shape[0] == n:
            blas["sweeps"] += 1
            blas["sweep_seconds"] += time.perf_counter() - t0
        return out
    glm._IRLS.sweep = counted_sweep
    base = peak_rss_mb()

    def fit():
        blas.update(calls=0, seconds=0.0, score_passes=0, score_seconds=0.0, sweeps=0,
                    sweep_seconds=0.0)
        if method == "ours GLM":
            m = GLM("binomial").fit(X, y, sample_weight=w)
            return np.r_[m.intercept_, m.coef_], m.n_iter_
        if method == "statsmodels GLM":
            r = sm.GLM(y, Xc, family=sm.families.Binomial(), var_weights=w).fit(tol=1e-10)
            return np.asarray(r.params), r.fit_history["iteration"]
        if method == "scikit-learn newton-cholesky":
            m = LogisticRegression(C=np.inf, solver="newton-cholesky", tol=1e-10,
                                   max_iter=100).fit(X, y, sample_weight=w)
            return np.r_[m.intercept_, m.coef_[0]], int(m.n_iter_[0])
        if method == "glum":
            m = GeneralizedLinearRegressor(family="binomial", alpha=0, gradient_tol=1e-10,
                                           max_iter=100).fit(X, y, sample_weight=w)
            return np.r_[m.intercept_, m.coef_], int(m.n_iter_)
        if method == "ours wls":
            c, i = wls(X, y, sample_weight=w)[:2]
            return np.r_[i, c], "-"
        return np.asarray(sm.WLS(y, Xc, weights=w).fit().params), "-"

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seconds, (coef, iterations) = median_time(fit, repeats)
    peak = peak_rss_mb() - base
    eta = coef[0] + X @ coef[1:]
    mu = eta if is_wls else 1 / (1 + np.exp(-eta))
    r = w * (y - mu)
    score = max(abs(r.sum()), np.abs(X.T @ r).max()) / w.sum()
    return {"seconds": seconds, "peak_over_X": peak / (X.nbytes / 2**20),
            "coef": coef.tolist(), "iterations": iterations, "score": score,
            "blas_seconds": blas["seconds"], "blas_calls": blas["calls"],
            **{k: blas.get(k, 0) for k in ("score_passes", "score_seconds", "sweeps",
                                           "sweep_seconds")}}


def table(res: dict, ours: str, ref: str) -> None:
    print(f"{'method':30s} {'seconds':>8s} {'iters':>6s} {'|score|/Σw':>10s} {'peak/X':>7s} "
          f"{'x ours':>7s} {'max |Δcoef| vs statsmodels':>28s}")
    for m, r in res.items():
        diff = np.abs(np.array(r["coef"]) - np.array(res[ref]["coef"])).max()
        print(f"{m:30s} {r['seconds']:8.2f} {str(r['iterations']):>6s} {r['score']:10.1e} "
              f"{r['peak_over_X']:7.2f} {r['seconds'] / res[ours]['seconds']:6.1f}x "
              f"{diff:28.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", nargs="+",
                        default=["300000x30", "1000000x50", "100000x150"])
    parser.add_argument("--wls", default="1000000x100")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        n, p = map(int, args.one[1].split("x"))
        print(json.dumps(one(args.one[0], n, p, args.repeats)))
        return
    print(f"float64, balanced weights, 5% positives; each method in its own process, 1 "
          f"warm-up fit, median of {args.repeats}; peak/X: peak RSS above X over X's size")
    runs = [(size, GLMS) for size in args.sizes] + [(args.wls, WLS)]
    for size, methods in runs:
        res = {m: run_isolated(__file__, "--repeats", str(args.repeats), "--one", m, size,
                               timeout=3600) for m in methods}
        kind = "WLS" if methods == WLS else "binomial GLM"
        print(f"\n{kind}, n x p = {size}")
        table(res, methods[0], methods[1])
        ours = res[methods[0]]
        blocks = -(-int(size.split("x")[0]) // (BLOCK_ROWS if methods == GLMS else GRAM_BLOCK_ROWS))
        passes = ours["blas_calls"] / blocks
        if passes:
            print(f"ours: {passes:.1f} passes over X forming the Gram matrix (Gram products "
                  f"/ blocks in a pass) and {ours['score_passes']} that do not; "
                  f"{ours['blas_seconds'] / ours['seconds']:.0%} of the time in those "
                  f"products (BLAS)")
        if ours["sweeps"]:
            per_score = ours["score_seconds"] / max(ours["score_passes"], 1)
            print(f"ours: {ours['sweep_seconds'] / ours['sweeps']:.3f} s per full sweep "
                  f"(Gram matrix), {per_score:.3f} s per score pass; the rest of the fit "
                  f"(warm start, checks, log-likelihood): "
                  f"{ours['seconds'] - ours['sweep_seconds'] - ours['score_seconds']:.3f} s")
        if methods == GLMS:
            for m in methods[1:]:
                print(f"ours is {res[m]['seconds'] / ours['seconds']:.1f}x faster than {m}")


if __name__ == "__main__":
    main()
