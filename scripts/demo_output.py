"""What `scripts/demo.sh` shows of a `meltano run`: the lines a person reads.

Usage: meltano run ... 2>&1 | tee LOG | python scripts/demo_output.py LOG

Shown: every line of the tap, warnings and errors of the other plugins and Meltano, dbt's
closing `Done. PASS=.. WARN=.. ERROR=..` line and, when dbt fails or warns, its error and
warning lines (the per-node ERROR/FAIL/WARN lines and the whole report after `Completed with`
or `Encountered an error`). dbt's START/OK/PASS line for every model and test, and Meltano's
routine lines, stay in LOG; the last line says so.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator

# Meltano's console format: `<timestamp> [<level>  ] <plugin>  <message>`.
LINE = re.compile(r"^\S+ \[(?P<level>\w+)\s*\] (?P<plugin>\S+)\s+(?P<message>.*)$")
DBT_PROBLEM = re.compile(r"\d+ of \d+ (ERROR|FAIL|WARN)\b")
DBT_REPORT = ("Completed with ", "Encountered an error")


def shown(lines: Iterable[str]) -> Iterator[str]:
    """The lines of a `meltano run` a person needs, in order."""
    previous = False  # lines without Meltano's prefix continue the line before them
    dbt_report = False
    for line in lines:
        match = LINE.match(line)
        if not match:
            if previous:
                yield line
            continue
        level, plugin, message = match["level"], match["plugin"], match["message"]
        if plugin.startswith("dbt-"):
            dbt_report = dbt_report or any(marker in message for marker in DBT_REPORT)
            previous = (
                dbt_report
                or "Done. PASS=" in message
                or bool(DBT_PROBLEM.search(message))
                or level in {"warning", "error", "critical"}
            )
        elif plugin.startswith("tap-botpenguin"):
            previous = True
        elif plugin.startswith("target-"):
            previous = level in {"warning", "error", "critical"}
        else:  # Meltano itself: its routine lines (and its first-run "No state" notice) stay
            previous = level in {"error", "critical"}
        if previous:
            yield line


def main() -> None:
    """Filter stdin to stdout; finish by saying where the whole output is."""
    for line in shown(sys.stdin):
        sys.stdout.write(line)
        sys.stdout.flush()
    if len(sys.argv) > 1:
        print(f"(every line of the run, dbt's for each model and test included: {sys.argv[1]})")


if __name__ == "__main__":
    main()
