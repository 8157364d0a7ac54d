"""What the dbt marts must hold, computed from the sandbox's own data, independently of the SQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import psycopg

from tap_botpenguin.sandbox import Sandbox

Query = Callable[[str], list[tuple[Any, ...]]]


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


def duckdb_query(path: Path) -> Query:
    def query(sql: str) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(path), read_only=True) as db:
            return db.sql(sql).fetchall()

    return query


def pg_query(connection: psycopg.Connection) -> Query:
    def query(sql: str) -> list[tuple[Any, ...]]:
        return connection.execute(sql).fetchall()

    return query
