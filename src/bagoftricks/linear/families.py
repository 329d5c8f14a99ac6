"""Exponential families and links for the GLM (formulas as in McCullagh & Nelder).

Written against the array API shared by NumPy and torch (``exp``, ``log``, ``where``,
``tanh`` and arithmetic), so one implementation serves both back ends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


def _xlog_ratio(xp, y, mu):
    """``y * log(y / mu)`` with ``0 * log 0 = 0``."""
    pos = y > 0
    return xp.where(pos, y * xp.log(xp.where(pos, y, 1.0) / mu), 0.0)


def bernoulli_deviance(xp, y, mu):
    """The binomial unit deviance for 0/1 labels: ``-2 log`` of the probability of the
    observed label (one log; the general form takes two ratios and two logs)."""
    return -2.0 * xp.log(xp.where(y > 0, mu, 1 - mu))


def is_binary(y) -> bool:
    """Every label 0 or 1 (NumPy or torch)."""
    return bool(((y == 0) | (y == 1)).all())


def _binomial_deviance(xp, y, mu):
    """The binomial unit deviance; for 0/1 labels (checked: one cheap pass) by
    ``bernoulli_deviance``, 3x faster."""
    if is_binary(y):
        return bernoulli_deviance(xp, y, mu)
    return 2 * (_xlog_ratio(xp, y, mu) + _xlog_ratio(xp, 1 - y, 1 - mu))


@dataclass(frozen=True)
class Link:
    name: str
    link: Callable          # mu -> eta
    inverse: Callable       # eta -> mu
    deriv: Callable         # d eta / d mu at mu


def _normal(xp):
    """The standard normal cdf and its inverse for the array back end."""
    if xp.__name__ == "torch":
        return xp.special.ndtr, xp.special.ndtri
    import scipy.special
    return scipy.special.ndtr, scipy.special.ndtri


def _links(xp) -> dict[str, Link]:
    ndtr, ndtri = _normal(xp)
    sqrt_2pi = 2.5066282746310002
    return {
        "identity": Link("identity", lambda mu: mu, lambda eta: eta, lambda mu: mu * 0 + 1.0),
        "log": Link("log", xp.log, xp.exp, lambda mu: 1.0 / mu),
        "logit": Link("logit", lambda mu: xp.log(mu / (1 - mu)),
                      lambda eta: 0.5 * (1 + xp.tanh(0.5 * eta)),
                      lambda mu: 1.0 / (mu * (1 - mu))),
        "probit": Link("probit", ndtri, ndtr,
                       lambda mu: sqrt_2pi * xp.exp(0.5 * ndtri(mu) ** 2)),
        "cloglog": Link("cloglog", lambda mu: xp.log(-xp.log(1 - mu)),
                        lambda eta: 1 - xp.exp(-xp.exp(eta)),
                        lambda mu: -1.0 / ((1 - mu) * xp.log(1 - mu))),
        "inverse": Link("inverse", lambda mu: 1.0 / mu, lambda eta: 1.0 / eta,
                        lambda mu: -1.0 / mu**2),
        "inverse_squared": Link("inverse_squared", lambda mu: 1.0 / mu**2,
                                lambda eta: 1.0 / xp.sqrt(eta), lambda mu: -2.0 / mu**3),
        "sqrt": Link("sqrt", xp.sqrt, lambda eta: eta**2, lambda mu: 0.5 / xp.sqrt(mu)),
    }


@dataclass(frozen=True)
class Family:
    """A family: its variance function, unit deviance, support and canonical link."""

    name: str
    canonical: str
    variance: Callable
    unit_deviance: Callable   # (y, mu) -> per-observation deviance
    support: str              # a readable statement of the valid y
    in_support: Callable      # y -> bool array
    fixed_scale: bool         # True: dispersion 1 (binomial, Poisson)

    def start_mu(self, y, w, ybar: float):
        """IRLS starting mean, as statsmodels does it (``ybar``: the weighted mean of y)."""
        if self.name == "binomial":
            return (w * y + 0.5) / (w + 1)
        return (y + ybar) / 2


def family(name: str, xp, *, var_power: float = 1.5, nb_alpha: float = 1.0) -> Family:
    """The family ``name``; ``var_power`` is Tweedie's ``p`` (V = mu^p) and ``nb_alpha``
    the negative binomial's ``alpha`` (V = mu + alpha mu^2), both fixed, as statsmodels'."""
    p, a = float(var_power), float(nb_alpha)
    fams = {
        "gaussian": Family("gaussian", "identity", lambda mu: mu * 0 + 1.0,
                           lambda y, mu: (y - mu) ** 2, "any real number",
                           lambda y: y == y, False),
        "binomial": Family("binomial", "logit", lambda mu: mu * (1 - mu),
                           lambda y, mu: _binomial_deviance(xp, y, mu), "in [0, 1]",
                           lambda y: (y >= 0) & (y <= 1), True),
        "poisson": Family("poisson", "log", lambda mu: mu,
                          lambda y, mu: 2 * (_xlog_ratio(xp, y, mu) - (y - mu)),
                          ">= 0 (counts)", lambda y: y >= 0, True),
        "gamma": Family("gamma", "inverse", lambda mu: mu**2,
                        lambda y, mu: 2 * (-xp.log(y / mu) + (y - mu) / mu),
                        "> 0", lambda y: y > 0, False),
        "inverse_gaussian": Family("inverse_gaussian", "inverse_squared", lambda mu: mu**3,
                                   lambda y, mu: (y - mu) ** 2 / (y * mu**2), "> 0",
                                   lambda y: y > 0, False),
        "negative_binomial": Family(
            "negative_binomial", "log", lambda mu: mu + a * mu**2,
            lambda y, mu: 2 * (_xlog_ratio(xp, y, mu)
                               - (y + 1 / a) * xp.log((1 + a * y) / (1 + a * mu))),
            ">= 0 (counts)", lambda y: y >= 0, True),
        "tweedie": Family("tweedie", "log", lambda mu: mu**p,
                          lambda y, mu: _tweedie_deviance(xp, y, mu, p),
                          ">= 0" if p < 2 else "> 0",
                          (lambda y: y >= 0) if p < 2 else (lambda y: y > 0), False),
    }
    if name not in fams:
        raise ValueError(f"family: expected one of {sorted(fams)}, got {name!r}")
    return fams[name]


def _tweedie_deviance(xp, y, mu, p: float):
    """Tweedie's unit deviance for a power ``p`` (Poisson at 1, gamma at 2)."""
    if p == 1:
        return 2 * (_xlog_ratio(xp, y, mu) - (y - mu))
    if p == 2:
        return 2 * (-xp.log(y / mu) + (y - mu) / mu)
    y_term = xp.where(y > 0, xp.where(y > 0, y, 1.0) ** (2 - p), 0.0) / ((1 - p) * (2 - p))
    return 2 * (y_term - y * mu ** (1 - p) / (1 - p) + mu ** (2 - p) / (2 - p))


def link(name: str | None, fam: Family, xp) -> Link:
    links = _links(xp)
    name = fam.canonical if name is None else name
    if name not in links:
        raise ValueError(f"link: expected one of {sorted(links)} or None, got {name!r}")
    return links[name]


def log_likelihood(name: str, y, mu, w, scale: float, *, nb_alpha: float = 1.0):
    """Per-observation log-likelihood (NumPy) at means ``mu`` with variance weights ``w``
    and dispersion ``scale``, as statsmodels' ``family.loglike_obs`` (binomial: the
    Bernoulli form, weights multiplying it). Tweedie has no closed form: NaN."""
    import numpy as np
    from scipy.special import gammaln

    if name == "gaussian":
        return -0.5 * (w * (y - mu) ** 2 / scale + np.log(2 * np.pi * scale / w))
    if name == "binomial":
        if is_binary(y):
            return -0.5 * w * bernoulli_deviance(np, y, mu)
        return w * (_xlog(y, mu) + _xlog(1 - y, 1 - mu))
    if name == "poisson":
        return w / scale * (_xlog(y, mu) - mu - gammaln(y + 1))
    if name == "gamma":
        ws = w / scale
        return ws * np.log(ws * y / mu) - ws * y / mu - gammaln(ws) - np.log(y)
    if name == "inverse_gaussian":
        return -0.5 * (w * (y - mu) ** 2 / (y * mu**2 * scale)
                       + np.log(scale * y**3 / w) + np.log(2 * np.pi))
    if name == "negative_binomial":
        a = nb_alpha
        ll = (_xlog(y, a * mu) - (y + 1 / a) * np.log1p(a * mu) + gammaln(y + 1 / a)
              - gammaln(y + 1) - gammaln(1 / a))
        return w / scale * ll
    return np.full(np.shape(y), np.nan)


def _xlog(y, mu):
    """``y * log(mu)`` with ``0 * log 0 = 0`` (NumPy)."""
    import numpy as np

    return np.where(y > 0, y * np.log(np.where(y > 0, mu, 1.0)), 0.0)
