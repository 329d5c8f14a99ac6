"""Oversampling by indices (DESIGN.md chapter 3): the data is never copied.

One epoch holds every original index once plus, for each class ``c``, ``n_max - n_c``
indices drawn with replacement from class ``c``; the whole epoch is shuffled from
``(seed, epoch)``. Construction is vectorized: class members are found once, and each
epoch costs one ``randperm`` of its length, the draws, and one gather.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

from .labels import as_numpy

_CHUNK = 1 << 16  # indices converted to Python ints at a time while iterating


def _class_codes(labels) -> tuple[np.ndarray, np.ndarray]:
    """Validated labels as codes ``0..K-1`` (non-negative int labels are used as they are)."""
    y = as_numpy(labels, "labels")
    if y.ndim != 1:
        raise ValueError(f"labels: expected a 1-D array of class labels, got shape {y.shape}")
    if y.size == 0:
        raise ValueError("labels: empty, nothing to sample")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            raise ValueError("labels: contains NaN or infinite values")
        if not (y == np.floor(y)).all():
            raise ValueError("labels: float labels must be whole numbers (class indices)")
    if y.dtype.kind in "biuf" and y.min() >= 0 and y.max() < 2 * y.size + 1024:
        small_int = y.dtype.kind in "bi" or (y.dtype.kind == "u" and y.itemsize < 8)
        codes = y if small_int else y.astype(np.int64)
        counts = np.bincount(codes)
        present = np.flatnonzero(counts)
        if len(present) != len(counts):  # compact the gaps so codes are 0..K-1
            remap = np.full(len(counts), -1, dtype=np.int32)
            remap[present] = np.arange(len(present), dtype=np.int32)
            codes = remap[codes]
            counts = counts[present]
        return codes, counts
    _, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
    return codes.astype(np.int32).reshape(-1), counts


def _members(codes: np.ndarray, counts: np.ndarray, wanted: np.ndarray,
             dtype: torch.dtype) -> dict[int, torch.Tensor]:
    """Indices of each class in ``wanted``: a scan per class for one or two classes,
    else one stable argsort of small-int keys (NumPy's O(n) radix sort)."""
    dtype = np.int32 if dtype == torch.int32 else np.int64
    if len(wanted) <= 2:
        return {int(c): torch.from_numpy(np.flatnonzero(codes == c).astype(dtype))
                for c in wanted}
    k = len(counts)
    keys = codes.astype(np.uint8 if k <= 256 else np.uint16) if k <= 65536 else codes
    order = np.argsort(keys, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    return {int(c): torch.from_numpy(order[starts[c]:starts[c + 1]].astype(dtype))
            for c in wanted}


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit generator seed from ``(seed, epoch)``, the same on every machine."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0] >> 1)


class EpochSampler(Sampler[int]):
    """The batch-order contract both samplers share: an epoch is a pure function of
    ``(seed, epoch)`` (``epoch_indices``), sharded like ``DistributedSampler`` for a
    DataLoader (``__iter__``), or cut into global batches and this rank's share of each
    (``global_batches``) for the loop, resumable from a position inside the epoch."""

    total: int  # epoch length before sharding

    def _init_sharding(self, seed: int, num_replicas: int | None, rank: int | None,
                       drop_last: bool) -> None:
        # never shard behind the caller's back: a framework that wraps samplers (Lightning's
        # DistributedSamplerWrapper) shards once more, and half of every epoch would be lost
        num_replicas = 1 if num_replicas is None else num_replicas
        rank = 0 if rank is None else rank
        if isinstance(num_replicas, bool) or not isinstance(num_replicas, int) \
                or num_replicas < 1:
            raise ValueError(f"num_replicas: expected a positive int, got {num_replicas!r}")
        if not isinstance(rank, int) or not 0 <= rank < num_replicas:
            raise ValueError(f"rank: expected 0 <= rank < num_replicas={num_replicas}, "
                             f"got {rank!r}")
        self.seed, self.drop_last = int(seed), drop_last
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch, self._start, self._position = 0, 0, 0
        if drop_last:
            self.num_samples = self.total // num_replicas
        else:
            self.num_samples = -(-self.total // num_replicas)

    def epoch_indices(self, epoch: int | None = None) -> torch.Tensor:
        """The whole (unsharded) epoch as one int tensor of length ``total``."""
        raise NotImplementedError

    def _generator(self, epoch: int | None) -> torch.Generator:
        return torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch if epoch is None
                                                        else epoch))

    def global_batches(self, batch_size: int, epoch: int | None = None
                       ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The epoch as ``(global batch, this rank's strided share of it)`` pairs: every
        rank sees the same global batches, and the shares partition each one."""
        order = self.epoch_indices(epoch).long()
        return [(b, b[self.rank::self.num_replicas]) for b in order.split(batch_size)]

    def __len__(self) -> int:
        return self.num_samples - self._start

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s order from the next iteration on, from its start."""
        self.epoch, self._start, self._position = int(epoch), 0, 0

    def shard(self, epoch: int | None = None) -> torch.Tensor:
        """This rank's indices of an epoch (padded or truncated to split evenly)."""
        indices = self.epoch_indices(epoch)
        size = self.num_samples * self.num_replicas
        if size > self.total:
            reps = -(-size // self.total)
            indices = torch.cat([indices] + [indices] * (reps - 1))[:size]
        return indices[self.rank:size:self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        indices = self.shard()[self._start:]
        self._position = self._start
        self._start = 0  # a later iteration starts the (next) epoch from the beginning
        return self._yield(indices)

    def _yield(self, indices: torch.Tensor) -> Iterator[int]:
        for chunk in indices.split(_CHUNK):
            for i in chunk.tolist():
                self._position += 1
                yield i

    def state_dict(self, consumed: int | None = None) -> dict:
        """Epoch and position. With a DataLoader, which fetches ahead, pass ``consumed``:
        the number of this rank's indices actually used (batches done x batch size)."""
        position = self._position if consumed is None else int(consumed)
        return {"epoch": self.epoch, "position": position, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        """Resume: the next iteration yields the rest of that epoch."""
        if int(state["seed"]) != self.seed:
            raise ValueError(f"state: saved with seed {state['seed']}, this sampler has "
                             f"seed {self.seed}")
        position = int(state["position"])
        if not 0 <= position <= self.num_samples:
            raise ValueError(f"state: position {position} outside 0..{self.num_samples}")
        self.epoch, self._start, self._position = int(state["epoch"]), position, position


class ShuffleSampler(EpochSampler):
    """Every index once per epoch, shuffled from ``(seed, epoch)``: the plain run's batch
    order, with the same interface as ``OversamplingSampler``."""

    def __init__(self, n: int, seed: int = 0, num_replicas: int | None = None,
                 rank: int | None = None, drop_last: bool = False) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n: expected a positive number of samples, got {n!r}")
        self.total = n
        self._init_sharding(seed, num_replicas, rank, drop_last)

    def epoch_indices(self, epoch: int | None = None) -> torch.Tensor:
        return torch.randperm(self.total, generator=self._generator(epoch))


class OversamplingSampler(EpochSampler):
    """Oversample every class up to the largest one, moving indices only.

    Parameters
    ----------
    labels : (n,) class labels (ints, whole floats or any sortable values).
    seed : base of the per-epoch shuffle; the same ``(seed, epoch)`` gives the same order.
    shuffle : shuffle the epoch (else originals in order, then the draws by class).
    num_replicas, rank : shard like ``DistributedSampler``: pass
        ``bagoftricks.distributed.world_size()`` and ``rank()`` to shard a DataLoader
        yourself. The default (1, 0) never shards, so a framework that wraps the sampler
        for DDP (Lightning's ``DistributedSamplerWrapper``) shards it exactly once.
    drop_last : drop the tail so the epoch splits evenly; otherwise the epoch is padded
        by repeating its first indices, as ``DistributedSampler`` does.

    ``len(sampler)`` is this rank's share of the ``K * n_max`` indices of an epoch.
    Call ``set_epoch(e)`` before each epoch. ``state_dict()`` holds the epoch and the
    position inside it; a sampler loaded from it yields exactly the remaining indices.
    """

    def __init__(self, labels, seed: int = 0, shuffle: bool = True,
                 num_replicas: int | None = None, rank: int | None = None,
                 drop_last: bool = False) -> None:
        codes, counts = _class_codes(labels)
        if len(counts) == 1:
            warnings.warn("labels: a single class, nothing to balance; the sampler yields a "
                          "plain permutation", UserWarning, stacklevel=2)
        self.n = codes.size
        self.class_counts = counts
        self.n_max = int(counts.max())
        self.total = len(counts) * self.n_max  # epoch length before sharding
        self.shuffle = shuffle
        self._dtype = torch.int32 if self.total < 2**31 else torch.int64
        minority = np.flatnonzero(counts < self.n_max)
        self._members = _members(codes, counts, minority, self._dtype)
        self._init_sharding(seed, num_replicas, rank, drop_last)

    def epoch_indices(self, epoch: int | None = None) -> torch.Tensor:
        """The whole (unsharded) epoch as one int tensor of length ``K * n_max``."""
        gen = self._generator(epoch)
        table = torch.empty(self.total, dtype=self._dtype)
        torch.arange(self.n, out=table[:self.n])
        offset = self.n
        for c, members in self._members.items():
            extra = self.n_max - int(self.class_counts[c])
            draw = torch.randint(len(members), (extra,), generator=gen, dtype=members.dtype)
            torch.index_select(members, 0, draw, out=table[offset:offset + extra])
            offset += extra
        if not self.shuffle:
            return table
        # Gather in chunks back into the permutation's own memory: no third epoch-sized
        # tensor (index_select is ~4x faster than advanced indexing with int32 indices).
        order = torch.randperm(self.total, generator=gen, dtype=self._dtype)
        for chunk in order.split(_CHUNK * 16):
            chunk.copy_(table.index_select(0, chunk))
        return order
