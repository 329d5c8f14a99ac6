import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight

from bagoftricks import class_weights, sample_weights, weighted_loss

int_labels = hnp.arrays(np.int64, st.integers(1, 300), elements=st.integers(-3, 6))
str_labels = st.lists(st.sampled_from(["churn", "stay", "fraud", "ok", "Zed"]), min_size=1,
                      max_size=200).map(np.array)


@given(st.one_of(int_labels, str_labels))
def test_balanced_equals_sklearn(y):
    classes = np.unique(y)
    expected = compute_class_weight("balanced", classes=classes, y=y)
    np.testing.assert_allclose(class_weights(y), expected, rtol=1e-14)
    np.testing.assert_allclose(sample_weights(y), compute_sample_weight("balanced", y),
                               rtol=1e-14)
    shuffled = classes[::-1].copy()  # weights follow the order of `classes`
    np.testing.assert_allclose(class_weights(y, classes=shuffled),
                               compute_class_weight("balanced", classes=shuffled, y=y))


@given(int_labels, st.integers(1, 7))
def test_batches_equal_whole_array(y, batch):
    chunks = [y[i:i + batch] for i in range(0, len(y), batch)]
    np.testing.assert_allclose(class_weights(iter(chunks)), class_weights(y), rtol=1e-14)
    np.testing.assert_allclose(class_weights(torch.as_tensor(y)), class_weights(y))


def test_single_class_and_unseen_classes_behave_like_sklearn():
    y = np.array([4, 4, 4])
    assert class_weights(y).tolist() == compute_class_weight("balanced", classes=np.array([4]),
                                                             y=y).tolist() == [1.0]
    with pytest.raises(ValueError):
        compute_class_weight("balanced", classes=np.array([4, 5]), y=y)
    with pytest.raises(ValueError, match=r"classes: \[5\] never occur in y"):
        class_weights(y, classes=[4, 5])
    with pytest.raises(ValueError, match=r"classes: does not include the labels \[4\]"):
        class_weights(y, classes=[1, 2])
    assert class_weights(y, "uniform", classes=[4, 5]).tolist() == [1.0, 1.0]


@pytest.mark.parametrize("call, match", [
    (lambda: class_weights([]), "y: empty"),
    (lambda: class_weights([[0, 1]]), "y: labels must be 1-D"),
    (lambda: class_weights([0.0, np.nan]), "y: contains NaN"),
    (lambda: class_weights([0, 1], scheme="inverse"), "scheme: "),
    (lambda: class_weights(3), "y: expected"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def _float64_reference(logits, target, loss, sw, cw):
    """Weighted mean loss and its gradient computed by hand in float64 (no autograd)."""
    z, t = logits.astype(np.float64), target
    n = len(z)
    if loss == "cross_entropy":
        zmax = z.max(1, keepdims=True)
        logp = z - zmax - np.log(np.exp(z - zmax).sum(1, keepdims=True))
        per = -logp[np.arange(n), t]
        w = sw * cw[t]
        grad = np.exp(logp)
        grad[np.arange(n), t] -= 1
        grad *= (w / w.sum())[:, None]
    elif loss == "bce_with_logits":
        p = 1 / (1 + np.exp(-z))
        per = -(t * np.log(p) + (1 - t) * np.log1p(-p))
        w = np.where(t > 0.5, cw[1], cw[0]) * sw[:, None]
        grad = w * (p - t) / w.sum()
    else:
        d = z - t
        per = (d**2).mean(1)
        w = sw
        grad = 2 * d / z.shape[1] * (w / w.sum())[:, None]
    return (w * per).sum() / w.sum(), grad


@pytest.mark.parametrize("loss", ["cross_entropy", "bce_with_logits", "mse"])
@given(st.integers(0, 10_000))
def test_weighted_loss_value_and_gradient_match_float64_hand_computation(loss, seed):
    rng = np.random.default_rng(seed)
    n, k = rng.integers(1, 30), rng.integers(2, 5)
    logits = rng.normal(0, 3, size=(n, k))
    sw = rng.uniform(0.01, 3, size=n)
    if loss == "cross_entropy":
        target, cw = rng.integers(0, k, size=n), rng.uniform(0.1, 5, size=k)
        t = torch.as_tensor(target)
    elif loss == "bce_with_logits":
        target, cw = (rng.random((n, k)) < 0.3).astype(np.float64), rng.uniform(0.1, 5, size=2)
        t = torch.as_tensor(target)
    else:
        target, cw = rng.normal(size=(n, k)), None
        t = torch.as_tensor(target)
    x = torch.tensor(logits, requires_grad=True)
    value = weighted_loss(x, t, loss, sample_weight=torch.as_tensor(sw),
                          class_weight=None if cw is None else torch.as_tensor(cw))
    value.backward()
    ref_value, ref_grad = _float64_reference(logits, target, loss, sw, cw)
    assert float(value.detach()) == pytest.approx(ref_value, rel=1e-10, abs=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), ref_grad, rtol=1e-9, atol=1e-12)


def test_cross_entropy_class_weight_equals_torch_weight_argument():
    logits, target = torch.randn(50, 4), torch.randint(0, 4, (50,))
    cw = torch.tensor([0.2, 1.0, 3.0, 7.0])
    torch.testing.assert_close(weighted_loss(logits, target, class_weight=cw),
                               F.cross_entropy(logits, target, weight=cw))


def test_all_zero_weights_give_zero_not_nan():
    out = weighted_loss(torch.randn(3, 2), torch.tensor([0, 1, 1]), sample_weight=torch.zeros(3))
    assert out.item() == 0.0


def test_weighted_loss_bad_input():
    with pytest.raises(ValueError, match="loss: "):
        weighted_loss(torch.randn(3, 2), torch.zeros(3), "hinge")
    with pytest.raises(ValueError, match="target: "):
        weighted_loss(torch.randn(3, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="sample_weight: "):
        weighted_loss(torch.randn(3, 2), torch.zeros(3, dtype=torch.long),
                      sample_weight=torch.ones(2))
    with pytest.raises(ValueError, match="class_weight: "):
        weighted_loss(torch.randn(3), torch.ones(3), "mse", class_weight=torch.ones(2))
    with pytest.raises(ValueError, match="class_weight: "):
        weighted_loss(torch.randn(3), torch.ones(3), "bce_with_logits",
                      class_weight=torch.ones(3))


def test_mse_shapes_must_match():
    with pytest.raises(ValueError, match=r"target: shape \(3,\) does not match"):
        weighted_loss(torch.randn(3, 1), torch.randn(3), "mse")


def test_class_counts_of_batches_equal_numpys():
    from bagoftricks.imbalance import class_counts
    y = np.array([2, 0, 2, 1, 2, 0])
    classes, counts = class_counts(iter([(None, y[:4]), (None, y[4:])]))
    ref_classes, ref_counts = np.unique(y, return_counts=True)
    assert classes.tolist() == ref_classes.tolist() and counts.tolist() == ref_counts.tolist()
    with pytest.raises(ValueError, match="^y: empty, no labels to weight$"):
        class_counts(iter([]))


@pytest.mark.parametrize("y", [[0, 1, 3], [0, 1, 5], [-1, 0, 1], [0.0, 1.0]])
def test_num_classes_refuses_labels_that_are_not_its_indices(y):
    with pytest.raises(ValueError, match=r"^y: labels must be class indices 0\.\.2 with "
                                         "num_classes=3$"):
        class_weights(np.array(y), num_classes=3)


def test_num_classes_and_classes_together_and_sample_weight_schemes():
    with pytest.raises(ValueError, match="^num_classes: give either classes or num_classes, "
                                         "not both$"):
        class_weights([0, 1], classes=[0, 1], num_classes=2)
    assert sample_weights([0, 1, 1], "uniform").tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="^y: cannot be read as an array"):
        sample_weights([[0, 1], [2]])


def test_classes_argument_errors_name_the_labels():
    y = np.arange(7)
    assert class_weights(np.array([0, 2, 2]), "uniform", num_classes=3).tolist() == [1, 0, 1]
    for bad in ([[0, 1]], []):
        with pytest.raises(ValueError, match="^classes: expected a non-empty 1-D list of "
                                             "labels$"):
            class_weights(y, classes=bad)
    with pytest.raises(ValueError, match=r"^classes: cannot be read as an array"):
        class_weights(y, classes=[[0], [1, 2]])
    with pytest.raises(ValueError, match=r"^classes: does not include the labels "
                                         r"\[1, 2, 3, 4, 5\] of y$"):
        class_weights(y, classes=[0])
    with pytest.raises(ValueError, match=r"^classes: \[7, 8, 9, 10, 11\] never occur in y, "
                                         r"so a balanced weight n / \(K \* n_c\) is "
                                         "undefined for them$"):
        class_weights(y, classes=np.arange(13))


def test_nan_labels_are_named():
    with pytest.raises(ValueError, match="^y: contains NaN or infinite labels$"):
        class_weights(np.array([0.0, np.nan, 1.0]))


def test_a_regression_loss_keeps_the_predictions_dtype():
    pred = torch.zeros(4, 1, dtype=torch.float32, requires_grad=True)
    loss = weighted_loss(pred, torch.ones(4, 1, dtype=torch.float64), "mse")
    assert loss.dtype == torch.float32 and loss.item() == 1.0
