import os
import sys
from pathlib import Path

from hypothesis import settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("MPLBACKEND", "Agg")

settings.register_profile("ci", max_examples=60, deadline=None)
# `make mutate` runs each test once per mutant: fewer, fixed examples
settings.register_profile("mutate", max_examples=20, deadline=None, derandomize=True)
settings.load_profile("ci")
