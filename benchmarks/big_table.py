"""Peak memory of ``bagoftricks fit`` on a table larger than one would like to hold per
process: 1 and 2 ranks training from the memory-mapped cache, against reading the same
table into memory (what ``fit`` did before the cache).

A Parquet file of ROWS x 20 float32 features and a 0/1 target is generated in row groups
(never whole in memory). Each command's process tree is sampled every 0.2 s from
``/proc``: per training process, the peak of its private memory (``RssAnon``) and of
its resident pages of the mapped cache (``RssFile``, shared between the ranks), and the
kernel's own peak ``VmHWM``.

    python benchmarks/big_table.py [--rows 20000000] [--folder /tmp/bagoftricks-big]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

FEATURES = 20


def generate(path: Path, rows: int, group: int = 1_000_000) -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=FEATURES)
    with pq.ParquetWriter(path, pa.schema(
            [(f"x{j}", pa.float32()) for j in range(FEATURES)] + [("y", pa.int64())])) as out:
        for start in range(0, rows, group):
            n = min(group, rows - start)
            X = rng.normal(size=(n, FEATURES)).astype(np.float32)
            y = (X @ w + rng.normal(size=n) > 1.0).astype(np.int64)
            out.write_table(pa.table({**{f"x{j}": X[:, j] for j in range(FEATURES)}, "y": y}))


def _status(pid: int) -> dict:
    fields = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "RssAnon", "RssFile"):
                fields[key] = int(value.split()[0]) / 1024**2  # GiB
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return fields


def _tree(root: int) -> list[int]:
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                children = (task / "children").read_text().split()
                todo += [int(c) for c in children]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return out


def _is_rank(pid: int) -> bool:
    try:
        return b"LOCAL_RANK=" in Path(f"/proc/{pid}/environ").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False


def measure(cmd: list[str], ranked: bool) -> tuple[float, dict]:
    """Seconds and, per training process of the tree (torchrun's ranks, else the command
    itself), the peaks of VmHWM, RssAnon and RssFile."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peaks: dict[int, dict] = {}
    while proc.poll() is None:
        tree = _tree(proc.pid)
        ranks = [pid for pid in tree if _is_rank(pid)] if ranked else [proc.pid]
        for pid in ranks:
            for key, value in _status(pid).items():
                peak = peaks.setdefault(pid, {})
                peak[key] = max(peak.get(key, 0.0), value)
        time.sleep(0.2)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr.read()[-2000:]}")
    return time.perf_counter() - t0, peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/bagoftricks-big"))
    parser.add_argument("--generate-only", action="store_true",
                        help="write the table (for glm_stream.py) and stop")
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    data = args.folder / "table.parquet"
    if not data.exists():
        t0 = time.perf_counter()
        generate(data, args.rows)
        print(f"generated {data} ({args.rows:,} rows, {data.stat().st_size / 1e9:.2f} GB) "
              f"in {time.perf_counter() - t0:.0f} s")
    if args.generate_only:
        return
    # the runs' cache and models go to a fresh folder of their own, removed at the end:
    # nothing already in --folder is replaced or deleted
    work = Path(tempfile.mkdtemp(prefix="run-", dir=args.folder))
    cache = work / "cache"
    exe = str(Path(sys.executable).with_name("bagoftricks"))
    read = [sys.executable, "-c", "import sys; from bagoftricks.tabular import read; "
            "read(sys.argv[1], 'y')", str(data)]
    runs = [("read the table into memory", read, False)]
    for nproc in (1, 2):
        out = work / f"model-{nproc}"
        runs.append((f"fit --nproc {nproc}", [exe, "fit", str(data), "--target", "y", "--out",
                                              str(out), "--epochs", "1", "--batch-size", "4096",
                                              "--nproc", str(nproc), "--cache-dir", str(cache),
                                              "--quiet", "--device", "cpu"], nproc > 1))
    print(f"{'run':28s} {'s':>6s} {'ranks':>5s} {'peak VmHWM':>11s} {'peak RssAnon':>13s} "
          f"{'peak RssFile':>13s}  (GiB, the largest rank)")
    try:
        for name, cmd, ranked in runs:
            seconds, peaks = measure(cmd, ranked)
            top = max(peaks.values(), key=lambda p: p["VmHWM"])
            print(f"{name:28s} {seconds:6.0f} {len(peaks):5d} {top['VmHWM']:11.2f} "
                  f"{top['RssAnon']:13.2f} {top['RssFile']:13.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
