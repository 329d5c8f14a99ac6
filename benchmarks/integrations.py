"""The same tricks three ways: a hand-written loop, Lightning, the Hugging Face Trainer.

mnist1d (3,200 training signals, 800 held out), the demo's MLP 128-64, Adam at 1e-3,
batches of 64, paired seeds. The tricks every way shares: last-layer bias init,
gradient centralization and the plateau scheduler on the validation loss. Each way's
lines that differ from a plain run are marked ``# trick``. ``bagoftricks.fit`` with the
same tricks is the reference. Prints best and final validation loss (mean ± std) and
seconds per optimizer step, with and without the callback for each framework.

    python benchmarks/integrations.py [--seeds 8] [--epochs 30]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from bagoftricks import Centralized, FluctuationPlateau, Tricks, bias_for, fit
from bagoftricks.data import load, stratified_split
from bagoftricks.models import tabular_mlp

TRICKS = Tricks(balance=None, bias_init=True, centralize=True, plateau=True)  # the three


def hand_loop(train, val, seed, epochs, tricks=True):
    X, y = train
    model = tabular_mlp(X.shape[1], 10, seed=seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    if tricks:
        model[-1].bias.data = bias_for(y, "softmax", num_classes=10)  # trick
        optimizer = Centralized(optimizer)  # trick
        plateau = FluctuationPlateau(optimizer)  # trick
    g = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=g).split(64):
            optimizer.zero_grad()
            F.cross_entropy(model(X[idx]), y[idx]).backward()
            optimizer.step()
        with torch.no_grad():
            losses.append(F.cross_entropy(model(val[0]), val[1]).item())
        if tricks:
            plateau.step(losses[-1])  # trick
    return losses


def with_fit(train, val, seed, epochs, tricks=True):
    model = tabular_mlp(train[0].shape[1], 10, seed=seed)
    result = fit(model, train, val_data=val, epochs=epochs, batch_size=64, lr=1e-3, seed=seed,
                 optimizer=lambda p, lr: torch.optim.Adam(p, lr=lr), log="none",
                 tricks=TRICKS if tricks else Tricks.none(), keep_best=None)
    return result.history.series("val_loss")


def with_lightning(train, val, seed, epochs, tricks=True):
    import lightning.pytorch as pl

    from bagoftricks.integrations.lightning import BagOfTricks

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = tabular_mlp(train[0].shape[1], 10, seed=seed)

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, _):
            return F.cross_entropy(self(batch[0]), batch[1])

        def validation_step(self, batch, _):
            self.log("val_loss", F.cross_entropy(self(batch[0]), batch[1]))

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    class Record(pl.Callback):
        losses: list = []

        def on_validation_end(self, trainer, module):
            self.losses.append(trainer.callback_metrics["val_loss"].item())

    record = Record()
    record.losses = []
    callbacks = [BagOfTricks(log_loss=False), record] if tricks else [record]  # trick
    loader = DataLoader(TensorDataset(*train), batch_size=64, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    trainer = pl.Trainer(max_epochs=epochs, callbacks=callbacks, accelerator="cpu",
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(Module(), loader, DataLoader(TensorDataset(*val), batch_size=len(val[1])))
    return record.losses


def with_transformers(train, val, seed, epochs, tricks=True):
    import transformers

    from bagoftricks.integrations.transformers import BagOfTricksCallback

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = tabular_mlp(train[0].shape[1], 10, seed=seed)

        def forward(self, x, labels=None):
            logits = self.net(x)
            return {"logits": logits, "loss": F.cross_entropy(logits, labels)}

    def rows(X, y):
        return [{"x": a, "labels": b} for a, b in zip(X, y, strict=True)]

    folder = tempfile.mkdtemp(prefix="bagoftricks-hf-")  # the Trainer's output_dir
    args = transformers.TrainingArguments(
        folder, per_device_train_batch_size=64, per_device_eval_batch_size=len(val[1]),
        num_train_epochs=epochs, learning_rate=1e-3, lr_scheduler_type="constant",
        max_grad_norm=0.0, eval_strategy="epoch", save_strategy="no", logging_strategy="no",
        report_to=[], use_cpu=True, disable_tqdm=True, seed=seed, dataloader_drop_last=False)
    callbacks = [BagOfTricksCallback()] if tricks else []  # trick
    trainer = transformers.Trainer(Net(), args, train_dataset=rows(*train),
                                   eval_dataset=rows(*val), callbacks=callbacks)
    trainer.remove_callback(transformers.PrinterCallback)  # no metrics dict per epoch
    trainer.train()
    shutil.rmtree(folder)
    return [e["eval_loss"] for e in trainer.state.log_history if "eval_loss" in e]


WAYS = {"hand-written loop": hand_loop, "bagoftricks.fit": with_fit,
        "Lightning": with_lightning, "HF Trainer": with_transformers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    import logging
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    ds = load("mnist1d")
    tr, va = stratified_split(ds.y, 0.2, 0)
    X, y = torch.as_tensor(ds.X, dtype=torch.float32), torch.as_tensor(ds.y).long()
    train, val = (X[tr], y[tr]), (X[va], y[va])
    steps = args.epochs * -(-len(tr) // 64)
    for way in WAYS.values():  # warm-up: imports and first calls out of the timings
        way(train, val, 0, 1, True)
    rows = {}
    for seed in range(args.seeds):  # interleaved: every way and variant once per seed
        for name, way in WAYS.items():
            for tricks in (False, True):
                t0 = time.perf_counter()
                losses = way(train, val, seed, args.epochs, tricks)
                seconds = time.perf_counter() - t0
                rows.setdefault((name, tricks), []).append(
                    (min(losses), losses[-1], seconds / steps))
    print(f"{'way':18s} {'tricks':6s} {'best val loss':>16s} {'final val loss':>16s} "
          f"{'ms/step':>8s} {'x plain':>7s} {'on - off (best)':>16s} {'wins':>5s}")
    for (name, tricks), values in rows.items():
        a, off = np.array(values), np.array(rows[(name, False)])
        diff = a[:, 0] - off[:, 0]  # paired by seed
        paired = f"{diff.mean():+.4f} ± {diff.std():.4f} {(diff < 0).sum():>2d}/{len(diff)}" \
            if tricks else ""
        print(f"{name:18s} {'on' if tricks else 'off':6s} {a[:, 0].mean():.4f} ± "
              f"{a[:, 0].std():.4f} {a[:, 1].mean():.4f} ± {a[:, 1].std():.4f} "
              f"{np.median(a[:, 2]) * 1e3:8.3f} {np.median(a[:, 2]) / np.median(off[:, 2]):7.3f}"
              f" {paired}")


if __name__ == "__main__":
    main()
