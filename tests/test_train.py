import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bagoftricks import Tricks, fit
from bagoftricks.loop.adapters import Standardization
from bagoftricks.models import tabular_mlp

WORKER = Path(__file__).with_name("train_worker.py")


def _run(*args, expect_kill=False):
    proc = subprocess.run([sys.executable, str(WORKER), *map(str, args)], capture_output=True,
                          text=True, timeout=300)
    if expect_kill:
        assert proc.returncode == -9, proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr


@pytest.mark.timeout(600)
@pytest.mark.parametrize("kill_at, kind", [(7, "--tensors"), (46, "--tensors"),
                                           (46, "--dataset")])  # before/after mid-epoch saves
def test_killed_and_resumed_run_ends_like_an_uninterrupted_one(tmp_path, kill_at, kind):
    # 240 samples, batches of 16: 15 steps an epoch
    _run(tmp_path / "a", tmp_path / "full.pt", kind)
    _run(tmp_path / "b", tmp_path / "never.pt", "--kill-at-step", kill_at, kind,
         expect_kill=True)
    assert not (tmp_path / "never.pt").exists()
    assert (tmp_path / "b" / "checkpoint.pt").exists()
    _run(tmp_path / "b", tmp_path / "resumed.pt", "--resume", kind)
    full = torch.load(tmp_path / "full.pt", weights_only=True)
    resumed = torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert full["history"] == resumed["history"]
    for k, v in full["model"].items():
        assert torch.equal(v, resumed["model"][k]), k


def _toy(n=200, regression=False):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n, 5)).astype(np.float32)
    if regression:
        return X, (X @ np.arange(5.0) + 3).astype(np.float32)
    return X, np.digitize(X[:, 0], [-0.5, 0.8]).astype(np.int64)


def test_history_has_the_task_metrics():
    X, y = _toy()
    res = fit(tabular_mlp(5, 3), (X, y), val_data=(X, y), epochs=3, log="none")
    rec = res.history.epochs[-1]
    assert {"train_loss", "val_loss", "accuracy", "balanced_accuracy", "recall", "lr",
            "seconds", "epoch"} <= set(rec)
    assert len(rec["recall"]) == 3 and res.task == "classification"
    Xb, yb = X, (y == 2).astype(np.int64)
    rec = fit(tabular_mlp(5, 2), (Xb, yb), val_data=(Xb, yb), epochs=2,
              log="none").history.epochs[-1]
    assert 0 <= rec["roc_auc"] <= 1 and 0 <= rec["pr_auc"] <= 1
    Xr, yr = _toy(regression=True)
    res = fit(tabular_mlp(5, 1), (Xr, yr), val_data=(Xr, yr), epochs=30, lr=1e-2, log="none")
    assert res.task == "regression" and res.history.epochs[-1]["r2"] > 0.5


def test_tricks_switch_on_and_off():
    assert Tricks.none().on() == []
    assert "centralize" not in Tricks.all().without("centralize").on()
    assert Tricks.all().without("clip_norm").clip_norm is None
    X, y = _toy()
    model = tabular_mlp(5, 3)
    fit(model, (X, y), epochs=1, tricks=Tricks.none(), log="none")
    torch.manual_seed(0)
    model = tabular_mlp(5, 3)
    fit(model, (X, y), epochs=1, tricks=Tricks(balance="weights"), log="none")
    with pytest.raises(ValueError, match="tricks.balance"):
        fit(model, (X, y), epochs=1, tricks=Tricks(balance="smote"), log="none")


def test_bias_init_and_leslie_rescaling_are_applied():
    X, y = _toy()
    model = tabular_mlp(5, 3)
    res = fit(model, (X, y), epochs=1, lr=1e-3, batch_size=256, log="none",
              tricks=Tricks(reference_batch_size=64, rescale_rule="linear", plateau=False))
    assert res.history.epochs[0]["lr"] == pytest.approx(4e-3)


def test_lines_log_goes_to_stderr(capsys):
    X, y = _toy()
    fit(tabular_mlp(5, 3), (X, y), epochs=2, log="lines")
    err = capsys.readouterr().err
    assert err.count("epoch") == 2 and "train" in err


def test_the_log_modes(capsys, monkeypatch):
    from bagoftricks.loop.log import Logger

    record = {"epoch": 2, "train_loss": 0.5, "val_loss": None, "lr": 1e-3, "seconds": 0.25}
    bar = Logger("bar", 3)
    bar.start(1, steps=5)
    assert bar.progress.live.transient is True
    assert [(t.description, t.total) for t in bar.progress.tasks] == [("epoch 2/3", 5)]
    bar.advance()
    assert bar.progress.tasks[0].completed == 1
    bar.end(record)
    assert bar.progress is None
    assert capsys.readouterr().err.endswith(
        "epoch   2/3  train 0.5000  val -  lr 0.001  0.25s\n")
    lines = Logger("auto", 3)  # not a terminal (captured): lines
    assert lines.mode == "lines"
    lines.end({**record, "val_loss": 0.25})
    assert capsys.readouterr().err.startswith("epoch   2/3  train 0.5000  val 0.2500")
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    assert Logger("auto", 3).mode == "bar"
    Logger("none", 3).end(record)
    assert capsys.readouterr().err == ""


def _overfitting_problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 10)).astype(np.float32)
    y = rng.integers(0, 2, 120)  # labels are noise: validation loss rises after a while
    return (X[:80], y[:80]), (X[80:], y[80:])


def _val_loss(model, prepare, val):
    with torch.no_grad():
        out = model(prepare(torch.as_tensor(val[0])))
    return torch.nn.functional.cross_entropy(out, torch.as_tensor(val[1])).item()


def test_the_returned_model_is_the_best_epoch_by_validation_loss():
    train, val = _overfitting_problem()
    res = fit(tabular_mlp(10, 2, (64,)), train, val_data=val, epochs=25, batch_size=16,
              lr=1e-2, tricks=Tricks.none(), log="none", keep_best="val_loss")
    losses = res.history.series("val_loss")
    assert res.best_epoch == int(np.argmin(losses)) + 1 < 25  # it did overfit
    assert res.best_value == min(losses)
    assert _val_loss(res.model, torch.nn.Identity(), val) == pytest.approx(min(losses), abs=1e-6)
    last = fit(tabular_mlp(10, 2, (64,)), train, val_data=val, epochs=25, batch_size=16,
               lr=1e-2, tricks=Tricks.none(), log="none", keep_best=None)
    assert last.best_epoch is None
    assert _val_loss(last.model, torch.nn.Identity(), val) == pytest.approx(losses[-1], abs=1e-6)
    assert last.temperature == last.history.epochs[-1]["temperature"]


def test_a_classifier_keeps_the_best_epoch_by_calibrated_validation_loss():
    """The default: the validation log loss after temperature scaling; the predictor
    divides by that epoch's temperature and scores exactly that loss."""
    train, val = _overfitting_problem()
    res = fit(tabular_mlp(10, 2, (64,)), train, val_data=val, epochs=25, batch_size=16,
              lr=1e-2, tricks=Tricks.none(), log="none")
    calibrated = res.history.series("calibrated_val_loss")
    assert res.best_epoch == int(np.argmin(calibrated)) + 1 and res.best_value == min(
        calibrated)
    kept = res.history.epochs[res.best_epoch - 1]
    assert res.temperature == kept["temperature"] != 1.0
    assert all(c <= v + 1e-6 for c, v in zip(calibrated, res.history.series("val_loss"),
                                             strict=True))  # T = 1 is a candidate
    assert _val_loss(res.predictor, torch.nn.Identity(), val) == pytest.approx(
        min(calibrated), abs=1e-6)
    assert _val_loss(res.model, torch.nn.Identity(), val) == pytest.approx(
        kept["val_loss"], abs=1e-6)  # the raw model: the uncalibrated loss


def test_a_class_bias_moves_the_predictors_mean_probabilities_to_the_rates_not_the_epoch():
    """fit(class_bias=True): the same training and kept epoch; the predictor adds the
    kept epoch's bias, so on the validation rows each class's mean probability equals
    its (Laplace-smoothed) share."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(600, 6)).astype(np.float32)
    y = np.minimum((X[:, 0] + rng.normal(size=600) > 0.9).astype(int) + (X[:, 1] > 1.2), 2)
    train, val = (X[:400], y[:400]), (X[400:], y[400:])
    options = {"val_data": val, "epochs": 6, "batch_size": 32, "log": "none"}
    plain = fit(tabular_mlp(6, 3, (32,), seed=0), train, **options)
    biased = fit(tabular_mlp(6, 3, (32,), seed=0), train, class_bias=True, **options)
    assert plain.class_bias is None and len(biased.class_bias) == 3
    assert biased.best_epoch == plain.best_epoch
    assert biased.history.series("calibrated_val_loss") == plain.history.series(
        "calibrated_val_loss")
    with torch.no_grad():
        p = biased.predictor(torch.as_tensor(val[0])).softmax(1).double().numpy()
    n, counts = len(val[1]), np.bincount(val[1], minlength=3)
    own = (n + 1) / (n + 2)
    np.testing.assert_allclose(p.mean(0), (counts * own + (n - counts) * (1 - own) / 2) / n,
                               atol=1e-5)


def test_keep_best_on_a_maximized_metric_and_the_predictor_standardizes():
    train, val = _overfitting_problem()
    res = fit(tabular_mlp(10, 2, (64,)), train, val_data=val, epochs=8, batch_size=16,
              lr=1e-2, tricks=Tricks.all(), log="none", keep_best="balanced_accuracy")
    accs = res.history.series("balanced_accuracy")
    assert res.best_epoch == int(np.argmax(accs)) + 1 and res.best_value == max(accs)
    assert isinstance(res.predictor[0], torch.nn.Module) and res.predictor[1] is res.model


def test_patience_stops_early_and_a_resumed_stopped_run_stays_stopped(tmp_path):
    train, val = _overfitting_problem()
    kwargs = dict(val_data=val, epochs=60, batch_size=16, lr=1e-2, tricks=Tricks.none(),
                  log="none", patience=3, checkpoint_dir=tmp_path)
    res = fit(tabular_mlp(10, 2, (64,)), train, **kwargs)
    n = len(res.history.epochs)
    assert n < 60 and n - res.best_epoch == 3
    again = fit(tabular_mlp(10, 2, (64,)), train, **kwargs, resume=True)
    assert len(again.history.epochs) == n and again.best_epoch == res.best_epoch
    for k, v in res.model.state_dict().items():
        assert torch.equal(v, again.model.state_dict()[k])


def test_keep_best_errors_name_what_is_recorded():
    train, val = _overfitting_problem()
    with pytest.raises(ValueError, match=r"'roc_aucc' is not recorded .*val_loss.*accuracy") \
            as error:
        fit(tabular_mlp(10, 2), train, val_data=val, epochs=1, log="none", keep_best="roc_aucc")
    assert "epoch," not in str(error.value)  # the epoch number is not a metric
    with pytest.raises(ValueError, match="keep_best: expected"):
        fit(tabular_mlp(10, 2), train, epochs=1, log="none", keep_best=("val_loss", "down"))
    with pytest.raises(ValueError, match="patience: early stopping needs keep_best"):
        fit(tabular_mlp(10, 2), train, epochs=1, log="none", patience=2)
    with pytest.raises(ValueError, match="^patience: expected an integer >= 1, got 0$"):
        fit(tabular_mlp(10, 2), train, val_data=val, epochs=1, log="none", patience=0)


class _NotAState:
    """An object a full unpickler would rebuild; a checkpoint never holds one."""


def test_resume_refuses_other_settings_and_what_is_not_a_checkpoint(tmp_path):
    X, y = _toy()
    options = dict(epochs=1, checkpoint_dir=tmp_path, log="none", resume=True)
    fit(tabular_mlp(5, 3, (8,), seed=0), (X, y), batch_size=50, seed=0, **options)
    with pytest.raises(ValueError, match="^resume: the checkpoint was written with other "
                                         "batch_size, seed; resume with the same data and "
                                         "settings, or start a new run$"):
        fit(tabular_mlp(5, 3, (8,), seed=0), (X, y), batch_size=40, seed=1, **options)
    torch.save(_NotAState(), tmp_path / "checkpoint.pt")  # needs weights_only=False to load
    with pytest.raises(ValueError, match=r"^checkpoint_dir: .*checkpoint\.pt is not a "
                                         "checkpoint written by bagoftricks, or it is "
                                         "corrupted$"):
        fit(tabular_mlp(5, 3, (8,), seed=0), (X, y), batch_size=50, seed=0, **options)


def test_fit_leaves_the_callers_threads_rng_and_flags_as_found():
    train, val = _overfitting_problem()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = tabular_mlp(10, 2)
        rng = torch.random.get_rng_state()
        flags = (torch.get_default_dtype(), torch.is_grad_enabled(),
                 torch.are_deterministic_algorithms_enabled())
        fit(model, train, val_data=val, epochs=2, tricks=Tricks.all(), log="none")
        assert torch.get_num_threads() == 1  # the numba kernel used to reset it to 2
        assert torch.equal(torch.random.get_rng_state(), rng)
        assert flags == (torch.get_default_dtype(), torch.is_grad_enabled(),
                         torch.are_deterministic_algorithms_enabled())
    finally:
        torch.set_num_threads(threads)


def test_fit_standardizes_with_a_scale_floor():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(400, 4)).astype(np.float32) * [10.0, 30.0, 20.0, 1.0]
    X[:, 3] = 0.0
    X[:2, 3] = 16.0  # a pixel blank in 99.5% of the images (std 1.1; the median 20)
    y = (X[:, 0] > 0).astype(np.int64)
    res = fit(tabular_mlp(4, 2), (X, y), epochs=1, tricks=Tricks(standardize=True),
              log="none")
    std = torch.as_tensor(X, dtype=torch.float64).std(0, correction=0)
    expected = torch.clamp(std, min=0.25 * std.quantile(0.5).item())
    torch.testing.assert_close(res.standardizer.scale, expected, rtol=1e-5, atol=0)
    assert res.standardizer.scale[3] > 3 * std[3]  # floored; the others are their std


def test_resuming_a_finished_run_trains_no_more_and_the_predictor_is_the_bare_model(tmp_path):
    X, y = _toy()
    options = dict(epochs=2, batch_size=50, checkpoint_dir=tmp_path, log="none", seed=0,
                   tricks=Tricks.none())
    done = fit(tabular_mlp(5, 3, (8,), seed=0), (X, y), **options)
    again = fit(tabular_mlp(5, 3, (8,), seed=1), (X, y), **options, resume=True)
    assert again.history.epochs == done.history.epochs
    for a, b in zip(done.model.parameters(), again.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert done.predictor is done.model  # no standardizer, trained under the true prior


def test_more_bad_settings_are_named():
    X, y = _toy()
    with pytest.raises(ValueError, match="^loss: expected one of"):
        fit(tabular_mlp(5, 3), (X, y), epochs=1, log="none", loss="hinge")
    with pytest.raises(ValueError, match="^log: expected 'auto', 'bar', 'lines' or 'none', "
                                         "got 'loud'$"):
        fit(tabular_mlp(5, 3), (X, y), epochs=1, log="loud")
    with pytest.raises(ValueError, match="^tricks: the plateau scheduler needs val_data or "
                                         r"the loss accumulation trick \(a loss to watch\)$"):
        fit(tabular_mlp(5, 3), (X, y), epochs=1, log="none",
            tricks=Tricks.none().plus("plateau").without("accumulate"))


def test_the_best_epoch_keeps_the_first_of_equal_values_and_skips_nan():
    from bagoftricks.loop.best import BestEpoch

    model, best = torch.nn.Linear(1, 1), BestEpoch("val_loss", "min", patience=3)
    assert not best.update({"epoch": 1, "val_loss": float("nan")}, model)
    assert best.epoch is None and best.stale == 1
    best.update({"epoch": 2, "val_loss": 0.5}, model)
    best.update({"epoch": 3, "val_loss": 0.5}, model)
    assert best.epoch == 2 and best.stale == 1


def test_a_foreign_torch_file_is_refused_as_another_runs_checkpoint(tmp_path):
    X, y = _toy()
    torch.save({"model": {}}, tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match="^resume: the checkpoint was written with other lr, "):
        fit(tabular_mlp(5, 3), (X, y), epochs=1, log="none", checkpoint_dir=tmp_path,
            resume=True)


def test_bias_init_on_a_regression_head_starts_at_the_target_mean():
    X, y = _toy(regression=True)
    res = fit(tabular_mlp(5, 1), (X, y), epochs=1, lr=1e-12, log="none", keep_best=None,
              tricks=Tricks.none().plus("bias_init"))
    head = [m for m in res.model.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert head.bias.item() == pytest.approx(float(np.mean(y)), abs=1e-6)


def test_zero_epochs_is_refused():
    with pytest.raises(ValueError, match="^epochs: expected an integer >= 1, got 0$"):
        fit(tabular_mlp(5, 3), _toy(), epochs=0, log="none")


def test_batch_size_zero_a_changed_loss_and_the_default_log(tmp_path, capsys):
    X, y = _toy()
    with pytest.raises(ValueError, match="^batch_size: expected an integer >= 1, got 0$"):
        fit(tabular_mlp(5, 3), (X, y), epochs=1, batch_size=0, log="none")
    fit(tabular_mlp(5, 3), (X, y), epochs=1, checkpoint_dir=tmp_path, log="none")
    with pytest.raises(ValueError, match="^resume: the checkpoint was written with other "
                                         "loss;"):
        fit(tabular_mlp(5, 3), (X, y), epochs=1, checkpoint_dir=tmp_path, log="none",
            resume=True, loss="mse")
    fit(tabular_mlp(5, 3), (X, y), epochs=1)  # the default log: lines when not a terminal
    assert capsys.readouterr().err.startswith("epoch   1/1")


def test_fit_can_standardize_by_scaling_only():
    rng = np.random.default_rng(5)
    X = (rng.normal(size=(300, 3)) * [5.0, 1.0, 20.0] + [100.0, -3.0, 7.0]).astype(np.float32)
    y = (X[:, 0] > 100).astype(np.int64)
    tricks = [*Tricks.none().build(), Standardization(with_mean=False, scale_floor=1.0)]
    res = fit(tabular_mlp(3, 2), (X, y), epochs=1, tricks=tricks, log="none")
    std = torch.as_tensor(X, dtype=torch.float64).std(0, correction=0)
    torch.testing.assert_close(res.standardizer.scale, std.clamp(min=std.median().item()),
                               rtol=1e-5, atol=0)
    first = res.predictor[0]  # the predictor's standardization: divided, not centered
    torch.testing.assert_close(first(torch.as_tensor(X)),
                               torch.as_tensor(X) / res.standardizer.scale.float())


@pytest.mark.parametrize("shape", [(300, 12), (300, 2, 6)])
def test_fit_standardizes_images_and_signals_per_channel(shape):
    rng = np.random.default_rng(6)
    X = rng.normal(size=shape) * 3.0 + 10.0
    if len(shape) == 3:
        X[:, 1] = X[:, 1] * 50 - 400  # a second channel on another scale
    X[:, ..., 0] = 0.0  # a position blank in all rows but one (digits' border pixels)
    X[7, ..., 0] = 30.0
    X = X.astype(np.float32)
    y = (X.reshape(len(X), -1)[:, 1] > 10).astype(np.int64)
    model = torch.nn.Sequential(torch.nn.Flatten(), tabular_mlp(12, 2))
    res = fit(model, (X, y), epochs=1, tricks=Tricks(standardize="channel", balance=None),
              log="none")
    x64 = torch.as_tensor(X, dtype=torch.float64)
    values = x64.reshape(-1, 1) if len(shape) == 2 else x64.transpose(0, 1).reshape(2, -1).T
    torch.testing.assert_close(res.standardizer.mean, values.mean(0))
    torch.testing.assert_close(res.standardizer.std, values.std(0, correction=0))
    assert res.standardizer.dim == (None if len(shape) == 2 else 1)
    out = res.predictor[0](torch.as_tensor(X))  # the rare stroke stays in range
    assert out.abs().max() < 8
    per_feature = fit(tabular_mlp(12, 2), (X.reshape(300, 12), y), epochs=1, log="none",
                      tricks=Tricks(standardize=True, balance=None))
    assert per_feature.standardizer.mean.shape == (12,)
    assert per_feature.predictor[0](torch.as_tensor(X.reshape(300, 12))).abs().max() > 15


@pytest.mark.parametrize("make, match", [
    (lambda: Tricks(standardize="pixel"), r"^tricks.standardize: expected True, False or one "
                                          r"of \('feature', 'channel'\), got 'pixel'$"),
    (lambda: Standardization(per="row"), r"^per: expected one of 'feature', 'channel', got "
                                         r"'row'$"),
])
def test_standardize_options_are_checked(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_validation_is_scored_under_the_prior_val_data_follows():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(400, 4)).astype(np.float32)
    y = np.minimum((X[:, 0] > 0.8) + (X[:, 1] > 1.0) * 2, 2).astype(np.int64)  # imbalanced
    val = (X[:150], y[:150])
    res = fit(tabular_mlp(4, 3), (X[150:], y[150:]), val_data=val, epochs=3, log="none",
              keep_best=None, val_prior="balanced", tricks=Tricks(balance=None))
    with torch.no_grad():
        log_p = res.predictor_for("balanced")(torch.as_tensor(val[0])).log_softmax(1)
    nll = -log_p[torch.arange(150), torch.as_tensor(val[1])].mean().item()
    assert res.history.epochs[-1]["calibrated_val_loss"] == pytest.approx(nll, rel=1e-5)
    plain = fit(tabular_mlp(4, 3), (X[150:], y[150:]), val_data=val, epochs=3, log="none",
                keep_best=None, tricks=Tricks(balance=None))
    assert plain.history.epochs[-1]["val_loss"] != res.history.epochs[-1]["val_loss"]
    torch.testing.assert_close(plain.model.state_dict(), res.model.state_dict())  # (scoring)


@pytest.mark.parametrize("kwargs, match", [
    ({"val_prior": "balanced", "val_data": None}, "^val_prior: only for a classifier given "),
    ({"val_prior": "uniform"}, "^val_prior: expected None, 'balanced' or 2 class "),
    ({"val_prior": [0.5, 0.3, 0.2]}, "^val_prior: expected 2 class probabilities, got 3$"),
    ({"val_prior": [0.0, 1.0]}, "^val_prior: "),
])
def test_a_bad_validation_prior_is_one_error(kwargs, match):
    X = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    y = np.arange(40) % 2
    options = {"val_data": (X[:10], y[:10]), **kwargs}
    with pytest.raises(ValueError, match=match):
        fit(tabular_mlp(3, 2), (X, y), epochs=1, log="none", **options)
    for option in ({"val_prior": "balanced"}, {"class_bias": True}):
        name = next(iter(option))
        with pytest.raises(ValueError, match=f"^{name}: only for a classifier given val_data"):
            fit(tabular_mlp(3, 1), (X, y.astype(np.float32)),
                val_data=(X, y.astype(np.float32)), epochs=1, log="none", **option)
    with pytest.raises(ValueError, match="^class_bias: only for a classifier given val_data"):
        fit(tabular_mlp(3, 2), (X, y), epochs=1, log="none", class_bias=True)


def test_a_checkpoint_without_the_class_bias_resumes_only_without_it(tmp_path):
    X, y = _toy()
    options = dict(val_data=(X[:20], y[:20]), checkpoint_dir=tmp_path, log="none")
    fit(tabular_mlp(5, 3, (8,), seed=0), (X, y), epochs=1, **options)
    with pytest.raises(ValueError, match="^resume: the checkpoint was written with other "
                                         "class_bias;"):
        fit(tabular_mlp(5, 3, (8,), seed=0), (X, y), epochs=2, resume=True, class_bias=True,
            **options)
    res = fit(tabular_mlp(5, 3, (8,), seed=0), (X, y), epochs=2, resume=True, **options)
    assert len(res.history.epochs) == 2 and res.class_bias is None


@pytest.mark.parametrize("outputs", [2, 5])
def test_a_model_with_other_than_one_output_a_class_is_one_error(outputs):
    X = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    with pytest.raises(ValueError, match=f"^model: {outputs} outputs for the 3 classes of "
                                         r"the labels \(0 to 2\); give it one output a class$"):
        fit(tabular_mlp(4, outputs), (X, np.arange(30) % 3), epochs=1, log="none")
    with pytest.raises(ValueError, match=f"^model: {outputs} outputs for the 3 classes"):
        fit(tabular_mlp(4, outputs), (np.tile(X, (20, 1)), np.arange(600) % 3), epochs=1,
            log="none", lr="auto", batch_size=2)  # in the range test first
