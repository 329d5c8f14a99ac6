import numpy as np
import pandas as pd
import pytest

from bagoftricks.tabular import (
    MAX_CATEGORIES,
    Schema,
    encode,
    iter_batches,
    load,
    read,
    sample,
    scan,
    scan_for_training,
)


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


def test_sample_draws_distinct_rows_uniformly_across_record_batches(frame, tmp_path,
                                                                     monkeypatch):
    import bagoftricks.tabular as tabular
    frame["a"] = np.arange(len(frame), dtype=float)  # a row number
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    schema = scan(path, "target").schema
    whole = tabular.iter_batches
    monkeypatch.setattr(tabular, "iter_batches", lambda p: whole(p, batch_rows=37))
    X, y = sample(path, schema, 100, seed=3)
    rows = X[:, 0].astype(int)
    assert len(set(rows)) == 100 and rows.max() > 400  # distinct, not just the first ones
    np.testing.assert_array_equal(y, frame.target.to_numpy()[rows])  # labels stay with rows
    assert np.array_equal(sample(path, schema, 100, seed=3)[0], X)  # seeded
    everything = sample(path, schema, 10_000)[0][:, 0]
    assert sorted(everything.astype(int)) == list(range(len(frame)))
    hits = np.zeros(len(frame))  # each row's chance of being drawn is 100/500
    for seed in range(200):
        hits[sample(path, schema, 100, seed=seed)[0][:, 0].astype(int)] += 1
    assert abs(hits[:250].mean() - hits[250:].mean()) < 3  # Binomial(200, 0.2): 40 ± 5.7
    assert 15 < hits.min() and hits.max() < 65


def _integers_then(tmp_path, rows: int, value: str):
    """A CSV of whole numbers in 'a' and 'b' whose column 'b' holds ``value`` at data row
    ``rows + 1`` (past a 1 MiB read block at 200,000 rows)."""
    path = tmp_path / "d.csv"
    path.write_text("a,b,target\n" + "7,1,0\n3,2,1\n" * (rows // 2) + f"5,{value},1\n")
    return path


def test_csv_column_types_come_from_the_first_4_mib(tmp_path):
    path = _integers_then(tmp_path, 300_000, "1.5")  # 1.5 at about 1.7 MiB: still inferred
    s = scan(path, "target")
    X, y = load(path, s.schema)
    assert X.shape == (300_001, 2) and X[-1, 1] == 1.5


def test_a_csv_cell_that_does_not_parse_names_its_column_and_row(tmp_path):
    path = _integers_then(tmp_path, 800_000, "x")  # past the first 4 MiB block
    assert path.stat().st_size > 1 << 22
    with pytest.raises(ValueError, match="^DATA: column 'b' holds 'x' at data row 800001, "
                                         "but its first rows made it int64$"):
        scan(path, "target")


def test_empty_files_classes_too_small_to_validate_and_a_regression_target(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    pq.write_table(pa.table({}), tmp_path / "none.parquet")
    with pytest.raises(ValueError, match="^DATA: none.parquet is empty$"):
        scan(tmp_path / "none.parquet", "a")
    frame = pd.DataFrame({"x": np.arange(9.0), "y": [0, 0, 0, 0, 0, 0, 1, 1, 2]})
    frame.to_csv(tmp_path / "d.csv", index=False)
    assert scan(tmp_path / "d.csv", "y").small_classes == ["2"]  # two rows are enough
    s = scan(tmp_path / "d.csv", "x", task="regression")
    X, y = load(tmp_path / "d.csv", s.schema)
    assert y.dtype == np.float32 and y.tolist() == list(range(9))
    only_target = Schema("y", "regression", [], {}, None, {})
    X, y = encode(pa.table({"y": [1.0, 2.0]}).to_batches()[0], only_target)
    assert X.shape == (2, 0) and X.dtype == np.float32 and y.tolist() == [1.0, 2.0]


def test_missing_text_is_not_an_unseen_category_and_an_explicit_task_is_kept(tmp_path):
    import warnings

    frame = pd.DataFrame({"city": ["x", "y", None, "x"] * 5, "y": [0, 1, 2, 3] * 5})
    frame.to_parquet(tmp_path / "d.parquet")
    s = scan_for_training(tmp_path / "d.parquet", "y", task="regression")
    assert s.schema.task == "regression"  # a whole-number target, regressed as asked
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a null is missing, not an unseen category
        X, _ = load(tmp_path / "d.parquet", s.schema)
    assert X[2].tolist() == [0.0, 0.0]


def test_read_keeps_an_explicit_task(tmp_path):
    pd.DataFrame({"x": np.arange(8.0), "y": [0, 1, 2, 3] * 2}).to_csv(tmp_path / "d.csv",
                                                                   index=False)
    s, X, y = read(tmp_path / "d.csv", "y", task="regression")
    assert s.schema.task == "regression" and X.shape == (8, 1) and y.dtype == np.float32


def test_extra_columns_are_named_and_a_float_0_1_target_is_a_class(tmp_path):
    pd.DataFrame({"x": np.arange(6.0), "y": [0.0, 1.0] * 3}).to_csv(tmp_path / "d.csv",
                                                                  index=False)
    s = scan(tmp_path / "d.csv", "y")
    assert s.schema.task == "classification" and s.schema.classes == [0.0, 1.0]
    import pyarrow as pa
    batch = pa.table({"x": [1.0], "z": [2.0], "y": [0.0]}).to_batches()[0]
    with pytest.raises(ValueError, match="^DATA: columns do not match the model's schema; "
                                         "extra: z$"):
        encode(batch, s.schema)


def test_a_float_target_with_few_values_is_regressed(tmp_path):
    pd.DataFrame({"x": np.arange(9.0), "y": [1.5, 2.5, 3.5] * 3}).to_csv(tmp_path / "d.csv",
                                                                       index=False)
    assert scan(tmp_path / "d.csv", "y").schema.task == "regression"
