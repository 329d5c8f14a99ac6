"""The chapter kernels on a GPU against float64 references and their CPU runs (skipped
without CUDA; ``make gpu-check`` runs them on a machine with one)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bagoftricks import LossAccumulator, RunningStandardizer, Tricks, centralize_, fit
from bagoftricks.centralize import clip_grads_
from bagoftricks.models import tabular_mlp

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


def test_cuda_standardizer_at_a_1e6_offset_equals_float64():
    rng = np.random.default_rng(0)
    x = (1e6 + rng.normal(size=(200_000, 4))).astype(np.float32)
    s = RunningStandardizer().fit(torch.from_numpy(x).cuda().split(65536))
    ref = x.astype(np.float64)
    np.testing.assert_allclose(s.std.cpu().numpy(), ref.std(0), rtol=1e-9)
    np.testing.assert_allclose(s.mean.cpu().numpy(), ref.mean(0), rtol=1e-12)


def test_cuda_clipping_and_centralization_equal_the_float64_reference():
    g = torch.Generator().manual_seed(0)
    grads = [torch.randn(shape, generator=g) * 3 for shape in [(64, 40), (64,), (10, 64),
                                                               (8, 3, 5, 5)]]
    ref = [t.double() for t in grads]
    for t in ref:
        if t.ndim > 1:
            t -= t.mean(dim=tuple(range(1, t.ndim)), keepdim=True)
    norm = torch.sqrt(sum((t ** 2).sum() for t in ref))
    ref = [t * min(1.0, 1.0 / (norm.item() + 1e-6)) for t in ref]
    params = [torch.nn.Parameter(torch.zeros_like(t, device="cuda")) for t in grads]
    for p, t in zip(params, grads, strict=True):
        p.grad = t.cuda()
    centralize_(params)
    total = clip_grads_([p.grad for p in params], 1.0)
    assert total.device.type == "cuda"
    assert total.item() == pytest.approx(norm.item(), rel=1e-5)
    for p, r in zip(params, ref, strict=True):
        torch.testing.assert_close(p.grad.cpu().double(), r, rtol=1e-5, atol=1e-6)


def test_cuda_loss_accumulator_sums_in_float64_on_the_device():
    acc = LossAccumulator()
    losses = torch.rand(1000, generator=torch.Generator().manual_seed(1)) * 1e3
    sizes = torch.randint(1, 512, (1000,), generator=torch.Generator().manual_seed(2))
    for loss, n in zip(losses.cuda(), sizes, strict=True):
        acc.update(loss, int(n))
    expected = np.average(losses.double().numpy(), weights=sizes.numpy())
    assert acc.compute() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("precision", ["32", "16"])  # float16: the loss scaler resumes too
def test_cuda_fit_with_every_trick_resumes_bit_identically(tmp_path, precision):
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(600, 6)) * [1, 10, 100, 1, 1, 1]).astype(np.float32)
    y = (X[:, 0] + 0.1 * X[:, 1] > 1.2).astype(np.int64)

    def run(epochs, folder, resume=False):
        return fit(tabular_mlp(6, 2, (16,), seed=0), (X[:480], y[:480]),
                   val_data=(X[480:], y[480:]), epochs=epochs, batch_size=32, lr=1e-2,
                   tricks=Tricks.all(), device="cuda", checkpoint_dir=folder, resume=resume,
                   log="none", keep_best=None, seed=3, precision=precision)

    full = run(4, tmp_path / "a")
    run(2, tmp_path / "b")
    resumed = run(4, tmp_path / "b", resume=True)
    assert full.history.series("train_loss") == resumed.history.series("train_loss")
    for a, b in zip(full.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_cuda_compiled_forward_equals_eager():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(256, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    runs = [fit(tabular_mlp(6, 2, (16,), seed=0), (X, y), epochs=2, batch_size=64,
                device="cuda", compile=c, log="none", keep_best=None)
            for c in (False, True)]
    np.testing.assert_allclose(runs[0].history.series("train_loss"),
                               runs[1].history.series("train_loss"), rtol=1e-4)


def test_cuda_fit_returns_the_model_where_it_was_given_and_the_predictor_follows():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 5)).astype(np.float32)
    y = (X[:, 0] > 1).astype(np.int64)  # imbalanced: the predictor shifts the prior back
    model = tabular_mlp(5, 2, (8,), seed=0)
    res = fit(model, (X, y), val_data=(X, y), epochs=2, batch_size=50, device="cuda",
              tricks=Tricks.all(balance="oversample"), log="none")
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    probabilities = res.predictor(torch.as_tensor(X)).softmax(1)
    assert probabilities.device.type == "cpu" and torch.isfinite(probabilities).all()
    on_gpu = res.predictor.cuda()(torch.as_tensor(X).cuda()).softmax(1)
    torch.testing.assert_close(on_gpu.cpu(), probabilities, rtol=1e-4, atol=1e-5)
    res = fit(tabular_mlp(5, 2, (8,), seed=0).cuda(), (X, y), epochs=1, device="cuda",
              tricks=Tricks.all(balance="oversample"), log="none")
    shifted = res.predictor_for([0.5, 0.5])(torch.as_tensor(X).cuda())  # all on the GPU
    assert shifted.device.type == "cuda" and torch.isfinite(shifted).all()
