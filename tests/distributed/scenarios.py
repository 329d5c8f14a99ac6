"""Scenarios run by ``harness.run`` on each rank; the last stdout line is the JSON result."""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta

import torch
import torch.distributed as dist


def loss_accumulator(rank: int, world: int, losses: list, sizes: list) -> float:
    """Each rank updates with its shard of the batches; every rank reads the global mean."""
    from bagoftricks import LossAccumulator

    acc = LossAccumulator()
    for loss, n in list(zip(losses, sizes, strict=True))[rank::world]:
        acc.update(torch.tensor(loss, dtype=torch.float32), n)
    return acc.compute()


def loss_accumulator_nan(rank: int, world: int) -> str:
    """A non-finite loss on rank 1 only: what each rank's compute says."""
    from bagoftricks import LossAccumulator

    acc = LossAccumulator()
    acc.update(torch.tensor(1.0), 1)
    acc.update(torch.tensor(float("nan") if rank == 1 else 2.0), 1)
    try:
        acc.compute()
    except FloatingPointError as err:
        return str(err)
    return "no error"


def sampler_shard(rank: int, world: int, labels: list, epoch: int) -> list:
    """Sharding is explicit: by default the sampler does not shard, even in a group."""
    from bagoftricks import OversamplingSampler, distributed

    assert OversamplingSampler(labels, seed=11).num_replicas == 1
    sampler = OversamplingSampler(labels, seed=11, num_replicas=distributed.world_size(),
                                  rank=distributed.rank())
    sampler.set_epoch(epoch)
    return [sampler.num_replicas, sampler.rank, list(sampler)]


def standardizer_sync(rank: int, world: int, x: list) -> list:
    """Each rank sees an uneven slice of the rows; sync() merges the statistics."""
    import numpy as np

    from bagoftricks import RunningStandardizer

    rows = np.array(x)
    cut = len(rows) // 3
    part = rows[:cut] if rank == 0 else rows[cut:]
    s = RunningStandardizer().fit(np.array_split(part, 3)).sync()
    return [s.mean.tolist(), s.var.tolist()]


def plateau_decisions(rank: int, world: int, seqs: list) -> list:
    """Each rank steps with its own metric; the decisions must agree."""
    from bagoftricks import FluctuationPlateau

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = FluctuationPlateau(opt)
    for value in seqs[rank]:
        sched.step(value)
    return sched.cut_epochs


def bias_sharded(rank: int, world: int, y: list, kind: str, w: list | None = None) -> list:
    """Each rank holds an uneven shard of the labels (and weights); bias_for sees them all."""
    from bagoftricks import bias_for

    cut = len(y) // 3
    part = slice(None, cut) if rank == 0 else slice(cut, None)
    return bias_for(y[part], kind, sample_weight=None if w is None else w[part],
                    dtype=torch.float64).tolist()


def fit_run(rank: int, world: int, ckpt: str | None = None, resume: bool = False,
            kill_at: int | None = None, epochs: int = 3, balance: str = "logit_adjust",
            n: int = 240, dataset: bool = False, lr: float | str = 1e-2) -> dict:
    """The reference loop under DDP on the worker's data; optionally SIGKILL at a step."""
    import signal

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from bagoftricks import Tricks, fit
    from bagoftricks.models import tabular_mlp
    from train_worker import data, inputs

    torch.set_num_threads(1)
    if kill_at is not None:
        original, calls = torch.optim.Adam.step, [0]

        def step(self, *args, **kwargs):
            calls[0] += 1
            if calls[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(self, *args, **kwargs)
        torch.optim.Adam.step = step
    X, y = data()
    model = tabular_mlp(6, 2, (16,), seed=0)
    res = fit(model, inputs(X[:n], y[:n], dataset), val_data=inputs(X[240:], y[240:], dataset),
              epochs=epochs,
              batch_size=16, tricks=Tricks.all(balance=balance), checkpoint_dir=ckpt, resume=resume,
              checkpoint_every=5, seed=3, log="none", lr=lr)
    return {"train": res.history.series("train_loss"), "val": res.history.series("val_loss"),
            "lr": res.history.epochs[0]["lr"],
            "weights": [p.detach().double().flatten().tolist() for p in model.parameters()]}


def glm_problem(family: str, n: int = 1200):
    """A weighted GLM problem with offsets, cut into 6 row blocks."""
    import numpy as np

    rng = np.random.default_rng(5)
    X = rng.normal(size=(n, 3))
    eta = 0.1 + X @ [0.5, -0.4, 0.2]
    off = rng.normal(scale=0.1, size=n)
    y = {"binomial": (rng.random(n) < 1 / (1 + np.exp(-eta - off))).astype(float),
         "poisson": rng.poisson(np.exp(eta + off)).astype(float)}[family]
    w = rng.uniform(0.5, 2, n)
    cuts = np.linspace(0, n, 7).astype(int)
    return X, y, w, off, list(zip(cuts[:-1], cuts[1:], strict=True))


def glm_blocks(rank: int, world: int, family: str, empty_rank: bool = False) -> dict:
    """Each rank streams its own share of the blocks (``empty_rank``: rank 0 all of
    them, the others none); the fit is all-reduced."""
    from bagoftricks.linear import GLM

    X, y, w, off, cuts = glm_problem(family)
    mine = (cuts if rank == 0 else []) if empty_rank else cuts[rank::world]
    fit = GLM(family).fit_blocks(lambda: ((X[a:b], y[a:b], w[a:b], off[a:b])
                                          for a, b in mine))
    return {"params": [fit.intercept_, *fit.coef_.tolist()], "bse": fit.bse_.tolist(),
            "deviance": fit.deviance_, "llf": fit.llf_, "iterations": fit.n_iter_}


def lightning_oversample(rank: int, world: int) -> dict:
    """One Lightning DDP epoch (gloo) with the callback's oversampling: the row indices
    this rank trained on, its head's bias and the logged epoch loss."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    os.environ.update(LOCAL_RANK=str(rank), NODE_RANK="0")
    from lightning.pytorch.strategies import DDPStrategy
    from torch.utils.data import DataLoader, TensorDataset

    from bagoftricks.integrations.lightning import BagOfTricks
    from lightning_task import Classifier, data, trainer

    X, y = data()
    loader = DataLoader(TensorDataset(X, y, torch.arange(len(y))), batch_size=16)
    module = Classifier()
    t = trainer([BagOfTricks(balance="oversample", plateau=False, seed=5)], max_epochs=1,
                devices=world, strategy=DDPStrategy(process_group_backend="gloo"))
    t.fit(module, loader)
    return {"index": torch.cat(module.seen_index).tolist(),
            "bias": module.net[-1].bias.tolist(),
            "loss": t.callback_metrics["train_loss_epoch"].item()}


def main() -> None:
    name, kwargs = sys.argv[1], json.loads(sys.argv[2])
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    dist.init_process_group("gloo", init_method="env://", rank=rank, world_size=world,
                            timeout=timedelta(seconds=60))
    from bagoftricks import distributed

    try:
        result = globals()[name](rank, world, **kwargs)
    finally:
        distributed.shutdown()
    print(json.dumps(result), flush=True)
    # Skip the interpreter's teardown: gloo's static threads sometimes abort it
    # ("terminate called without an active exception", SIGABRT) after a clean run.
    os._exit(0)


if __name__ == "__main__":
    main()
