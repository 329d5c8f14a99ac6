"""Generalized linear models fitted by Newton's method / IRLS with sample weights.

Each iteration solves the weighted least-squares problem of DESIGN.md chapter 3 with
working weights ``W_i = w_i / (V(mu_i) g'(mu_i)^2)`` and working response
``z = eta + (y - mu) g'(mu)``: one matmul for ``XᵀWX`` per block of a reused buffer
(``sqrt(W) X``), one Cholesky solve. The optional L2 penalty follows scikit-learn's
``LogisticRegression(C=1/alpha)``: minimize ``sum_i w_i l_i + alpha/2 ||coef||^2``,
``l_i`` the negative log-likelihood (half the unit deviance), intercept not penalized.
"""

from __future__ import annotations

import inspect
import math
import sys
import warnings
from collections.abc import Callable, Iterable

import numpy as np
import scipy.linalg
import scipy.special
import scipy.stats

from .._validation import check_int, user_stacklevel
from .families import family as make_family
from .families import link as make_link
from .families import log_likelihood
from .solve import Gram, equilibrated_rcond, inverse_psd, refine, solve_normal
from .threads import blas_threads, one_blas_pool, prefetched
from .validate import NotFittedError, as_float_array, as_target, check_weights

POSITIVE_TARGETS = ("poisson", "gamma", "inverse_gaussian", "negative_binomial", "tweedie")


class ConvergenceWarning(UserWarning):
    """IRLS stopped at ``max_iter`` before the deviance settled."""


class PerfectSeparationWarning(UserWarning):
    """A binomial fit predicts some observations with probability 0 or 1."""


def _to_device(device: str):
    """The function moving NumPy arrays to ``device`` (identity on the CPU)."""
    if device == "cpu":
        return lambda a: a
    import torch

    if not torch.cuda.is_available():
        raise ValueError(f"device: {device!r} requested but torch sees no CUDA device")
    return lambda a: torch.as_tensor(a, device=device)


WARM_START_MIN_ROWS = 100_000
BLOCK_ROWS = 4096


class _IRLS:
    """One IRLS problem: family, link, data and penalty.

    ``sweep(beta)`` is one pass over X in blocks of rows (on a GPU, one block): the
    deviance at ``beta`` and the normal equations there, with the block's working
    weights, working response and ``Z = [sw, sqrt(W) X, sqrt(W) z]`` computed while the
    block is in cache. ``run`` solves and sweeps until the deviance and the
    coefficients settle.
    """

    def __init__(self, fam, link_name, to, X, y, w, penalty, fit_intercept, names,
                 rank_deficient, offset=None, blocks=None, ybar=None, width=None):
        """In memory (``X, y, w, offset``), or streamed: ``blocks()`` returns an iterator
        of NumPy ``(X, y, w, offset)`` blocks (one pass each time it is called, the rows
        of this rank only, maybe none; ``X`` etc. are then None), ``ybar`` is the weighted
        mean of y over every rank and ``width`` the number of columns. Streamed sweeps
        are summed over ranks (one all-reduce)."""
        self.streamed = blocks is not None
        self.numpy = self.streamed or isinstance(to(y[:1]), np.ndarray)
        self.xp = np if self.numpy else __import__("torch")
        self.fam, self.lk = fam, make_link(link_name, fam, self.xp)
        self.to, self.penalty, self.fi, self.names = to, penalty, int(fit_intercept), names
        self.rank_deficient = rank_deficient
        if self.streamed:
            self.blocks, self.ybar, self.X, self.width = blocks, ybar, None, width
            return
        self.X, self.y, self.w = to(X), to(y), to(w)
        self.offset = None if offset is None else to(offset)
        self.ybar = float((w * y).sum() / w.sum())
        self.block = BLOCK_ROWS if self.numpy else X.shape[0]
        if self.numpy:  # the last sweep's sqrt(W) and sqrt(W) z, row by row
            self._sw, self._swz = np.empty(X.shape[0]), np.empty(X.shape[0])

    def _in_memory_blocks(self):
        yield from _pieces(self.X, self.y, self.w, self.offset, self.block)

    def _streamed_blocks(self):
        """The caller's blocks cut to ``BLOCK_ROWS`` (views): a piece and its ``Z`` stay
        in cache, as in memory, whatever size the reader's batches are."""
        for X, y, w, off in self.blocks():
            yield from _pieces(X, y, w, off, BLOCK_ROWS)

    def _mean(self, X, beta, offset=None):
        eta = X @ self.to(beta[self.fi:]) + (float(beta[0]) if self.fi else 0.0)
        if offset is not None:
            eta = eta + offset
        if self.lk.name == "logit":
            eta = self.xp.clip(eta, -36.0, 36.0)  # keeps mu strictly inside (0, 1)
        elif self.lk.name == "log":
            eta = self.xp.clip(eta, -700.0, 700.0)
        return eta, self.lk.inverse(eta)

    def _in_domain(self, mu, w) -> bool:
        """Every weighted mean inside the family's domain (binomial (0, 1), positive
        for the count and positive families) and finite."""
        xp, used = self.xp, w > 0
        ok = xp.isfinite(mu)
        if self.fam.name == "binomial":
            ok = ok & (mu > 0) & (mu < 1)
        elif self.fam.name != "gaussian":
            ok = ok & (mu > 0)
        return bool((ok | ~used).all())

    def score(self, beta):
        """One pass without the Gram matrix: the penalized score (Fisher's ``U``,
        intercept first) and the deviance at ``beta``; ``(None, inf)`` outside the
        domain. NumPy, in memory."""
        u = np.zeros_like(beta)
        dev = 0.0
        for X, y, w, off in self._in_memory_blocks():
            _, mu = self._mean(X, beta, off)
            if not self._in_domain(mu, w):
                return None, math.inf
            dev += float((w * self.fam.unit_deviance(y, mu)).sum())
            r = w * (y - mu) / (self.fam.variance(mu) * self.lk.deriv(mu))
            u[self.fi:] += r @ X
            if self.fi:
                u[0] += r.sum()
        return u - self.penalty * beta, dev

    def chord(self, beta, A, passes: int = 4):
        """Fisher steps from ``beta`` with a fixed normal matrix ``A`` (a sample's, scaled
        to these rows), one ``score`` pass each, several times cheaper than a sweep, while
        each step is at most a quarter of the last. Returns ``(beta, checked, deviance)``:
        the point reached, and the last point a pass found inside the domain with a
        lower deviance than the one before it, with that deviance. When every pass
        stepped, ``beta`` is one step past ``checked``, unchecked: ``run``'s first sweep
        checks it (``fallback``), so no pass is spent on the check alone."""
        checked, last, dev = beta, math.inf, math.inf
        for _ in range(passes):
            u, new_dev = self.score(beta)
            if u is None or new_dev > dev:  # the last step left the domain or went uphill
                return checked, checked, dev
            checked, dev = beta, new_dev
            step = scipy.linalg.solve(A, u, assume_a="pos")
            size = math.sqrt(max(float(step @ u), 0.0))
            if size > last / 4:
                return checked, checked, dev
            beta, last = beta + step, size
        return beta, checked, dev

    def sweep(self, beta):
        """(A, b, deviance, Pearson chi², observations fitted within 1e-8 of 0 or 1);
        ``(None, None, inf, inf, 0)`` when a mean leaves the family's domain (on any
        rank) or the working weights overflow."""
        xp = self.xp
        gram = buf = None
        dev = pearson = 0.0
        saturated, outside, start = 0, False, 0
        for X, y, w, off in (self._streamed_blocks() if self.streamed
                             else self._in_memory_blocks()):
            n, p = X.shape
            if gram is None:
                gram = Gram(p + 2, X)
                buf = (np.empty((max(n, 1), p + 2), dtype=X.dtype) if self.numpy
                       else X.new_empty((n, p + 2)))
            if outside:
                continue  # (read on, so every rank makes the same collectives)
            if beta is None:
                mu = self.fam.start_mu(y, w, self.ybar)
                eta = self.lk.link(mu)
            else:
                eta, mu = self._mean(X, beta, off)
                if not self._in_domain(mu, w):  # a non-canonical link can step outside
                    outside = True
                    continue
            var = self.fam.variance(mu)
            dev += float((w * self.fam.unit_deviance(y, mu)).sum())
            pearson += float((w * (y - mu) ** 2 / var).sum())
            if self.fam.name == "binomial":
                saturated += int((((mu < 1e-8) | (mu > 1 - 1e-8)) & (w > 0)).sum())
            gp = self.lk.deriv(mu)
            sw = xp.sqrt(w / (var * gp**2))
            if self.numpy and len(buf) < n:
                buf = np.empty((n, p + 2), dtype=X.dtype)
            Z = buf[:n]
            Z[:, 0] = sw
            xp.multiply(X, sw[:, None], out=Z[:, 1:1 + p])
            z = eta + (y - mu) * gp  # the working response, less the offset
            Z[:, 1 + p] = sw * (z if off is None else z - off)
            if not self.streamed and self.numpy:  # kept to refine an ill-conditioned solve
                self._sw[start:start + n], self._swz[start:start + n] = Z[:, 0], Z[:, 1 + p]
            start += n
            gram.add(Z)
        if self.streamed:
            if gram is None:  # this rank had no rows: it adds zeros
                gram = Gram(self.width + 2, np.zeros(1))
            k = gram.acc.shape[0]
            total = _over_ranks(np.r_[gram.acc.ravel(), dev, pearson, saturated,
                                      outside])
            gram.acc = total[:k * k].reshape(k, k).astype(gram.acc.dtype)
            dev, pearson, saturated, outside = total[k * k:].tolist()
            saturated, outside = int(saturated), bool(outside)
        if outside:
            return None, None, math.inf, math.inf, 0
        A, b = gram.normal_equations(gram.acc.shape[0] - 2, bool(self.fi))
        if not (np.isfinite(A).all() and np.isfinite(b).all()):  # weights over/underflow
            return None, None, math.inf, math.inf, 0             # far from the domain
        return A + np.diag(self.penalty), b[:, 0], dev, pearson, saturated

    def run(self, beta, tol, max_iter, fallback=None):
        """Iterate from ``beta`` (None: the family's starting mean), or from
        ``fallback = (point, deviance)`` when ``beta`` lies outside the domain or has a
        larger deviance. Returns a dict with beta, A, iterations, converged, the last
        change, deviances, Pearson chi² and the count of saturated observations.

        Each sweep at ``beta_k`` gives the deviance there and the Newton step to
        ``beta_k+1``; once the deviance has settled and that step is negligible, the
        step is taken without another sweep (A, the deviance and the Pearson statistic
        are then those of ``beta_k``, a difference far below ``tol``).
        """
        A, b, dev, pearson, saturated = self.sweep(beta)
        if fallback is not None and (A is None or dev > fallback[1]):
            beta = fallback[0]
            A, b, dev, pearson, saturated = self.sweep(beta)
        if A is None:
            raise ValueError("X: contains NaN or infinite values, or values so large that "
                             "the working weights overflow")
        pen_dev = dev + (float(self.penalty @ beta**2) if beta is not None else 0.0)
        change, it, converged = math.inf, 0, False
        while it < max_iter:
            it += 1
            new = solve_normal(A, b, fallback=self.rank_deficient, names=self.names)
            if not self.streamed and self.numpy and 1e-12 < equilibrated_rcond(A) < 1e-6:
                # digits were lost in the normal equations: refine from the data
                new = refine(self.X, self._sw, self._swz, bool(self.fi), A, new, self.penalty)
            # the step's length in the metric of A (the Newton decrement): the same
            # whatever units the columns of X are in, unlike a largest-coefficient change
            step = (math.sqrt(max(float((new - beta) @ A @ (new - beta)), 0.0))
                    if beta is not None else math.inf)
            size = math.sqrt(max(float(new @ A @ new), 0.0))
            # Both settle: the deviance, and the coefficients (Fisher scoring with a
            # non-canonical link converges only linearly, so the deviance alone stops
            # early). Separated observations make the coefficients grow without end while
            # the deviance no longer moves: stop there too (_check_separation says why).
            if change <= tol * (abs(pen_dev) + 1.0) and (
                    step <= 10 * tol * (1.0 + size) or saturated):
                beta, converged = new, True
                break
            swept, new_pen = self.sweep(new), math.inf
            if beta is None and swept[0] is None and self.fi:
                # the first step left the domain: halve back toward the intercept-only fit
                beta = np.zeros_like(new)
                beta[0] = float(self.lk.link(self.xp.asarray(self.ybar)))
                pen_dev = math.inf
            for _ in range(31):  # halve the step while it leaves the domain or goes uphill
                new_pen = swept[2] + float(self.penalty @ new**2)
                if beta is None or (math.isfinite(new_pen) and
                                    new_pen <= pen_dev + tol * (abs(pen_dev) + 1.0)):
                    break
                new = (beta + new) / 2
                swept = self.sweep(new)
            if swept[0] is None:
                raise ValueError(f"y: the {self.fam.name} family with the {self.lk.name} "
                                 "link has no valid fit from here (the mean stays outside "
                                 "its domain after 30 step halvings)")
            beta, (A, b, dev, pearson, saturated) = new, swept
            change, pen_dev = abs(new_pen - pen_dev), new_pen
        return {"beta": beta, "A": A, "iterations": it, "converged": converged,
                "change": change, "penalized_deviance": pen_dev, "deviance": dev,
                "pearson": pearson, "saturated": saturated}


def _pieces(X, y, w, offset, rows: int):
    """``(X, y, w, offset)`` in consecutive pieces of at most ``rows`` rows (views)."""
    n = X.shape[0]
    for start in range(0, n, rows):
        part = slice(start, min(start + rows, n))
        yield X[part], y[part], w[part], None if offset is None else offset[part]


def _rough_start(problem: _IRLS, max_iter: int):
    """A starting point from a few cheap iterations on a sample (tolerance 1e-5, quiet),
    and the sample's normal matrix there; None when the sample separates or loses rank:
    the full fit then starts plainly."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = problem.run(None, 1e-5, max_iter)
        return fit["beta"], fit["A"]
    except (ValueError, np.linalg.LinAlgError):
        return None


def _over_ranks(values) -> np.ndarray:
    """``values`` (numbers, or one flat float64 array) summed over every rank in one
    all-reduce; themselves on one process."""
    values = np.asarray(values, dtype=np.float64)
    if "torch.distributed" not in sys.modules:  # (no torch imported: one process)
        return values
    import torch

    from .. import distributed

    if not distributed.is_distributed():
        return values

    return distributed.all_reduce_sum(torch.from_numpy(values)).numpy()


def _offset(offset, exposure, n: int, dtype) -> np.ndarray | None:
    """``offset + log(exposure)`` as one (n,) array, or None when neither is given."""
    total = None
    for name, value in (("offset", offset), ("exposure", exposure)):
        if value is None:
            continue
        a = as_float_array(value, name, ndim=1, dtype=dtype)
        if a.shape[0] != n:
            raise ValueError(f"{name}: has {a.shape[0]} rows, X has {n}")
        if name == "exposure":
            if np.any(a <= 0):
                raise ValueError("exposure: must be positive (it enters as log(exposure))")
            a = np.log(a)
        total = a if total is None else total + a
    return total


COV_TYPES = ("nonrobust", "HC0", "HC1", "cluster")


class _BinomialOnly:
    """A method that exists only for ``family="binomial"``: ``hasattr`` is False for the
    regressors (scikit-learn's ``available_if``, without importing scikit-learn)."""

    def __init__(self, method) -> None:
        self.method = method
        self.__doc__ = method.__doc__

    def __get__(self, obj, owner=None):
        if obj is not None and obj.family != "binomial":
            raise AttributeError(f"{self.method.__name__}: only for family='binomial' "
                                 f"(this GLM is {obj.family})")
        return self.method if obj is None else self.method.__get__(obj, owner)


class GLM:
    """A GLM with scikit-learn conventions, exact against statsmodels.

    Binomial is a classifier: ``y`` holds any two labels (``classes_``, sorted; or
    proportions in [0, 1]), ``predict`` returns labels, ``predict_proba`` the
    probabilities, ``decision_function`` the linear predictor and ``score`` the accuracy.
    The other families are regressors: ``predict`` is the mean response, ``score`` D²,
    and ``linear_predictor`` (every family) the linear predictor.

    Parameters
    ----------
    family : ``"gaussian"``, ``"binomial"``, ``"poisson"``, ``"gamma"``,
        ``"inverse_gaussian"``, ``"negative_binomial"`` (given ``nb_alpha``) or
        ``"tweedie"`` (given ``var_power``).
    link : ``None`` (canonical: identity, logit, log, inverse, inverse_squared; log for
        the negative binomial and Tweedie) or one of ``"identity"``, ``"log"``,
        ``"logit"``, ``"probit"``, ``"cloglog"``, ``"inverse"``, ``"inverse_squared"``,
        ``"sqrt"``; a link that can leave the family's domain is fitted with step
        halving.
    class_weight : ``None``, ``"balanced"`` (scikit-learn's ``n / (K n_c)``) or a dict
        ``{0: w0, 1: w1}``; binomial with 0/1 labels only; multiplies ``sample_weight``.
    fit_intercept : add an unpenalized intercept.
    alpha : L2 penalty (see the module docstring for the convention).
    tol : stop when the change of the penalized deviance is at most
        ``tol * (|deviance| + 1)`` and the largest coefficient step at most
        ``10 * tol * (1 + max |coef|)`` (tol at least 1e-6 for float32 input).
    max_iter : Newton iterations at most.
    device : ``"cpu"`` (NumPy/SciPy) or a CUDA device (torch).
    separation : binomial separation: ``"warn"`` (PerfectSeparationWarning; the
        coefficients stay finite because IRLS stops once the deviance stops falling by
        more than ``tol``) or ``"raise"`` (ValueError).
    rank_deficient : ``"raise"`` (ValueError naming the dependent columns) or
        ``"pinv"`` (minimum-norm solution, with a warning).
    cov_type : ``"nonrobust"`` (the inverse Fisher information times the scale),
        ``"HC0"`` (White's sandwich), ``"HC1"`` (HC0 times ``n / (n - p)``, Stata's; note
        statsmodels' GLM returns HC0 for it) or ``"cluster"`` (scores summed within
        ``fit(groups=...)``, corrected by ``G/(G-1) (n-1)/(n-p)``, as statsmodels).
    use_correction : apply that cluster small-sample factor (statsmodels'
        ``cov_kwds={"use_correction": ...}``); False gives the uncorrected sandwich.
    var_power, nb_alpha : the fixed parameters of ``family="tweedie"`` (variance
        ``mu^var_power``) and ``family="negative_binomial"`` (``mu + nb_alpha mu^2``).
    scale : the dispersion behind the standard errors: ``None`` (1 for binomial and
        Poisson, else Pearson's), ``"X2"`` (Pearson chi² / residual df: the quasi-Poisson
        and quasi-binomial standard errors), ``"dev"`` (deviance / residual df) or a
        fixed positive number (statsmodels' ``fit(scale=...)``).

    Fitted attributes: ``coef_``, ``intercept_``, ``n_iter_``, ``converged_``,
    ``deviance_``, ``null_deviance_``, ``scale_``, ``llf_`` (the log-likelihood at the
    fit and ``scale_``, as statsmodels' ``llf``; NaN for Tweedie), ``cov_params_``,
    ``bse_`` (standard
    errors from the inverse weighted Fisher information times the scale, as
    statsmodels' ``GLM(..., var_weights=w).fit().bse``). Float64 by default; float32
    input runs in float32 (coefficients agree with float64 to about 1e-4 relative).
    """

    def __init__(self, family: str = "gaussian", link: str | None = None,
                 class_weight=None, fit_intercept: bool = True, alpha: float = 0.0,
                 tol: float = 1e-10, max_iter: int = 100, device: str = "cpu",
                 separation: str = "warn", rank_deficient: str = "raise",
                 scale=None, cov_type: str = "nonrobust", var_power: float = 1.5,
                 nb_alpha: float = 1.0, use_correction: bool = True) -> None:
        self.family = family
        self.link = link
        self.class_weight = class_weight
        self.fit_intercept = fit_intercept
        self.alpha = alpha
        self.tol = tol
        self.max_iter = max_iter
        self.device = device
        self.separation = separation
        self.scale = scale
        self.cov_type = cov_type
        self.var_power = var_power
        self.nb_alpha = nb_alpha
        self.rank_deficient = rank_deficient
        self.use_correction = use_correction

    # -- scikit-learn estimator protocol ------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params) -> GLM:
        for name, value in params.items():
            if name not in self._param_names():
                raise ValueError(f"{name}: not a parameter of GLM")
            setattr(self, name, value)
        return self

    def __sklearn_tags__(self):
        """scikit-learn's tags, built only when scikit-learn asks (it stays optional).
        Binomial is a classifier, the others regressors; the count and positive families
        declare positive targets, as scikit-learn's ``PoissonRegressor`` does."""
        from sklearn.utils import ClassifierTags, RegressorTags, Tags, TargetTags

        binomial = self.family == "binomial"
        return Tags(estimator_type="classifier" if binomial else "regressor",
                    target_tags=TargetTags(required=True,
                                           positive_only=self.family in POSITIVE_TARGETS),
                    classifier_tags=ClassifierTags(multi_class=False) if binomial else None,
                    regressor_tags=None if binomial else RegressorTags())

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "coef_")

    def __repr__(self) -> str:
        defaults = inspect.signature(type(self).__init__).parameters
        changed = [f"{k}={v!r}" for k, v in self.get_params().items()
                   if v != defaults[k].default]
        return f"GLM({', '.join(changed)})"

    # -- fitting -------------------------------------------------------------------------
    def _family(self, xp):
        return make_family(self.family, xp, var_power=self.var_power, nb_alpha=self.nb_alpha)

    def _check_params(self) -> None:
        for name in ("var_power", "nb_alpha"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    math.isfinite(value) and value >= (0 if name == "var_power" else 1e-12)):
                raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
        if self.family == "tweedie" and 0 < self.var_power < 1:
            raise ValueError(f"var_power: no Tweedie distribution has a power in (0, 1), got "
                             f"{self.var_power}")
        if self.cov_type not in COV_TYPES:
            raise ValueError(f"cov_type: expected one of {COV_TYPES}, got {self.cov_type!r}")
        if not isinstance(self.use_correction, bool):
            raise ValueError(f"use_correction: expected True or False, got "
                             f"{self.use_correction!r}")
        if not (self.scale is None or self.scale in ("X2", "dev") or (
                isinstance(self.scale, (int, float)) and not isinstance(self.scale, bool)
                and math.isfinite(self.scale) and self.scale > 0)):
            raise ValueError(f"scale: expected None, 'X2', 'dev' or a positive number, got "
                             f"{self.scale!r}")
        if self.separation not in ("warn", "raise"):
            raise ValueError(f"separation: expected 'warn' or 'raise', got {self.separation!r}")
        if self.rank_deficient not in ("raise", "pinv"):
            raise ValueError("rank_deficient: expected 'raise' or 'pinv', got "
                             f"{self.rank_deficient!r}")
        if not (isinstance(self.alpha, (int, float)) and math.isfinite(self.alpha)
                and self.alpha >= 0):
            raise ValueError(f"alpha: expected a number >= 0, got {self.alpha!r}")
        if not (isinstance(self.tol, (int, float)) and self.tol > 0):
            raise ValueError(f"tol: expected a positive number, got {self.tol!r}")
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, int) \
                or self.max_iter < 1:
            raise ValueError(f"max_iter: expected a positive int, got {self.max_iter!r}")

    def _weights(self, y: np.ndarray, sample_weight) -> np.ndarray:
        w = check_weights(sample_weight, y.shape[0], y.dtype)
        if self.class_weight is None:
            return w
        if self.family != "binomial" or not np.isin(y, (0, 1)).all():
            raise ValueError("class_weight: needs family='binomial' and two classes in y")
        labels = y.astype(np.int64)  # 0/1: the positions in classes_
        if isinstance(self.class_weight, str) and self.class_weight == "balanced":
            from ..imbalance import class_weights as balanced_class_weights  # (imports torch)

            cw = balanced_class_weights(labels, classes=np.unique(labels))
            table = dict(zip(np.unique(labels).tolist(), cw.tolist(), strict=True))
        elif isinstance(self.class_weight, dict):  # keyed by the labels of y
            keys = {k.item() if hasattr(k, "item") else k: v
                    for k, v in self.class_weight.items()}
            table = {i: float(keys[c]) for i, c in enumerate(self.classes_.tolist())
                     if c in keys}
        else:
            raise ValueError(f"class_weight: expected None, 'balanced' or a dict, got "
                             f"{self.class_weight!r}")
        missing = [self.classes_[c] for c in np.unique(labels).tolist() if c not in table]
        if missing:
            raise ValueError(f"class_weight: no weight for classes {missing}")
        return w * np.array([table.get(0, 0.0), table.get(1, 0.0)])[labels]

    def _proportions(self, y, trials, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Successes out of ``trials`` as proportions, and the trials, both checked."""
        if self.family != "binomial":
            raise ValueError(f"trials: only for the binomial family, not {self.family!r}")
        if self.class_weight is not None:
            raise ValueError("trials: class_weight reweights two labels; with counts of "
                             "successes use sample_weight")
        n = as_float_array(trials, "trials", ndim=1, dtype=X.dtype)
        if n.shape[0] != X.shape[0] or not np.isfinite(n).all() or (n <= 0).any():
            raise ValueError(f"trials: expected {X.shape[0]} finite positive counts")
        k = as_float_array(as_target(y, X.shape[0]), "y", ndim=1, dtype=X.dtype)
        if (k < 0).any() or (k > n).any():
            i = int(np.argmax((k < 0) | (k > n)))
            raise ValueError(f"y: with trials, y counts successes in [0, trials]; row {i} "
                             f"has {k[i]:g} of {n[i]:g}")
        self._classes = np.array([0, 1])
        return k / n, n

    def _target(self, y, X: np.ndarray) -> np.ndarray:
        """``y`` as floats: binomial labels encoded 0/1 (``classes_`` set), proportions
        kept; the other families' numbers, checked against the family's support."""
        y = as_target(y, X.shape[0])
        if self.family == "binomial":
            self._classes = np.unique(y)
            numeric = y.dtype.kind in "biuf"
            if numeric and len(self._classes) > 2:  # proportions in [0, 1], or an error
                whole = bool(np.all(self._classes == np.round(self._classes)))
                if whole or not (0 <= self._classes[0] and self._classes[-1] <= 1):
                    kind = "multiclass" if whole else "continuous"
                    raise ValueError(f"y: Only binary classification is supported; the "
                                     f"target is {kind} ({len(self._classes)} values, "
                                     f"{self._classes[0]:g}..{self._classes[-1]:g}); "
                                     f"proportions must lie in [0, 1]")
            if numeric and (len(self._classes) > 2 or set(self._classes.tolist()) <= {0, 1}):
                self._classes = np.array([0, 1], dtype=y.dtype)
                y = as_float_array(y, "y", ndim=1, dtype=X.dtype)
            elif len(self._classes) != 2:
                raise ValueError(f"y: the binomial family needs 2 classes, got "
                                 f"{len(self._classes)} class ({self._classes.tolist()})")
            else:
                y = (y == self._classes[1]).astype(X.dtype)
        else:
            y = as_float_array(y, "y", ndim=1, dtype=X.dtype)
        fam = self._family(np)
        if not fam.in_support(y).all():
            raise ValueError(f"y: the {self.family} family needs y {fam.support} "
                             f"(min {y.min():g}, max {y.max():g})")
        return y

    def fit(self, X, y, sample_weight=None, feature_names=None, *, offset=None,
            exposure=None, freq_weight=None, groups=None, trials=None) -> GLM:
        """Fit by IRLS; returns self. ``feature_names`` label the summary's rows.
        ``offset`` (n,) is added to the linear predictor with a fixed coefficient of 1;
        ``exposure`` (n,), positive, adds ``log(exposure)`` (statsmodels' meanings).
        ``sample_weight`` are variance weights (statsmodels' ``var_weights``);
        ``freq_weight`` counts repeated rows (``freq_weights``): the same coefficients as
        repeating each row that many times, so the residual degrees of freedom are
        ``sum(freq_weight) - rank`` in the dispersion and the standard errors.
        ``groups`` (n,): cluster labels for ``cov_type="cluster"``. ``trials`` (n,),
        binomial only: ``y`` counts the successes out of that many trials (statsmodels'
        two-column endog): the fit of the proportions with variance weights times
        ``trials``, and ``llf_`` includes the binomial coefficients."""
        with one_blas_pool():
            return self._fit(X, y, sample_weight, feature_names, offset=offset,
                             exposure=exposure, freq_weight=freq_weight, groups=groups,
                             trials=trials)

    def _fit(self, X, y, sample_weight, feature_names, *, offset, exposure, freq_weight,
             groups, trials) -> GLM:
        """``fit``, with every BLAS pool but NumPy's held to one thread."""
        self._check_params()
        columns = getattr(X, "columns", None)
        X = as_float_array(X, "X", ndim=2, check_finite=False)
        if not np.isfinite(X.sum()) and not np.isfinite(X).all():  # one cheap pass
            raise ValueError("X: contains NaN or infinite values")
        if X.shape[0] < 2:
            raise ValueError(f"X: 1 sample (n_samples = {X.shape[0]}); a GLM needs at least 2")
        if trials is None:
            y = self._target(y, X)
        else:
            y, trials = self._proportions(y, trials, X)
        if columns is not None and all(isinstance(c, str) for c in columns):
            self.feature_names_in_ = np.asarray(columns, dtype=object)
            feature_names = feature_names if feature_names is not None else list(columns)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        off = _offset(offset, exposure, X.shape[0], X.dtype)
        freq = check_weights(freq_weight, X.shape[0], X.dtype)
        var_w = self._weights(y, sample_weight)
        if trials is not None:
            var_w = var_w * trials
        w = var_w * freq
        if self.family == "binomial" and not ((w * y).sum() > 0 and (w * (1 - y)).sum() > 0):
            raise ValueError("y: only one class has positive weight; the binomial family "
                             "needs 2 classes")
        if self.family == "binomial":  # the positive rate of the data, and the one fitted
            base = freq * (1.0 if trials is None else trials) * (
                1.0 if sample_weight is None else np.asarray(sample_weight, np.float64))
            self.prior_ = float((base * y).sum() / base.sum())
            self.effective_prior_ = float((w * y).sum() / w.sum())
        to = _to_device(self.device)
        self.n_features_in_ = X.shape[1]
        if feature_names is not None and len(feature_names) != X.shape[1]:
            raise ValueError(f"feature_names: {len(feature_names)} names for "
                             f"{X.shape[1]} columns")
        names = (["intercept"] if self.fit_intercept else []) + (
            list(feature_names) if feature_names is not None else
            [f"x{j}" for j in range(X.shape[1])])
        tol = max(self.tol, 1e-6) if X.dtype == np.float32 else self.tol
        fi = int(self.fit_intercept)
        penalty = np.full(X.shape[1] + fi, self.alpha)
        penalty[:fi] = 0.0
        fam = self._family(np if self.device == "cpu" else __import__("torch"))

        def problem(Xs, ys, ws, offs, pen=penalty, intercept=self.fit_intercept, labels=names):
            return _IRLS(fam, self.link, to, Xs, ys, ws, pen, intercept, labels,
                         self.rank_deficient, offs)

        beta0 = start = fallback = None
        if X.shape[0] >= WARM_START_MIN_ROWS:  # a few cheap iterations on a subsample
            rows = np.sort(np.random.default_rng(0).choice(
                X.shape[0], max(X.shape[0] // 20, 50 * X.shape[1]), replace=False))
            start = _rough_start(problem(X[rows], y[rows], w[rows],
                                         None if off is None else off[rows]), self.max_iter)
        full = problem(X, y, w, off)
        if start is not None and full.numpy:  # close in with passes that form no Gram
            A = (start[1] - np.diag(penalty)) * (w.sum() / w[rows].sum()) + np.diag(penalty)
            beta0, *fallback = full.chord(start[0], A)
        fit = full.run(beta0, tol, self.max_iter, fallback)
        beta = fit["beta"]
        self._set_fit(fit, tol)
        ybar = (w * y).sum() / w.sum()
        if not fi:
            self.null_deviance_ = None
        elif off is None:
            self.null_deviance_ = float((w * self._family(np).unit_deviance(
                y, np.full_like(y, ybar))).sum())
        else:  # the intercept-only model with the same offset, as statsmodels fits it
            self.null_deviance_ = problem(X[:, :0], y, w, off, np.zeros(1), True,
                                          ["intercept"]).run(None, tol,
                                                             self.max_iter)["deviance"]
        self.nobs_ = float(freq.sum())  # rows, counting repeats
        self._set_scale(fit)
        if self.cov_type != "nonrobust":
            self.cov_params_ = self._sandwich(X, y, var_w, freq, off, beta, groups)
        self.bse_ = np.sqrt(np.diag(self.cov_params_))
        eta = X @ self.coef_ + self.intercept_ + (0.0 if off is None else off)
        mu = make_link(self.link, self._family(np), np).inverse(eta)
        llf = log_likelihood(self.family, y, mu, var_w, self._llf_scale(),
                             nb_alpha=self.nb_alpha)
        if trials is not None:  # log C(trials, successes), weighted as the rows are
            k = y * trials
            lg = scipy.special.gammaln
            llf = llf + var_w / trials * (lg(trials + 1) - lg(k + 1) - lg(trials - k + 1))
        self.llf_ = float((freq * llf).sum())
        self._names = names
        if fit["saturated"]:
            self._report_separation(fit["saturated"], int((w > 0).sum()))
        return self

    def _set_fit(self, fit: dict, tol: float) -> None:
        """The coefficients and convergence of an IRLS run (a warning if it did not)."""
        beta, fi = fit["beta"], int(self.fit_intercept)
        self.n_iter_, self.converged_ = fit["iterations"], fit["converged"]
        if not self.converged_:
            change, pen = fit["change"], fit["penalized_deviance"]
            warnings.warn(f"GLM: no convergence in {self.max_iter} iterations; the last "
                          f"deviance change was {change:.3g} (relative "
                          f"{change / (abs(pen) + 1):.3g}, tol {tol:g})",
                          ConvergenceWarning, stacklevel=user_stacklevel())
        self.intercept_ = float(beta[0]) if fi else 0.0
        self.coef_ = np.asarray(beta[fi:])
        self.deviance_ = fit["deviance"]

    def _set_scale(self, fit: dict) -> None:
        """The dispersion (``scale``'s rule) and the model-based covariance; needs
        ``nobs_``."""
        df_resid = max(self.nobs_ - len(fit["beta"]), 1)
        scale = self.scale if self.scale is not None else (
            1.0 if self._family(np).fixed_scale else "X2")
        self.scale_ = float({"X2": fit["pearson"] / df_resid,
                             "dev": fit["deviance"] / df_resid}.get(scale, scale))
        self.cov_params_ = inverse_psd(fit["A"]) * self.scale_

    def _llf_scale(self) -> float:
        """The dispersion the log-likelihood uses: the ML variance (deviance / rows) for
        the Gaussian identity fit, as R's ``logLik``; else ``scale_``."""
        if self.family == "gaussian" and self.link in (None, "identity"):
            return self.deviance_ / self.nobs_
        return self.scale_

    def fit_blocks(self, blocks: Callable[[], Iterable], *, feature_names=None,
                   prefetch: int = 2) -> GLM:
        """Fit from row blocks, one streamed pass over the data per IRLS iteration.

        ``blocks()`` returns an iterator of ``(X, y[, weight[, offset[, freq_weight]]])``
        blocks (NumPy arrays or tensors; the optional ones may be None; ``weight`` are
        variance weights, as ``fit``'s ``sample_weight``); it is called once per pass, so
        the data need never be in memory at once. Under ``torch.distributed`` each rank
        passes only its own rows: every pass's Gram matrix and sums are all-reduced
        ((p + 2)² numbers), so all ranks hold the fit of all the rows. Binomial takes 0/1
        or proportions. Not streamed (use ``fit``): ``class_weight`` and robust
        ``cov_type``; the ill-conditioning refinement needs the data in memory, so here
        only the equilibrated normal equations protect an ill-conditioned fit.

        ``prefetch``: how many blocks a background thread reads (and checks) ahead while
        the current one is computed, with BLAS held to one thread meanwhile; each block
        must then be new arrays, not one buffer refilled. 0 reads in step."""
        self._check_params()
        check_int("prefetch", prefetch, 0)
        if self.class_weight is not None or self.cov_type != "nonrobust":
            raise ValueError("fit_blocks: class_weight and robust cov_type need fit() "
                             "(the rows in memory)")
        with blas_threads(1) if prefetch else one_blas_pool():
            return self._fit_blocks(blocks, feature_names, prefetch)

    def _fit_blocks(self, blocks, feature_names, prefetch: int) -> GLM:
        """``fit_blocks`` with its arguments checked."""
        fam = self._family(np)

        def checked(first: bool = False):
            """The blocks, checked; X's values for NaN and infinities only on the
            ``first`` pass (every pass reads the same rows)."""
            for block in blocks():
                if not isinstance(block, (tuple, list)) or not 2 <= len(block) <= 5:
                    raise ValueError("blocks: each block must be (X, y[, weight[, offset"
                                     "[, freq_weight]]])")
                X = as_float_array(block[0], "X", ndim=2, check_finite=first)
                y = as_float_array(block[1], "y", ndim=1, dtype=X.dtype)
                if y.shape[0] != X.shape[0]:
                    raise ValueError(f"y: has {y.shape[0]} rows, X has {X.shape[0]}")
                if not fam.in_support(y).all():
                    raise ValueError(f"y: the {self.family} family needs y {fam.support}")
                more = [*block[2:], None, None, None][:3]
                w = check_weights(more[0], len(y), X.dtype)
                freq = check_weights(more[2], len(y), X.dtype) if more[2] is not None else None
                off = None if more[1] is None else _offset(more[1], None, len(y), X.dtype)
                yield X, y, w, off, freq

        def read(first: bool = False):
            return prefetched(checked(first), prefetch) if prefetch else checked(first)

        def weighted():  # what IRLS sees: variance times frequency weights
            for X, y, w, off, freq in read():
                yield X, y, w if freq is None else w * freq, off

        rows = width = 0
        sums = np.zeros(4)  # Σ w f, Σ w f y, blocks with an offset, rows counting repeats
        sample = []  # this rank's first rows, for the warm start
        for X, y, w, off, freq in read(first=True):
            if width and X.shape[1] != width:
                raise ValueError(f"X: a block has {X.shape[1]} columns, the first had {width}")
            f = np.ones(len(y)) if freq is None else freq
            width, rows = X.shape[1], rows + len(y)
            sums += [(w * f).sum(), (w * f * y).sum(), off is not None, f.sum()]
            if rows - len(y) < WARM_START_MIN_ROWS // 2:
                sample.append((X, y, w * f, off))
        _, wsum, wysum, offsets, n, ranks_with_rows, widths = _over_ranks(
            [rows, *sums, rows > 0, width if rows else 0]).tolist()
        if n == 0:
            raise ValueError("blocks: no rows")
        if widths != width * ranks_with_rows and rows:
            raise ValueError("X: the ranks' blocks have different numbers of columns")
        width = int(round(widths / ranks_with_rows))
        ybar = wysum / wsum
        self.n_features_in_, self.nobs_ = int(width), float(n)
        names = (["intercept"] if self.fit_intercept else []) + (
            list(feature_names) if feature_names is not None else
            [f"x{j}" for j in range(width)])
        fi = int(self.fit_intercept)
        penalty = np.full(width + fi, self.alpha)
        penalty[:fi] = 0.0
        if self.family == "binomial":
            self._classes, self.prior_ = np.array([0.0, 1.0]), float(ybar)
            self.effective_prior_ = self.prior_
        tol = self.tol

        def problem(source, pen=penalty, intercept=self.fit_intercept, labels=names):
            return _IRLS(fam, self.link, np.asarray, None, None, None, pen, intercept,
                         labels, self.rank_deficient, blocks=source, ybar=ybar,
                         width=len(pen) - int(intercept))

        fit = problem(weighted).run(self._warm_start(sample, n, penalty), tol, self.max_iter)
        self._set_fit(fit, tol)
        self._set_scale(fit)
        self.bse_ = np.sqrt(np.diag(self.cov_params_))
        self._names = names
        link = make_link(self.link, fam, np)
        totals = np.zeros(2)  # the log-likelihood at the fit, the null deviance
        ml_scale = self._llf_scale()
        for X, y, w, off, freq in read():
            f = 1.0 if freq is None else freq
            mu = link.inverse(X @ self.coef_ + self.intercept_ + (0.0 if off is None else off))
            totals += [(f * log_likelihood(self.family, y, mu, w, ml_scale,
                                           nb_alpha=self.nb_alpha)).sum(),
                       (w * f * fam.unit_deviance(y, np.full_like(y, ybar))).sum()]
        self.llf_, null = _over_ranks(totals).tolist()
        if not fi:
            self.null_deviance_ = None
        elif not offsets:
            self.null_deviance_ = float(null)
        else:  # the intercept-only model with the same offsets, as statsmodels fits it
            def intercept_only():
                for X, y, w, off in weighted():
                    yield X[:, :0], y, w, off
            self.null_deviance_ = problem(intercept_only, np.zeros(1), True,
                                          ["intercept"]).run(None, tol,
                                                             self.max_iter)["deviance"]
        if fit["saturated"]:
            self._report_separation(fit["saturated"], int(n))
        return self

    def _warm_start(self, sample: list, n: float, penalty: np.ndarray):
        """fit_blocks' starting point: a few cheap iterations on each rank's first rows
        (not random access), averaged over ranks; None for small data or if no rank's
        sample could be fitted."""
        if n < WARM_START_MIN_ROWS:
            return None
        beta = None
        if sample:
            X, y, w = (np.concatenate([b[i] for b in sample]) for i in range(3))
            off = None if any(b[3] is None for b in sample) else np.concatenate(
                [b[3] for b in sample])
            start = _rough_start(_IRLS(self._family(np), self.link, np.asarray, X, y, w,
                                       penalty, self.fit_intercept, None,
                                       self.rank_deficient, off), self.max_iter)
            beta = None if start is None else start[0]
        ok = float(beta is not None)
        *summed, count = _over_ranks(np.r_[beta if ok else np.zeros(len(penalty)), ok])
        return np.array(summed) / count if count else None

    def _sandwich(self, X, y, w, freq, off, beta, groups) -> np.ndarray:
        """The robust covariance ``A⁻¹ (Σ f s sᵀ) A⁻¹`` from per-row (or per-cluster)
        scores ``s_i = x_i w_i (y_i − μ_i) / (V(μ_i) g'(μ_i))`` at the fit (one more
        pass); a row of frequency ``f`` counts as ``f`` rows with its score, so
        ``n = Σ f`` in the small-sample factors."""
        n = float(freq.sum())
        if self.cov_type == "cluster":
            if groups is None or len(groups) != len(X):
                raise ValueError("groups: cov_type='cluster' needs one group label per row")
            _, cluster = np.unique(np.asarray(groups), return_inverse=True)
        elif groups is not None:
            raise ValueError("groups: only used with cov_type='cluster'")
        fam = self._family(np)
        link = make_link(self.link, fam, np)
        Xc = np.c_[np.ones(len(X)), X] if self.fit_intercept else np.asarray(X, np.float64)
        eta = Xc @ beta + (0.0 if off is None else off)
        mu = link.inverse(eta)
        var, gp = fam.variance(mu), link.deriv(mu)
        scores = Xc * (w * (y - mu) / (var * gp))[:, None]
        p = Xc.shape[1]
        penalty = np.full(p, float(self.alpha))
        penalty[:int(self.fit_intercept)] = 0.0
        bread = inverse_psd((Xc * (w * freq / (var * gp**2))[:, None]).T @ Xc
                            + np.diag(penalty))
        if self.cov_type == "cluster":
            summed = np.zeros((cluster.max() + 1, p))
            np.add.at(summed, cluster, scores * freq[:, None])
            g = summed.shape[0]
            meat = summed.T @ summed * (g / (g - 1) * (n - 1) / (n - p)
                                        if self.use_correction else 1.0)
        else:
            meat = (scores * freq[:, None]).T @ scores * (
                n / (n - p) if self.cov_type == "HC1" else 1.0)
        return bread @ meat @ bread

    def _report_separation(self, saturated: int, n: int) -> None:
        kind = "perfect" if saturated == n else "quasi-perfect"
        msg = (f"GLM: {kind} separation: {saturated} of {n} observations are fitted with "
               "probability within 1e-8 of 0 or 1, so their coefficients are not "
               "identified (use alpha > 0 to penalize)")
        if self.separation == "raise":
            raise ValueError(msg)
        warnings.warn(msg, PerfectSeparationWarning, stacklevel=user_stacklevel())

    # -- using the fit -------------------------------------------------------------------
    def _check_fitted(self, X) -> np.ndarray:
        if not hasattr(self, "coef_"):
            raise NotFittedError("GLM: call fit before predicting")
        X = as_float_array(X, "X", ndim=2)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but GLM is expecting "
                             f"{self.n_features_in_} features as input")
        return X

    def linear_predictor(self, X, *, offset=None, exposure=None) -> np.ndarray:
        """The linear predictor ``eta = X coef + intercept (+ offset + log exposure)``."""
        X = self._check_fitted(X)
        off = _offset(offset, exposure, X.shape[0], X.dtype)
        eta = X @ self.coef_ + self.intercept_
        return eta if off is None else eta + off

    def predict_mean(self, X, *, offset=None, exposure=None) -> np.ndarray:
        """The mean response ``g^-1(eta)`` (for binomial, the probability of
        ``classes_[1]``)."""
        fam = self._family(np)
        return make_link(self.link, fam, np).inverse(
            self.linear_predictor(X, offset=offset, exposure=exposure))

    def predict(self, X, *, offset=None, exposure=None) -> np.ndarray:
        """Regressors: the mean response. Binomial: the more probable label of
        ``classes_`` (probability of ``classes_[1]`` above 0.5)."""
        mean = self.predict_mean(X, offset=offset, exposure=exposure)
        return self.classes_[(mean > 0.5).astype(np.int64)] if self.family == "binomial" \
            else mean

    @_BinomialOnly
    def decision_function(self, X, *, offset=None, exposure=None) -> np.ndarray:
        """Binomial: the linear predictor (positive favours ``classes_[1]``)."""
        return self.linear_predictor(X, offset=offset, exposure=exposure)

    @_BinomialOnly
    def predict_proba(self, X, prior=None) -> np.ndarray:
        """``(n, 2)`` probabilities of ``classes_[0]`` and ``classes_[1]``.

        ``prior``: ``None`` (as fitted), ``"true"`` (the data's positive rate, undoing
        ``class_weight``), ``"balanced"`` (0.5) or a positive rate in (0, 1). The logit
        link's intercept moves by King & Zeng's prior correction
        ``log(τ/(1−τ)) − log(ȳ/(1−ȳ))``, ȳ the positive rate the fit saw (weighted)."""
        if prior is None:
            p = self.predict_mean(X)
            return np.stack([1 - p, p], axis=1)
        if self.link not in (None, "logit"):  # None: binomial's canonical link, the logit
            raise ValueError(f"prior: the prior correction is exact for the logit link only, "
                             f"not {self.link!r}")
        target = {"true": getattr(self, "prior_", None), "balanced": 0.5}.get(prior, prior)
        if isinstance(target, str) or target is None:
            raise ValueError(f"prior: expected None, 'true', 'balanced' or a rate in (0, 1), "
                             f"got {prior!r}")
        from ..prior import prior_shift  # (imports torch)

        eta = self.linear_predictor(X) + prior_shift(self.effective_prior_, target, "sigmoid")
        p = 1 / (1 + np.exp(-eta))
        return np.stack([1 - p, p], axis=1)

    @property
    def classes_(self) -> np.ndarray:
        """Binomial: the two labels of ``y``, sorted (``[0, 1]`` for 0/1 or proportions)."""
        if self.family != "binomial":
            raise AttributeError(f"classes_: only for family='binomial' (this GLM is "
                                 f"{self.family})")
        if not hasattr(self, "_classes"):
            raise NotFittedError("GLM: call fit before classes_")
        return self._classes

    def score(self, X, y, sample_weight=None) -> float:
        """Binomial: the (weighted) accuracy. Regressors: D², the fraction of the null
        deviance explained (1 is perfect), as scikit-learn's ``PoissonRegressor``."""
        if self.family == "binomial":
            labels = as_target(y, len(y))
            w = check_weights(sample_weight, labels.shape[0], np.float64)
            return float((w * (self.predict(X) == labels)).sum() / w.sum())
        y = as_float_array(y, "y", ndim=1)
        w = check_weights(sample_weight, y.shape[0], y.dtype)
        fam = self._family(np)
        dev = (w * fam.unit_deviance(y, self.predict(X))).sum()
        ybar = (w * y).sum() / w.sum()
        null = (w * fam.unit_deviance(y, np.full_like(y, ybar))).sum()
        return float(1 - dev / null) if null > 0 else 0.0

    def summary(self) -> str:
        """A table of coefficients, standard errors, z (or t) values and p-values."""
        if not hasattr(self, "coef_"):
            raise NotFittedError("GLM: call fit before summary")
        params = np.r_[[self.intercept_] if self.fit_intercept else [], self.coef_]
        z = params / self.bse_
        p = 2 * scipy.stats.norm.sf(np.abs(z))
        link_name = make_link(self.link, self._family(np), np).name
        lines = [f"GLM {self.family} (link {link_name}), {self.n_iter_} IRLS iterations, "
                 f"converged: {self.converged_}",
                 f"deviance {self.deviance_:.6g}, null deviance {self.null_deviance_}, "
                 f"scale {self.scale_:.6g} ({self.scale or 'default'}), covariance "
                 f"{self.cov_type}",
                 f"{'':24s} {'coef':>12s} {'std err':>12s} {'z':>9s} {'P>|z|':>9s}"]
        for name, c, s, zz, pp in zip(self._names, params, self.bse_, z, p, strict=True):
            lines.append(f"{name[:24]:24s} {c:12.6g} {s:12.6g} {zz:9.3f} {pp:9.3g}")
        return "\n".join(lines)
