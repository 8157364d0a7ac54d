"""End to end: shards started at the same time, as a scheduler starts them (docs/scaling.md).

A clean Meltano project, the agency account (two customers, a token and two bots each), the
shards file's recipe: `python -m orchestrate.shards prepare`, then every shard's
`meltano run` at once into one PostgreSQL database, then dbt over all of them. The sandbox
holds each shard's first request until the other shard has asked too, so the two runs
always overlap (creating schemas, tables, and columns for new fields at the same moment).
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tap_botpenguin.sandbox import ReceivedRequest, Sandbox, agency_bots
from tap_botpenguin.sandbox.env import agency_settings

from .helpers import (
    SANDBOX_SHARDS,
    SHARD_BOTS,
    Meltano,
    assert_every_shard_loaded_once,
    shard_schema,
    shards_meltano,
    shards_project,
)
from .marts import assert_marts_match, pg_query

pytestmark = pytest.mark.e2e

#: token -> the shard of orchestrate/shards.sandbox.yml that holds it
SHARD_OF_TOKEN = {
    agency_settings("")[shard["token_env"]]: shard["name"] for shard in SANDBOX_SHARDS["shards"]
}


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
    return BothShardsAtOnce(tokens=len(SHARD_BOTS))


@pytest.fixture
def agency(barrier: BothShardsAtOnce) -> Iterator[Sandbox]:
    with Sandbox(bots=agency_bots(), rate_limit=None, before_answer=barrier) as server:
        yield server


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
        for name in SHARD_BOTS
    }
    finished = {}
    for name, process in started.items():
        stdout, stderr = process.communicate(timeout=300)
        finished[name] = subprocess.CompletedProcess(
            process.args, process.returncode, stdout, stderr
        )
    return finished


def _state(meltano: Meltano, shard: str) -> str:
    done = meltano.run("state", "get", f"dev:tap-botpenguin--{shard}-to-target-postgres")
    return done.stdout


def _requests_per_shard(sandbox: Sandbox, since: int) -> Counter[str]:
    return Counter(
        SHARD_OF_TOKEN[request.headers.get("x-bot-token", "")]
        for request in sandbox.listing_requests()[since:]
    )


def test_shards_started_at_once_each_load_their_own_and_stay_incremental(
    tmp_path: Path, agency: Sandbox, barrier: BothShardsAtOnce, prefix: str, pg: psycopg.Connection
) -> None:
    project = shards_project(tmp_path, prefix)
    meltano = shards_meltano(tmp_path, agency, project, prefix)
    prepared = _prepare(project, meltano)
    assert prepared.returncode == 0, prepared.stderr
    assert (project / "shards.meltano.yml").exists()

    # Round 1: a fresh project and database; both shards create their schema and tables at once.
    first = _run_shards_at_once(meltano)
    for name, done in first.items():
        assert done.returncode == 0, (name, done.stderr[-3000:])
    assert_every_shard_loaded_once(pg, prefix, agency)
    round_1 = _requests_per_shard(agency, 0)
    assert set(round_1) == set(SHARD_BOTS)

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
    for name, bots in SHARD_BOTS.items():
        bot_id = min(bots)
        changed[name] = agency.update(bot_id, "lead", [0, 1], fields={"csatScore": 4})
        agency.add(bot_id, "non-lead", 2)
    second = _run_shards_at_once(meltano)
    for name, done in second.items():
        assert done.returncode == 0, (name, done.stderr[-3000:])
    assert_every_shard_loaded_once(pg, prefix, agency)
    round_2 = _requests_per_shard(agency, seen)
    listings = {name: 2 * len(bots) for name, bots in SHARD_BOTS.items()}
    for name in SHARD_BOTS:
        # Incremental: page 1 of each listing (each holds what changed), not every page.
        assert round_2[name] == listings[name] < round_1[name], (name, round_1, round_2)
        schema = shard_schema(prefix, name)
        scores = dict(pg.execute(f'select "_id", "csatScore" from "{schema}".leads').fetchall())
        assert {cid for cid, score in scores.items() if score == 4} == set(changed[name])

    # dbt over both shards: every conversation of every bot once, as the sandbox sent it.
    built = meltano.run("run", "dbt-postgres--shards:build")
    assert re.search(r"PASS=\d+ WARN=0 ERROR=0", built.stderr + built.stdout)
    assert_marts_match(pg_query(pg), f"{prefix}_analytics", agency)
