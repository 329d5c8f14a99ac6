import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import statsmodels.api as sm
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.estimator_checks import (
    check_estimator,
    check_sample_weight_equivalence_on_dense_data,
)

from bagoftricks.linear import GLM, ConvergenceWarning, PerfectSeparationWarning, validate, wls

SM_FAMILIES = {"gaussian": sm.families.Gaussian, "binomial": sm.families.Binomial,
               "poisson": sm.families.Poisson, "gamma": sm.families.Gamma}
SM_LINKS = {"log": sm.families.links.Log, "identity": sm.families.links.Identity}


def statsmodels_fit(family, X, y, w, link=None):
    fam = SM_FAMILIES[family](SM_LINKS[link]()) if link else SM_FAMILIES[family]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sm.GLM(y, sm.add_constant(X, has_constant="add"), family=fam,
                     var_weights=w).fit(tol=1e-13, maxiter=200)
        # standard errors from the expected information at the converged parameters
        # (statsmodels' IRLS bse use the weights of the iterate before the last one)
        hess = res.model.hessian(res.params, scale=res.scale, observed=False)
    return res, np.sqrt(np.diag(np.linalg.inv(-hess)))


def assert_matches(model, res, bse):
    np.testing.assert_allclose(np.r_[model.intercept_, model.coef_], res.params, rtol=0,
                               atol=1e-8)
    np.testing.assert_allclose(model.bse_, bse, rtol=0, atol=1e-8)
    assert model.deviance_ == pytest.approx(res.deviance, abs=1e-8, rel=1e-12)
    assert model.null_deviance_ == pytest.approx(res.null_deviance, abs=1e-8, rel=1e-12)
    assert model.scale_ == pytest.approx(res.scale, rel=1e-9)


def make_problem(family, seed, n, p):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    beta = rng.normal(0, 0.4, size=p)
    eta = 0.3 + X @ beta
    if family == "gaussian":
        y = eta + rng.normal(size=n)
    elif family == "binomial":
        y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    elif family == "poisson":
        y = rng.poisson(np.exp(eta)).astype(float)
    else:
        mu = np.exp(eta)
        y = rng.gamma(2.0, mu / 2.0)
    return X, y, rng.uniform(0.2, 3.0, size=n)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(["gaussian", "binomial", "poisson", "gamma"]), st.integers(0, 10**6),
       st.integers(60, 300), st.integers(1, 5))
def test_equals_statsmodels_on_generated_problems(family, seed, n, p):
    X, y, w = make_problem(family, seed, n, p)
    link = "log" if family == "gamma" else None  # the inverse link may leave the support
    model = GLM(family, link=link).fit(X, y, sample_weight=w)
    assert_matches(model, *statsmodels_fit(family, X, y, w, link))


def test_spector_logit():
    d = sm.datasets.spector.load_pandas()
    X, y = d.exog.values, d.endog.values
    w = np.random.default_rng(0).uniform(0.5, 2, len(y))
    assert_matches(GLM("binomial").fit(X, y, sample_weight=w), *statsmodels_fit(
        "binomial", X, y, w))


def test_cpunish_poisson():
    d = sm.datasets.cpunish.load_pandas()
    X = d.exog.values.astype(float).copy()
    X[:, 3] = np.log(X[:, 3])
    y = d.endog.values.astype(float)
    assert_matches(GLM("poisson").fit(X, y), *statsmodels_fit("poisson", X, y, np.ones(len(y))))


def test_scotland_gamma_canonical_link():
    d = sm.datasets.scotland.load_pandas()
    X, y = d.exog.values, d.endog.values
    w = np.random.default_rng(1).uniform(0.5, 2, len(y))
    assert_matches(GLM("gamma").fit(X, y, sample_weight=w), *statsmodels_fit("gamma", X, y, w))


def test_wls_equals_statsmodels_and_accepts_torch_and_several_targets():
    d = sm.datasets.longley.load_pandas()
    X, y = d.exog.values, d.endog.values
    X = (X - X.mean(0)) / X.std(0)
    w = np.random.default_rng(2).uniform(0.5, 2, len(y))
    ref = sm.WLS(y, sm.add_constant(X), weights=w).fit()
    fit = wls(X, y, sample_weight=w)
    coef, intercept = fit
    np.testing.assert_allclose(np.r_[intercept, coef], ref.params, rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(fit.bse, ref.bse, rtol=1e-9)
    assert fit.scale == pytest.approx(ref.scale, rel=1e-10)
    assert fit.df_resid == ref.df_resid
    Y = np.c_[y, 2 * y + 1]
    coef2, intercept2 = wls(torch.as_tensor(X), torch.as_tensor(Y), sample_weight=w)
    assert isinstance(coef2, torch.Tensor) and coef2.shape == (X.shape[1], 2)
    np.testing.assert_allclose(coef2[:, 1].numpy(), 2 * coef, rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(intercept2.numpy(), [intercept, 2 * intercept + 1], rtol=1e-9)
    coef3, i3 = wls(X, y, fit_intercept=False)
    np.testing.assert_allclose(coef3, sm.OLS(y, X).fit().params, rtol=1e-9, atol=1e-8)
    assert i3 == 0.0
    np.testing.assert_allclose(wls(X, y, fit_intercept=False).bse, sm.OLS(y, X).fit().bse,
                               rtol=1e-9)
    two = wls(X, Y, sample_weight=w)
    np.testing.assert_allclose(two.bse[:, 1], 2 * fit.bse, rtol=1e-9)


def test_wls_ill_conditioned_falls_back_with_a_warning():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(50, 3))
    X = np.c_[X, X[:, 0] + X[:, 1]]
    y = X[:, 0] + rng.normal(size=50)
    with pytest.warns(RuntimeWarning, match=r"dependent columns \['x3'\]|x0|x1"):
        coef, _ = wls(X, y)
    np.testing.assert_allclose(X @ coef, X @ np.linalg.lstsq(np.c_[np.ones(50), X], y,
                                                              rcond=None)[0][1:], atol=1e-6)
    with pytest.raises(ValueError, match="X: rank-deficient"):
        wls(X, y, rank_deficient="raise")


def test_balanced_class_weight_equals_sklearn_sample_weights():
    X, y, _ = make_problem("binomial", 5, 400, 3)
    y[:300] = 0
    a = GLM("binomial", class_weight="balanced").fit(X, y)
    b = GLM("binomial").fit(X, y, sample_weight=compute_sample_weight("balanced", y))
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-12)
    c = GLM("binomial", class_weight={0: 2.0, 1: 0.5}).fit(X, y)
    d = GLM("binomial").fit(X, y, sample_weight=np.where(y == 1, 0.5, 2.0))
    np.testing.assert_allclose(c.coef_, d.coef_, rtol=1e-12)


@pytest.mark.parametrize("alpha", [0.1, 1.0, 10.0])
def test_l2_penalty_equals_sklearn_logistic_regression(alpha):
    X, y, w = make_problem("binomial", 7, 300, 4)
    ours = GLM("binomial", alpha=alpha).fit(X, y, sample_weight=w)
    ref = LogisticRegression(C=1 / alpha, tol=1e-12, max_iter=1000,
                             solver="newton-cholesky").fit(X, y, sample_weight=w)
    np.testing.assert_allclose(ours.coef_, ref.coef_[0], atol=1e-8)
    assert ours.intercept_ == pytest.approx(ref.intercept_[0], abs=1e-8)


def test_sklearn_conventions_pipeline_and_cross_validation():
    rng = np.random.default_rng(8)
    X = rng.normal(size=(200, 3))  # a clear signal, so every fold explains deviance
    y = (rng.random(200) < 1 / (1 + np.exp(-(2 * X[:, 0] - X[:, 1])))).astype(float)
    model = GLM("binomial", alpha=0.5)
    assert clone(model).get_params() == model.get_params()
    assert model.set_params(alpha=1.0) is model and model.alpha == 1.0
    with pytest.raises(ValueError, match="bogus: not a parameter"):
        model.set_params(bogus=1)
    pipe = make_pipeline(StandardScaler(), GLM("binomial"))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and np.all(scores > 0)
    auc = cross_val_score(GLM("binomial"), X, y, cv=3, scoring="roc_auc")
    assert np.all(auc > 0.5)
    fitted = GLM("binomial").fit(X, y)
    proba = fitted.predict_proba(X)
    np.testing.assert_allclose(proba[:, 1], fitted.predict_mean(X))
    np.testing.assert_array_equal(fitted.predict(X), (proba[:, 1] > 0.5).astype(float))
    np.testing.assert_allclose(fitted.decision_function(X), X @ fitted.coef_ + fitted.intercept_)
    assert "P>|z|" in fitted.summary() and "x2" in fitted.summary()
    assert fitted.n_iter_ >= 2 and fitted.converged_


def test_float32_input_within_documented_tolerance():
    X, y, w = make_problem("poisson", 9, 500, 3)
    f64 = GLM("poisson").fit(X, y, sample_weight=w)
    f32 = GLM("poisson").fit(X.astype(np.float32), y, sample_weight=w)
    np.testing.assert_allclose(f32.coef_, f64.coef_, rtol=1e-4, atol=1e-4)


def test_perfect_separation_warns_with_finite_coefficients_or_raises():
    X = np.r_[np.linspace(-3, -0.5, 20), np.linspace(0.5, 3, 20)][:, None]
    y = (X[:, 0] > 0).astype(float)
    with pytest.warns(PerfectSeparationWarning, match="perfect separation"):
        model = GLM("binomial").fit(X, y)
    assert np.all(np.isfinite(model.coef_)) and model.coef_[0] > 5
    with pytest.raises(ValueError, match="perfect separation"):
        GLM("binomial", separation="raise").fit(X, y)
    y2 = y.copy()
    X2 = np.r_[X, [[0.6], [0.7]]]
    y2 = np.r_[y2, 0, 1]  # overlap only at the boundary: quasi-perfect separation
    with pytest.warns(PerfectSeparationWarning, match="quasi-perfect|perfect"):
        GLM("binomial").fit(X2, y2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GLM("binomial", alpha=1.0).fit(X, y)  # a penalty makes it identified


def test_rank_deficient_names_columns_or_uses_pinv():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(80, 3))
    X = np.c_[X, 2 * X[:, 1]]
    y = rng.poisson(2, size=80).astype(float)
    with pytest.raises(ValueError, match=r"X: rank-deficient, columns \['x(1|3)'\]"):
        GLM("poisson").fit(X, y)
    with pytest.warns(RuntimeWarning, match="pinv"):
        model = GLM("poisson", rank_deficient="pinv").fit(X, y)
    full = GLM("poisson").fit(X[:, :3], y)
    np.testing.assert_allclose(model.predict(X), full.predict(X[:, :3]), rtol=1e-6)


@pytest.mark.parametrize("family, y, match", [
    ("poisson", [1.0, -1.0, 2.0], r"y: the poisson family needs y >= 0"),
    ("binomial", [0.0, 1.5, 1.0], r"target is continuous .* proportions must lie in \[0, 1\]"),
    ("gamma", [1.0, 0.0, 2.0], r"y: the gamma family needs y > 0"),
])
def test_y_outside_the_support(family, y, match):
    with pytest.raises(ValueError, match=match):
        GLM(family).fit(np.arange(6.0).reshape(3, 2), y)


@pytest.mark.parametrize("kwargs, match", [
    ({"X": [[np.nan, 1.0], [1.0, 2.0]]}, "X: contains NaN"),
    ({"y": [np.inf, 1.0]}, "y: contains NaN"),
    ({"sample_weight": [1.0, np.nan]}, "sample_weight: contains NaN"),
    ({"sample_weight": [1.0, -1.0]}, "sample_weight: negative"),
    ({"y": [1.0, 2.0, 3.0]}, "y: has 3 rows"),
    ({"X": [1.0, 2.0]}, "X: expected 2-D"),
])
def test_bad_input(kwargs, match):
    args = {"X": [[0.0, 1.0], [1.0, 3.0]], "y": [1.0, 2.0], **kwargs}
    with pytest.raises(ValueError, match=match):
        GLM("gaussian").fit(args["X"], args["y"], sample_weight=args.get("sample_weight"))


@pytest.mark.parametrize("kwargs, match", [
    ({"family": "weibull"}, "family: "), ({"link": "logarithmic"}, "link: "),
    ({"alpha": -1}, "alpha: "), ({"max_iter": 0}, "max_iter: "), ({"tol": 0}, "tol: "),
    ({"separation": "ignore"}, "separation: "), ({"rank_deficient": "drop"}, "rank_deficient: "),
    ({"class_weight": "auto", "family": "binomial"}, "class_weight: "),
    ({"class_weight": "balanced"}, "class_weight: needs family='binomial'"),
])
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GLM(**kwargs).fit(np.arange(8.0).reshape(4, 2), [0.0, 1.0, 1.0, 0.0])


def test_non_convergence_warns_with_the_last_change():
    X, y, _ = make_problem("poisson", 11, 200, 3)
    with pytest.warns(ConvergenceWarning, match="no convergence in 1 iterations; the last "
                                                "deviance change"):
        model = GLM("poisson", max_iter=1).fit(X, y)
    assert not model.converged_


def test_predict_checks():
    with pytest.raises(NotFittedError, match="call fit"):
        GLM().predict([[1.0]])
    model = GLM().fit([[0.0], [1.0], [2.0]], [0.0, 1.0, 2.5])
    with pytest.raises(ValueError, match="X has 2 features, but GLM is expecting 1"):
        model.predict([[1.0, 2.0]])
    with pytest.raises(AttributeError, match="predict_proba: only for family='binomial'"):
        model.predict_proba([[1.0]])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_cuda_equals_cpu():
    X, y, w = make_problem("binomial", 12, 500, 4)
    cpu = GLM("binomial").fit(X, y, sample_weight=w)
    gpu = GLM("binomial", device="cuda").fit(X, y, sample_weight=w)
    np.testing.assert_allclose(gpu.coef_, cpu.coef_, atol=1e-8)


def test_large_n_warm_start_from_a_subsample_is_still_exact():
    X, y, w = make_problem("binomial", 13, 120_000, 3)
    model = GLM("binomial").fit(X, y, sample_weight=w)
    assert model.n_iter_ <= 4  # the subsample start leaves a few full iterations
    assert_matches(model, *statsmodels_fit("binomial", X, y, w))


# -- never silently wrong: the units of a column do not change the fit ---------------

NIST_LONGLEY = [-3482258.63459582, 15.0618722713733, -0.358191792925910e-01,
                -2.02022980381683, -1.03322686717359, -0.511041056535807e-01,
                1829.15146461355]  # NIST StRD certified values (intercept first)


def test_raw_longley_matches_the_nist_certified_values():
    d = sm.datasets.longley.load_pandas()  # GNP ~ 1e5, YEAR ~ 1950: ill-conditioned
    coef, intercept = wls(d.exog.values, d.endog.values)
    np.testing.assert_allclose(np.r_[intercept, coef], NIST_LONGLEY, rtol=1e-9)
    glm = GLM("gaussian").fit(d.exog.values, d.endog.values)  # IRLS refines its solves too
    np.testing.assert_allclose(np.r_[glm.intercept_, glm.coef_], NIST_LONGLEY, rtol=1e-9)


def test_raw_longley_with_weights_matches_statsmodels_wls():
    # ill-conditioned and weighted: the refinement must use sqrt(w) y, not y / sqrt(w)
    d = sm.datasets.longley.load_pandas()
    X, y = d.exog.values, d.endog.values
    w = np.random.default_rng(5).uniform(0.2, 5, len(y))
    fit = wls(X, y, sample_weight=w)
    ref = sm.WLS(y, sm.add_constant(X), weights=w).fit(method="qr")
    np.testing.assert_allclose(np.r_[fit.intercept, fit.coef], ref.params, rtol=1e-7)
    np.testing.assert_allclose(fit.bse, ref.bse, rtol=1e-6)
    with pytest.raises(ValueError, match="^X: expected 2-D"):
        wls(X[:, 0], y)
    with pytest.raises(ValueError, match=r"^y: has 15 rows, X has 16$"):
        wls(X, y[:-1])


def test_raw_cpunish_income_with_weights_matches_statsmodels():
    d = sm.datasets.cpunish.load_pandas()  # INCOME ~ 4.5e4, not log-transformed
    X, y = d.exog.values.astype(float), d.endog.values.astype(float)
    w = np.random.default_rng(0).uniform(0.5, 2, len(y))
    assert_matches(GLM("poisson").fit(X, y, sample_weight=w),
                   *statsmodels_fit("poisson", X, y, w))


@settings(max_examples=30, deadline=None)
@given(k=st.integers(-8, 8), column=st.integers(0, 2), family=st.sampled_from(
    ["gaussian", "binomial", "poisson"]))
def test_a_column_in_other_units_gives_the_same_fit(k, column, family):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(400, 3))
    eta = X @ [0.8, -0.5, 0.3] + 0.2
    y = {"gaussian": eta + 0.1 * rng.normal(size=400),
         "binomial": (rng.random(400) < 1 / (1 + np.exp(-eta))).astype(float),
         "poisson": rng.poisson(np.exp(eta)).astype(float)}[family]
    base = GLM(family).fit(X, y)
    scaled = X.copy()
    scaled[:, column] *= 10.0**k
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ill-conditioning warning either
        fit = GLM(family).fit(scaled, y)
    back = fit.coef_.copy()
    back[column] *= 10.0**k
    np.testing.assert_allclose(back, base.coef_, rtol=1e-8)
    assert fit.intercept_ == pytest.approx(base.intercept_, rel=1e-8)
    assert fit.converged_


def test_binomial_with_a_log_link_on_0_1_data_converges_by_step_halving():
    # The first IRLS step leaves (0, 1); it used to crash ("array must not contain infs
    # or NaNs") where statsmodels converges. Halving back toward the intercept-only fit
    # keeps every mean in the domain; the score at the solution is zero.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 2))
    y = (rng.random(500) < np.exp(-1.5 + 0.3 * X[:, 0] - 0.2 * X[:, 1])).astype(float)
    fit = GLM("binomial", link="log", tol=1e-12).fit(X, y)
    beta = np.r_[fit.intercept_, fit.coef_]
    Xc = sm.add_constant(X)
    mu = np.exp(Xc @ beta)
    assert fit.converged_ and np.all((mu > 0) & (mu < 1))
    assert np.abs(Xc.T @ ((y - mu) / (1 - mu))).max() < 1e-6  # the score vanishes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' DomainWarning about this link
        ref = sm.GLM(y, Xc, family=sm.families.Binomial(link=sm.families.links.Log())).fit(
            tol=1e-14, maxiter=1000)
    np.testing.assert_allclose(beta, ref.params, rtol=1e-6)


def test_statsmodels_weighted_cases_on_raw_income():
    # statsmodels' own test_glm_weights.py cases (TestGlmPoissonAwNr, TestGlmGaussianAwNr)
    # with INCOME left raw (~4.5e4) instead of log-transformed or divided by 1000
    d = sm.datasets.cpunish.load_pandas()
    y = d.endog.values.astype(float)
    fw = np.array([1, 1, 1, 2, 2, 2, 3, 3, 3, 1, 1, 1, 2, 2, 2, 3, 3], float)
    aw = fw / fw.sum() * len(y)
    X = d.exog.values.astype(float)
    ref = sm.GLM(y, sm.add_constant(X), family=sm.families.Poisson(), var_weights=aw).fit()
    ours = GLM("poisson").fit(X, y, sample_weight=aw)
    np.testing.assert_allclose(np.r_[ours.intercept_, ours.coef_], ref.params, rtol=1e-9)
    X = d.exog[["INCOME", "SOUTH"]].values.astype(float)
    aw = np.array([1, 2, 3, 4, 5, 4, 3, 2, 1, 2, 3, 4, 5, 4, 3, 2, 1], float)
    ref = sm.GLM(y, X, family=sm.families.Gaussian(link=sm.families.links.Log()),
                 var_weights=aw).fit(tol=1e-12, maxiter=500)
    ours = GLM("gaussian", link="log", fit_intercept=False, tol=1e-12,
               max_iter=500).fit(X, y, sample_weight=aw)
    assert ours.converged_
    np.testing.assert_allclose(ours.coef_, ref.params, rtol=1e-6)


@pytest.mark.parametrize("family", ["poisson", "binomial"])
def test_offset_and_exposure_equal_statsmodels(family):
    rng = np.random.default_rng(0)
    n = 800
    X = rng.normal(size=(n, 3))
    exposure, offset = rng.uniform(0.5, 5, n), rng.normal(0, 0.3, n)
    w = rng.uniform(0.5, 2, n)
    eta = 0.3 + X @ [0.2, -0.4, 0.1] + offset
    if family == "poisson":
        y = rng.poisson(exposure * np.exp(eta)).astype(float)
        kwargs = {"exposure": exposure, "offset": offset}
        ref = sm.GLM(y, sm.add_constant(X), family=sm.families.Poisson(), var_weights=w,
                     **kwargs).fit()
    else:
        y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
        kwargs = {"offset": offset}
        ref = sm.GLM(y, sm.add_constant(X), family=sm.families.Binomial(), var_weights=w,
                     **kwargs).fit()
    ours = GLM(family).fit(X, y, sample_weight=w, **kwargs)
    np.testing.assert_allclose(np.r_[ours.intercept_, ours.coef_], ref.params, rtol=1e-9)
    np.testing.assert_allclose(ours.bse_, ref.bse, rtol=1e-7)
    assert ours.deviance_ == pytest.approx(ref.deviance, rel=1e-10)
    assert ours.null_deviance_ == pytest.approx(ref.null_deviance, rel=1e-8)
    new = rng.normal(size=(5, 3))
    np.testing.assert_allclose(ours.predict_mean(new, **{k: v[:5] for k, v in kwargs.items()}),
                               ref.predict(sm.add_constant(new),
                                           **{k: v[:5] for k, v in kwargs.items()}),
                               rtol=1e-9)


@pytest.mark.parametrize("kwargs, match", [
    ({"exposure": -np.ones(10)}, "exposure: must be positive"),
    ({"offset": np.r_[np.nan, np.zeros(9)]}, "offset:"),
    ({"offset": np.zeros(9)}, "offset: has 9 rows, X has 10"),
])
def test_bad_offsets_are_named(kwargs, match):
    X, y = np.random.default_rng(0).normal(size=(10, 2)), np.arange(10.0)
    with pytest.raises(ValueError, match=match):
        GLM("poisson").fit(X, y, **kwargs)


@pytest.mark.parametrize("family, link", [("gaussian", None), ("gamma", "log")])
def test_freq_weights_equal_statsmodels_and_repeated_rows(family, link):
    rng = np.random.default_rng(0)
    n = 300
    X = rng.normal(size=(n, 2))
    y = 1 + X @ [0.5, -0.3] + rng.normal(0, 0.5, n)
    y = y if family == "gaussian" else np.exp(y / 3)
    fw, vw = rng.integers(1, 4, n).astype(float), rng.uniform(0.5, 2, n)
    fam = sm.families.Gaussian() if family == "gaussian" else sm.families.Gamma(
        link=sm.families.links.Log())
    ref = sm.GLM(y, sm.add_constant(X), family=fam, freq_weights=fw, var_weights=vw).fit()
    ours = GLM(family, link=link).fit(X, y, sample_weight=vw, freq_weight=fw)
    np.testing.assert_allclose(np.r_[ours.intercept_, ours.coef_], ref.params, rtol=1e-9)
    np.testing.assert_allclose(ours.bse_, ref.bse, rtol=1e-9)
    assert ours.scale_ == pytest.approx(ref.scale, rel=1e-9)
    rows = np.repeat(np.arange(n), fw.astype(int))  # frequency weights = repeated rows
    repeated = GLM(family, link=link).fit(X[rows], y[rows], sample_weight=vw[rows])
    np.testing.assert_allclose(ours.bse_, repeated.bse_, rtol=1e-9)


@pytest.mark.parametrize("scale", [None, "X2", "dev", 2.5])
@pytest.mark.parametrize("family", ["poisson", "binomial", "gamma"])
def test_dispersion_choices_equal_statsmodels(family, scale):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 2))
    eta = 0.2 + X @ [0.4, -0.3]
    y = {"poisson": rng.negative_binomial(3, 3 / (3 + np.exp(eta))).astype(float),  # overdispersed
         "binomial": (rng.random(400) < 1 / (1 + np.exp(-eta))).astype(float),
         "gamma": rng.gamma(2.0, np.exp(eta) / 2.0)}[family]
    fam = {"poisson": sm.families.Poisson(), "binomial": sm.families.Binomial(),
           "gamma": sm.families.Gamma(link=sm.families.links.Log())}[family]
    ref = sm.GLM(y, sm.add_constant(X), family=fam).fit(scale=scale)
    ours = GLM(family, link="log" if family == "gamma" else None, scale=scale).fit(X, y)
    assert ours.scale_ == pytest.approx(ref.scale, rel=1e-7)
    # (statsmodels' IRLS bse use the previous iterate's weights: ~1e-7 apart here)
    np.testing.assert_allclose(ours.bse_, ref.bse, rtol=1e-6)


def test_a_bad_scale_is_named():
    with pytest.raises(ValueError, match="scale: expected None, 'X2', 'dev'"):
        GLM("poisson", scale="pearson").fit(np.zeros((4, 1)), np.arange(4.0))


@pytest.mark.parametrize("family", ["poisson", "binomial"])
def test_robust_covariances_equal_statsmodels(family):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 2))
    eta = 0.2 + X @ [0.4, -0.3]
    y = (rng.negative_binomial(3, 3 / (3 + np.exp(eta))) if family == "poisson"
         else rng.random(400) < 1 / (1 + np.exp(-eta))).astype(float)
    groups = rng.integers(0, 30, 400)
    fam = sm.families.Poisson() if family == "poisson" else sm.families.Binomial()
    Xc = sm.add_constant(X)
    for cov_type, kwds in [("HC0", {}), ("cluster", {"groups": groups})]:
        ref = sm.GLM(y, Xc, family=fam).fit(cov_type=cov_type, cov_kwds=kwds)
        ours = GLM(family, cov_type=cov_type).fit(X, y, **kwds)
        np.testing.assert_allclose(ours.bse_, ref.bse, rtol=1e-7)
    hc0 = GLM(family, cov_type="HC0").fit(X, y).bse_
    hc1 = GLM(family, cov_type="HC1").fit(X, y).bse_  # Stata's n / (n - p) correction
    np.testing.assert_allclose(hc1, hc0 * np.sqrt(400 / 397), rtol=1e-12)
    with pytest.raises(ValueError, match="groups: cov_type='cluster' needs"):
        GLM(family, cov_type="cluster").fit(X, y)
    with pytest.raises(ValueError, match="cov_type: expected one of"):
        GLM(family, cov_type="HC3").fit(X, y)


def _family_data(kind, X, rng):
    eta = 0.3 + X @ [0.4, -0.3]
    if kind == "count":
        return rng.poisson(np.exp(eta)).astype(float)
    if kind == "binary":
        return (rng.random(len(X)) < 1 / (1 + np.exp(-eta))).astype(float)
    if kind == "positive":
        return rng.gamma(2.0, np.exp(eta) / 2)
    if kind == "wald":  # mean 1/sqrt(eta') with eta' > 0: the canonical link is defined
        return rng.wald(1 / np.sqrt(2 + X @ [0.3, -0.2]), 4.0)
    counts = rng.poisson(np.exp(eta))  # compound Poisson-gamma: Tweedie with 1 < p < 2
    return np.array([rng.gamma(2.0, 0.5, k).sum() for k in counts])


LINKS = sm.families.links


@pytest.mark.parametrize("family, link, kind, reference, extra", [
    ("binomial", "probit", "binary", lambda: sm.families.Binomial(LINKS.Probit()), {}),
    ("binomial", "cloglog", "binary", lambda: sm.families.Binomial(LINKS.CLogLog()), {}),
    ("poisson", "identity", "count", lambda: sm.families.Poisson(LINKS.Identity()), {}),
    ("poisson", "sqrt", "count", lambda: sm.families.Poisson(LINKS.Sqrt()), {}),
    ("gamma", "log", "positive", lambda: sm.families.Gamma(LINKS.Log()), {}),
    ("inverse_gaussian", None, "wald", lambda: sm.families.InverseGaussian(), {}),
    ("inverse_gaussian", "log", "wald", lambda: sm.families.InverseGaussian(LINKS.Log()), {}),
    ("negative_binomial", None, "count", lambda: sm.families.NegativeBinomial(alpha=0.7),
     {"nb_alpha": 0.7}),
    ("tweedie", None, "tweedie", lambda: sm.families.Tweedie(var_power=1.5, link=LINKS.Log()),
     {"var_power": 1.5}),
])
def test_more_families_and_links_equal_statsmodels(family, link, kind, reference, extra):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 2)) * 0.5
    w = rng.uniform(0.5, 2, 600)
    y = _family_data(kind, X, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' DomainWarning for some links
        ref = sm.GLM(y, sm.add_constant(X), family=reference(), var_weights=w).fit(
            tol=1e-13, maxiter=500)
    ours = GLM(family, link=link, tol=1e-12, max_iter=500, **extra).fit(X, y, sample_weight=w)
    assert ours.converged_  # (non-canonical links converge linearly: 1e-7 apart at most)
    np.testing.assert_allclose(np.r_[ours.intercept_, ours.coef_], ref.params, rtol=1e-7)
    np.testing.assert_allclose(ours.bse_, ref.bse, rtol=1e-7)
    assert ours.deviance_ == pytest.approx(ref.deviance, rel=1e-10)
    assert ours.scale_ == pytest.approx(ref.scale, rel=1e-9)


# -- the scikit-learn contract ------------------------------------------------------------
FAMILIES = ["gaussian", "binomial", "poisson", "gamma", "inverse_gaussian", "tweedie",
            "negative_binomial"]
INAPPLICABLE = {  # one reason each; everything else scikit-learn checks must pass
    "check_sample_weight_equivalence_on_dense_data":
        "it draws more columns than rows, so an unpenalized GLM is not identified and "
        "refuses (rank_deficient='raise'); with alpha > 0 it passes (tested below)",
}


@pytest.mark.parametrize("family", FAMILIES)
def test_check_estimator(family):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", PerfectSeparationWarning)
        check_estimator(GLM(family), expected_failed_checks=INAPPLICABLE)


@pytest.mark.parametrize("family", FAMILIES)
def test_sample_weight_equivalence_when_identified(family):
    # (the inverse Gaussian's canonical link 1/mu^2 leaves its domain on this draw and
    # says so; its log link is identified)
    link = "log" if family == "inverse_gaussian" else None
    check_sample_weight_equivalence_on_dense_data("GLM", GLM(family, link, alpha=1.0))


def test_binomial_is_a_classifier_with_any_two_labels():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 2))
    churn = np.where(rng.random(300) < 1 / (1 + np.exp(-2 * X[:, 0])), "churn", "stay")
    model = GLM("binomial").fit(X, churn)
    assert model.classes_.tolist() == ["churn", "stay"]
    assert set(model.predict(X)) <= {"churn", "stay"}
    ref = LogisticRegression(C=np.inf, tol=1e-12).fit(X, churn)
    np.testing.assert_allclose(model.predict_proba(X), ref.predict_proba(X), atol=1e-6)
    assert model.score(X, churn) == pytest.approx(ref.score(X, churn))
    acc = cross_val_score(GLM("binomial"), X, churn, cv=3, scoring="accuracy")
    assert np.all(acc > 0.6)
    weighted = GLM("binomial", class_weight={"churn": 3.0, "stay": 1.0}).fit(X, churn)
    same = GLM("binomial").fit(X, churn, sample_weight=np.where(churn == "churn", 3.0, 1.0))
    np.testing.assert_allclose(weighted.coef_, same.coef_, rtol=1e-10)


def test_regressors_hide_the_classifier_methods():
    X = np.random.default_rng(4).normal(size=(50, 2))
    model = GLM("poisson").fit(X, np.arange(50) % 4)
    for name in ("predict_proba", "decision_function", "classes_"):
        assert not hasattr(model, name)
    np.testing.assert_allclose(np.log(model.predict(X)), model.linear_predictor(X))


def test_pandas_object_columns_and_column_vectors():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"age": rng.normal(size=80), "income": rng.normal(size=80)})
    y = 1 + frame["age"].to_numpy() + 0.1 * rng.normal(size=80)
    model = GLM().fit(frame, y)
    assert model.feature_names_in_.tolist() == ["age", "income"]
    assert "age" in model.summary()
    with pytest.warns(UserWarning, match="A column-vector y was passed"):
        column = GLM().fit(frame.to_numpy().astype(object), y[:, None])
    np.testing.assert_allclose(column.coef_, model.coef_, rtol=1e-12)
    with pytest.raises(ValueError, match="Only binary classification"):
        GLM("binomial").fit(frame, np.arange(80) % 3)
    with pytest.raises(ValueError, match="continuous"):
        GLM("binomial").fit(frame, y * 10)



def test_input_errors_name_the_argument_and_the_shape():
    X, y = np.random.default_rng(0).normal(size=(20, 3)), np.arange(20) % 2
    with pytest.raises(NotFittedError, match="^GLM: call fit before predicting$"):
        GLM().predict(X)
    with pytest.raises(ValueError, match=r"\.reshape\(1, -1\) for one sample$"):
        GLM().fit(X[:, 0], y)
    with pytest.raises(ValueError, match=r"^X: expected 2-D, got shape \(20, 3, 1\)$"):
        GLM().fit(X[..., None], y)
    with pytest.raises(ValueError, match=r"^X: Found array with 0 sample\(s\) \(shape="
                                         r"\(0, 3\)\) while a minimum of 1 is required\.$"):
        GLM().fit(X[:0], y[:0])
    with pytest.raises(ValueError, match="^sample_weight: negative weight at index 7$"):
        GLM().fit(X, y, sample_weight=np.r_[np.ones(7), -1.0, np.ones(12)])
    with pytest.raises(ValueError, match="^y: contains NaN"):
        wls(X, np.r_[np.nan, np.ones(19)])



def test_a_gpu_fit_without_cuda_is_one_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    X, y = np.random.default_rng(0).normal(size=(20, 3)), np.arange(20) % 2
    with pytest.raises(ValueError, match="^device: 'cuda' requested but torch sees no CUDA "
                                         "device$"):
        GLM("binomial", device="cuda").fit(X, y)


def test_the_summary_truncates_long_names_to_keep_its_columns():
    X, y = np.random.default_rng(0).normal(size=(50, 2)), np.random.default_rng(1).normal(size=50)
    long = "income_in_thousands_of_euros_per_year"
    rows = GLM().fit(X, y, feature_names=[long, "age"]).summary().splitlines()
    mine = next(r for r in rows if r.startswith(long[:24]))
    assert long[:25] not in mine
    assert len(mine) == len(next(r for r in rows if r.startswith("age")))

class _DuckSparse:
    """Not SciPy's, but sparse: anything with ``tocsr`` is refused as sparse."""

    def tocsr(self):
        raise AssertionError("never converted")


def test_sparse_inputs_are_refused_by_their_interface_and_by_scipy_module():
    from scipy.sparse.linalg import aslinearoperator
    X, y = np.random.default_rng(0).normal(size=(20, 3)), np.arange(20) % 2
    with pytest.raises(TypeError, match="^X: sparse input is not supported"):
        GLM().fit(_DuckSparse(), y)
    with pytest.raises(TypeError, match="^y: sparse input is not supported"):
        GLM().fit(X, _DuckSparse())
    with pytest.raises(TypeError, match="^y: sparse input is not supported"):
        GLM().fit(X, aslinearoperator(np.eye(20)))  # scipy.sparse, without tocsr


def test_a_column_vector_warning_points_at_the_callers_line():
    X, y = np.random.default_rng(0).normal(size=(20, 3)), (np.arange(20) % 2).astype(float)
    y[:3] = 1 - y[:3]
    for call in (lambda: GLM("binomial").fit(X, y[:, None]),
                 lambda: GLM("binomial").fit(X, y[:, None], trials=np.ones(20)),
                 lambda: GLM("binomial").fit(X, y).score(X, y[:, None])):
        with pytest.warns(UserWarning, match="A column-vector y") as record:
            call()
        where = {w.filename for w in record if "column-vector" in str(w.message)}
        # (under mutmut a trampoline of its own sits between this file and the package)
        assert where == {__file__} or "MUTANT_UNDER_TEST" in os.environ and not any(
            f.startswith(str(Path(validate.__file__).parents[1])) for f in where)

# -- streamed fits ------------------------------------------------------------------------
@pytest.mark.parametrize("family, link", [("gaussian", None), ("binomial", None),
                                          ("poisson", None), ("gamma", "log")])
def test_fit_blocks_equals_the_in_memory_fit(family, link):
    rng = np.random.default_rng(21)
    n = 1300
    X = rng.normal(size=(n, 4))
    eta = 0.2 + X @ [0.4, -0.3, 0.2, 0.1]
    off = rng.normal(scale=0.1, size=n)
    y = {"gaussian": eta + rng.normal(size=n),
         "binomial": (rng.random(n) < 1 / (1 + np.exp(-eta - off))).astype(float),
         "poisson": rng.poisson(np.exp(eta + off)).astype(float),
         "gamma": rng.gamma(2.0, np.exp(eta + off) / 2)}[family]
    w = rng.uniform(0.5, 2, n)
    f = rng.integers(1, 4, n).astype(float)
    ref = GLM(family, link).fit(X, y, sample_weight=w, offset=off, freq_weight=f)
    cuts = [0, 17, 400, 401, 900, n]

    def blocks():  # uneven blocks, one of a single row; tensors for one of them
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            Xb = torch.as_tensor(X[a:b]) if a == 400 else X[a:b]
            yield Xb, y[a:b], w[a:b], off[a:b], f[a:b]

    ours = GLM(family, link).fit_blocks(blocks)
    np.testing.assert_allclose(np.r_[ours.intercept_, ours.coef_],
                               np.r_[ref.intercept_, ref.coef_], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.bse_, ref.bse_, rtol=1e-9)
    for name in ("deviance_", "null_deviance_", "llf_", "scale_"):
        assert getattr(ours, name) == pytest.approx(getattr(ref, name), rel=1e-9), name
    np.testing.assert_allclose(ours.predict_mean(X[:5], offset=off[:5]),
                               ref.predict_mean(X[:5], offset=off[:5]), rtol=1e-10)


def test_fit_blocks_bad_input_is_named():
    X = np.ones((4, 2))
    with pytest.raises(ValueError, match="blocks: no rows"):
        GLM().fit_blocks(lambda: iter([]))
    with pytest.raises(ValueError, match="each block must be"):
        GLM().fit_blocks(lambda: iter([X]))
    with pytest.raises(ValueError, match="a block has 3 columns, the first had 2"):
        GLM().fit_blocks(lambda: iter([(X, np.ones(4)), (np.ones((4, 3)), np.ones(4))]))
    with pytest.raises(ValueError, match="fit_blocks: class_weight"):
        GLM("binomial", class_weight="balanced").fit_blocks(lambda: iter([(X, np.ones(4))]))


def test_fit_blocks_warm_start_from_the_first_rows():
    rng = np.random.default_rng(8)
    n = 120_000  # above the warm-start size: a few iterations on the first rows first
    X = rng.normal(size=(n, 3))
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ [0.5, -0.2, 0.1])))).astype(float)
    passes = []

    def blocks():
        passes.append(1)
        return ((X[a:a + 30_000], y[a:a + 30_000]) for a in range(0, n, 30_000))

    ours = GLM("binomial").fit_blocks(blocks)
    ref = GLM("binomial").fit(X, y)
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-10)
    assert len(passes) == ours.n_iter_ + 2  # the totals, the iterations, llf and null


def test_binomial_trials_equal_the_expanded_bernoulli_rows_and_binom_logpmf():
    from scipy.stats import binom
    rng = np.random.default_rng(5)
    X = rng.normal(size=(60, 2))
    n = rng.integers(1, 9, 60).astype(float)
    k = rng.binomial(n.astype(int), 1 / (1 + np.exp(-(X @ [0.8, -0.5] + 0.2)))).astype(float)
    ours = GLM("binomial").fit(X, k, trials=n)
    rows = np.repeat(np.arange(60), n.astype(int))
    ones = np.concatenate([np.arange(int(m)) < int(j) for m, j in zip(n, k, strict=True)])
    expanded = GLM("binomial").fit(X[rows], ones.astype(float))
    np.testing.assert_allclose(np.r_[ours.intercept_, ours.coef_],
                               np.r_[expanded.intercept_, expanded.coef_], rtol=1e-9)
    mu = ours.predict_proba(X)[:, 1]
    assert ours.llf_ == pytest.approx(binom.logpmf(k, n, mu).sum(), rel=1e-10)


@pytest.mark.parametrize("kwargs, match", [
    ({"trials": [3.0] * 5}, "trials: expected 6 finite positive counts"),
    ({"trials": [3.0, 3, 3, 3, 3, 0]}, "trials: expected 6 finite positive counts"),
    ({"trials": [1.0] * 6}, r"y: with trials, y counts successes in \[0, trials\]; row 1"),
])
def test_binomial_trials_bad_input(kwargs, match):
    X, y = np.arange(12.0).reshape(6, 2), np.array([0.0, 2, 1, 0, 1, 1])
    with pytest.raises(ValueError, match=match):
        GLM("binomial").fit(X, y, **kwargs)
    with pytest.raises(ValueError, match="trials: only for the binomial family"):
        GLM("poisson").fit(X, y, trials=[3.0] * 6)


def test_the_glm_path_runs_without_importing_torch():
    """A streamed GLM's memory: torch alone is about a quarter GiB resident (balanced
    class weights and the prior correction still import it: they are the torch
    chapters' functions)."""
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "from bagoftricks.linear import GLM, wls\n"
            "rng = np.random.default_rng(0); X = rng.normal(size=(200, 3))\n"
            "y = (X[:, 0] + rng.normal(size=200) > 0).astype(float)\n"
            "GLM('binomial').fit(X, y).predict_proba(X)\n"
            "GLM('binomial').fit_blocks(lambda: iter([(X, y)]))\n"
            "wls(X, y)\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"


def test_the_package_names_load_on_first_use():
    import bagoftricks

    assert set(bagoftricks.__all__) <= set(dir(bagoftricks))
    for name in bagoftricks.__all__:
        assert getattr(bagoftricks, name) is not None
    assert bagoftricks.fit.__module__ == "bagoftricks.loop.fit"
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        bagoftricks.nope  # noqa: B018


def test_more_input_errors_name_the_argument():
    X = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ValueError, match=r"^y: expected 1-D or 2-D, got shape \(20, 1, 1\)$"):
        wls(X, np.ones((20, 1, 1)))
    with pytest.raises(ValueError, match="^y: the tweedie family needs y > 0"):
        GLM("tweedie", var_power=2.0).fit(X, np.r_[0.0, np.ones(19)])


def test_a_streamed_fit_reports_separation():
    X = np.r_[np.linspace(-3, -1, 10), np.linspace(1, 3, 10)][:, None]
    y = (X[:, 0] > 0).astype(float)
    with pytest.warns(PerfectSeparationWarning):
        GLM("binomial").fit_blocks(lambda: iter([(X[:10], y[:10], None, None),
                                                 (X[10:], y[10:], None, None)]))


def test_a_rank_deficient_warning_points_at_the_callers_line():
    X = np.random.default_rng(0).normal(size=(30, 2))
    X = np.c_[X, X[:, 0]]  # a repeated column
    with pytest.warns(RuntimeWarning, match="ill-conditioned normal equations") as record:
        wls(X, X[:, 1])
    where = {w.filename for w in record if "ill-conditioned" in str(w.message)}
    assert where == {__file__} or "MUTANT_UNDER_TEST" in os.environ and not any(
        f.startswith(str(Path(validate.__file__).parents[1])) for f in where)


def test_the_pinv_fallback_drops_directions_below_1e_12_of_the_largest():
    from bagoftricks.linear.solve import solve_normal

    delta = 1e-14  # eigenvalues 2 and 1e-14: kept by lstsq's own cutoff, not by ours
    A = np.array([[1.0, 1.0 - delta], [1.0 - delta, 1.0]])
    with pytest.warns(RuntimeWarning, match="ill-conditioned"):
        x = solve_normal(A, np.array([1.0, -1.0]), fallback="pinv")
    np.testing.assert_allclose(x, 0.0, atol=1e-6)  # not 1e14 along the dropped direction


def test_third_sample_input_errors():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    with pytest.raises(ValueError, match="^X: must be numeric, got dtype <U1$"):
        GLM().fit(np.full((20, 3), "a"), np.ones(20))
    with pytest.raises(ValueError, match=r"^y: expected 1-D, got shape \(20, 2\)$"):
        GLM().fit(X, np.ones((20, 2)))
    with pytest.raises(ValueError, match="^sample_weight: has 3 entries for 20 rows$"):
        GLM().fit(X, np.ones(20), sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="^y: the inverse_gaussian family needs y > 0"):
        GLM("inverse_gaussian").fit(X, np.r_[0.0, np.ones(19)])


def test_wls_without_intercept_names_columns_from_x0():
    X = np.random.default_rng(0).normal(size=(30, 2))
    res = wls(X, X @ [1.0, 2.0], fit_intercept=False)
    assert res.intercept == 0.0 and isinstance(res.intercept, float)
    on_tensors = wls(torch.as_tensor(X), torch.as_tensor(X @ [1.0, 2.0]), fit_intercept=False)
    assert on_tensors.intercept.item() == 0.0 and on_tensors.intercept.dtype == torch.float64
    from bagoftricks.linear.solve import RankDeficientError
    with pytest.raises(RankDeficientError, match=r"columns \['x2'\]"):
        wls(np.c_[X, X[:, 0]], X[:, 1], fit_intercept=False, rank_deficient="raise")


def test_gamma_log_likelihood_equals_statsmodels():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 2))
    mu = np.exp(0.5 + X @ [0.3, -0.2])
    y = rng.gamma(shape=3.0, scale=mu / 3.0)
    w = rng.uniform(0.5, 2.0, 300)
    ours = GLM("gamma", link="log").fit(X, y, sample_weight=w)
    ref = sm.GLM(y, sm.add_constant(X), family=sm.families.Gamma(sm.families.links.Log()),
                 var_weights=w).fit()
    assert ours.llf_ == pytest.approx(ref.llf, rel=1e-8)


def test_one_weighted_class_and_a_summary_without_intercept():
    X = np.random.default_rng(0).normal(size=(20, 2))
    y = np.r_[np.ones(10), np.zeros(10)]
    with pytest.raises(ValueError, match="^y: only one class has positive weight; the "
                                         "binomial family needs 2 classes$"):
        GLM("binomial").fit(X, y, sample_weight=np.r_[np.ones(10), np.zeros(10)])
    model = GLM(fit_intercept=False).fit(X, X @ [1.5, -2.0])
    rows = [r.split() for r in model.summary().splitlines()]
    assert not any(r and r[0] == "intercept" for r in rows)
    x0 = next(r for r in rows if r and r[0] == "x0")
    assert float(x0[1]) == pytest.approx(1.5, rel=1e-5)


@pytest.mark.parametrize("family, alpha", [("binomial", 0.0), ("poisson", 0.5)])
def test_the_warm_start_and_its_gram_free_passes_leave_the_fit_unchanged(monkeypatch, family,
                                                                         alpha):
    from bagoftricks.linear import glm as glm_module

    rng = np.random.default_rng(5)
    X = rng.normal(size=(120_000, 4))
    eta = X @ np.array([0.4, -0.8, 0.2, 0.0]) - 1.0
    y = (rng.random(len(eta)) < 1 / (1 + np.exp(-eta)) if family == "binomial"
         else rng.poisson(np.exp(0.5 * eta))).astype(float)
    off = rng.normal(0, 0.1, len(y))
    warm = GLM(family, alpha=alpha).fit(X, y, offset=off)
    assert warm.n_iter_ <= 3  # the sample's start, closed in without Gram matrices
    monkeypatch.setattr(glm_module, "WARM_START_MIN_ROWS", 10**12)
    cold = GLM(family, alpha=alpha).fit(X, y, offset=off)
    np.testing.assert_allclose(warm.coef_, cold.coef_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(warm.bse_, cold.bse_, rtol=1e-8)


def test_irls_starts_from_the_fallback_when_the_unchecked_point_is_worse():
    from bagoftricks.linear import glm as glm_module
    from bagoftricks.linear.families import family

    rng = np.random.default_rng(11)
    X = rng.normal(size=(3000, 2))
    y = (rng.random(3000) < np.exp(-1.5 + 0.3 * X[:, 0])).astype(float)

    def problem():  # binomial with a log link: a mean above 1 is outside the domain
        return glm_module._IRLS(family("binomial", np), "log", np.asarray, X, y,
                                np.ones(3000), np.zeros(3), True, None, "warn")

    good = np.array([-1.5, 0.3, 0.0])
    ref = problem().run(good, 1e-10, 50)
    _, dev = problem().score(good)
    for bad in (np.array([0.5, 2.0, 0.0]),     # means above 1: outside the domain
                np.array([-1.5, -0.6, 0.9])):  # inside, but a larger deviance
        got = problem().run(bad, 1e-10, 50, fallback=(good, dev))
        np.testing.assert_allclose(got["beta"], ref["beta"], rtol=1e-12)
        assert got["iterations"] == ref["iterations"]
    better = problem().run(ref["beta"], 1e-10, 50, fallback=(good, dev))
    direct = problem().run(ref["beta"], 1e-10, 50)  # the unchecked point kept
    np.testing.assert_array_equal(better["beta"], direct["beta"])
    assert better["iterations"] == direct["iterations"] < ref["iterations"]
    with pytest.raises(ValueError, match="X: contains NaN"):
        problem().run(np.array([0.5, 2.0, 0.0]), 1e-10, 50)  # and no fallback


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([0.0, 1.0, 0.25, 0.5]), min_size=1, max_size=40),
       st.floats(1e-12, 1 - 1e-12))
def test_binomial_deviance_fast_path_equals_the_general_formula(labels, p):
    from scipy.stats import binom

    from bagoftricks.linear.families import _xlog_ratio, family, log_likelihood

    y = np.array(labels)
    mu = np.full_like(y, p)
    general = 2 * (_xlog_ratio(np, y, mu) + _xlog_ratio(np, 1 - y, 1 - mu))
    np.testing.assert_allclose(family("binomial", np).unit_deviance(y, mu), general,
                               rtol=1e-12, atol=1e-15)  # (both round 1 - mu)
    if set(labels) <= {0.0, 1.0}:  # the Bernoulli log-likelihood, as scipy has it
        np.testing.assert_allclose(log_likelihood("binomial", y, mu, np.ones_like(y), 1.0),
                                   binom.logpmf(y, 1, mu), rtol=1e-12, atol=1e-15)


def test_gram_blocks_equal_one_product_in_float64():
    from bagoftricks.linear.solve import normal_equations

    rng = np.random.default_rng(2)
    X = rng.normal(size=(2500, 6))
    sw = rng.uniform(0.1, 2, 2500)
    rhs = rng.normal(size=2500)
    A, b = normal_equations(X, sw, rhs, True, block=333)
    D = np.c_[np.ones(2500), X] * sw[:, None]
    np.testing.assert_allclose(A, D.T @ D, rtol=1e-12)
    np.testing.assert_allclose(b, D.T @ rhs, rtol=1e-12)
    np.testing.assert_array_equal(A, A.T)
