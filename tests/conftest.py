"""pytest's fixtures and set-up: a live sandbox on loopback, PostgreSQL, hypothesis profiles.

The helpers the tests share (running the tap, configs, what the sandbox was asked) are in
tests/helpers.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import settings

from tap_botpenguin.sandbox import Sandbox
from tap_botpenguin.sandbox.undocumented import add_undocumented_fields

from .helpers import PG, WIDE, fresh_bots

# Property-based tests draw the same examples on every run (CI must be reproducible).
# `HYPOTHESIS_PROFILE=wide scripts/test.sh tests/test_hostile.py` draws new random ones, ten
# times as many, to look further.
settings.register_profile("ci", derandomize=True)
settings.register_profile("wide", derandomize=False)
settings.load_profile("wide" if WIDE else "ci")


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(bots=fresh_bots()) as server:
        yield server


@pytest.fixture
def undocumented_api() -> Iterator[Sandbox]:
    """A sandbox whose records carry undocumented fields of every JSON type, no rate limit."""
    bots = fresh_bots()
    add_undocumented_fields(bots)
    with Sandbox(bots=bots, rate_limit=None) as server:
        yield server


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


@pytest.fixture
def prefix(pg: psycopg.Connection) -> Iterator[str]:
    """A shards file's schema prefix, unique to the test; its schemas are dropped afterwards."""
    name = f"e2e_{uuid.uuid4().hex[:8]}"
    yield name
    rows = pg.execute("select nspname from pg_namespace where nspname like %s", (f"{name}%",))
    for (schema,) in rows.fetchall():
        pg.execute(f'drop schema "{schema}" cascade')
