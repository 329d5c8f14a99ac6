"""Class priors end to end: the effective prior, bias init from it, the prior correction
(King & Zeng; Menon et al.'s post-hoc adjustment), calibrated predictions."""

import math

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from typer.testing import CliRunner

from bagoftricks import GLM, Tricks, bias_for, fit
from bagoftricks.cli import app
from bagoftricks.models import tabular_mlp
from bagoftricks.prior import (
    check_prior,
    effective_prior,
    parse_prior,
    prior_correction,
    prior_shift,
)

runner = CliRunner()

PRIORS = hnp.arrays(np.float64, st.integers(2, 8), elements=st.floats(0.01, 1)).map(
    lambda a: a / a.sum())


@settings(max_examples=50, deadline=None)
@given(prior=PRIORS)
def test_bias_from_a_prior_gives_its_entropy_as_the_loss_at_init(prior):
    bias = bias_for(None, "softmax", prior=prior, dtype=torch.float64)
    labels = torch.as_tensor(np.arange(len(prior)))
    # the expected CE over labels drawn from the prior: sum_c p_c * CE(bias, c)
    losses = F.cross_entropy(bias.expand(len(prior), -1), labels, reduction="none")
    assert float((torch.as_tensor(prior) * losses).sum()) == pytest.approx(
        -(prior * np.log(prior)).sum(), abs=1e-6)


@settings(max_examples=30, deadline=None)
@given(rates=hnp.arrays(np.float64, st.integers(1, 5), elements=st.floats(0.01, 0.99)))
def test_multi_label_sigmoid_bias_from_positive_rates(rates):
    bias = bias_for(None, "sigmoid", prior=rates, dtype=torch.float64)
    np.testing.assert_allclose(torch.sigmoid(bias).numpy(), rates, rtol=1e-6)


@settings(max_examples=50, deadline=None)
@given(prior=PRIORS)
def test_effective_priors_of_each_balance_option(prior):
    k = len(prior)
    np.testing.assert_allclose(effective_prior(prior, oversample=True), 1 / k)
    balanced = 1 / (k * prior)  # n / (K n_c) up to the common n
    np.testing.assert_allclose(effective_prior(prior, class_weight=balanced), 1 / k)
    np.testing.assert_allclose(effective_prior(prior, tau=1.0), 1 / k)
    np.testing.assert_allclose(effective_prior(prior, tau=0.0), prior)
    half = np.sqrt(prior) / np.sqrt(prior).sum()
    np.testing.assert_allclose(effective_prior(prior, tau=0.5), half)
    absent = np.r_[prior, 0.0]  # a class the training data lacks stays at 0
    np.testing.assert_allclose(effective_prior(absent, tau=0.5), np.r_[half, 0.0])
    np.testing.assert_allclose(effective_prior(absent, oversample=True), np.r_[[1 / k] * k, 0])


@pytest.mark.parametrize("src, dst, match", [([0.5, 0.5], [0.3, 0.3, 0.4], "^to_prior: "),
                                             (1.0, 0.5, "^from_prior: sigmoid"),
                                             (0.5, 0.0, "^to_prior: sigmoid")])
def test_prior_shift_errors_name_the_prior(src, dst, match):
    head = "softmax" if isinstance(src, list) else "sigmoid"
    with pytest.raises(ValueError, match=match):
        prior_shift(src, dst, head)


@settings(max_examples=50, deadline=None)
@given(prior=PRIORS, data=st.data())
def test_softmax_correction_moves_probabilities_by_bayes_rule(prior, data):
    k = len(prior)
    to = data.draw(PRIORS.filter(lambda a: len(a) == k))
    logits = torch.as_tensor(data.draw(hnp.arrays(np.float64, (3, k),
                                                  elements=st.floats(-5, 5))))
    moved = prior_correction(logits, prior, to).softmax(1).numpy()
    p = logits.softmax(1).numpy() * to / prior
    np.testing.assert_allclose(moved, p / p.sum(1, keepdims=True), rtol=1e-9)


def test_sigmoid_correction_is_king_and_zeng():
    b0, tau, ybar = -0.3, 0.04, 0.5
    corrected = prior_correction(torch.tensor([b0], dtype=torch.float64), ybar, tau,
                                 head="sigmoid")
    assert corrected.item() == pytest.approx(b0 - math.log(((1 - tau) / tau) *
                                                           (ybar / (1 - ybar))))


@pytest.mark.parametrize("bad, match", [([0.5, 0.6], "sum to 1.1"), ([1.0, 0.0], "positive"),
                                        ([0.2, 0.3, 0.5], "expected 2 class probabilities")])
def test_bad_priors_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        check_prior(bad, "prior", 2)


def test_parse_prior_names_every_class():
    assert parse_prior("fraud=0.01,ok=0.99", ["fraud", "ok"], [0.1, 0.9]).tolist() == [
        0.01, 0.99]
    assert parse_prior("balanced", ["a", "b"], [0.1, 0.9]).tolist() == [0.5, 0.5]
    assert parse_prior("true", ["a", "b"], [0.1, 0.9]).tolist() == [0.1, 0.9]
    with pytest.raises(ValueError, match="'nope=0.5'"):
        parse_prior("nope=0.5,a=0.5", ["a", "b"], [0.5, 0.5])
    with pytest.raises(ValueError, match="no probability for the classes b"):
        parse_prior("a=1", ["a", "b"], [0.5, 0.5])
    with pytest.raises(ValueError, match=r"^--prior: the probabilities sum to 1.1"):
        parse_prior("a=0.5,b=0.6", ["a", "b"], [0.5, 0.5])
    with pytest.raises(ValueError, match="tau: expected a number >= 0"):
        Tricks(balance="logit_adjust", tau=-1)


def _rare_problem(n, rate, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    logit = np.log(rate / (1 - rate)) - 0.5 + 1.5 * X[:, 0] - X[:, 1]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return X.astype(np.float32), y


@pytest.mark.parametrize("balance", ["oversample", "weights", "logit_adjust", None])
def test_fit_predictor_is_calibrated_to_the_true_prior(balance):
    X, y = _rare_problem(6000, 0.05, 0)
    Xv, yv = _rare_problem(20000, 0.05, 1)
    res = fit(tabular_mlp(4, 2, (16,)), (X, y), val_data=(Xv[:2000], yv[:2000]), epochs=6,
              lr=3e-3, tricks=Tricks(balance=balance), log="none")
    with torch.no_grad():
        p = res.predictor(torch.as_tensor(Xv)).softmax(1)[:, 1].numpy()
        balanced = res.predictor_for("balanced")(torch.as_tensor(Xv)).softmax(1)[:, 1].numpy()
    assert abs(p.mean() - yv.mean()) < 0.15 * yv.mean()  # the target: within 15%
    assert balanced.mean() > 2.5 * yv.mean()  # balanced scores treat the classes equally
    np.testing.assert_allclose(res.prior.numpy(), np.bincount(y) / len(y))


def test_glm_balanced_weights_corrected_to_the_true_prior():
    X, y = _rare_problem(20000, 0.04, 2)
    X = X.astype(np.float64)
    model = GLM("binomial", class_weight="balanced").fit(X, y)
    eta = model.decision_function(X)
    tau, ybar = y.mean(), model.effective_prior_
    closed = 1 / (1 + np.exp(-(eta - math.log(((1 - tau) / tau) * (ybar / (1 - ybar))))))
    np.testing.assert_allclose(model.predict_proba(X, prior="true")[:, 1], closed, rtol=1e-12)
    assert ybar == pytest.approx(0.5)
    raw, corrected = model.predict_proba(X)[:, 1], model.predict_proba(X, prior="true")[:, 1]
    assert raw.mean() > 3 * y.mean()  # the balanced fit's probabilities are inflated
    assert abs(corrected.mean() - y.mean()) < 0.15 * y.mean()
    with pytest.raises(ValueError, match="prior: expected None"):
        model.predict_proba(X, prior="deployment")


def test_cli_predict_is_calibrated_by_default_and_takes_a_prior(tmp_path):
    X, y = _rare_problem(4000, 0.05, 3)
    Xh, yh = _rare_problem(4000, 0.05, 4)
    cols = [f"x{j}" for j in range(4)]
    pd.DataFrame(X, columns=cols).assign(label=np.where(y, "fraud", "ok")).to_csv(
        tmp_path / "train.csv", index=False)
    pd.DataFrame(Xh, columns=cols).to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "m"
    result = runner.invoke(app, ["fit", str(tmp_path / "train.csv"), "--target", "label",
                                 "--out", str(out), "--epochs", "8", "--quiet", "--lr", "1e-2"])
    assert result.exit_code == 0, result.stderr  # (a fixed LR: the plumbing is under test;
    means = {}  # over seeds, --lr auto's mean P(fraud) / rate is 0.82-1.02, 1e-2's 0.92-1.12)
    for prior in ("true", "balanced", "fraud=0.01,ok=0.99"):
        preds = tmp_path / f"p-{prior[:4]}.csv"
        result = runner.invoke(app, ["predict", str(out), str(tmp_path / "new.csv"), "--out",
                                     str(preds), "--prior", prior])
        assert result.exit_code == 0, result.stderr
        df = pd.read_csv(preds)
        means[prior] = df.p_fraud.mean()
        assert ((df.p_fraud > 0.5) == (df.prediction == "fraud")).all()  # class follows
    assert abs(means["true"] - yh.mean()) < 0.15 * yh.mean()
    assert means["balanced"] > 2.5 * means["true"] > 2.5 * means["fraud=0.01,ok=0.99"]
    for bad, needle in [("fraud=0.5,ok=0.6", "sum to 1.1"), ("fraud=0,ok=1", "positive"),
                        ("cat=1", "'cat=1'")]:
        result = runner.invoke(app, ["predict", str(out), str(tmp_path / "new.csv"), "--out",
                                     str(tmp_path / "bad.csv"), "--prior", bad])
        assert result.exit_code == 2 and needle in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_balanced_predictor_is_uniform_over_the_classes_seen_in_training():
    X = np.random.default_rng(0).normal(size=(60, 2)).astype(np.float32)
    y = np.r_[np.zeros(50), np.ones(10)].astype(np.int64)
    res = fit(tabular_mlp(2, 3), (X, y), val_data=(X[:3], np.array([0, 1, 2])), epochs=1,
              tricks=Tricks(balance=None), log="none", keep_best=None)
    shift = res.predictor_for("balanced")[-1].shift  # log(to) - log(from) per class
    assert shift[2] == 0 and shift[0] - shift[1] == pytest.approx(np.log(10 / 50), abs=1e-6)
    with pytest.raises(ValueError, match="^prior: expected None, 'balanced' or 3 class"):
        res.predictor_for("uniform")
    with pytest.raises(ValueError, match="^prior: every class needs a positive"):
        res.predictor_for([0.0, 1.0, 0.0])
    with pytest.raises(ValueError, match=r"^prior: classes \[2\] never appear in the "):
        res.predictor_for([0.3, 0.3, 0.4])
    with pytest.raises(ValueError, match="^prior: expected 3 class probabilities, got 4"):
        res.predictor_for([0.25] * 4)
    deployed = res.predictor_for([0.2, 0.8, 0.0])[-1].shift
    assert deployed[2] == 0 and deployed[0] - deployed[1] == pytest.approx(
        np.log(0.2 / 0.8) - np.log(50 / 10), abs=1e-6)


def test_prior_helpers_name_their_argument_and_keep_the_logits_dtype():
    with pytest.raises(ValueError, match="^prior: expected non-negative probabilities summing "
                                         "to 1"):
        effective_prior([0.5, 0.6], oversample=True)
    with pytest.raises(ValueError, match="^to_prior: "):  # a zero under one prior only
        prior_shift([0.5, 0.5], [1.0, 0.0])
    with pytest.raises(ValueError, match="^--prior: "):
        parse_prior("true", ["a", "b"], [0.5, 0.3, 0.2])
    logits = torch.zeros(2, 3, dtype=torch.float32)
    assert prior_correction(logits, [0.2, 0.3, 0.5], [1 / 3] * 3).dtype == torch.float32


def test_priors_are_float64_and_a_nested_target_prior_is_read_flat():
    assert check_prior(np.array([0.25, 0.75], dtype=np.float32)).dtype == np.float64
    np.testing.assert_allclose(prior_shift([0.5, 0.5], [[0.25, 0.75]]),
                               np.log([0.5, 1.5]), rtol=1e-12)
