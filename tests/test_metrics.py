import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    r2_score,
    recall_score,
    roc_auc_score,
)

from bagoftricks.metrics import classification_metrics, regression_metrics


@given(st.integers(0, 10**6), st.integers(4, 200), st.booleans())
def test_binary_metrics_equal_sklearn(seed, n, ties):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    p = rng.random(n)
    if ties:
        p = np.round(p, 1)
    m = classification_metrics(y, np.c_[1 - p, p])
    assert np.isclose(m["roc_auc"], roc_auc_score(y, p))
    assert np.isclose(m["pr_auc"], average_precision_score(y, p))
    pred = (p > 0.5).astype(int)  # argmax of [1-p, p] (ties at 0.5 go to class 0)
    assert np.isclose(m["balanced_accuracy"], balanced_accuracy_score(y, pred))


@given(st.integers(0, 10**6))
def test_multiclass_recall_and_regression(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, 100)
    proba = rng.random((100, 4))
    m = classification_metrics(y, proba)
    np.testing.assert_allclose([r for r in m["recall"]],
                               recall_score(y, proba.argmax(1), average=None, labels=[0, 1, 2, 3]))
    t, pr = rng.normal(size=(50, 2)), rng.normal(size=(50, 2))
    r = regression_metrics(t, pr)
    assert np.isclose(r["r2"], r2_score(t, pr))
    assert np.isclose(r["rmse"], np.sqrt(((t - pr) ** 2).mean()))


@given(st.integers(0, 10**6), st.integers(3, 6))
def test_accuracy_and_balanced_accuracy_with_an_absent_class_equal_sklearn(seed, k):
    from sklearn.metrics import accuracy_score

    rng = np.random.default_rng(seed)
    y = rng.integers(0, k - 1, 60)  # class k-1 never occurs in y, but may be predicted
    proba = rng.random((60, k))
    m = classification_metrics(y, proba)
    pred = proba.argmax(1)
    assert m["accuracy"] == accuracy_score(y, pred)
    present = np.unique(y)
    assert np.isclose(m["balanced_accuracy"],
                      recall_score(y, pred, labels=present, average="macro"))
    assert m["recall"][k - 1] is None  # no sample: undefined, not 0


def test_r2_of_small_and_constant_targets_equals_sklearn():
    rng = np.random.default_rng(0)
    small = rng.normal(0, 0.01, size=(40, 2))  # total sum of squares below 1
    pred = small + rng.normal(0, 0.003, size=(40, 2))
    assert np.isclose(regression_metrics(small, pred)["r2"], r2_score(small, pred))
    const = np.full(20, 3.0)
    for guess in (const + rng.normal(0, 0.1, 20), const):  # imperfect, then perfect
        assert regression_metrics(const, guess)["r2"] == r2_score(const, guess)


def test_a_single_positive_equals_sklearn_and_one_class_is_nan():
    from bagoftricks.metrics import average_precision, roc_auc
    rng = np.random.default_rng(2)
    score = rng.random(30)
    y = np.zeros(30, dtype=int)
    y[7] = 1
    assert roc_auc(y, score) == roc_auc_score(y, score)
    assert np.isclose(average_precision(y, score), average_precision_score(y, score))
    for one_class in (np.zeros(30, dtype=int), np.ones(30, dtype=int)):
        assert np.isnan(roc_auc(one_class, score))
    assert np.isnan(average_precision(np.zeros(30, dtype=int), score))
