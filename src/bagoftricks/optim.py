"""RAdam without its blind steps.

RAdam (Liu et al., 2020) rectifies Adam's adaptive step once the variance of the
adaptive rate is tractable, ``rho_t > 5``; before that (the first 5 steps with
``beta2 = 0.999``) torch's ``RAdam`` takes un-normalised momentum-SGD steps
``p -= lr * m_hat``, whose size is the raw gradient's: on unstandardized features that
is the explosion the Bag of Tricks page shows (RAdam issue #54). The authors' own code
offers ``degenerated_to_sgd=False``: no update at all in those steps, the moments still
accumulating. ``RAdam`` here is torch's with that option (off by default: no blind steps).
"""

from __future__ import annotations

import torch


def rho(step: int, beta2: float) -> float:
    """RAdam's length of the approximated simple moving average at ``step`` (1-based)."""
    rho_inf = 2 / (1 - beta2) - 1
    return rho_inf - 2 * step * beta2**step / (1 - beta2**step)


class RAdam(torch.optim.RAdam):
    """torch's ``RAdam``; with ``degenerated_to_sgd=False`` (the default) a parameter is
    left unchanged in the steps where ``rho_t <= 5`` (its moments still update), as in
    the RAdam authors' implementation. State dicts are torch's (interchangeable)."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, *, degenerated_to_sgd: bool = False,
                 **kwargs) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         **kwargs)
        self.degenerated_to_sgd = bool(degenerated_to_sgd)

    @torch.no_grad()
    def step(self, closure=None):
        if self.degenerated_to_sgd:
            return super().step(closure)
        loss = None
        if closure is not None:  # the gradients must exist to know who is blind
            with torch.enable_grad():
                loss = closure()
        blind = []
        for group in self.param_groups:
            beta2 = group["betas"][1]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state.get(p, {})
                done = int(state["step"]) if "step" in state else 0
                if rho(done + 1, beta2) <= 5:
                    blind.append((p, p.detach().clone()))
        super().step()
        for p, before in blind:  # undo the un-normalised step; the moments stay updated
            p.copy_(before)
        return loss
