"""What `scripts/demo.sh` shows of a `meltano run`: the lines a person reads.

Usage: meltano run ... 2>&1 | tee LOG | python scripts/demo_output.py LOG

Shown: every line of the tap (its warnings included); Meltano's own errors (not its routine
warnings, such as "No state was found" on a first run); the lines of targets and dbt that
Meltano logs at warning, error or critical (it logs most of what they print at info, so a
target's own warnings stay in LOG unless it fails); dbt's closing `Done. PASS=.. WARN=..
ERROR=..` line and, when dbt fails or warns, its per-node ERROR/FAIL/WARN lines and the whole
report after `Completed with` or `Encountered an error`. When Meltano says a plugin failed
(`Loader failed`, or a block such as dbt's ended with an error) and that plugin has shown no
error line of its own, its last lines (up to 40: the end of its traceback) come just before,
since they say why. The same when the output ends inside a block (Meltano itself crashed, say
with a `BrokenPipeError` as a loader died under a writing tap): every plugin of that block that
has not said why. dbt's START/OK/PASS line for every model and test, and Meltano's routine
lines, stay in LOG; the last line says so.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator

# Meltano's console format: `<timestamp> [<level>  ] <plugin>  <message>`.
LINE = re.compile(r"^\S+ \[(?P<level>\w+)\s*\] (?P<plugin>\S+)\s+(?P<message>.*)$")
DBT_PROBLEM = re.compile(r"\d+ of \d+ (ERROR|FAIL|WARN)\b")
DBT_NODE = re.compile(r"\d+ of \d+ ")  # a model's or test's progress line: never a cause
DBT_REPORT = ("Completed with ", "Encountered an error")
PROBLEM_LEVELS = {"warning", "error", "critical"}
RECENT = 40  # lines kept per plugin to say why it failed: a traceback's end


def _failed(message: str, plugin: str) -> bool:
    """Whether Meltano's error `message` (`Loader failed`, ...) is about `plugin`."""
    text = message.lower()
    if "failed" not in text:
        return False
    if plugin in message:  # `dbt-duckdb build` failed with exit code: 1
        return True
    if plugin.startswith("tap-"):
        return "extractor" in text
    if plugin.startswith("target-"):
        return "loader" in text
    return "mapper" in text and not plugin.startswith("dbt-")


class Screen:
    """Decides line by line; keeps each plugin's recent hidden lines until its block ends."""

    def __init__(self) -> None:
        self.previous = False  # lines without Meltano's prefix continue the line before them
        self.plugin = ""
        self.dbt_report = False
        self.recent: defaultdict[str, deque[str]] = defaultdict(lambda: deque(maxlen=RECENT))
        self.explained: set[str] = set()  # plugins that showed an error line of their own
        self.failures: list[str] = []  # Meltano's `... failed` lines in this block

    def feed(self, line: str) -> Iterator[str]:
        """The lines to show now: `line`, or none, or a failed plugin's last lines and `line`."""
        match = LINE.match(line)
        if match:
            level, self.plugin, message = match["level"], match["plugin"], match["message"]
            if self.plugin == "meltano":
                yield from self._meltano(level, message)
            elif self.plugin.startswith("dbt-"):
                self.previous = self._dbt(level, message)
                if DBT_NODE.search(message) and not self.previous:
                    return  # not kept: it says which node ran, never why dbt failed
            elif self.plugin.startswith("tap-botpenguin"):
                self.previous = True
            else:  # targets, mappers
                self.previous = level in PROBLEM_LEVELS
                if level in {"error", "critical"}:
                    self.explained.add(self.plugin)
        if self.previous:
            yield line
        elif self.plugin not in {"", "meltano"}:
            self.recent[self.plugin].append(line)

    def _dbt(self, level: str, message: str) -> bool:
        self.dbt_report = self.dbt_report or any(marker in message for marker in DBT_REPORT)
        if self.dbt_report or "ERROR" in message or level in {"error", "critical"}:
            self.explained.add(self.plugin)
        return (
            self.dbt_report
            or "Done. PASS=" in message
            or bool(DBT_PROBLEM.search(message))
            or level in PROBLEM_LEVELS
        )

    def _meltano(self, level: str, message: str) -> Iterator[str]:
        """Its routine lines (and its first-run "No state" notice) stay hidden; its errors show."""
        self.previous = level in {"error", "critical"}
        block_end = message.startswith("Block run completed")
        if self.previous:
            if "failed" in message:  # `Loader failed`, `Extractor failed`, ...
                self.failures.append(message)
            # A failed plugin's lines may still arrive after `Loader failed`: the block's end
            # shows those too. A command (dbt) ends its block with an error and no name: then
            # every plugin of the block that has not said why.
            unexplained = [name for name in self.recent if name not in self.explained]
            failed = [n for n in unexplained if any(_failed(m, n) for m in self.failures)]
            if block_end and not self.failures:
                failed = unexplained
            for name in failed:
                yield from self.recent.pop(name)
        if block_end:  # the next block's plugins start afresh
            self.recent.clear()
            self.failures.clear()

    def end(self) -> Iterator[str]:
        """The output ended: inside a block (Meltano broke off), the lines that say why."""
        for name, recent in self.recent.items():
            if name not in self.explained:
                yield from recent
        self.recent.clear()


def shown(lines: Iterable[str]) -> Iterator[str]:
    """The lines of a `meltano run` a person needs, in order."""
    screen = Screen()
    for line in lines:
        yield from screen.feed(line)
    yield from screen.end()


def main() -> None:
    """Filter stdin to stdout; finish by saying where the whole output is."""
    for line in shown(sys.stdin):
        sys.stdout.write(line)
        sys.stdout.flush()
    if len(sys.argv) > 1:
        print(f"(every line of the run, dbt's for each model and test included: {sys.argv[1]})")


if __name__ == "__main__":
    main()
