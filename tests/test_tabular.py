import numpy as np
import pandas as pd
import pytest

from bagoftricks.tabular import MAX_CATEGORIES, iter_batches, load, scan


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(5, 2, 500), "b": rng.integers(0, 3, 500),
                         "city": rng.choice(["x", "y", "z"], 500),
                         "target": rng.choice([0, 1, 2], 500, p=[0.7, 0.2, 0.1])})


@pytest.mark.parametrize("fmt", ["csv", "parquet", "npz"])
def test_scan_and_load_agree_across_formats(frame, tmp_path, fmt):
    path = tmp_path / f"d.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "parquet":
        frame.to_parquet(path)
    else:
        np.savez(path, **{c: frame[c].to_numpy().astype(str) if c == "city"
                          else frame[c].to_numpy() for c in frame})
    s = scan(path, "target")
    assert s.schema.task == "classification" and s.schema.classes == [0, 1, 2]
    assert s.rows == 500 and s.class_counts == {str(k): int((frame.target == k).sum())
                                                 for k in range(3)}
    np.testing.assert_allclose(s.standardizer.mean.numpy(), frame[["a", "b"]].mean(),
                               rtol=1e-12)
    X, y = load(path, s.schema)
    assert X.shape == (500, 2 + 3) and X.dtype == np.float32
    np.testing.assert_array_equal(y, frame.target.to_numpy())
    np.testing.assert_array_equal(X[:, 2:].argmax(1),
                                  frame.city.map({"x": 0, "y": 1, "z": 2}).to_numpy())


def test_streaming_in_record_batches(frame, tmp_path):
    big = pd.concat([frame] * 300, ignore_index=True)  # 150,000 rows
    path = tmp_path / "big.parquet"
    big.to_parquet(path, row_group_size=20_000)
    assert sum(1 for _ in iter_batches(path)) > 1
    s = scan(path, "a")
    assert s.schema.task == "regression" and s.rows == 150_000
    np.testing.assert_allclose(s.standardizer.std.numpy()[0], big.b.std(ddof=0), rtol=1e-10)


def test_too_many_categories_names_the_column(tmp_path):
    df = pd.DataFrame({"id": [f"u{i}" for i in range(MAX_CATEGORIES + 5)], "y": [0, 1] * 18 +
                       [0]})
    df.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(ValueError, match="string column 'id' has more than"):
        scan(tmp_path / "d.csv", "y")


def test_unsupported_file(tmp_path):
    (tmp_path / "d.xlsx").write_text("x")
    with pytest.raises(ValueError, match="unsupported file type"):
        scan(tmp_path / "d.xlsx", "y")


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_load_of_many_record_batches_equals_pandas(frame, tmp_path, fmt):
    big = pd.concat([frame] * 600, ignore_index=True)  # 300,000 rows
    big["a"] = np.arange(len(big), dtype=float)  # a row number: order is checked too
    path = tmp_path / f"big.{fmt}"
    if fmt == "parquet":
        big.to_parquet(path, row_group_size=20_000)
    else:
        big.to_csv(path, index=False)
        assert path.stat().st_size > 1 << 22  # larger than one CSV read block
    assert sum(1 for _ in iter_batches(path)) > 1
    s = scan(path, "target")
    X, y = load(path, s.schema)
    assert X.shape[0] == len(big) == s.rows
    np.testing.assert_array_equal(X[:, 0], big.a.to_numpy(np.float32))
    np.testing.assert_array_equal(y, big.target.to_numpy())
