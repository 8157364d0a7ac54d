"""Shared fixtures: a live sandbox on loopback and helpers that run the tap for real."""

from __future__ import annotations

import copy
import dataclasses
import fcntl
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import settings

from tap_botpenguin.sandbox import (
    PAGE_BOUND_MESSAGE,
    QUIET_BOT,
    SANDBOX_CUSTOMER,
    SANDBOX_TOKEN,
    WEBSITE_BOT,
    WHATSAPP_BOT,
    Bot,
    Sandbox,
    default_bots,
)
from tap_botpenguin.sandbox.env import sandbox_settings
from tap_botpenguin.sandbox.undocumented import UNDOCUMENTED_FIELDS, add_undocumented_fields
from tap_botpenguin.tap import TapBotPenguin

ROOT = Path(__file__).resolve().parents[1]
MELTANO = Path(sys.executable).parent / "meltano"
#: The end-to-end tests' PostgreSQL (scripts/postgres.sh starts it and exports the port).
PG = {
    "host": os.environ.get("TEST_PG_HOST", "127.0.0.1"),
    "port": int(os.environ.get("TEST_PG_PORT", "5432")),
    "user": "tap_botpenguin",
    "password": "tap_botpenguin",
    "dbname": "tap_botpenguin",
}
ALL_BOTS = [WEBSITE_BOT, WHATSAPP_BOT, QUIET_BOT]
STREAM_TYPES = {"leads": "lead", "chats": "non-lead"}

# Property-based tests draw the same examples on every run (CI must be reproducible).
# `HYPOTHESIS_PROFILE=wide scripts/test.sh tests/test_hostile.py` draws new random ones, ten
# times as many, to look further.
WIDE = os.environ.get("HYPOTHESIS_PROFILE") == "wide"
settings.register_profile("ci", derandomize=True)
settings.register_profile("wide", derandomize=False)
settings.load_profile("wide" if WIDE else "ci")


def examples(count: int) -> int:
    """How many examples a property-based test draws under the active profile."""
    return count * 10 if WIDE else count


@cache
def _default_bots() -> list[Bot]:
    return default_bots()


def fresh_bots() -> list[Bot]:
    """The demo account's bots, deep-copied so a test may change its inboxes."""
    return copy.deepcopy(_default_bots())


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(bots=fresh_bots()) as server:
        yield server


#: The tap's log line naming undocumented fields (tests/test_schema_evolution*.py).
ANNOUNCED = "field(s) its documentation does not list"
#: The type the tap learns for each of the sandbox's undocumented fields (numbers: `number`).
LEARNED_KINDS = {
    name: "number" if kind == "integer" else kind for name, kind in UNDOCUMENTED_FIELDS.items()
}


@pytest.fixture
def undocumented_api() -> Iterator[Sandbox]:
    """A sandbox whose records carry undocumented fields of every JSON type, no rate limit."""
    bots = fresh_bots()
    add_undocumented_fields(bots)
    with Sandbox(bots=bots, rate_limit=None) as server:
        yield server


def tap_at(moment: datetime) -> type[TapBotPenguin]:
    """The real tap, on a clock that says `moment` (to run it hours or days apart)."""

    class TapAt(TapBotPenguin):
        def now(self) -> datetime:
            return moment

    return TapAt


def base_config(sandbox: Sandbox, **overrides: Any) -> dict[str, Any]:
    """Config reading every sandbox bot with the shared token."""
    config: dict[str, Any] = {
        "bot_token": SANDBOX_TOKEN,
        "customer_id": SANDBOX_CUSTOMER,
        "bots": [{"bot_id": bot_id} for bot_id in ALL_BOTS],
        "api_url": sandbox.url,
        "max_retries": 3,
        "request_timeout": 5,
    }
    config.update(overrides)
    return config


def own_tokens(bots: list[Bot]) -> list[Bot]:
    """The same bots, each with a token of its own (listings of different tokens)."""
    return [
        dataclasses.replace(bot, token=f"own-token-{n}-{bot.bot_id[-6:]}-9c4e")
        for n, bot in enumerate(bots)
    ]


def own_token_config(sandbox: Sandbox, **overrides: Any) -> dict[str, Any]:
    """`base_config`, but every bot with the token the sandbox gave it."""
    bots = [{"bot_id": bot.bot_id, "bot_token": bot.token} for bot in sandbox.bots]
    return base_config(sandbox, bots=bots, **overrides)


@dataclass
class SyncResult:
    """What a tap run wrote: Singer messages on stdout (and stderr for CLI runs)."""

    messages: list[dict[str, Any]]
    stderr: str = ""
    exit_code: int = 0
    error: BaseException | None = None
    stdout: str = ""
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for message in self.messages:
            if message["type"] == "RECORD":
                grouped[message["stream"]].append(message["record"])
        self.records = dict(grouped)

    @property
    def states(self) -> list[dict[str, Any]]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def final_state(self) -> dict[str, Any]:
        return self.states[-1]

    def schemas(self) -> dict[str, dict[str, Any]]:
        return {m["stream"]: m["schema"] for m in self.messages if m["type"] == "SCHEMA"}


def _parse(stdout: str) -> list[dict[str, Any]]:
    # Split on "\n" only, as targets do: str.splitlines() would also split on U+0085 or
    # U+2028, which JSON strings may contain unescaped.
    return [json.loads(line) for line in stdout.split("\n") if line.strip()]


def record_golden(messages: list[dict[str, Any]]) -> None:
    """With `GOLDEN_DIR` set, append a run's message stream to a file named by the test, so
    that the streams of every scenario can be compared across a refactor."""
    directory = os.environ.get("GOLDEN_DIR")
    if not directory:
        return
    test = os.environ.get("PYTEST_CURRENT_TEST", "unknown").rsplit(" ", 1)[0]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", test)[:200]
    with open(Path(directory) / f"{name}.jsonl", "a", encoding="utf-8") as out:
        out.write(json.dumps({"run": len(messages)}) + "\n")
        for message in messages:
            out.write(json.dumps(message, sort_keys=True) + "\n")


def fail_on_endless_listing(text: str) -> None:
    """Fail by name when the sandbox refused a page far past a listing's end (`page_bound`):
    the tap did not see the end of a listing, and would otherwise loop until a timeout."""
    for line in text.splitlines():
        if PAGE_BOUND_MESSAGE in line:
            pytest.fail(f"a listing never ended: {line}", pytrace=False)


def run_in_process(
    config: dict[str, Any],
    state: dict[str, Any] | None = None,
    tap_class: type[TapBotPenguin] = TapBotPenguin,
    catalog: dict[str, Any] | None = None,
) -> SyncResult:
    """Sync in this process (fast; logs go to pytest's caplog). Errors are returned."""
    buffer = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    error: BaseException | None = None
    with redirect_stdout(buffer):
        try:
            tap_class(config=config, state=copy.deepcopy(state), catalog=catalog).sync_all()
        except Exception as exc:
            error = exc
        buffer.flush()
    stdout = buffer.buffer.getvalue().decode()  # type: ignore[attr-defined]
    fail_on_endless_listing(str(error or ""))
    messages = _parse(stdout)
    record_golden(messages)
    return SyncResult(messages, error=error, stdout=stdout)


def run_cli(
    config: dict[str, Any] | None,
    tmp_path: Path,
    state: dict[str, Any] | None = None,
    args: list[str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> SyncResult:
    """Run `python -m tap_botpenguin` as a user would; returns exit code, stdout, stderr."""
    command = [sys.executable, "-m", "tap_botpenguin"]
    if config is not None:
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps(config))
        command += ["--config", str(config_path)]
    if state is not None:
        state_path = tmp_path / "state.json"
        state_path.write_text(json.dumps(state))
        command += ["--state", str(state_path)]
    command += args or []
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_BOTPENGUIN_")}
    run_env.update(env or {})
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=run_env,
        check=False,
        cwd=tmp_path,
    )
    fail_on_endless_listing(done.stderr)
    messages = _parse(done.stdout) if not args else []
    record_golden(messages)
    return SyncResult(messages, stderr=done.stderr, exit_code=done.returncode, stdout=done.stdout)


@contextmanager
def one_meltano_at_a_time(project: Path) -> Iterator[None]:
    """Meltano keeps per-project run files (`.meltano/run/`: the discovered catalog, configs):
    two runs side by side in one project (two pytest-xdist workers) read each other's."""
    digest = hashlib.sha256(str(project.resolve()).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"meltano-{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def run_demo(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`scripts/demo.sh` as a user runs it: its own sandbox, output dir and Meltano database."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DEMO_OUTPUT_DIR": str(tmp_path / "output"),
        "DBT_DUCKDB_TARGET_PATH": str(tmp_path / "dbt" / "target"),
        "DBT_DUCKDB_LOG_PATH": str(tmp_path / "dbt" / "logs"),
        "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}",
        **env,
    }
    with one_meltano_at_a_time(ROOT):
        return subprocess.run(
            ["scripts/demo.sh"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )


class Meltano:
    """Runs `meltano` as users do, in a project (the repository's by default), reading the
    sandbox, with its own system database (so its own state)."""

    def __init__(self, tmp_path: Path, sandbox: Sandbox, cwd: Path = ROOT, **env: str) -> None:
        self.cwd = cwd
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TAP_BOTPENGUIN_", "TARGET_", "MELTANO_", "DBT_"))
        }
        self.env.update(sandbox_settings(sandbox.url))
        self.env["MELTANO_DATABASE_URI"] = f"sqlite:///{tmp_path / 'meltano.db'}"
        self.env["MELTANO_SEND_ANONYMOUS_USAGE_STATS"] = "false"
        # dbt's compiled files and logs per test, so that tests may run side by side.
        for adapter in ("DUCKDB", "POSTGRES"):
            self.env[f"DBT_{adapter}_TARGET_PATH"] = str(tmp_path / "dbt" / adapter / "target")
            self.env[f"DBT_{adapter}_LOG_PATH"] = str(tmp_path / "dbt" / adapter / "logs")
        self.env.update(env)

    def run(self, *args: str, expect_success: bool = True) -> subprocess.CompletedProcess[str]:
        with one_meltano_at_a_time(self.cwd):
            done = subprocess.run(
                [str(MELTANO), *args],
                cwd=self.cwd,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
        assert (done.returncode == 0) == expect_success, done.stderr[-4000:]
        return done


def postgres_env(schema: str) -> dict[str, str]:
    """target-postgres settings for the test database, loading into `schema`."""
    return {
        "TARGET_POSTGRES_HOST": str(PG["host"]),
        "TARGET_POSTGRES_PORT": str(PG["port"]),
        "TARGET_POSTGRES_USER": str(PG["user"]),
        "TARGET_POSTGRES_PASSWORD": str(PG["password"]),
        "TARGET_POSTGRES_DATABASE": str(PG["dbname"]),
        "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": schema,
    }


def dbt_postgres_env(schema: str) -> dict[str, str]:
    """dbt-postgres reading the raw tables in `schema`, building in `<schema>_analytics`."""
    return {
        "DBT_POSTGRES_HOST": str(PG["host"]),
        "DBT_POSTGRES_PORT": str(PG["port"]),
        "DBT_POSTGRES_USER": str(PG["user"]),
        "DBT_POSTGRES_PASSWORD": str(PG["password"]),
        "DBT_POSTGRES_DBNAME": str(PG["dbname"]),
        "DBT_POSTGRES_SCHEMA": f"{schema}_analytics",
        "DBT_POSTGRES_SOURCE_SCHEMA": schema,
    }


@pytest.fixture
def pg() -> Iterator[psycopg.Connection]:
    try:
        connection = psycopg.connect(**PG, autocommit=True)  # type: ignore[arg-type]
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable ({exc}); run scripts/postgres.sh first")
    with connection:
        yield connection


@pytest.fixture
def schema(pg: psycopg.Connection) -> Iterator[str]:
    """A fresh PostgreSQL schema for one test, dropped afterwards."""
    name = f"e2e_{uuid.uuid4().hex[:10]}"
    yield name
    pg.execute(f'drop schema if exists "{name}" cascade')
