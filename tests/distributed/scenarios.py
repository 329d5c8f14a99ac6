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


def sampler_shard(rank: int, world: int, labels: list, epoch: int) -> list:
    """The sampler takes num_replicas/rank from the process group by default."""
    from bagoftricks import OversamplingSampler

    sampler = OversamplingSampler(labels, seed=11)
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


def main() -> None:
    name, kwargs = sys.argv[1], json.loads(sys.argv[2])
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    dist.init_process_group("gloo", init_method="env://", rank=rank, world_size=world,
                            timeout=timedelta(seconds=60))
    try:
        result = globals()[name](rank, world, **kwargs)
    finally:
        dist.destroy_process_group()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
