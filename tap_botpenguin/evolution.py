"""Fields the API sends but does not document: learned, declared, kept, or dropped, by setting.

`undocumented_fields` says what happens to a top-level field the schema lacks:
- `evolve` (default): its type is inferred from the page it first appears on (string, integer,
  number, boolean, object or array; always nullable), a SCHEMA message declares it before the
  first record carrying it, and the stream's state keeps it, so later runs declare the same
  column with the same type from their first SCHEMA message. Later values that do not fit go
  through the sanitizer's policy (lossless conversion, else null plus `invalidFields`).
- `json`: every undocumented field goes into one object column, `undocumentedFields`.
- `discard`: they are dropped.
Each field is named once per stream and run in one INFO line, whatever the mode.

A page is inspected (and its records changed for `json`/`discard`) where it is parsed, which
may be a worker thread; the stream writes SCHEMA messages and logs from the thread that writes
records, when `pending` says something new was learned.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Mapping
from typing import Any

from tap_botpenguin.sanitize import INVALID_FIELDS, RecordSanitizer, Schema

MODES = ("evolve", "json", "discard")
#: The stream state's entry for learned fields: `{name: JSON Schema}`, API names.
STATE_KEY = "undocumented_fields"
#: The one object column of the `json` mode.
JSON_COLUMN = "undocumentedFields"
KINDS = ("string", "integer", "number", "boolean", "object", "array")


_KIND_OF_CLASS = {bool: "boolean", int: "integer", float: "number", dict: "object", list: "array"}


def json_kind(value: Any) -> str | None:
    """The JSON type of a decoded value; None for null."""
    if value is None:
        return None
    return _KIND_OF_CLASS.get(type(value), "string")


def common_kind(kinds: Collection[str]) -> str | None:
    """One type for every value seen: integers widen to number, any other mix to string."""
    if not kinds:
        return None
    if len(kinds) == 1:
        return next(iter(kinds))
    if set(kinds) <= {"integer", "number"}:
        return "number"
    return "string"  # scalars convert to their text, objects and arrays to their JSON text


def field_schema(kind: str) -> Schema:
    """The nullable JSON Schema of a learned field."""
    schema: Schema = {"type": [kind, "null"]}
    if kind == "object":
        schema["additionalProperties"] = True
    elif kind == "array":
        schema["items"] = {}
    return schema


def kind_of(schema: Any) -> str | None:
    """The learned type a state entry holds, or None if it is not one this module writes."""
    if not isinstance(schema, dict):
        return None
    types = schema.get("type")
    if not isinstance(types, list):
        return None
    kinds = [kind for kind in types if kind != "null"]
    return kinds[0] if len(kinds) == 1 and kinds[0] in KINDS else None


def learned_from_state(stream_state: Mapping[str, Any]) -> dict[str, Schema]:
    """What earlier runs learned; entries of another shape are ignored (and relearned)."""
    entries = stream_state.get(STATE_KEY)
    if not isinstance(entries, dict):
        return {}
    learned = {}
    for name, schema in entries.items():
        kind = kind_of(schema)
        if isinstance(name, str) and kind is not None:
            learned[name] = field_schema(kind)
    return learned


class UndocumentedFields:
    """One stream's undocumented fields in one run: what is known, learned and announced."""

    def __init__(
        self,
        stream: str,
        api_schema: Schema,
        *,
        mode: str,
        learned: dict[str, Schema],
        logger: logging.Logger,
        reason: str = "undocumented_fields: discard",
    ) -> None:
        self.stream = stream
        self.mode = mode
        #: Why fields are discarded, for the log line (the setting, or the catalog).
        self.reason = reason
        self.logger = logger
        self._api_schema = api_schema
        self._documented = frozenset(api_schema.get("properties", {})) | {INVALID_FIELDS}
        self._lock = threading.Lock()
        #: Fields declared in SCHEMA messages (evolve), in the order learned. One learned in
        #: an earlier run and since added to chat.json is documented, not learned.
        self.learned: dict[str, Schema] = {
            key: value
            for key, value in learned.items()
            if mode == "evolve" and key not in self._documented
        }
        self._known = self._documented | self.learned.keys()
        self._unannounced: dict[str, str] = {}
        self._announced: set[str] = set()
        #: Something was learned that the record-writing thread has not yet acted on.
        self.pending = False
        self.sanitizer = RecordSanitizer(self._schema())

    def _schema(self) -> Schema:
        properties = dict(self._api_schema.get("properties", {}))
        properties.update(self.learned)
        if self.mode == "json":
            properties[JSON_COLUMN] = field_schema("object")
        return {**self._api_schema, "properties": properties}

    def declared(self) -> dict[str, Schema]:
        """The properties this run adds to the documented schema (API names)."""
        if self.mode == "json":
            return {JSON_COLUMN: field_schema("object")}
        with self._lock:
            return dict(self.learned)

    def inspect_page(self, records: list[dict[str, Any]]) -> None:
        """Learn the page's new fields; move or drop them as the mode says (in place)."""
        known = self._known
        seen: dict[str, set[str]] = {}
        for record in records:
            if known.issuperset(record):
                continue
            extra = {key: record[key] for key in record if key not in known}
            for key, value in extra.items():
                kinds = seen.setdefault(key, set())
                kind = json_kind(value)
                if kind is not None:
                    kinds.add(kind)
            if self.mode == "evolve":
                continue
            for key in extra:
                del record[key]
            if self.mode == "json":
                record[JSON_COLUMN] = extra
        if seen:
            self._learn(seen)

    def _learn(self, seen: dict[str, set[str]]) -> None:
        with self._lock:
            fresh = {}
            for key, kinds in seen.items():
                if key in self._announced or key in self._unannounced:
                    continue
                kind = common_kind(kinds)
                if self.mode == "evolve" and kind is None:
                    continue  # only nulls so far: nothing to load yet, decided when a value comes
                fresh[key] = kind or "null"
            if not fresh:
                return
            self._unannounced.update(fresh)
            if self.mode == "evolve":
                self.learned.update({key: field_schema(kind) for key, kind in fresh.items()})
                self._known = self._documented | self.learned.keys()
                self.sanitizer = RecordSanitizer(self._schema())
            self.pending = True

    def take_news(self) -> dict[str, str]:
        """The fields first seen since the last call, with their types (record thread)."""
        with self._lock:
            news, self._unannounced = self._unannounced, {}
            self._announced.update(news)
            self.pending = False
            return news

    def announce(self, news: Mapping[str, str], name: Callable[[str], str]) -> None:
        """One INFO line: the new fields, their types and what happened to them."""
        fields = ", ".join(f"{name(key)} ({kind})" for key, kind in news.items())
        outcome = {
            "evolve": "added as columns (a SCHEMA message declares them; the state keeps them "
            "for later runs)",
            "json": f"kept in the `{name(JSON_COLUMN)}` column",
            "discard": f"discarded ({self.reason})",
        }[self.mode]
        self.logger.info(
            "%s: the API sent %d field(s) its documentation does not list: %s; %s",
            self.stream,
            len(news),
            fields,
            outcome,
        )


def for_stream(
    stream: str,
    api_schema: Schema,
    config: Mapping[str, Any],
    stream_state: Mapping[str, Any],
    *,
    selects_every_property: bool,
    logger: logging.Logger,
) -> UndocumentedFields:
    """The stream's undocumented fields as its settings, catalog and state say.

    A catalog that picks properties one by one (any documented property deselected) did not
    ask for new ones: they are discarded, and named. `leads.*` selects every property.
    """
    mode = str(config.get("undocumented_fields") or "evolve")
    reason = "undocumented_fields: discard"
    if mode != "discard" and not selects_every_property:
        mode = "discard"
        reason = "the catalog selects this stream's properties one by one, not these"
    learned = learned_from_state(stream_state) if mode == "evolve" else {}
    return UndocumentedFields(
        stream, api_schema, mode=mode, learned=learned, logger=logger, reason=reason
    )
