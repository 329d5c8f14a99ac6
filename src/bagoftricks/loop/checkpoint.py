"""Checkpoints of ``fit``: written atomically, loaded with ``weights_only``, and tied to
the run that wrote them (a content hash of the data and the settings), so a resume with
other data or settings is refused instead of silently mixing two runs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from ..files import atomic_save

CHECKPOINT = "checkpoint.pt"


def digest(*tensors: torch.Tensor, extra: str = "") -> str:
    """A content hash of a dataset: ``extra``, then the dtype, shape and bytes of each
    tensor (``X`` and ``y``, or a dataset's labels and sample items)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(extra.encode())
    for t in tensors:
        a = t.detach().cpu().contiguous().numpy()
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def load(path: Path, run: dict, epochs: int) -> dict:
    """The checkpoint at ``path``, refused if it was written by another run (``run``: the
    settings and data hashes) or has trained more than ``epochs`` epochs."""
    try:
        state = torch.load(path, weights_only=True)
    except Exception:  # any unpickling or zip error means the same thing here
        raise ValueError(f"checkpoint_dir: {path} is not a checkpoint written by bagoftricks, "
                         "or it is corrupted") from None
    saved = state.get("run", {}) if isinstance(state, dict) else {}
    changed = [k for k in run if saved.get(k) != run[k]]
    if changed:
        raise ValueError(f"resume: the checkpoint was written with other {', '.join(changed)}; "
                         "resume with the same data and settings, or start a new run")
    if epochs < state["epoch"]:
        raise ValueError(f"epochs: the checkpoint has already trained {state['epoch']} epochs, "
                         f"more than the {epochs} asked for")
    return state


def save(path: Path, state: dict) -> None:
    """Write ``state`` atomically (a failed write leaves the previous checkpoint)."""
    atomic_save(state, path)
