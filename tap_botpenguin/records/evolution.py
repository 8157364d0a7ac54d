"""Fields the API sends but does not document: learned, declared, kept, or dropped, by setting.

`undocumented_fields` says what happens to a top-level field the schema lacks:
- `evolve` (default): its type is inferred from the page it first appears on (string, number,
  boolean, object or array; always nullable; any number is `number`, since a JSON API sends
  4.0 as 4), a SCHEMA message declares it before the first record carrying it, and the
  stream's state keeps it, so later runs declare the same column with the same type from their
  first SCHEMA message. Later values that do not fit go through the sanitizer's policy
  (lossless conversion, else null plus `invalidFields`). A field that cannot have a column of
  its own goes into the JSON column instead, with one WARNING: its column name (after
  `snake_case_fields`) is empty, longer than 63 bytes, reserved (`_sdc_`), or another column's
  once case is ignored, or `max_undocumented_columns` were learned already.
  Documented fields, and fields the catalog declares (Meltano's `schema` extra), always win.
- `json`: every undocumented field goes into one object column, `undocumentedFields`.
- `discard`: they are dropped.
A catalog that does not select the JSON column (a list of wanted columns leaves it out) takes
no new fields either: they are dropped, whatever the mode. Each field is named once per stream
and run: in one INFO line, or in one WARNING when it is dropped because of the catalog (the
user may want it) or goes into the JSON column because it cannot have a column of its own.

Main thread only: the stream inspects each page as it takes it for emitting (records changed
for `json`/`discard` there), and writes SCHEMA messages and log lines before the first record
carrying something new (`pending`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any

from tap_botpenguin.records.sanitize import INVALID_FIELDS, RecordSanitizer, Schema
from tap_botpenguin.report.logs import AnyLogger

MODES = ("evolve", "json", "discard")
#: Why fields are dropped when the setting says so (the user's choice: an INFO line).
DISCARD_SETTING = "undocumented_fields: discard"
#: The stream state's entry for learned fields: `{name: JSON Schema}`, API names.
STATE_KEY = "undocumented_fields"
#: The one object column of the `json` mode.
JSON_COLUMN = "undocumentedFields"
KINDS = ("string", "integer", "number", "boolean", "object", "array")
#: The default of `max_undocumented_columns` (PostgreSQL allows 1,600 columns per table).
MAX_COLUMNS = 100
#: The longest identifier PostgreSQL keeps (it cuts longer ones, then cannot find them).
MAX_IDENTIFIER_BYTES = 63


_KIND_OF_CLASS = {bool: "boolean", int: "number", float: "number", dict: "object", list: "array"}


def json_kind(value: Any) -> str | None:
    """The JSON type a decoded value is learned as (any number: `number`); None for null."""
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
    if len(kinds) != 1 or kinds[0] not in KINDS:
        return None
    return "number" if kinds[0] == "integer" else kinds[0]  # earlier runs learned integers


def column_key(name: str) -> str:
    """A column name as targets compare it: DuckDB ignores case."""
    return name.casefold()


def learned_from_state(stream_state: Mapping[str, Any]) -> dict[str, Schema]:
    """What earlier runs learned (`integer` widened to `number`); other shapes are relearned."""
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
        logger: AnyLogger,
        reason: str = DISCARD_SETTING,
        name: Callable[[str], str] = str,
        catalog_fields: Mapping[str, Schema] | None = None,
        max_columns: int = MAX_COLUMNS,
    ) -> None:
        self.stream = stream
        self.mode = mode
        #: Why fields are discarded, for the log line (the setting, or the catalog).
        self.reason = reason
        self.logger = logger
        self._name = name
        self._max_columns = max_columns
        #: Fields the catalog declares beyond chat.json, by column name: their type wins.
        self._claims = dict(catalog_fields or {})
        properties = dict(api_schema.get("properties", {}))
        properties.update({key: value for key, value in self._claims.items() if name(key) == key})
        self._api_schema = {**api_schema, "properties": properties}
        self._documented = frozenset(properties) | {INVALID_FIELDS}
        #: Column names taken, as targets compare them, and by what.
        self._taken = {column_key(name(key)): f"documented `{key}`" for key in self._documented}
        self._taken[column_key(name(JSON_COLUMN))] = f"the tap's own `{name(JSON_COLUMN)}`"
        #: Fields declared in SCHEMA messages (evolve), in the order learned. One learned in
        #: an earlier run and since documented (chat.json or the catalog) is documented.
        self.learned: dict[str, Schema] = {}
        for key, value in learned.items():
            if mode == "evolve" and self._misfit(key) is None:
                self.learned[key] = value
                self._taken[column_key(name(key))] = f"learned `{key}`"
        self._known = self._documented | self.learned.keys()
        #: Fields moved into the JSON column in `evolve` mode, and why.
        self._routed: dict[str, str] = {}
        self._unannounced: dict[str, str] = {}
        self._unwarned: dict[str, str] = {}
        self._announced: set[str] = set()
        #: Something was learned that the record-writing thread has not yet acted on.
        self.pending = False
        self.sanitizer = RecordSanitizer(self._schema())

    def _schema(self) -> Schema:
        properties = dict(self._api_schema["properties"])
        properties.update(self.learned)
        if self.mode != "discard":
            properties[JSON_COLUMN] = field_schema("object")
        return {**self._api_schema, "properties": properties}

    def declared(self) -> dict[str, Schema]:
        """The properties this run adds to the catalog's schema (API names)."""
        if self.mode == "discard":
            return {}
        return {**self.learned, JSON_COLUMN: field_schema("object")}

    def _misfit(self, key: str) -> str | None:
        """Why `key` cannot have a column of its own, or None if it can."""
        column = self._name(key)
        if not column:
            return "its column name would be empty"
        if len(column.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
            # target-postgres creates the cut name, then looks for the whole one: every later
            # run fails adding it again.
            return f"its column name is longer than {MAX_IDENTIFIER_BYTES} bytes"
        if column.casefold().startswith("_sdc_"):
            return "`_sdc_` names are the loader's own columns"
        owner = self._taken.get(column_key(column))
        if owner is not None:
            return f"its column `{column}` would be {owner}'s (case ignored)"
        return None

    def inspect_page(self, records: list[dict[str, Any]]) -> None:
        """Learn the page's new fields; move or drop them as the mode says (in place)."""
        known = self._known
        seen: dict[str, set[str]] = {}
        strays = []
        for record in records:
            if known.issuperset(record):
                continue  # nearly every record of nearly every page
            strays.append(record)
            for key, value in record.items():
                if key not in known:
                    kinds = seen.setdefault(key, set())
                    kind = json_kind(value)
                    if kind is not None:
                        kinds.add(kind)
        if not seen:
            return
        self._learn(seen)
        if self.mode == "evolve" and not self._routed:
            return
        known, routed = self._known, self._routed
        for record in strays:
            if self.mode == "evolve":
                extra = {key: record.pop(key) for key in list(record) if key in routed}
            else:
                extra = {key: record.pop(key) for key in list(record) if key not in known}
            if extra and self.mode != "discard":
                record[JSON_COLUMN] = extra

    def _learn(self, seen: dict[str, set[str]]) -> None:
        fresh, misfits = {}, {}
        for key, kinds in seen.items():
            if key in self._announced or key in self._unannounced or key in self._routed:
                continue
            kind = common_kind(kinds)
            if self.mode == "evolve":
                if self._name(key) in self._claims:  # declared in the catalog by that name
                    self._document(key, self._claims[self._name(key)])
                    continue
                why = self._misfit(key)
                if why is None and kind is None:
                    continue  # only nulls so far: nothing to load yet (a value decides)
                if why is None and len(self.learned) >= self._max_columns:
                    why = f"max_undocumented_columns ({self._max_columns}) were learned already"
                if why is not None:
                    self._routed[key] = misfits[key] = why
                    continue
                self.learned[key] = field_schema(kind or "null")
                self._taken[column_key(self._name(key))] = f"learned `{key}`"
            fresh[key] = kind or "null"
        if not fresh and not misfits:
            return
        self._unannounced.update(fresh)
        self._unwarned.update(misfits)
        self._known = self._documented | self.learned.keys()
        self.sanitizer = RecordSanitizer(self._schema())
        self.pending = True

    def _document(self, key: str, schema: Schema) -> None:
        """`key` is the API's name of a field the catalog declares (under snake_case_fields)."""
        self._api_schema["properties"] = {**self._api_schema["properties"], key: schema}
        self._documented = self._documented | {key}
        self._known = self._documented | self.learned.keys()
        self.sanitizer = RecordSanitizer(self._schema())

    def take_news(self) -> tuple[dict[str, str], dict[str, str]]:
        """The fields first seen since the last call: learned (with types) and moved (why)."""
        news, self._unannounced = self._unannounced, {}
        misfits, self._unwarned = self._unwarned, {}
        self._announced.update(news)
        self.pending = False
        return news, misfits

    def announce(
        self, news: Mapping[str, str], misfits: Mapping[str, str], name: Callable[[str], str]
    ) -> None:
        """One INFO line for the new fields, one WARNING for those moved to the JSON column."""
        if news:
            fields = ", ".join(f"{name(key)} ({kind})" for key, kind in news.items())
            outcome = {
                "evolve": "added as columns (a SCHEMA message declares them; the state keeps "
                "them for later runs)",
                "json": f"kept in the `{name(JSON_COLUMN)}` column",
                "discard": f"discarded ({self.reason})",
            }[self.mode]
            # Dropped because of the catalog: the user may well want them (a WARNING).
            dropped_by_catalog = self.mode == "discard" and self.reason != DISCARD_SETTING
            self.logger.log(
                logging.WARNING if dropped_by_catalog else logging.INFO,
                "%s: the API sent %d field(s) its documentation does not list: %s; %s",
                self.stream,
                len(news),
                fields,
                outcome,
            )
        if misfits:
            self.logger.warning(
                "%s: the API sent %d field(s) that cannot be columns of their own, kept in the "
                "`%s` column instead: %s",
                self.stream,
                len(misfits),
                name(JSON_COLUMN),
                "; ".join(f"{key!r}: {why}" for key, why in misfits.items()),
            )


def for_stream(
    stream: str,
    api_schema: Schema,
    config: Mapping[str, Any],
    stream_state: Mapping[str, Any],
    *,
    selects_json_column: bool,
    logger: AnyLogger,
    name: Callable[[str], str] = str,
    catalog_fields: Mapping[str, Schema] | None = None,
) -> UndocumentedFields:
    """The stream's undocumented fields as its settings, catalog and state say.

    The JSON column stands for every field the API does not document. A catalog that selects
    it (`leads.*`, `*.*`, `*.*` with exclusions such as `!leads.profile`) takes new fields; a
    list of wanted columns leaves it out, so they are dropped, and named in a WARNING.
    """
    mode = str(config.get("undocumented_fields") or "evolve")
    reason = DISCARD_SETTING
    if mode != "discard" and not selects_json_column:
        mode = "discard"
        column = name(JSON_COLUMN)
        reason = (
            f"the catalog does not select `{column}`, so it lists the columns it wants; "
            f"select `{stream}.{column}` to take new fields"
        )
    learned = learned_from_state(stream_state) if mode == "evolve" else {}
    _warn_widened(stream, stream_state, learned, logger)
    cap = config.get("max_undocumented_columns")
    return UndocumentedFields(
        stream,
        api_schema,
        mode=mode,
        learned=learned,
        logger=logger,
        reason=reason,
        name=name,
        catalog_fields=catalog_fields,
        max_columns=MAX_COLUMNS if cap is None else int(cap),
    )


def _warn_widened(
    stream: str, stream_state: Mapping[str, Any], learned: Mapping[str, Schema], log: AnyLogger
) -> None:
    """Name fields an earlier run learned as `integer`, now declared `number` (once per run).

    The warehouse column stays as it was: target-postgres keeps `bigint` (and rounds
    decimals), target-duckdb renames it and adds a new one, so the user should know.
    """
    entries = stream_state.get(STATE_KEY)
    if not isinstance(entries, dict):
        return
    widened = [
        name
        for name in learned
        if isinstance(entries.get(name), dict) and "integer" in entries[name].get("type", [])
    ]
    if widened:
        log.warning(
            "%s: %s learned as integer by an earlier run, now declared number (decimals are "
            "kept from now on); if the warehouse column is an integer one, change it to a "
            "numeric type once (docs/schema-evolution.md)",
            stream,
            ", ".join(widened),
        )
