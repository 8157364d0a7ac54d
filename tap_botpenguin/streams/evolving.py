"""The stream's side of schema evolution: SCHEMA messages for what `records.evolution` learns.

Main thread only: each page is inspected as it is taken for emitting (`learn_from_page`);
`post_process` checks `pending` (one attribute read per record) and, when a page brought new
fields, announces them and (in `evolve` mode) writes an updated SCHEMA message before the
record, then keeps them in the stream's state.
"""

from __future__ import annotations

import sys
from functools import cached_property
from typing import Any

from tap_botpenguin.config.settings import Settings
from tap_botpenguin.records import evolution
from tap_botpenguin.records.evolution import UndocumentedFields
from tap_botpenguin.records.naming import snake_case
from tap_botpenguin.records.sanitize import RecordSanitizer
from tap_botpenguin.streams.schema import CHAT_SCHEMA
from tap_botpenguin.streams.sdk import SdkStream

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override


class EvolvingStream(SdkStream):
    """Declares undocumented fields through every stream map (aliases, flattening)."""

    settings: Settings

    @cached_property
    def undocumented(self) -> UndocumentedFields:
        """The undocumented fields of this run, from the settings, the catalog and the state."""
        api_schema = CHAT_SCHEMA.api_schema()
        # What the catalog declares beyond chat.json (Meltano's `schema` extra) is documented.
        ours = {self.field_name(key) for key in api_schema["properties"]}
        ours.add(self.field_name(evolution.JSON_COLUMN))
        catalog = self.effective_schema.get("properties", {})
        return evolution.for_stream(
            self.name,
            api_schema,
            {
                "undocumented_fields": self.settings.undocumented_fields,
                "max_undocumented_columns": self.settings.max_undocumented_columns,
            },
            self.stream_state,
            # A property the catalog does not mention takes its stream's selection (the SDK's
            # rule), so a catalog without metadata for the column takes new fields too.
            selects_json_column=self.mask[("properties", self.field_name(evolution.JSON_COLUMN))],
            logger=self.logger,
            name=self.field_name,
            catalog_fields={key: value for key, value in catalog.items() if key not in ours},
        )

    def field_name(self, key: str) -> str:
        """A field's column name (snake_case with `snake_case_fields`)."""
        return snake_case(key) if self.settings.snake_case_fields else key

    def learn_from_page(
        self, records: list[dict[str, Any]], repaired: int, planned: RecordSanitizer
    ) -> int:
        """Learn a page's new fields and repair what the reading thread could not know.

        The reading thread repaired the page with `planned`, the schema as it stood when the
        read was planned; fields learned (or documented by the catalog) since need a second
        look. Returns how many records were repaired in all.
        """
        fields = self.undocumented
        fields.inspect_page(records)
        if fields.sanitizer is not planned:
            repaired += fields.sanitizer.sanitize_page(records, scrub_strings=False)
        return repaired

    @override
    def schema_to_declare(self) -> dict[str, Any]:
        """The learned fields (or the JSON column), by column name; kept in the state."""
        fields = self.undocumented
        declared = fields.declared()
        learned = {key: value for key, value in declared.items() if key != evolution.JSON_COLUMN}
        if fields.mode == "evolve" and (learned or evolution.STATE_KEY in self.stream_state):
            # What this run declares is what later runs start from.
            self.stream_state[evolution.STATE_KEY] = learned
        return {self.field_name(key): value for key, value in declared.items()}

    def declare_undocumented(self) -> None:
        """Before the first record carrying them: name new fields, declare and keep them."""
        fields = self.undocumented
        news, misfits = fields.take_news()
        fields.announce(news, misfits, self.field_name)
        if fields.mode == "evolve" and news:
            self.write_schema()
