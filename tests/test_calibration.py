"""Temperature scaling against SciPy's bounded scalar minimizer, the class bias against
SciPy's BFGS, and both in the predictor."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize, minimize_scalar
from scipy.special import logsumexp

from bagoftricks.calibration import (
    BOUNDS,
    Temperature,
    calibrated_nll,
    fit_class_bias,
    fit_temperature,
)


@st.composite
def problems(draw):
    n, k = draw(st.integers(1, 60)), draw(st.integers(2, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    z = rng.normal(size=(n, k)) * draw(st.floats(0.01, 30))
    y = rng.integers(0, k, n)
    z[np.arange(n), y] += draw(st.floats(0, 6))  # from noise to separable
    shift = rng.normal(size=k) * 3 if draw(st.booleans()) else None
    return z, y, shift


def platt_loss(z, y, temperature, shift=None, classes=None):
    """Cross-entropy against Laplace's targets, from a dense target matrix."""
    n, k = z.shape
    classes = np.ones(k, bool) if classes is None else classes
    targets = np.where(classes, (1 - (n + 1) / (n + 2)) / (classes.sum() - 1), 0.0)
    targets = np.repeat(targets[None], n, 0)
    targets[np.arange(n), y] = (n + 1) / (n + 2)
    s = z / temperature + (0 if shift is None else shift)
    log_p = s - logsumexp(s, 1, keepdims=True)
    return -(targets * log_p).sum(1).mean()


@settings(max_examples=150, deadline=None)
@given(problems(), st.booleans())
def test_the_temperature_minimizes_the_log_loss_as_scipy_finds_it(problem, unseen):
    z, y, shift = problem
    classes = None  # with unseen: the last class gets no target (training never saw it)
    if unseen and len(set(y)) < z.shape[1] - 1:
        classes = np.arange(z.shape[1]) != np.setdiff1d(np.arange(z.shape[1]), y)[-1]
    t = fit_temperature(torch.as_tensor(z), torch.as_tensor(y), shift, classes)
    assert type(t) is float and BOUNDS[0] <= t <= BOUNDS[1]  # (a record saves it)
    ref = minimize_scalar(lambda u: platt_loss(z, y, float(np.exp(u)), shift, classes),
                          bounds=np.log(BOUNDS), method="bounded", options={"xatol": 1e-10})
    ours = platt_loss(z, y, t, shift, classes)
    assert ours <= ref.fun + 1e-9 * max(1.0, abs(ref.fun))
    assert ours <= platt_loss(z, y, 1.0, shift, classes) + 1e-12  # never worse than none


def soft_targets(n, k, y, classes):
    targets = np.where(classes, (1 - (n + 1) / (n + 2)) / (classes.sum() - 1), 0.0)
    targets = np.repeat(targets[None], n, 0)
    targets[np.arange(n), y] = (n + 1) / (n + 2)
    return targets


@settings(max_examples=100, deadline=None)
@given(problems(), st.booleans())
def test_the_class_bias_minimizes_the_log_loss_as_scipy_finds_it(problem, unseen):
    z, y, shift = problem
    n, k = z.shape
    classes = np.ones(k, bool)  # with unseen: one class training never saw, left out
    if unseen and len(set(y)) < k - 1:
        classes[np.setdiff1d(np.arange(k), y)[-1]] = False
    b = fit_class_bias(torch.as_tensor(z), torch.as_tensor(y), shift, classes)
    assert b.shape == (k,) and np.all(b[~classes] == 0) and abs(b[classes].sum()) < 1e-9
    s = (z + (0 if shift is None else shift))[:, classes]
    targets = soft_targets(n, k, y, classes)[:, classes]

    def loss(bias):
        v = s + bias
        return (logsumexp(v, 1) - (targets * v).sum(1)).mean()

    ref = minimize(loss, np.zeros(classes.sum()), method="BFGS", options={"gtol": 1e-10})
    assert loss(b[classes]) <= ref.fun + 1e-8 * max(1.0, abs(ref.fun))
    assert loss(b[classes]) <= loss(np.zeros(classes.sum())) + 1e-12  # never worse than none


def test_the_class_bias_matches_each_classs_mean_probability_to_its_rate():
    rng = np.random.default_rng(3)
    y = rng.choice(4, 3000, p=[0.55, 0.25, 0.15, 0.05])
    z = rng.normal(size=(3000, 4))
    z[np.arange(3000), y] += 2.0
    z[:, 3] -= 3.0  # a model that under-predicts its rarest class
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    assert p.mean(0)[3] < 0.7 * 0.05
    b = fit_class_bias(z, y)
    q = np.exp(z + b) / np.exp(z + b).sum(1, keepdims=True)
    share = soft_targets(3000, 4, y, np.ones(4, bool)).mean(0)  # the rates, to 1e-3
    np.testing.assert_allclose(q.mean(0), share, rtol=1e-9)
    np.testing.assert_allclose(share, np.bincount(y) / 3000, atol=1e-3)


def test_a_separated_validation_set_softens_to_laplaces_target_not_to_the_bound():
    y = np.repeat(np.arange(3), 10)  # 30 rows: the target on each label is 31/32
    z = np.zeros((30, 3))
    z[np.arange(30), y] = 10.0  # every row right, by the same margin
    t = fit_temperature(z, y)  # hard labels would give BOUNDS[0] (logits times 100)
    assert t == pytest.approx(10 / np.log(62), rel=1e-6)  # e^(10/T) / (e^(10/T) + 2) = 31/32
    assert np.exp(-calibrated_nll(z, y, t)) == pytest.approx(31 / 32, rel=1e-6)


def test_the_log_loss_against_a_direct_float64_formula():
    rng = np.random.default_rng(1)
    z, y, c = rng.normal(size=(50, 4)) * 5, rng.integers(0, 4, 50), rng.normal(size=4)
    s = z / 2.5 + c
    expected = np.mean(np.log(np.exp(s).sum(1)) - s[np.arange(50), y])
    assert calibrated_nll(z, y, 2.5, c) == pytest.approx(expected, rel=1e-12)


def test_an_overconfident_model_gets_a_temperature_above_one_and_a_timid_one_below():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 2000)
    truth = rng.normal(size=(2000, 3))
    truth[np.arange(2000), y] += 1.0
    labels = np.array([rng.choice(3, p=np.exp(r) / np.exp(r).sum()) for r in truth])
    assert fit_temperature(truth, labels) == pytest.approx(1.0, abs=0.1)  # calibrated
    assert fit_temperature(truth * 4, labels) == pytest.approx(4.0, rel=0.1)
    assert fit_temperature(truth / 4, labels) == pytest.approx(0.25, rel=0.1)


def test_the_temperature_layer_divides_and_keeps_the_ranking():
    z = torch.randn(8, 3)
    layer = Temperature(2.0)
    torch.testing.assert_close(layer(z), z / 2)
    assert torch.equal(layer(z).argmax(1), z.argmax(1))
    assert set(dict(layer.named_buffers())) == {"temperature"}  # saved with a model
    biased = Temperature(2.0, [0.5, -1.0, 0.0])
    torch.testing.assert_close(biased(z), z / 2 + torch.tensor([0.5, -1.0, 0.0]))
    assert set(dict(biased.named_buffers())) == {"temperature", "bias"}


@pytest.mark.parametrize("args, match", [
    ((np.ones(3), np.zeros(3, int)), r"^logits: expected shape \(n, classes\)"),
    ((np.full((2, 2), np.nan), np.zeros(2, int)), "^logits: expected at least one row, all"),
    ((np.ones((0, 2)), np.zeros(0, int)), "^logits: expected at least one row"),
    ((np.ones((2, 2)), np.zeros(3, int)), r"^y: expected 2 class indices in \[0, 2\)"),
    ((np.ones((2, 2)), np.array([0, 2])), r"^y: expected 2 class indices"),
    ((np.ones((2, 2)), np.array([0.0, 1.0])), r"^y: expected 2 class indices"),
    ((np.ones((2, 2)), np.array([0, 1]), np.ones(3)), r"^shift: expected 2 values"),
    ((np.ones((2, 3)), np.array([0, 1]), None, [True, False, True]),
     r"^classes: expected 3 flags including every label of y"),
])
@pytest.mark.parametrize("fitter", [fit_temperature, fit_class_bias])
def test_bad_input(args, match, fitter):
    with pytest.raises(ValueError, match=match):
        fitter(*args)


@pytest.mark.parametrize("fitter", [fit_temperature, fit_class_bias])
def test_tensors_that_require_grad_are_read_as_numbers(fitter):
    rng = np.random.default_rng(5)
    z, y, c = rng.normal(size=(40, 3)), rng.integers(0, 3, 40), rng.normal(size=3)
    as_grad = [torch.tensor(v, requires_grad=True) for v in (z, c)]  # a module's output
    np.testing.assert_array_equal(fitter(as_grad[0], torch.as_tensor(y), as_grad[1]),
                                  fitter(z, y, c))
