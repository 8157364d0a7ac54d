"""Hostile and odd input, served by the sandbox over HTTP.

For every input the run either emits records that validate against the emitted schema and
that a standard target accepts (no NUL, valid UTF-8), with nothing dropped, or it fails with
one clear line. Property-based: hypothesis generates the records.
"""

from __future__ import annotations

import copy
import json
import time
from datetime import datetime
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tap_botpenguin.report.errors import BotPenguinError
from tap_botpenguin.sandbox import Bot, Fault, Sandbox, make_inbox

from .helpers import (
    NESTED_PATHS,
    RECORD_FIELDS,
    SyncResult,
    examples,
    mutation,
    run_in_process,
    set_at,
    strings_in,
    value_at,
)

BOT = "e" * 24
CUSTOMER = "f" * 24
TOKEN = "hostile-test-token"
PAGE_SIZE = 25
LEADS = 30  # two pages


def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None
    except ValueError:
        return False


FORMATS = jsonschema.FormatChecker()
FORMATS.checks("date-time")(_date_time)


def assert_loadable(result: SyncResult, expected: int) -> None:
    """Records validate against the emitted schema and contain nothing a target rejects."""
    assert result.error is None, result.error
    records = result.records.get("leads", [])
    assert len(records) == expected  # nothing dropped
    validator = jsonschema.Draft7Validator(result.schemas()["leads"], format_checker=FORMATS)
    for record in records:
        errors = [e.message for e in validator.iter_errors(record)]
        assert not errors, (errors, record)
        for text in strings_in(record):
            assert "\x00" not in text
            text.encode("utf-8")  # no lone surrogates


_SERVERS: dict[int, Sandbox] = {}


def _sandbox(leads: int) -> Sandbox:
    """One sandbox per inbox size for the whole module: hypothesis runs many examples."""
    if leads not in _SERVERS:
        bot = Bot(BOT, CUSTOMER, TOKEN, leads=make_inbox("hostile", leads), chats=[])
        _SERVERS[leads] = Sandbox(bots=[bot], page_size=PAGE_SIZE, rate_limit=None).start()
    return _SERVERS[leads]


@pytest.fixture(scope="module", autouse=True)
def _stop_sandboxes() -> Any:
    yield
    for server in _SERVERS.values():
        server.stop()


def sync_with(
    transform: Any = None, *, fault: Fault | None = None, leads: int = LEADS
) -> SyncResult:
    server = _sandbox(leads)
    server.faults.clear()
    if transform is not None:
        server.inject(Fault("data", transform=transform, times=None, type="lead", page=1))
    if fault is not None:
        server.inject(fault)
    config = {
        "bot_token": TOKEN,
        "customer_id": CUSTOMER,
        "bot_id": BOT,
        "api_url": server.url,
        "max_retries": 2,
        "request_timeout": 2,
    }
    return run_in_process(config)


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, PAGE_SIZE - 1), mutation), min_size=1, max_size=12))
def test_generated_odd_records_load_or_fail_clearly(
    mutations: list[tuple[int, tuple[str, Any]]],
) -> None:
    sent: dict[str, dict[str, Any]] = {}

    def corrupt(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        records = copy.deepcopy(records)
        for index, (path, value) in mutations:
            if index < len(records):
                set_at(records[index], path, value)
        for record in records:
            sent[record["_id"]] = record
        return records

    result = sync_with(corrupt)

    assert_loadable(result, LEADS)
    for record in result.records["leads"]:
        original = sent.get(record["_id"])
        if original is None:
            continue
        invalid = record.get("invalidFields") or {}
        for path in RECORD_FIELDS + NESTED_PATHS:
            before, after = value_at(original, path), value_at(record, path)
            if (
                before is not None
                and after is None
                and not any(p.startswith(path) for p in invalid)
            ):
                pytest.fail(f"{path}={before!r} was dropped without a trace: {record}")
        for key in original:
            assert key in record, f"field {key} was dropped"


def test_wrong_types_are_converted() -> None:
    def odd(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        records[0].update(websiteVisits="5", isOnline="true", uuid=12345, status="ESCALATED")
        records[1].update(websiteVisits=True, isOnline=0, _agentAssigned={"id": "a1"})
        return records

    result = sync_with(odd)

    assert_loadable(result, LEADS)
    first, second = result.records["leads"][:2]
    assert (first["websiteVisits"], first["isOnline"], first["uuid"], first["status"]) == (
        5,
        True,
        "12345",
        "ESCALATED",
    )
    assert (second["websiteVisits"], second["isOnline"]) == (1, False)
    assert json.loads(second["_agentAssigned"]) == {"id": "a1"}
    assert "invalidFields" not in first


def test_unconvertible_values_become_null_and_are_kept_in_invalid_fields() -> None:
    def odd(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        records[0].update(websiteVisits="lots", isOnline="maybe", createdAt="yesterday")
        return records

    result = sync_with(odd)

    assert_loadable(result, LEADS)
    record = result.records["leads"][0]
    assert record["websiteVisits"] is None
    assert record["isOnline"] is None
    assert record["createdAt"] is None
    assert record["invalidFields"] == {
        "websiteVisits": '"lots"',
        "isOnline": '"maybe"',
        "createdAt": '"yesterday"',
    }


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ("2026-06-01T10:00:00", "2026-06-01T10:00:00.000Z"),
        ("2026-06-01 15:30:00+05:30", "2026-06-01T10:00:00.000Z"),
        (1780308000000, "2026-06-01T10:00:00.000Z"),
        ("1780308000", "2026-06-01T10:00:00.000Z"),
        ("Mon, 01 Jun 2026 10:00:00 GMT", "2026-06-01T10:00:00.000Z"),
    ],
)
def test_odd_timestamps_become_utc_iso(sent: Any, expected: str) -> None:
    def odd(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        records[0]["updatedAt"] = sent
        records[0]["lastSeenAt"] = sent
        return records

    result = sync_with(odd)

    assert_loadable(result, LEADS)
    record = result.records["leads"][0]
    # The replication key is always normalized (bookmarks compare as strings); other
    # timestamps only when they are not RFC 3339 with a timezone already.
    assert record["updatedAt"] == expected
    moment = datetime.fromisoformat(record["lastSeenAt"].replace("Z", "+00:00"))
    assert moment == datetime.fromisoformat(expected.replace("Z", "+00:00"))


def test_nul_characters_are_removed_everywhere() -> None:
    def odd(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        records[0]["status"] = "OP\x00EN"
        records[0]["profile"] = {"notes": [{"title": "a\x00b"}], "k\x00ey": "v"}
        return records

    result = sync_with(odd)

    assert_loadable(result, LEADS)
    record = result.records["leads"][0]
    assert record["status"] == "OPEN"
    assert record["profile"]["notes"][0]["title"] == "ab"
    assert record["profile"]["key"] == "v"


def test_huge_strings_and_extra_fields_pass_through() -> None:
    huge = "ü" * 1_000_000

    def odd(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        records[0]["lastMessage"] = {"at": None, "by": "user", "text": huge, "reactions": ["👍"]}
        records[0]["newApiField"] = {"nested": {"deeper": [1, 2, {"x": None}]}}
        return records

    result = sync_with(odd)

    assert_loadable(result, LEADS)
    record = result.records["leads"][0]
    assert record["lastMessage"]["text"] == huge
    assert record["lastMessage"]["reactions"] == ["👍"]
    assert record["newApiField"] == {"nested": {"deeper": [1, 2, {"x": None}]}}


def _page_body(data: str) -> bytes:
    return ('{"success":true,"message":"ok","code":200,"data":' + data + "}").encode()


def test_invalid_utf8_becomes_replacement_characters() -> None:
    record = make_inbox("utf8", 1)[0]
    body = _page_body(json.dumps([record], ensure_ascii=False)).replace(
        b"Call back", b"Call \xff\xfe back"
    )
    if body == _page_body(json.dumps([record], ensure_ascii=False)):
        record["profile"]["notes"] = [{"_id": "n", "title": "Call back", "description": None}]
        body = _page_body(json.dumps([record])).replace(b"Call back", b"Call \xff\xfe back")

    result = sync_with(fault=Fault("body", status=200, body=body, page=1, type="lead"), leads=0)

    assert_loadable(result, 1)
    assert "\ufffd" in result.records["leads"][0]["profile"]["notes"][0]["title"]


def test_lone_surrogate_escapes_become_replacement_characters() -> None:
    record = make_inbox("surrogate", 1)[0]
    record["status"] = "SURROGATE"
    body = _page_body(json.dumps([record])).replace(b"SURROGATE", b"X\\ud800Y")

    result = sync_with(fault=Fault("body", status=200, body=body, page=1, type="lead"), leads=0)

    assert_loadable(result, 1)
    assert result.records["leads"][0]["status"] == "X\ufffdY"


def test_absurdly_deep_nesting_fails_with_one_clear_line() -> None:
    body = _page_body("[" * 100_000 + "]" * 100_000)

    result = sync_with(fault=Fault("body", status=200, body=body, times=None, page=1, type="lead"))

    assert isinstance(result.error, BotPenguinError)
    assert "nested too deeply" in str(result.error)
    assert "\n" not in str(result.error)


@pytest.mark.parametrize("bad_id", [None, "", ["x"], {"id": 1}])
def test_a_record_without_a_usable_id_stops_the_run_clearly(bad_id: Any) -> None:
    def odd(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        records[3]["_id"] = bad_id
        return records

    result = sync_with(odd)

    assert isinstance(result.error, BotPenguinError)
    assert "no usable `_id`" in str(result.error)


def test_numeric_ids_become_strings() -> None:
    def odd(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        records[0]["_id"] = 123456789
        return records

    result = sync_with(odd)

    assert_loadable(result, LEADS)
    assert "123456789" in {r["_id"] for r in result.records["leads"]}


body_faults = st.one_of(
    st.builds(
        lambda b: Fault("body", status=200, body=b, times=None, page=1, type="lead"),
        st.binary(max_size=300),
    ),
    st.builds(
        lambda t: Fault(
            "body",
            status=200,
            body=t.encode("utf-8", "surrogatepass"),
            times=None,
            page=1,
            type="lead",
        ),
        st.sampled_from(
            [
                "<html><body>502 Bad Gateway</body></html>",
                '{"success":true}',
                '{"success":true,"data":null}',
                '{"success":true,"data":{"_id":"x"}}',
                '{"success":true,"data":[1,2]}',
                '{"success":"false","code":"x"}',
                '{"success":true,"data":[{"_id":"a"}',
                "null",
                "[]",
                '"ok"',
            ]
        ),
    ),
    st.sampled_from(["truncated", "reset", "hang"]).map(
        lambda kind: Fault(kind, delay=5, times=None, page=1, type="lead")
    ),
    st.builds(
        lambda status: Fault("status", status=status, times=None, page=1, type="lead"),
        st.sampled_from([400, 401, 403, 404, 418, 429, 500, 502, 503, 504]),
    ),
)


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body_faults)
def test_generated_broken_responses_fail_in_one_line_within_the_budget(fault: Fault) -> None:
    server = _sandbox(LEADS)
    server.faults.clear()
    server.inject(fault)
    config = {
        "bot_token": TOKEN,
        "customer_id": CUSTOMER,
        "bot_id": BOT,
        "api_url": server.url,
        "max_retries": 1,
        "request_timeout": 0.3,
    }

    started = time.monotonic()
    result = run_in_process(config)

    assert time.monotonic() - started < 5  # one attempt of at most request_timeout, no hang
    if result.error is None:  # only a body that happens to be a valid (empty) page
        assert result.records.get("leads", []) == []
    else:
        assert isinstance(result.error, BotPenguinError), repr(result.error)
        assert "\n" not in str(result.error)
        assert "page 1" in str(result.error) or "`_id`" in str(result.error)
