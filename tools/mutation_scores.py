"""Per-module mutation scores from ``mutmut results --all true`` on stdin.

Score = killed (timeouts count as killed, mutmut's convention; the timeouts column says
how many) / (killed + survived + no tests); mutants not
yet checked are left out and counted. Where some are unchecked and the checked ones are
a random sample (``make mutate-sample``), the 95% Wilson interval says how far the
module's score may be from the sample's. ``make mutate`` prints this table."""

from __future__ import annotations

import math
import re
import sys
from collections import Counter, defaultdict

LINE = re.compile(r"^\s*(bagoftricks\.[\w.]+?)\.x[_ǁ].*: (.+)$")


def wilson(killed: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion killed/n."""
    p = killed / n
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


def main() -> None:
    counts: dict[str, Counter] = defaultdict(Counter)
    for line in sys.stdin:
        match = LINE.match(line)
        if match:
            counts[match.group(1)][match.group(2).strip()] += 1
    print(f"{'module':34s} {'killed':>7s} {'timeouts':>9s} {'survived':>9s} {'no tests':>9s} "
          f"{'unchecked':>10s} {'score':>6s}  {'95% interval (sampled)':s}")
    for module, c in sorted(counts.items()):
        killed = c["killed"] + c["timeout"]
        tested = killed + c["survived"] + c["no tests"]
        score = f"{killed / tested:6.1%}" if tested else "     -"
        low, high = wilson(killed, tested) if tested and c["not checked"] else (None, None)
        interval = f"  {low:.0%}-{high:.0%}" if low is not None else ""
        print(f"{module:34s} {killed:7d} {c['timeout']:9d} {c['survived']:9d} {c['no tests']:9d} "
              f"{c['not checked']:10d} {score}{interval}")


if __name__ == "__main__":
    main()
