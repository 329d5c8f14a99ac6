"""The Lightning callback against the tricks it wraps: bias, sampling, loss, plateau,
centralization, standardization, checkpoints, and one clear error per misuse."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

pl = pytest.importorskip("lightning.pytorch")

from bagoftricks import OversamplingSampler, bias_for  # noqa: E402
from bagoftricks.integrations.lightning import BagOfTricks  # noqa: E402
from lightning_task import Classifier, data, loaders, trainer  # noqa: E402


class Spy(pl.Callback):
    """Records the head's bias at fit start and whether gradients are centralized at
    each optimizer step (it runs after BagOfTricks, before Lightning's clipping)."""

    def __init__(self):
        self.bias, self.row_means = None, []

    def on_fit_start(self, trainer, module):
        self.bias = module.net[-1].bias.detach().clone()

    def on_before_optimizer_step(self, trainer, module, optimizer):
        self.row_means += [(p.grad.mean(1).abs().max() / p.grad.abs().max()).item()
                           for p in module.parameters() if p.grad is not None and p.ndim > 1]


def _fit(callback, module=None, epochs=2, **kwargs):
    module = module or Classifier()
    spy = Spy()
    train, val = loaders()
    trainer(callbacks=[callback, spy], max_epochs=epochs, **kwargs).fit(module, train, val)
    return module, spy


def test_bias_init_reads_the_dataset_labels():
    _, spy = _fit(BagOfTricks(), epochs=1)
    _, y = data()
    expected = bias_for(y.numpy(), "softmax", num_classes=3)
    torch.testing.assert_close(spy.bias, expected.float())


@pytest.mark.parametrize("balance", ["oversample", "weights", "logit_adjust"])
def test_bias_init_follows_the_effective_prior(balance):
    callback = BagOfTricks(balance=balance)
    module = Classifier(loss_fn=callback.loss)
    _, spy = _fit(callback, module, epochs=1)
    # each balance trick makes the prior the raw logits model uniform: equal biases
    assert torch.allclose(spy.bias, spy.bias.mean().expand(3), atol=1e-6)


@pytest.mark.parametrize("balance", ["oversample", "logit_adjust", None])
def test_correct_moves_the_logits_from_the_effective_prior_to_the_asked_one(balance):
    callback = BagOfTricks(balance=balance)
    with pytest.raises(ValueError, match="^correct: no class priors yet"):
        callback.correct(torch.zeros(2, 3))
    _fit(callback, Classifier(loss_fn=callback.loss), epochs=1)
    _, y = data()
    true = torch.bincount(y, minlength=3).double() / len(y)
    effective = true if balance is None else torch.full((3,), 1 / 3, dtype=torch.float64)
    logits = torch.randn(5, 3, dtype=torch.float64)
    torch.testing.assert_close(callback.correct(logits), logits + true.log() - effective.log())
    torch.testing.assert_close(callback.correct(logits, "balanced"),
                               logits - effective.log() + np.log(1 / 3))
    deploy = [0.7, 0.2, 0.1]
    torch.testing.assert_close(callback.correct(logits, deploy),
                               logits + torch.tensor(deploy).double().log() - effective.log())
    with pytest.raises(ValueError, match="^prior: expected None, 'balanced' or 3 class"):
        callback.correct(logits, "uniform")


def test_oversampling_draws_every_class_up_to_the_largest():
    module, _ = _fit(BagOfTricks(balance="oversample"), epochs=1)
    counts = torch.bincount(torch.cat(module.seen), minlength=3)
    _, y = data()
    assert counts.tolist() == [int(torch.bincount(y).max())] * 3


def test_epoch_loss_is_the_size_weighted_mean_of_the_batch_losses():
    module = Classifier()
    train, val = loaders()
    t = trainer(callbacks=[BagOfTricks()], max_epochs=2)
    t.fit(module, train, val)
    last = module.losses[-len(train):]
    expected = sum(loss * n for loss, n in last) / sum(n for _, n in last)
    assert t.callback_metrics["train_loss_epoch"].item() == pytest.approx(expected, rel=1e-6)


def test_plateau_steps_once_per_validation():
    callback = BagOfTricks()
    _fit(callback, epochs=4, check_val_every_n_epoch=2)
    assert [s.last_epoch for s in callback.schedulers] == [2]


def test_gradients_are_centralized_before_lightnings_clipping():
    _, spy = _fit(BagOfTricks(), epochs=1, gradient_clip_val=0.1)
    assert spy.row_means and max(spy.row_means) < 1e-5  # relative to the largest entry
    _, plain = _fit(BagOfTricks(centralize=False), epochs=1)
    assert max(plain.row_means) > 1e-2  # the spy can tell


def test_standardization_is_a_layer_saved_with_the_module():
    module, _ = _fit(BagOfTricks(standardize=True), epochs=1)
    X, _ = data()
    state = module.state_dict()
    torch.testing.assert_close(state["bagoftricks_standardize.mean"], X.mean(0),
                               rtol=1e-5, atol=1e-4)
    x = X[:4]
    z = (x - X.mean(0)) / X.std(0, unbiased=False)
    torch.testing.assert_close(module(x), module.net(z), rtol=1e-4, atol=1e-4)


def test_standardization_per_channel_takes_one_mean_and_std_for_a_flat_signal():
    module, _ = _fit(BagOfTricks(standardize="channel"), epochs=1)
    X, _ = data()
    state = module.state_dict()
    assert state["bagoftricks_standardize.mean"].shape == (1,)
    x = X[:4]
    z = (x - X.mean()) / X.std(unbiased=False)
    torch.testing.assert_close(module(x), module.net(z), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match=r"^standardize: expected True, False or one of "):
        BagOfTricks(standardize="pixel")


def test_resumed_run_equals_the_uninterrupted_one(tmp_path, monkeypatch):
    monkeypatch.setenv("PL_GLOBAL_SEED", "0")  # seed_everything sets it: undone after

    def run(epochs, ckpt=None, save=None):
        pl.seed_everything(3)
        callback = BagOfTricks(balance="oversample", plateau_options={"window": 2})
        module = Classifier(lr=0.05)
        train, val = loaders()
        t = trainer([callback], max_epochs=epochs)
        t.fit(module, train, val, ckpt_path=ckpt)
        if save:
            t.save_checkpoint(save)
        return module, callback

    straight, cb_straight = run(5)
    run(3, save=tmp_path / "three.ckpt")
    resumed, cb_resumed = run(5, ckpt=tmp_path / "three.ckpt")
    assert cb_straight.schedulers[0].num_cuts > 0  # the plateau state matters here
    assert cb_resumed.schedulers[0].state_dict() == cb_straight.schedulers[0].state_dict()
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_labels_argument_overrides_the_dataset():
    y = np.array([0] * 10 + [1] * 30 + [2] * 200)  # not the dataset's labels
    _, spy = _fit(BagOfTricks(labels=y), epochs=1)
    torch.testing.assert_close(spy.bias, bias_for(y, "softmax", num_classes=3).float())


# -- one clear error per misuse -----------------------------------------------------------
def _fails(match, callback, module=None, train=None, **kwargs):
    module = module or Classifier()
    default_train, val = loaders()
    with pytest.raises(ValueError, match=match):
        trainer([callback], max_epochs=1, **kwargs).fit(module, train or default_train, val)


def test_a_module_without_a_linear_head_is_named():
    module = Classifier()
    module.net[-1] = torch.nn.Linear(16, 3, bias=False)
    _fails("no nn.Linear with a bias.*bias_init=False", BagOfTricks(), module)


def test_labels_it_cannot_find_ask_for_labels():
    X, _ = data()
    train = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X), batch_size=32)
    _fails("pass labels=", BagOfTricks(), train=train)


def test_a_monitor_never_logged_is_named():
    _fails("'val_loss' was never logged", BagOfTricks(), Classifier(log_val=False))


def test_a_balanced_loss_the_step_does_not_use_is_named():
    _fails("callback.loss", BagOfTricks(balance="weights"))


def test_standardization_the_step_bypasses_is_named():
    _fails(r"self\(x\)", BagOfTricks(standardize=True), Classifier(call_self=False))


def test_bad_arguments_are_named_up_front():
    with pytest.raises(ValueError, match="balance"):
        BagOfTricks(balance="smote")
    with pytest.raises(ValueError, match="tau"):
        BagOfTricks(balance="logit_adjust", tau=-1)


def test_oversampling_under_lightning_ddp_splits_the_epoch_between_ranks():
    from distributed.harness import run

    ranks = run("lightning_oversample", world_size=2, timeout=180)
    _, y = data()
    whole = OversamplingSampler(y.numpy(), seed=5)
    expected = Counter(whole.epoch_indices(0).tolist())
    total = sum(expected.values())
    share = -(-total // 2)  # Lightning pads an odd epoch by one index, as DistributedSampler
    assert [len(r["index"]) for r in ranks] == [share, share]
    union = Counter(ranks[0]["index"] + ranks[1]["index"])
    assert not expected - union and sum((union - expected).values()) == 2 * share - total
    assert ranks[0]["bias"] == ranks[1]["bias"]
    assert ranks[0]["loss"] == pytest.approx(ranks[1]["loss"], rel=1e-12)
