"""Every gradient as a view of one flat CPU buffer, so that clipping and centralization
take one compiled pass over all of them instead of a few torch calls per tensor.

On small CPU models the per-call work dominates: for the mnist1d MLP's six tensors,
clipping takes 0.033 ms on the buffer against 0.118 for ``clip_grads_``, and
centralization 0.037 against 0.110 for ``centralize_`` (``benchmarks/centralize.py``,
cold caches); ``fit`` with every trick went from 1.28x to 1.10x a hand-written loop
(``benchmarks/loop_overhead.py``). By hand::

    grads = FlatGradients(model.parameters())
    for xb, yb in batches:
        grads.zero_()                      # instead of optimizer.zero_grad()
        loss_fn(model(xb), yb).backward()
        grads.clip_(1.0)
        grads.centralize_()
        optimizer.step()
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from .centralize import _tensors, centralize_, clip_cpu_grads_
from .kernels import centralize_flat_, clip_flat_

FLOATS = (torch.float32, torch.float64)


class Rows(NamedTuple):
    """Matrices of the buffer, each a parameter's gradient viewed as ``(shape[0], -1)``."""

    params: list[torch.Tensor]
    offsets: np.ndarray
    rows: np.ndarray
    cols: np.ndarray


class FlatGradients:
    """The gradients of ``params`` (those requiring one: contiguous CPU tensors of one
    float dtype) as views of one flat buffer.

    The buffer is made at the first ``clip_`` or ``centralize_`` after a backward that
    gave every parameter a dense gradient; from then on ``zero_`` zeroes it (so a
    parameter left without a gradient in a later step keeps a zero one, as with
    ``zero_grad(set_to_none=False)``). Before that, when a first backward left a
    parameter without one, or in a step where something replaced a gradient, both fall
    back to the per-tensor torch functions.

    Parameters
    ----------
    params : a module, tensors or optimizer param groups; those requiring a gradient
        are kept (each once).

    Raises
    ------
    ValueError
        When they are not contiguous CPU tensors of one float dtype.
    """

    def __init__(self, params) -> None:
        self.params = list(dict.fromkeys(p for p in _tensors(params) if p.requires_grad))
        if not self.supports(self.params):
            kinds = sorted({f"{p.device.type} {p.dtype}" + ("" if p.is_contiguous() else
                                                              " non-contiguous")
                            for p in self.params})
            raise ValueError(f"params: expected contiguous CPU tensors of one float dtype "
                             f"that require a gradient, got {kinds or 'none'}")
        sizes = [p.numel() for p in self.params]
        self.offsets = dict(zip(map(id, self.params), np.cumsum([0, *sizes[:-1]]), strict=True))
        self.rows = self.rows_of([p for p in self.params if p.ndim > 1])
        self.flat: torch.Tensor | None = None
        self.views: list[torch.Tensor] | None = None
        self.array: np.ndarray | None = None
        self.usable = True  # False once a first backward left a parameter without one

    @staticmethod
    def supports(params: list[torch.Tensor]) -> bool:
        """Whether ``params`` are contiguous CPU tensors of one float dtype (at least
        one): a view of the buffer has a contiguous parameter's layout (torch's gradient
        layout contract; channels-last weights keep the torch path)."""
        kinds = {(p.device.type, p.dtype) for p in params}
        return (len(kinds) == 1 and next(iter(kinds)) in {("cpu", t) for t in FLOATS}
                and all(p.is_contiguous() for p in params))

    def rows_of(self, params) -> Rows:
        """Where the gradients of ``params`` with ``ndim > 1`` lie in the buffer (what
        ``centralize_`` takes)."""
        params = [p for p in _tensors(params) if p.ndim > 1 and p.numel()]
        missing = [tuple(p.shape) for p in params if id(p) not in self.offsets]
        if missing:
            raise ValueError(f"params: tensors of shapes {missing} are not in this buffer")
        return Rows(params, *(np.array(v, dtype=np.int64) for v in (
            [self.offsets[id(p)] for p in params], [p.shape[0] for p in params],
            [p.numel() // p.shape[0] for p in params])))

    def zero_(self) -> None:
        """Zero the buffer (before it exists: set the gradients to None, as torch does)."""
        if self.views is None:
            for p in self.params:
                p.grad = None
            return
        for p, view in zip(self.params, self.views, strict=True):
            if p.grad is not view:  # replaced (or set to None) since: put back
                p.grad = view
        self.flat.zero_()

    def buffer(self) -> np.ndarray | None:
        """The buffer as a NumPy array when every gradient is in it, else None."""
        if self.views is None:
            grads = [p.grad for p in self.params]
            if not self.usable or any(g is None or g.is_sparse for g in grads):
                self.usable = False
                return None
            self.flat = torch.cat([g.reshape(-1) for g in grads])
            self.views = [self.flat[o:o + p.numel()].view_as(p)
                          for p, o in zip(self.params, self.offsets.values(), strict=True)]
            for p, view in zip(self.params, self.views, strict=True):
                p.grad = view
            self.array = self.flat.numpy()
            return self.array
        if any(p.grad is not view for p, view in zip(self.params, self.views, strict=True)):
            return None
        return self.array

    def clip_(self, max_norm: float) -> float:
        """Clip the gradients to global L2 norm ``max_norm`` (torch's rule); returns
        the norm before."""
        g = self.buffer()
        if g is None:
            return clip_cpu_grads_([p.grad for p in self.params if p.grad is not None],
                                   max_norm)
        return clip_flat_(g, max_norm)

    def centralize_(self, rows: Rows | None = None) -> None:
        """Centralize the gradients ``rows`` (from ``rows_of``) locates; default every
        parameter with ``ndim > 1``."""
        rows = self.rows if rows is None else rows
        g = self.buffer()
        if g is None:
            centralize_(rows.params)
        else:
            centralize_flat_(g, rows.offsets, rows.rows, rows.cols)
