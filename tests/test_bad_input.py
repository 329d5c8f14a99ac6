"""Every bad input of the command line and the API: one clear line, never a traceback,
never a silent wrong result. One test (or parameter) per case of the reliability issue."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from bagoftricks import LossAccumulator, RunningStandardizer, Tricks, bias_for, fit
from bagoftricks.cli import app
from bagoftricks.data import stratified_split
from bagoftricks.models import tabular_mlp

runner = CliRunner()


def _one_line(result, needle):
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def _good(tmp_path, n=60, name="data.csv"):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                       "y": rng.integers(0, 2, n)})
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path, df


def _doctor(path, *extra):
    return runner.invoke(app, ["doctor", str(path), "--target", "y", *extra])


# -- the data file ------------------------------------------------------------------


def test_a_folder_or_fifo_as_data_says_what_it_is(tmp_path):
    _one_line(_doctor(tmp_path), "is a folder")
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    _one_line(_doctor(fifo), "not a regular file")


def test_binary_content_named_csv_is_refused_without_echoing_it(tmp_path):
    path = tmp_path / "photo.csv"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    result = _doctor(path)
    _one_line(result, "not a text CSV file")
    assert len(result.stderr) < 200


def test_duplicate_column_names_are_named(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("a,a,y\n1,2,0\n3,4,1\n")
    _one_line(_doctor(path), "duplicate column names: a")


def test_parquet_list_and_struct_columns_are_named(tmp_path):
    path = tmp_path / "nested.parquet"
    pq.write_table(pa.table({"tags": [[1, 2], [3]], "info": [{"k": 1}, {"k": 2}],
                             "y": [0, 1]}), path)
    _one_line(_doctor(path), "'tags' (list<element: int64>)")


def test_a_string_in_a_numeric_column_names_column_and_row(tmp_path):
    path = tmp_path / "late.csv"
    rows = [f"{i}.125,{i % 2}" for i in range(400_000)] + ["oops,1"]  # past the first block
    path.write_text("a,y\n" + "\n".join(rows) + "\n")
    _one_line(_doctor(path), "column 'a' holds 'oops' at data row 400001")


def test_a_2d_npz_array_becomes_columns(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "arrays.npz"
    np.savez(path, X=rng.normal(size=(50, 3)), y=rng.integers(0, 2, 50))
    rep = json.loads(_doctor(path, "--json").stdout)
    assert [f["column"] for f in rep["feature_scales"]] == ["X[0]", "X[1]", "X[2]"]
    np.savez(path, X=rng.normal(size=(50, 3, 2)), y=rng.integers(0, 2, 50))
    _one_line(_doctor(path), "has shape (50, 3, 2)")


def test_values_beyond_float32_are_flagged_and_json_stays_strict(tmp_path):
    path, df = _good(tmp_path)
    df.loc[3, "a"] = 1e308
    df.loc[4, "a"] = -1e308
    df.to_csv(path, index=False)
    result = _doctor(path, "--json")
    assert result.exit_code == 0, result.stderr
    rep = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"non-strict {c}"))
    assert rep["non_finite"] == {"a": 2}
    a = next(f for f in rep["feature_scales"] if f["column"] == "a")
    assert np.isclose(a["mean"], df.a.drop([3, 4]).mean())  # flagged cells left out


def test_json_safe_replaces_non_finite_values_with_null_and_a_note():
    from bagoftricks.doctor import json_safe

    notes = []
    assert json_safe({"x": [1.0, float("nan")], "y": float("inf")}, notes=notes) == {
        "x": [1.0, None], "y": None}
    assert notes == ["x[1] is nan (written as null)", "y is inf (written as null)"]


# -- the target ---------------------------------------------------------------------


def test_mixed_numbers_and_text_in_the_target_are_refused(tmp_path):
    path, df = _good(tmp_path)
    df["y"] = df.y.astype(str)
    df.loc[7, "y"] = "unknown"
    df.to_csv(path, index=False)
    rep = json.loads(_doctor(path, "--json").stdout)
    assert "mixes numbers" in rep["target_problems"][0]
    _one_line(runner.invoke(app, ["fit", str(path), "--target", "y", "--out",
                                  str(tmp_path / "m")]), "mixes numbers")


def test_an_id_like_target_is_reported_and_refused_unless_task_is_given(tmp_path):
    path, df = _good(tmp_path, n=120)
    df["y"] = [f"cust-{i}" for i in range(120)]
    df.to_csv(path, index=False)
    rep = json.loads(_doctor(path, "--json").stdout)
    assert "looks like an ID" in rep["target_problems"][0]
    _one_line(runner.invoke(app, ["fit", str(path), "--target", "y", "--out",
                                  str(tmp_path / "m")]), "pass --task")


def test_infinite_regression_target_names_the_file_row(tmp_path):
    path, df = _good(tmp_path)
    df["y"] = df.a * 2.5
    df.loc[41, "y"] = np.inf
    df.to_csv(path, index=False)
    _one_line(_doctor(path), "first at data row 42")


def test_a_single_row_class_stays_in_training_and_is_reported(tmp_path):
    path, df = _good(tmp_path)
    df.loc[0, "y"] = 2
    df.to_csv(path, index=False)
    rep = json.loads(_doctor(path, "--json").stdout)
    assert rep["classes_too_small_to_validate"] == ["2"]
    result = runner.invoke(app, ["fit", str(path), "--target", "y", "--out",
                                 str(tmp_path / "m"), "--epochs", "1", "--quiet"])
    assert result.exit_code == 0, result.stderr
    assert "warning: class(es) [2] have a single row" in result.stderr
    with pytest.warns(UserWarning, match="single row"):
        train, held = stratified_split(np.array([0, 0, 0, 1, 1, 1, 2]), 0.5)
    assert 6 in train and 6 not in held


@pytest.mark.parametrize("balance", [None, "logit_adjust", "oversample", "weights"])
def test_a_validation_class_absent_from_training_does_not_crash_fit(balance):
    X = np.random.default_rng(0).normal(size=(30, 2)).astype(np.float32)
    y = np.arange(30) % 2
    res = fit(tabular_mlp(2, 3), (X, y), val_data=(X[:3], np.array([0, 1, 2])), epochs=1,
              tricks=Tricks.all(balance=balance), log="none")
    assert res.history.epochs[0]["recall"][2] is not None
    for prior in (None, "balanced"):  # the unseen class keeps no shift, nothing is NaN
        out = res.predictor_for(prior)(torch.as_tensor(X)).softmax(1)
        assert torch.isfinite(out).all() and out[:, 2].max() < 1e-3


# -- options ------------------------------------------------------------------------


@pytest.mark.parametrize("args, needle", [
    (["demo", "--seeds", "0"], "--seeds: expected an integer >= 1"),
    (["fit", "{path}", "--target", "y", "--out", "{tmp}/m", "--task", "foo"], "--task:"),
    (["doctor", "{path}", "--target", "y", "--task", "foo"], "--task:"),
    (["doctor", "{path}", "--target", "y", "--batch-size", "0"], "--batch-size: expected"),
    (["fit", "{path}", "--target", "y", "--out", "{tmp}/m", "--nproc", "0"], "--nproc:"),
    (["fit", "{path}", "--target", "y", "--out", "{tmp}/m", "--lr", "nan"], "--lr:"),
    (["fit", "{path}", "--target", "y", "--out", "{tmp}/m", "--lr", "fast"],
     "--lr: expected a positive number or 'auto', got 'fast'"),
    (["compare", "{path}", "--target", "y", "--epochs", "0"], "--epochs:"),
    (["bench", "--only", "nonsense"], "--only: expected one of"),
    (["glm", "{path}", "--target", "y", "--family", "weibull"], "--family:"),
])
def test_every_option_is_checked_before_any_data_is_read(tmp_path, args, needle):
    missing = tmp_path / "never-read.csv"  # an option error must win over the missing file
    args = [a.format(path=missing, tmp=tmp_path) for a in args]
    _one_line(runner.invoke(app, args), needle)


def test_nproc_errors_are_one_line_from_one_process(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bagoftricks.cli", "fit", str(tmp_path / "x.csv"),
                           "--target", "y", "--out", str(tmp_path / "m"), "--nproc", "2"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: DATA: no such file: {tmp_path}/x.csv"]


# -- the model folder and checkpoints -----------------------------------------------


@pytest.fixture
def model_dir(tmp_path):
    path, _ = _good(tmp_path)
    out = tmp_path / "model"
    result = runner.invoke(app, ["fit", str(path), "--target", "y", "--out", str(out),
                                 "--epochs", "1", "--quiet"])
    assert result.exit_code == 0, result.stderr
    return out


def _predict(model_dir, data, out):
    return runner.invoke(app, ["predict", str(model_dir), str(data), "--out", str(out)])


@pytest.mark.parametrize("damage", ["garbage", "truncated", "config-huge", "config-text",
                                    "temperature-zero", "temperature-text", "class-bias-short",
                                    "class-bias-nan"])
def test_a_damaged_model_folder_is_one_line(model_dir, tmp_path, damage):
    weights, config = model_dir / "model.pt", model_dir / "config.json"
    if damage == "garbage":
        weights.write_bytes(b"not a zip file at all")
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:300])
    elif damage == "config-huge":
        cfg = json.loads(config.read_text())
        config.write_text(json.dumps({**cfg, "hidden": [200_000, 200_000]}))
    elif damage.startswith("temperature"):
        cfg = json.loads(config.read_text())
        assert "temperature" in cfg
        config.write_text(json.dumps({**cfg, "temperature": 0 if "zero" in damage else "hot"}))
    elif damage.startswith("class-bias"):
        cfg = json.loads(config.read_text())
        config.write_text(json.dumps({**cfg, "class_bias": [0.5] if "short" in damage
                                      else [float("nan")] * cfg["out_features"]}))
    else:
        config.write_text("{not json")
    _one_line(_predict(model_dir, tmp_path / "data.csv", tmp_path / "p.csv"),
              "not a model written by bagoftricks, or it is corrupted")


def test_unseen_categories_at_predict_time_warn_once_with_the_count(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=60), "plan": rng.choice(["x", "y"], 60),
                       "y": rng.integers(0, 2, 60)})
    df.to_csv(tmp_path / "train.csv", index=False)
    out = tmp_path / "m"
    assert runner.invoke(app, ["fit", str(tmp_path / "train.csv"), "--target", "y", "--out",
                               str(out), "--epochs", "1", "--quiet"]).exit_code == 0
    df.loc[:4, "plan"] = "z"
    df.to_csv(tmp_path / "new.csv", index=False)
    result = _predict(out, tmp_path / "new.csv", tmp_path / "p.csv")
    assert result.exit_code == 0
    assert result.stderr.strip().splitlines() == [
        "warning: column 'plan': 5 value(s) not seen in training, encoded as all zeros"]


def test_resume_refuses_other_data_or_settings_and_fewer_epochs(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    ckpt = tmp_path / "ck"
    kwargs = dict(epochs=2, batch_size=16, lr=1e-3, checkpoint_dir=ckpt, log="none", seed=0)
    fit(tabular_mlp(3, 2, (8,)), (X, y), **kwargs)
    for change, needle in [({"lr": 1e-2}, "other lr"), ({"seed": 1}, "other seed"),
                           ({"batch_size": 8}, "other batch_size"),
                           ({"tricks": Tricks.none()}, "other tricks")]:
        with pytest.raises(ValueError, match=needle):
            fit(tabular_mlp(3, 2, (8,)), (X, y), **{**kwargs, **change}, resume=True)
    with pytest.raises(ValueError, match="other train_data"):
        fit(tabular_mlp(3, 2, (8,)), (X + 1, y), **kwargs, resume=True)
    with pytest.raises(ValueError, match="already trained 2 epochs"):
        fit(tabular_mlp(3, 2, (8,)), (X, y), **{**kwargs, "epochs": 1}, resume=True)
    (ckpt / "checkpoint.pt").write_bytes(b"corrupt")
    with pytest.raises(ValueError, match="not a checkpoint written by bagoftricks"):
        fit(tabular_mlp(3, 2, (8,)), (X, y), **kwargs, resume=True)


def test_cli_resume_with_another_seed_or_data_names_it(tmp_path, monkeypatch):
    path, df = _good(tmp_path)
    out = tmp_path / "m"
    args = ["fit", str(path), "--target", "y", "--out", str(out), "--epochs", "2", "--quiet"]

    def crash(*a, **k):
        raise KeyboardInterrupt  # the run dies after its last checkpoint
    monkeypatch.setattr("bagoftricks.model_io.atomic_folder", crash)
    assert runner.invoke(app, args).exit_code == 130
    monkeypatch.undo()
    assert (tmp_path / "m.partial" / "checkpoint.pt").exists()
    _one_line(runner.invoke(app, args + ["--resume", "--seed", "1"]), "other seed")
    _one_line(runner.invoke(app, args + ["--resume", "--lr", "0.001"]), "other lr")
    _one_line(runner.invoke(app, [*args[:-3], "--epochs", "1", "--resume"]),
              "already trained 2 epochs")
    df.loc[0, "a"] += 1
    df.to_csv(path, index=False)
    _one_line(runner.invoke(app, args + ["--resume"]), "other train_data")


# -- the chapter objects --------------------------------------------------------------


def test_fit_refuses_x_and_y_of_different_lengths():
    X = np.zeros((10, 2), np.float32)
    with pytest.raises(ValueError, match="train_data: X has 10 rows but y has 9"):
        fit(tabular_mlp(2, 2), (X, np.zeros(9, np.int64)), log="none")
    with pytest.raises(ValueError, match="val_data: X has 10 rows but y has 4"):
        fit(tabular_mlp(2, 2), (X, np.zeros(10, np.int64)), val_data=(X, np.zeros(4, np.int64)),
            log="none")


def test_standardizer_takes_float16_and_names_a_wrong_width():
    x = torch.randn(200, 3, dtype=torch.float64) * 300 + 1000
    std = RunningStandardizer().fit([x.half()])
    np.testing.assert_allclose(std.mean, x.half().double().mean(0), rtol=1e-6)
    with pytest.raises(ValueError, match=r"shape \(4, 5\) has no axis -1 of 3 features"):
        std.transform(torch.zeros(4, 5))


@pytest.mark.parametrize("n", [torch.tensor(-3), torch.tensor(float("nan")),
                               torch.tensor(float("-inf"))])
def test_loss_accumulator_checks_tensor_sizes_at_compute(n):
    acc = LossAccumulator()
    acc.update(torch.tensor(1.0), n=torch.tensor(4))
    acc.update(torch.tensor(2.0), n=n)
    with pytest.raises(ValueError, match="n: 1 update"):
        acc.compute()


def test_bias_for_refuses_a_stray_huge_label_without_allocating():
    with pytest.raises(ValueError, match="far beyond the 2 distinct labels"):
        bias_for(np.array([0, 10**9]), "softmax")


def test_values_that_overflow_float32_in_the_network_are_a_data_error_not_a_nan(tmp_path):
    """Found by the command-line property test: cells near float32's largest value are
    valid floats, yet overflow in the first layer. Training that goes non-finite is one
    error naming the widest column, leaving nothing behind; a model whose scores go
    non-finite on some rows refuses to write NaN probabilities. (Raw features: the
    command line's default standardization trains on these files.)"""
    raw = ["--epochs", "1", "--quiet", "--no-standardize", "--lr", "1e-2"]  # (auto would
    huge = 3.145055032616816e38  # add its too-few-rows warning)
    both = pd.DataFrame({"b": [0.0] * 19 + [huge], "x": [0.0] * 19 + [huge],
                         "y": [0] * 5 + [1] + [0] * 13 + [1]})
    both.to_csv(tmp_path / "both.csv", index=False)
    fitted = runner.invoke(app, ["fit", str(tmp_path / "both.csv"), "--target", "y", "--out",
                                 str(tmp_path / "m"), *raw])
    _one_line(fitted, "DATA: the training loss is not finite")
    assert "the widest column, 'b'" in fitted.stderr and "leave out --no-standardize" in \
        fitted.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["both.csv"]
    standardized = runner.invoke(app, ["fit", str(tmp_path / "both.csv"), "--target", "y",
                                       "--out", str(tmp_path / "s"), *raw[:3], "--lr", "1e-2"])
    assert standardized.exit_code == 0, standardized.stderr
    shutil.rmtree(tmp_path / "s")

    one = pd.DataFrame({"b": [0.0] * 17 + [huge, 0.0, 0.0], "y": [0] * 17 + [1, 0, 1]})
    one.to_csv(tmp_path / "one.csv", index=False)
    model = tmp_path / "model"
    assert runner.invoke(app, ["fit", str(tmp_path / "one.csv"), "--target", "y", "--out",
                               str(model), *raw]).exit_code == 0
    with torch.no_grad():  # make the saved model overflow on that row whatever it learned
        state = torch.load(model / "model.pt")
        first = next(k for k in state if k.endswith("weight") and state[k].ndim == 2)
        state[first].fill_(1.0)
        torch.save(state, model / "model.pt")
    predicted = runner.invoke(app, ["predict", str(model), str(tmp_path / "one.csv"), "--out",
                                    str(tmp_path / "p.csv")])
    _one_line(predicted, "DATA: 1 row(s) give non-finite scores (first at data row 18)")
    assert not (tmp_path / "p.csv").exists()

    one["x"] = one["b"]  # the held-out huge row now overflows: no finite validation loss
    one.to_csv(tmp_path / "two.csv", index=False)
    fitted = runner.invoke(app, ["fit", str(tmp_path / "two.csv"), "--target", "y", "--out",
                                 str(tmp_path / "m2"), *raw])
    assert fitted.exit_code == 0
    assert "(the last epoch: the validation loss was never finite)" in fitted.stdout
