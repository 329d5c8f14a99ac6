import os
import sys
from pathlib import Path

from hypothesis import settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("MPLBACKEND", "Agg")

settings.register_profile("ci", max_examples=60, deadline=None)
settings.load_profile("ci")
