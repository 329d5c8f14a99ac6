"""Shared helpers for the benchmarks: timing medians and per-process peak memory."""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median_time(fn, repeats: int, warmup: int = 1) -> tuple[float, object]:
    """Median wall time of ``repeats`` calls after ``warmup`` untimed ones, and the last
    result; every method of every benchmark is timed this same way."""
    for _ in range(warmup):
        fn()
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def run_isolated(script: str, *args: str, timeout: float = 900) -> dict:
    """Run ``script *args`` in a fresh process; its last stdout line is a JSON dict."""
    out = subprocess.run([sys.executable, script, *args], capture_output=True, text=True,
                         timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{script} {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])
