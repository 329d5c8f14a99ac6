"""The flat gradient buffer and its compiled clipping and centralization, against float64
NumPy and torch's per-tensor functions, and inside ``fit``."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from bagoftricks import Tricks, centralize_, clip_grad_norm_, fit
from bagoftricks.flat_grads import FlatGradients
from bagoftricks.kernels import centralize_flat_, clip_flat_
from bagoftricks.loop import adapters
from bagoftricks.models import tabular_mlp

shapes = st.lists(st.integers(1, 7), min_size=1, max_size=3).map(tuple)
dtypes = st.sampled_from([torch.float32, torch.float64])


def _params(shape_list, dtype, seed, scale=3.0):
    gen = torch.Generator().manual_seed(seed)
    params = [torch.zeros(s, dtype=dtype, requires_grad=True) for s in shape_list]
    for p in params:
        p.grad = (torch.randn(p.shape, generator=gen, dtype=torch.float64) * scale + 1).to(dtype)
    return params


@settings(max_examples=60, deadline=None)
@given(st.lists(shapes, min_size=1, max_size=5), dtypes, st.integers(0, 2**31),
       st.floats(1e-3, 1e3), st.floats(1e-4, 1e4))
def test_clip_matches_float64_numpy_and_torch(shape_list, dtype, seed, max_norm, scale):
    params = _params(shape_list, dtype, seed, scale)
    twins = [p.detach().clone().requires_grad_() for p in params]
    for p, t in zip(params, twins, strict=True):
        t.grad = p.grad.clone()
    flat = np.concatenate([p.grad.double().numpy().ravel() for p in params])
    norm = np.sqrt(np.sum(flat ** 2))
    expected = flat * min(1.0, max_norm / (norm + 1e-6))
    grads = FlatGradients(params)
    assert grads.clip_(max_norm) == pytest.approx(norm, rel=1e-12)
    got = np.concatenate([p.grad.double().numpy().ravel() for p in params])
    tol = 1e-6 if dtype == torch.float32 else 1e-13
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * np.abs(expected).max())
    torch_norm = clip_grad_norm_(twins, max_norm)
    assert float(torch_norm) == pytest.approx(norm, rel=1e-5)
    for p, t in zip(params, twins, strict=True):
        torch.testing.assert_close(p.grad, t.grad, rtol=2e-6, atol=1e-7)


@settings(max_examples=60, deadline=None)
@given(st.lists(shapes, min_size=1, max_size=5), dtypes, st.integers(0, 2**31))
def test_centralize_matches_float64_numpy_and_leaves_vectors_alone(shape_list, dtype, seed):
    params = _params(shape_list, dtype, seed)
    expected = []
    for p in params:
        g = p.grad.double().numpy()
        if g.ndim > 1:
            rows = g.reshape(g.shape[0], -1)
            g = (rows - rows.mean(1, keepdims=True)).reshape(g.shape)
        expected.append(g)
    FlatGradients(params).centralize_()
    tol = 1e-6 if dtype == torch.float32 else 1e-13
    for p, ref in zip(params, expected, strict=True):
        np.testing.assert_allclose(p.grad.double().numpy(), ref, rtol=tol, atol=tol * 10)


def test_kernels_on_a_plain_array():
    g = np.array([3.0, 4.0, 1.0, 2.0, 3.0, 10.0], dtype=np.float32)
    assert clip_flat_(g, 1e9) == pytest.approx(np.sqrt(139.0))
    centralize_flat_(g, np.array([0, 2]), np.array([1, 2]), np.array([2, 2]))
    np.testing.assert_array_equal(g, [-0.5, 0.5, -0.5, 0.5, -3.5, 3.5])
    assert clip_flat_(g, 1.0) == pytest.approx(np.sqrt(25.5))
    assert np.linalg.norm(g) == pytest.approx(1.0, rel=1e-6)
    edge = np.array([3e-4, 4e-4])  # a norm equal to the limit still takes torch's 1e-6
    clip_flat_(edge, 5e-4)
    np.testing.assert_allclose(edge, np.array([3e-4, 4e-4]) * 5e-4 / (5e-4 + 1e-6),
                               rtol=1e-14)


def _mlp_step(model, grads, x, y):
    grads.zero_()
    F.cross_entropy(model(x), y).backward()


def test_a_loop_on_the_buffer_equals_the_per_tensor_loop():
    gen = torch.Generator().manual_seed(0)
    X, y = torch.randn(96, 5, generator=gen), torch.randint(0, 3, (96,), generator=gen)
    a, b = tabular_mlp(5, 3, (8, 4), seed=1), tabular_mlp(5, 3, (8, 4), seed=1)
    opt_a, opt_b = (torch.optim.SGD(m.parameters(), lr=0.5) for m in (a, b))
    grads = FlatGradients(a.parameters())
    for step in range(6):
        xb, yb = X[step * 16:(step + 1) * 16], y[step * 16:(step + 1) * 16]
        _mlp_step(a, grads, xb, yb)
        grads.clip_(0.5)
        grads.centralize_()
        opt_a.step()
        opt_b.zero_grad()
        F.cross_entropy(b(xb), yb).backward()
        clip_grad_norm_(b.parameters(), 0.5)
        centralize_(b)
        opt_b.step()
        for p, q in zip(a.parameters(), b.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-6)
    assert grads.views is not None  # the buffer was in use
    assert all(p.grad is v for p, v in zip(a.parameters(), grads.views, strict=True))


def test_before_the_buffer_zero_sets_none_and_a_missing_gradient_falls_back_for_good():
    model = nn.ModuleDict({"used": nn.Linear(3, 2), "unused": nn.Linear(3, 2)})
    grads = FlatGradients(model.parameters())
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    grads.zero_()
    assert all(p.grad is None for p in model.parameters())
    model["used"](torch.randn(4, 3)).sum().backward()
    norm = grads.clip_(1e9)  # falls back: the unused layer has no gradient
    expected = torch.linalg.vector_norm(torch.cat([p.grad.ravel() for p in
                                                   model["used"].parameters()]))
    assert norm == pytest.approx(float(expected), rel=1e-6)
    grads.centralize_()
    assert model["used"].weight.grad.sum(1).abs().max() < 1e-6
    assert grads.views is None and not grads.usable
    assert model["unused"].weight.grad is None  # never given a zero gradient


def test_a_replaced_gradient_is_used_that_step_and_put_back_at_zero():
    model = nn.Linear(3, 2)
    grads = FlatGradients(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    grads.clip_(1e9)  # makes the buffer
    view = model.weight.grad
    model.weight.grad = torch.full((2, 3), 2.0)  # a user's hook replacing it
    grads.centralize_()
    torch.testing.assert_close(model.weight.grad, torch.zeros(2, 3))  # the new one's
    grads.zero_()
    assert model.weight.grad is view and torch.equal(view, torch.zeros(2, 3))


def test_bad_input_is_one_error_naming_the_argument():
    with pytest.raises(ValueError, match=r"params: expected contiguous CPU tensors of one "
                                         r"float dtype that require a gradient, got "
                                         r"\['cpu torch.float32', 'cpu torch.float64'\]"):
        FlatGradients([torch.zeros(2, requires_grad=True),
                       torch.zeros(2, dtype=torch.float64, requires_grad=True)])
    with pytest.raises(ValueError, match="params: expected .* got none"):
        FlatGradients([torch.zeros(2, dtype=torch.int64)])
    channels_last = torch.zeros(2, 3, 2, 2).to(memory_format=torch.channels_last)
    with pytest.raises(ValueError, match=r"got \['cpu torch.float32 non-contiguous'\]"):
        FlatGradients([channels_last.requires_grad_()])
    grads = FlatGradients([torch.zeros(2, 2, requires_grad=True)])
    with pytest.raises(ValueError, match=r"params: tensors of shapes \[\(3, 3\)\] are not in"):
        grads.rows_of([torch.zeros(3, 3, requires_grad=True)])


def test_fit_uses_the_buffer_on_the_cpu_and_trains_as_the_per_tensor_path(monkeypatch):
    gen = torch.Generator().manual_seed(0)
    X, y = torch.randn(128, 6, generator=gen), torch.randint(0, 3, (128,), generator=gen)
    tricks = Tricks(balance=None, clip_norm=0.05, centralize=True)
    made = []
    original = adapters._flat_gradients
    monkeypatch.setattr(adapters, "_flat_gradients",
                        lambda ctx: made.append(original(ctx)) or made[-1])
    flat = fit(tabular_mlp(6, 3, (8,), seed=0), (X, y), epochs=2, batch_size=32,
               tricks=tricks, log="none")
    assert made and all(isinstance(g, FlatGradients) and g.views is not None for g in made)
    monkeypatch.setattr(adapters, "_flat_gradients", lambda ctx: None)  # as off the CPU
    per_tensor = fit(tabular_mlp(6, 3, (8,), seed=0), (X, y), epochs=2, batch_size=32,
                     tricks=tricks, log="none")
    for p, q in zip(flat.model.parameters(), per_tensor.model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert flat.history.epochs[-1]["train_loss"] == pytest.approx(
        per_tensor.history.epochs[-1]["train_loss"], rel=1e-5)


def test_fits_default_optimizer_is_torchs_adam_fused():
    from bagoftricks.loop.fit import adam

    a, b = tabular_mlp(4, 2, (6,), seed=0), tabular_mlp(4, 2, (6,), seed=0)
    fused, plain = adam(a.parameters(), 1e-2), torch.optim.Adam(b.parameters(), lr=1e-2)
    assert fused.defaults["fused"] and isinstance(fused, torch.optim.Adam)
    x = torch.randn(16, 4)
    for _ in range(5):
        for model, opt in ((a, fused), (b, plain)):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    complex_ = [torch.zeros(2, dtype=torch.complex64, requires_grad=True)]  # no kernel
    assert not adam([torch.zeros(2, requires_grad=True)] + complex_, 1e-2).defaults["fused"]
    frozen_ints = [torch.zeros(2, dtype=torch.int64)]  # never stepped: no obstacle
    assert adam([torch.zeros(2, requires_grad=True)] + frozen_ints, 1e-2).defaults["fused"]


def _fit_both_paths(monkeypatch, make_optimizer, trick_types=(adapters.Centralization,)):
    """Train twice, on the flat buffer and on the torch path (as off the CPU)."""
    gen = torch.Generator().manual_seed(1)
    X, y = torch.randn(96, 6, generator=gen), torch.randint(0, 3, (96,), generator=gen)
    results = []
    for flat in (True, False):
        if not flat:
            monkeypatch.setattr(adapters, "_flat_gradients", lambda ctx: None)
        model = tabular_mlp(6, 3, (8,), seed=0)
        tricks = [t() for t in trick_types]
        res = fit(model, (X, y), epochs=2, batch_size=32, tricks=tricks, log="none",
                  optimizer=lambda params, lr, m=model: make_optimizer(m, lr))
        results.append((res.model, tricks))
    return results


def test_centralization_with_coupled_weight_decay_keeps_the_papers_rule(monkeypatch):
    (flat, [trick]), (per_tensor, _) = _fit_both_paths(
        monkeypatch, lambda m, lr: torch.optim.SGD(m.parameters(), lr=0.5, weight_decay=0.1))
    assert trick.flat is None  # GC(grad + wd p): Centralized's path, not the buffer's
    for p, q in zip(flat.parameters(), per_tensor.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_centralization_on_the_buffer_skips_groups_that_opt_out(monkeypatch):
    def groups(model, lr):
        first, *rest = [m for m in model.modules() if isinstance(m, nn.Linear)]
        return torch.optim.SGD([{"params": first.parameters(), "centralize": False},
                                {"params": [p for m in rest for p in m.parameters()]}], lr=0.5)
    (flat, [trick]), (per_tensor, _) = _fit_both_paths(monkeypatch, groups)
    assert trick.flat is not None and len(trick.flat[1].params) == 1  # the head only
    for p, q in zip(flat.parameters(), per_tensor.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_fit_leaves_a_parameter_that_never_gets_a_gradient_untouched():
    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.net, self.spare = tabular_mlp(6, 3, (8,), seed=0), nn.Linear(3, 3)

        def forward(self, x):
            return self.net(x)
    model = Unused()
    before = model.spare.weight.detach().clone()
    gen = torch.Generator().manual_seed(2)
    X, y = torch.randn(64, 6, generator=gen), torch.randint(0, 3, (64,), generator=gen)
    res = fit(model, (X, y), epochs=2, batch_size=16, log="none",
              tricks=Tricks(balance=None, clip_norm=1.0, centralize=True))
    assert torch.equal(res.model.spare.weight, before) and res.model.spare.weight.grad is None
