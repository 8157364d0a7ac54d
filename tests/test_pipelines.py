"""End to end: `meltano run` into a real PostgreSQL, DuckDB and JSONL, state from Meltano.

PostgreSQL comes from scripts/postgres.sh (the test command runs it). The sandbox serves
from this process; Meltano and its plugins run as subprocesses, exactly as users run them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from tap_botpenguin.sandbox import WEBSITE_BOT, WHATSAPP_BOT, Fault, Sandbox

from .helpers import (
    ALL_BOTS,
    ROOT,
    STREAM_TYPES,
    Meltano,
    dbt_postgres_env,
    fresh_bots,
    postgres_env,
    requests_per_listing,
)
from .marts import assert_marts_match, pg_query

pytestmark = pytest.mark.e2e


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    # Several full syncs in a row would exceed the real 100/min limit: not the subject here.
    with Sandbox(bots=fresh_bots(), rate_limit=None) as server:
        yield server


def _postgres_meltano(tmp_path: Path, sandbox: Sandbox, schema: str, **env: str) -> Meltano:
    return Meltano(tmp_path, sandbox, **postgres_env(schema), **env)


def _expected_per_bot(sandbox: Sandbox, kind: str) -> Counter[str]:
    return Counter(bot_id for bot_id, _ in sandbox.all_records(kind))


def _pg_counts(pg: psycopg.Connection, schema: str, stream: str, bot_column: str) -> Counter[str]:
    rows = pg.execute(
        f'select "{bot_column}", count(*) from "{schema}"."{stream}" group by 1'
    ).fetchall()
    return Counter({bot: count for bot, count in rows})


def _column_types(pg: psycopg.Connection, schema: str, table: str) -> dict[str, str]:
    rows = pg.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = %s and table_name = %s",
        (schema, table),
    ).fetchall()
    return dict(rows)


def test_postgres_load_rerun_and_incremental(
    sandbox: Sandbox, pg: psycopg.Connection, schema: str, tmp_path: Path
) -> None:
    meltano = _postgres_meltano(tmp_path, sandbox, schema)
    meltano.run("run", "tap-botpenguin", "target-postgres")

    for stream, kind in STREAM_TYPES.items():
        assert _pg_counts(pg, schema, stream, "botId") == _expected_per_bot(sandbox, kind)

    types = _column_types(pg, schema, "leads")
    assert types["updatedAt"].startswith("timestamp")
    assert types["createdAt"].startswith("timestamp")
    assert types["profile"] == "jsonb"
    assert types["lastMessage"] == "jsonb"
    assert types["isOnline"] == "boolean"

    # Nested objects and unicode survive the trip unchanged.
    stored = dict(pg.execute(f'select "_id", "profile" from "{schema}"."leads"').fetchall())
    for (_, record_id), record in sandbox.all_records("lead").items():
        assert stored[record_id] == record["profile"]
    names = [
        r[0]
        for r in pg.execute(
            f"""select "profile"->'userDetails'->>'name' from "{schema}"."leads" """
        ).fetchall()
    ]
    assert any(name and not name.isascii() for name in names)

    # Reloading everything (state ignored) upserts: no duplicates.
    meltano.run("run", "--full-refresh", "tap-botpenguin", "target-postgres")
    assert _pg_counts(pg, schema, "leads", "botId") == _expected_per_bot(sandbox, "lead")

    # Between runs the inbox changes; the next run (state from Meltano) reads only that:
    # the state Meltano kept says every listing is newest first, so one page each.
    touched = set(sandbox.touch(WEBSITE_BOT, "lead", 5, status="CLOSED"))
    added = set(sandbox.add(WHATSAPP_BOT, "non-lead", 2))
    second_started = datetime.now(timezone.utc)
    before = len(sandbox.listing_requests())
    meltano.run("run", "tap-botpenguin", "target-postgres")
    requested = requests_per_listing(sandbox, since=before)
    assert requested == {(bot, kind): 1 for bot in ALL_BOTS for kind in STREAM_TYPES.values()}

    assert _pg_counts(pg, schema, "chats", "botId") == _expected_per_bot(sandbox, "non-lead")
    fresh_leads = {
        row[0]: row[1]
        for row in pg.execute(
            f'select "_id", "updatedAt" from "{schema}"."leads" where "_sdc_extracted_at" >= %s',
            (second_started,),
        ).fetchall()
    }
    assert touched <= fresh_leads.keys()
    # Besides the changed rows, only the rows sitting exactly at a bookmark come again.
    assert len(fresh_leads.keys() - touched) <= 2
    statuses = dict(pg.execute(f'select "_id", "status" from "{schema}"."leads"').fetchall())
    assert all(statuses[record_id] == "CLOSED" for record_id in touched)
    fresh_chats = {
        row[0]
        for row in pg.execute(
            f'select "_id" from "{schema}"."chats" where "_sdc_extracted_at" >= %s',
            (second_started,),
        ).fetchall()
    }
    assert added <= fresh_chats
    assert len(fresh_chats - added) <= 3


def test_duckdb_load_and_rerun(sandbox: Sandbox, tmp_path: Path) -> None:
    database = tmp_path / "warehouse.duckdb"
    meltano = Meltano(tmp_path, sandbox, TARGET_DUCKDB_FILEPATH=str(database))
    meltano.run("run", "tap-botpenguin", "target-duckdb")
    meltano.run("run", "--full-refresh", "tap-botpenguin", "target-duckdb")

    with duckdb.connect(str(database), read_only=True) as db:
        for stream, kind in STREAM_TYPES.items():
            rows = db.sql(
                f'select botid, count(*) from botpenguin."{stream}" group by 1'
            ).fetchall()
            assert Counter(dict(rows)) == _expected_per_bot(sandbox, kind), stream
        types = dict(
            db.sql(
                "select column_name, data_type from information_schema.columns "
                "where table_name = 'leads'"
            ).fetchall()
        )
        assert types["updatedat"].startswith("TIMESTAMP")
        assert types["profile"] == "JSON"


def test_jsonl(sandbox: Sandbox, tmp_path: Path) -> None:
    out = tmp_path / "jsonl"
    out.mkdir()
    Meltano(tmp_path, sandbox, TARGET_JSONL_DESTINATION_PATH=str(out)).run(
        "run", "tap-botpenguin", "target-jsonl"
    )

    for stream, kind in STREAM_TYPES.items():
        lines = (out / f"{stream}.jsonl").read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in lines]
        assert Counter(r["botId"] for r in records) == _expected_per_bot(sandbox, kind)
        assert {r["_id"] for r in records} == {i for _, i in sandbox.all_records(kind)}


def test_postgres_accepts_repaired_hostile_records(
    sandbox: Sandbox, pg: psycopg.Connection, schema: str, tmp_path: Path
) -> None:
    """NUL characters, wrong types, odd timestamps and unknown fields still load."""

    def hostile(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if records:
            records[0].update(
                status="OP\x00EN",
                websiteVisits="lots",
                isOnline="true",
                createdAt="1780308000",
                brandNewField={"x": [1, None]},
            )
            records[1]["profile"] = {
                "userDetails": {"name": "Zoë\x00", "tags": "vip"},
                "notes": None,
            }
        return records

    sandbox.inject(
        Fault("data", transform=hostile, times=None, bot_id=WEBSITE_BOT, type="lead", page=1)
    )
    meltano = _postgres_meltano(tmp_path, sandbox, schema)
    meltano.run("run", "tap-botpenguin", "target-postgres")

    assert _pg_counts(pg, schema, "leads", "botId") == _expected_per_bot(sandbox, "lead")
    first_id, second_id = (r["_id"] for r in sandbox.listing(WEBSITE_BOT, "lead")[:2])
    row = pg.execute(
        f'select "status", "websiteVisits", "isOnline", "createdAt", "invalidFields" '
        f'from "{schema}"."leads" where "_id" = %s',
        (first_id,),
    ).fetchone()
    assert row is not None
    status, visits, online, created, invalid = row
    assert (status, visits, online) == ("OPEN", None, True)
    assert created.year == 2026
    assert invalid == {"websiteVisits": '"lots"'}
    profile = pg.execute(
        f'select "profile" from "{schema}"."leads" where "_id" = %s', (second_id,)
    ).fetchone()
    assert profile is not None
    assert profile[0]["userDetails"]["name"] == "Zoë"


def test_meltano_runs_leave_no_token_in_any_file(tmp_path: Path) -> None:
    canary = "canary-meltano-4b7e1d9a-SECRET"
    bots = fresh_bots()
    for bot in bots:
        bot.token = canary
    with Sandbox(bots=bots, rate_limit=None) as server:
        server.inject(
            Fault("status", status=401, message=f"token {canary} is invalid", bot_id=WEBSITE_BOT)
        )
        out = tmp_path / "jsonl"
        out.mkdir()
        meltano = Meltano(tmp_path, server, TARGET_JSONL_DESTINATION_PATH=str(out))
        meltano.env["TAP_BOTPENGUIN_BOT_TOKEN"] = canary
        failed = meltano.run("run", "tap-botpenguin", "target-jsonl", expect_success=False)
        assert "401 Unauthorized" in failed.stderr
        meltano.run("run", "tap-botpenguin", "target-jsonl")

    assert canary not in failed.stdout + failed.stderr
    written = [p for p in [*(ROOT / ".meltano").rglob("*"), *tmp_path.rglob("*")] if p.is_file()]
    leaking = [p for p in written if canary.encode() in p.read_bytes()]
    assert leaking == []


def _deleted_flags(pg: psycopg.Connection, schema: str, stream: str) -> dict[str, Any]:
    rows = pg.execute(f'select "_id", "_sdc_deleted_at" from "{schema}"."{stream}"').fetchall()
    return dict(rows)


@pytest.mark.parametrize("hard_delete", [False, True], ids=["soft delete", "hard delete"])
def test_the_mirror_drops_conversations_deleted_in_botpenguin(
    sandbox: Sandbox, pg: psycopg.Connection, schema: str, tmp_path: Path, hard_delete: bool
) -> None:
    meltano = _postgres_meltano(
        tmp_path,
        sandbox,
        schema,
        **dbt_postgres_env(schema),
        TARGET_POSTGRES_HARD_DELETE=str(hard_delete).lower(),
        TAP_BOTPENGUIN_MAX_RETRIES="1",
    )
    meltano.run("run", "tap-botpenguin--mirror", "target-postgres")
    for stream, kind in STREAM_TYPES.items():
        assert _pg_counts(pg, schema, stream, "botId") == _expected_per_bot(sandbox, kind)
    # Two bots lose a conversation each, in both streams.
    deleted = {
        stream: {bot: sandbox.delete(bot, kind, [3])[0] for bot in (WEBSITE_BOT, WHATSAPP_BOT)}
        for stream, kind in STREAM_TYPES.items()
    }

    # A mirror run that fails half-way deletes nothing.
    sandbox.inject(Fault("status", status=503, times=None, bot_id=WHATSAPP_BOT, type="lead"))
    meltano.run("run", "tap-botpenguin--mirror", "target-postgres", expect_success=False)
    assert all(at is None for at in _deleted_flags(pg, schema, "leads").values())
    sandbox.faults.clear()

    # ... and the analytics tables built on top leave the deleted conversations out.
    meltano.run("run", "tap-botpenguin--mirror", "target-postgres", "dbt-postgres:build")

    try:
        assert_marts_match(pg_query(pg), f"{schema}_analytics", sandbox)
    finally:
        pg.execute(f'drop schema if exists "{schema}_analytics" cascade')
    for stream, kind in STREAM_TYPES.items():
        flags = _deleted_flags(pg, schema, stream)
        gone = set(deleted[stream].values())
        remaining = {record_id for _, record_id in sandbox.all_records(kind)}
        if hard_delete:
            assert set(flags) == remaining, stream
        else:
            assert {i for i, at in flags.items() if at is not None} == gone, stream
            assert set(flags) == remaining | gone, stream
        # Every other row of every bot is intact.
        assert all(flags[record_id] is None for record_id in remaining), stream
