"""Incremental runs that cost what changed: the order check, the early stop, full scans.

Runs hours apart use the real tap on a clock set by the test (`tap_at`); the sandbox serves
its listings newest `updatedAt` first unless a test says otherwise.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tap_botpenguin.sandbox import (
    QUIET_BOT,
    SANDBOX_TOKEN,
    WEBSITE_BOT,
    WHATSAPP_BOT,
    Bot,
    Sandbox,
    make_inbox,
)

from .helpers import (
    ALL_BOTS,
    SyncResult,
    base_config,
    fresh_bots,
    pages_requested,
    requests_per_listing,
    run_in_process,
    tap_at,
)

NOW = datetime.now(timezone.utc)
BOT = "a" * 24
CUSTOMER = "b" * 24


def _one_listing(records: int, page_size: int = 25, order: str = "updated") -> Sandbox:
    """One bot's leads. Every conversation has a last message sent at its `updatedAt`, so
    listed by last message, the listing starts out newest `updatedAt` first too."""
    leads = make_inbox("scan", records)
    for lead in leads:
        lead["lastMessage"] = {"at": lead["updatedAt"], "by": "user", "text": "hi"}
    bot = Bot(BOT, CUSTOMER, SANDBOX_TOKEN, leads=leads, chats=[])
    return Sandbox(bots=[bot], page_size=page_size, order=order, rate_limit=None)


def _config(sandbox: Sandbox, **extra: Any) -> dict[str, Any]:
    return {
        "bot_token": SANDBOX_TOKEN,
        "customer_id": CUSTOMER,
        "bot_id": BOT,
        "api_url": sandbox.url,
        **extra,
    }


def _run(
    sandbox: Sandbox, config: dict[str, Any], state: dict[str, Any] | None, at: datetime
) -> SyncResult:
    result = run_in_process(config, state=state, tap_class=tap_at(at, sandbox))
    assert result.error is None, result.error
    return result


def _scan_state(result: SyncResult, stream: str, bot_id: str, key: str = "botId") -> Any:
    partitions = result.final_state["bookmarks"][stream]["partitions"]
    return next(p for p in partitions if p["context"] == {key: bot_id})["scan"]


def test_a_second_run_reads_only_the_pages_that_changed() -> None:
    with _one_listing(1000) as sandbox:  # 40 pages
        config = _config(sandbox)
        first = _run(sandbox, config, None, NOW)
        assert pages_requested(sandbox, BOT, "lead") == list(range(1, 42))
        changed = set(sandbox.touch(BOT, "lead", 60))  # the 60 oldest get a new message
        before = len(sandbox.listing_requests())

        second = _run(sandbox, config, first.final_state, NOW + timedelta(hours=1))

        # 60 changes fill pages 1-2 and part of 3, where older records start: 3 requests.
        assert pages_requested(sandbox, BOT, "lead", since=before) == [1, 2, 3]
        emitted = {r["_id"] for r in second.records["leads"]}
        assert changed <= emitted
        assert len(emitted - changed) <= 1  # the record exactly at the bookmark


def test_what_the_person_watching_sees(caplog: pytest.LogCaptureFixture) -> None:
    with _one_listing(200) as sandbox, caplog.at_level(logging.INFO):
        config = _config(sandbox)
        first = _run(sandbox, config, None, NOW)
        sandbox.touch(BOT, "lead", 3)
        second = _run(sandbox, config, first.final_state, NOW + timedelta(hours=3))
        sandbox.touch(BOT, "lead", 3)
        _run(sandbox, config, second.final_state, NOW + timedelta(hours=26))

    lines = [m for m in caplog.messages if m.startswith(("leads bot", "done leads"))]
    assert lines[0] == f"leads bot {BOT}: full scan (no bookmark yet)"
    assert lines[1].startswith(
        f"done leads bot {BOT}: full scan (no bookmark yet): 8 pages; read 200, emitted 200, "
        "requests 9, waited 0.0 s, took "
    )
    why = "listed newest updatedAt first; next full scan in 21 h"
    assert lines[2] == f"leads bot {BOT}: reading until past the bookmark ({why})"
    assert lines[3].startswith(
        f"done leads bot {BOT}: stopped after 1 of about 8 pages ({why}); "
        "read 25, emitted 4, requests 1, waited 0.0 s, took "
    )
    assert lines[4] == f"leads bot {BOT}: full scan (last one 26 h ago)"


def test_an_inversion_read_while_stopping_early_reads_to_the_end_and_follows_what_it_found(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Listed by last message, which the first full scan could not tell from `updatedAt`: a
    status change leaves a conversation where it was. The read to the end that the inversion
    forces finds the order by last message, and the next run stops early by it."""
    with _one_listing(200, order="last_message") as sandbox:
        config = _config(sandbox)
        first = _run(sandbox, config, None, NOW)
        first_scan = _scan_state(first, "leads", BOT)
        assert first_scan["order_key"] == "updatedAt"
        at = NOW + timedelta(minutes=30)
        top = sandbox.update(BOT, "lead", [199], at=at)  # a message: to the top
        in_place = sandbox.update(BOT, "lead", [10], message=False, status="CLOSED", at=at)
        before = len(sandbox.listing_requests())

        with caplog.at_level(logging.INFO):
            second = _run(sandbox, config, first.final_state, NOW + timedelta(hours=1))

        # Page 1 goes from the new message down to older records, then up again.
        assert (
            f"leads (bot {BOT}): order broken at page 1 (updatedAt rose): reading to the end"
        ) in caplog.messages
        assert pages_requested(sandbox, BOT, "lead", since=before) == list(range(1, 10))
        assert set(top + in_place) <= {r["_id"] for r in second.records["leads"]}
        scan = _scan_state(second, "leads", BOT)
        assert scan["order_key"] == "lastMessage.at"
        assert scan["newest_seen"] == _started(at)
        assert scan["last_full_scan_at"] == first_scan["last_full_scan_at"]  # not a full scan
        closing = next(m for m in caplog.messages if m.startswith(f"done leads bot {BOT}"))
        assert "the listing is newest lastMessage.at first" in closing

        caplog.clear()
        later = sandbox.update(BOT, "lead", [150], at=NOW + timedelta(minutes=90))
        before = len(sandbox.listing_requests())
        with caplog.at_level(logging.INFO):
            third = _run(sandbox, config, second.final_state, NOW + timedelta(hours=2))
        assert (
            f"leads bot {BOT}: reading until past the bookmark (listed newest lastMessage.at "
            "first; next full scan in 22 h)"
        ) in caplog.messages
        assert pages_requested(sandbox, BOT, "lead", since=before) == [1]
        assert set(later) <= {r["_id"] for r in third.records["leads"]}


def _started(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def test_a_change_an_early_stop_cannot_see_comes_with_the_next_full_scan() -> None:
    """Listed by last message and verified so: a status-only change deep in the list is
    invisible to early stops (they never read that far), until the scheduled full scan."""
    with _one_listing(200, order="last_message") as sandbox:
        config = _config(sandbox, full_scan_every_hours=24)
        first = _run(sandbox, config, None, NOW)
        # A new message to the top keeps what early stops read in order; the status-only
        # change stays on page 7.
        sandbox.update(BOT, "lead", [199], at=NOW + timedelta(minutes=10))
        hidden = sandbox.update(
            BOT, "lead", [170], message=False, status="CLOSED", at=NOW + timedelta(minutes=20)
        )[0]
        second = _run(sandbox, config, first.final_state, NOW + timedelta(hours=1))
        assert hidden not in {r["_id"] for r in second.records["leads"]}

        third = _run(sandbox, config, second.final_state, NOW + timedelta(hours=25))

        assert hidden in {r["_id"] for r in third.records["leads"]}
        assert _scan_state(third, "leads", BOT)["order_key"] == "lastMessage.at"


def test_a_record_a_full_scan_skipped_after_a_deletion_comes_with_the_next_full_scan() -> None:
    """Why a full scan emits since the start of the full scan *before* the previous one.

    30 conversations change; the next full scan reads page 1, then one of them is deleted,
    so the one at the top of page 2 moves up to page 1, already read: skipped. The full scan
    after that must emit it, though it changed before the previous full scan started.
    """
    with _one_listing(200) as sandbox:
        config = _config(sandbox, full_scan_every_hours=2)
        first = _run(sandbox, config, None, NOW)
        # 30 conversations get a message, a minute apart: the oldest first.
        changed = [
            sandbox.update(BOT, "lead", [199], at=NOW + timedelta(minutes=minute))[0]
            for minute in range(1, 31)
        ]
        skipped: list[str] = []

        def delete_one_after_page_1(live: Sandbox) -> None:
            if live.requests[-1].params["page"] == "2" and not skipped:
                skipped.append(live.listing(BOT, "lead")[25]["_id"])
                live.delete(BOT, "lead", [3])

        sandbox.before_request = delete_one_after_page_1
        second = _run(sandbox, config, first.final_state, NOW + timedelta(hours=3))
        sandbox.before_request = None
        # The skipped one is older than the newest change, so older than the new bookmark:
        # only a floor before the previous full scan brings it.
        assert skipped[0] in changed[:-1]
        assert skipped[0] not in {r["_id"] for r in second.records["leads"]}

        third = _run(sandbox, config, second.final_state, NOW + timedelta(hours=6))

        assert skipped[0] in {r["_id"] for r in third.records["leads"]}


@pytest.mark.parametrize(
    ("setting", "line"),
    [
        ({"scan_mode": "full"}, "reading to the end (scan_mode=full; next full scan in 24 h)"),
        ({"full_scan_every_hours": 0}, "full scan (full_scan_every_hours=0)"),
    ],
)
def test_settings_that_make_every_run_read_to_the_end(
    setting: dict[str, Any], line: str, caplog: pytest.LogCaptureFixture
) -> None:
    with _one_listing(100) as sandbox:
        config = _config(sandbox, **setting)
        first = _run(sandbox, config, None, NOW)
        before = len(sandbox.listing_requests())
        with caplog.at_level(logging.INFO):
            _run(sandbox, config, first.final_state, NOW + timedelta(minutes=5))

        assert pages_requested(sandbox, BOT, "lead", since=before) == [1, 2, 3, 4, 5]
    assert f"leads bot {BOT}: {line}" in caplog.messages


def test_start_date_later_than_the_bookmark_is_the_floor_of_an_early_stop() -> None:
    with _one_listing(200) as sandbox:
        config = _config(sandbox)
        first = _run(sandbox, config, None, NOW)
        sandbox.update(BOT, "lead", range(150, 155), at=NOW + timedelta(minutes=10))
        later = sandbox.update(BOT, "lead", range(160, 165), at=NOW + timedelta(minutes=40))
        config["start_date"] = (NOW + timedelta(minutes=30)).isoformat()
        before = len(sandbox.listing_requests())

        second = _run(sandbox, config, first.final_state, NOW + timedelta(hours=1))

        assert {r["_id"] for r in second.records["leads"]} == set(later)
        assert pages_requested(sandbox, BOT, "lead", since=before) == [1]


def test_snake_case_fields_early_stop_on_updated_at() -> None:
    with _one_listing(200) as sandbox:
        config = _config(sandbox, snake_case_fields=True)
        first = _run(sandbox, config, None, NOW)
        partition = first.final_state["bookmarks"]["leads"]["partitions"][0]
        assert partition["replication_key"] == "updated_at"
        changed = set(sandbox.touch(BOT, "lead", 5))
        before = len(sandbox.listing_requests())

        second = _run(sandbox, config, first.final_state, NOW + timedelta(hours=1))

        assert pages_requested(sandbox, BOT, "lead", since=before) == [1]
        assert changed <= {r["_id"] for r in second.records["leads"]}
        assert all("updated_at" in r for r in second.records["leads"])


def test_several_bots_with_different_orders_in_one_run(caplog: pytest.LogCaptureFixture) -> None:
    bots = fresh_bots()
    orders = {WEBSITE_BOT: "updated", WHATSAPP_BOT: "unordered", QUIET_BOT: "last_message"}
    for bot in bots:
        bot.order = orders[bot.bot_id]
    with Sandbox(bots=bots, rate_limit=None) as sandbox:
        config = base_config(sandbox)
        first = _run(sandbox, config, None, NOW)
        changed = {bot: set(sandbox.touch(bot, "non-lead", 2)) for bot in ALL_BOTS}
        before = len(sandbox.listing_requests())

        second = _run(sandbox, config, first.final_state, NOW + timedelta(hours=1))

        requested = requests_per_listing(sandbox, since=before)
        for bot_id in ALL_BOTS:
            assert changed[bot_id] <= {
                r["_id"] for r in second.records["chats"] if r["botId"] == bot_id
            }
    verdicts = {bot: _scan_state(first, "chats", bot).get("order_key") for bot in ALL_BOTS}
    # A ninth of the conversations have no last message: listed by it, they sort by their
    # creation among the rest, so `updatedAt` rises there.
    assert verdicts == {
        WEBSITE_BOT: "updatedAt",
        WHATSAPP_BOT: None,
        QUIET_BOT: "lastMessage.at",
    }
    assert requested[WEBSITE_BOT, "non-lead"] == 1
    assert requested[QUIET_BOT, "non-lead"] == 1
    assert requested[WHATSAPP_BOT, "non-lead"] == sandbox.pages(WHATSAPP_BOT, "non-lead") + 1


def test_the_scan_state_holds_times_and_verdicts_only() -> None:
    with _one_listing(100) as sandbox:
        first = _run(sandbox, _config(sandbox), None, NOW)

    scan = _scan_state(first, "leads", BOT)
    assert scan == {
        "last_full_scan_at": _started(NOW),
        "order_key": "updatedAt",
        "pages": 4,
        "page_size": 25,
    }
    assert SANDBOX_TOKEN not in str(first.final_state)


def test_a_state_with_a_scan_key_of_the_wrong_shape_starts_a_full_scan(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with _one_listing(100) as sandbox:
        first = _run(sandbox, _config(sandbox), None, NOW)
        first.final_state["bookmarks"]["leads"]["partitions"][0]["scan"] = {
            "last_full_scan_at": 42,
            "order_key": "yes",
        }
        with caplog.at_level(logging.INFO):
            _run(sandbox, _config(sandbox), first.final_state, NOW + timedelta(hours=1))

    assert f"leads bot {BOT}: full scan (order not verified yet)" in caplog.messages


def test_requests_shrink_with_changes_not_with_the_inbox() -> None:
    """Same number of changes, inboxes ten times apart: the same few requests."""
    rng = random.Random(7)
    costs = []
    for size in (500, 5000):
        with _one_listing(size, page_size=100) as sandbox:
            config = _config(sandbox)
            first = _run(sandbox, config, None, NOW)
            picked = rng.sample(range(size), 150)
            sandbox.update(BOT, "lead", picked, at=NOW + timedelta(minutes=5))
            before = len(sandbox.listing_requests())
            _run(sandbox, config, first.final_state, NOW + timedelta(hours=1))
            costs.append(len(pages_requested(sandbox, BOT, "lead", since=before)))
    assert costs == [2, 2]  # 150 changes fill page 1 and half of page 2
