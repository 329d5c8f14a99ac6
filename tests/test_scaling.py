import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bagoftricks import Scaled, scale_hparams

lrs = st.floats(1e-6, 10)
batches = st.integers(1, 8192)
moms = st.floats(0, 0.99)


@given(lrs, batches, batches, moms, moms)
def test_linear_rule_keeps_the_noise_scale(lr, b, b2, m, m2):
    out = scale_hparams(lr, b, b2, momentum=m, new_momentum=m2)
    noise = lr / (b * (1 - m))
    assert out.lr / (b2 * (1 - m2)) == pytest.approx(noise, rel=1e-12)
    assert out.batch_size == b2 and out.momentum == m2


@given(lrs, batches, batches)
def test_sqrt_rule(lr, b, b2):
    assert scale_hparams(lr, b, b2, rule="sqrt").lr == pytest.approx(lr * math.sqrt(b2 / b))


def test_doubling_examples_from_the_chapter():
    assert scale_hparams(0.1, 128, 256).lr == pytest.approx(0.2)
    wd = scale_hparams(0.1, 128, 256, weight_decay=5e-4, scale="weight_decay")
    assert wd.lr == 0.1 and wd.weight_decay == pytest.approx(1e-3) and wd.factor == 2
    # momentum 0.9 -> 0.95 halves 1/(1-m)'s partner: the same batch needs half the LR
    assert scale_hparams(0.1, 128, 128, momentum=0.9, new_momentum=0.95).lr == pytest.approx(
        0.05)


@pytest.mark.parametrize("kwargs, match", [
    ({"lr": -1}, "lr: "), ({"lr": float("nan")}, "lr: "), ({"lr": 0.0}, "lr: "),
    ({"lr": True}, "lr: "), ({"lr": "0.1"}, "lr: "), ({"momentum": True}, "momentum: "),
    ({"momentum": "0.9"}, "momentum: "), ({"weight_decay": "0"}, "weight_decay: "),
    ({"momentum": 0.9, "new_momentum": 1.5}, "new_momentum: expected a number in"),
    ({"batch_size": 0}, "batch_size: "), ({"new_batch_size": 2.5}, "new_batch_size: "),
    ({"momentum": 1.0}, "momentum: "),
    ({"new_momentum": 0.5}, "^momentum: give the tuned momentum along with new_momentum$"),
    ({"rule": "cubic"}, "rule: "), ({"scale": "momentum"}, "scale: "),
    ({"scale": "weight_decay"}, "^weight_decay: required with scale='weight_decay'$"),
    ({"weight_decay": -1.0}, "weight_decay: "),
    ({"rule": "sqrt", "momentum": 0.9, "new_momentum": 0.5},
     r"^new_momentum: momentum rescaling is defined for SGD \(rule='linear'\), not for the "
     "Adam family$"),
])
def test_bad_input(kwargs, match):
    args = {"lr": 0.1, "batch_size": 32, "new_batch_size": 64, **kwargs}
    with pytest.raises(ValueError, match=match):
        scale_hparams(args.pop("lr"), args.pop("batch_size"), args.pop("new_batch_size"), **args)


def test_every_field_of_the_result():
    assert scale_hparams(0.1, 32, 64, weight_decay=0.0, momentum=0.9) == Scaled(
        lr=pytest.approx(0.2), weight_decay=0.0, batch_size=64, momentum=0.9, factor=2.0)
    assert scale_hparams(0.1, 32, 64, weight_decay=1e-4, momentum=0.9,
                         scale="weight_decay") == Scaled(
        lr=0.1, weight_decay=pytest.approx(2e-4), batch_size=64, momentum=0.9, factor=2.0)
    # the Adam family keeps a momentum it is given, unchanged
    assert scale_hparams(0.1, 32, 128, momentum=0.9, rule="sqrt") == Scaled(
        lr=pytest.approx(0.2), weight_decay=None, batch_size=128, momentum=0.9, factor=2.0)
