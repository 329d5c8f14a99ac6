import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.metrics import log_loss
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from bagoftricks import bias_for, init_bias_, initial_loss

F64 = torch.float64


def class_labels(max_k=8, max_n=200):
    return st.integers(2, max_k).flatmap(lambda k: st.tuples(
        st.just(k), hnp.arrays(np.int64, st.integers(1, max_n), elements=st.integers(0, k - 1))))


weights = st.floats(0.0, 10.0, allow_nan=False)


@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 80), st.integers(1, 4)),
                  elements=st.floats(-1e4, 1e4)), st.data())
def test_linear_is_weighted_mean(y, data):
    w = data.draw(hnp.arrays(np.float64, len(y), elements=weights).filter(lambda w: w.sum() > 0))
    b = bias_for(y, "linear", sample_weight=w, dtype=F64).numpy()
    np.testing.assert_allclose(b, np.average(y, axis=0, weights=w), rtol=1e-10, atol=1e-8)
    var = np.average((y - np.average(y, axis=0, weights=w)) ** 2, axis=0, weights=w)
    assert initial_loss(y, "linear", sample_weight=w) == pytest.approx(var.mean(), rel=1e-9,
                                                                       abs=1e-6)


@given(hnp.arrays(np.int64, st.tuples(st.integers(1, 100), st.integers(1, 3)),
                  elements=st.integers(0, 1)))
def test_sigmoid_is_log_odds_per_column(y):
    p = y.mean(0)
    eps = 1e-8
    b = bias_for(y, "sigmoid", dtype=F64).numpy()
    np.testing.assert_allclose(b, np.log((p + eps) / (1 - p + eps)), rtol=1e-12)
    assert np.all(np.isfinite(b))


@given(class_labels())
def test_softmax_is_centred_log_prior(data):
    k, y = data
    p = np.bincount(y, minlength=k) / len(y)
    logp = np.log(p + 1e-8)
    b = bias_for(y, "softmax", num_classes=k, dtype=F64).numpy()
    np.testing.assert_allclose(b, logp - logp.mean(), rtol=1e-12, atol=1e-12)
    assert np.all(np.isfinite(b)) and abs(b.sum()) < 1e-9


@given(class_labels(max_k=5))
def test_initial_loss_softmax_equals_sklearn_log_loss_of_the_prior(data):
    k, y = data
    p = np.bincount(y, minlength=k) / len(y)
    q = (p + 1e-8) / (1 + k * 1e-8)  # the probabilities at bias_for's bias
    ref = log_loss(y, np.tile(q, (len(y), 1)), labels=np.arange(k))
    assert initial_loss(y, "softmax", num_classes=k) == pytest.approx(ref, abs=1e-12)


def _zero_weight_model_loss(y, kind, w=None, **kw):
    """Loss of a fresh model whose last layer has zero weights and init_bias_ bias."""
    n = len(y)
    yt = torch.as_tensor(y)
    if kind == "softmax":
        out = kw.get("num_classes") or (yt.shape[1] if yt.ndim == 2 else int(yt.max()) + 1)
    else:
        out = 1 if yt.ndim == 1 else yt.shape[1]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, out)).double()
    nn.init.zeros_(model[-1].weight)
    init_bias_(model[-1], y, kind, sample_weight=w, **kw)
    pred = model(torch.randn(n, 5, dtype=F64))
    wt = torch.ones(n, dtype=F64) if w is None else torch.as_tensor(w, dtype=F64)
    target = yt.to(F64).reshape(n, -1) if kind != "softmax" or yt.ndim == 2 else yt
    if kind == "linear":
        per = ((pred - target) ** 2).mean(1)
    elif kind == "sigmoid":
        per = nn.functional.binary_cross_entropy_with_logits(pred, target, reduction="none")
        per = per.mean(1)
    else:
        per = nn.functional.cross_entropy(pred, target, reduction="none")
    return float(((per * wt).sum() / wt.sum()).detach())


@pytest.mark.parametrize("kind, y", [
    ("linear", np.random.default_rng(1).normal(3, 2, size=500)),
    ("linear", np.random.default_rng(2).normal([0, 5, -7], [1, 3, 0.1], size=(400, 3))),
    ("sigmoid", (np.random.default_rng(3).random(1000) < 0.02).astype(np.int64)),
    ("sigmoid", (np.random.default_rng(4).random((300, 4)) < [0.1, 0.5, 0.9, 0.3]).astype(float)),
    ("softmax", np.random.default_rng(5).choice(6, size=700, p=[.5, .2, .15, .1, .05, 0])),
    ("softmax", np.random.default_rng(6).dirichlet(np.ones(4), size=200)),
])
@pytest.mark.parametrize("weighted", [False, True])
def test_fresh_model_loss_equals_initial_loss(kind, y, weighted):
    w = np.random.default_rng(7).uniform(0, 3, size=len(y)) if weighted else None
    kw = {"num_classes": 6} if kind == "softmax" and y.ndim == 1 else {}
    model_loss = _zero_weight_model_loss(y, kind, w, **kw)
    assert model_loss == pytest.approx(initial_loss(y, kind, sample_weight=w, **kw), abs=1e-6)


def test_initial_loss_binary_equals_sklearn_log_loss():
    y = (np.random.default_rng(0).random(999) < 0.07).astype(int)
    p = y.mean()
    assert initial_loss(y, "sigmoid") == pytest.approx(log_loss(y, np.full(len(y), p)), abs=1e-12)
    y2 = np.stack([y, 1 - y, y], 1)
    assert initial_loss(y2, "sigmoid", reduction="sum") == pytest.approx(
        3 * initial_loss(y, "sigmoid"), abs=1e-12)


@given(class_labels(max_k=6, max_n=60))
def test_coordinate_descent_from_zero_reaches_closed_form(data):
    k, y = data
    p = np.bincount(y, minlength=k) / len(y)
    eps = 1e-8
    p = (p + eps) / (p + eps).sum()
    b = np.zeros(k)
    first_sweep = None
    for sweep in range(2000):
        old = b.copy()
        for j in range(k):  # solve softmax(b)_j = p_j for coordinate j, others fixed
            others = np.delete(b, j)
            b[j] = np.log(p[j] / (1 - p[j])) + np.log(np.exp(others).sum())
        if sweep == 0:
            first_sweep = b.copy()
        if np.abs(b - old - (b - old).mean()).max() < 1e-13:
            break
    assert first_sweep[0] == pytest.approx(np.log(p[0] / (1 - p[0])) + np.log(k - 1))
    closed = bias_for(y, "softmax", num_classes=k, dtype=F64).numpy()
    np.testing.assert_allclose(b - b.mean(), closed, atol=1e-6)


def test_missing_class_gives_finite_bias():
    b = bias_for([0, 0, 1, 3], "softmax", num_classes=5)
    assert torch.isfinite(b).all() and b[2] == b[4] < b[0]
    assert torch.isfinite(bias_for([0, 0, 0], "sigmoid")).all()
    assert torch.isfinite(bias_for([1, 1], "sigmoid")).all()


@pytest.mark.parametrize("batch_size", [1, 7, 64, 1000])
def test_batches_equal_full_array(batch_size):
    rng = np.random.default_rng(0)
    x = torch.randn(300, 2)
    y_cls = torch.as_tensor(rng.choice(4, 300, p=[.7, .2, .1, 0]))
    y_reg = torch.as_tensor(rng.normal(5, 3, size=(300, 2)))
    w = torch.as_tensor(rng.uniform(0.1, 2, 300))
    for kind, y in (("softmax", y_cls), ("linear", y_reg), ("sigmoid", (y_cls == 1).long())):
        loader = DataLoader(TensorDataset(x, y, w), batch_size=batch_size)
        kw = {"num_classes": 4} if kind == "softmax" else {}
        torch.testing.assert_close(bias_for(loader, kind, dtype=F64, **kw),
                                   bias_for(y, kind, sample_weight=w, dtype=F64, **kw))
        assert initial_loss(loader, kind, **kw) == pytest.approx(
            initial_loss(y, kind, sample_weight=w, **kw), rel=1e-10)
    gen = (y_cls[i:i + 50] for i in range(0, 300, 50))  # a plain generator of label batches
    torch.testing.assert_close(bias_for(gen, "softmax", num_classes=4), bias_for(y_cls, "softmax",
                                                                             num_classes=4))


def test_list_and_numpy_and_tensor_agree():
    y = [0, 1, 1, 2, 2, 2]
    assert torch.equal(bias_for(y, "softmax"), bias_for(np.array(y), "softmax"))
    assert torch.equal(bias_for(y, "softmax"), bias_for(torch.tensor(y), "softmax"))


@pytest.mark.parametrize("call, match", [
    (lambda: bias_for([0, 1, 5], "softmax", num_classes=3), "y: label 5 out of range"),
    (lambda: bias_for([0, -1, 1], "softmax"), "y: .*non-negative whole"),
    (lambda: bias_for([0.5, 1.0], "softmax"), "y: .*whole numbers"),
    (lambda: bias_for([0, 2], "sigmoid"), r"y: .*\[0, 1\]"),
    (lambda: bias_for(np.zeros((3, 2, 2)), "linear"), "y: .*shape"),
    (lambda: bias_for(np.zeros((3, 2, 2)), "softmax"), "y: .*shape"),
    (lambda: bias_for([[0.5, 0.6]], "softmax"), "y: .*summing to 1"),
    (lambda: bias_for([1.0, float("nan")], "linear"), "y: contains NaN"),
    (lambda: bias_for([], "linear"), "y: empty"),
    (lambda: bias_for(iter([]), "linear"), "y: empty"),
    (lambda: bias_for(5, "linear"), "y: expected"),
    (lambda: bias_for(["a", "b"], "softmax"), "y: labels must be numeric"),
    (lambda: bias_for([1, 2], "linear", sample_weight=[1, -1]),
     r"^sample_weight: negative weight -1\.0 at index 1$"),
    (lambda: bias_for([1, 2], "linear", sample_weight=[1]), "sample_weight: has 1"),
    (lambda: bias_for([1, 2], "linear", sample_weight=[0, 0]), "sample_weight: all .*zero"),
    (lambda: bias_for([1, 2], "linear", sample_weight=[1, np.inf]), "sample_weight: .*NaN"),
    (lambda: bias_for([1, 2], "tanh"), "kind: expected"),
    (lambda: bias_for([1, 0], "sigmoid", eps=0), "eps: "),
    (lambda: bias_for([0, 0], "softmax"), "y: softmax needs at least 2"),
    (lambda: bias_for([0, 1], "softmax", num_classes=1), "num_classes: "),
    (lambda: bias_for([0, 1, 5000], "softmax"),
     r"^y: label 5000 is far beyond the 3 distinct labels; class indices must run 0\.\.K-1 "
     r"\(pass num_classes=K if K really is that large\)$"),
    (lambda: initial_loss([0, 1], "sigmoid", reduction="max"), "reduction: "),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_init_bias_checks_the_layer():
    y = np.array([0, 1, 2, 2])
    layer = nn.Linear(3, 3)
    out = init_bias_(layer, y, "softmax")
    assert out is layer.bias and torch.allclose(layer.bias, bias_for(y, "softmax"))
    assert layer.bias.requires_grad
    with pytest.raises(ValueError, match=r"layer: bias has shape \(3,\)"):
        init_bias_(nn.Linear(3, 3), [0.0, 1.0], "linear")
    with pytest.raises(ValueError, match=r"^layer: Linear has no bias tensor \(was it built "
                                         r"with bias=False\?\)$"):
        init_bias_(nn.Linear(3, 1, bias=False), [0.0, 1.0], "linear")
    with pytest.raises(ValueError, match="y: label 3 out of range"):
        init_bias_(nn.Linear(3, 3), [0, 3], "softmax")
    conv = nn.Conv1d(2, 1, 3)  # any module with a 1-D bias
    init_bias_(conv, [0.0, 2.0], "linear")
    assert conv.bias.item() == 1.0


def test_softmax_batches_whose_classes_grow_or_shrink_equal_the_full_array():
    y = np.array([0, 1, 1, 0, 2, 3, 3, 1, 0, 0])
    batches = [y[:4], y[4:4], y[4:7], y[7:]]  # classes {0,1}, none, {2,3}, {0,1}
    torch.testing.assert_close(bias_for(iter(batches), "softmax", dtype=F64),
                               bias_for(y, "softmax", dtype=F64))
    assert initial_loss(iter(batches), "softmax") == pytest.approx(initial_loss(y, "softmax"))


def test_sigmoid_prior_rates_of_zero_and_one_give_finite_clipped_biases():
    bias = bias_for(None, "sigmoid", prior=[1.0, 0.0], dtype=F64)
    assert torch.isfinite(bias).all() and bias[0] > 15 and bias[1] < -15
    with pytest.raises(ValueError, match="^prior: "):
        bias_for(None, "sigmoid", prior=[1.5])


def test_prior_errors_name_what_is_wrong():
    with pytest.raises(ValueError, match=r"^prior: a linear head has no label prior \(give y\)$"):
        bias_for(None, "linear", prior=[0.5, 0.5])
    with pytest.raises(ValueError, match="^prior: softmax needs K >= 2 class probabilities "
                                         "summing to 1, got 1 summing to 1$"):
        bias_for(None, "softmax", prior=[1.0])


@pytest.mark.parametrize("kind, y", [("sigmoid", [[0, 1], [0, 1], [0, 0], [0, 1]]),
                                     ("softmax", [0, 0, 2, 2, 2])])  # a rate 0, a class absent
def test_initial_loss_is_the_loss_at_the_bias_bias_for_sets(kind, y):
    y = torch.as_tensor(y)
    bias = bias_for(y, kind, eps=0.1, num_classes=3 if kind == "softmax" else None,
                    dtype=torch.float64)
    logits = bias.expand(len(y), -1)
    actual = (F.binary_cross_entropy_with_logits(logits, y.double()) if kind == "sigmoid"
              else F.cross_entropy(logits, y))
    assert initial_loss(y.numpy(), kind, eps=0.1,
                        num_classes=3 if kind == "softmax" else None) == pytest.approx(
        actual.item(), rel=1e-12)


def test_labels_up_to_1000_beyond_twice_the_distinct_ones_are_class_indices():
    assert bias_for([0, 1, 1005], "softmax").shape == (1006,)  # 1006 = 1000 + 2 * 3 classes
    with pytest.raises(ValueError, match="label 1006 is far beyond"):
        bias_for([0, 1, 1006], "softmax")


def test_negative_class_labels_are_named():
    with pytest.raises(ValueError, match=r"^y: softmax labels must be non-negative whole "
                                         r"numbers \(class indices\)$"):
        bias_for([-1, 0, 1], "softmax")
