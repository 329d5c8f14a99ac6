import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from bagoftricks import Centralized, centralize_, clip_grad_norm_

shapes = st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple)


def _reference(grad: np.ndarray) -> np.ndarray:
    g = grad.astype(np.float64)
    if g.ndim < 2:
        return g
    return g - g.reshape(g.shape[0], -1).mean(1).reshape((-1,) + (1,) * (g.ndim - 1))


@given(st.lists(shapes, min_size=1, max_size=5), st.integers(0, 2**31))
def test_matches_float64_reference_and_rows_sum_to_zero(shape_list, seed):
    gen = torch.Generator().manual_seed(seed)
    params = [torch.zeros(s, requires_grad=True) for s in shape_list]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen) * 3 + 1
    expected = [_reference(p.grad.numpy()) for p in params]
    centralize_(params)
    for p, ref in zip(params, expected, strict=True):
        np.testing.assert_allclose(p.grad.numpy(), ref, rtol=1e-5, atol=1e-5)
        if p.ndim > 1:
            assert np.allclose(p.grad.double().reshape(p.shape[0], -1).sum(1), 0, atol=1e-4)


def test_non_contiguous_gradient_and_one_d_untouched():
    w = torch.zeros(4, 6, requires_grad=True)
    w.grad = torch.randn(6, 4).t()  # non-contiguous
    b = torch.zeros(4, requires_grad=True)
    b.grad = torch.randn(4)
    no_grad = torch.zeros(3, 3, requires_grad=True)
    ref, b_before = _reference(w.grad.numpy()), b.grad.clone()
    centralize_([w, b, no_grad])
    np.testing.assert_allclose(w.grad.numpy(), ref, atol=1e-6)
    assert torch.equal(b.grad, b_before) and no_grad.grad is None


def test_accepts_module_and_param_groups():
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(12, 2))
    model(torch.randn(5, 2, 4, 4)).sum().backward()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    centralize_(opt.param_groups)
    conv = model[0].weight.grad
    assert torch.allclose(conv.sum((1, 2, 3)), torch.zeros(3), atol=1e-5)
    model.zero_grad()
    model(torch.randn(5, 2, 4, 4)).sum().backward()
    centralize_(model)
    assert torch.allclose(model[2].weight.grad.sum(1), torch.zeros(2), atol=1e-5)
    with pytest.raises(ValueError, match="params: expected tensors"):
        centralize_([1.0])


def test_sgd_with_gc_keeps_each_rows_weight_sum_constant():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    opt = Centralized(torch.optim.SGD(model.parameters(), lr=0.5))
    sums = [m.weight.detach().sum(1).clone() for m in (model[0], model[2])]
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    for _ in range(20):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    for m, s in zip((model[0], model[2]), sums, strict=True):
        torch.testing.assert_close(m.weight.detach().sum(1), s, atol=1e-5, rtol=0)
    assert not torch.equal(model[0].bias, torch.zeros(8))  # it did train


def _paper_sgd_gc(params, grads, lr, wd, momentum, bufs):
    """The official SGD_GC update: d_p = GC(grad + wd * p), then momentum."""
    out = []
    for p, g, i in zip(params, grads, range(len(params)), strict=True):
        d = g + wd * p
        if d.ndim > 1:
            d = d - d.reshape(d.shape[0], -1).mean(1).reshape((-1,) + (1,) * (d.ndim - 1))
        bufs[i] = d if bufs[i] is None else momentum * bufs[i] + d
        out.append(p - lr * bufs[i])
    return out


def test_weight_decay_ordering_follows_the_official_code():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2)).double()
    params = [p.detach().clone() for p in model.parameters()]
    opt = Centralized(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9,
                                      weight_decay=0.05))
    bufs = [None] * len(params)
    x = torch.randn(16, 4, dtype=torch.float64)
    for _ in range(3):
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        grads = [p.grad.detach().clone() for p in model.parameters()]
        params = _paper_sgd_gc(params, grads, 0.1, 0.05, 0.9, bufs)
        opt.step()
        for p, ref in zip(model.parameters(), params, strict=True):
            torch.testing.assert_close(p.detach(), ref, rtol=1e-12, atol=1e-12)


def test_adamw_decay_is_not_centralized():
    w = nn.Parameter(torch.randn(3, 4, dtype=torch.float64))
    inner = torch.optim.AdamW([w], lr=0.1, weight_decay=0.5)
    opt = Centralized(inner)
    w.grad = torch.randn(3, 4, dtype=torch.float64)
    expected = w.grad - w.grad.mean(1, keepdim=True)
    opt.centralize()
    torch.testing.assert_close(w.grad, expected)


def test_include_and_group_opt_out_and_passthroughs():
    emb, lin = nn.Embedding(10, 4), nn.Linear(4, 3)
    inner = torch.optim.Adam([{"params": emb.parameters(), "centralize": False},
                              {"params": lin.parameters()}], lr=1e-2)
    opt = Centralized(inner)
    out = lin(emb(torch.tensor([1, 2, 3]))).sum()
    out.backward()
    emb_grad = emb.weight.grad.clone()
    opt.step()
    assert torch.equal(emb.weight.grad, emb_grad)
    assert torch.allclose(lin.weight.grad.sum(1), torch.zeros(3), atol=1e-6)
    state = opt.state_dict()
    assert state == inner.state_dict()
    opt.load_state_dict(state)
    assert opt.param_groups is inner.param_groups and opt.state is inner.state
    opt.zero_grad()
    assert lin.weight.grad is None
    only = Centralized(torch.optim.SGD(lin.parameters(), lr=0.1), include=[])
    lin(torch.randn(2, 4)).sum().backward()
    g = lin.weight.grad.clone()
    only.centralize()
    assert torch.equal(lin.weight.grad, g)
    with pytest.raises(ValueError, match="optimizer: "):
        Centralized(object())


def test_lr_scheduler_closure_and_grad_scaler():
    lin = nn.Linear(3, 2)
    opt = Centralized(torch.optim.SGD(lin.parameters(), lr=1.0))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    x = torch.randn(8, 3)

    def closure():
        opt.zero_grad()
        loss = lin(x).pow(2).sum()
        loss.backward()
        return loss
    assert opt.step(closure) is not None
    sched.step()
    assert sched.get_last_lr() == [0.5] and opt.optimizer.param_groups[0]["lr"] == 0.5
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    opt.zero_grad()
    scaler.scale(lin(x).pow(2).sum()).backward()
    scaler.unscale_(opt)  # unscale before clipping and centralizing
    norm_before = torch.linalg.vector_norm(lin.weight.grad)
    clip_grad_norm_(lin.parameters(), max_norm=0.5)
    scaler.step(opt)
    scaler.update()
    assert torch.allclose(lin.weight.grad.sum(1), torch.zeros(2), atol=1e-5)
    # centralization is a projection: the clipped bound still holds after it
    assert torch.linalg.vector_norm(lin.weight.grad) <= min(norm_before, 0.5) + 1e-6


def test_clip_grad_norm_is_torchs():
    assert clip_grad_norm_ is torch.nn.utils.clip_grad_norm_


def test_optimizer_contracts_hooks_copy_pickle_and_closures():
    import copy
    import pickle

    w = torch.nn.Parameter(torch.randn(3, 4))
    opt = Centralized(torch.optim.SGD([w], lr=0.1))
    seen = []
    opt.register_step_pre_hook(lambda o, args, kwargs: seen.append("pre"))
    opt.register_step_post_hook(lambda o, args, kwargs: seen.append("post"))
    w.grad = torch.ones(3, 4) + torch.arange(4.0)
    opt.step()
    assert seen == ["pre", "post"]
    fresh = Centralized(torch.optim.SGD([w], lr=0.1))  # (lambda hooks do not pickle)
    for clone in (copy.deepcopy(opt), pickle.loads(pickle.dumps(fresh))):
        assert clone.param_groups[0]["lr"] == 0.1 and isinstance(clone.optimizer,
                                                                 torch.optim.SGD)


def test_lbfgs_gets_a_centralizing_closure():
    # LBFGS needs its closure and re-evaluates it; each evaluation's gradients must be
    # centralized before LBFGS reads them (it used to be dropped: LBFGS then failed)
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(3, 4))
    X, y = torch.randn(20, 4) + 3, torch.randn(20, 3)
    opt = Centralized(torch.optim.LBFGS([w], lr=0.5, max_iter=5))
    calls = []

    def closure():
        opt.zero_grad()
        loss = ((X @ w.T - y) ** 2).mean()
        loss.backward()
        calls.append(1)
        return loss
    before = closure().item()
    start = w.detach().clone()
    opt.step(closure)
    assert len(calls) > 2 and closure().item() < before
    # every LBFGS direction was built from centralized gradients: rows moved by zero sum
    torch.testing.assert_close((w.detach() - start).sum(1), torch.zeros(3), atol=1e-4,
                               rtol=0)
    plain = torch.nn.Parameter(start.clone())
    lbfgs = torch.optim.LBFGS([plain], lr=0.5, max_iter=5)

    def plain_closure():
        lbfgs.zero_grad()
        loss = ((X @ plain.T - y) ** 2).mean()
        loss.backward()
        return loss
    lbfgs.step(plain_closure)
    assert (plain.detach() - start).sum(1).abs().max() > 1e-2  # without GC rows do move


def test_groups_added_later_are_centralized_with_include():
    a, b = torch.nn.Parameter(torch.randn(2, 3)), torch.nn.Parameter(torch.randn(2, 3))
    opt = Centralized(torch.optim.SGD([a], lr=0.1), include=[a])
    opt.add_param_group({"params": [b]})
    a.grad, b.grad = torch.randn(2, 3), torch.randn(2, 3)
    opt.centralize()
    torch.testing.assert_close(b.grad.sum(1), torch.zeros(2), atol=1e-6, rtol=0)


def test_clip_grads_of_mixed_dtypes_and_of_nothing():
    from bagoftricks.centralize import clip_grads_
    grads = [torch.full((3, 2), 2.0), torch.full((4,), 1.0, dtype=torch.float64)]
    params = [torch.zeros_like(g, requires_grad=True) for g in grads]
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()
    expected = torch.nn.utils.clip_grad_norm_(params, 1.0)
    total = clip_grads_(grads, 1.0)  # norms combined across dtypes
    assert float(total) == pytest.approx(float(expected), rel=1e-6)
    for p, g in zip(params, grads, strict=True):
        torch.testing.assert_close(g, p.grad, rtol=1e-6, atol=0)
    assert clip_grads_([torch.ones(3, dtype=torch.float64)], 1.0).dtype == torch.float64
    assert float(clip_grads_([], 1.0)) == 0.0
    small = [torch.full((2,), 0.1), torch.full((2,), 0.1, dtype=torch.float64)]
    clip_grads_(small, 1.0)  # under max_norm: untouched
    assert [g.tolist() for g in small] == [pytest.approx([0.1, 0.1])] * 2
    tiny = [torch.full((2,), 1e-5), torch.full((2,), 1e-5, dtype=torch.float64)]
    clip_grads_(tiny, 1e-6)  # torch's eps matters at this scale: 1e-6 / (norm + 1e-6)
    assert tiny[1][0].item() == pytest.approx(1e-5 * 1e-6 / (2e-5 + 1e-6), rel=1e-6)


def test_groups_added_later_join_an_include_list():
    a, b, c = (nn.Parameter(torch.ones(2, 3)) for _ in range(3))
    opt = Centralized(torch.optim.SGD([a], lr=0.1), include=[a])
    opt.add_param_group({"params": [b]})
    opt.add_param_group({"params": [c]})
    for p in (a, b, c):
        p.grad = torch.arange(6.0).reshape(2, 3)
    opt.centralize()
    for p in (a, b, c):
        torch.testing.assert_close(p.grad.sum(1), torch.zeros(2))


def test_state_dict_hooks_registered_on_the_wrapper_run_as_torchs_do():
    w = nn.Parameter(torch.ones(2, 2))
    opt, seen = Centralized(torch.optim.SGD([w], lr=0.1)), []

    def with_lr(sd, lr):
        return {**sd, "param_groups": [{**sd["param_groups"][0], "lr": lr}]}
    opt.register_state_dict_pre_hook(lambda o: seen.append(("save pre", o is opt)))
    opt.register_state_dict_post_hook(lambda o, sd: with_lr(sd, 0.2) if o is opt else None)
    opt.register_load_state_dict_pre_hook(lambda o, sd: with_lr(sd, 0.5) if o is opt else None)
    opt.register_load_state_dict_post_hook(lambda o: seen.append(("load post", o is opt)))
    state = opt.state_dict()
    assert state["param_groups"][0]["lr"] == 0.2 and seen == [("save pre", True)]
    opt.load_state_dict(state)  # the pre hook's replacement is what gets loaded
    assert opt.param_groups[0]["lr"] == 0.5 and seen[-1] == ("load post", True)


def test_weight_decay_is_centralized_with_the_gradient_only_when_coupled():
    for make, coupled in ((lambda p: torch.optim.SGD(p, lr=0.1, weight_decay=0.5), True),
                          (lambda p: torch.optim.AdamW(p, weight_decay=0.5), False),
                          (lambda p: torch.optim.Adam(p, weight_decay=0.5,
                                                      decoupled_weight_decay=True), False)):
        for contiguous in (True, False):
            w = nn.Parameter(torch.arange(6.0).reshape(2, 3) ** 2)
            grad = torch.ones(3, 2) + torch.arange(3.0)[:, None]
            w.grad = grad.T.contiguous() if contiguous else grad.T  # (2, 3) either way
            Centralized(make([w])).centralize()
            direction = w.grad + (0.5 * w.detach() if coupled else 0)
            torch.testing.assert_close(direction.sum(1), torch.zeros(2), atol=1e-5, rtol=0)


def test_errors_name_the_type_they_got():
    with pytest.raises(ValueError, match="optimizer: expected a torch.optim.Optimizer, got "
                                         "object"):
        Centralized(object())
    with pytest.raises(ValueError, match="params: expected tensors, got float"):
        centralize_([1.0])


@pytest.mark.parametrize("grads, max_norm, scale", [
    ([torch.full((2,), 0.001)], 0.5, 1.0),            # under max_norm: untouched
    ([torch.full((2,), 1.5e-6 / 2**0.5)], 1e-6, 1e-6 / 2.5e-6),  # eps matters here
])
@pytest.mark.parametrize("path", ["clip_grads_", "clip_device_grads_"])
def test_clip_at_the_edges(grads, max_norm, scale, path):
    from bagoftricks import centralize
    before, grads = grads[0].clone(), [g.clone() for g in grads]
    getattr(centralize, path)(grads, max_norm)
    torch.testing.assert_close(grads[0], before * scale, rtol=1e-5, atol=0)
