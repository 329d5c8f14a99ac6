"""Read the next blocks while this one is computed, so a streamed pass costs about the
larger of reading and computing rather than their sum.

On 2 cores the overlap pays only with BLAS held to one thread meanwhile (two BLAS threads
and a reader fight for the cores: a streamed sweep took 2.1x the in-memory one that way,
1.2-1.3x with ``blas_threads(1)``; ``benchmarks/glm_stream.py``)."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

_DONE = object()


def prefetched(blocks: Iterable, depth: int = 2) -> Iterator:
    """The items of ``blocks``, produced by a background thread at most ``depth`` ahead.

    ``blocks`` is iterated and closed in that thread; an exception it raises is raised
    here, where its item would have been. Stopping early (``close()``, an exception in
    the consumer) stops the thread and closes ``blocks``."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        source = iter(blocks)
        try:
            for item in source:
                if not put((item, None)):
                    return
            put((_DONE, None))
        except BaseException as error:  # noqa: BLE001 (handed to the consumer)
            put((_DONE, error))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="bagoftricks-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, error = items.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        worker.join()


_CONTROLLER = None


def _blas_pools():
    """threadpoolctl's controller of the BLAS libraries loaded now (made once: making
    one costs 0.6 ms, limiting through it 8 us)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController
        _CONTROLLER = ThreadpoolController().select(user_api="blas")
    return _CONTROLLER


def blas_threads(limit: int):
    """A context holding NumPy's and SciPy's BLAS to ``limit`` threads."""
    return _blas_pools().limit(limits=limit)


def one_blas_pool():
    """A context holding every BLAS library but NumPy's own to one thread.

    NumPy and SciPy wheels each bundle an OpenBLAS with its own thread pool; a GLM pass
    runs in NumPy's while SciPy's solves the small systems in between, and a pool's
    threads spin a while after each call, so on 2 cores the two fought (a 1e5 x 150
    logit fit took 1.7 to 4.3 s, 0.44 s with SciPy's pool at one thread). Where both
    share one library (a conda MKL), that one is left as is."""
    pools = _blas_pools()
    others = [lib.filepath for lib in pools.lib_controllers if not numpy_own(lib.filepath)]
    if len(others) == len(pools.lib_controllers):  # NumPy's is not told apart
        return contextlib.nullcontext()
    return pools.select(filepath=others).limit(limits=1)


def numpy_own(path: str) -> bool:
    """Whether a library file is one NumPy's wheel bundles (``numpy.libs/`` on Linux and
    Windows, ``numpy/.dylibs/`` on macOS)."""
    parts = Path(path).parts
    return "numpy.libs" in parts or "numpy" in parts
