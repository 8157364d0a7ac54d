"""What each field becomes in Snowflake, from target-snowflake's own naming and type mapping.

Run with target-snowflake's Python (it imports the target), given the tap's catalog with API
names and with `snake_case_fields: true`; prints the table rows of docs/warehouses.md:

    .venv/bin/tap-botpenguin --discover > api.json
    export TAP_BOTPENGUIN_SNAKE_CASE_FIELDS=true
    .venv/bin/tap-botpenguin --config=ENV --discover > snake.json
    .meltano/loaders/target-snowflake/venv/bin/python scripts/snowflake_types.py api.json snake.json

No connection is made: column names come from the target's identifier rules applied with the
Snowflake dialect alone, types from its JSON Schema to SQL conversion compiled for Snowflake.
`tests/test_snowflake.py` keeps that table equal to this output.
"""

from __future__ import annotations

import json
import sys
from functools import cached_property
from typing import Any

from snowflake.sqlalchemy.snowdialect import SnowflakeDialect
from target_snowflake.connector import SnowflakeConnector

DIALECT = SnowflakeDialect()


class OfflineConnector(SnowflakeConnector):
    """target-snowflake's connector with the dialect's identifier rules, never connected."""

    @cached_property
    def formatter(self) -> Any:
        """The identifier preparer the target's own naming uses."""
        return DIALECT.identifier_preparer


def stored_name(connector: SnowflakeConnector, field: str) -> str:
    """The column as Snowflake stores it, with the target's default session setting
    QUOTED_IDENTIFIERS_IGNORE_CASE=TRUE: every identifier, quoted or not, in upper case."""
    return connector.format_identifier(field).upper()


def leads_properties(catalog_path: str) -> dict[str, Any]:
    with open(catalog_path, encoding="utf-8") as catalog:
        streams = json.load(catalog)["streams"]
    schema = next(s for s in streams if s["tap_stream_id"] == "leads")["schema"]
    return dict(schema["properties"])


def main(api_catalog: str, snake_catalog: str) -> None:
    connector = OfflineConnector(config={"account": "offline", "user": "offline"})
    api, snake = leads_properties(api_catalog), leads_properties(snake_catalog)
    print("| field | column (default) | column (`snake_case_fields: true`) | Snowflake type |")
    print("|---|---|---|---|")
    for (field, prop), snake_field in zip(api.items(), snake, strict=True):
        sql_type = connector.to_sql_type(prop).compile(dialect=DIALECT)
        print(
            f"| `{field}` | `{stored_name(connector, field)}` | "
            f"`{stored_name(connector, snake_field)}` | `{sql_type}` |"
        )


if __name__ == "__main__":
    main(*sys.argv[1:3])
