"""Snowflake: what each field becomes there, from target-snowflake's own rules.

No Snowflake is reachable from here and no emulator runs target-snowflake's stage loads
(fakesnow lacks `COPY` with transforms), so nothing is loaded into one. What can be checked
offline is: the target installs with the project, the table of column names and types in
docs/warehouses.md is exactly what its naming and type mapping make of our catalog, and the
dbt project compiles for Snowflake against raw tables of those shapes (every naming and
`undocumented_fields` mode), its models finding each field where the tap put it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tap_botpenguin.records.evolution import field_schema, json_kind
from tap_botpenguin.records.naming import snake_case
from tap_botpenguin.sandbox.data import make_inbox, real_shaped

from .helpers import DBT_NODES, ROOT

TARGET_PYTHON = ROOT / ".meltano/loaders/target-snowflake/venv/bin/python"
DBT_PYTHON = ROOT / ".meltano/utilities/dbt-snowflake/venv/bin/python"
ROW = re.compile(
    r"^\| `(?P<field>[^`]+)` \| `(?P<api>[^`]+)` \| `(?P<snake>[^`]+)` \| `(?P<type>[^`]+)` \|$"
)


def _discover(tmp_path: Path, name: str, env: dict[str, str]) -> Path:
    catalog = tmp_path / f"{name}.json"
    done = subprocess.run(
        [sys.executable, "-m", "tap_botpenguin", "--config=ENV", "--discover"],
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        check=True,
    )
    catalog.write_text(done.stdout)
    return catalog


def snowflake_table(tmp_path: Path, learned: dict[str, Any] | None = None) -> list[str]:
    """The table rows scripts/snowflake_types.py prints, under target-snowflake's Python;
    `learned`: undocumented fields the tap declared (`undocumented_fields: evolve`)."""
    api = _discover(tmp_path, "api", {})
    snake = _discover(tmp_path, "snake", {"TAP_BOTPENGUIN_SNAKE_CASE_FIELDS": "true"})
    for catalog, name in ((api, str), (snake, snake_case)):
        content = json.loads(catalog.read_text())
        for stream in content["streams"]:
            stream["schema"]["properties"].update({name(k): v for k, v in (learned or {}).items()})
        catalog.write_text(json.dumps(content))
    done = subprocess.run(
        [str(TARGET_PYTHON), str(ROOT / "scripts/snowflake_types.py"), str(api), str(snake)],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.splitlines()


@pytest.mark.e2e
def test_the_readme_table_is_what_target_snowflake_makes_of_the_catalog(tmp_path: Path) -> None:
    assert TARGET_PYTHON.exists(), "target-snowflake is not installed: run `meltano install`"
    readme = (ROOT / "docs/warehouses.md").read_text()
    block = re.search(
        r"<!-- snowflake-types:start -->\n(.*?)<!-- snowflake-types:end -->", readme, re.S
    )
    assert block, "docs/warehouses.md lacks the Snowflake table"

    rows = snowflake_table(tmp_path)

    assert block.group(1).splitlines() == rows
    assert "| `updatedAt` | `UPDATEDAT` | `UPDATED_AT` | `TIMESTAMP_NTZ` |" in rows
    assert "| `profile` | `PROFILE` | `PROFILE` | `VARIANT` |" in rows


def _learned_from_a_real_record() -> dict[str, Any]:
    """What evolve mode declares for a real record's fields beyond the field tables."""
    documented = json.loads((ROOT / "tap_botpenguin/records/chat.json").read_text())["properties"]
    record = real_shaped(make_inbox("snowflake", 2)[1], 1, "WHATSAPP")
    return {
        key: field_schema(kind)
        for key, value in record.items()
        if key not in documented and (kind := json_kind(value)) is not None
    }


@pytest.mark.e2e
def test_the_dbt_project_compiles_for_snowflake_in_every_naming_and_mode(tmp_path: Path) -> None:
    """Raw tables as target-snowflake makes them (its type mapping, on our catalog plus what
    evolve learns from a real record), in fakesnow; `dbt compile` with dbt-snowflake."""
    assert DBT_PYTHON.exists(), "dbt-snowflake is not installed: run scripts/bootstrap.sh"
    learned = _learned_from_a_real_record()
    assert {"platform", "isPaid", "hasOrdered", "segments"} <= set(learned)
    rows = [match for line in snowflake_table(tmp_path, learned) if (match := ROW.match(line))]
    assert {row["type"] for row in rows if row["field"] in {"platform", "hasOrdered"}} == {
        "VARIANT"
    }
    documented = [row for row in rows if row["field"] not in learned]
    cases = {
        "api_evolve": [[row["api"], row["type"]] for row in rows],
        "snake_evolve": [[row["snake"], row["type"]] for row in rows],
        "api_json": [[row["api"], row["type"]] for row in documented],
        "snake_discard": [
            [row["snake"], row["type"]]
            for row in documented
            if row["field"] != "undocumentedFields"
        ],
    }
    tables = tmp_path / "tables.json"
    tables.write_text(json.dumps(cases))
    out = tmp_path / "compiled"
    done = subprocess.run(
        [str(DBT_PYTHON), str(ROOT / "scripts/snowflake_compile.py"), str(tables), str(out)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert [line for line in done.stdout.splitlines() if line.endswith("compiled")] == [
        f"{case}: compiled" for case in cases
    ]

    def staged(case: str) -> str:
        return (
            out / case / "compiled/botpenguin/models/staging/stg_botpenguin__leads.sql"
        ).read_text()

    for case in cases:  # every model and every test
        compiled = out / case / "compiled/botpenguin"
        assert len(list(compiled.rglob("*.sql"))) == DBT_NODES, case
    # Each field where the tap put it: its column (the column wins), the JSON column, nowhere.
    assert "coalesce(platform, undocumentedFields:platform) as platform" in staged("api_evolve")
    assert "profile:userDetails:userProvidedName::varchar" in staged("api_evolve")
    assert "coalesce(cast(is_paid as boolean)" in staged("snake_evolve")
    assert "profile:user_details:user_provided_name::varchar" in staged("snake_evolve")
    assert "undocumentedFields:platform as platform" in staged("api_json")
    assert "cast(null as variant) as platform" in staged("snake_discard")
    assert "cast(null as boolean) as is_paid" in staged("snake_discard")
