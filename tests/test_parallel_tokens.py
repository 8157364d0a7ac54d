"""Listings of different tokens are read at the same time (`max_parallel_tokens`), and what a
target sees is what reading them one after the other gives: the same messages in the same
order, the same STATE; one request at a time per listing; failures handled as before."""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tap_botpenguin.concurrency.buffer import Outcome, PageBuffer
from tap_botpenguin.listing.reader import AcceptedPage
from tap_botpenguin.sandbox import WEBSITE_BOT, WHATSAPP_BOT, Fault, Sandbox
from tap_botpenguin.sandbox.server import ReceivedRequest

from .helpers import (
    STREAM_TYPES,
    SyncResult,
    fresh_bots,
    own_token_config,
    own_tokens,
    requests_per_listing,
    run_cli,
    run_in_process,
    tap_at,
)

LATENCY = 0.05
MOMENT = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)


def _without_times(result: SyncResult) -> list[dict[str, Any]]:
    return [{k: v for k, v in m.items() if k != "time_extracted"} for m in result.messages]


def _sync(sandbox: Sandbox, workers: int, **settings: Any) -> SyncResult:
    config = own_token_config(sandbox, max_parallel_tokens=workers, **settings)
    return run_in_process(config, tap_class=tap_at(MOMENT, sandbox))


def _overlapping(requests: list[ReceivedRequest], latency: float) -> list[tuple[str, str]]:
    """Pairs of tokens with a request each in flight at the same time (arrivals < latency)."""
    ordered = sorted(requests, key=lambda r: r.at)
    return [
        (a.headers["x-bot-token"], b.headers["x-bot-token"])
        for a, b in itertools.pairwise(ordered)
        if b.at - a.at < latency * 0.9
    ]


def test_several_tokens_give_the_messages_and_state_of_one_at_a_time() -> None:
    with Sandbox(bots=own_tokens(fresh_bots()), rate_limit=None) as sandbox:
        alone = _sync(sandbox, 1)
        parallel = _sync(sandbox, 4)
        every = {
            (stream, bot, record_id)
            for stream, kind in STREAM_TYPES.items()
            for (bot, record_id) in sandbox.all_records(kind)
        }

    assert alone.error is None
    assert parallel.error is None
    assert {(s, r["botId"], r["_id"]) for s, rs in parallel.records.items() for r in rs} == every
    # Records of each bot and stream in page order, STATE only after what it covers.
    assert _without_times(parallel) == _without_times(alone)
    assert parallel.final_state == alone.final_state


def test_tokens_are_read_at_the_same_time_one_request_per_listing_at_once() -> None:
    with Sandbox(bots=own_tokens(fresh_bots()), rate_limit=None, latency=LATENCY) as sandbox:
        assert _sync(sandbox, 1).error is None
        alone = sandbox.listing_requests()
        sandbox.requests.clear()
        assert _sync(sandbox, 4).error is None
        parallel = sandbox.listing_requests()

    assert not _overlapping(alone, LATENCY)  # the control: one request at a time
    assert {frozenset(pair) for pair in _overlapping(parallel, LATENCY)} - {
        frozenset([token]) for token in {r.headers["x-bot-token"] for r in parallel}
    }, "no two tokens were ever read at the same time"
    by_listing: dict[tuple[str, str], list[ReceivedRequest]] = defaultdict(list)
    for request in parallel:
        by_listing[request.params["botId"], request.params["type"]].append(request)
    for requests in by_listing.values():
        pages = [int(r.params["page"]) for r in requests]
        assert pages == list(range(1, len(pages) + 1))  # in order, no page ahead
        gaps = [b.at - a.at for a, b in itertools.pairwise(requests)]
        assert all(gap >= LATENCY * 0.9 for gap in gaps)  # the last one answered first


def test_a_failing_bot_among_parallel_ones_is_set_aside(tmp_path: Path) -> None:
    with Sandbox(bots=own_tokens(fresh_bots()), rate_limit=None) as sandbox:
        config = own_token_config(sandbox, max_parallel_tokens=4)
        config["bots"][1]["bot_token"] = "revoked-token-0123456789abcdef"  # WHATSAPP_BOT
        result = run_cli(config, tmp_path)
        others = {
            (stream, bot, record_id)
            for stream, kind in STREAM_TYPES.items()
            for (bot, record_id) in sandbox.all_records(kind)
            if bot != WHATSAPP_BOT
        }

    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if "| ERROR " in line]
    assert sorted(line.split(" set aside")[0].split()[-3] for line in errors) == [
        "chats",
        "leads",
    ], result.stderr
    emitted = {(s, r["botId"], r["_id"]) for s, rs in result.records.items() for r in rs}
    assert emitted == others
    bookmarked = {
        partition["context"]["botId"]
        for stream in result.final_state["bookmarks"].values()
        for partition in stream.get("partitions", [])
        if "replication_key_value" in partition
    }
    assert WHATSAPP_BOT not in bookmarked
    assert WEBSITE_BOT in bookmarked


def test_a_run_stopping_error_on_a_worker_stops_the_run_in_one_line(tmp_path: Path) -> None:
    """A worker's error (a redirect to another host) ends the run when its listing is due;
    the other workers stop too: the website bot's leads (12 pages) are not read to the end."""
    with (
        Sandbox(bots=own_tokens(fresh_bots()), rate_limit=None, latency=LATENCY) as sandbox,
        Sandbox(bots=[]) as elsewhere,
    ):
        sandbox.inject(
            Fault("redirect", status=302, location=elsewhere.url, bot_id=WHATSAPP_BOT, times=None)
        )
        started = time.monotonic()
        result = run_cli(own_token_config(sandbox, max_parallel_tokens=4), tmp_path)
        took = time.monotonic() - started
        website_leads = requests_per_listing(sandbox)[WEBSITE_BOT, "lead"]

    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if "| ERROR " in line]
    assert len(errors) == 1, result.stderr
    assert "redirected" in errors[0]
    assert "Traceback" not in result.stderr
    assert not elsewhere.requests
    assert website_leads < 12, "the other workers went on after the run stopped"
    assert took < 60


def test_a_listing_buffer_keeps_pages_in_order_beyond_memory() -> None:
    buffer = PageBuffer(in_memory=2)
    pages = [
        AcceptedPage(
            number=n + 1,
            records=[
                {"_id": f"{n}-{i}", "n": n, "nested": {"list": [i, None, 1.5]}} for i in range(3)
            ],
            repaired=n % 2,
            page_size=3,
            requests=1,
            answers=[(200, 0.25)],
            waits=[(1.0, 2.5)],
        )
        for n in range(9)
    ]
    for page in pages[:5]:  # 2 in memory, 3 to the file
        buffer.put(page)
    taken = buffer.pages()
    got = [next(taken), next(taken), next(taken)]
    for page in pages[5:]:  # the file is not empty yet: these go after it, not to memory
        buffer.put(page)
    buffer.end(Outcome())
    got += list(taken)
    assert got == pages


def test_listings_failing_on_every_worker_hold_no_other_token(tmp_path: Path) -> None:
    """Two workers, three tokens: both workers' `leads` fail while the main thread still
    waits for the third token's `chats`; the third token is read, nothing hangs."""
    with Sandbox(bots=own_tokens(fresh_bots()), rate_limit=None) as sandbox:
        for bot in sandbox.bots[:2]:
            sandbox.inject(Fault("status", status=403, type="lead", bot_id=bot.bot_id, times=None))
        config = own_token_config(sandbox, max_parallel_tokens=2)
        result = run_cli(config, tmp_path, timeout=60)
        expected = {
            (stream, bot, record_id)
            for stream, kind in STREAM_TYPES.items()
            for (bot, record_id) in sandbox.all_records(kind)
            if stream == "chats" or bot not in {b.bot_id for b in sandbox.bots[:2]}
        }

    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if "| ERROR " in line]
    assert len(errors) == 2, result.stderr
    assert all("leads (bot" in line and "403" in line for line in errors)
    emitted = {(s, r["botId"], r["_id"]) for s, rs in result.records.items() for r in rs}
    assert emitted == expected
