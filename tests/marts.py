"""What the dbt marts must hold, computed from the sandbox's own data, independently of the SQL.

Records may be of the documented shape or the real one (docs/contract.md): the name in
`userProvidedName`, blanks for unknown values, `whatsAppNumber`, and top-level fields beyond
the field tables (`platform`, flags, ...), which reach the warehouse unless the tap ran with
`undocumented_fields: discard` (`extras=False`).
"""

from __future__ import annotations

import json
from collections import Counter
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


def _text(value: Any) -> Any:
    """A text column's value: empty and blank strings are null."""
    return None if isinstance(value, str) and not value.strip() else value


def _phone(details: dict[str, Any]) -> str | None:
    """The documented phone (`+`, code, number), else `+` and the WhatsApp number."""
    phone = (details.get("contact") or {}).get("phone") or {}
    number, prefix = _text(phone.get("number")), _text(phone.get("prefix"))
    if number:
        return f"+{prefix}{number}" if prefix else number
    whatsapp = _text(details.get("whatsAppNumber"))
    if whatsapp:
        return whatsapp if whatsapp.startswith("+") else f"+{whatsapp}"
    return None


def channels_of(record: dict[str, Any], extras: bool = True) -> list[str]:
    """The conversation's channels: the first of `platform` (else `unknown`), then the rest
    of `platform` and `secondaryPlatform`, lower-cased, each once."""
    sent = [(0, name) for name in (record.get("platform") or []) if extras]
    sent += [(1, name) for name in (record.get("secondaryPlatform") or []) if extras]
    named: list[tuple[int, str]] = []
    for source, name in sent:
        channel = name.strip(" ").lower()
        if channel and channel not in {known for _, known in named}:
            named.append((source, channel))
    primary = named[0][1] if named and named[0][0] == 0 else "unknown"
    return [primary, *(channel for _, channel in named if channel != primary)]


def conversation_row(record: dict[str, Any], extras: bool = True) -> dict[str, Any]:
    """The conversations mart's columns for `record`, as the API sent it."""
    details = _details(record)
    contact = details.get("contact") or {}
    top = record if extras else {}
    urls = ((record.get("profile") or {}).get("marketing") or {}).get("urlsVisited") or []
    segments = [segment for segment in top.get("segments") or [] if _text(segment)]
    channels = channels_of(record, extras)
    return {
        "contact_name": _text(details.get("name")) or _text(details.get("userProvidedName")),
        "contact_email": _text(contact.get("email")),
        "contact_phone": _phone(details),
        "city": _text(details.get("city")),
        "country": _text(details.get("country")),
        "last_message_text": _text((record.get("lastMessage") or {}).get("text")),
        "channel": channels[0],
        "channels": ",".join(channels),
        "is_subscriber": top.get("isSubscriber"),
        "is_contact": top.get("isContact"),
        "is_imported": top.get("isImported"),
        "is_paid": top.get("isPaid"),
        "has_ordered": (top.get("hasOrdered") or {}).get("status"),
        "is_live_chat_active": top.get("isLiveChatActive"),
        "unread_messages": top.get("unreadMessages"),
        "segments": ",".join(segments) or None,
        "first_visited_url": _text(urls[0]) if urls else None,
        "last_visited_url": _text(urls[-1]) if urls else None,
    }


def _typed(value: Any) -> tuple[str, str | None]:
    """An attribute value's JSON type and text, as the attributes mart keeps them."""
    if value is None:
        return "null", None
    if isinstance(value, str):
        return "string", value
    return ("boolean" if isinstance(value, bool) else "number"), json.dumps(value)


def _utc_moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def expected_marts(sandbox: Sandbox, extras: bool = True) -> dict[str, Any]:
    conversations = _conversations(sandbox)
    rows = {cid: conversation_row(record, extras) for cid, (_, _, record) in conversations.items()}
    daily: Counter[tuple[Any, ...]] = Counter()
    with_email: Counter[tuple[Any, ...]] = Counter()
    for cid, (label, bot_id, record) in conversations.items():
        key = (
            _utc_moment(record["createdAt"]).date(),
            bot_id,
            rows[cid]["channel"],
            label,
            record["status"],
        )
        daily[key] += 1
        with_email[key] += rows[cid]["contact_email"] is not None
    return {
        "conversations": conversations,
        "rows": rows,
        "channels": {
            (cid, channel): (bot_id, position == 1, position)
            for cid, (_, bot_id, record) in conversations.items()
            for position, channel in enumerate(channels_of(record, extras), start=1)
        },
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
        "daily": {key: (count, with_email[key]) for key, count in daily.items()},
    }


# --- reading the marts -----------------------------------------------------------------------
def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def assert_marts_match(query: Query, schema: str, sandbox: Sandbox, extras: bool = True) -> None:
    """Every mart, row by row, against what the sandbox sent. `extras=False`: the tap ran
    with `undocumented_fields: discard`, so the top-level fields beyond the tables are gone."""
    expected = expected_marts(sandbox, extras)
    conversations = expected["conversations"]
    names = list(next(iter(expected["rows"].values())))
    rows = {
        row[0]: row[1:]
        for row in query(
            f"select conversation_id, conversation_type, bot_id, updated_at, {', '.join(names)} "
            f"from {schema}.botpenguin__conversations"
        )
    }
    assert len(rows) == len(conversations)
    for cid, (label, bot_id, record) in conversations.items():
        kind, bot, updated_at, *columns = rows[cid]
        assert (kind, bot) == (label, bot_id), cid
        assert dict(zip(names, columns, strict=True)) == expected["rows"][cid], (cid, record)
        assert _utc(updated_at) == _utc_moment(record["updatedAt"]), cid
    assert any(row[3] and not row[3].isascii() for row in rows.values())  # unicode names intact

    channels = query(
        "select conversation_id, channel, bot_id, is_primary, channel_position "
        f"from {schema}.botpenguin__conversation_channels"
    )
    assert {(cid, channel): tuple(rest) for cid, channel, *rest in channels} == (
        expected["channels"]
    )
    assert len(channels) == len(expected["channels"])

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
        "select day, bot_id, channel, conversation_type, status, conversations, with_email "
        f"from {schema}.botpenguin__daily_conversations"
    )
    assert {
        (day, bot, channel, kind, status): (count, email)
        for day, bot, channel, kind, status, count, email in daily
    } == expected["daily"]
    assert len(daily) == len(expected["daily"])


def duckdb_query(path: Path) -> Query:
    def query(sql: str) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(path), read_only=True) as db:
            return db.sql(sql).fetchall()

    return query


def pg_query(connection: psycopg.Connection) -> Query:
    def query(sql: str) -> list[tuple[Any, ...]]:
        return connection.execute(sql).fetchall()

    return query
