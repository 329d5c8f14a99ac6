"""Loss accumulation: the epoch loss from the batch losses already computed.

``update`` only adds tensors on the loss's device (no ``.item()``, no host sync);
``compute`` reads the size-weighted mean once, all-reducing over ranks if needed.
"""

from __future__ import annotations

import warnings

import torch

from . import distributed

_POLICIES = ("raise", "skip")


def _acc_dtype(device: torch.device) -> torch.dtype:
    # float64 sums keep epoch means exact; MPS has no float64.
    return torch.float32 if device.type == "mps" else torch.float64


def _batch_size(n, device: torch.device, dtype: torch.dtype):
    """Validate ``n`` without a host sync: ``(size, invalid)``. A positive int is checked
    at once; a tensor's value is checked lazily (``invalid`` is a 0/1 tensor that
    ``compute`` reads, and an invalid size counts as 0)."""
    if n is None:
        return 1.0, 0.0
    if isinstance(n, torch.Tensor):
        if n.numel() != 1 or n.is_complex() or n.dtype == torch.bool:
            raise ValueError(f"n: expected a scalar batch size, got a {n.dtype} tensor of "
                             f"shape {tuple(n.shape)}")
        size = n.reshape(()).to(device=device, dtype=dtype)
        valid = torch.isfinite(size) & (size >= 0)  # 0: a batch whose weights are all 0
        return torch.where(valid, size, 0.0), (~valid).to(dtype)
    if isinstance(n, bool) or not isinstance(n, int):
        raise ValueError(f"n: expected an int batch size, got {type(n).__name__}")
    if n <= 0:
        raise ValueError(f"n: batch size must be positive, got {n}")
    return float(n), 0.0


def _empty_state(dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    """[loss sum, sample count, non-finite batches, first bad step, steps, invalid sizes]"""
    return torch.tensor([0.0, 0.0, 0.0, -1.0, 0.0, 0.0], dtype=dtype, device=device)


class LossAccumulator:
    """Size-weighted running mean of batch losses.

    Parameters
    ----------
    nan_policy : {"raise", "skip"}
        What a non-finite batch loss does. ``"raise"``: ``compute`` raises a
        ``FloatingPointError`` naming the first bad step (checked at read time, since
        ``update`` never synchronizes). ``"skip"``: the batch is left out of the mean,
        counted, and ``compute`` warns with the count (also in ``n_skipped``).

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
        self.nan_policy = nan_policy
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated (call at the start of each epoch)."""
        self._state: torch.Tensor | None = None  # [sum, count, n_bad, first_bad_step]
        self.steps = 0
        self.n_skipped = 0

    def update(self, loss: torch.Tensor | float, n: int | torch.Tensor | None = None) -> None:
        """Add one batch.

        ``loss`` is the batch's mean loss (a scalar tensor) and ``n`` its batch size
        (default 1; an int or a tensor). A 1-D ``loss`` of per-sample losses is also
        accepted (then ``n`` must be omitted). Only tensor arithmetic on the loss's
        device: no ``.item()``, no host sync.
        """
        if not isinstance(loss, torch.Tensor):
            loss = torch.as_tensor(float(loss))
        loss = loss.detach()
        dtype = _acc_dtype(loss.device)
        if loss.ndim == 0 or (loss.numel() == 1 and n is not None):
            finite = torch.isfinite(loss.reshape(()))
            size, bad_n = _batch_size(n, loss.device, dtype)
            kept = finite.to(dtype) * size
            total = torch.where(finite, loss.reshape(()).to(dtype), 0.0) * kept
            bad = (~finite).to(dtype)
        else:
            if n is not None:
                raise ValueError("n: give n only with a scalar (mean) loss, not per-sample losses")
            values = loss.reshape(-1)
            finite = torch.isfinite(values)
            total = torch.where(finite, values.to(dtype), 0.0).sum()
            kept = finite.sum().to(dtype)
            bad = (~finite).any().to(dtype)
            bad_n = 0.0
        if self._state is None:
            self._state = _empty_state(dtype, loss.device)
        elif self._state.device != loss.device:
            self._state = self._state.to(loss.device)
        first, steps = self._state[3], self._state[4]
        mark_first = torch.where((bad > 0) & (first < 0), steps - first, 0.0)
        bad_n = bad_n if isinstance(bad_n, torch.Tensor) else torch.zeros_like(steps)
        self._state = self._state + torch.stack([total, kept, bad, mark_first,
                                                 torch.ones_like(steps), bad_n])
        self.steps += 1

    def compute(self) -> float:
        """The size-weighted mean loss over all updates (all ranks): one host sync."""
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
                f"steps ({where}); use nan_policy='skip' to leave them out")
        self.n_skipped = int(n_bad)
        if count == 0:
            raise ValueError("LossAccumulator.compute: no finite loss was accumulated "
                             f"({self.steps} updates, {int(n_bad)} skipped)")
        if n_bad > 0:
            warnings.warn(f"LossAccumulator: skipped {int(n_bad)} non-finite batch loss(es) "
                          f"of {self.steps} steps", RuntimeWarning, stacklevel=2)
        return total / count

    def state_dict(self, reduce: bool = False) -> dict:
        """This rank's state as CPU tensors and ints (safe for ``weights_only``).

        ``reduce=True`` (a collective: every rank must call it) sums the loss, count and
        non-finite tallies over ranks, for a checkpoint that one rank writes and that is
        loaded back into one rank (the others ``reset()``).
        """
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
        self.n_skipped = 0
