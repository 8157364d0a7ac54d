"""Compare two recordings of the suite's message streams, across a refactor.

Record with `GOLDEN_DIR=DIR .venv/bin/pytest -m "not e2e"` (tests/helpers.py `record_golden`
appends each run's messages to a file per test), once before and once after, then:

    .venv/bin/python scripts/golden_compare.py BEFORE AFTER [-v]

Timestamps inside values (extraction times, the run's start in bookmarks and notes) and
epoch-millisecond versions differ between any two runs; they are normalized. Prints each test
whose stream differs (with -v, its first differing message) and a count.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z?")


def normalized(value: Any) -> Any:
    """`value` without what differs between any two runs."""
    if isinstance(value, dict):
        return {k: normalized(v) for k, v in value.items() if k != "time_extracted"}
    if isinstance(value, list):
        return [normalized(item) for item in value]
    if isinstance(value, str):
        return TIMESTAMP.sub("<time>", value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 1_600_000_000_000:
        return "<version>"
    return value


def load(path: Path) -> list[Any]:
    return [normalized(json.loads(line)) for line in path.read_text().splitlines()]


def main() -> None:
    before, after = Path(sys.argv[1]), Path(sys.argv[2])
    verbose = "-v" in sys.argv
    names = sorted(
        {p.name for p in before.glob("*.jsonl")} | {p.name for p in after.glob("*.jsonl")}
    )
    same = 0
    for name in names:
        old, new = before / name, after / name
        if not old.exists() or not new.exists():
            print(f"only in {'before' if old.exists() else 'after'}: {name}")
            continue
        a, b = load(old), load(new)
        if a == b:
            same += 1
            continue
        first = next(
            (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
        )
        print(f"differs: {name}: {len(a)} vs {len(b)} messages, first at {first}")
        if verbose:
            print("  before:", json.dumps(a[first] if first < len(a) else None)[:600])
            print("  after: ", json.dumps(b[first] if first < len(b) else None)[:600])
    print(f"{same} of {len(names)} streams identical")


if __name__ == "__main__":
    main()
