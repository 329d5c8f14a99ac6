"""Leslie Smith's LR range test: restores the model, suggests a sane LR, falls back
clearly, and fit(lr="auto") uses it."""

import os

import numpy as np
import pytest
import torch

from bagoftricks import Tricks, fit
from bagoftricks.lr_find import lr_find
from bagoftricks.models import tabular_mlp


def _problem(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8)).astype(np.float32)
    y = (X[:, :3].sum(1) > 0).astype(np.int64) + (X[:, 3] > 1).astype(np.int64)
    return X, y


def test_the_sweep_restores_the_model_and_suggests_a_tenth_of_the_minimum():
    X, y = _problem()
    model = tabular_mlp(8, 3, (32,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    found = lr_find(model, (X, y), steps=80)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not found.fallback
    at = int(np.argmin(found.losses))
    assert found.suggestion == pytest.approx(found.lrs[at] / 10)
    assert 1e-5 < found.suggestion < 1  # Adam-family on standard-normal features
    assert found.losses[at] < 0.9 * found.losses[0]  # the loss did come down first
    lrs = np.array(found.lrs)  # an exponential sweep from 1e-7 to 10 over the 80 steps
    np.testing.assert_allclose(np.diff(np.log(lrs)), np.log(1e8) / 79, rtol=1e-9)
    assert lrs[0] == 1e-7


def test_fallbacks_warn_and_return_the_fallback_lr():
    X, y = _problem(40)
    with pytest.warns(RuntimeWarning, match="fewer than one batch") as record:
        assert lr_find(tabular_mlp(8, 3), (X[:10], y[:10]), batch_size=32).fallback
    with pytest.warns(RuntimeWarning, match="fewer than one batch") as through_fit:
        fit(tabular_mlp(8, 3), (X[:10], y[:10]), batch_size=32, epochs=1, lr="auto",
            log="none")
    if "MUTANT_UNDER_TEST" not in os.environ:  # (mutmut adds a frame of its own)
        assert {w.filename for w in [*record, *through_fit]} == {__file__}  # the user's line
    with pytest.warns(RuntimeWarning, match="diverged"):
        found = lr_find(tabular_mlp(8, 3), (X * 1e3, y), start_lr=1e2, end_lr=1e8,
                        optimizer=lambda p, lr: torch.optim.SGD(p, lr=lr), batch_size=8)
    assert found.fallback and found.suggestion == 1e-3

    class Constant(torch.nn.Module):  # a parameter with a gradient that changes nothing
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return x[:, :3] * 0 + self.w * 0
    frozen = Constant()
    with pytest.warns(RuntimeWarning, match="never decreased"):
        found = lr_find(frozen, (X, y), batch_size=8)
    assert found.fallback
    with pytest.warns(RuntimeWarning, match="still falling at end_lr=0.01"):  # full batch
        found = lr_find(tabular_mlp(8, 3), (X, y), batch_size=40, steps=30, start_lr=1e-4,
                        end_lr=1e-2)
    assert found.fallback and found.suggestion == 1e-3 and len(found.losses) == 30
    with pytest.raises(ValueError, match="end_lr: expected more than start_lr"):
        lr_find(frozen, (X, y), start_lr=1.0, end_lr=0.1)
    with pytest.raises(ValueError, match="steps: expected an integer >= 2"):
        lr_find(frozen, (X, y), steps=1)


def test_fit_with_lr_auto_trains_at_the_range_test_suggestion():
    X, y = _problem()
    res = fit(tabular_mlp(8, 3, (32,)), (X, y), val_data=(X[:400], y[:400]), epochs=3,
              lr="auto", tricks=Tricks(plateau=False), log="none")
    lr = res.history.epochs[0]["lr"]
    assert 1e-5 < lr < 1 and lr != 1e-3
    assert res.history.epochs[-1]["train_loss"] < res.history.epochs[0]["train_loss"]
    with pytest.raises(ValueError, match="lr: expected a finite positive number"):
        fit(tabular_mlp(8, 3), (X, y), lr=-1.0, log="none")


def test_the_first_tenth_of_the_sweep_is_not_a_minimum():
    """Found on an 8%-positive table: the second batch held one positive in 64, the
    average of the first two was the lowest smoothed loss of the sweep, and the
    suggestion was 1.06e-8."""
    from test_prior import _rare_problem
    X, y = (torch.as_tensor(a) for a in _rare_problem(4000, 0.05, 23))
    prior = torch.bincount(y) / len(y)
    found = lr_find(tabular_mlp(4, 2, (128, 64), seed=0), (X.float(), y),
                    optimizer=lambda p, lr: torch.optim.Adam(p, lr=lr),
                    logit_adjustment=prior.log().float())
    assert min(found.losses) < min(found.losses[30:])  # the noise the rule leaves out
    assert 1e-3 < found.suggestion < 3e-2 and not found.fallback
