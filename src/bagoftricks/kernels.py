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

