"""Undocumented fields, run by run: learned, declared before use, kept in state, announced once.

In-process runs against the sandbox (real HTTP); what is checked is what a target and a user
see: the SCHEMA and RECORD messages in their order, the state, and the log lines.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tap_botpenguin.records.evolution import JSON_COLUMN, STATE_KEY
from tap_botpenguin.sandbox import WEBSITE_BOT, Fault, Sandbox
from tap_botpenguin.sandbox.undocumented import UNDOCUMENTED_FIELDS

from .helpers import (
    ANNOUNCED,
    LEARNED_KINDS,
    STREAM_TYPES,
    SyncResult,
    base_config,
    catalog_selecting,
    fresh_bots,
    logged,
    run_cli,
    run_in_process,
)


def _first_schema_and_record_order(result: SyncResult, stream: str, field: str) -> None:
    """The first record carrying a value of `field` comes after a SCHEMA message declaring it
    (a key whose values were all null so far is not declared yet: it has nothing to load)."""
    declared = False
    for message in result.messages:
        if message.get("stream") != stream:
            continue
        if message["type"] == "SCHEMA":
            declared = field in message["schema"]["properties"]
        elif message["type"] == "RECORD" and message["record"].get(field) is not None:
            assert declared, f"{field} sent before a SCHEMA declared it"
            return
    pytest.fail(f"no {stream} record carries {field}")


def test_new_fields_are_declared_before_their_first_record_with_their_types(
    undocumented_api: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    result = run_in_process(base_config(undocumented_api))

    assert result.error is None
    for stream in STREAM_TYPES:
        for field in UNDOCUMENTED_FIELDS:
            _first_schema_and_record_order(result, stream, field)
        declared = result.schemas()[stream]["properties"]
        for field, kind in LEARNED_KINDS.items():
            assert declared[field]["type"] == [kind, "null"], field
        learned = result.final_state["bookmarks"][stream][STATE_KEY]
        assert {name: schema["type"][0] for name, schema in learned.items()} == LEARNED_KINDS
    # One INFO line per stream, nothing per record.
    lines = logged(caplog, containing=ANNOUNCED)
    assert len(lines) == len(STREAM_TYPES), lines
    assert all("leadScore (number)" in line and "labels (array)" in line for line in lines)
    assert sum("leadScore" in r.getMessage() for r in caplog.records) == len(STREAM_TYPES)


def test_the_next_run_declares_learned_fields_first_and_keeps_their_types(
    undocumented_api: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    first = run_in_process(base_config(undocumented_api))
    # The API now sends text for a number field, and numbers for a string one.
    (odd,) = undocumented_api.update(
        WEBSITE_BOT, "lead", [0], fields={"leadScore": "high", "channel": 7}
    )
    (convertible,) = undocumented_api.update(WEBSITE_BOT, "lead", [5], fields={"leadScore": "12"})
    caplog.set_level(logging.INFO)
    second = run_in_process(base_config(undocumented_api), state=first.final_state)

    assert second.error is None
    first_schema = next(m for m in second.messages if m["type"] == "SCHEMA")
    for field, kind in LEARNED_KINDS.items():
        assert first_schema["schema"]["properties"][field]["type"] == [kind, "null"]
    assert not logged(caplog, containing=ANNOUNCED)  # nothing new this run
    by_id = {r["_id"]: r for r in second.records["leads"]}
    assert by_id[odd]["leadScore"] is None
    assert by_id[odd]["invalidFields"] == {"leadScore": '"high"'}
    assert by_id[odd]["channel"] == "7"  # lossless conversion to the learned type
    assert by_id[convertible]["leadScore"] == 12
    assert (
        second.final_state["bookmarks"]["leads"][STATE_KEY]
        == (first.final_state["bookmarks"]["leads"][STATE_KEY])
    )


def test_state_from_before_schema_evolution_is_read_unchanged(undocumented_api: Sandbox) -> None:
    plain = fresh_bots()
    with Sandbox(bots=plain, rate_limit=None) as old_api:
        old = run_in_process(base_config(old_api))
    assert STATE_KEY not in old.final_state["bookmarks"]["leads"]
    kept = copy.deepcopy(old.final_state)

    result = run_in_process(base_config(undocumented_api), state=old.final_state)

    assert result.error is None
    for stream in STREAM_TYPES:
        before = kept["bookmarks"][stream]["partitions"]
        after = result.final_state["bookmarks"][stream]["partitions"]
        assert [p["context"] for p in after] == [p["context"] for p in before]
        assert set(result.final_state["bookmarks"][stream][STATE_KEY]) == set(UNDOCUMENTED_FIELDS)


def test_a_field_seen_only_as_null_waits_for_a_value(caplog: pytest.LogCaptureFixture) -> None:
    def nulls(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for record in records:
            record["laterField"] = None
        return records

    def a_value(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        records[0]["laterField"] = 2.5
        return records

    with Sandbox(bots=fresh_bots(), rate_limit=None) as undocumented_api:
        undocumented_api.inject(
            Fault("data", transform=nulls, times=None, page=1),
            Fault("data", transform=a_value, times=None, page=2, type="lead", bot_id=WEBSITE_BOT),
        )
        caplog.set_level(logging.INFO)
        result = run_in_process(base_config(undocumented_api))

    assert result.error is None
    assert result.schemas()["leads"]["properties"]["laterField"]["type"] == ["number", "null"]
    assert "laterField" not in result.schemas()["chats"]["properties"]
    _first_schema_and_record_order(result, "leads", "laterField")
    assert len([line for line in logged(caplog, containing=ANNOUNCED) if "laterField" in line]) == 1


def test_snake_case_fields_names_learned_fields_too(undocumented_api: Sandbox) -> None:
    result = run_in_process(base_config(undocumented_api, snake_case_fields=True))

    assert result.error is None
    properties = result.schemas()["leads"]["properties"]
    assert properties["lead_score"]["type"] == ["number", "null"]
    assert properties["is_vip"]["type"] == ["boolean", "null"]
    assert "leadScore" not in properties
    assert all("lead_score" in r for r in result.records["leads"])
    _first_schema_and_record_order(result, "leads", "lead_score")


def test_json_mode_puts_every_undocumented_field_in_one_column(undocumented_api: Sandbox) -> None:
    result = run_in_process(base_config(undocumented_api, undocumented_fields="json"))

    assert result.error is None
    schemas = [m for m in result.messages if m["type"] == "SCHEMA" and m["stream"] == "leads"]
    assert len(schemas) == 1  # a fixed shape, declared once
    assert schemas[0]["schema"]["properties"][JSON_COLUMN]["type"] == ["object", "null"]
    sent = {r["_id"]: r for r in undocumented_api.listing(WEBSITE_BOT, "lead")}
    for record in result.records["leads"]:
        assert not set(record) & set(UNDOCUMENTED_FIELDS)
        if record["botId"] == WEBSITE_BOT:
            expected = {k: v for k, v in sent[record["_id"]].items() if k in UNDOCUMENTED_FIELDS}
            assert record[JSON_COLUMN] == expected


def test_discard_mode_drops_and_names_them(
    undocumented_api: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    result = run_in_process(base_config(undocumented_api, undocumented_fields="discard"))

    assert result.error is None
    for stream in STREAM_TYPES:
        assert not set(result.schemas()[stream]["properties"]) & set(UNDOCUMENTED_FIELDS)
        assert all(not set(r) & set(UNDOCUMENTED_FIELDS) for r in result.records[stream])
        assert STATE_KEY not in result.final_state["bookmarks"][stream]
    lines = logged(caplog, containing=ANNOUNCED)
    assert len(lines) == len(STREAM_TYPES)
    assert all("discarded (undocumented_fields: discard)" in line for line in lines)


#: The leads columns of a catalog that lists the wanted ones (`select: [leads._id, ...]`).
LISTED = {"_id", "updatedAt", "status"}
#: What the WARNING says when the catalog had new fields dropped.
DROPPED_BY_CATALOG = (
    "discarded (the catalog does not select `undocumentedFields`, so it lists the columns it "
    "wants; select `leads.undocumentedFields` to take new fields)"
)


def _warnings(result: SyncResult) -> list[str]:
    return [line for line in result.stderr.splitlines() if "| WARNING  |" in line]


@pytest.mark.parametrize(
    "keep",
    [
        pytest.param(lambda name: True, id="every property (leads.*)"),
        pytest.param(lambda name: name != "profile", id="one left out (*.*, !leads.profile)"),
        pytest.param(
            lambda name: name in {*LISTED, JSON_COLUMN}, id="a list with undocumentedFields"
        ),
    ],
)
def test_a_catalog_selecting_undocumented_fields_takes_new_fields(
    undocumented_api: Sandbox, tmp_path: Path, keep: Callable[[str], bool]
) -> None:
    config = base_config(undocumented_api)
    catalog = catalog_selecting(config, "leads", keep)

    result = run_cli(config, tmp_path, catalog=catalog)

    assert result.exit_code == 0, result.stderr
    declared = result.schemas()["leads"]["properties"]
    assert set(UNDOCUMENTED_FIELDS) <= set(declared)
    assert all(keep(name) for name in declared if name not in UNDOCUMENTED_FIELDS)
    records = result.records["leads"]
    assert len(records) == len(undocumented_api.all_records("lead"))
    assert all("leadScore" in r and "utm" in r for r in records)
    assert all(keep(name) for r in records for name in r if name not in UNDOCUMENTED_FIELDS)
    assert set(LEARNED_KINDS) <= set(result.final_state["bookmarks"]["leads"][STATE_KEY])
    assert not [line for line in _warnings(result) if ANNOUNCED in line]


def test_a_catalog_listing_the_wanted_columns_drops_new_fields_with_a_warning(
    undocumented_api: Sandbox, tmp_path: Path
) -> None:
    config = base_config(undocumented_api)
    catalog = catalog_selecting(config, "leads", lambda name: name in LISTED)

    result = run_cli(config, tmp_path, catalog=catalog)

    assert result.exit_code == 0, result.stderr
    assert set(result.schemas()["leads"]["properties"]) == LISTED
    assert len(result.records["leads"]) == len(undocumented_api.all_records("lead"))
    assert all(set(r) == LISTED for r in result.records["leads"])
    assert STATE_KEY not in result.final_state["bookmarks"]["leads"]
    # chats selects every property: it learns them as usual.
    assert set(UNDOCUMENTED_FIELDS) <= set(result.schemas()["chats"]["properties"])
    (line,) = [line for line in _warnings(result) if ANNOUNCED in line]
    assert "leads: the API sent 7 field(s)" in line
    assert line.endswith(DROPPED_BY_CATALOG)


def test_undocumented_fields_discard_is_said_at_info(
    undocumented_api: Sandbox, tmp_path: Path
) -> None:
    """The user asked for it: named, but not a warning (nothing to act on)."""
    result = run_cli(base_config(undocumented_api, undocumented_fields="discard"), tmp_path)

    assert result.exit_code == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if ANNOUNCED in line]
    assert len(lines) == len(STREAM_TYPES)
    assert all("| INFO     |" in line for line in lines)
    assert all(line.endswith("discarded (undocumented_fields: discard)") for line in lines)


def test_stream_maps_follow_the_evolved_schema(undocumented_api: Sandbox) -> None:
    maps = {
        "leads": {"__alias__": "crm_leads", "score_twice": "leadScore * 2 if leadScore else None"}
    }
    result = run_in_process(base_config(undocumented_api, stream_maps=maps))

    assert result.error is None
    assert set(UNDOCUMENTED_FIELDS) <= set(result.schemas()["crm_leads"]["properties"])
    assert all("leadScore" in r for r in result.records["crm_leads"])


def test_a_copy_of_a_stream_keeps_what_a_map_removes_from_the_stream(
    undocumented_api: Sandbox,
) -> None:
    """The SCHEMA of `leads_copy` declares `profile`, which its records carry (it lost it when
    the tap rebuilt the maps from the first map's schema, out of which `profile` was cut)."""
    maps = {"leads": {"profile": "__NULL__"}, "leads_copy": {"__source__": "leads"}}
    result = run_in_process(base_config(undocumented_api, stream_maps=maps))

    assert result.error is None
    schemas = result.schemas()
    assert "profile" not in schemas["leads"]["properties"]
    assert {"profile", *UNDOCUMENTED_FIELDS} <= set(schemas["leads_copy"]["properties"])
    assert all("profile" not in r for r in result.records["leads"])
    assert all("profile" in r for r in result.records["leads_copy"])


def test_a_learned_field_later_documented_takes_the_documented_type(
    undocumented_api: Sandbox,
) -> None:
    """Moving a field into chat.json wins over what the state learned (and the state forgets
    it once the run declares its fields)."""
    first = run_in_process(base_config(undocumented_api))
    state = copy.deepcopy(first.final_state)
    state["bookmarks"]["leads"][STATE_KEY]["websiteVisits"] = {"type": ["string", "null"]}
    state["bookmarks"]["leads"][STATE_KEY]["oddEntry"] = "not a schema"

    result = run_in_process(base_config(undocumented_api), state=state)

    assert result.error is None
    properties = result.schemas()["leads"]["properties"]
    assert properties["websiteVisits"]["type"] == ["number", "null"]
    assert "oddEntry" not in properties
    assert all(not isinstance(r["websiteVisits"], str) for r in result.records["leads"])
    assert (
        result.final_state["bookmarks"]["leads"][STATE_KEY]
        == (first.final_state["bookmarks"]["leads"][STATE_KEY])
    )
