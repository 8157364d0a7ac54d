"""The streams' JSON Schema (`chat.json`, shared by leads and chats), optionally snake_cased."""

from __future__ import annotations

import importlib.resources
import sys
from typing import Any

from singer_sdk.schema.source import SchemaDirectory, StreamSchema

from tap_botpenguin.records.evolution import JSON_COLUMN, field_schema
from tap_botpenguin.records.naming import snake_case, snake_case_schema

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override


class ChatSchema(StreamSchema[str]):
    """The documented schema; with `snake_case_fields`, the same with snake_case names.

    Unless `undocumented_fields` is `discard`, it declares the JSON column too (`--discover`
    shows it, targets create it before any record needs it).
    """

    def __init__(self) -> None:
        super().__init__(
            SchemaDirectory(importlib.resources.files("tap_botpenguin.records")), key="chat"
        )
        self._converted: dict[tuple[int, bool, bool], Any] = {}

    def api_schema(self) -> dict[str, Any]:
        """The schema with the API's own field names."""
        return dict(self.schema_source.get_schema(self.key or "chat"))

    @override
    def get_stream_schema(self, stream: Any, stream_class: Any) -> Any:
        schema = super().get_stream_schema(stream, stream_class)
        snake = bool(stream.config.get("snake_case_fields"))
        column = stream.config.get("undocumented_fields") != "discard"
        key = (id(schema), snake, column)
        if key not in self._converted:  # the source caches `schema`: convert it once
            converted = snake_case_schema(schema) if snake else schema
            if column:
                name = snake_case(JSON_COLUMN) if snake else JSON_COLUMN
                properties = {**converted["properties"], name: field_schema("object")}
                converted = {**converted, "properties": properties}
            self._converted[key] = converted
        return self._converted[key]


CHAT_SCHEMA = ChatSchema()
