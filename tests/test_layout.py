"""The package's shape: modules small enough to read whole (the layers' import rules are
`lint-imports`' job, run by scripts/test.sh)."""

from __future__ import annotations

from .helpers import ROOT

MOST_LINES = 400


def test_no_module_of_the_package_is_over_400_lines() -> None:
    package = ROOT / "tap_botpenguin"
    sizes = {
        str(path.relative_to(package)): len(path.read_text().splitlines())
        for path in package.rglob("*.py")
    }
    too_long = {name: lines for name, lines in sizes.items() if lines > MOST_LINES}
    assert not too_long, f"split these along a seam: {too_long}"
