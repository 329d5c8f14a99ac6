"""Loss accumulation: the epoch loss from the batch losses already computed.

``update`` keeps the loss tensor (no ``.item()``, no host sync) and folds the kept
losses into float64 sums on their device every ``FOLD_EVERY`` updates; ``compute``
reads the size-weighted mean once, all-reducing over ranks if needed.
"""

from __future__ import annotations

import warnings

import torch

from . import distributed
from ._validation import user_stacklevel

_POLICIES = ("raise", "omit", "skip")  # "skip": the former name of "omit", still accepted


def _acc_dtype(device: torch.device) -> torch.dtype:
    # float64 sums keep epoch means exact; MPS has no float64.
    return torch.float32 if device.type == "mps" else torch.float64


def _check_size(n) -> None:
    """Validate ``n`` without a host sync: an int is checked at once; a tensor's value
    is checked when the pending updates are folded (negative or non-finite is counted
    and reported by ``compute``)."""
    if isinstance(n, torch.Tensor):
        if n.numel() != 1 or n.is_complex() or n.dtype == torch.bool:
            raise ValueError(f"n: expected a scalar batch size, got a {n.dtype} tensor of "
                             f"shape {tuple(n.shape)}")
        return
    if isinstance(n, bool) or not isinstance(n, int):
        raise ValueError(f"n: expected an int batch size, got {type(n).__name__}")
    if n <= 0:
        raise ValueError(f"n: batch size must be positive, got {n}")


def _empty_state(dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    """[loss sum, sample count, non-finite batches, first bad step, steps, invalid sizes]"""
    return torch.tensor([0.0, 0.0, 0.0, -1.0, 0.0, 0.0], dtype=dtype, device=device)


FOLD_EVERY = 1024  # pending batch losses folded into the running sums at a time


class LossAccumulator:
    """Size-weighted running mean of batch losses.

    Parameters
    ----------
    nan_policy : {"raise", "omit"}
        What a non-finite batch loss does. ``"raise"``: ``compute`` raises a
        ``FloatingPointError`` naming the first bad step (checked at read time, since
        ``update`` never synchronizes). ``"omit"`` (``"skip"`` is an alias): the batch
        is left out of the mean, counted, and ``compute`` warns with the count (also in
        ``n_skipped``).

    Example
    -------
    >>> acc = LossAccumulator()
    >>> for x, y in loader:                       # doctest: +SKIP
    ...     loss = loss_fn(model(x), y); loss.backward(); opt.step()
    ...     acc.update(loss, n=len(y))
    >>> epoch_loss = acc.compute(); acc.reset()   # doctest: +SKIP
    """

    def __init__(self, nan_policy: str = "raise") -> None:
        if nan_policy not in _POLICIES:
            raise ValueError(f"nan_policy: expected one of {_POLICIES}, got {nan_policy!r}")
        self.nan_policy = "omit" if nan_policy == "skip" else nan_policy
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated (call at the start of each epoch)."""
        self._state: torch.Tensor | None = None  # see _empty_state
        self._pending: list = []                 # (loss, n) not yet folded in
        self.steps = 0
        self.n_skipped = 0

    def update(self, loss: torch.Tensor | float, n: int | torch.Tensor | None = None) -> None:
        """Add one batch.

        ``loss`` is the batch's mean loss (a scalar tensor) and ``n`` its batch size
        (default 1; an int, or a tensor such as a sum of weights, where 0 is allowed).
        A 1-D ``loss`` of per-sample losses is also accepted (then ``n`` must be
        omitted). No host sync: the loss is kept, and every ``FOLD_EVERY`` updates the
        kept losses are folded into float64 sums on their device in a few tensor ops.
        """
        if not isinstance(loss, torch.Tensor):
            loss = torch.as_tensor(float(loss))
        if loss.ndim == 0 or (loss.numel() == 1 and n is not None):
            _check_size(1 if n is None else n)
            self._pending.append((loss.detach().reshape(()), 1 if n is None else n))
        else:
            if n is not None:
                raise ValueError("n: give n only with a scalar (mean) loss, not per-sample losses")
            self._fold()
            self._add_per_sample(loss.detach().reshape(-1))
        self.steps += 1
        if len(self._pending) >= FOLD_EVERY:
            self._fold()

    def _add(self, total, kept, bad, first_bad, steps, bad_sizes, device) -> None:
        if self._state is None:
            self._state = _empty_state(_acc_dtype(device), device)
        elif self._state.device != device:
            self._state = self._state.to(device)
        first = self._state[3]
        first = torch.where((first < 0) & (first_bad >= 0), first_bad, first)
        self._state = torch.stack([self._state[0] + total, self._state[1] + kept,
                                   self._state[2] + bad, first, self._state[4] + steps,
                                   self._state[5] + bad_sizes])

    def _fold(self) -> None:
        """Fold the pending scalar losses into the running sums (a few tensor ops)."""
        if not self._pending:
            return
        losses = torch.stack([loss for loss, _ in self._pending])
        device, dtype = losses.device, _acc_dtype(losses.device)
        sizes = [n for _, n in self._pending]
        if any(isinstance(n, torch.Tensor) for n in sizes):
            sizes = torch.stack([torch.as_tensor(n).reshape(()).to(device, dtype)
                                 for n in sizes])
        else:
            sizes = torch.tensor(sizes, dtype=dtype, device=device)
        valid = torch.isfinite(sizes) & (sizes >= 0)
        sizes = torch.where(valid, sizes, 0.0)
        finite = torch.isfinite(losses)
        kept = torch.where(finite, sizes, 0.0)
        total = (torch.where(finite, losses.to(dtype), 0.0) * kept).sum()
        bad = ~finite
        base = self.steps - len(self._pending)
        first_bad = torch.where(bad.any(), base + bad.to(torch.int8).argmax().to(dtype), -1.0)
        self._add(total, kept.sum(), bad.sum().to(dtype), first_bad, len(self._pending),
                  (~valid).sum().to(dtype), device)
        self._pending = []

    def _add_per_sample(self, values: torch.Tensor) -> None:
        dtype = _acc_dtype(values.device)
        finite = torch.isfinite(values)
        bad = (~finite).any().to(dtype)
        self._add(torch.where(finite, values.to(dtype), 0.0).sum(), finite.sum().to(dtype), bad,
                  torch.where(bad > 0, float(self.steps), -1.0).to(dtype), 1, 0.0,
                  values.device)

    def compute(self) -> float:
        """The size-weighted mean loss over all updates (all ranks): one host sync."""
        self._fold()
        local = self._state if self._state is not None else _empty_state()
        total, count, n_bad, bad_sizes = distributed.all_reduce_sum(local[[0, 1, 2, 5]]).tolist()
        first_bad = int(local[3].item())
        if bad_sizes:
            raise ValueError(f"n: {int(bad_sizes)} update(s) had a tensor batch size that is "
                             "negative or not finite")
        if n_bad > 0 and self.nan_policy == "raise":
            where = (f"first at step {first_bad} of this rank" if first_bad >= 0
                     else "on another rank")
            raise FloatingPointError(
                f"LossAccumulator: {int(n_bad)} non-finite batch loss(es) after {self.steps} "
                f"steps ({where}); use nan_policy='omit' to leave them out")
        self.n_skipped = int(n_bad)
        if count == 0:
            raise ValueError("LossAccumulator.compute: no finite loss was accumulated "
                             f"({self.steps} updates, {int(n_bad)} skipped)")
        if n_bad > 0:
            warnings.warn(f"LossAccumulator: skipped {int(n_bad)} non-finite batch loss(es) "
                          f"of {self.steps} steps", RuntimeWarning, stacklevel=user_stacklevel())
        return total / count

    def state_dict(self, reduce: bool = False) -> dict:
        """This rank's state as CPU tensors and ints (safe for ``weights_only``).

        ``reduce=True`` (a collective: every rank must call it) sums the loss, count and
        non-finite tallies over ranks, for a checkpoint that one rank writes and that is
        loaded back into one rank (the others ``reset()``).
        """
        self._fold()
        state = self._state.detach().cpu().clone() if self._state is not None else None
        if reduce:
            local = state if state is not None else _empty_state()
            summed = distributed.all_reduce_sum(local[[0, 1, 2, 5]])
            state = torch.cat([summed[:3], local[3:5], summed[3:]])
        return {"state": state, "steps": self.steps, "nan_policy": self.nan_policy}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a state from ``state_dict`` (moved to the device of the next update)."""
        self.nan_policy = state_dict["nan_policy"]
        self.steps = int(state_dict["steps"])
        self._state = state_dict["state"]
        self._pending = []
        self.n_skipped = 0
