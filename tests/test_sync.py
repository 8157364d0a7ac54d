"""What a sync emits and what the API sees: records, requests, auth, bots, state."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jsonschema

from tap_botpenguin.client import USER_AGENT
from tap_botpenguin.sandbox import (
    SANDBOX_CUSTOMER,
    SANDBOX_TOKEN,
    WEBSITE_BOT,
    WHATSAPP_BOT,
    Bot,
    Fault,
    Sandbox,
    make_inbox,
)
from tap_botpenguin.tap import TapBotPenguin

from .conftest import ALL_BOTS, STREAM_TYPES, SyncResult, base_config, run_cli, run_in_process


def _pages(sandbox: Sandbox, bot_id: str, kind: str) -> int:
    return -(-len(sandbox.bot(bot_id).inbox(kind)) // sandbox.page_size)


def _bookmark(result: SyncResult, stream: str, bot_id: str) -> str:
    partitions = result.final_state["bookmarks"][stream]["partitions"]
    return next(p for p in partitions if p["context"] == {"botId": bot_id})["replication_key_value"]


def test_every_record_of_every_bot_is_emitted_once(sandbox: Sandbox) -> None:
    result = run_in_process(base_config(sandbox))

    assert result.error is None
    for stream, kind in STREAM_TYPES.items():
        expected = sandbox.all_records(kind)
        emitted = [(r["botId"], r["_id"]) for r in result.records.get(stream, [])]
        assert Counter(emitted) == Counter(expected.keys()), stream
        for record in result.records.get(stream, []):
            original = expected[(record["botId"], record["_id"])]
            assert record["customerId"] == SANDBOX_CUSTOMER
            assert {k: v for k, v in record.items() if k not in {"botId", "customerId"}} == original


def test_records_conform_to_the_emitted_schema(sandbox: Sandbox) -> None:
    result = run_in_process(base_config(sandbox))

    schemas = result.schemas()
    assert set(schemas) == {"leads", "chats"}
    for stream, records in result.records.items():
        validator = jsonschema.Draft7Validator(
            schemas[stream], format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
        )
        for record in records:
            assert not list(validator.iter_errors(record)), record["_id"]


def test_schema_keeps_unicode_nulls_and_nested_values(sandbox: Sandbox) -> None:
    result = run_in_process(base_config(sandbox))

    leads = result.records["leads"]
    details = [r["profile"]["userDetails"] for r in leads]
    assert any(d is None for d in details)
    names = {d["name"] for d in details if d}
    assert "李雷" in names or "Zoë Müller" in names
    values = [a["value"] for d in details if d for a in d["attributes"]]
    assert {type(v) for v in values} >= {str, int, bool, type(None)}
    assert any(d["contact"] and d["contact"]["phone"] for d in details if d)


def test_requests_carry_the_documented_query_and_headers(sandbox: Sandbox) -> None:
    run_in_process(base_config(sandbox))

    requests = sandbox.listing_requests()
    assert requests
    for request in requests:
        assert set(request.params) == {"botId", "customerId", "page", "type"}
        assert request.params["customerId"] == SANDBOX_CUSTOMER
        assert request.params["type"] in {"lead", "non-lead"}
        assert request.headers["x-bot-token"] == SANDBOX_TOKEN
        assert request.headers["content-type"] == "application/json"
        assert request.headers["user-agent"] == USER_AGENT
        assert "authorization" not in request.headers
    assert USER_AGENT.startswith("tap-botpenguin/0.")


def test_each_page_is_requested_once_and_one_empty_page_ends_a_listing(sandbox: Sandbox) -> None:
    run_in_process(base_config(sandbox))

    seen = Counter(
        (r.params["botId"], r.params["type"], int(r.params["page"]))
        for r in sandbox.listing_requests()
    )
    assert max(seen.values()) == 1
    for bot_id in ALL_BOTS:
        for kind in STREAM_TYPES.values():
            pages = sorted(p for (b, k, p) in seen if b == bot_id and k == kind)
            assert pages == list(range(1, _pages(sandbox, bot_id, kind) + 2)), (bot_id, kind)


def test_bearer_auth_sends_platform_token_headers(sandbox: Sandbox) -> None:
    result = run_in_process(base_config(sandbox, auth_method="bearer"))

    assert result.error is None
    assert sum(len(v) for v in result.records.values()) == 512
    for request in sandbox.listing_requests():
        assert request.headers["authorization"] == f"Bearer {SANDBOX_TOKEN}"
        assert request.headers["authtype"] == "Key"
        assert "x-bot-token" not in request.headers


def test_bots_with_their_own_token_and_customer() -> None:
    bots = [
        Bot("a" * 24, "c" * 24, "token-of-bot-a", leads=make_inbox("a", 30), chats=[]),
        Bot("b" * 24, "d" * 24, "token-of-bot-b", leads=make_inbox("b", 5), chats=[]),
    ]
    with Sandbox(bots=bots) as server:
        config = {
            "bot_token": "token-of-bot-a",
            "customer_id": "c" * 24,
            "bot_id": "a" * 24,
            "bots": [{"bot_id": "b" * 24, "bot_token": "token-of-bot-b", "customer_id": "d" * 24}],
            "api_url": server.url,
        }
        result = run_in_process(config)

        assert result.error is None
        by_bot = Counter((r["botId"], r["customerId"]) for r in result.records["leads"])
        assert by_bot == {("a" * 24, "c" * 24): 30, ("b" * 24, "d" * 24): 5}
        tokens = {(r.params["botId"], r.headers["x-bot-token"]) for r in server.listing_requests()}
        assert tokens == {("a" * 24, "token-of-bot-a"), ("b" * 24, "token-of-bot-b")}


def test_state_is_partitioned_by_bot_and_holds_no_secret(sandbox: Sandbox) -> None:
    result = run_in_process(base_config(sandbox))

    state = result.final_state
    for stream, kind in STREAM_TYPES.items():
        partitions = state["bookmarks"][stream]["partitions"]
        assert [p["context"] for p in partitions] == [{"botId": b} for b in ALL_BOTS]
        for partition in partitions:
            inbox = sandbox.bot(partition["context"]["botId"]).inbox(kind)
            if inbox:
                assert partition["replication_key"] == "updatedAt"
                assert partition["replication_key_value"] == max(r["updatedAt"] for r in inbox)
    assert SANDBOX_TOKEN not in str(result.states)


def test_second_run_emits_only_what_changed(sandbox: Sandbox) -> None:
    first = run_in_process(base_config(sandbox))
    first_requests = len(sandbox.listing_requests())
    touched = set(sandbox.touch(WEBSITE_BOT, "lead", 7))
    added = set(sandbox.add(WHATSAPP_BOT, "non-lead", 3))

    second = run_in_process(base_config(sandbox), state=first.final_state)

    assert second.error is None
    # The bookmark is inclusive (`>=`): the record(s) exactly at it come again, nothing else.
    for stream, changed in (("leads", touched), ("chats", added)):
        emitted = {r["_id"]: r for r in second.records.get(stream, [])}
        assert changed <= emitted.keys()
        for extra in emitted.keys() - changed:
            assert emitted[extra]["updatedAt"] == _bookmark(first, stream, emitted[extra]["botId"])
    # Still one full read of each listing: the API has no "updated since" filter.
    expected_requests = sum(
        _pages(sandbox, bot_id, kind) + 1 for bot_id in ALL_BOTS for kind in STREAM_TYPES.values()
    )
    assert len(sandbox.listing_requests()) - first_requests == expected_requests


def test_start_date_filters_on_updated_at(sandbox: Sandbox) -> None:
    cutoff = "2026-05-25T00:00:00Z"
    result = run_in_process(base_config(sandbox, start_date=cutoff))

    cutoff_at = datetime(2026, 5, 25, tzinfo=timezone.utc)
    for stream, kind in STREAM_TYPES.items():
        expected = {
            key
            for key, r in sandbox.all_records(kind).items()
            if datetime.fromisoformat(r["updatedAt"].replace("Z", "+00:00")) >= cutoff_at
        }
        emitted = {(r["botId"], r["_id"]) for r in result.records.get(stream, [])}
        assert emitted == expected
        assert 0 < len(expected) < len(sandbox.all_records(kind))


def test_records_updated_during_a_run_are_picked_up_by_the_next(sandbox: Sandbox) -> None:
    """The SDK's signpost: a bookmark never passes the sync's start time.

    The API's sort order is undocumented. Here it does not move updated records: during the
    run, a record on page 1 (already read) changes, then one on page 7 (not yet read). The
    run sees only the second; the next run must still get the first.
    """
    changed: dict[str, list[str]] = {}
    soon = datetime.now(timezone.utc) + timedelta(seconds=5)

    def change_records_while_page_3_is_read(server: Sandbox) -> None:
        params = server.requests[-1].params
        if (params["botId"], params["type"], params["page"]) == (WEBSITE_BOT, "lead", "3"):
            changed["read"] = server.update_in_place(WEBSITE_BOT, "lead", [0], at=soon)
            later = soon + timedelta(seconds=1)
            changed["unread"] = server.update_in_place(WEBSITE_BOT, "lead", [150], at=later)

    sandbox.before_request = change_records_while_page_3_is_read
    first = run_in_process(base_config(sandbox))
    sandbox.before_request = None
    first_updates = {r["_id"]: r["updatedAt"] for r in first.records["leads"]}
    assert changed["unread"][0] in first_updates
    latest = sandbox.all_records("lead")[(WEBSITE_BOT, changed["read"][0])]["updatedAt"]
    assert first_updates[changed["read"][0]] != latest

    second = run_in_process(base_config(sandbox), state=first.final_state)

    assert changed["read"][0] in {r["_id"] for r in second.records["leads"]}


def test_an_api_that_ignores_page_stops_the_run_instead_of_looping(sandbox: Sandbox) -> None:
    sandbox.inject(Fault("ignore_page", times=None, bot_id=WEBSITE_BOT, type="lead"))

    result = run_in_process(base_config(sandbox))

    assert result.error is not None
    assert "ignoring `page`" in str(result.error)
    lead_requests = [r for r in sandbox.listing_requests() if r.params["type"] == "lead"]
    assert [r.params["page"] for r in lead_requests] == ["1", "2"]


def test_deselected_properties_are_left_out(sandbox: Sandbox) -> None:
    catalog = TapBotPenguin(config=base_config(sandbox)).catalog_dict
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] in (["properties", "profile"], ["properties", "lastMessage"]):
                entry["metadata"]["selected"] = False

    result = run_in_process(base_config(sandbox), catalog=catalog)

    assert result.error is None
    records = result.records["leads"]
    assert len(records) == 235
    assert all("profile" not in r and "lastMessage" not in r for r in records)
    assert all("status" in r and "updatedAt" in r for r in records)


def test_proxy_settings_from_the_environment_are_honoured(sandbox: Sandbox, tmp_path: Path) -> None:
    """The session resolves HTTP_PROXY once; here the sandbox is the proxy for a fake host."""
    config = base_config(sandbox, api_url="http://api.botpenguin.invalid")

    result = run_cli(config, tmp_path, env={"HTTP_PROXY": sandbox.url, "NO_PROXY": ""})

    assert result.exit_code == 0, result.stderr
    assert sum(len(v) for v in result.records.values()) == 512
    assert sandbox.listing_requests()
