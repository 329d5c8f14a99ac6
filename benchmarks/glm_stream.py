"""A GLM on a table larger than one wants in memory: ``GLM.fit_blocks`` streaming a
Parquet file by record batches against ``GLM.fit`` on the same rows read whole, each in
its own process (peak RSS from ``/proc``), on the 2e7-row table of ``big_table.py``
(20 float32 features, a 0/1 target; 3.2 GB as float64).

    python benchmarks/glm_stream.py [--data /tmp/bagoftricks-big/table.parquet] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def peak_gib() -> float:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024**2


def run(mode: str, data: str) -> dict:
    import pyarrow.parquet as pq

    from bagoftricks.linear import GLM

    features = [f"x{j}" for j in range(20)]

    def batches():
        # as bagoftricks.tabular reads: row groups page by page, 65,536-row batches
        reader = pq.ParquetFile(data, pre_buffer=False, buffer_size=1 << 20)
        for batch in reader.iter_batches(batch_size=65_536, columns=[*features, "y"]):
            X = np.empty((batch.num_rows, len(features)))  # float64, filled column-wise
            for j in range(len(features)):
                X[:, j] = batch.column(j).to_numpy()
            yield X, batch.column(len(features)).to_numpy().astype(np.float64)

    from bagoftricks.linear import glm

    sweeps = {"count": 0, "seconds": 0.0}
    sweep = glm._IRLS.sweep

    def timed_sweep(problem, beta):  # a pass forming the Gram matrix over every row
        t = time.perf_counter()
        out = sweep(problem, beta)
        if problem.streamed or problem.X.shape[0] == rows:
            sweeps["count"] += 1
            sweeps["seconds"] += time.perf_counter() - t
        return out
    glm._IRLS.sweep = timed_sweep
    t0 = time.perf_counter()
    if mode == "stream":
        rows = None
        model = GLM("binomial").fit_blocks(batches)
    else:
        parts = list(batches())
        X, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        del parts
        read, rows = time.perf_counter() - t0, len(y)
        model = GLM("binomial").fit(X, y)
    seconds = time.perf_counter() - t0
    return {"mode": mode, "seconds": seconds, "sweeps": sweeps["count"],
            "sweep_seconds": sweeps["seconds"], "iterations": model.n_iter_,
            "read": read if mode == "memory" else None, "peak_gib": peak_gib(),
            "params": [model.intercept_, *model.coef_.tolist()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="/tmp/bagoftricks-big/table.parquet")
    parser.add_argument("--mode", choices=["stream", "memory"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(run(args.mode, args.data)))
        return
    if not Path(args.data).exists():
        subprocess.run([sys.executable, str(HERE / "big_table.py"), "--generate-only"],
                       check=True)
    results = {"memory": [], "stream": []}
    for _ in range(args.repeats):  # alternated: this machine's speed drifts over minutes
        for mode in results:
            out = subprocess.run([sys.executable, "-W", "ignore", __file__, "--data",
                                  args.data, "--mode", mode],
                                 capture_output=True, text=True, check=True)
            results[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
    per = {mode: statistics.median(r["sweep_seconds"] / r["sweeps"] for r in runs)
           for mode, runs in results.items()}
    mem, st = results["memory"][0], results["stream"][0]
    print(f"{'run':32s} {'s':>7s} {'sweeps':>6s} {'s/sweep':>7s} {'peak RSS GiB':>13s}   "
          f"(medians of {args.repeats} alternated runs, each in its own process)")
    print(f"{'fit (read whole, then IRLS)':32s} "
          f"{statistics.median(r['seconds'] for r in results['memory']):7.1f} "
          f"{mem['sweeps']:6d} {per['memory']:7.2f} "
          f"{max(r['peak_gib'] for r in results['memory']):13.2f}   (reading: "
          f"{statistics.median(r['read'] for r in results['memory']):.1f} s)")
    print(f"{'fit_blocks (streamed)':32s} "
          f"{statistics.median(r['seconds'] for r in results['stream']):7.1f} "
          f"{st['sweeps']:6d} {per['stream']:7.2f} "
          f"{max(r['peak_gib'] for r in results['stream']):13.2f}")
    diff = np.max(np.abs(np.array(mem["params"]) - np.array(st["params"])))
    print(f"streamed sweep / in-memory sweep (each one pass forming the Gram matrix): "
          f"{per['stream'] / per['memory']:.2f}x; largest coefficient "
          f"difference {diff:.2e}")


if __name__ == "__main__":
    main()
