"""Small models the command line trains, and the lookup of a model's output layer."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def tabular_mlp(in_features: int, out_features: int, hidden: Sequence[int] = (128, 64),
                seed: int = 0) -> nn.Sequential:
    """The MLP the command line trains: Linear-ReLU blocks and a linear head, initialized
    from ``seed`` without touching the caller's global RNG."""
    layers: list[nn.Module] = []
    width = in_features
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


def last_linear(model: nn.Module) -> nn.Linear | None:
    """The last ``nn.Linear`` in ``model.modules()`` order: the output head whose bias
    the bias-init trick sets (None if there is none; its ``bias`` may be None)."""
    last = None
    for module in model.modules():
        if isinstance(module, nn.Linear):
            last = module
    return last
