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


def blas_threads(limit: int | None):
    """A context holding NumPy's and SciPy's BLAS to ``limit`` threads (None: as is)."""
    if limit is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=limit, user_api="blas")
