"""Run every benchmark in this folder, one after another (``make bench``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUITE = ["oversampling.py", "standardize.py", "centralize.py", "glm.py", "plateau.py",
         "loop_overhead.py", "outcome.py", "cli_defaults.py", "integrations.py", "big_table.py",
         "glm_stream.py"]

if __name__ == "__main__":
    only = sys.argv[1:]
    for script in SUITE:
        if only and script.removesuffix(".py") not in only:
            continue
        print(f"\n===== {script} =====", flush=True)
        subprocess.run([sys.executable, str(HERE / script)], check=True)
