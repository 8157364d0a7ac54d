"""Compile the dbt project for Snowflake offline, against raw tables as target-snowflake makes them.

Run with the `dbt-snowflake` utility's Python (dbt-snowflake, plus fakesnow, which
scripts/bootstrap.sh adds there for this script alone):

    .meltano/utilities/dbt-snowflake/venv/bin/python scripts/snowflake_compile.py TABLES.json OUT

TABLES.json is `{case: [[column, Snowflake type], ...]}`: one raw table shape per case (API
names or snake_case, with or without learned columns and `undocumentedFields`), such as
`tests/test_snowflake.py` derives from target-snowflake's own type mapping. Each case gets a
schema `RAW.<CASE>` holding `LEADS` and `CHATS` in fakesnow (an in-memory stand-in for
Snowflake's connector), and `dbt compile` runs against it: the models look at the tables'
columns as they would in Snowflake, and the compiled SQL lands in `OUT/<case>/`. Nothing is
executed there (fakesnow does not speak all of Snowflake's SQL), so this checks the macros'
Snowflake branches render for every table shape, not that Snowflake runs them.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import fakesnow
import snowflake.connector
from dbt.cli.main import dbtRunner

PROJECT = Path(__file__).resolve().parents[1] / "transform"
#: fakesnow accepts any credentials; the project's profile wants a private key file.
PROFILE = """\
botpenguin:
  target: snowflake
  outputs:
    snowflake:
      type: snowflake
      account: offline
      user: offline
      password: offline
      database: RAW
      schema: ANALYTICS
      threads: 1
"""


def create_tables(cases: dict[str, list[list[str]]]) -> None:
    connection = snowflake.connector.connect(database="RAW", schema="PUBLIC")
    cursor = connection.cursor()
    for case, columns in cases.items():
        cursor.execute(f"create schema if not exists RAW.{case.upper()}")
        definition = ", ".join(f'"{name}" {kind}' for name, kind in columns)
        for table in ("LEADS", "CHATS"):
            cursor.execute(f"create or replace table RAW.{case.upper()}.{table} ({definition})")


def compile_case(case: str, out: Path, profiles: Path) -> bool:
    os.environ["DBT_BOTPENGUIN_SOURCE_SCHEMA"] = case.upper()
    result = dbtRunner().invoke(
        [
            "compile",
            "--project-dir",
            str(PROJECT),
            "--profiles-dir",
            str(profiles),
            "--target-path",
            str(out / case),
            "--log-path",
            str(out / "logs"),
            "--no-partial-parse",
            "--quiet",
        ]
    )
    print(f"{case}: {'compiled' if result.success else f'failed ({result.exception})'}")
    return bool(result.success)


def main(tables: str, out: str) -> int:
    cases = json.loads(Path(tables).read_text())
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    with tempfile.TemporaryDirectory() as profiles:
        (Path(profiles) / "profiles.yml").write_text(PROFILE)
        with fakesnow.patch(create_database_on_connect=True, create_schema_on_connect=True):
            create_tables(cases)
            compiled = [compile_case(case, Path(out), Path(profiles)) for case in cases]
    return 0 if all(compiled) else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
