"""The README's benchmark commands as typed, at their smallest setting (benchmarks are
not tests; this only checks that the commands run: one once crashed when given no task)."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("script, args", [
    ("standardize_floor.py", ["--seeds", "1", "--epochs", "1", "--floors", "1", "--parts"]),
    ("outcome.py", ["--quick"]),
    ("cli_defaults.py", ["--seeds", "1", "--tables", "wine"]),
])
def test_benchmark_runs(script, args, tmp_path):
    proc = subprocess.run([sys.executable, str(BENCHMARKS / script), *args],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(proc.stdout.strip().splitlines()) >= 2, proc.stdout[-1000:]
