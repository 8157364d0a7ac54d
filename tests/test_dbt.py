"""The dbt models (transform/), built by Meltano after the load, on DuckDB and PostgreSQL.

Every mart is compared with what the sandbox itself holds, computed here independently of the
SQL: row counts, a known conversation's contact details, tags, notes, attribute values of every
JSON scalar type, unicode, a conversation that moved from chats to leads counted once.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from tap_botpenguin.naming import snake_case
from tap_botpenguin.sandbox import WEBSITE_BOT, Sandbox

from .conftest import PG, ROOT, Meltano, fresh_bots, postgres_env

pytestmark = pytest.mark.e2e

MARTS = [
    "botpenguin__conversations",
    "botpenguin__conversation_tags",
    "botpenguin__conversation_attributes",
    "botpenguin__conversation_notes",
    "botpenguin__daily_conversations",
]
Query = Callable[[str], list[tuple[Any, ...]]]


# --- what the marts must hold, from the sandbox's data ---------------------------------------
def _conversations(sandbox: Sandbox) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """conversation_id -> (type, bot, record): the latest version across both streams."""
    latest: dict[str, tuple[str, str, dict[str, Any]]] = {}
    for kind, label in (("lead", "lead"), ("non-lead", "chat")):
        for (bot_id, record_id), record in sandbox.all_records(kind).items():
            known = latest.get(record_id)
            if known is None or record["updatedAt"] > known[2]["updatedAt"]:
                latest[record_id] = (label, bot_id, record)
    return latest


def _details(record: dict[str, Any]) -> dict[str, Any]:
    return (record.get("profile") or {}).get("userDetails") or {}


def _typed(value: Any) -> tuple[str, str | None]:
    """An attribute value's JSON type and text, as the attributes mart keeps them."""
    if value is None:
        return "null", None
    if isinstance(value, str):
        return "string", value
    return ("boolean" if isinstance(value, bool) else "number"), json.dumps(value)


def _utc_moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def expected_marts(sandbox: Sandbox) -> dict[str, Any]:
    conversations = _conversations(sandbox)
    return {
        "conversations": conversations,
        "tags": {
            (cid, tag)
            for cid, (_, _, record) in conversations.items()
            for tag in _details(record).get("tags") or []
        },
        "attributes": {
            (cid, attribute["key"]): _typed(attribute["value"])
            for cid, (_, _, record) in conversations.items()
            for attribute in _details(record).get("attributes") or []
        },
        "notes": {
            note["_id"]: (cid, note["title"], note["description"])
            for cid, (_, _, record) in conversations.items()
            for note in record["profile"]["notes"]
        },
        "daily": {
            (_utc_moment(record["createdAt"]).date(), bot_id, label, record["status"])
            for label, bot_id, record in conversations.values()
        },
    }


# --- reading the marts -----------------------------------------------------------------------
def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def assert_marts_match(query: Query, schema: str, sandbox: Sandbox) -> None:
    expected = expected_marts(sandbox)
    conversations = expected["conversations"]
    rows = {
        row[0]: row[1:]
        for row in query(
            "select conversation_id, conversation_type, bot_id, contact_name, contact_email, "
            f"contact_phone, city, updated_at from {schema}.botpenguin__conversations"
        )
    }
    assert len(rows) == len(conversations)
    for cid, (label, bot_id, record) in conversations.items():
        details = _details(record)
        contact = details.get("contact") or {}
        phone = contact.get("phone") or {}
        expected_phone = f"+{phone['prefix']}{phone['number']}" if phone.get("number") else None
        *columns, updated_at = rows[cid]
        assert columns == [
            label,
            bot_id,
            details.get("name"),  # unicode names intact
            contact.get("email"),
            expected_phone,
            details.get("city"),
        ], cid
        assert _utc(updated_at) == _utc_moment(record["updatedAt"]), cid
    assert any(row[2] and not row[2].isascii() for row in rows.values())

    tags = set(query(f"select conversation_id, tag from {schema}.botpenguin__conversation_tags"))
    assert tags == expected["tags"]

    attributes = query(
        "select conversation_id, attribute_key, value_type, value_text, value_number, "
        f"value_boolean from {schema}.botpenguin__conversation_attributes"
    )
    assert {(cid, key): (kind, text) for cid, key, kind, text, *_ in attributes} == (
        expected["attributes"]
    )
    assert {kind for _, _, kind, *_ in attributes} == {"string", "number", "boolean", "null"}
    for *_, kind, text, number, boolean in attributes:
        assert number == (float(text) if kind == "number" else None)
        assert boolean == ((text == "true") if kind == "boolean" else None)

    notes = query(
        "select note_id, conversation_id, title, description "
        f"from {schema}.botpenguin__conversation_notes"
    )
    assert {note_id: tuple(rest) for note_id, *rest in notes} == expected["notes"]

    daily = query(
        "select day, bot_id, conversation_type, status, conversations "
        f"from {schema}.botpenguin__daily_conversations"
    )
    assert {(day, bot, kind, status) for day, bot, kind, status, _ in daily} == expected["daily"]
    assert sum(count for *_, count in daily) == len(conversations)


def _duckdb_query(path: Path) -> Query:
    def query(sql: str) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(path), read_only=True) as db:
            return db.sql(sql).fetchall()

    return query


def _pg_query(connection: psycopg.Connection) -> Query:
    def query(sql: str) -> list[tuple[Any, ...]]:
        return connection.execute(sql).fetchall()

    return query


def _chat_becomes_a_lead(sandbox: Sandbox) -> str:
    return sandbox.move(WEBSITE_BOT, "non-lead", "lead", 5)


# --- the pipelines ---------------------------------------------------------------------------
def test_duckdb_load_then_dbt_build(tmp_path: Path) -> None:
    database = tmp_path / "warehouse.duckdb"
    with Sandbox(bots=fresh_bots(), rate_limit=None) as sandbox:
        meltano = Meltano(
            tmp_path,
            sandbox,
            TARGET_DUCKDB_FILEPATH=str(database),
            DBT_DUCKDB_PATH=str(database),
        )
        meltano.run("run", "tap-botpenguin", "target-duckdb", "dbt-duckdb:build")
        moved = _chat_becomes_a_lead(sandbox)
        sandbox.touch(WEBSITE_BOT, "lead", 3, status="CLOSED")
        done = meltano.run("run", "tap-botpenguin", "target-duckdb", "dbt-duckdb:build")

        assert "PASS=36 WARN=0 ERROR=0" in done.stderr
        query = _duckdb_query(database)
        # The chat is still in the raw chats table (the tap never deletes), but counted once.
        assert query(f"select count(*) from botpenguin.chats where _id = '{moved}'") == [(1,)]
        assert query(
            "select conversation_type from analytics.botpenguin__conversations "
            f"where conversation_id = '{moved}'"
        ) == [("lead",)]
        assert_marts_match(query, "analytics", sandbox)


@pytest.mark.parametrize("snake", [False, True], ids=["api names", "snake_case_fields"])
def test_postgres_load_then_dbt_build(
    pg: psycopg.Connection, schema: str, tmp_path: Path, snake: bool
) -> None:
    with Sandbox(bots=fresh_bots(), rate_limit=None) as sandbox:
        meltano = Meltano(
            tmp_path,
            sandbox,
            **postgres_env(schema),
            **dbt_postgres_env(schema),
            TAP_BOTPENGUIN_SNAKE_CASE_FIELDS=str(snake).lower(),
        )
        meltano.run("run", "tap-botpenguin", "target-postgres", "dbt-postgres:build")
        _chat_becomes_a_lead(sandbox)
        done = meltano.run("run", "tap-botpenguin", "target-postgres", "dbt-postgres:build")

        assert "PASS=36 WARN=0 ERROR=0" in done.stderr
        try:
            assert_marts_match(_pg_query(pg), f"{schema}_analytics", sandbox)
        finally:
            pg.execute(f'drop schema if exists "{schema}_analytics" cascade')
    if snake:
        columns = {
            r[0]
            for r in pg.execute(
                "select column_name from information_schema.columns where table_schema = %s",
                (schema,),
            ).fetchall()
        }
        assert snake_case("updatedAt") in columns


def test_the_marts_leave_out_conversations_the_mirror_deleted(
    pg: psycopg.Connection, schema: str, tmp_path: Path
) -> None:
    with Sandbox(bots=fresh_bots(), rate_limit=None) as sandbox:
        meltano = Meltano(tmp_path, sandbox, **postgres_env(schema), **dbt_postgres_env(schema))
        meltano.run("run", "tap-botpenguin--mirror", "target-postgres")
        [gone] = sandbox.delete(WEBSITE_BOT, "lead", [0])
        meltano.run("run", "tap-botpenguin--mirror", "target-postgres", "dbt-postgres:build")

        try:
            flagged = pg.execute(
                f'select count(*) from "{schema}".leads '
                "where _id = %s and _sdc_deleted_at is not null",
                (gone,),
            ).fetchone()
            assert flagged == (1,)
            assert_marts_match(_pg_query(pg), f"{schema}_analytics", sandbox)
        finally:
            pg.execute(f'drop schema if exists "{schema}_analytics" cascade')


def test_dbt_fails_with_a_clear_message_without_the_raw_tables(
    pg: psycopg.Connection, schema: str, tmp_path: Path
) -> None:
    with Sandbox(bots=fresh_bots(), rate_limit=None) as sandbox:
        meltano = Meltano(tmp_path, sandbox, **dbt_postgres_env(schema))
        failed = meltano.run("invoke", "dbt-postgres", "build", expect_success=False)

    output = failed.stdout + failed.stderr
    assert f'"{schema}"."leads" does not exist or has no columns' in output
    assert "meltano config set dbt-<adapter> source_schema" in output


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


def test_the_demo_twice_then_its_duckdb_file_opens_with_the_project_duckdb(tmp_path: Path) -> None:
    """The README's main command, as a user runs it (its own sandbox, its own output dir)."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DEMO_OUTPUT_DIR": str(tmp_path / "output"),
        "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}",
    }
    runs = [
        subprocess.run(
            ["scripts/demo.sh"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        for _ in range(2)
    ]

    for run in runs:
        assert run.returncode == 0, run.stderr[-3000:]
    assert "chats     277 rows  full" in runs[0].stdout
    assert "incremental" in runs[1].stdout
    assert "Leads by status:" in runs[1].stdout
    with duckdb.connect(str(tmp_path / "output" / "sandbox.duckdb"), read_only=True) as db:
        [(conversations, distinct)] = db.sql(
            "select count(*), count(distinct conversation_id) "
            "from analytics.botpenguin__conversations"
        ).fetchall()
    assert conversations == distinct == 512
