"""The encoded table as memory-mapped ``.npy`` files, for training on tables larger than
memory and for sharing one copy between the ranks of a machine.

``write`` encodes the file in one streaming pass, block by block, into ``X.npy``
(float32, rows x features) and ``y.npy`` in a folder named by the data's fingerprint
(the file's path, size and modification time, and the schema), and publishes it with one
rename; ``open_cached`` maps it copy-on-write, so every process reading it shares the
operating system's page cache instead of holding its own copy. A changed file or
schema has another fingerprint, hence another folder: a stale cache is never read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .tabular import Scan, encode, iter_batches


def cache_folder(path: Path, scan: Scan, root: Path) -> Path:
    """Where the encoded ``path`` lives under ``root``: ``encoded-<fingerprint>``."""
    stat = Path(path).stat()
    h = hashlib.blake2b(digest_size=12)
    h.update(json.dumps([str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns,
                         asdict(scan.schema), scan.rows], default=str).encode())
    return Path(root) / f"encoded-{h.hexdigest()}"


def write(path: Path, scan: Scan, folder: Path) -> Path:
    """Encode ``path`` into ``folder`` (unless it is already there); returns ``folder``."""
    if (folder / "y.npy").exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".encoding-", dir=folder.parent))
    try:
        width = len(scan.schema.feature_names())
        y_type = np.int64 if scan.schema.task == "classification" else np.float32
        X = np.lib.format.open_memmap(tmp / "X.npy", "w+", np.float32, (scan.rows, width))
        y = np.lib.format.open_memmap(tmp / "y.npy", "w+", y_type, (scan.rows,))
        start = 0
        for batch in iter_batches(path):
            Xb, yb = encode(batch, scan.schema)
            X[start:start + len(Xb)], y[start:start + len(Xb)] = Xb, yb
            start += len(Xb)
        if start != scan.rows:
            raise ValueError(f"DATA: {path} changed while it was read ({start} rows, the "
                             f"scan found {scan.rows})")
        X.flush()
        y.flush()
        del X, y
        os.replace(tmp, folder)  # published whole, or not at all
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def open_cached(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` mapped copy-on-write from ``folder`` (pages shared between processes
    until one writes, which training never does)."""
    return (np.load(folder / "X.npy", mmap_mode="c"), np.load(folder / "y.npy", mmap_mode="c"))
