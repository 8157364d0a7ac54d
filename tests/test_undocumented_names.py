"""Undocumented fields that cannot be columns of their own, and types that must not lose values.

In-process runs against the sandbox over HTTP. An undocumented name whose column would be a
documented or learned one's (after snake_case_fields, case ignored), or empty, or longer than
63 bytes, or beyond `max_undocumented_columns`, goes into the `undocumentedFields` column with
one WARNING; documented fields always keep their values.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from tap_botpenguin.records.evolution import JSON_COLUMN, STATE_KEY
from tap_botpenguin.sandbox import WEBSITE_BOT, Fault, Sandbox
from tap_botpenguin.tap import TapBotPenguin

from .helpers import SyncResult, base_config, fresh_bots, logged, run_in_process

Transform = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
LONG = "x" * 63
MOVED = "cannot be columns of their own"


def _run(
    transform: Transform, state: dict[str, Any] | None = None, **config: Any
) -> tuple[SyncResult, dict[str, dict[str, Any]]]:
    """One run of the website bot, its leads' pages through `transform`; and what was sent."""
    with Sandbox(bots=fresh_bots(), rate_limit=None) as api:
        api.inject(Fault("data", transform=transform, times=None, type="lead", bot_id=WEBSITE_BOT))
        settings = base_config(api, **config)
        settings["bots"] = [{"bot_id": WEBSITE_BOT}]
        sent = {r["_id"]: r for r in api.listing(WEBSITE_BOT, "lead")}
        result = run_in_process(settings, state=state)
    assert result.error is None, result.error
    return result, sent


def _colliders(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for record in records:
        # Sent before the documented names, as the review's repro did (order must not matter).
        first = {"bot_id": "someone-else", "updated_at": "1999-01-01T00:00:00Z"}
        out.append(
            {
                **first,
                **record,
                "is_online": "yes",
                "leadScore": 1,
                "lead_score": 2,
                "Status": "X",
                "": "empty",
                f"{LONG}_first": "a",
                f"{LONG}_second": "b",
                "_sdc_deleted_at": "soon",
            }
        )
    return out


def test_snake_case_collisions_never_overwrite_documented_or_learned_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    result, sent = _run(_colliders, snake_case_fields=True)

    properties = result.schemas()["leads"]["properties"]
    assert properties["lead_score"]["type"] == ["number", "null"]
    assert properties["undocumented_fields"]["type"] == ["object", "null"]
    assert properties["is_online"]["type"] == ["boolean", "null"]
    assert not {"", "Status", f"{LONG}_first", f"{LONG}_second"} & set(properties)
    for record in result.records["leads"]:
        original = sent[record["_id"]]
        assert record["bot_id"] == WEBSITE_BOT
        assert record["updated_at"] > "2000"
        assert record["is_online"] is original["isOnline"]
        assert record["status"] == original["status"]
        assert record["lead_score"] == 1
        moved = record["undocumented_fields"]
        assert moved["bot_id"] == "someone-else"
        assert moved["updated_at"] == "1999-01-01T00:00:00Z"
        assert moved["is_online"] == "yes"
        assert moved["lead_score"] == 2
        assert "X" in moved.values()
        assert moved[""] == "empty"
        assert moved[f"{LONG}_first"] == "a"
        assert moved[f"{LONG}_second"] == "b"
        assert record["sdc_deleted_at"] == "soon"  # snake_case drops the leading `_`
    bookmark = result.final_state["bookmarks"]["leads"]["partitions"][0]
    assert bookmark["replication_key_value"] > "2000"
    assert "bot_id" not in result.final_state["bookmarks"]["leads"][STATE_KEY]
    # One WARNING for the run, naming each moved field and why.
    (line,) = logged(caplog, containing=MOVED)
    for name in ("'bot_id'", "'updated_at'", "'is_online'", "'lead_score'", "'Status'", "''"):
        assert name in line, name
    assert "would be documented `isOnline`'s" in line
    assert "column name would be empty" in line


def test_case_only_empty_and_long_names_get_no_column_of_their_own(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    result, sent = _run(_colliders)

    properties = result.schemas()["leads"]["properties"]
    assert {"leadScore", "lead_score", "is_online", "bot_id"} <= set(properties)
    assert not {"", "Status", f"{LONG}_first", f"{LONG}_second", "_sdc_deleted_at"} & set(
        properties
    )
    for record in result.records["leads"]:
        original = sent[record["_id"]]
        assert record["status"] == original["status"]
        assert record[JSON_COLUMN] == {
            "Status": "X",
            "": "empty",
            f"{LONG}_first": "a",
            f"{LONG}_second": "b",
            "_sdc_deleted_at": "soon",
        }
    (line,) = logged(caplog, containing=MOVED)
    assert "`status`'s (case ignored)" in line
    assert "longer than 63 bytes" in line


def test_a_number_sent_as_an_integer_first_keeps_later_decimals() -> None:
    """Page 1 sends `rating: 4` (a JSON API prints 4.0 as 4), page 2 sends 4.5."""

    def rating(value: float) -> Transform:
        def transform(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
            for record in records:
                record["rating"] = value
            return records

        return transform

    with Sandbox(bots=fresh_bots(), rate_limit=None) as api:
        api.inject(
            Fault("data", transform=rating(4), times=None, page=1, type="lead", bot_id=WEBSITE_BOT),
            Fault(
                "data", transform=rating(4.5), times=None, page=2, type="lead", bot_id=WEBSITE_BOT
            ),
        )
        config = base_config(api)
        config["bots"] = [{"bot_id": WEBSITE_BOT}]
        result = run_in_process(config)

    assert result.error is None
    assert result.schemas()["leads"]["properties"]["rating"]["type"] == ["number", "null"]
    ratings = [r.get("rating") for r in result.records["leads"]]
    assert ratings.count(4) == 25
    assert ratings.count(4.5) == 25
    assert not any("invalidFields" in r for r in result.records["leads"])
    learned = result.final_state["bookmarks"]["leads"][STATE_KEY]
    assert learned["rating"]["type"] == ["number", "null"]


def test_state_that_learned_integer_is_widened_to_number(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def ratings(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for record in records:
            record["rating"] = 4.5
        return records

    state = {"bookmarks": {"leads": {STATE_KEY: {"rating": {"type": ["integer", "null"]}}}}}
    result, _ = _run(ratings, state=state)

    first = next(m for m in result.messages if m["type"] == "SCHEMA" and m["stream"] == "leads")
    assert first["schema"]["properties"]["rating"]["type"] == ["number", "null"]
    assert {r["rating"] for r in result.records["leads"]} == {4.5}
    learned = result.final_state["bookmarks"]["leads"][STATE_KEY]
    assert learned["rating"]["type"] == ["number", "null"]
    (line,) = logged(caplog, containing="learned as integer")
    assert line.startswith("leads: rating learned as integer by an earlier run")


def test_the_catalog_declared_type_wins_over_the_learned_one() -> None:
    """Meltano's `schema` extra declares `rating` a number; the state says integer."""

    def ratings(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for record in records:
            record["rating"] = 4.5
        return records

    with Sandbox(bots=fresh_bots(), rate_limit=None) as api:
        api.inject(Fault("data", transform=ratings, times=None, type="lead", bot_id=WEBSITE_BOT))
        config = base_config(api)
        config["bots"] = [{"bot_id": WEBSITE_BOT}]
        catalog = TapBotPenguin(config=config).catalog_dict
        for entry in catalog["streams"]:
            entry["schema"]["properties"]["rating"] = {"type": ["string", "null"]}
            rating = {"inclusion": "available", "selected": True}
            entry["metadata"].append({"breadcrumb": ["properties", "rating"], "metadata": rating})
            for item in entry["metadata"]:
                item["metadata"]["selected"] = True
        state = {"bookmarks": {"leads": {STATE_KEY: {"rating": {"type": ["integer", "null"]}}}}}
        result = run_in_process(config, state=state, catalog=catalog)

    assert result.error is None
    assert result.schemas()["leads"]["properties"]["rating"]["type"] == ["string", "null"]
    assert {r["rating"] for r in result.records["leads"]} == {"4.5"}  # the catalog's type
    assert "rating" not in result.final_state["bookmarks"]["leads"].get(STATE_KEY, {})


def test_max_undocumented_columns_caps_learning(caplog: pytest.LogCaptureFixture) -> None:
    def map_like(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for record in records:
            record[f"answer_{record['_id']}"] = "x"  # a new name on every record
        return records

    caplog.set_level(logging.INFO)
    result, _ = _run(map_like, max_undocumented_columns=3)

    learned = result.final_state["bookmarks"]["leads"][STATE_KEY]
    assert len(learned) == 3
    schemas = [m for m in result.messages if m["type"] == "SCHEMA"]
    assert len(schemas) <= 3
    columns = set(result.schemas()["leads"]["properties"])
    for record in result.records["leads"]:
        answer = f"answer_{record['_id']}"
        assert record.get(answer) == "x" or record[JSON_COLUMN] == {answer: "x"}
        assert answer in columns or answer not in record
    warned = " ".join(logged(caplog, containing=MOVED))
    assert "max_undocumented_columns (3) were learned already" in warned


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("from the API", {"invalidFields": '"from the API"'}),
        ([1, 2], {"invalidFields": "[1, 2]"}),
        ({"note": 3}, {"invalidFields": '{"note": 3}'}),
        ({"note": "text"}, {"note": "text"}),
    ],
)
def test_invalid_fields_sent_by_the_api_are_kept_visibly(sent: Any, kept: dict[str, str]) -> None:
    def with_own(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for record in records:
            record["invalidFields"] = sent
        return records

    result, sent = _run(with_own)

    for record in result.records["leads"]:
        assert record["invalidFields"] == kept
        assert all(isinstance(value, str) for value in record["invalidFields"].values())


@pytest.mark.parametrize(
    ("mode", "snake", "column"),
    [
        ("json", False, "undocumentedFields"),
        ("evolve", False, "undocumentedFields"),
        ("json", True, "undocumented_fields"),
        ("discard", False, None),
    ],
)
def test_discover_declares_the_json_column_unless_discarding(
    sandbox: Sandbox, mode: str, snake: bool, column: str | None
) -> None:
    config = base_config(sandbox, undocumented_fields=mode, snake_case_fields=snake)
    catalog = TapBotPenguin(config=config).catalog_dict
    for entry in catalog["streams"]:
        properties = entry["schema"]["properties"]
        if column is None:
            assert not {"undocumentedFields", "undocumented_fields"} & set(properties)
        else:
            assert properties[column]["type"] == ["object", "null"]
    assert json.dumps(catalog)  # still a JSON document


def test_snake_case_never_overwrites_inside_objects() -> None:
    """Inside a documented object, `extraKey` and `extra_key` both arrive (one keeps its name)."""

    def both(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for record in records:
            record["profile"] = {**(record.get("profile") or {}), "extraKey": 1, "extra_key": 2}
        return records

    result, _ = _run(both, snake_case_fields=True)

    for record in result.records["leads"]:
        assert record["profile"]["extra_key"] == 2
        assert record["profile"]["extraKey"] == 1
