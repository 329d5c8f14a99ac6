"""Run a scenario on N gloo processes on 127.0.0.1, each a subprocess with a timeout.

A scenario is a function ``name(rank, world_size, **kwargs) -> JSON-able`` in
``scenarios.py``; ``run(name, world_size, **kwargs)`` returns the list of per-rank results.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(name: str, world_size: int = 2, timeout: float = 120, expect_kill: bool = False,
        **kwargs) -> list:
    """Per-rank results; with ``expect_kill`` every rank must die by SIGKILL instead."""
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(port), "WORLD_SIZE": str(world_size)}
    procs = [subprocess.Popen([sys.executable, str(HERE / "scenarios.py"), name,
                               json.dumps(kwargs)], env={**env, "RANK": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in range(world_size)]
    results = []
    try:
        for r, p in enumerate(procs):
            out, err = p.communicate(timeout=timeout)
            if expect_kill:
                if p.returncode != -9:
                    raise AssertionError(f"rank {r} of {name!r} was not killed "
                                         f"({p.returncode}):\n{err}")
                continue
            if p.returncode != 0:
                raise AssertionError(f"rank {r} of {name!r} failed ({p.returncode}):\n{err}")
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return results
