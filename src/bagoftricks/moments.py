"""Chan et al.'s exact merge of per-feature (count, mean, M2) statistics."""

from __future__ import annotations

import torch


def chan_merge(a: tuple, b: tuple) -> tuple:
    """Merge two (count, mean, m2) triples: ``delta = mean_b - mean_a``,
    ``mean = mean_a + delta n_b / n``, ``M2 = M2_a + M2_b + delta² n_a n_b / n``."""
    n_a, mean_a, m2_a = a
    n_b, mean_b, m2_b = b
    n = n_a + n_b
    safe = torch.where(n > 0, n, 1.0)
    delta = mean_b - mean_a
    return n, mean_a + delta * (n_b / safe), m2_a + m2_b + delta**2 * (n_a * n_b / safe)
