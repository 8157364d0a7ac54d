"""End to end: the shards under Dagster (orchestrate/definitions.py, scripts/orchestrate.sh).

Dagster lives in orchestrate/.venv, not in the tap's environment: the job runs from that
Python (a small script here, or the script users run), Meltano from the tap's .venv, against a
real sandbox on loopback and the real PostgreSQL.
"""

from __future__ import annotations

import fcntl
import json
import re
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tap_botpenguin.sandbox import Bot, Fault, Sandbox, agency_bots
from tap_botpenguin.sandbox.env import agency_settings

from .helpers import (
    DBT_PASSED,
    ROOT,
    SHARD_BOTS,
    STREAM_TYPES,
    Meltano,
    assert_every_shard_loaded_once,
    postgres_env,
    run_script,
    shard_schema,
    shards_meltano,
    shards_project,
)
from .marts import assert_marts_match, pg_query

pytestmark = pytest.mark.e2e

ORCHESTRATE_PYTHON = ROOT / "orchestrate" / ".venv" / "bin" / "python"

#: Runs the job in this process (Dagster's in-process executor) on an instance of its own, and
#: writes what users would read (orchestrate/summary.py's lines) and the metadata as JSON.
IN_PROCESS = """
import json, sys
import dagster as dg
from orchestrate.definitions import JOB, defs
from orchestrate.summary import lines, materializations

with dg.DagsterInstance.ephemeral() as instance:
    result = defs.get_job_def(JOB).execute_in_process(instance=instance, raise_on_error=False)
    report = {
        "success": result.success,
        "lines": list(lines(instance, result.run_id)),
        "metadata": materializations(instance, result.run_id),
    }
with open(sys.argv[1], "w") as out:
    json.dump(report, out, default=str)
"""


@pytest.fixture(scope="session")
def dagster_set_up() -> None:
    """orchestrate/.venv, as `scripts/orchestrate.sh --set-up` makes it (once per stamp; the
    lock keeps two pytest workers from making it at once)."""
    with open(ROOT / ".venv" / ".orchestrate-set-up.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = subprocess.run(
            ["scripts/orchestrate.sh", "--set-up"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-4000:]
    assert ORCHESTRATE_PYTHON.exists()


@pytest.fixture
def agency() -> Iterator[Sandbox]:
    with Sandbox(bots=agency_bots(), rate_limit=None) as server:
        yield server


def _schemas(pg: psycopg.Connection, prefix: str) -> list[str]:
    rows = pg.execute("select nspname from pg_namespace where nspname like %s", (f"{prefix}%",))
    return sorted(schema for (schema,) in rows.fetchall())


def _run_in_process(
    tmp_path: Path, project: Path, meltano: Meltano, log: list[str] | None = None
) -> dict[str, Any]:
    """The job once; `log` receives Dagster's console output (every line of every step)."""
    report = tmp_path / "report.json"
    env = {
        **meltano.env,
        "PYTHONPATH": str(ROOT),
        "BOTPENGUIN_PROJECT_DIR": str(project),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
    }
    (tmp_path / "dagster").mkdir()
    done = subprocess.run(
        [str(ORCHESTRATE_PYTHON), "-c", IN_PROCESS, str(report)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    if log is not None:
        log.append(done.stdout + done.stderr)
    return json.loads(report.read_text())


def _expected_line(bots: list[Bot], shard: str, schema: str) -> str:
    """What a shard's line must say: the records of its bots per stream, schema, state ID."""
    counts = {
        stream: sum(len(bot.inbox(kind)) for bot in bots if bot.bot_id in SHARD_BOTS[shard])
        for stream, kind in STREAM_TYPES.items()
    }
    streams = ", ".join(f"{stream} {count}" for stream, count in sorted(counts.items()))
    state = f"dev:tap-botpenguin--{shard}-to-target-postgres"
    return f"shard {shard}: {streams} into {schema} (state {state})"


def test_the_dagster_job_loads_every_shard_and_builds_the_marts(
    dagster_set_up: None, tmp_path: Path, agency: Sandbox, prefix: str, pg: psycopg.Connection
) -> None:
    project = shards_project(tmp_path, prefix)
    meltano = shards_meltano(tmp_path, agency, project, prefix)
    report = _run_in_process(tmp_path, project, meltano)

    assert report["success"], report["lines"]
    shard_lines = [_expected_line(agency.bots, s, shard_schema(prefix, s)) for s in SHARD_BOTS]
    assert report["lines"][:-1] == shard_lines
    assert report["lines"][-1].startswith(f"marts: {DBT_PASSED}")
    assert report["lines"][-1].endswith(f" in {prefix}_analytics")
    assert set(report["metadata"]) == {"prepare", "marts"} | {
        "shard_" + s.replace("-", "_") for s in SHARD_BOTS
    }

    assert_every_shard_loaded_once(pg, prefix, agency)
    assert_marts_match(pg_query(pg), f"{prefix}_analytics", agency)

    # Each shard's state in Meltano's system database is its own: its bots, no other's.
    for shard, bots in SHARD_BOTS.items():
        state_id = f"dev:tap-botpenguin--{shard}-to-target-postgres"
        state = meltano.run("state", "get", state_id).stdout
        others = set().union(*(b for name, b in SHARD_BOTS.items() if name != shard))
        assert all(bot in state for bot in bots), (shard, state[:500])
        assert not any(bot in state for bot in others), (shard, state[:500])


def test_a_token_in_two_shards_stops_the_job_at_prepare(
    dagster_set_up: None, tmp_path: Path, agency: Sandbox, prefix: str, pg: psycopg.Connection
) -> None:
    project = shards_project(tmp_path, prefix)
    settings = agency_settings(agency.url)
    settings["SANDBOX_CUSTOMER_B_TOKEN"] = settings["SANDBOX_CUSTOMER_A_TOKEN"]
    meltano = Meltano(tmp_path, agency, cwd=project, **settings, **postgres_env(None))
    report = _run_in_process(tmp_path, project, meltano)

    assert not report["success"]
    assert report["lines"] == [
        "prepare failed: shards sandbox-a and sandbox-b hold the same token"
        " (SANDBOX_CUSTOMER_A_TOKEN and SANDBOX_CUSTOMER_B_TOKEN): one token is one allowance,"
        " so its bots belong in one shard",
        "marts: not built (every shard must load first)",
    ]
    assert report["metadata"] == {}
    assert agency.listing_requests() == []
    assert _schemas(pg, prefix) == []
    assert not (project / "shards.meltano.yml").exists()


def test_a_failing_shard_fails_with_the_taps_own_line_and_no_token(
    dagster_set_up: None, tmp_path: Path, prefix: str, pg: psycopg.Connection
) -> None:
    settings_a = agency_settings("")
    token = settings_a["SANDBOX_CUSTOMER_A_TOKEN"]
    first_bot = sorted(SHARD_BOTS["sandbox-a"])[0]
    with Sandbox(bots=agency_bots(), rate_limit=None) as agency:
        agency.inject(
            Fault("status", status=401, message=f"token {token} is invalid", bot_id=first_bot)
        )
        project = shards_project(tmp_path, prefix)
        meltano = shards_meltano(tmp_path, agency, project, prefix)
        log: list[str] = []
        report = _run_in_process(tmp_path, project, meltano, log)

    assert not report["success"]
    ok, failed, marts = report["lines"]
    assert ok == _expected_line(agency.bots, "sandbox-b", shard_schema(prefix, "sandbox-b"))
    assert marts == "marts: not built (every shard must load first)"
    # The tap's own one line (its first request refused), not a traceback nor Meltano's.
    assert failed.startswith("shard_sandbox_a failed: GET /inbox/direct/")
    assert f"(bot {first_bot}) returned 401 Unauthorized" in failed
    assert "\n" not in failed
    assert "Traceback" not in failed
    assert "shard_sandbox_a" not in report["metadata"]
    # Neither the line nor anything Dagster logged of the run holds the token.
    assert token not in json.dumps(report)
    assert "401 Unauthorized" in log[0]
    assert token not in log[0]


def _step_times(log: str, step: str) -> tuple[datetime, datetime]:
    """When a step started and succeeded, from Dagster's log lines."""
    moments = {}
    for event in ("STEP_START", "STEP_SUCCESS"):
        found = re.search(rf"^(\S+ \S+ \S+) - dagster - .* - {step} - {event} - ", log, re.M)
        assert found, (step, event)
        moments[event] = datetime.strptime(found[1], "%Y-%m-%d %H:%M:%S %z")
    return moments["STEP_START"], moments["STEP_SUCCESS"]


def test_orchestrate_sh_runs_the_sandbox_shards_side_by_side(
    dagster_set_up: None, tmp_path: Path
) -> None:
    out = tmp_path / "output"
    done = run_script(tmp_path, "orchestrate.sh")
    assert done.returncode == 0, done.stderr[-4000:]

    served = agency_bots(shape="demo")  # what the script's sandbox serves
    *shards, marts = done.stdout.splitlines()
    assert shards == [_expected_line(served, s, shard_schema("botpenguin", s)) for s in SHARD_BOTS]
    assert marts.startswith(f"marts: {DBT_PASSED}")
    assert marts.endswith(" in botpenguin_sandbox_analytics")
    assert "No shards.yml found: two shards of the local sandbox" in done.stderr
    assert len(done.stderr.splitlines()) <= 3, done.stderr

    # The multiprocess executor ran the shards at the same time, not one after the other.
    log = (out / "orchestrate.log").read_text()
    (a_start, a_end), (b_start, b_end) = (_step_times(log, f"shard_sandbox_{s}") for s in "ab")
    overlap = min(a_end, b_end) - max(a_start, b_start)
    assert overlap.total_seconds() > 0, (a_start, a_end, b_start, b_end)
