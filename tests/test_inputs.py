"""Where ``fit`` trains: Dataset inputs, devices, precision and compilation (CPU here;
the CUDA tests run with ``make gpu-check`` on a machine with a GPU)."""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from bagoftricks import Tricks, distributed, fit
from bagoftricks.loop.inputs import as_input, device_of, resolve_device
from bagoftricks.models import tabular_mlp
from train_worker import Rows

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


def _data(n=200, seed=1):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 5, generator=g) * torch.tensor([1.0, 10, 100, 1, 1])
    y = (X[:, 0] + X[:, 1] / 10 > 0.5).long() + (X[:, 2] > 80).long()
    return X, y


def _fit(train, val, **kwargs):
    model = tabular_mlp(5, 3, (16,), seed=0)
    options = {"epochs": 3, "batch_size": 32, "seed": 2, "log": "none", "keep_best": None,
               **kwargs}
    return fit(model, train, val_data=val, **options)


def _history(result):
    return [{k: v for k, v in e.items() if k != "seconds"} for e in result.history.epochs]


@pytest.mark.parametrize("balance", ["oversample", "weights", "logit_adjust"])
def test_a_dataset_trains_exactly_like_its_tensors(balance):
    X, y = _data()
    Xv, yv = _data(80, seed=2)
    tricks = Tricks.all(balance=balance)
    tensors = _fit((X, y), (Xv, yv), tricks=tricks)
    dataset = _fit(Rows(X, y), Rows(Xv, yv), tricks=tricks)  # labels by one pass
    assert _history(dataset) == _history(tensors)
    for a, b in zip(dataset.model.parameters(), tensors.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_the_lr_range_test_sweeps_a_dataset_as_its_tensors():
    X, y = _data()
    tensors = _fit((X, y), None, lr="auto")
    assert tensors.history.epochs[0]["lr"] != 1e-3  # a suggestion, not the fallback
    for data in (Rows(X, y), Subset(TensorDataset(X, y), range(len(y)))):
        assert _history(_fit(data, None, lr="auto")) == _history(tensors)


def test_dataloader_workers_and_labels_given():
    X, y = _data()
    plain = _fit(Rows(X, y), None)
    workers = _fit(Rows(X, y), None, labels=y,
                   loader_options={"num_workers": 1, "persistent_workers": True})
    assert _history(workers) == _history(plain)


def test_tensor_datasets_and_subsets_take_the_fast_path_without_copies():
    X, y = _data(300)
    rows = torch.randperm(300, generator=torch.Generator().manual_seed(0))
    tr, va = rows[:200].sort().values, rows[200:].sort().values
    tensors = _fit((X[tr], y[tr]), (X[va], y[va]))
    subsets = _fit(Subset(TensorDataset(X, y), tr.tolist()),
                   Subset(TensorDataset(X, y), va.tolist()))
    assert _history(subsets) == _history(tensors)
    for a, b in zip(subsets.model.parameters(), tensors.model.parameters(), strict=True):
        assert torch.equal(a, b)
    data = as_input(Subset(TensorDataset(X, y), tr.tolist()), None, torch.device("cpu"),
                    None, "train_data")
    assert data.X.data_ptr() == X.data_ptr()  # the rows are read in place
    with pytest.raises(ValueError, match="holds its labels"):
        _fit(TensorDataset(X, y), None, labels=y)


def test_images_are_standardized_per_channel():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(64, 3, 4, 4, generator=g) * torch.tensor([1.0, 50, 0.1])[:, None, None]
    y = torch.arange(64) % 2
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 2))
    res = fit(model, (X, y), epochs=1, batch_size=16, log="none", keep_best=None,
              tricks=Tricks(standardize=True))
    assert res.standardizer.dim == 1
    torch.testing.assert_close(res.standardizer.mean.float(), X.mean((0, 2, 3)),
                               rtol=1e-5, atol=1e-5)
    signals = X.reshape(64, 3, 16)  # N x C x L (a 1-D convolution's input): per channel too
    res = fit(model, (signals, y), epochs=1, batch_size=16, log="none", keep_best=None,
              tricks=Tricks(standardize=True))
    assert res.standardizer.dim == 1 and res.standardizer.mean.shape == (3,)


def test_bf16_autocasts_the_forward_pass_on_the_cpu():
    X, y = _data()
    seen = []
    model = tabular_mlp(5, 3, (16,), seed=0)
    model[0].register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    standardized = Tricks(standardize=True)  # bf16 keeps 3 digits: inputs near 1
    res = fit(model, (X, y), epochs=2, batch_size=32, log="none", precision="bf16",
              keep_best=None, seed=2, tricks=standardized)
    assert set(seen) == {torch.bfloat16}
    full = _fit((X, y), None, epochs=2, tricks=standardized)
    assert abs(res.history.series("train_loss")[-1] - full.history.series("train_loss")[-1]) \
        < 0.05


def test_compile_gives_the_same_run():
    X, y = _data()
    eager = _fit((X, y), None, epochs=2)
    compiled = _fit((X, y), None, epochs=2, compile={"backend": "eager"})
    assert _history(compiled) == _history(eager)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"device": "banana"}, ValueError, "device: 'banana' is not a device"),
    ({"device": "cuda:7"}, ValueError, "device: 'cuda:7' is not available"),
    ({"precision": "8"}, ValueError, "precision: expected one of"),
    ({"precision": "16", "device": "cpu"}, ValueError, "needs a GPU; use 'bf16'"),
    ({"loader_options": {"workers": 2}}, ValueError, "loader_options: unknown"),
])
def test_bad_settings_are_one_clear_error(kwargs, error, match):
    if "cuda" in str(kwargs.get("device")) and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    X, y = _data()
    with pytest.raises(error, match=match):
        _fit(Rows(X, y), None, **kwargs)


def test_a_dataset_whose_labels_cannot_be_found():
    class Inputs(Dataset):
        def __len__(self):
            return 10

        def __getitem__(self, i):
            return torch.zeros(5)

    with pytest.raises(ValueError, match="pass labels="):
        _fit(Inputs(), None)
    with pytest.raises(ValueError, match="labels: only for a Dataset"):
        _fit(_data(), None, labels=torch.zeros(200))


def test_float16_retries_an_overflowed_batch_instead_of_losing_its_step(monkeypatch):
    """GradScaler starts at 2**16: on these unstandardized inputs torch skips 5 of the
    21 steps; fit computes those batches again at the lowered scale, so every batch
    steps and the run follows the float32 one (float16 autocast, here on the CPU)."""
    import importlib

    fit_module = importlib.import_module("bagoftricks.loop.fit")
    monkeypatch.setattr(fit_module, "check_precision",
                        lambda p, d: torch.float16 if p == "16" else None)
    steps = []
    original = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step",
                        lambda self, *a, **k: steps.append(1) or original(self, *a, **k))
    X, y = _data()
    Xv, yv = _data(80, seed=2)
    full = _fit((X, y), (Xv, yv), tricks=Tricks.none())
    steps.clear()
    half = _fit((X, y), (Xv, yv), tricks=Tricks.none(), precision="16")
    assert len(steps) == 3 * 7  # 200 rows in batches of 32, 3 epochs
    np.testing.assert_allclose(half.history.series("val_loss"),
                               full.history.series("val_loss"), atol=5e-3)


@pytest.fixture
def gpus(monkeypatch):
    """Pretend this machine has ``n`` CUDA devices (``gpus(n)``)."""
    def pretend(n):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
    return pretend


@pytest.mark.parametrize("n_gpus, local, device, expected", [
    (2, (2, 1), "auto", "cuda:1"),  # torchrun: each process its own GPU
    (2, (2, 1), "cuda", "cuda:1"),
    (1, (1, 0), "cuda", "cuda"),
    (2, (2, 1), "cuda:0", "cuda:0"),  # an index given is kept
    (0, (2, 1), "auto", "cpu"),
    (1, None, "auto", "cuda:0"),  # one process outside torchrun
])
def test_each_process_trains_on_its_own_gpu(gpus, monkeypatch, n_gpus, local, device,
                                            expected):
    gpus(n_gpus)
    for name, value in zip(("LOCAL_WORLD_SIZE", "LOCAL_RANK"), local or (None, None),
                           strict=True):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, str(value))
    assert resolve_device(device) == torch.device(expected)
    assert device_of(torch.nn.Identity()) == torch.device("cpu")  # nothing to move


def test_more_processes_than_gpus(gpus, monkeypatch):
    gpus(1)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.warns(UserWarning, match="2 processes on this machine but 1 CUDA device"):
        assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setenv("LOCAL_RANK", "1")
    with warnings.catch_warnings():  # the machine's first process said it
        warnings.simplefilter("error")
        assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="'cuda' with 2 processes on this machine needs a "
                                         "CUDA device each; there are 1"):
        resolve_device("cuda")
    monkeypatch.delenv("LOCAL_WORLD_SIZE")  # a launcher counting ahead
    with pytest.raises(ValueError, match="with 3 processes"):
        resolve_device("cuda", local_processes=3)


@pytest.mark.parametrize("device, backend", [(None, "gloo"), (torch.device("cpu"), "gloo"),
                                             (torch.device("cuda", 1), "nccl")])
def test_the_backend_follows_the_device(monkeypatch, device, backend):
    chosen = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: chosen.setdefault("device", d))
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group",
                        lambda b, timeout: chosen.setdefault("backend", b))
    assert distributed.init_from_env(device)
    assert chosen == ({"backend": backend} if backend == "gloo" else
                      {"backend": "nccl", "device": device})


@cuda
@pytest.mark.parametrize("precision", ["32", "bf16", "16"])
def test_cuda_training_matches_the_cpu_run(precision):
    X, y = _data()
    Xv, yv = _data(80, seed=2)
    cpu = _fit((X, y), (Xv, yv), device="cpu")
    seen = set()
    model = tabular_mlp(5, 3, (16,), seed=0)
    model.register_forward_pre_hook(lambda m, args: seen.add(args[0].device.type))
    gpu = fit(model, (X, y), val_data=(Xv, yv), epochs=3, batch_size=32, seed=2, log="none",
              keep_best=None, device="cuda", precision=precision)
    assert seen == {"cuda"}  # trained there, and given back where it was created
    assert next(gpu.model.parameters()).device.type == "cpu"
    tolerance = 1e-4 if precision == "32" else 0.05
    for a, b in zip(cpu.history.series("val_loss"), gpu.history.series("val_loss"), strict=True):
        assert abs(a - b) < tolerance


@cuda
def test_cuda_lr_range_test_runs_where_the_model_is():
    X, y = _data()
    res = _fit((X, y), None, device="cuda", lr="auto", epochs=1)
    assert res.history.epochs[0]["lr"] > 0


@cuda
def test_cuda_dataset_with_pinned_memory_and_workers():
    X, y = _data()
    res = _fit(Rows(X, y), Rows(*_data(80, seed=2)), device="cuda", precision="bf16",
               loader_options={"num_workers": 2, "pin_memory": True})
    assert res.history.series("val_loss")[-1] < res.history.series("val_loss")[0] + 0.1


def test_no_host_sync_per_step_on_the_gpu_path(monkeypatch):
    """Every trick on, with the clipping a GPU run uses (no .item()): the number of
    tensor-to-host reads made by bagoftricks' code must not grow with the number of
    steps (torch's optimizers read their CPU step counters: no device sync)."""
    from bagoftricks.centralize import clip_device_grads_
    from bagoftricks.loop import adapters

    monkeypatch.setattr(adapters, "_flat_gradients", lambda ctx: None)  # as off the CPU
    monkeypatch.setattr(adapters, "clip_grads_", clip_device_grads_)
    calls = []
    for name in ("item", "tolist", "numpy", "__bool__", "__float__", "__int__"):
        original = getattr(torch.Tensor, name)

        def spy(self, *args, _original=original, _name=name, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if f"{os.sep}bagoftricks{os.sep}" in caller:
                calls.append((_name, caller, sys._getframe(1).f_lineno))
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, spy)

    def syncs(n):
        X, y = _data(n)
        model = tabular_mlp(5, 3, (16,), seed=0)
        calls.clear()
        fit(model, (X, y), val_data=_data(40, seed=3), epochs=2, batch_size=32, log="none",
            tricks=Tricks.all())
        return len(calls)

    assert syncs(192) == syncs(384)  # 6 and 12 steps an epoch


def test_mps_where_there_is_none_is_one_error(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ValueError, match="^device: 'mps' is not available here"):
        resolve_device("mps")


def test_a_cuda_index_past_the_device_count_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match="^device: 'cuda:1' is not available here"):
        resolve_device("cuda:1")
