"""Run a module as `python -m` would and write its peak RSS (KiB) to a file at exit.

Usage: python benchmarks/peak_rss.py OUTFILE MODULE [ARGS...]

`wait4`'s `ru_maxrss` cannot be used: Linux carries the parent's high-water mark across
`exec`, so a child forked from a benchmark holding 60k records "peaks" at the parent's size.
`VmHWM` in /proc/self/status belongs to the address space, which `exec` replaces.
"""

from __future__ import annotations

import atexit
import runpy
import sys
from pathlib import Path


def _write_peak(out: Path) -> None:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            out.write_text(line.split()[1])


if __name__ == "__main__":
    outfile, module, *args = sys.argv[1:]
    atexit.register(_write_peak, Path(outfile))
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
