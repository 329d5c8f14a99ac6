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


@dataclass(frozen=True)
class Link:
    name: str
    link: Callable          # mu -> eta
    inverse: Callable       # eta -> mu
    deriv: Callable         # d eta / d mu at mu


def _links(xp) -> dict[str, Link]:
    return {
        "identity": Link("identity", lambda mu: mu, lambda eta: eta, lambda mu: mu * 0 + 1.0),
        "log": Link("log", xp.log, xp.exp, lambda mu: 1.0 / mu),
        "logit": Link("logit", lambda mu: xp.log(mu / (1 - mu)),
                      lambda eta: 0.5 * (1 + xp.tanh(0.5 * eta)),
                      lambda mu: 1.0 / (mu * (1 - mu))),
        "inverse": Link("inverse", lambda mu: 1.0 / mu, lambda eta: 1.0 / eta,
                        lambda mu: -1.0 / mu**2),
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


def family(name: str, xp) -> Family:
    fams = {
        "gaussian": Family("gaussian", "identity", lambda mu: mu * 0 + 1.0,
                           lambda y, mu: (y - mu) ** 2, "any real number",
                           lambda y: y == y, False),
        "binomial": Family("binomial", "logit", lambda mu: mu * (1 - mu),
                           lambda y, mu: 2 * (_xlog_ratio(xp, y, mu)
                                              + _xlog_ratio(xp, 1 - y, 1 - mu)),
                           "in [0, 1]", lambda y: (y >= 0) & (y <= 1), True),
        "poisson": Family("poisson", "log", lambda mu: mu,
                          lambda y, mu: 2 * (_xlog_ratio(xp, y, mu) - (y - mu)),
                          ">= 0 (counts)", lambda y: y >= 0, True),
        "gamma": Family("gamma", "inverse", lambda mu: mu**2,
                        lambda y, mu: 2 * (-xp.log(y / mu) + (y - mu) / mu),
                        "> 0", lambda y: y > 0, False),
    }
    if name not in fams:
        raise ValueError(f"family: expected one of {sorted(fams)}, got {name!r}")
    return fams[name]


def link(name: str | None, fam: Family, xp) -> Link:
    links = _links(xp)
    name = fam.canonical if name is None else name
    if name not in links:
        raise ValueError(f"link: expected one of {sorted(links)} or None, got {name!r}")
    return links[name]
