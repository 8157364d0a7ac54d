"""Snowflake: what each field becomes there, from target-snowflake's own rules.

No Snowflake is reachable from here and no emulator runs target-snowflake's stage loads
(fakesnow lacks `COPY` with transforms), so nothing is loaded into one. What can be checked
offline is: the target installs with the project, and the table of column names and
types in docs/warehouses.md is exactly what its naming and type mapping make of our catalog.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import ROOT

TARGET_PYTHON = ROOT / ".meltano/loaders/target-snowflake/venv/bin/python"


def _discover(tmp_path: Path, name: str, env: dict[str, str]) -> Path:
    catalog = tmp_path / f"{name}.json"
    done = subprocess.run(
        [sys.executable, "-m", "tap_botpenguin", "--config=ENV", "--discover"],
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        check=True,
    )
    catalog.write_text(done.stdout)
    return catalog


def snowflake_table(tmp_path: Path) -> list[str]:
    """The table rows scripts/snowflake_types.py prints, under target-snowflake's Python."""
    api = _discover(tmp_path, "api", {})
    snake = _discover(tmp_path, "snake", {"TAP_BOTPENGUIN_SNAKE_CASE_FIELDS": "true"})
    done = subprocess.run(
        [str(TARGET_PYTHON), str(ROOT / "scripts/snowflake_types.py"), str(api), str(snake)],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.splitlines()


@pytest.mark.e2e
def test_the_readme_table_is_what_target_snowflake_makes_of_the_catalog(tmp_path: Path) -> None:
    assert TARGET_PYTHON.exists(), "target-snowflake is not installed: run `meltano install`"
    readme = (ROOT / "docs/warehouses.md").read_text()
    block = re.search(
        r"<!-- snowflake-types:start -->\n(.*?)<!-- snowflake-types:end -->", readme, re.S
    )
    assert block, "docs/warehouses.md lacks the Snowflake table"

    rows = snowflake_table(tmp_path)

    assert block.group(1).splitlines() == rows
    assert "| `updatedAt` | `UPDATEDAT` | `UPDATED_AT` | `TIMESTAMP_NTZ` |" in rows
    assert "| `profile` | `PROFILE` | `PROFILE` | `VARIANT` |" in rows
