"""The state a run is given: input the tap may not have written, checked like the settings.

A state file truncated by a full disk, emptied, or edited by hand reaches the tap as text it
cannot read, or as JSON of the wrong shape. Text that is not a JSON object stops the run in
one line before any request (nothing read, nothing lost: fix the file, or remove it to read
everything again). A part of the wrong shape is dropped with a WARNING naming it, and what it
covered is read again in full, as if it had never been written: a stream's or a bot's
bookmarks, or one value of a bot's scan history. The runs after it write that part anew.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tap_botpenguin.records.sanitize import parse_datetime
from tap_botpenguin.report.errors import BotPenguinError

#: What each value of a bot's scan history must be (`listing.history.ScanHistory`).
SCAN_TYPES: dict[str, type] = {
    "last_full_scan_at": str,
    "order_key": str,
    "newest_seen": str,
    "order_note": str,
    "pages": int,
    "page_size": int,
}


def read_state(text: str, name: str) -> dict[str, Any]:
    """The state in `text` (the file `name`), or the one line saying why it cannot be used."""
    advice = (
        f"Fix {name}, or remove it to read everything again (under Meltano: `meltano state "
        "clear <state id>`)."
    )
    if not text.strip():
        msg = f"The state file {name} is empty (a write cut short, a full disk?). {advice}"
        raise BotPenguinError(msg)
    try:
        state = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        msg = f"The state file {name} is not valid JSON ({where}): truncated or edited? {advice}"
        raise BotPenguinError(msg) from None
    except RecursionError:
        msg = f"The state file {name} is nested too deeply to be a state. {advice}"
        raise BotPenguinError(msg) from None
    if not isinstance(state, dict):
        msg = f"The state file {name} holds a JSON {_kind(state)}, not an object. {advice}"
        raise BotPenguinError(msg)
    return state


def checked_state(state: dict[str, Any], warn: Callable[[str], None]) -> dict[str, Any]:
    """`state` without the parts of the wrong shape, each dropped with a warning."""
    bookmarks = state.get("bookmarks")
    if bookmarks is None:
        return state
    if not isinstance(bookmarks, dict):
        warn(f"`bookmarks` is a JSON {_kind(bookmarks)}, not an object: ignored, {_AGAIN}")
        return {key: value for key, value in state.items() if key != "bookmarks"}
    kept = {}
    for stream, stream_state in bookmarks.items():
        if not isinstance(stream_state, dict):
            warn(f"`bookmarks.{stream}` is a JSON {_kind(stream_state)}, not an object: {_IGN}")
            continue
        kept[stream] = _stream(stream, stream_state, warn)
    return {**state, "bookmarks": kept}


#: What a warning says happens to a part dropped.
_AGAIN = "every listing is read in full"
_IGN = "ignored, its listings are read in full"


def _stream(stream: str, state: dict[str, Any], warn: Callable[[str], None]) -> dict[str, Any]:
    partitions = state.get("partitions")
    if partitions is None:
        return state
    if not isinstance(partitions, list):
        where = f"`bookmarks.{stream}.partitions`"
        warn(f"{where} is a JSON {_kind(partitions)}, not a list: {_IGN}")
        return {key: value for key, value in state.items() if key != "partitions"}
    kept = []
    for index, partition in enumerate(partitions):
        where = f"bookmarks.{stream}.partitions[{index}]"
        if not isinstance(partition, dict) or not isinstance(partition.get("context"), dict):
            warn(f"`{where}` is not an object with a `context` object: ignored")
            continue
        kept.append(_partition(where, partition, warn))
    return {**state, "partitions": kept}


def _partition(
    where: str, partition: dict[str, Any], warn: Callable[[str], None]
) -> dict[str, Any]:
    checked = dict(partition)
    value = checked.get("replication_key_value")
    if value is not None and (not isinstance(value, str) or parse_datetime(value) is None):
        warn(f"`{where}`: the bookmark {value!r} is not a date-time: ignored, {_FULL}")
        checked.pop("replication_key_value")
        checked.pop("replication_key", None)
    scan = checked.get("scan")
    if scan is None:
        return checked
    if not isinstance(scan, dict):
        warn(f"`{where}.scan` is a JSON {_kind(scan)}, not an object: ignored, {_FULL}")
        checked.pop("scan")
        return checked
    wrong = [
        key
        for key, kind in SCAN_TYPES.items()
        if key in scan and scan[key] is not None and type(scan[key]) is not kind
    ]
    if wrong:
        names = ", ".join(f"`{key}` ({_kind(scan[key])})" for key in wrong)
        warn(f"`{where}.scan`: {names} of the wrong type: ignored, found out again by a full scan")
        checked["scan"] = {key: value for key, value in scan.items() if key not in wrong}
    return checked


#: What a warning says happens to a bot whose bookmark or history was dropped.
_FULL = "this bot's listing is read in full"


def _kind(value: Any) -> str:
    """`list`, `string`, `number`...: a JSON value's kind, as the person editing it sees it."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object", type(None): "null"}.get(
        type(value), type(value).__name__
    )
