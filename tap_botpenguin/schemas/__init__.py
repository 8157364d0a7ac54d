"""The streams' JSON Schema (`chat.json`, shared by leads and chats), optionally snake_cased."""

from __future__ import annotations

import importlib.resources
import sys
from typing import Any

from singer_sdk.schema.source import SchemaDirectory, StreamSchema

from tap_botpenguin.naming import snake_case_schema

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override


class ChatSchema(StreamSchema[str]):
    """The documented schema; with `snake_case_fields`, the same with snake_case names."""

    def __init__(self) -> None:
        super().__init__(SchemaDirectory(importlib.resources.files(__name__)), key="chat")
        self._snake: dict[int, Any] = {}

    def api_schema(self) -> dict[str, Any]:
        """The schema with the API's own field names."""
        return dict(self.schema_source.get_schema(self.key or "chat"))

    @override
    def get_stream_schema(self, stream: Any, stream_class: Any) -> Any:
        schema = super().get_stream_schema(stream, stream_class)
        if not stream.config.get("snake_case_fields"):
            return schema
        if id(schema) not in self._snake:  # the source caches `schema`: convert it once
            self._snake[id(schema)] = snake_case_schema(schema)
        return self._snake[id(schema)]


CHAT_SCHEMA = ChatSchema()
