"""Per-module mutation scores from ``mutmut results --all true`` on stdin.

Score = killed (timeouts count as killed) / (killed + survived + no tests); mutants not
yet checked are left out and counted. ``make mutate`` prints this table."""

from __future__ import annotations

import re
import sys
from collections import Counter, defaultdict

LINE = re.compile(r"^\s*(bagoftricks\.[\w.]+?)\.x[_ǁ].*: (.+)$")


def main() -> None:
    counts: dict[str, Counter] = defaultdict(Counter)
    for line in sys.stdin:
        match = LINE.match(line)
        if match:
            counts[match.group(1)][match.group(2).strip()] += 1
    print(f"{'module':34s} {'killed':>7s} {'survived':>9s} {'no tests':>9s} "
          f"{'unchecked':>10s} {'score':>6s}")
    for module, c in sorted(counts.items()):
        killed = c["killed"] + c["timeout"]
        tested = killed + c["survived"] + c["no tests"]
        score = f"{killed / tested:6.1%}" if tested else "     -"
        print(f"{module:34s} {killed:7d} {c['survived']:9d} {c['no tests']:9d} "
              f"{c['not checked']:10d} {score}")


if __name__ == "__main__":
    main()
