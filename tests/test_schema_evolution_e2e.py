"""End to end: fields the API does not document reach PostgreSQL and DuckDB through `meltano run`.

The undocumented_api's switch gives every record six undocumented fields (one of each JSON type) and
every third record a seventh; the warehouse must hold every one of their values, across an
incremental run in which the API adds a field and sends another type for an existing one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from tap_botpenguin.sandbox import WEBSITE_BOT, Fault, Sandbox
from tap_botpenguin.sandbox.undocumented import (
    UNDOCUMENTED_FIELDS,
    undocumented_of,
)

from .helpers import (
    ANNOUNCED,
    DBT_PASSED,
    PG,
    STREAM_TYPES,
    Meltano,
    dbt_postgres_env,
    postgres_env,
)
from .marts import assert_marts_match, duckdb_query, pg_query

pytestmark = pytest.mark.e2e

Rows = dict[tuple[str, str], dict[str, Any]]


def _json(value: Any) -> Any:
    """DuckDB hands JSON columns back as text; PostgreSQL's jsonb arrives decoded."""
    return json.loads(value) if isinstance(value, str) else value


class Warehouse:
    """One target's tables, read back as {(botId, _id): {column: value}} (names lowercased:
    target-duckdb folds them)."""

    def __init__(self, target: str, tmp_path: Path, schema: str) -> None:
        self.target = target
        self.schema = schema if target == "target-postgres" else "botpenguin"
        self.database = tmp_path / "warehouse.duckdb"

    def env(self) -> dict[str, str]:
        if self.target == "target-postgres":
            return postgres_env(self.schema)
        return {"TARGET_DUCKDB_FILEPATH": str(self.database)}

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        if self.target == "target-postgres":
            with psycopg.connect(**PG) as connection:  # type: ignore[arg-type]
                cursor = connection.execute(sql)
                names = [c.name for c in cursor.description or []]
                return names, cursor.fetchall()
        with duckdb.connect(str(self.database), read_only=True) as db:
            relation = db.sql(sql)
            return list(relation.columns), relation.fetchall()

    def rows(self, table: str) -> Rows:
        names, rows = self.query(f'select * from "{self.schema}"."{table}"')
        lowered = [name.lower() for name in names]
        found = {}
        for row in rows:
            record = dict(zip(lowered, row, strict=True))
            found[(record["botid"], record["_id"])] = record
        return found

    def columns(self, table: str) -> set[str]:
        return set(self.query(f'select * from "{self.schema}"."{table}" limit 0')[0])


def _loaded(rows: Rows, key: tuple[str, str], field: str) -> Any:
    """A loaded value as JSON decoded it (numeric columns come back as Decimal or float)."""
    value = rows[key][field.lower()]
    kind = UNDOCUMENTED_FIELDS[field]
    if kind in {"object", "array"}:
        return _json(value)
    if kind == "number" and value is not None:
        return float(value)
    return value


def _assert_every_value_loaded(warehouse: Warehouse, undocumented_api: Sandbox) -> int:
    loaded = 0
    for stream, kind in STREAM_TYPES.items():
        rows = warehouse.rows(stream)
        for key, record in undocumented_api.all_records(kind).items():
            for field in UNDOCUMENTED_FIELDS:
                assert _loaded(rows, key, field) == record.get(field), (stream, key, field)
                loaded += field in record
    return loaded


@pytest.mark.parametrize("target", ["target-postgres", "target-duckdb"])
def test_undocumented_fields_become_columns_and_survive_an_incremental_run(
    undocumented_api: Sandbox, schema: str, tmp_path: Path, target: str
) -> None:
    warehouse = Warehouse(target, tmp_path, schema)
    meltano = Meltano(tmp_path, undocumented_api, **warehouse.env())
    first = meltano.run("run", "tap-botpenguin", target)

    sent = sum(
        len(undocumented_of(r))
        for k in STREAM_TYPES.values()
        for r in undocumented_api.all_records(k).values()
    )
    assert _assert_every_value_loaded(warehouse, undocumented_api) == sent
    # Announced once per stream, naming the fields and their types.
    lines = [line for line in first.stderr.splitlines() if ANNOUNCED in line]
    assert len(lines) == len(STREAM_TYPES), lines
    for line in lines:
        assert "leadScore (number)" in line
        assert "utm (object)" in line
        assert "added as columns" in line

    # The API starts sending a new field, and text where a number was learned.
    before = warehouse.rows("leads")
    changed = undocumented_api.update(
        WEBSITE_BOT, "lead", [0, 1], fields={"leadScore": "high", "promoCode": "SPRING"}
    )
    second = meltano.run("run", "tap-botpenguin", target)

    after = warehouse.rows("leads")
    assert "promocode" in {c.lower() for c in warehouse.columns("leads")}
    for record_id in changed:
        row = after[(WEBSITE_BOT, record_id)]
        assert row["promocode"] == "SPRING"
        assert row["leadscore"] is None  # the learned type stays: the odd value is kept aside
        assert _json(row["invalidfields"]) == {"leadScore": '"high"'}
    untouched = set(before) - {(WEBSITE_BOT, record_id) for record_id in changed}
    for key in untouched:
        assert {k: v for k, v in after[key].items() if not k.startswith(("_sdc", "promocode"))} == {
            k: v for k, v in before[key].items() if not k.startswith("_sdc")
        }, key
        assert after[key]["promocode"] is None
    lines = [line for line in second.stderr.splitlines() if ANNOUNCED in line]
    assert len(lines) == 1, lines
    assert "promoCode (string)" in lines[0]


@pytest.mark.parametrize("target", ["target-postgres", "target-duckdb"])
@pytest.mark.parametrize("mode", ["json", "discard"])
def test_json_and_discard_modes_keep_the_table_shape_fixed(
    undocumented_api: Sandbox, schema: str, tmp_path: Path, target: str, mode: str
) -> None:
    """`json`: every undocumented field in one column; `discard`: the documented columns only.
    Both name the fields once per stream."""
    warehouse = Warehouse(target, tmp_path, schema)
    meltano = Meltano(
        tmp_path, undocumented_api, **warehouse.env(), TAP_BOTPENGUIN_UNDOCUMENTED_FIELDS=mode
    )
    done = meltano.run("run", "tap-botpenguin", target)

    documented = json.loads(
        (Path(__file__).parents[1] / "tap_botpenguin/records/chat.json").read_text()
    )["properties"]
    expected = {name.lower() for name in documented}
    if mode == "json":
        expected.add("undocumentedfields")
    for stream, kind in STREAM_TYPES.items():
        columns = {c.lower() for c in warehouse.columns(stream) if not c.startswith("_sdc")}
        assert columns == expected
        rows = warehouse.rows(stream)
        assert len(rows) == len(undocumented_api.all_records(kind))
        if mode == "json":
            for key, record in undocumented_api.all_records(kind).items():
                assert _json(rows[key]["undocumentedfields"]) == undocumented_of(record), key
    lines = [line for line in done.stderr.splitlines() if ANNOUNCED in line]
    assert len(lines) == len(STREAM_TYPES), lines
    outcome = "undocumentedFields" if mode == "json" else "discarded"
    assert all(outcome in line and "referrer (string)" in line for line in lines)


LONG = "x" * 63


def _colliders(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Names no target can make a column of, next to the documented ones."""
    for record in records:
        record.update(
            {"Status": "X", "": "empty", f"{LONG}_a": "a", f"{LONG}_b": "b", "is_online": "yes"}
        )
    return records


@pytest.mark.parametrize("snake_case", [False, True])
@pytest.mark.parametrize("target", ["target-postgres", "target-duckdb"])
def test_names_a_target_cannot_create_go_to_the_json_column(
    undocumented_api: Sandbox, schema: str, tmp_path: Path, target: str, snake_case: bool
) -> None:
    """Case-only duplicates, empty names and names longer than 63 bytes once crashed the
    target (on the first or every later run); they now load into `undocumentedFields`."""
    undocumented_api.inject(
        Fault("data", transform=_colliders, times=None, type="lead", bot_id=WEBSITE_BOT)
    )
    warehouse = Warehouse(target, tmp_path, schema)
    env = {"TAP_BOTPENGUIN_SNAKE_CASE_FIELDS": str(snake_case).lower()}
    meltano = Meltano(tmp_path, undocumented_api, **warehouse.env(), **env)
    meltano.run("run", "tap-botpenguin", target)
    undocumented_api.update(WEBSITE_BOT, "lead", [0], fields={"promoCode": "SPRING"})
    second = meltano.run("run", "tap-botpenguin", target)

    column = "undocumented_fields" if snake_case else "undocumentedfields"
    names, rows = warehouse.query(f'select * from "{warehouse.schema}"."leads"')
    loaded = [dict(zip([n.lower() for n in names], row, strict=True)) for row in rows]
    sent = undocumented_api.all_records("lead")
    website = [row for row in loaded if row["bot_id" if snake_case else "botid"] == WEBSITE_BOT]
    assert len(website) == sum(bot == WEBSITE_BOT for bot, _ in sent)
    for row in website:
        record = sent[(WEBSITE_BOT, row["_id"])]
        assert row["status"] == record["status"]
        moved = _json(row[column])
        assert sorted(moved.values()) == sorted(["X", "empty", "a", "b"] + ["yes"] * snake_case)
        assert not [k for k in row if k.startswith(LONG)]
    assert "cannot be columns of their own" in second.stderr


def _dbt_build(meltano: Meltano, target: str, dbt: str) -> str:
    return meltano.run("run", "tap-botpenguin", target, f"{dbt}:build").stderr


@pytest.mark.parametrize("target", ["target-postgres", "target-duckdb"])
def test_dbt_builds_while_columns_appear(
    undocumented_api: Sandbox, pg: psycopg.Connection, schema: str, tmp_path: Path, target: str
) -> None:
    warehouse = Warehouse(target, tmp_path, schema)
    if target == "target-postgres":
        dbt, env = "dbt-postgres", dbt_postgres_env(schema)
        analytics, query = f"{schema}_analytics", pg_query(pg)
    else:
        dbt, env = "dbt-duckdb", {"DBT_DUCKDB_PATH": str(warehouse.database)}
        analytics, query = "analytics", duckdb_query(warehouse.database)
    meltano = Meltano(tmp_path, undocumented_api, **warehouse.env(), **env)
    try:
        assert DBT_PASSED in _dbt_build(meltano, target, dbt)
        undocumented_api.update(
            WEBSITE_BOT, "lead", [0], fields={"promoCode": "SPRING", "rating": "n/a"}
        )
        assert DBT_PASSED in _dbt_build(meltano, target, dbt)
        assert "promocode" in {c.lower() for c in warehouse.columns("leads")}
        assert_marts_match(query, analytics, undocumented_api)
    finally:
        pg.execute(f'drop schema if exists "{schema}_analytics" cascade')


def test_the_mirror_keeps_its_rows_when_a_column_appears_mid_run(
    undocumented_api: Sandbox, schema: str, tmp_path: Path
) -> None:
    """A SCHEMA message between a version's records must not split or empty the table."""
    warehouse = Warehouse("target-postgres", tmp_path, schema)
    meltano = Meltano(tmp_path, undocumented_api, **warehouse.env())
    meltano.run("run", "tap-botpenguin--mirror", "target-postgres")

    # The next mirror run meets a new field on a later page of the biggest listing.
    def promo(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        records[0]["promoCode"] = "SPRING"
        return records

    undocumented_api.inject(
        Fault("data", transform=promo, times=None, page=3, type="lead", bot_id=WEBSITE_BOT)
    )
    carrier = undocumented_api.page(WEBSITE_BOT, "lead", 3)[0]["_id"]
    meltano.run("run", "tap-botpenguin--mirror", "target-postgres")

    for stream, kind in STREAM_TYPES.items():
        rows = warehouse.rows(stream)
        assert set(rows) == set(undocumented_api.all_records(kind)), stream
        assert all(row["_sdc_deleted_at"] is None for row in rows.values()), stream
    _assert_every_value_loaded(warehouse, undocumented_api)
    carriers = [key for key, row in warehouse.rows("leads").items() if row["promocode"]]
    assert carriers == [(WEBSITE_BOT, carrier)]


def test_meltano_schema_extra_declares_a_field_and_its_type_wins(
    undocumented_api: Sandbox, schema: str, tmp_path: Path
) -> None:
    """docs/schema-evolution.md's route: Meltano's `schema` extra declares `leadScore` as text."""
    warehouse = Warehouse("target-duckdb", tmp_path, schema)
    declared = {"leads": {"leadScore": {"type": ["string", "null"]}}}
    meltano = Meltano(
        tmp_path, undocumented_api, **warehouse.env(), TAP_BOTPENGUIN__SCHEMA=json.dumps(declared)
    )
    done = meltano.run("run", "tap-botpenguin", "target-duckdb")

    rows = warehouse.rows("leads")
    for key, record in undocumented_api.all_records("lead").items():
        assert rows[key]["leadscore"] == str(record["leadScore"]), key
    chats = warehouse.rows("chats")
    for key, record in undocumented_api.all_records("non-lead").items():
        assert float(chats[key]["leadscore"]) == record["leadScore"], key
    (leads_line,) = [
        line for line in done.stderr.splitlines() if ANNOUNCED in line and "leads:" in line
    ]
    assert "leadScore" not in leads_line  # declared, so not announced as new


@pytest.mark.parametrize(
    ("select", "columns"),
    [
        pytest.param(
            ["*.*", "!leads.profile"],
            None,
            id="*.*, !leads.profile: learned, without profile",
        ),
        pytest.param(
            ["leads._id", "leads.botId", "leads.updatedAt", "leads.status", "chats.*"],
            {"_id", "botid", "updatedat", "status"},
            id="a list of columns: new fields dropped, with a warning",
        ),
    ],
)
def test_meltano_select_leaving_columns_out_keeps_learning(
    undocumented_api: Sandbox,
    schema: str,
    tmp_path: Path,
    select: list[str],
    columns: set[str] | None,
) -> None:
    """docs/schema-evolution.md's rule: `undocumentedFields` selected (`*.*` with an exclusion)
    means new fields are learned; a list of wanted columns leaves it out."""
    warehouse = Warehouse("target-postgres", tmp_path, schema)
    meltano = Meltano(
        tmp_path, undocumented_api, **warehouse.env(), TAP_BOTPENGUIN__SELECT=json.dumps(select)
    )
    done = meltano.run("run", "tap-botpenguin", "target-postgres")

    loaded = {c.lower() for c in warehouse.columns("leads") if not c.startswith("_sdc")}
    rows = warehouse.rows("leads")
    records = undocumented_api.all_records("lead")
    assert set(rows) == set(records)
    (line,) = [line for line in done.stderr.splitlines() if ANNOUNCED in line and "leads:" in line]
    if columns is None:
        assert "profile" not in loaded
        assert {name.lower() for name in UNDOCUMENTED_FIELDS} <= loaded
        for key, record in records.items():
            for field in UNDOCUMENTED_FIELDS:
                assert _loaded(rows, key, field) == record.get(field), (key, field)
        assert "added as columns" in line
        assert "[info" in line  # Meltano's rendering of the tap's level
    else:
        assert loaded == columns
        assert "[warning" in line
        assert "select `leads.undocumentedFields` to take new fields" in line
