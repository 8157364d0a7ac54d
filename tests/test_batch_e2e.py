"""End to end: BATCH messages through `meltano run` into PostgreSQL (MeltanoLabs'
target-postgres reads them): every record without maps; with a stream map and `select`, what
they remove is in no file and no table; the mirror refuses BATCH in one line."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tap_botpenguin.sandbox import Sandbox

from .helpers import STREAM_TYPES, Meltano, batch_settings, fresh_bots, postgres_env

pytestmark = pytest.mark.e2e

#: target-postgres' closing line: how many RECORD and BATCH messages it read.
READER = re.compile(r"\((\d+) schemas, (\d+) records, (\d+) batch manifests")


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(bots=fresh_bots(), rate_limit=None) as server:
        yield server


def _meltano(tmp_path: Path, sandbox: Sandbox, schema: str, **env: str) -> Meltano:
    batch = json.dumps(batch_settings(tmp_path / "files"))
    return Meltano(
        tmp_path, sandbox, **postgres_env(schema), TAP_BOTPENGUIN_BATCH_CONFIG=batch, **env
    )


def _messages_read(stderr: str) -> tuple[int, int]:
    """(RECORD, BATCH) messages target-postgres read."""
    (found,) = READER.findall(stderr)
    return int(found[1]), int(found[2])


def _file_rows(tmp_path: Path, stream: str) -> list[dict[str, Any]]:
    rows = []
    for path in sorted((tmp_path / "files").glob(f"bp-tap-botpenguin--{stream}-*.json.gz")):
        rows += [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]
    return rows


def _table(pg: psycopg.Connection, schema: str, stream: str) -> tuple[set[str], Counter[str]]:
    """The table's columns, and its rows per bot."""
    cursor = pg.execute(f'select * from "{schema}"."{stream}"')
    columns = [c.name for c in cursor.description or []]
    rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    return set(columns), Counter(row["botId"] for row in rows)


def _per_bot(records: dict[tuple[str, str], dict[str, Any]]) -> Counter[str]:
    return Counter(bot for bot, _ in records)


def test_meltano_run_loads_batch_files_into_postgres(
    sandbox: Sandbox, pg: psycopg.Connection, schema: str, tmp_path: Path
) -> None:
    done = _meltano(tmp_path, sandbox, schema).run("run", "tap-botpenguin", "target-postgres")

    records, batches = _messages_read(done.stderr)
    assert records == 0
    assert batches > 0
    for stream, kind in STREAM_TYPES.items():
        _, per_bot = _table(pg, schema, stream)
        assert per_bot == _per_bot(sandbox.all_records(kind)), stream


def test_meltano_run_batch_files_and_tables_follow_maps_and_select(
    sandbox: Sandbox, pg: psycopg.Connection, schema: str, tmp_path: Path
) -> None:
    """A map removes `profile` (PII) and keeps open leads; `select` leaves `lastMessage` out."""
    maps = {"leads": {"profile": "__NULL__", "__filter__": "status == 'OPEN'"}}
    meltano = _meltano(
        tmp_path,
        sandbox,
        schema,
        TAP_BOTPENGUIN_STREAM_MAPS=json.dumps(maps),
        TAP_BOTPENGUIN__SELECT=json.dumps(["*.*", "!leads.lastMessage"]),
    )
    done = meltano.run("run", "tap-botpenguin", "target-postgres")

    assert _messages_read(done.stderr)[0] == 0
    open_leads = {
        key: record
        for key, record in sandbox.all_records("lead").items()
        if record["status"] == "OPEN"
    }
    files = _file_rows(tmp_path, "leads")
    assert {(r["botId"], r["_id"]) for r in files} == set(open_leads)
    assert all("profile" not in r and "lastMessage" not in r for r in files)
    columns, per_bot = _table(pg, schema, "leads")
    assert per_bot == _per_bot(open_leads)
    assert not {"profile", "lastMessage"} & columns
    # chats: no map, every column.
    columns, per_bot = _table(pg, schema, "chats")
    assert per_bot == _per_bot(sandbox.all_records("non-lead"))
    assert {"profile", "lastMessage"} <= columns
    assert all("profile" in r for r in _file_rows(tmp_path, "chats"))


def test_the_mirror_refuses_batch_in_one_line_and_runs_without_it(
    sandbox: Sandbox, pg: psycopg.Connection, schema: str, tmp_path: Path
) -> None:
    """`tap-botpenguin` with a batch_config: the mirror inherits it and refuses it; with its
    own `batch_config: {}` (what the line says to do) it mirrors the inbox."""
    meltano = _meltano(tmp_path, sandbox, schema)
    refused = meltano.run("run", "tap-botpenguin--mirror", "target-postgres", expect_success=False)

    assert "`batch_config` cannot be used with `emit_activate_version_messages`" in refused.stderr
    assert "Set `batch_config` to `{}` for the mirror." in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not sandbox.listing_requests()

    meltano.env["TAP_BOTPENGUIN__MIRROR_BATCH_CONFIG"] = "{}"
    meltano.run("run", "tap-botpenguin--mirror", "target-postgres")
    for stream, kind in STREAM_TYPES.items():
        _, per_bot = _table(pg, schema, stream)
        assert per_bot == _per_bot(sandbox.all_records(kind)), stream
        deleted = pg.execute(
            f'select count(*) from "{schema}"."{stream}" where "_sdc_deleted_at" is not null'
        ).fetchone()
        assert deleted == (0,), stream
