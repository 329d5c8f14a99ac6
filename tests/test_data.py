import numpy as np
import pytest

from bagoftricks.data import load


def test_digits_zipf_is_deterministic_and_imbalanced():
    a, b = load("digits-zipf"), load("digits-zipf")
    assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y)
    counts = np.bincount(a.y)
    assert counts[0] / counts[-1] >= 9 and np.all(np.diff(counts) <= 0)


def test_breast_cancer_rare_has_about_one_percent_positives():
    ds = load("breast-cancer-rare")
    assert ds.X.shape[1] == 30 and 0.005 < ds.y.mean() < 0.02


def test_unknown_dataset():
    with pytest.raises(ValueError, match="dataset: unknown"):
        load("cifar")
