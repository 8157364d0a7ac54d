"""Opt-in warehouse-friendly names: `isOnline` -> `is_online`, `_agentAssigned` -> `agent_assigned`.

`_id` keeps its name everywhere (it is the primary key, and every warehouse accepts it).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


@cache
def snake_case(name: str) -> str:
    """`websiteVisits` -> `website_visits`; leading underscores dropped, except for `_id`."""
    if name == "_id":
        return name
    stripped = name.lstrip("_") or name
    return _BOUNDARY.sub("_", stripped).lower()


def snake_case_record(value: Any) -> Any:
    """Rename every key of nested objects; nothing is overwritten.

    Keys already in snake_case keep their names; another key whose new name is taken keeps its
    original. (Top-level fields that would collide never get here: `evolution` moves them.)
    """
    if isinstance(value, dict):
        renamed: dict[str, Any] = {}
        later = []
        for key, item in value.items():
            if snake_case(key) == key:
                renamed[key] = snake_case_record(item)
            else:
                later.append(key)
        for key in later:
            new_key = snake_case(key)
            renamed[key if new_key in renamed else new_key] = snake_case_record(value[key])
        return renamed
    if isinstance(value, list):
        return [snake_case_record(item) for item in value]
    return value


def snake_case_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The same JSON Schema with every property (and `required` entry) renamed."""
    converted = dict(schema)
    if "properties" in schema:
        converted["properties"] = {
            snake_case(name): snake_case_schema(sub) for name, sub in schema["properties"].items()
        }
    if "required" in schema:
        converted["required"] = [snake_case(name) for name in schema["required"]]
    if "items" in schema:
        converted["items"] = snake_case_schema(schema["items"])
    return converted
