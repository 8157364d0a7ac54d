"""The dbt models (transform/), built by Meltano after the load, on DuckDB and PostgreSQL.

Every mart is compared with what the sandbox itself holds, computed here independently of the
SQL (tests/marts.py): every conversation's contact details and channels, tags, notes, attribute
values of every JSON scalar type, unicode, a conversation that moved from chats to leads
counted once; records of the documented shape, of the real one and both on one page, in each
`undocumented_fields` mode.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import psycopg
import pytest

from tap_botpenguin.records.naming import snake_case
from tap_botpenguin.sandbox import WEBSITE_BOT, WHATSAPP_BOT, Sandbox

from .helpers import (
    DBT_NODES,
    DBT_PASSED,
    ROOT,
    Meltano,
    dbt_postgres_env,
    fresh_bots,
    postgres_env,
    run_script,
)
from .marts import Query, assert_marts_match, duckdb_query, expected_marts, pg_query

pytestmark = pytest.mark.e2e

MARTS = [
    "botpenguin__conversations",
    "botpenguin__conversation_tags",
    "botpenguin__conversation_attributes",
    "botpenguin__conversation_notes",
    "botpenguin__conversation_channels",
    "botpenguin__daily_conversations",
]


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

        assert DBT_PASSED in done.stderr
        query = duckdb_query(database)
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

        assert DBT_PASSED in done.stderr
        try:
            assert_marts_match(pg_query(pg), f"{schema}_analytics", sandbox)
        finally:
            pg.execute(f'drop schema if exists "{schema}_analytics" cascade')
    columns = {
        name
        for (name,) in pg.execute(
            "select column_name from information_schema.columns "
            "where table_schema = %s and table_name = 'leads'",
            (schema,),
        ).fetchall()
    }
    api_fields = json.loads((ROOT / "tap_botpenguin/records/chat.json").read_text())["properties"]
    if snake:
        assert {snake_case(name) for name in api_fields} <= columns
        assert {"_id", "is_online", "agent_assigned", "updated_at", "bot_id"} <= columns
        assert all(name == name.lower() for name in columns)
    else:
        assert set(api_fields) <= columns


# --- records as BotPenguin really sends them ----------------------------------------------------
def _what_the_shapes_hold(sandbox: Sandbox) -> None:
    """The demo bots exercise what the marts must handle (else the test below proves little)."""
    expected = expected_marts(sandbox)
    rows = expected["rows"]
    sent = [record for _, _, record in expected["conversations"].values()]
    details = [(r["profile"] or {}).get("userDetails") or {} for r in sent]
    assert sum("userProvidedName" in d and "name" not in d for d in details) > 50
    assert sum(((d.get("contact") or {}).get("email")) == "" for d in details) > 10
    assert sum("whatsAppNumber" in d and not (d.get("contact") or {}).get("phone") for d in details)
    assert {row["channel"] for row in rows.values()} == {
        "website",
        "whatsapp",
        "instagram",
        "facebook",
        "telegram",
        "unknown",
    }
    assert "whatsapp,website" in {row["channels"] for row in rows.values()}
    assert {row["is_paid"] for row in rows.values()} == {True, False, None}


def _warehouse(
    target: str, pg: psycopg.Connection, schema: str, tmp_path: Path
) -> tuple[dict[str, str], str, Query]:
    """The settings that load `target` and build the marts there, their schema, a reader."""
    if target == "duckdb":
        database = tmp_path / "warehouse.duckdb"
        env = {"TARGET_DUCKDB_FILEPATH": str(database), "DBT_DUCKDB_PATH": str(database)}
        return env, "analytics", duckdb_query(database)
    return {**postgres_env(schema), **dbt_postgres_env(schema)}, f"{schema}_analytics", pg_query(pg)


@pytest.mark.parametrize(
    ("target", "mode", "snake"),
    [
        ("duckdb", "evolve", False),
        ("duckdb", "json", True),
        ("duckdb", "discard", False),
        ("postgres", "evolve", True),
        ("postgres", "json", False),
        ("postgres", "discard", True),
    ],
    ids=lambda value: {False: "api names", True: "snake_case"}.get(value, value),
)
def test_real_and_documented_records_reach_the_marts_in_every_mode(
    pg: psycopg.Connection, schema: str, tmp_path: Path, target: str, mode: str, snake: bool
) -> None:
    """The demo bots: one documented, one real-shaped, one with both shapes on every page.
    Names, blanks, phones, channels and the real flags, row by row."""
    env, analytics, query = _warehouse(target, pg, schema, tmp_path)
    with Sandbox(bots=fresh_bots("demo"), rate_limit=None) as sandbox:
        _what_the_shapes_hold(sandbox)
        meltano = Meltano(
            tmp_path,
            sandbox,
            **env,
            TAP_BOTPENGUIN_UNDOCUMENTED_FIELDS=mode,
            TAP_BOTPENGUIN_SNAKE_CASE_FIELDS=str(snake).lower(),
        )
        try:
            done = meltano.run("run", "tap-botpenguin", f"target-{target}", f"dbt-{target}:build")
            assert DBT_PASSED in done.stderr
            assert_marts_match(query, analytics, sandbox, extras=mode != "discard")
        finally:
            pg.execute(f'drop schema if exists "{schema}_analytics" cascade')


def test_fields_in_a_column_on_some_rows_and_in_the_json_column_on_others(
    pg: psycopg.Connection, schema: str, tmp_path: Path
) -> None:
    """A load in `json` mode, then one in `evolve`: the rows the second run changed carry
    the real fields as columns, the others in `undocumentedFields`; the marts read both."""
    env, analytics, query = _warehouse("postgres", pg, schema, tmp_path)
    with Sandbox(bots=fresh_bots("demo"), rate_limit=None) as sandbox:
        meltano = Meltano(tmp_path, sandbox, **env, TAP_BOTPENGUIN_UNDOCUMENTED_FIELDS="json")
        meltano.run("run", "tap-botpenguin", "target-postgres")
        changed = sandbox.update(WHATSAPP_BOT, "lead", [0, 1, 2], message=False)
        changed += sandbox.update(WEBSITE_BOT, "lead", [1], fields={"isPaid": True})
        meltano.env["TAP_BOTPENGUIN_UNDOCUMENTED_FIELDS"] = "evolve"
        try:
            done = meltano.run("run", "tap-botpenguin", "target-postgres", "dbt-postgres:build")
            assert DBT_PASSED in done.stderr
            [(as_columns, in_json)] = pg.execute(
                'select count(*) filter (where "isPaid" is not null), '
                """count(*) filter (where "undocumentedFields" ? 'isPaid') """
                f'from "{schema}".leads'
            ).fetchall()
            assert as_columns == len(changed)
            assert in_json > 20
            assert_marts_match(query, analytics, sandbox)
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


def test_the_demo_twice_then_its_duckdb_file_opens_with_the_project_duckdb(tmp_path: Path) -> None:
    """The README's main command, as a user runs it (its own sandbox, its own output dir)."""
    runs, logs = [], []
    for _ in range(2):
        runs.append(run_script(tmp_path, "demo.sh"))
        logs.append((tmp_path / "output" / "last-run.log").read_text())

    for run, log in zip(runs, logs, strict=True):
        assert run.returncode == 0, run.stderr[-3000:]
        # On screen: the tap's lines, dbt's closing line, where the rest is; no deprecations.
        assert "tap-botpenguin done leads bot" in run.stderr
        assert DBT_PASSED in run.stderr
        assert "last-run.log" in run.stderr
        assert " START " not in run.stderr
        assert "target-duckdb" not in run.stderr  # a loader that worked says nothing on screen
        assert f"1 of {DBT_NODES} START" in log
        for output in (run.stdout, run.stderr, log):
            assert "deprecat" not in output.lower(), output
    assert "chats     277 rows  full" in runs[0].stdout
    assert "incremental" in runs[1].stdout
    assert "Leads by status:" in runs[1].stdout
    # The demo serves one real-shaped bot: its channels show.
    assert "Conversations per channel" in runs[1].stdout
    assert re.search(r"^  whatsapp +\d+ +\d+ +\d+$", runs[1].stdout, re.M), runs[1].stdout
    # The README quotes the same closing line.
    assert DBT_PASSED in (ROOT / "README.md").read_text()
    with duckdb.connect(str(tmp_path / "output" / "sandbox.duckdb"), read_only=True) as db:
        [(conversations, distinct)] = db.sql(
            "select count(*), count(distinct conversation_id) "
            "from analytics.botpenguin__conversations"
        ).fetchall()
    assert conversations == distinct == 512
