"""The Hugging Face Trainer callback: bias init, the balanced loss, centralization after
the Trainer's clipping, the plateau composing with the Trainer's schedule, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers")

from bagoftricks import bias_for  # noqa: E402
from bagoftricks.integrations.transformers import BagOfTricksCallback  # noqa: E402
from lightning_task import data  # noqa: E402  (plain tensors; no Lightning needed)


class Net(torch.nn.Module):
    def __init__(self, bias=True):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU())
        self.head = torch.nn.Linear(16, 3, bias=bias)

    def forward(self, x, labels=None):
        logits = self.head(self.body(x / 100))
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = F.cross_entropy(logits, labels)
        return out


class Rows(torch.utils.data.Dataset):
    def __init__(self, X, y):
        self.X, self.y = X, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"x": self.X[i], "labels": self.y[i]}


class Spy(transformers.TrainerCallback):
    def __init__(self):
        self.bias, self.row_means = None, []

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.bias = model.head.bias.detach().clone()

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        self.row_means += [(p.grad.mean(1).abs().max() / p.grad.abs().max()).item()
                           for p in model.parameters() if p.grad is not None and p.ndim > 1]


def _trainer(tmp_path, callback, model=None, epochs=2, loss=True, **args):
    X, y = data()
    Xv, yv = data(120, seed=1)
    options = {"per_device_train_batch_size": 32, "num_train_epochs": epochs,
               "eval_strategy": "epoch", "save_strategy": "no", "report_to": [],
               "use_cpu": True, "logging_strategy": "no", "disable_tqdm": True,
               "learning_rate": 1e-2, "seed": 0, **args}
    spy = Spy()
    trainer = transformers.Trainer(
        model or Net(), transformers.TrainingArguments(str(tmp_path / "out"), **options),
        train_dataset=Rows(X, y), eval_dataset=Rows(Xv, yv), callbacks=[callback, spy],
        compute_loss_func=callback.compute_loss if loss else None)
    return trainer, spy


def test_bias_init_and_centralization_after_clipping(tmp_path):
    trainer, spy = _trainer(tmp_path, BagOfTricksCallback(), loss=False, max_grad_norm=0.1)
    trainer.train()
    _, y = data()
    torch.testing.assert_close(spy.bias, bias_for(y.numpy(), "softmax", num_classes=3).float())
    assert spy.row_means and max(spy.row_means) < 1e-5


@pytest.mark.parametrize("balance", ["weights", "logit_adjust"])
def test_balanced_loss_and_the_effective_prior(tmp_path, balance):
    callback = BagOfTricksCallback(balance=balance)
    trainer, spy = _trainer(tmp_path, callback, epochs=1)
    trainer.train()
    assert torch.allclose(spy.bias, spy.bias.mean().expand(3), atol=1e-6)  # uniform prior
    logits, target = torch.randn(7, 3), torch.tensor([0, 0, 0, 1, 1, 2, 0])
    if balance == "weights":
        expected = F.cross_entropy(logits, target, weight=callback.priors.class_weight,
                                   reduction="sum") / 7
    else:
        expected = F.cross_entropy(logits + torch.log(torch.as_tensor(
            callback.priors.true, dtype=torch.float32)), target)
    torch.testing.assert_close(callback.compute_loss({"logits": logits}, target), expected)
    true = torch.as_tensor(callback.priors.true)
    torch.testing.assert_close(callback.correct(logits.double()),
                               logits.double() + true.log() - np.log(1 / 3))  # from uniform


def test_plateau_cuts_scale_the_trainers_schedule(tmp_path):
    callback = BagOfTricksCallback(plateau_options={"window": 2, "threshold": 0.99})
    trainer, _ = _trainer(tmp_path, callback, loss=False, epochs=6,
                          lr_scheduler_type="constant")
    trainer.train()
    cuts = callback.scheduler.num_cuts
    assert cuts > 0 and callback.scheduler.last_epoch == 6
    assert trainer.lr_scheduler.base_lrs[0] == pytest.approx(1e-2 * 0.5 ** cuts)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-2 * 0.5 ** cuts)


def test_resume_reads_the_plateau_state(tmp_path):
    def run(epochs, resume=None):
        callback = BagOfTricksCallback(plateau_options={"window": 2, "threshold": 0.99})
        trainer, spy = _trainer(tmp_path, callback, loss=False, epochs=epochs,
                                save_strategy="epoch", lr_scheduler_type="constant")
        trainer.train(resume_from_checkpoint=resume)
        return callback, spy, trainer

    straight, _, _ = run(4)
    state = straight.scheduler.state_dict()
    resumed, spy, trainer = run(4, resume=str(tmp_path / "out" / "checkpoint-16"))
    assert resumed.scheduler.state_dict() == state
    _, y = data()  # the bias the checkpoint holds, not a fresh initialization
    assert not torch.allclose(spy.bias, bias_for(y.numpy(), "softmax", num_classes=3).float())


def test_misuse_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="own sampler"):
        BagOfTricksCallback(balance="oversample")
    trainer, _ = _trainer(tmp_path, BagOfTricksCallback(balance="weights"), loss=False)
    with pytest.raises(ValueError, match="compute_loss_func"):
        trainer.train()
    trainer, _ = _trainer(tmp_path, BagOfTricksCallback(), loss=False, eval_strategy="no")
    with pytest.raises(ValueError, match="never evaluates"):
        trainer.train()
    trainer, _ = _trainer(tmp_path, BagOfTricksCallback(monitor="eval_f1"), loss=False)
    with pytest.raises(ValueError, match="'eval_f1' is not among"):
        trainer.train()
    trainer, _ = _trainer(tmp_path, BagOfTricksCallback(), Net(bias=False), loss=False)
    with pytest.raises(ValueError, match="bias_init=False"):
        trainer.train()
    callback = BagOfTricksCallback(labels=np.zeros(5), balance="weights")
    trainer, _ = _trainer(tmp_path, callback)
    with pytest.raises(ValueError, match="5 labels for a training set of 240 rows"):
        trainer.train()
