"""Compiled CPU kernels (numba) for loops torch has no fused operation for."""

from __future__ import annotations

from functools import cache

import numpy as np

CHUNKS = 8  # row chunks per call, spread over the cores


@cache
def _shifted_moments_kernel():
    from numba import njit, prange  # imported on first use: numba's import is slow

    @njit(parallel=True, cache=True)
    def kernel(x, shift, chunks):
        m, p = x.shape
        s1 = np.zeros((chunks, p))
        s2 = np.zeros((chunks, p))
        step = (m + chunks - 1) // chunks
        for c in prange(chunks):
            for i in range(c * step, min(m, (c + 1) * step)):
                for j in range(p):
                    d = np.float64(x[i, j]) - np.float64(shift[j])
                    s1[c, j] += d
                    s2[c, j] += d * d
        return s1.sum(0), s2.sum(0)
    return kernel


def shifted_moments(x: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column ``sum(x - shift)`` and ``sum((x - shift)**2)`` of a C-contiguous
    (rows, p) float array, float64 accumulators, in one parallel pass over ``x``.

    Runs on as many threads as torch is set to use, and leaves torch's setting as it
    found it (numba's OpenMP start-up resets it otherwise)."""
    import numba
    import torch

    kernel = _shifted_moments_kernel()
    threads = torch.get_num_threads()
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        return kernel(x, shift.astype(x.dtype), CHUNKS)
    finally:
        torch.set_num_threads(threads)


# reassociation lets the sums vectorize: the result depends on the machine's SIMD width,
# never on the call
_SUMS = {"reassoc", "nsz"}


@cache
def _gradient_kernels():
    from numba import njit

    @njit(cache=True, nogil=True, fastmath=_SUMS)
    def clip(g, max_norm):
        squares = 0.0
        for i in range(g.size):
            v = np.float64(g[i])
            squares += v * v
        norm = np.sqrt(squares)
        if norm + 1e-6 > max_norm:
            coef = max_norm / (norm + 1e-6)
            for i in range(g.size):
                g[i] = np.float64(g[i]) * coef
        return norm

    @njit(cache=True, nogil=True, fastmath=_SUMS)
    def centralize(g, offsets, rows, cols):
        for k in range(offsets.size):
            n = cols[k]
            for r in range(rows[k]):
                row = g[offsets[k] + r * n:offsets[k] + (r + 1) * n]  # (vectorizes;
                total = 0.0                                            # indexing g does not)
                for i in range(n):
                    total += np.float64(row[i])
                mean = total / n
                for i in range(n):
                    row[i] = np.float64(row[i]) - mean
    return clip, centralize


def clip_flat_(g: np.ndarray, max_norm: float) -> float:
    """Scale the 1-D float array ``g`` in place so its L2 norm is at most ``max_norm``
    (torch's ``clip_grad_norm_`` rule: coefficient ``max_norm / (norm + 1e-6)`` when
    below 1) in one compiled pass (two when it scales); returns the norm before, summed
    in float64."""
    return _gradient_kernels()[0](g, float(max_norm))


def centralize_flat_(g: np.ndarray, offsets: np.ndarray, rows: np.ndarray,
                     cols: np.ndarray) -> None:
    """Subtract, in place, each row's mean from the row-major matrices ``g[offsets[k]:
    offsets[k] + rows[k] * cols[k]]`` of the 1-D float array ``g`` (float64 sums), in
    one compiled pass."""
    _gradient_kernels()[1](g, offsets, rows, cols)
