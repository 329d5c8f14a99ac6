"""Examples are code too: each script runs at its smallest setting and prints a table."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SMALLEST = {
    "bias_init_demo.py": ["--steps", "2"],
    "imbalance_evidence.py": ["--seeds", "1", "--steps", "5"],
    "leslie_rescaling.py": ["--epochs", "1", "--seeds", "1"],
    "lr_range_test.py": ["--epochs", "1", "--seeds", "1"],
    "prior_evidence.py": ["--quick"],
    "radam_raw_features.py": ["--epochs", "1", "--seeds", "1", "--out", "{tmp}/radam.png"],
}


def test_every_example_has_a_smallest_setting():
    assert {p.name for p in EXAMPLES.glob("*.py")} == set(SMALLEST)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("script", sorted(SMALLEST))
def test_example_runs(script, tmp_path):
    args = [a.format(tmp=tmp_path) for a in SMALLEST[script]]
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(proc.stdout.strip().splitlines()) >= 2, proc.stdout[-1000:]  # a table
