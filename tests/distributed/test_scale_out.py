"""The reference loop and bias initialization under torch.distributed (2 gloo ranks)."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bagoftricks import bias_for

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
import scenarios  # noqa: E402

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(600)]


@pytest.mark.parametrize("kind, y", [
    ("softmax", np.random.default_rng(0).choice(5, 301, p=[.6, .2, .1, .1, 0]).tolist()),
    ("sigmoid", (np.random.default_rng(1).random(200) < 0.05).astype(int).tolist()),
    ("linear", np.random.default_rng(2).normal(3, 2, 150).tolist()),
])
def test_bias_from_sharded_labels_equals_single_process(kind, y):
    results = harness.run("bias_sharded", 2, y=y, kind=kind)
    single = bias_for(y, kind, dtype=torch.float64).numpy()
    for r in results:
        np.testing.assert_allclose(r, single, rtol=1e-12, atol=1e-12)


def test_weighted_bias_from_shards_sums_the_weights_in_float64():
    rng = np.random.default_rng(3)
    y = (rng.random(301) < 0.1).astype(int).tolist()
    w = rng.uniform(1e6, 1e7, 301).tolist()  # a total of 1.6e9: float32 would round it
    results = harness.run("bias_sharded", 2, y=y, kind="sigmoid", w=w)
    single = bias_for(y, "sigmoid", sample_weight=w, dtype=torch.float64).numpy()
    for r in results:
        np.testing.assert_allclose(r, single, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("balance, n, dataset", [
    ("logit_adjust", 240, False), ("oversample", 240, False), ("weights", 237, False),
    ("logit_adjust", 237, False), ("weights", 237, True)])
def test_two_process_fit_matches_one_process_per_epoch(balance, n, dataset):
    # 237 rows in batches of 16: the last global batch (13) splits 7/6 over the ranks, so
    # the per-rank loss scaling is not 1 (with class weights: an all-reduce of the weights);
    # dataset=True: the same through a map-style Dataset and a DataLoader
    two = harness.run("fit_run", 2, balance=balance, n=n, dataset=dataset)
    one = scenarios.fit_run(0, 1, balance=balance, n=n, dataset=dataset)
    assert two[0]["train"] == two[1]["train"]
    np.testing.assert_allclose(two[0]["train"], one["train"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(two[0]["val"], one["val"], rtol=0, atol=1e-5)
    for a, b in zip(two[0]["weights"], one["weights"], strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-6)


def test_two_processes_find_the_one_process_lr():
    """fit(lr="auto") on 2 ranks: every rank sweeps the same seeded rows and they train
    at one LR, the one a single process finds."""
    two = harness.run("fit_run", 2, lr="auto", epochs=1)
    one = scenarios.fit_run(0, 1, lr="auto", epochs=1)
    assert two[0]["lr"] == two[1]["lr"] == one["lr"] != 1e-3  # (1e-3: the fallback)
    np.testing.assert_allclose(two[0]["train"], one["train"], rtol=0, atol=1e-5)


def test_two_process_run_killed_mid_epoch_resumes_to_the_same_weights(tmp_path):
    full = harness.run("fit_run", 2, ckpt=str(tmp_path / "a"))
    harness.run("fit_run", 2, ckpt=str(tmp_path / "b"), kill_at=40, expect_kill=True)
    assert (tmp_path / "b" / "checkpoint.pt").exists()
    resumed = harness.run("fit_run", 2, ckpt=str(tmp_path / "b"), resume=True)
    assert resumed[0]["train"] == full[0]["train"]
    assert resumed[0]["weights"] == full[0]["weights"] == resumed[1]["weights"]


def test_fit_command_with_nproc_2_through_torchrun(tmp_path):
    import subprocess

    import pandas as pd

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200) * 50})
    df["y"] = np.where(df.a + df.b / 50 > 1, "yes", "no")
    df.to_csv(tmp_path / "d.csv", index=False)
    out = tmp_path / "model"
    proc = subprocess.run([sys.executable, "-m", "bagoftricks.cli", "fit", str(tmp_path / "d.csv"),
                           "--target", "y", "--out", str(out), "--epochs", "2", "--nproc", "2",
                           "--quiet"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "model.pt").exists() and not Path(f"{out}.partial").exists()
    assert proc.stdout.count("model written") == 1  # only rank 0 speaks


@pytest.mark.parametrize("family, empty_rank", [("binomial", False), ("poisson", False),
                                                ("poisson", True)])
def test_two_process_streamed_glm_equals_the_one_process_fit(family, empty_rank):
    from bagoftricks.linear import GLM

    X, y, w, off, _ = scenarios.glm_problem(family)
    ref = GLM(family).fit(X, y, sample_weight=w, offset=off)
    ranks = harness.run("glm_blocks", 2, family=family, empty_rank=empty_rank)
    assert ranks[0] == ranks[1]  # every rank holds the same fit
    np.testing.assert_allclose(ranks[0]["params"], [ref.intercept_, *ref.coef_], rtol=1e-10)
    np.testing.assert_allclose(ranks[0]["bse"], ref.bse_, rtol=1e-9)
    assert ranks[0]["deviance"] == pytest.approx(ref.deviance_, rel=1e-10)
    assert ranks[0]["llf"] == pytest.approx(ref.llf_, rel=1e-10)


def test_glm_command_with_nproc_2_prints_the_one_process_fit(tmp_path):
    import subprocess

    import pandas as pd

    rng = np.random.default_rng(3)
    n = 140_000  # three record batches of at most 65,536 rows: two on rank 0, one on 1
    df = pd.DataFrame({"a": rng.normal(size=n), "w": rng.uniform(0.5, 2, n)})
    df["y"] = (rng.random(n) < 1 / (1 + np.exp(-df.a))).astype(int)
    path = tmp_path / "d.parquet"
    df.to_parquet(path)
    exe = [sys.executable, "-m", "bagoftricks.cli", "glm", str(path), "--target", "y",
           "--weight", "w"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run(exe, capture_output=True, text=True, timeout=120, env=env)
    two = subprocess.run([*exe, "--nproc", "2"], capture_output=True, text=True, timeout=180,
                         env=env)
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-2000:]
    assert "a " in one.stdout and two.stdout == one.stdout
