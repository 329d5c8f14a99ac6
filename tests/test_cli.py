import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bagoftricks import __version__
from bagoftricks.calibration import Temperature
from bagoftricks.cli import app
from bagoftricks.model_io import load_model
from bagoftricks.models import tabular_mlp

runner = CliRunner()


def test_version_and_help():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output and __version__ != "0.0.0+unknown"
    result = runner.invoke(app, ["--help"])
    for command in ("demo", "compare", "doctor", "fit", "predict", "glm", "bench"):
        assert command in result.output


@pytest.fixture
def churn_csv(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    df = pd.DataFrame({"tenure": rng.integers(1, 72, n).astype(float),
                       "charges": rng.normal(70, 30, n) * 100,
                       "plan": rng.choice(["basic", "pro", "max"], n),
                       "constant": np.ones(n)})
    logit = -2.5 + 0.0004 * (df.charges - 7000) - 0.03 * (df.tenure - 36)
    df["churn"] = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    df.loc[5, "tenure"] = np.nan
    path = tmp_path / "churn.csv"
    df.to_csv(path, index=False)
    return path


def test_doctor_json(churn_csv):
    result = runner.invoke(app, ["doctor", str(churn_csv), "--target", "churn", "--json",
                                 "--batch-size", "256"])
    assert result.exit_code == 0, result.output
    rep = json.loads(result.output)
    counts = rep["classes"]
    assert rep["task"] == "classification" and set(counts) == {"no", "yes"}
    n = sum(counts.values())
    assert rep["balanced_weights"]["yes"] == pytest.approx(n / (2 * counts["yes"]), rel=1e-5)
    assert rep["oversampled_epoch_size"] == 2 * max(counts.values())
    p = np.array(list(counts.values())) / n
    # fit's default balance (the logit-adjusted loss): the raw logits model a uniform
    # prior, the loss sees the natural labels, predict corrects by log(p / 0.5)
    assert rep["balance"] == "logit_adjust"
    assert rep["loss_at_init"] == pytest.approx(-(p * np.log(p)).sum())
    assert rep["effective_prior"] == {"no": 0.5, "yes": 0.5}
    np.testing.assert_allclose(list(rep["prior_correction"].values()), np.log(p / 0.5),
                               atol=1e-6)
    over = json.loads(runner.invoke(app, ["doctor", str(churn_csv), "--target", "churn",
                                          "--json", "--balance", "oversample"]).output)
    assert over["loss_at_init"] == pytest.approx(np.log(2))
    assert rep["loss_at_zero_bias"] == pytest.approx(np.log(2))
    plain = json.loads(runner.invoke(app, ["doctor", str(churn_csv), "--target", "churn",
                                           "--json", "--balance", "none"]).output)
    assert plain["loss_at_init"] == pytest.approx(-(p * np.log(p)).sum())
    assert plain["prior_correction"] == {"no": 0.0, "yes": 0.0}
    assert "constant" in rep["constant_columns"] and rep["non_finite"] == {"tenure": 1}
    assert "charges" in rep["needs_standardizing"]
    assert rep["lr"]["rescaled_lr_sgd"] == pytest.approx(4e-3)
    table = runner.invoke(app, ["doctor", str(churn_csv), "--target", "churn"])
    assert table.exit_code == 0 and "balanced weight" in table.output


def test_doctor_runs_the_range_test_fit_would_run(churn_csv):
    import torch

    from bagoftricks.loop.fit import adam
    from bagoftricks.lr_find import lr_find
    from bagoftricks.standardize import RunningStandardizer, Standardize
    from bagoftricks.tabular import sample, scan
    rep = json.loads(runner.invoke(app, ["doctor", str(churn_csv), "--target", "churn",
                                         "--json", "--batch-size", "32"]).output)
    sweep = rep["lr_range_test"]
    assert sweep["rows"] == 400 and not sweep["fallback"] and "lowest at lr" in sweep["reason"]
    s = scan(churn_csv, "churn")  # by hand: fit's model, optimizer and logit adjustment
    X, y = (torch.from_numpy(a) for a in sample(churn_csv, s.schema, 300 * 32))
    p = torch.tensor(list(s.class_counts.values()), dtype=torch.float64) / 400
    scaled = Standardize(RunningStandardizer(scale_floor=0.25).fit([X]))  # as fit's
    found = lr_find(tabular_mlp(X.shape[1], 2, (128, 64), seed=0), (X, y), optimizer=adam,
                    batch_size=32, prepare=scaled, logit_adjustment=p.log().float())
    assert sweep["suggestion"] == found.suggestion
    table = runner.invoke(app, ["doctor", str(churn_csv), "--target", "churn"]).output
    assert "LR range test (fit --lr auto)" in table and "@ B=64" in table
    skipped = json.loads(runner.invoke(app, ["doctor", str(churn_csv), "--target", "churn",
                                             "--json", "--no-range-test"]).output)
    assert "lr_range_test" not in skipped


def test_fit_class_bias_is_saved_and_predict_adds_it(churn_csv, tmp_path):
    out = tmp_path / "model"
    result = runner.invoke(app, ["fit", str(churn_csv), "--target", "churn", "--out", str(out),
                                 "--epochs", "2", "--lr", "1e-2", "--class-bias", "--quiet"])
    assert result.exit_code == 0, result.output
    cfg = json.loads((out / "config.json").read_text())
    assert len(cfg["class_bias"]) == 2 and cfg["class_bias"] == \
        cfg["history"][cfg["best_epoch"] - 1]["class_bias"] != [0.0, 0.0]
    layer = list(load_model(out)[0])[-2]
    np.testing.assert_allclose(layer.bias.numpy(), cfg["class_bias"], rtol=1e-6)
    table = tmp_path / "regression.csv"
    pd.read_csv(churn_csv).assign(churn=lambda d: np.arange(len(d), dtype=float)).to_csv(
        table, index=False)
    refused = runner.invoke(app, ["fit", str(table), "--target", "churn", "--out",
                                  str(tmp_path / "r"), "--class-bias", "--quiet"])
    assert refused.exit_code == 2 and refused.output.strip() == (
        "error: --class-bias: only for a classifier; 'churn' is a regression target")
    assert not (tmp_path / "r").exists() and not (tmp_path / "r.partial").exists()


def test_fit_predict_and_schema_check(churn_csv, tmp_path):
    out = tmp_path / "model"
    result = runner.invoke(app, ["fit", str(churn_csv), "--target", "churn", "--out", str(out),
                                 "--epochs", "3", "--quiet"])
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {"model.pt", "schema.json", "config.json",
                                               ".bagoftricks"}
    assert not (tmp_path / "model.partial").exists()
    cfg = json.loads((out / "config.json").read_text())  # the kept epoch's temperature
    assert cfg["temperature"] == cfg["history"][cfg["best_epoch"] - 1]["temperature"]
    assert 1e-7 < cfg["history"][0]["lr"] < 10 and cfg["history"][0]["lr"] not in (
        1e-2, 1e-3)  # --lr auto by default: the range test's suggestion, not a fallback
    layers = list(load_model(out)[0])
    charges = 1  # standardized by default: the training rows' statistics, in the model
    assert layers[0].mean[charges] > 1000 and layers[0].scale[charges] > 500
    assert isinstance(layers[-2], Temperature) and float(layers[-2].temperature) == \
        pytest.approx(cfg["temperature"])
    assert layers[-2].bias is None and "class_bias" not in cfg
    preds = tmp_path / "preds.csv"
    result = runner.invoke(app, ["predict", str(out), str(churn_csv), "--out", str(preds)])
    assert result.exit_code == 0, result.output
    df = pd.read_csv(preds)
    assert len(df) == 400 and set(df.prediction) <= {"yes", "no"}
    np.testing.assert_allclose(df.p_no + df.p_yes, 1, atol=1e-5)
    bad = tmp_path / "bad.csv"
    pd.read_csv(churn_csv).drop(columns=["plan"]).assign(extra=1).to_csv(bad, index=False)
    result = runner.invoke(app, ["predict", str(out), str(bad), "--out", str(tmp_path / "p2")])
    assert result.exit_code == 2
    assert "missing: plan" in result.output and "extra: extra" in result.output
    assert not (tmp_path / "p2").exists()


def test_fit_on_raw_features_when_asked(churn_csv, tmp_path):
    out = tmp_path / "raw"
    result = runner.invoke(app, ["fit", str(churn_csv), "--target", "churn", "--out", str(out),
                                 "--epochs", "1", "--quiet", "--no-standardize", "--lr", "0.01"])
    assert result.exit_code == 0, result.output
    first = load_model(out)[0][0]
    assert float(first.mean.abs().max()) == 0 and float((first.scale - 1).abs().max()) == 0
    assert json.loads((out / "config.json").read_text())["history"][0]["lr"] == 0.01


def test_glm_summary(churn_csv):
    result = runner.invoke(app, ["glm", str(churn_csv), "--target", "churn", "--family",
                                 "binomial", "--class-weight", "balanced"])
    assert result.exit_code == 0, result.output
    assert "P(churn = yes)" in result.output and "charges" in result.output
    assert "plan=pro" in result.output


def test_compare_with_ablation_writes_a_report(churn_csv, tmp_path):
    out = tmp_path / "rep"
    result = runner.invoke(app, ["compare", str(churn_csv), "--target", "churn", "--epochs",
                                 "2", "--ablate", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "with centralize" in result.output and "without balance" in result.output
    assert {"report.md", "loss.png", "lr.png", "recall.png"} <= {p.name for p in out.iterdir()}
    assert "encoded features, standardized, 20% held out" in (out / "report.md").read_text()


def test_demo_runs_and_writes_the_report(tmp_path):
    out = tmp_path / "report"
    result = runner.invoke(app, ["demo", "--dataset", "digits-zipf", "--epochs", "2",
                                 "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "all tricks" in result.output and (out / "report.md").exists()


@pytest.mark.parametrize("make, args, message", [
    (None, ["doctor", "missing.csv", "--target", "y"], "no such file"),
    ("good", ["doctor", "{path}", "--target", "nope"], "no column 'nope'"),
    ("empty", ["doctor", "{path}", "--target", "y"], "empty"),
    ("one_class", ["doctor", "{path}", "--target", "y"], "single class"),
    ("text", ["doctor", "{path}", "--target", "y", "--task", "regression"], "not numeric"),
    ("nan", ["doctor", "{path}", "--target", "y"], "missing/NaN"),
    ("good", ["fit", "{path}", "--target", "nope", "--out", "{tmp}/m"], "no column 'nope'"),
    ("good", ["demo", "--dataset", "cifar", "--out", "{tmp}/r"], "unknown 'cifar'"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, make, args, message):
    frames = {"good": pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0, 1, 0]}),
              "one_class": pd.DataFrame({"x": [1.0, 2.0], "y": [1, 1]}),
              "text": pd.DataFrame({"x": [1.0, 2.0], "y": ["a", "b"]}),
              "nan": pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0.5, np.nan, 1.5]})}
    path = tmp_path / "data.csv"
    if make == "empty":
        path.write_text("")
    elif make:
        frames[make].to_csv(path, index=False)
    args = [a.format(path=path, tmp=tmp_path) for a in args]
    proc = subprocess.run([sys.executable, "-m", "bagoftricks.cli", *args], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "m").exists() and not (tmp_path / "r").exists()


def test_fit_encodes_the_table_once_into_a_shared_cache(tmp_path):
    from bagoftricks import table_cache
    from bagoftricks.tabular import load, scan_for_training

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=300), "c": rng.choice(["x", "y"], 300)})
    df["y"] = np.where(df.a > 0.2, "yes", "no")
    data = tmp_path / "d.csv"
    df.to_csv(data, index=False)
    cache = tmp_path / "cache"
    args = ["fit", str(data), "--target", "y", "--epochs", "1", "--cache-dir", str(cache),
            "--quiet"]
    assert runner.invoke(app, [*args, "--out", str(tmp_path / "m1")]).exit_code == 0
    (folder,) = cache.iterdir()
    stamp = (folder / "X.npy").stat().st_mtime_ns
    assert runner.invoke(app, [*args, "--out", str(tmp_path / "m2")]).exit_code == 0
    assert list(cache.iterdir()) == [folder] and (folder / "X.npy").stat().st_mtime_ns == stamp
    s = scan_for_training(data, "y")
    X, y = table_cache.open_cached(folder)
    X_ref, y_ref = load(data, s.schema)
    np.testing.assert_array_equal(X, X_ref)
    np.testing.assert_array_equal(y, y_ref)
    df.iloc[:200].to_csv(data, index=False)  # another file: another fingerprint
    assert runner.invoke(app, [*args, "--out", str(tmp_path / "m3")]).exit_code == 0
    assert len(list(cache.iterdir())) == 2


def test_a_failed_encoding_leaves_no_partial_cache(tmp_path, monkeypatch):
    from bagoftricks import table_cache
    from bagoftricks.tabular import scan_for_training

    df = pd.DataFrame({"a": np.arange(10.0), "y": np.arange(10) % 2})
    data = tmp_path / "d.csv"
    df.to_csv(data, index=False)
    s = scan_for_training(data, "y")

    def broken(batch, schema):
        raise ValueError("DATA: broken")
    monkeypatch.setattr(table_cache, "encode", broken)
    folder = table_cache.cache_folder(data, s, tmp_path / "cache")
    with pytest.raises(ValueError, match="broken"):
        table_cache.write(data, s, folder)
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_cache_folder_that_cannot_be_written_is_one_line(tmp_path):
    (tmp_path / "afile").write_text("mine")
    data = tmp_path / "d.csv"
    pd.DataFrame({"a": np.arange(20.0), "y": np.arange(20) % 2}).to_csv(data, index=False)
    result = runner.invoke(app, ["fit", str(data), "--target", "y", "--out",
                                 str(tmp_path / "m"), "--cache-dir", str(tmp_path / "afile")])
    assert result.exit_code == 2
    assert "--cache-dir: cannot write to" in result.output
    assert (tmp_path / "afile").read_text() == "mine" and not (tmp_path / "m").exists()


def _insurance(tmp_path, n=600):
    rng = np.random.default_rng(4)
    df = pd.DataFrame({"age": rng.normal(size=n), "region": rng.choice(["n", "s", "e"], n),
                       "exposure": rng.uniform(0.5, 2, n), "w": rng.uniform(0.5, 2, n),
                       "count": rng.integers(1, 4, n)})
    eta = 0.2 + 0.5 * df.age + (df.region == "s") * 0.3 + np.log(df.exposure)
    df["claims"] = rng.poisson(np.exp(eta))
    path = tmp_path / "claims.csv"
    df.to_csv(path, index=False)
    return df, path


def test_glm_streams_with_weight_offset_and_frequency_columns(tmp_path):
    import statsmodels.api as sm

    df, path = _insurance(tmp_path)
    df["log_exposure"] = np.log(df.exposure)
    df.drop(columns="exposure").to_csv(path, index=False)
    result = runner.invoke(app, ["glm", str(path), "--target", "claims", "--family",
                                 "poisson", "--weight", "w", "--offset", "log_exposure",
                                 "--freq-weight", "count", "--scale", "X2"])
    assert result.exit_code == 0, result.output
    X = np.c_[np.ones(len(df)), df.age, df.region == "n", df.region == "s"].astype(float)
    ref = sm.GLM(df.claims, X, family=sm.families.Poisson(), offset=df.log_exposure,
                 var_weights=df.w, freq_weights=df["count"]).fit(scale="X2")
    rows = {line.split()[0]: line.split()[1:3] for line in result.output.splitlines()
            if line.split() and line.split()[0] in ("intercept", "age", "region=n",
                                                    "region=s")}
    got = [[float(v) for v in rows[k]] for k in ("intercept", "age", "region=n", "region=s")]
    np.testing.assert_allclose([g[0] for g in got], ref.params, rtol=1e-5)
    np.testing.assert_allclose([g[1] for g in got], ref.bse, rtol=1e-5)
    assert "scale" in result.output and "(X2)" in result.output


@pytest.mark.parametrize("args, needle", [
    (["--weight", "nope"], "--weight: no numeric column 'nope'"),
    (["--offset", "region"], "--offset: no numeric column 'region'"),
    (["--freq-weight", "claims"], "(it is the target)"),
    (["--scale", "big"], "--scale: expected X2, dev or a number"),
])
def test_glm_bad_columns_are_one_line(tmp_path, args, needle):
    _, path = _insurance(tmp_path)
    result = runner.invoke(app, ["glm", str(path), "--target", "claims", "--family",
                                 "poisson", *args])
    assert result.exit_code == 2 and needle in result.output, result.output


def test_glm_negative_weight_and_nan_offset_are_named(tmp_path):
    df, path = _insurance(tmp_path)
    df.loc[5, "w"] = -1.0
    df.loc[7, "exposure"] = np.nan
    df.to_csv(path, index=False)
    for args, needle in ((["--weight", "w"], "--weight: column 'w' has a negative value"),
                         (["--offset", "exposure"], "--offset: column 'exposure' has missing")):
        result = runner.invoke(app, ["glm", str(path), "--target", "claims", "--family",
                                     "poisson", *args])
        assert result.exit_code == 2 and needle in result.output, result.output
