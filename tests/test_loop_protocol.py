"""The trick protocol: hooks in order, state in checkpoints, the effective prior, and
each built-in adapter doing its chapter's job inside ``fit``."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bagoftricks import Trick, Tricks, bias_for, class_weights, fit, weighted_loss
from bagoftricks.loop import BalancedWeights, BiasInit, LogitAdjustment, Oversampling
from bagoftricks.models import last_linear, tabular_mlp


def _imbalanced(n=400, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.choice(4, n, p=[0.7, 0.2, 0.07, 0.03])
    X = (rng.normal(size=(n, 5)) + y[:, None]).astype(np.float32)
    return X, y.astype(np.int64)


class Recorder(Trick):
    """Counts optimizer steps and remembers the hooks' order; checkpointed."""

    state_key = "recorder"

    def __init__(self):
        self.calls, self.steps, self.ctx = [], 0, None

    def setup(self, ctx):
        self.calls.append("setup")
        self.ctx = ctx

    def on_epoch_start(self, ctx, epoch):
        self.calls.append(f"start {epoch}")

    def before_optimizer_step(self, ctx):
        assert all(p.grad is not None for p in ctx.model.parameters())

    def on_batch_end(self, ctx, loss, weight):
        self.steps += 1

    def on_epoch_end(self, ctx, record):
        self.calls.append(f"end {record['epoch']}")
        record["recorder_steps"] = self.steps

    def state_dict(self):
        return {"steps": self.steps}

    def load_state_dict(self, state):
        self.steps = state["steps"]


def test_a_user_trick_runs_its_hooks_and_resumes_its_state(tmp_path):
    X, y = _imbalanced()
    first = Recorder()
    over = Tricks.all(balance="oversample")
    fit(tabular_mlp(5, 4), (X, y), epochs=2, batch_size=50, tricks=[*over.build(), first],
        checkpoint_dir=tmp_path, log="none")
    assert first.calls == ["setup", "start 0", "end 1", "start 1", "end 2"]
    assert first.steps == 2 * math.ceil(4 * np.bincount(y).max() / 50)  # oversampled epochs
    again = Recorder()
    res = fit(tabular_mlp(5, 4), (X, y), epochs=3, batch_size=50,
              tricks=[*over.build(), again], checkpoint_dir=tmp_path, resume=True,
              log="none")
    assert again.steps == 3 * first.steps // 2  # continued from the checkpoint's count
    assert res.history.series("recorder_steps") == [first.steps // 2, first.steps,
                                                    again.steps]


def test_trick_list_errors_are_clear(tmp_path):
    X, y = _imbalanced()

    class NoKey(Recorder):
        state_key = None
    with pytest.raises(ValueError, match="NoKey saves state but has no state_key"):
        fit(tabular_mlp(5, 4), (X, y), epochs=1, tricks=[NoKey()], checkpoint_dir=tmp_path,
            log="none")
    fit(tabular_mlp(5, 4), (X, y), epochs=1, tricks=[NoKey()], log="none")  # no checkpoint
    with pytest.raises(ValueError, match="state_key values must be unique"):
        fit(tabular_mlp(5, 4), (X, y), epochs=1, tricks=[Recorder(), Recorder()],
            checkpoint_dir=tmp_path, log="none")
    with pytest.raises(TypeError, match="expected Trick objects, got function"):
        fit(tabular_mlp(5, 4), (X, y), epochs=1, tricks=[lambda ctx: None], log="none")


def _loss_at_init(balance):
    """The loss a model with zeroed last weights has at step 0 on what the loss sees."""
    X, y = _imbalanced()
    probe = Recorder()
    tricks = [t for t in Tricks.all(balance=balance, standardize=False).build()
              if isinstance(t, (Oversampling, BalancedWeights, LogitAdjustment, BiasInit))
              ] + [probe]
    model = tabular_mlp(5, 4)
    with torch.no_grad():
        last_linear(model).weight.zero_()
    fit(model, (X, y), epochs=1, tricks=tricks, lr=1e-12, log="none", keep_best=None)
    ctx = probe.ctx
    idx = ctx.sampler.epoch_indices(0).long()
    out = last_linear(model).bias.detach().expand(len(idx), -1)
    if ctx.logit_adjustment is not None:
        out = out + ctx.logit_adjustment
    target = torch.as_tensor(y)[idx]
    return weighted_loss(out, target, class_weight=ctx.class_weight).item(), ctx


@pytest.mark.parametrize("balance", ["oversample", "weights", "logit_adjust"])
def test_bias_init_follows_the_effective_prior_of_the_balance_trick(balance):
    # Karpathy's "verify loss @ init": the step-0 loss is the entropy of the label
    # distribution the loss sees: uniform when oversampled or weighted (the raw counts
    # gave more than log K), the natural one under the logit-adjusted loss, whose raw
    # logits model the uniform prior.
    loss, ctx = _loss_at_init(balance)
    _, y = _imbalanced()
    p = np.bincount(y) / len(y)
    seen = -(p * np.log(p)).sum() if balance == "logit_adjust" else math.log(4)
    assert loss == pytest.approx(seen, abs=1e-5)
    np.testing.assert_allclose(ctx.prior.numpy(), 0.25)


def test_without_balancing_bias_init_gives_the_label_entropy():
    loss, ctx = _loss_at_init(None)
    _, y = _imbalanced()
    p = np.bincount(y) / len(y)
    assert loss == pytest.approx(-(p * np.log(p)).sum(), abs=1e-5)
    head = bias_for(y, "softmax")
    np.testing.assert_allclose(ctx.prior.numpy(), p)
    assert head.shape == (4,)


def test_balanced_weights_are_the_loss_the_loop_minimizes():
    X, y = _imbalanced()
    model = tabular_mlp(5, 4)
    res = fit(model, (X, y), epochs=1, batch_size=64, log="none", keep_best=None,
              optimizer=lambda params, lr: torch.optim.SGD(params, lr=0.0),
              tricks=Tricks(bias_init=False, balance="weights", standardize=False,
                            centralize=False, clip_norm=None, plateau=False))
    cw = torch.as_tensor(class_weights(y, num_classes=4), dtype=torch.float32)
    with torch.no_grad():
        expected = weighted_loss(model(torch.as_tensor(X)), torch.as_tensor(y),
                                 class_weight=cw).item()
    assert res.history.epochs[0]["train_loss"] == pytest.approx(expected, rel=1e-6)


def test_each_adapter_is_switched_off_by_its_flag():
    names = {"bias_init": "BiasInit", "balance": "LogitAdjustment", "standardize":
             "Standardization", "centralize": "Centralization", "clip_norm": "Clipping",
             "plateau": "Plateau"}
    built = {type(t).__name__ for t in Tricks.all().build()}
    assert set(names.values()) | {"LossAccumulation"} == built
    for flag, adapter in names.items():
        assert adapter not in {type(t).__name__ for t in Tricks.all().without(flag).build()}
    assert {type(t).__name__ for t in Tricks().build()} == {"LossAccumulation",
                                                             "LogitAdjustment"}
    assert Tricks().off() == ["bias_init", "standardize", "centralize", "clip_norm", "plateau"]
    assert Tricks().plus("clip_norm").clip_norm == 1.0
    assert {type(t).__name__ for t in Tricks.none().build()} == {"LossAccumulation"}
    assert "LeslieRescaling" in {type(t).__name__ for t in
                                 Tricks(reference_batch_size=32).build()}


def test_clipping_and_centralization_inside_fit_equal_the_chapter_functions():
    # One SGD step with lr=1 from the same weights: the update is -(clip, then centralize)
    X, y = _imbalanced(64)
    tricks = Tricks(balance=None, centralize=True, clip_norm=0.01)
    model = tabular_mlp(5, 4, (8,))
    reference = tabular_mlp(5, 4, (8,))
    fit(model, (X, y), epochs=1, batch_size=64, tricks=tricks, keep_best=None, log="none",
        optimizer=lambda params, lr: torch.optim.SGD(params, lr=1.0))
    loss = F.cross_entropy(reference(torch.as_tensor(X)), torch.as_tensor(y))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(reference.parameters(), 0.01)
    from bagoftricks import centralize_
    centralize_(reference)
    with torch.no_grad():
        for p, q in zip(model.parameters(), reference.parameters(), strict=True):
            torch.testing.assert_close(p, q - q.grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("path", ["clip_grads_", "clip_device_grads_"])
def test_clip_grads_equals_torch_clip_grad_norm(path):
    # clip_device_grads_ is the path off the CPU (no host sync); it runs here on the CPU
    from bagoftricks import centralize

    clip_grads_ = getattr(centralize, path)
    rng = torch.Generator().manual_seed(0)
    for max_norm in (0.1, 1.0, 1e3):
        grads = [torch.randn(s, generator=rng) for s in ((7, 3), (3,), (2, 2, 2))]
        params = [torch.zeros_like(g, requires_grad=True) for g in grads]
        for p, g in zip(params, grads, strict=True):
            p.grad = g.clone()
        expected = torch.nn.utils.clip_grad_norm_(params, max_norm)
        total = clip_grads_(grads, max_norm)  # (on the CPU: the norm combined in float64)
        assert float(total) == pytest.approx(float(expected), rel=1e-6)
        for p, g in zip(params, grads, strict=True):
            torch.testing.assert_close(g, p.grad, rtol=1e-6, atol=0)


@pytest.mark.parametrize("monitor, expected", [("val_loss", [5.0, 3.0]),
                                               ("train_loss", [1.0, 2.0]),
                                               ("calibrated_val_loss", [4.0, 3.0])])
def test_the_plateau_trick_watches_its_monitor(monitor, expected):
    from bagoftricks.loop.adapters import Plateau

    trick, seen = Plateau(monitor), []
    trick.scheduler = type("Recorder", (), {"step": lambda self, m: seen.append(m)})()
    trick.on_epoch_end(None, {"val_loss": 5.0, "calibrated_val_loss": 4.0, "train_loss": 1.0})
    trick.on_epoch_end(None, {"val_loss": 3.0, "train_loss": 2.0})  # a regression
    trick.on_epoch_end(None, {"train_loss": 2.5})  # no validation: the training loss
    assert seen == [*expected, 2.5]
    with pytest.raises(ValueError, match="^tricks.plateau_monitor: "):
        Tricks(plateau_monitor="accuracy")
    with pytest.raises(ValueError, match="^plateau_monitor: "):
        Plateau("accuracy")


def test_leslie_rescaling_moves_an_attached_schedulers_starting_lr():
    from types import SimpleNamespace

    from bagoftricks.loop.adapters import LeslieRescaling

    opt = torch.optim.Adam(torch.nn.Linear(2, 2).parameters(), lr=1e-3)
    torch.optim.lr_scheduler.StepLR(opt, step_size=1)  # it records initial_lr
    LeslieRescaling(64).setup(SimpleNamespace(optimizer=opt, batch_size=256))
    group = opt.param_groups[0]
    assert group["lr"] == pytest.approx(2e-3) and group["initial_lr"] == group["lr"]


def test_a_user_trick_sees_the_true_prior_and_has_a_plain_repr():
    seen = {}

    class Probe(Trick):
        def setup(self, ctx):
            seen["true_prior"] = ctx.true_prior.tolist()

    y = np.array([0] * 6 + [1] * 3 + [2])
    X = np.random.default_rng(0).normal(size=(10, 5)).astype(np.float32)
    fit(tabular_mlp(5, 3), (X, y), epochs=1, tricks=[Probe()], log="none")
    assert seen["true_prior"] == pytest.approx([0.6, 0.3, 0.1], abs=1e-15)
    assert repr(Probe()) == "Probe()"
    assert LogitAdjustment().tau == 1.0  # Menon et al.'s default


def test_the_predictor_under_the_effective_prior_given_as_a_list_is_the_bare_model():
    y = np.array([0] * 7 + [1] * 2 + [2])
    X = np.random.default_rng(0).normal(size=(10, 5)).astype(np.float32)
    res = fit(tabular_mlp(5, 3), (X, y), epochs=1, tricks=Tricks.none(), log="none")
    assert res.predictor_for([0.7, 0.2, 0.1]) is res.model  # no shift: it is the prior


def test_clipping_defaults_to_norm_1():
    from bagoftricks.loop.adapters import Clipping

    assert Clipping().max_norm == 1.0
