"""The end of a listing, which the contract does not document, in every form an API gives it.

Past the last page the sandbox answers `data: []` (our assumption), 404, 400 (with the usual
error envelope) or the last page again (clamped). Whatever it answers, a sync emits each
record once, exits 0 and asks for at most one page past the end of each listing.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pytest

from tap_botpenguin.sandbox import (
    PAST_END,
    WEBSITE_BOT,
    WHATSAPP_BOT,
    Bot,
    Fault,
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
    logged,
    pages_requested,
    run_cli,
    run_in_process,
)

BOT = "d" * 24
CUSTOMER = "e" * 24
TOKEN = "listing-end-token"


def _each_record_once(sandbox: Sandbox, result: SyncResult) -> None:
    assert result.error is None, result.error
    for stream, kind in STREAM_TYPES.items():
        emitted = Counter((r["botId"], r["_id"]) for r in result.records.get(stream, []))
        assert emitted == Counter(sandbox.all_records(kind).keys()), stream


@pytest.mark.parametrize("page_size", [25, 1000], ids=["several pages", "page 1 only"])
@pytest.mark.parametrize("past_end", PAST_END)
def test_every_end_of_listing_is_read_once_with_one_request_past_it_two_if_repeated(
    past_end: str, page_size: int, caplog: pytest.LogCaptureFixture
) -> None:
    with Sandbox(bots=fresh_bots(), page_size=page_size, past_end=past_end) as sandbox:
        with caplog.at_level(logging.INFO):
            result = run_in_process(base_config(sandbox))

        _each_record_once(sandbox, result)
        for bot_id in ALL_BOTS:
            for kind in STREAM_TYPES.values():
                pages = sandbox.pages(bot_id, kind)
                # An empty listing is one empty page 1; otherwise its pages and one more, asked
                # for twice where it repeats the last page (a repeat may be a stale copy).
                expected = list(range(1, pages + 2)) if pages else [1]
                if pages and past_end == "clamp":
                    expected.append(pages + 1)
                assert pages_requested(sandbox, bot_id, kind) == expected, (bot_id, kind)
    warnings = logged(caplog, level=logging.WARNING)
    if past_end == "clamp" and page_size == 1000:
        # No listing ever showed a second page: a repeated page 1 cannot be told from an API
        # ignoring `page`, so each one is said, once.
        non_empty = sum(
            1 for key in STREAM_TYPES.values() for b in ALL_BOTS if sandbox.pages(b, key)
        )
        assert len(warnings) == non_empty
        assert all("no page size is known yet" in w for w in warnings)
    else:
        assert warnings == []


def test_the_cli_exits_0_on_an_api_answering_404_past_the_end(tmp_path: Path) -> None:
    with Sandbox(bots=fresh_bots(), past_end="404") as sandbox:
        result = run_cli(base_config(sandbox), tmp_path)

        assert result.exit_code == 0, result.stderr
        _each_record_once(sandbox, result)
    assert "Traceback" not in result.stderr


def _one_bot_sandbox(leads: int, **options: object) -> Sandbox:
    bot = Bot(BOT, CUSTOMER, TOKEN, leads=make_inbox("end", leads), chats=[])
    return Sandbox(bots=[bot], **options)  # type: ignore[arg-type]


def _one_bot_config(sandbox: Sandbox) -> dict[str, object]:
    return {"bot_token": TOKEN, "customer_id": CUSTOMER, "bot_id": BOT, "api_url": sandbox.url}


@pytest.mark.parametrize("past_end", ["404", "400"])
def test_a_4xx_after_a_full_page_ends_the_listing_with_a_warning(
    past_end: str, caplog: pytest.LogCaptureFixture
) -> None:
    # 50 leads in pages of 25: page 3 does not exist, page 2 was full.
    with _one_bot_sandbox(50, past_end=past_end) as sandbox:
        with caplog.at_level(logging.INFO):
            result = run_in_process(_one_bot_config(sandbox))

        _each_record_once(sandbox, result)
    status = {"404": "404 Not Found", "400": "400 Bad Request"}[past_end]
    assert logged(caplog, level=logging.WARNING) == [
        f"leads (bot {BOT}): page 3 answered {status} after a full page 2 (25 records): taken "
        "as the end of the listing; if it holds more than 50 conversations, the API refuses "
        "to page past 2"
    ]


def test_a_repeated_full_last_page_ends_the_listing_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with _one_bot_sandbox(50, past_end="clamp") as sandbox:
        with caplog.at_level(logging.INFO):
            result = run_in_process(_one_bot_config(sandbox))

        _each_record_once(sandbox, result)
        assert pages_requested(sandbox, BOT, "lead") == [1, 2, 3, 3]
    assert logged(caplog, level=logging.WARNING) == [
        f"leads (bot {BOT}): page 3 repeats page 2, a full page (25 records), twice: taken as "
        "the end of the listing (the API repeats its last page); if it holds more than 50 "
        "conversations, the API stops paging there"
    ]


@pytest.mark.parametrize(
    "fault",
    [
        Fault("status", status=404, message="Cannot GET /inbox/direct/chats", page=1),
        Fault("envelope", code=404, message="Not Found", page=1),
    ],
    ids=["http 404", "envelope 404"],
)
def test_a_404_on_page_1_is_fatal_and_names_api_url(sandbox: Sandbox, fault: Fault) -> None:
    sandbox.inject(fault)

    result = run_in_process(base_config(sandbox))

    message = str(result.error)
    assert "page 1" in message
    assert "404 Not Found" in message
    assert "Check api_url and bot_id" in message
    # Not retried; the listing it concerns (the run's first) is set aside, the rest is read.
    assert message.startswith(f"chats (bot {WEBSITE_BOT}) set aside")
    assert "\n" not in message
    first = sandbox.listing_requests()[0]
    assert len([r for r in sandbox.listing_requests() if r.params == first.params]) == 1
    leads = Counter((r["botId"], r["_id"]) for r in result.records["leads"])
    assert leads == Counter(sandbox.all_records("lead").keys())


def test_an_api_ignoring_page_in_the_first_listing_stops_once_a_page_size_is_known(
    sandbox: Sandbox,
) -> None:
    """Page 2 of the first listing read (the SDK syncs `chats` first) is page 1 again; the
    next listing shows pages of 25."""
    sandbox.inject(Fault("ignore_page", times=None, bot_id=WEBSITE_BOT, type="non-lead"))

    result = run_in_process(base_config(sandbox))

    message = str(result.error)
    assert f"chats (bot {WEBSITE_BOT}): page 2 repeats page 1 exactly" in message
    assert "page 1 is full (25 records; the API's pages hold 25)" in message
    assert "the API is ignoring `page`" in message
    assert "\n" not in message
    # No loop: page 1 once, page 2 twice (a repeat is asked for again), then the next bot
    # until it showed a real page 2.
    assert pages_requested(sandbox, WEBSITE_BOT, "non-lead") == [1, 2, 2]
    assert pages_requested(sandbox, WHATSAPP_BOT, "non-lead") == [1, 2]
    emitted = Counter(r["_id"] for r in result.records["chats"])
    assert max(emitted.values()) == 1


def test_an_api_ignoring_page_stops_at_once_when_an_earlier_run_knew_the_page_size(
    sandbox: Sandbox,
) -> None:
    first = run_in_process(base_config(sandbox))
    sandbox.inject(Fault("ignore_page", times=None, bot_id=WEBSITE_BOT, type="non-lead"))

    second = run_in_process(base_config(sandbox, scan_mode="full"), state=first.final_state)

    assert f"chats (bot {WEBSITE_BOT}): page 2 repeats page 1 exactly" in str(second.error)
    assert pages_requested(sandbox, WEBSITE_BOT, "non-lead")[-3:] == [1, 2, 2]
    assert pages_requested(sandbox, WHATSAPP_BOT, "non-lead") == [1, 2, 3]  # the first run's only


def test_an_api_ignoring_page_everywhere_loses_nothing_once_api_url_is_fixed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No listing ever shows a second page: each is taken as one page, loudly, and no
    bookmark moves, so a run against the real API afterwards still reads everything."""
    with Sandbox(bots=fresh_bots()) as sandbox:
        sandbox.inject(Fault("ignore_page", times=None))
        with caplog.at_level(logging.INFO):
            broken = run_in_process(base_config(sandbox))
        assert broken.error is None
        assert all(
            "the API is ignoring `page` (check api_url)" in w
            for w in logged(caplog, level=logging.WARNING)
        )
        assert Counter(r["_id"] for r in broken.records["leads"]).most_common(1)[0][1] == 1
        for stream in STREAM_TYPES:
            for partition in broken.final_state["bookmarks"][stream]["partitions"]:
                assert "replication_key_value" not in partition

        sandbox.faults.clear()
        fixed = run_in_process(base_config(sandbox), state=broken.final_state)

        _each_record_once(sandbox, fixed)


def test_a_listing_of_exactly_one_full_page_on_a_clamping_api_is_taken_for_ignoring_page() -> None:
    """The documented limit: once pages of 30 are known, a page 2 that repeats a page 1 of 30
    is what an API ignoring `page` does too; the run stops rather than risk a partial load."""
    bots = fresh_bots()  # WHATSAPP_BOT has exactly 30 chats
    with Sandbox(bots=bots, page_size=30, past_end="clamp") as sandbox:
        result = run_in_process(base_config(sandbox))

    assert f"chats (bot {WHATSAPP_BOT}): page 2 repeats page 1 exactly" in str(result.error)


def _full_table_catalog(config: dict[str, object]) -> dict[str, object]:
    catalog = TapBotPenguin(config=config).catalog_dict
    for entry in catalog["streams"]:
        entry["replication_method"] = "FULL_TABLE"
    return catalog


@pytest.mark.parametrize(("leads", "activated"), [(40, True), (50, False)])
def test_a_mirror_activates_its_version_only_after_listings_that_surely_ended(
    leads: int, activated: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """50 leads end exactly after a full page 2, then a 404: maybe more exist, so the rows
    this run did not send must not be dropped."""
    with _one_bot_sandbox(leads, past_end="404") as sandbox:
        config = {**_one_bot_config(sandbox), "emit_activate_version_messages": True}
        with caplog.at_level(logging.INFO):
            result = run_in_process(config, catalog=_full_table_catalog(config))

    assert result.error is None
    kinds = [m["type"] for m in result.messages if m.get("stream") == "leads"]
    assert kinds.count("RECORD") == leads
    if activated:
        # After every record of the stream, never before one.
        assert kinds[-1] == "ACTIVATE_VERSION"
        assert kinds.count("ACTIVATE_VERSION") == 1
        versions = {m["version"] for m in result.messages if m["type"] == "ACTIVATE_VERSION"}
        assert {m["version"] for m in result.messages if m["type"] == "RECORD"} == versions
    else:
        assert "ACTIVATE_VERSION" not in kinds
        assert any(
            "not activating this run's table version" in w
            for w in logged(caplog, level=logging.WARNING)
        )
