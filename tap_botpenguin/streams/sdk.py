"""The stream's side of schema evolution: SCHEMA messages for what `evolution` learns.

Called from the thread that writes records: `post_process` checks `pending` (one attribute
read per record) and, when a page brought new fields, announces them and (in `evolve` mode)
writes an updated SCHEMA message before the record, then keeps them in the stream's state.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Generator
from functools import cached_property
from typing import Any

from singer_sdk import Stream
from singer_sdk.exceptions import AbortedSyncExceptionBase, MaxRecordsLimitException
from singer_sdk.helpers._util import utc_now
from singer_sdk.singerlib import RecordMessage

from tap_botpenguin.records import evolution
from tap_botpenguin.records.evolution import UndocumentedFields
from tap_botpenguin.records.naming import snake_case
from tap_botpenguin.report.errors import BotPenguinError
from tap_botpenguin.report.logs import RoutineToDebug
from tap_botpenguin.streams.schema import CHAT_SCHEMA

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override


def _explained(error: BaseException | None) -> bool:
    """Whether a sync failure the SDK logs is no news: --test's stop, or one the tap explains."""
    dry_run_stop = isinstance(error, AbortedSyncExceptionBase) and isinstance(
        error.__cause__, MaxRecordsLimitException
    )
    return dry_run_stop or isinstance(error, BotPenguinError)


#: The SDK's routine lines as DEBUG lines (see `report.logs`).
ROUTINE_TO_DEBUG = RoutineToDebug(_explained)


class EvolvingStream(Stream):
    """Declares undocumented fields through every stream map (aliases, flattening)."""

    _base_schema: dict[str, Any] | None = None

    @cached_property
    def _selects_every_property(self) -> bool:
        return all(self.mask.values())

    @cached_property
    def _undocumented(self) -> UndocumentedFields:
        api_schema = CHAT_SCHEMA.api_schema()
        # What the catalog declares beyond chat.json (Meltano's `schema` extra) is documented.
        ours = {self._field_name(key) for key in api_schema["properties"]}
        ours.add(self._field_name(evolution.JSON_COLUMN))
        catalog = self.effective_schema.get("properties", {})
        return evolution.for_stream(
            self.name,
            api_schema,
            self.config,
            self.stream_state,
            selects_every_property=self._selects_every_property,
            logger=self.logger,
            name=self._field_name,
            catalog_fields={key: value for key, value in catalog.items() if key not in ours},
        )

    def _field_name(self, key: str) -> str:
        return snake_case(key) if self.config.get("snake_case_fields") else key

    @override
    def _write_schema_message(self) -> None:
        """The SCHEMA message, with learned fields (or the JSON column) declared.

        The stream maps are rebuilt from the new schema, so aliases and flattening follow.
        """
        fields = self._undocumented
        declared = fields.declared()
        learned = {key: value for key, value in declared.items() if key != evolution.JSON_COLUMN}
        if fields.mode == "evolve" and (learned or evolution.STATE_KEY in self.stream_state):
            # What this run declares is what later runs start from.
            self.stream_state[evolution.STATE_KEY] = learned
        if declared:
            if self._base_schema is None:
                self._base_schema = copy.deepcopy(self.stream_maps[0].raw_schema)
            base = self._base_schema
            properties = dict(base.get("properties", {}))
            for key, value in declared.items():
                properties.setdefault(self._field_name(key), value)  # the catalog's type wins
            self._tap.mapper.register_raw_stream_schema(
                self.name, {**base, "properties": properties}, self.primary_keys
            )
            self._stream_maps = self._tap.mapper.stream_maps[self.name]
        super()._write_schema_message()

    def _declare_undocumented(self) -> None:
        """Before the first record carrying them: name new fields, declare and keep them."""
        fields = self._undocumented
        news, misfits = fields.take_news()
        fields.announce(news, misfits, self._field_name)
        if fields.mode == "evolve" and news:
            self._write_schema_message()

    @override
    def _generate_record_messages(
        self, record: dict[str, Any]
    ) -> Generator[RecordMessage, None, None]:
        """The SDK's method minus its per-record selection walk, when nothing is deselected.

        `pop_deselected_record_properties` visits every nested key of every record; with all
        properties selected it removes nothing, yet took 29% of a 51k-record sync (1.82 s ->
        1.30 s). Type conformance is off (see TYPE_CONFORMANCE_LEVEL), so the rest is the
        SDK's own code. Any deselection in the catalog takes the SDK's path unchanged.
        """
        if not self._selects_every_property:
            yield from super()._generate_record_messages(record)
            return
        for stream_map in self.stream_maps:
            mapped = stream_map.transform(record)
            if mapped is not None:
                yield RecordMessage(
                    stream=stream_map.stream_alias,
                    record=mapped,
                    version=self._stream_version,
                    time_extracted=utc_now(),
                )
