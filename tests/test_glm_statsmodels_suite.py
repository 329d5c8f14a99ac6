"""statsmodels' own GLM test classes, run from the installed statsmodels: each class's
setup builds its data, its model and its R/Stata reference values; our GLM is fitted on
the same data (family, link, weights, offset, covariance) and compared with the
reference's params, bse, deviance and llf at the class's own precision.

Classes whose reference is another statsmodels fit (weighted against duplicated rows,
Tweedie against its special cases) are skipped as not references; the others left out
are listed in ``SKIP`` with one reason each, or skipped naming what does not apply."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest

sm = pytest.importorskip("statsmodels.api")
suites = [pytest.importorskip("statsmodels.genmod.tests.test_glm"),
          pytest.importorskip("statsmodels.genmod.tests.test_glm_weights")]

from bagoftricks.linear import GLM  # noqa: E402
from bagoftricks.linear.families import log_likelihood  # noqa: E402

FAMILIES = {"Gaussian": "gaussian", "Binomial": "binomial", "Poisson": "poisson",
            "Gamma": "gamma", "InverseGaussian": "inverse_gaussian",
            "NegativeBinomial": "negative_binomial", "Tweedie": "tweedie"}
LINKS = {"Identity": "identity", "Log": "log", "Logit": "logit", "Probit": "probit",
         "CLogLog": "cloglog", "InversePower": "inverse", "InverseSquared": "inverse_squared",
         "Sqrt": "sqrt"}
SKIP = {
    "TestGlmGaussianGradient": "statsmodels' gradient solver, same model as TestGlmGaussian",
    "TestStartParams": "start parameters of statsmodels' optimizer, same fit as others",
    "TestGlmPoissonPwNr": "prob_weights (survey weights) are not a GLM argument here",
    "TestConvergence": "statsmodels' convergence options; no reference values",
}


def _classes():
    for module in suites:
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if name.startswith("Test") and cls.__module__ == module.__name__ \
                    and hasattr(cls, "setup_class"):
                yield pytest.param(cls, id=name, marks=pytest.mark.skip(reason=SKIP[name])
                                   if name in SKIP else ())


def _offset(model):
    """statsmodels' offset plus its exposure (which it keeps as a log), or None."""
    offset = np.zeros(model.exog.shape[0])
    for name in ("offset", "exposure"):
        value = getattr(model, name, None)
        if value is not None:
            offset = offset + np.asarray(value, dtype=float)
    return offset if np.any(offset) else None


def _ours(res1):
    """Our GLM fitted as statsmodels' ``res1`` was, or a reason it cannot be."""
    model = res1.model
    fam, link = type(model.family).__name__, type(model.family.link).__name__
    if fam not in FAMILIES or link not in LINKS:
        return None, f"family {fam} with link {link}"
    exog = np.asarray(model.exog, dtype=float)
    endog = np.asarray(model.endog, dtype=float)
    options = {"nb_alpha": getattr(model.family, "alpha", 1.0),
               "var_power": getattr(model.family, "var_power", 1.5)}
    cov = {"nonrobust": "nonrobust", "HC0": "HC0", "cluster": "cluster"}.get(res1.cov_type)
    if cov is None:
        return None, f"cov_type {res1.cov_type}"
    kwargs = {"sample_weight": model.var_weights, "freq_weight": model.freq_weights}
    if _offset(model) is not None:
        kwargs["offset"] = _offset(model)
    if np.any(np.asarray(model.n_trials) != 1):  # 2-column (successes, failures) endog
        kwargs["trials"] = np.asarray(model.n_trials, dtype=float)
        endog = endog * kwargs["trials"]
    cov_options = {}
    if cov == "cluster":
        kwargs["groups"] = res1.cov_kwds["groups"]
        cov_options["use_correction"] = res1.cov_kwds.get("use_correction", True)
    fits = []
    for scale in (None, "dev", float(res1.scale)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours = GLM(FAMILIES[fam], LINKS[link], fit_intercept=False, tol=1e-12,
                       max_iter=300, scale=scale, cov_type=cov, **options,
                       **cov_options).fit(
                exog, endog, **kwargs)
        fits.append(ours)
        if np.isclose(ours.scale_, res1.scale, rtol=1e-6):
            return ours, None  # the same dispersion rule as the class chose
    return fits[-1], None


@pytest.mark.parametrize("cls", list(_classes()))
def test_statsmodels_glm_test_class(cls):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cls.setup_class()
    res1, res2 = getattr(cls, "res1", None), getattr(cls, "res2", None)
    if res1 is None or res2 is None or type(res2).__module__.startswith(
            "statsmodels.genmod.generalized_linear_model"):
        pytest.skip("not a reference: the class compares statsmodels with itself")
    ours, reason = _ours(res1)
    if ours is None:
        pytest.skip(f"not applicable: {reason}")
    decimal = {k: getattr(cls, f"decimal_{k}", 4) for k in
               ("params", "bse", "deviance", "loglike")}
    family = FAMILIES[type(res1.model.family).__name__]
    llf = ours.llf_
    if family in ("gamma", "inverse_gaussian", "negative_binomial"):
        # Stata's llf, which these classes hold, is the log-likelihood at scale 1
        model = res1.model
        llf = float((model.freq_weights * log_likelihood(
            family, np.asarray(model.endog, float), ours.predict_mean(
                np.asarray(model.exog, float), offset=_offset(model)),
            model.var_weights, 1.0, nb_alpha=ours.nb_alpha)).sum())
    checked = []
    for ref_name, ours_value, key in (("params", ours.coef_, "params"),
                                      ("bse", ours.bse_, "bse"),
                                      ("deviance", ours.deviance_, "deviance"),
                                      ("llf", llf, "loglike")):
        ref = getattr(res2, ref_name, None)
        if ref is not None and ref_name == "bse":  # the class's own small-sample factor
            ref = getattr(cls, "corr_fact", 1.0) * np.asarray(ref, float)
        if ref is None or (ref_name == "llf" and FAMILIES[type(res1.model.family).__name__]
                           == "tweedie"):
            continue
        np.testing.assert_allclose(np.asarray(ours_value, float), np.asarray(ref, float),
                                   rtol=1e-5, atol=1.5 * 10.0 ** -decimal[key],
                                   err_msg=f"{cls.__name__}: {ref_name}")
        checked.append(ref_name)
    assert "params" in checked
