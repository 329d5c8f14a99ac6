"""Chan et al.'s exact merge of per-feature (count, mean, M2) statistics."""

from __future__ import annotations


def chan_merge(a: tuple, b: tuple) -> tuple:
    """Merge two (count, mean, m2) triples of NumPy arrays or tensors:
    ``delta = mean_b - mean_a``, ``mean = mean_a + delta n_b / n``,
    ``M2 = M2_a + M2_b + delta² n_a n_b / n`` (an empty side leaves the other as it is)."""
    n_a, mean_a, m2_a = a
    n_b, mean_b, m2_b = b
    n = n_a + n_b
    safe = n + (n == 0)  # 1 where both sides are empty (then delta's terms are 0)
    delta = mean_b - mean_a
    return n, mean_a + delta * (n_b / safe), m2_a + m2_b + delta**2 * (n_a * n_b / safe)
