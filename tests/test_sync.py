"""What a sync emits and what the API sees: records, requests, auth, bots, state."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jsonschema

from tap_botpenguin.http.session import USER_AGENT
from tap_botpenguin.sandbox import (
    SANDBOX_CUSTOMER,
    SANDBOX_TOKEN,
    WEBSITE_BOT,
    WHATSAPP_BOT,
    Bot,
    Sandbox,
    make_inbox,
)
from tap_botpenguin.tap import TapBotPenguin

from .helpers import (
    ALL_BOTS,
    STREAM_TYPES,
    SyncResult,
    base_config,
    fresh_bots,
    requests_per_listing,
    run_cli,
    run_in_process,
)


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


def _validator(schema: dict) -> jsonschema.Draft7Validator:
    # `date-time` is checked only when rfc3339-validator is installed (a dev dependency).
    return jsonschema.Draft7Validator(
        schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )


def test_records_conform_to_the_emitted_schema(sandbox: Sandbox) -> None:
    result = run_in_process(base_config(sandbox))

    schemas = result.schemas()
    assert set(schemas) == {"leads", "chats"}
    for stream, records in result.records.items():
        validator = _validator(schemas[stream])
        for record in records:
            assert not list(validator.iter_errors(record)), record["_id"]
        # The check has teeth: a timestamp that is not RFC 3339 fails it.
        for bad in ("yesterday", "2026-13-01T00:00:00Z", "2026-06-01 10:00"):
            errors = list(validator.iter_errors({**records[0], "updatedAt": bad}))
            assert [e.validator for e in errors] == ["format"], bad


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
            assert pages == list(range(1, sandbox.pages(bot_id, kind) + 2)), (bot_id, kind)


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


def test_second_run_emits_only_what_changed_and_reads_only_the_top(sandbox: Sandbox) -> None:
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
    # The first run found every listing newest first; the changes sit on page 1 of theirs,
    # so the second run stops after page 1 everywhere: one request per listing.
    assert requests_per_listing(sandbox, since=first_requests) == {
        (bot_id, kind): 1 for bot_id in ALL_BOTS for kind in STREAM_TYPES.values()
    }


def test_scan_mode_full_reads_every_listing_to_the_end_every_run(sandbox: Sandbox) -> None:
    config = base_config(sandbox, scan_mode="full")
    first = run_in_process(config)
    first_requests = len(sandbox.listing_requests())
    touched = set(sandbox.touch(WEBSITE_BOT, "lead", 7))

    second = run_in_process(config, state=first.final_state)

    assert second.error is None
    assert touched <= {r["_id"] for r in second.records["leads"]}
    assert requests_per_listing(sandbox, since=first_requests) == {
        (bot_id, kind): sandbox.pages(bot_id, kind) + 1
        for bot_id in ALL_BOTS
        for kind in STREAM_TYPES.values()
    }


def test_start_date_filters_on_updated_at_inclusively(sandbox: Sandbox) -> None:
    # The cutoff is exactly one record's `updatedAt`: that record is "at or after" it.
    at_cutoff = sandbox.listing(WEBSITE_BOT, "lead")[90]
    cutoff = at_cutoff["updatedAt"]

    result = run_in_process(base_config(sandbox, start_date=cutoff))

    assert result.error is None
    for stream, kind in STREAM_TYPES.items():
        expected = {key for key, r in sandbox.all_records(kind).items() if r["updatedAt"] >= cutoff}
        emitted = {(r["botId"], r["_id"]) for r in result.records.get(stream, [])}
        assert emitted == expected
        assert 0 < len(expected) < len(sandbox.all_records(kind))
    assert at_cutoff["_id"] in {r["_id"] for r in result.records["leads"]}


def test_the_bookmark_is_inclusive(sandbox: Sandbox) -> None:
    """A conversation updated in the very millisecond of the bookmark comes in the next run."""
    first = run_in_process(base_config(sandbox))
    bookmark = _bookmark(first, "leads", WEBSITE_BOT)
    twin = sandbox.add(WEBSITE_BOT, "lead", 1, at=datetime.fromisoformat(bookmark))[0]

    second = run_in_process(base_config(sandbox), state=first.final_state)

    assert second.error is None
    assert twin in {r["_id"] for r in second.records["leads"]}


def test_records_updated_during_a_run_are_picked_up_by_the_next() -> None:
    """The signpost: a bookmark never passes the sync's start time.

    Here the API lists by last message, so a status change leaves a record in place. During
    the run, a record on page 1 (already read) changes, then one on page 7 (not yet read).
    The run sees only the second; the next run must still get the first.
    """
    changed: dict[str, list[str]] = {}
    soon = datetime.now(timezone.utc) + timedelta(seconds=5)

    def change_records_while_page_3_is_read(server: Sandbox) -> None:
        params = server.requests[-1].params
        if (params["botId"], params["type"], params["page"]) == (WEBSITE_BOT, "lead", "3"):
            changed["read"] = server.update(WEBSITE_BOT, "lead", [0], message=False, at=soon)
            later = soon + timedelta(seconds=1)
            changed["unread"] = server.update(WEBSITE_BOT, "lead", [150], message=False, at=later)

    with Sandbox(bots=fresh_bots(), order="last_message") as sandbox:
        sandbox.before_request = change_records_while_page_3_is_read
        first = run_in_process(base_config(sandbox))
        sandbox.before_request = None
        first_updates = {r["_id"]: r["updatedAt"] for r in first.records["leads"]}
        assert changed["unread"][0] in first_updates
        latest = sandbox.all_records("lead")[(WEBSITE_BOT, changed["read"][0])]["updatedAt"]
        assert first_updates[changed["read"][0]] != latest

        second = run_in_process(base_config(sandbox), state=first.final_state)

    assert changed["read"][0] in {r["_id"] for r in second.records["leads"]}


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
    """The session resolves HTTP_PROXY once; here the sandbox is the proxy for an address
    nothing listens on (loopback: plain http:// is refused for any other host)."""
    config = base_config(sandbox, api_url="http://127.0.0.3:1")

    result = run_cli(config, tmp_path, env={"HTTP_PROXY": sandbox.url, "NO_PROXY": ""})

    assert result.exit_code == 0, result.stderr
    assert sum(len(v) for v in result.records.values()) == 512
    assert sandbox.listing_requests()
