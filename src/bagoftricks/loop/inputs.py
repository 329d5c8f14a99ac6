"""The training inputs ``fit`` takes, behind one interface, and where it trains.

- ``TensorInput``: ``(X, y)`` arrays or tensors (a ``TensorDataset``, or a ``Subset`` of
  one: its rows are used in place, never copied, so a memory-mapped table trains
  without being read into memory); each batch is indexed out of a tensor already on the
  device (the fast path: no DataLoader).
- ``DatasetInput``: any map-style ``Dataset`` returning ``(x, y)``; batches come from one
  DataLoader whose batch sampler is the run's sampler (so the samplers own the batch
  order for both kinds), with the caller's ``num_workers``/``pin_memory``/... options.

Both give the labels (CPU, for the tricks' setup), a pass over the inputs (for the
standardization statistics), the batches of an epoch from a position inside it, the
validation batches, a random sample of rows (for the LR range test), and a content
digest that ties checkpoints to their data.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from ..labels import dataset_labels
from .checkpoint import digest

PRECISIONS = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}
LOADER_OPTIONS = ("num_workers", "pin_memory", "persistent_workers", "prefetch_factor",
                  "worker_init_fn", "multiprocessing_context", "timeout")


def _local_processes() -> tuple[int, int]:
    """This machine's number of processes and this one's index among them (torchrun's
    ``LOCAL_WORLD_SIZE`` and ``LOCAL_RANK``; 1 and 0 outside it)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def device_of(module: torch.nn.Module) -> torch.device:
    """Where ``module``'s first parameter (or buffer) lives; the CPU for an empty one."""
    return next(iter([*module.parameters(), *module.buffers()]), torch.empty(0)).device


def resolve_device(device, local_processes: int | None = None) -> torch.device:
    """``"auto"``: this process's own GPU (``cuda:LOCAL_RANK`` under torchrun), else MPS,
    else the CPU; when a machine runs more processes than it has GPUs, every process
    trains on the CPU (NCCL needs a GPU per process), with a warning. ``"cuda"`` under
    torchrun is this process's GPU. Anything else must name a device available here.
    ``local_processes`` overrides the environment's count (for a launcher, before it
    starts them)."""
    n_local, local_rank = _local_processes()
    n_local = local_processes or n_local
    if device == "auto":
        if torch.cuda.is_available():
            if n_local <= torch.cuda.device_count():
                return torch.device("cuda", local_rank)
            if local_rank == 0:  # once a machine
                warnings.warn(f"device='auto': {n_local} processes on this machine but "
                              f"{torch.cuda.device_count()} CUDA device(s); training on the "
                              f"CPU (start one process per GPU to train on them)", stacklevel=2)
            return torch.device("cpu")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device: {device!r} is not a device (use 'auto', 'cpu', 'cuda', "
                         f"'cuda:1', 'mps')") from None
    if resolved.type == "cuda" and resolved.index is None and n_local > 1:
        if n_local > torch.cuda.device_count():
            raise ValueError(f"device: {device!r} with {n_local} processes on this machine "
                             f"needs a CUDA device each; there are "
                             f"{torch.cuda.device_count()} (use fewer processes, or 'cpu')")
        resolved = torch.device("cuda", local_rank)
    if resolved.type == "cuda" and not (torch.cuda.is_available() and (
            resolved.index is None or resolved.index < torch.cuda.device_count())):
        raise ValueError(f"device: {device!r} is not available here (CUDA devices: "
                         f"{torch.cuda.device_count()})")
    if resolved.type == "mps" and not (getattr(torch.backends, "mps", None)
                                       and torch.backends.mps.is_available()):
        raise ValueError(f"device: {device!r} is not available here")
    return resolved


def check_precision(precision, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``precision`` (None for full precision)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {tuple(PRECISIONS)}, got {precision!r}")
    if precision == "16" and device.type == "cpu":
        raise ValueError("precision: '16' (float16 with a GradScaler) needs a GPU; use "
                         "'bf16' on the CPU")
    return PRECISIONS[precision]


MAX_RETRIES = 16  # halvings of the loss scale one batch may take (2**16 down to 1)


def overflowed(scaler: torch.amp.GradScaler, optimizer: torch.optim.Optimizer) -> bool:
    """Whether the float16 gradients just unscaled hold an inf or NaN; if so the scale is
    halved (``update``) so that the batch can be computed again. torch's ``GradScaler``
    skips such a step instead, and starting from 2**16 it skips the first few: a short
    run, or one with large inputs, loses a share of its steps. (``GradScaler.step``
    reads the same flags: one more host read per step, no new pipeline stall.)"""
    found = scaler._found_inf_per_device(optimizer)  # torch's own record of the unscale
    if not any(v.item() for v in found.values()):
        return False
    scaler.update()
    return True


class TensorInput:
    """``(X, y)`` tensors, or the ``rows`` of them that form this set: CPU tensors for
    setup, device tensors for the batches (the same tensors on the CPU: no copy)."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor, device: torch.device,
                 rows: torch.Tensor | None = None) -> None:
        self.X, self.device, self.rows = X, device, rows
        self.labels = y if rows is None else y[rows]
        self._X, self._y = X.to(device), y.to(device)
        self._rows = None if rows is None else rows.to(device)

    def __len__(self) -> int:
        return len(self.labels)

    def _take(self, index: torch.Tensor):
        """Rows ``index`` of this set (positions into ``rows`` when it is a subset);
        ``index_select``: the same rows as ``X[index]`` at two thirds of its cost."""
        if self._rows is not None:
            index = self._rows.index_select(0, index)
        return self._X.index_select(0, index), self._y.index_select(0, index)

    def inputs(self, chunk: int = 65536) -> Iterator[torch.Tensor]:
        if self.rows is None:
            return iter(self.X.split(chunk))
        return (self.X[rows] for rows in self.rows.split(chunk))

    def sample(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """At most ``n`` rows drawn at random, as CPU tensors (only those are copied)."""
        X, y = self._take(random_rows(len(self), n, seed).to(self.device))
        return X.cpu(), y.cpu()

    def epoch(self, batches: list, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for _, mine in batches[start:]:
            yield self._take(mine.to(self.device))

    def validation(self, size: int = 8192):
        if self._rows is None:
            return zip(self._X.split(size), self._y.split(size), strict=True)
        return ((self._X[rows], self._y[rows]) for rows in self._rows.split(size))

    def digest(self) -> str:
        parts = (self.X, self.labels) if self.rows is None else (self.X, self.labels,
                                                                 self.rows)
        return digest(*parts)


class _Batches:
    """A batch sampler whose batches are replaced each epoch (one DataLoader, so
    persistent workers survive from epoch to epoch)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class DatasetInput:
    """A map-style ``Dataset`` of ``(x, y)`` items, read through a DataLoader."""

    def __init__(self, dataset: Dataset, labels, device: torch.device,
                 loader_options: dict | None, name: str) -> None:
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError(f"{name}: expected (X, y) or a map-style Dataset, got "
                            f"{type(dataset).__name__}")
        options = dict(loader_options or {})
        unknown = set(options) - set(LOADER_OPTIONS)
        if unknown:
            raise ValueError(f"loader_options: unknown {sorted(unknown)}; expected some of "
                             f"{LOADER_OPTIONS}")
        self.dataset, self.device, self.options = dataset, device, options
        found = torch.as_tensor(dataset_labels(dataset, labels))
        self.labels = found.float() if found.is_floating_point() else found.long()
        self._sampler = _Batches()
        self._loader = DataLoader(dataset, batch_sampler=self._sampler, **options)

    def __len__(self) -> int:
        return len(self.labels)

    def _moved(self, loader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        pinned = self.options.get("pin_memory", False)  # pinned batches copy asynchronously
        for batch in loader:
            yield (batch[0].to(self.device, non_blocking=pinned).float(),
                   batch[1].to(self.device, non_blocking=pinned))

    def inputs(self, chunk: int = 4096) -> Iterator[torch.Tensor]:
        for x, _ in self._moved(DataLoader(self.dataset, batch_size=chunk, **self.options)):
            yield x.cpu()

    def epoch(self, batches: list, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self._sampler.batches = [mine.tolist() for _, mine in batches[start:]]
        return self._moved(self._loader)

    def validation(self, size: int = 4096):
        return self._moved(DataLoader(self.dataset, batch_size=size, **self.options))

    def sample(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """At most ``n`` rows drawn at random, read through the loader, as CPU tensors."""
        rows = Subset(self.dataset, random_rows(len(self), n, seed).tolist())
        X, y = zip(*self._moved(DataLoader(rows, batch_size=4096, **self.options)),
                   strict=True)
        return torch.cat(X).cpu(), torch.cat(y).cpu()

    def digest(self) -> str:
        """The labels, the length, the type and three items (first, middle, last): a
        dataset is not hashed whole (it may not fit in memory)."""
        n = len(self.dataset)
        items = [self.dataset[i] for i in sorted({0, n // 2, n - 1})]
        return digest(self.labels, *(torch.as_tensor(item[0]) for item in items),
                      extra=f"{type(self.dataset).__qualname__}{n}")


def random_rows(length: int, n: int, seed: int) -> torch.Tensor:
    """``min(n, length)`` distinct positions of ``range(length)`` in a seeded order."""
    return torch.randperm(length, generator=torch.Generator().manual_seed(seed))[:n]


def as_input(data, labels, device: torch.device, loader_options, name: str):
    """``data`` as a ``TensorInput`` (a pair, a ``TensorDataset`` of two tensors or a
    ``Subset`` of one) or a ``DatasetInput`` (any other Dataset)."""
    rows = None
    if isinstance(data, Subset) and _tensor_pair(data.dataset):
        rows, data = torch.as_tensor(data.indices, dtype=torch.long), data.dataset
    if _tensor_pair(data):
        if labels is not None:
            raise ValueError(f"labels: {name} holds its labels (a TensorDataset)")
        X, y = data.tensors
        return TensorInput(X.float(), y.float() if y.is_floating_point() else y, device, rows)
    if isinstance(data, (tuple, list)):
        if labels is not None:
            raise ValueError(f"labels: only for a Dataset; {name} is a pair (X, y)")
        if len(data) != 2:
            raise TypeError(f"{name}: expected a pair (X, y), got {len(data)} items")
        X, y = (torch.as_tensor(a) for a in data)
        if len(X) != len(y):
            raise ValueError(f"{name}: X has {len(X)} rows but y has {len(y)}")
        if len(X) == 0:
            raise ValueError(f"{name}: no rows")
        return TensorInput(X.float(), y.float() if y.is_floating_point() else y, device)
    return DatasetInput(data, labels, device, loader_options, name)


def _tensor_pair(data) -> bool:
    return isinstance(data, TensorDataset) and len(data.tensors) == 2

