"""End to end: shards started at the same time, as a scheduler starts them (docs/scaling.md).

A clean Meltano project, the agency account (two customers, a token and two bots each), the
shards file's recipe: `python -m orchestrate.shards prepare`, then every shard's
`meltano run` at once into one PostgreSQL database, then dbt over all of them. The sandbox
holds each shard's first request until the other shard has asked too, so the two runs
always overlap (creating schemas, tables, and columns for new fields at the same moment).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tap_botpenguin.sandbox import AGENCY_CUSTOMERS, ReceivedRequest, Sandbox, agency_bots
from tap_botpenguin.sandbox.env import agency_settings

from .helpers import Meltano, clean_project, dbt_postgres_env, postgres_env
from .marts import assert_marts_match, pg_query

pytestmark = pytest.mark.e2e

SHARD_OF_TOKEN = {customer.token: name for name, customer in AGENCY_CUSTOMERS.items()}
SHARD_BOTS = {name: set(customer.bots) for name, customer in AGENCY_CUSTOMERS.items()}


class BothShardsAtOnce:
    """Holds each token's first request of a round until every token has asked (or 60 s):
    the shards' runs overlap, whatever the machine's load."""

    def __init__(self, tokens: int) -> None:
        self.tokens = tokens
        self.arrived: set[str] = set()
        self.all_arrived = threading.Event()
        self.lock = threading.Lock()

    def new_round(self) -> None:
        with self.lock:
            self.arrived.clear()
            self.all_arrived.clear()

    def __call__(self, sandbox: Sandbox, request: ReceivedRequest) -> None:
        """Runs on the sandbox's request threads."""
        token = request.headers.get("x-bot-token", "")
        with self.lock:
            first = token not in self.arrived
            self.arrived.add(token)
            if len(self.arrived) >= self.tokens:
                self.all_arrived.set()
        if first:
            self.all_arrived.wait(timeout=60)


@pytest.fixture
def barrier() -> BothShardsAtOnce:
    return BothShardsAtOnce(tokens=len(AGENCY_CUSTOMERS))


@pytest.fixture
def agency(barrier: BothShardsAtOnce) -> Iterator[Sandbox]:
    with Sandbox(bots=agency_bots(), rate_limit=None, before_answer=barrier) as server:
        yield server


@pytest.fixture
def prefix(pg: psycopg.Connection) -> Iterator[str]:
    """The shards' schema prefix, unique to the test; its schemas are dropped afterwards."""
    name = f"e2e_{uuid.uuid4().hex[:8]}"
    yield name
    for (schema,) in pg.execute(
        "select nspname from pg_namespace where nspname like %s", (f"{name}%",)
    ).fetchall():
        pg.execute(f'drop schema "{schema}" cascade')


def _shards_file(project: Path, prefix: str) -> Path:
    """The sandbox's two customers as shards, loading into `<prefix>_<shard>`."""
    shards = []
    for name, customer in AGENCY_CUSTOMERS.items():
        variable = f"SANDBOX_{name.upper().replace('-', '_')}_TOKEN"
        shards.append(
            {
                "name": name,
                "token_env": variable,
                "customer_id": customer.customer_id,
                "bots": list(customer.bots),
            }
        )
    document = {
        "schema_prefix": prefix,
        "config": {"api_url": "${BOTPENGUIN_SANDBOX_URL}"},
        "shards": shards,
    }
    path = project / "shards.yml"
    path.write_text(json.dumps(document, indent=2))  # JSON is YAML
    return path


def _prepare(project: Path, meltano: Meltano) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrate.shards", "prepare", "shards.yml"],
        cwd=project,
        env={**meltano.env, "PYTHONPATH": str(project)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _run_shards_at_once(meltano: Meltano) -> dict[str, subprocess.CompletedProcess[str]]:
    started = {
        name: meltano.start("run", f"tap-botpenguin--{name}", "target-postgres")
        for name in AGENCY_CUSTOMERS
    }
    finished = {}
    for name, process in started.items():
        stdout, stderr = process.communicate(timeout=300)
        finished[name] = subprocess.CompletedProcess(
            process.args, process.returncode, stdout, stderr
        )
    return finished


def _rows(pg: psycopg.Connection, schema: str, stream: str) -> list[tuple[Any, ...]]:
    return pg.execute(f'select "_id", "botId" from "{schema}"."{stream}"').fetchall()


def _state(meltano: Meltano, shard: str) -> str:
    done = meltano.run("state", "get", f"dev:tap-botpenguin--{shard}-to-target-postgres")
    return done.stdout


def _requests_per_shard(sandbox: Sandbox, since: int) -> Counter[str]:
    return Counter(
        SHARD_OF_TOKEN[request.headers.get("x-bot-token", "")]
        for request in sandbox.listing_requests()[since:]
    )


def _assert_every_record_once(pg: psycopg.Connection, prefix: str, sandbox: Sandbox) -> None:
    for name, bots in SHARD_BOTS.items():
        schema = f"{prefix}_{name.replace('-', '_')}"
        for stream, kind in (("leads", "lead"), ("chats", "non-lead")):
            rows = _rows(pg, schema, stream)
            expected = {
                record_id for (bot_id, record_id) in sandbox.all_records(kind) if bot_id in bots
            }
            ids = [record_id for record_id, _ in rows]
            assert len(ids) == len(set(ids)), (schema, stream, "duplicates")
            assert set(ids) == expected, (schema, stream)
            assert {bot for _, bot in rows} <= bots, (schema, stream, "another shard's bots")


def test_shards_started_at_once_each_load_their_own_and_stay_incremental(
    tmp_path: Path, agency: Sandbox, barrier: BothShardsAtOnce, prefix: str, pg: psycopg.Connection
) -> None:
    project = clean_project(tmp_path)
    _shards_file(project, prefix)
    meltano = Meltano(
        tmp_path,
        agency,
        cwd=project,
        **agency_settings(agency.url),
        **postgres_env(None),
        **dbt_postgres_env(prefix, sources=False),
    )
    prepared = _prepare(project, meltano)
    assert prepared.returncode == 0, prepared.stderr
    assert (project / "shards.meltano.yml").exists()

    # Round 1: a fresh project and database; both shards create their schema and tables at once.
    first = _run_shards_at_once(meltano)
    for name, done in first.items():
        assert done.returncode == 0, (name, done.stderr[-3000:])
    _assert_every_record_once(pg, prefix, agency)
    round_1 = _requests_per_shard(agency, 0)
    assert set(round_1) == set(AGENCY_CUSTOMERS)

    # Each shard's state is its own: its bots, not the other shard's.
    for name, bots in SHARD_BOTS.items():
        state = _state(meltano, name)
        others = set().union(*(b for n, b in SHARD_BOTS.items() if n != name))
        assert all(bot in state for bot in bots), (name, state[:500])
        assert not any(bot in state for bot in others), (name, state[:500])

    # Round 2: changes in both shards, with a field nobody sent before (each target adds the
    # same new column to its own table at the same moment).
    seen = len(agency.listing_requests())
    barrier.new_round()
    changed: dict[str, list[str]] = {}
    for name, customer in AGENCY_CUSTOMERS.items():
        bot_id = next(iter(customer.bots))
        changed[name] = agency.update(bot_id, "lead", [0, 1], fields={"csatScore": 4})
        agency.add(bot_id, "non-lead", 2)
    second = _run_shards_at_once(meltano)
    for name, done in second.items():
        assert done.returncode == 0, (name, done.stderr[-3000:])
    _assert_every_record_once(pg, prefix, agency)
    round_2 = _requests_per_shard(agency, seen)
    listings = {name: 2 * len(bots) for name, bots in SHARD_BOTS.items()}
    for name in AGENCY_CUSTOMERS:
        # Incremental: page 1 of each listing (each holds what changed), not every page.
        assert round_2[name] == listings[name] < round_1[name], (name, round_1, round_2)
        schema = f"{prefix}_{name.replace('-', '_')}"
        scores = dict(pg.execute(f'select "_id", "csatScore" from "{schema}".leads').fetchall())
        assert {cid for cid, score in scores.items() if score == 4} == set(changed[name])

    # dbt over both shards: every conversation of every bot once, as the sandbox sent it.
    built = meltano.run("run", "dbt-postgres--shards:build")
    assert re.search(r"PASS=\d+ WARN=0 ERROR=0", built.stderr + built.stdout)
    assert_marts_match(pg_query(pg), f"{prefix}_analytics", agency)
