"""A seeded random sample of the mutants not yet checked, ``n`` per module, for a
mutation score estimated in a fraction of the hours a full run takes on 2 cores.

    mutmut results --all true | python tools/mutation_sample.py 40 SEED [PREFIX ...]

prints the names to pass to ``mutmut run`` (``make mutate-sample``); a new ``SEED`` draws
a new sample."""

from __future__ import annotations

import random
import sys
from collections import defaultdict

from mutation_scores import LINE


def main() -> None:
    n, seed, prefixes = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:] or ["bagoftricks."]
    unchecked = defaultdict(list)
    for line in sys.stdin:
        match = LINE.match(line)
        if match and match.group(2).strip() == "not checked" \
                and match.group(1).startswith(tuple(prefixes)):
            unchecked[match.group(1)].append(line.split(":")[0].strip())
    rng = random.Random(seed)
    for module in sorted(unchecked):
        names = unchecked[module]
        print("\n".join(rng.sample(names, min(n, len(names)))))


if __name__ == "__main__":
    main()
