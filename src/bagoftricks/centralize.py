"""Gradient centralization (Yong et al. 2020, DESIGN.md chapter 7) and clipping.

For every weight whose gradient has ``ndim > 1``, subtract the mean over all dimensions
but the first (per output neuron of a linear layer, per output channel of a
convolution); biases and other 1-D parameters are left alone. Centralization is an
orthogonal projection, so it never increases a gradient's norm: clip first (in the
loop), centralize inside ``step()``, and the clipped bound still holds.

Recipe (RAdam + clipping + centralization)::

    opt = Centralized(torch.optim.RAdam(model.parameters(), lr=1e-3))
    loss.backward()
    clip_grad_norm_(model.parameters(), max_norm=1.0)   # after scaler.unscale_ with AMP
    opt.step()                                           # centralizes, then RAdam's step
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable

import torch
from torch import nn
from torch.nn.utils import clip_grad_norm_

__all__ = ["Centralized", "centralize_", "clip_grad_norm_", "clip_grads_"]


def _centralize_grad(grad: torch.Tensor, extra: torch.Tensor | None = None) -> None:
    """In place: ``grad -= row means`` (of ``grad + extra`` when ``extra`` is given).

    Contiguous gradients are viewed as (rows, cols) and take one row-sum kernel and one
    fused ``sub_(sums, alpha=-1/cols)``: one kernel fewer per tensor than ``mean`` then
    ``sub_``, which is what makes it at least as fast as the plain per-tensor loop.
    """
    if grad.is_contiguous():
        rows = grad.view(grad.shape[0], -1)
        sums = rows.sum(1, keepdim=True)
        if extra is not None:
            sums += extra.reshape(rows.shape).sum(1, keepdim=True)
        rows.sub_(sums, alpha=1.0 / rows.shape[1])
        return
    dims = tuple(range(1, grad.ndim))  # non-contiguous: reduce over trailing dims directly
    mean = grad.mean(dim=dims, keepdim=True)
    grad.sub_(mean if extra is None else mean + extra.mean(dim=dims, keepdim=True))


def _tensors(params) -> Iterable[torch.Tensor]:
    if isinstance(params, nn.Module):
        return params.parameters()
    if isinstance(params, torch.Tensor):
        return [params]
    params = list(params)
    if params and isinstance(params[0], dict):  # optimizer param groups
        return [p for group in params for p in group["params"]]
    return params


def centralize_(params) -> None:
    """Centralize, in place, the gradient of every parameter with ``grad.ndim > 1``.

    ``params``: a module, a tensor, an iterable of tensors, or optimizer param groups.
    Parameters without a gradient, and 1-D ones, are untouched.
    """
    with torch.no_grad():
        for p in _tensors(params):
            grad = getattr(p, "grad", False)
            if grad is False:
                raise ValueError(f"params: expected tensors, got {type(p).__name__}")
            if grad is not None and grad.ndim > 1 and not grad.is_sparse:
                _centralize_grad(grad)


def clip_grads_(grads: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale ``grads`` in place so their global L2 norm is at most ``max_norm``; returns
    the norm before clipping. torch's ``clip_grad_norm_`` rule (coefficient
    ``max_norm / (norm + 1e-6)``, clamped at 1) in a few fused calls: half its cost per
    step on small models, where the per-call Python work dominates. On the CPU the
    norms are combined on the host in float64 (reading them costs nothing there) and
    the no-op multiply is skipped; elsewhere nothing leaves the device."""
    if not grads:
        return torch.zeros(())
    first = grads[0]
    if any(g.device != first.device or g.dtype != first.dtype for g in grads):
        norms = [torch.linalg.vector_norm(g).to(first.device, torch.float32) for g in grads]
        total = torch.linalg.vector_norm(torch.stack(norms))
        coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
        for g in grads:
            g.mul_(coef.to(g.device, g.dtype))
        return total
    if first.device.type == "cpu":
        return torch.tensor(clip_cpu_grads_(grads, max_norm), dtype=first.dtype)
    return clip_device_grads_(grads, max_norm)


def clip_device_grads_(grads: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """``clip_grads_`` for gradients of one device and dtype, without leaving the device
    (no host sync: the coefficient is a tensor)."""
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, torch.clamp(max_norm / (total + 1e-6), max=1.0))
    return total


def clip_cpu_grads_(grads: list[torch.Tensor], max_norm: float) -> float:
    """``clip_grads_`` for CPU gradients of one dtype; returns the norm as a float."""
    total = math.sqrt(math.fsum(n.item() ** 2 for n in torch._foreach_norm(grads)))
    if total + 1e-6 > max_norm:  # else the coefficient is 1: a no-op
        torch._foreach_mul_(grads, max_norm / (total + 1e-6))
    return total


def _coupled_weight_decay(optimizer: torch.optim.Optimizer, group: dict) -> float:
    """The weight decay a group adds to the gradient (0 when decoupled, as in AdamW)."""
    if isinstance(optimizer, torch.optim.AdamW) or group.get("decoupled_weight_decay"):
        return 0.0
    return float(group.get("weight_decay", 0.0) or 0.0)


class Centralized(torch.optim.Optimizer):
    """Wrap any torch optimizer so that ``step()`` centralizes the gradients first.

    ``param_groups``, ``state``, ``zero_grad``, ``state_dict`` and ``load_state_dict`` are
    the wrapped optimizer's, so LR schedulers and ``GradScaler`` work unchanged
    (``scaler.step(opt)`` unscales before calling ``step``, hence before centralizing).

    Parameters
    ----------
    optimizer : the optimizer to wrap.
    include : parameters to centralize (default: all with ``ndim > 1``). A param group
        with ``centralize=False`` is skipped (for example embeddings).

    Ordering with weight decay follows the paper's official code (``SGD_GC``,
    ``Adam_GC``): the centralized direction is ``GC(grad + wd * p)``. When the wrapped
    optimizer adds coupled weight decay itself, ``step`` subtracts ``wd * rowmean(p)``
    as well, so the update equals the paper's; decoupled decay (AdamW) is not a
    gradient term and is left alone.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, include=None) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(f"optimizer: expected a torch.optim.Optimizer, got "
                             f"{type(optimizer).__name__}")
        self.optimizer = optimizer
        self.include = None if include is None else {id(p) for p in _tensors(include)}
        # torch's hook registries (OrderedDicts: their handles hold weak references)
        for name in ("step_pre", "step_post", "state_dict_pre", "state_dict_post",
                     "load_state_dict_pre", "load_state_dict_post"):
            setattr(self, f"_optimizer_{name}_hooks", OrderedDict())
        self._patch_step_function()  # step() runs the registered hooks, as torch's do

    def __getstate__(self) -> dict:
        return dict(self.__dict__)

    def __setstate__(self, state: dict) -> None:
        # set attributes directly: the properties below need self.optimizer first
        self.__dict__.update(state)
        self._patch_step_function()

    # The wrapped optimizer's groups, state and defaults, shared rather than copied (its
    # load_state_dict rebinds them, so these must be looked up each time).
    param_groups = property(lambda self: self.optimizer.param_groups,
                            lambda self, v: setattr(self.optimizer, "param_groups", v))
    state = property(lambda self: self.optimizer.state,
                     lambda self, v: setattr(self.optimizer, "state", v))
    defaults = property(lambda self: self.optimizer.defaults,
                        lambda self, v: setattr(self.optimizer, "defaults", v))

    @torch.no_grad()
    def centralize(self) -> None:
        """Centralize the gradients this wrapper covers (what ``step`` does first)."""
        for group in self.param_groups:
            if not group.get("centralize", True):
                continue
            wd = _coupled_weight_decay(self.optimizer, group)
            for p in group["params"]:
                grad = p.grad
                if grad is None or grad.ndim < 2 or grad.is_sparse:
                    continue
                if self.include is not None and id(p) not in self.include:
                    continue
                _centralize_grad(grad, p.detach() * wd if wd else None)

    def step(self, closure=None):
        """Centralize, then the wrapped step. A ``closure`` is handed to the wrapped
        optimizer with the centralization inside it, after each re-evaluation (LBFGS
        calls it several times per step)."""
        if closure is None:
            self.centralize()
            return self.optimizer.step()

        def centralized_closure():
            loss = closure()
            self.centralize()
            return loss
        return self.optimizer.step(centralized_closure)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        """The wrapped optimizer's state dict, with the hooks registered on this wrapper
        run around it as torch runs them (a post hook may return a replacement)."""
        for hook in self._optimizer_state_dict_pre_hooks.values():
            hook(self)
        state = self.optimizer.state_dict()
        for hook in self._optimizer_state_dict_post_hooks.values():
            state = hook(self, state) or state
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Load into the wrapped optimizer, with this wrapper's load hooks run around it
        (a pre hook may return a replacement state dict)."""
        for hook in self._optimizer_load_state_dict_pre_hooks.values():
            state_dict = hook(self, state_dict) or state_dict
        self.optimizer.load_state_dict(state_dict)
        for hook in self._optimizer_load_state_dict_post_hooks.values():
            hook(self)

    def add_param_group(self, param_group: dict) -> None:
        """Add a group to the wrapped optimizer; with ``include``, its parameters are
        centralized too (set ``centralize=False`` on the group to leave them alone)."""
        self.optimizer.add_param_group(param_group)
        if self.include is not None:
            self.include |= {id(p) for p in self.optimizer.param_groups[-1]["params"]}

    def __repr__(self) -> str:
        return f"Centralized({self.optimizer!r})"
