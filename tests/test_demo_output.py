"""The demo when dbt fails: its error lines on screen, the full output in last-run.log."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .conftest import ROOT, one_meltano_at_a_time

pytestmark = pytest.mark.e2e


def test_a_dbt_failure_shows_its_error_lines_on_screen(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DEMO_OUTPUT_DIR": str(tmp_path / "output"),
        "DBT_DUCKDB_TARGET_PATH": str(tmp_path / "dbt" / "target"),
        "DBT_DUCKDB_LOG_PATH": str(tmp_path / "dbt" / "logs"),
        "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}",
        # dbt looks for the raw tables where the target did not load them.
        "DBT_DUCKDB_SOURCE_SCHEMA": "nowhere",
    }
    with one_meltano_at_a_time(ROOT):
        run = subprocess.run(
            ["scripts/demo.sh"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    assert run.returncode != 0
    assert '"nowhere"."leads" does not exist or has no columns' in run.stderr
    assert "meltano config set dbt-<adapter> source_schema" in run.stderr
    assert "ERROR creating sql view model analytics.stg_botpenguin__leads" in run.stderr
    assert "Done. PASS=0 WARN=0 ERROR=2" in run.stderr
    assert "tap-botpenguin done chats bot" in run.stderr  # the tap's own lines too
    assert " SKIP " not in run.stderr  # the other 34 nodes' lines are in the log only
    assert "last-run.log" in run.stderr
    log = (tmp_path / "output" / "last-run.log").read_text()
    assert " SKIP test unique_botpenguin__conversations_conversation_id" in log
    assert "This run loaded" not in run.stdout  # no summary of marts that were not built
