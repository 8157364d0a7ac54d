"""Pages read ahead within a listing (`readahead`): faster on a slow API, and nothing lost.

A window of pages is asked for together, then page 1 again: the window is used only when page 1
is unchanged. The output must be what one request at a time gives, every end of a listing must
still end it within the window's bound, and a conversation arriving at the top while pages are
served out of order must not cost a record.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tap_botpenguin.concurrency.throttle import RateLimiter
from tap_botpenguin.config.settings import DEFAULT_PAGES_IN_FLIGHT
from tap_botpenguin.sandbox import (
    PAST_END,
    WEBSITE_BOT,
    WHATSAPP_BOT,
    Fault,
    ResponseCache,
    Sandbox,
)
from tap_botpenguin.sandbox.server import ReceivedRequest

from .helpers import (
    SHORT_WINDOW,
    STREAM_TYPES,
    Listing,
    ShortWindowTap,
    SyncResult,
    base_config,
    fresh_bots,
    logged,
    max_in_any_window,
    pages_asked,
    pages_requested,
    run_in_process,
    tap_at,
)

#: An allowance no answer time can use one request at a time, and answers slow enough next to
#: the tap's work on a page (`readahead.worth_a_window`): windows pay.
ROOMY = 10**9
SLOW = 0.02
WINDOW_PAGES = 4
NOW = datetime.now(timezone.utc).replace(microsecond=0)
Asked = dict[Listing, list[int]]


def _output(result: SyncResult) -> list[Any]:
    """RECORD and STATE messages in order, without the extraction time."""
    assert result.error is None, result.error
    return [
        (m["stream"], m["record"]) if m["type"] == "RECORD" else m["value"]
        for m in result.messages
        if m["type"] in {"RECORD", "STATE"}
    ]


def _run(
    pages_in_flight: int,
    sandbox_options: dict[str, Any],
    state: dict[str, Any] | None = None,
    change: Callable[[Sandbox], object] | None = None,
    **settings: Any,
) -> tuple[list[Any], Asked]:
    options = {"latency": SLOW, **sandbox_options}
    with Sandbox(bots=fresh_bots(), rate_limit=None, **options) as sandbox:
        tap = tap_at(NOW, sandbox)
        if change is not None:
            change(sandbox)
        config = base_config(
            sandbox, pages_in_flight=pages_in_flight, requests_per_minute=ROOMY, **settings
        )
        result = run_in_process(config, state=state, tap_class=tap)
        return _output(result), pages_asked(sandbox)


def _within_the_bound(one_at_a_time: Asked, ahead: Asked) -> int:
    """The same pages, plus page 1 re-read and at most WINDOW_PAGES - 1 pages past the end
    per listing; returns how many times page 1 was re-read (the windows' checks)."""
    assert ahead.keys() == one_at_a_time.keys()
    checks = 0
    for listing, pages in ahead.items():
        needed = Counter(one_at_a_time[listing])
        first, *rest = pages
        assert first == 1, listing
        checks += rest.count(1)
        asked = Counter([first, *(page for page in rest if page != 1)])
        # No page asked twice, but one that one request at a time asked twice too (a page
        # repeating the one before it is asked for again).
        assert all(asked[page] <= max(needed[page], 1) for page in asked), (listing, pages)
        assert needed.keys() <= asked.keys(), listing
        extra = sorted(asked.keys() - needed.keys())
        assert len(extra) <= WINDOW_PAGES - 1, (listing, extra)
        last = max(needed)
        assert extra == list(range(last + 1, last + 1 + len(extra))), listing
    return checks


@pytest.mark.parametrize("page_size", [10, 1000], ids=["several pages", "page 1 only"])
@pytest.mark.parametrize("past_end", PAST_END)
def test_every_end_of_listing_gives_the_output_of_one_request_at_a_time(
    past_end: str, page_size: int
) -> None:
    options = {"past_end": past_end, "page_size": page_size}
    one_output, one_asked = _run(1, options)
    ahead_output, ahead_asked = _run(WINDOW_PAGES, options)

    assert ahead_output == one_output  # the same records in the same order, the same STATE
    checks = _within_the_bound(one_asked, ahead_asked)
    if page_size == 10:
        assert checks > 0, "no page was read ahead"  # every window is checked once
    else:
        assert ahead_asked == one_asked  # a one-page listing is never read ahead


def test_a_later_full_scan_reads_no_page_past_the_end_it_knows() -> None:
    """The previous full scan's page count bounds the windows: nothing is asked past it."""
    with Sandbox(bots=fresh_bots(), rate_limit=None, page_size=10, latency=SLOW) as sandbox:
        config = base_config(
            sandbox, pages_in_flight=WINDOW_PAGES, requests_per_minute=ROOMY, scan_mode="full"
        )
        first = run_in_process(config, tap_class=tap_at(NOW, sandbox))
        assert first.error is None
        before = len(sandbox.listing_requests())
        again = run_in_process(config, state=first.final_state, tap_class=tap_at(NOW, sandbox))
        assert again.error is None
        asked = pages_asked(sandbox, since=before)
        last_pages = {key: sandbox.pages(*key) for key in asked}
    checks = 0
    for key, pages in asked.items():
        later = [page for page in pages[1:] if page != 1]
        checks += len(pages) - 1 - len(later)
        # Its pages after page 1 and the empty page after the last one, each once.
        assert sorted(later) == list(range(2, last_pages[key] + 2)), (key, pages)
    assert checks > 0, "no page was read ahead"


def _serve_page_4_before_page_3_and_add_a_conversation_between(
    wait: float,
) -> tuple[Callable[[Sandbox, ReceivedRequest], None], threading.Event]:
    """A hook: page 3 of the bot's leads (in the first window, which starts at page 2 or, when
    no page size is known yet, at 3) waits until page 4 was answered (at most `wait` seconds);
    then a conversation arrives at the top, then page 3 is served (once)."""
    happened = threading.Event()

    def page_4_answered(request: ReceivedRequest) -> bool:
        return request.params.get("type") == "lead" and request.params.get("page") == "4"

    def hook(live: Sandbox, request: ReceivedRequest) -> None:
        params = request.params
        if params.get("botId") != WEBSITE_BOT or params.get("type") != "lead":
            return
        first_page_3 = params.get("page") == "3" and not happened.is_set()
        if first_page_3 and live.wait_for_answer(page_4_answered, timeout=wait):
            live.add(WEBSITE_BOT, "lead", 1, seed="arrived", at=NOW)
            happened.set()

    return hook, happened


def test_a_conversation_arriving_at_the_top_while_pages_are_served_out_of_order_is_not_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Page 4 served before page 3, a conversation arriving in between: the record that
    crossed the page 3 / 4 boundary is on neither answer. Page 1, asked for again after the
    window, shows the arrival: the window is dropped and the listing read one page at a time."""
    with Sandbox(bots=fresh_bots(), rate_limit=None, page_size=10, latency=SLOW) as sandbox:
        existing = {record["_id"] for record in sandbox.listing(WEBSITE_BOT, "lead")}
        config = base_config(
            sandbox,
            bots=[{"bot_id": WEBSITE_BOT}],
            pages_in_flight=WINDOW_PAGES,
            requests_per_minute=ROOMY,
            request_timeout=30,
        )
        # The hook holds page 3's answer while it waits for page 4's: it must give up well
        # before the tap's request for page 3 times out, or a loaded machine turns the wait
        # into a ReadTimeout (a 10 s wait against base_config's 5 s failed so). Hence a
        # roomier request_timeout, and a wait that is a fraction of it.
        hook, happened = _serve_page_4_before_page_3_and_add_a_conversation_between(
            wait=config["request_timeout"] / 3
        )
        sandbox.before_answer = hook
        with caplog.at_level(logging.INFO):
            result = run_in_process(config, tap_class=tap_at(NOW, sandbox))
        pages = pages_requested(sandbox, bot_id=None, kind="lead")

    assert result.error is None, result.error
    assert happened.is_set(), "page 4 was never served before page 3: nothing was read ahead"
    emitted = {record["_id"] for record in result.records["leads"]}
    assert existing - emitted == set()
    said = re.search(
        r"conversations arrived at the top of the listing while pages (\d+)\+ were read "
        r"ahead: reading one page at a time from page (\d+)",
        caplog.text,
    )
    assert said, caplog.text
    first = int(said.group(1))
    # Pages one at a time up to the window, the window and its check, then one at a time
    # again from the window's second page.
    check = pages.index(1, 1)
    assert pages[: first - 1] == list(range(1, first))
    assert sorted(pages[first - 1 : check]) == list(range(first, first + WINDOW_PAGES))
    assert pages[check + 1 : check + 4] == [first + 1, first + 2, first + 3]


def test_a_listing_in_no_order_the_tap_knows_is_read_one_page_at_a_time() -> None:
    """Changes may enter such a listing anywhere, which page 1 would not show."""
    options = {"order": "unordered", "page_size": 10}
    _, asked = _run(WINDOW_PAGES, options, change=_status_changes)
    for listing, pages in asked.items():
        assert pages == list(range(1, len(pages) + 1)), listing  # in order, page 1 once


@pytest.mark.parametrize("order", ["updated", "last_message", "created"])
def test_pages_are_read_ahead_in_every_newest_first_order(order: str) -> None:
    """Listed by last message or by creation, a status-only change leaves a conversation in
    place (`updatedAt` rises there), but changes still enter only at the top: page 1's check
    holds, so windows are used, and the output is that of one request at a time."""
    options = {"order": order, "page_size": 10}
    one_output, one_asked = _run(1, options, change=_status_changes)
    ahead_output, ahead_asked = _run(WINDOW_PAGES, options, change=_status_changes)

    assert ahead_output == one_output
    assert _within_the_bound(one_asked, ahead_asked) > 0, "no page was read ahead"
    for listing, pages in ahead_asked.items():
        if len(one_asked[listing]) > WINDOW_PAGES + 1:  # long enough for a window
            assert pages != sorted(pages), listing  # page 1 asked again: a window's check


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _status_changes(sandbox: Sandbox) -> None:
    """A status-only change on page 1 of every listing: in an order by last message or by
    creation, the conversation stays where it is, so `updatedAt` is not newest first."""
    for bot_id in (WEBSITE_BOT, WHATSAPP_BOT):
        for kind in STREAM_TYPES.values():
            if len(sandbox.listing(bot_id, kind)) > 3:
                sandbox.update(bot_id, kind, [2], message=False, status="closed", at=NOW)


def test_an_incremental_run_reads_one_page_at_a_time() -> None:
    """Only full scans read ahead: an early stop then costs no page past it."""
    with Sandbox(bots=fresh_bots(), rate_limit=None, page_size=10, latency=SLOW) as sandbox:
        tap = tap_at(NOW - timedelta(hours=1), sandbox)
        first = run_in_process(base_config(sandbox), tap_class=tap)
    at = NOW - timedelta(minutes=30)

    def change(sandbox: Sandbox) -> None:
        sandbox.update(WEBSITE_BOT, "lead", range(40, 60), at=at)

    one_output, one_asked = _run(1, {"page_size": 10}, first.final_state, change)
    ahead_output, ahead_asked = _run(WINDOW_PAGES, {"page_size": 10}, first.final_state, change)
    assert ahead_output == one_output
    assert ahead_asked == one_asked


def test_a_page_read_ahead_that_fails_for_good_fails_as_one_at_a_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The window is dropped; the page is asked for again in turn, and its failure sets the
    listing aside exactly as one request at a time would (same records, same STATE)."""
    fault = {"bot_id": WEBSITE_BOT, "type": "lead", "page": 4, "times": None}

    def failing(sandbox: Sandbox) -> None:
        sandbox.inject(Fault("status", status=503, **fault))

    runs = {}
    for in_flight in (1, WINDOW_PAGES):
        with Sandbox(bots=fresh_bots(), rate_limit=None, page_size=10, latency=SLOW) as sandbox:
            failing(sandbox)
            config = base_config(
                sandbox, pages_in_flight=in_flight, requests_per_minute=ROOMY, max_retries=1
            )
            result = run_in_process(config, tap_class=tap_at(NOW, sandbox))
            runs[in_flight] = result
    assert runs[1].error is not None
    assert str(runs[WINDOW_PAGES].error) == str(runs[1].error)
    for result in runs.values():
        result.error = None
    assert _output(runs[WINDOW_PAGES]) == _output(runs[1])


@pytest.mark.parametrize(
    "fault",
    [
        Fault("status", status=503, page=4, times=None, bot_id=WEBSITE_BOT, type="lead"),
        Fault(
            "redirect",
            status=302,
            location="https://elsewhere.example",
            page=4,
            times=None,
            bot_id=WEBSITE_BOT,
            type="lead",
        ),
    ],
    ids=["503 every time", "redirect to another host"],
)
def test_a_page_read_ahead_is_tried_and_fails_exactly_as_one_at_a_time(fault: Fault) -> None:
    """A window's page whose retries are spent is not asked for again in turn (that retried
    it twice over), and an error that stops a listing read alone stops it read ahead."""
    runs = {}
    for in_flight in (1, WINDOW_PAGES):
        with Sandbox(bots=fresh_bots(), rate_limit=None, page_size=10, latency=SLOW) as sandbox:
            sandbox.inject(fault)
            config = base_config(
                sandbox, pages_in_flight=in_flight, requests_per_minute=ROOMY, max_retries=3
            )
            result = run_in_process(config, tap_class=tap_at(NOW, sandbox))
            runs[in_flight] = (result, pages_requested(sandbox, WEBSITE_BOT, "lead"))

    (alone, alone_asked), (ahead, ahead_asked) = runs[1], runs[WINDOW_PAGES]
    assert max(ahead_asked) > 4  # page 4 was read in a window
    assert ahead_asked.count(4) == alone_asked.count(4)
    assert alone.error is not None
    assert str(ahead.error) == str(alone.error)
    assert _output_with_error(ahead) == _output_with_error(alone)


def _output_with_error(result: SyncResult) -> list[Any]:
    result.error = None
    return _output(result)


def test_every_request_asks_caches_for_a_fresh_answer() -> None:
    with Sandbox(bots=fresh_bots(), rate_limit=None) as sandbox:
        result = run_in_process(base_config(sandbox))
    assert result.error is None
    headers = [request.headers for request in sandbox.listing_requests()]
    assert headers
    assert all(
        h.get("cache-control") == "no-cache" and h.get("pragma") == "no-cache" for h in headers
    )


def test_a_compliant_cache_never_answers_the_tap() -> None:
    cache = ResponseCache(60, honours_no_cache=True)
    output, asked = _run(WINDOW_PAGES, {"page_size": 10, "cache": cache})
    assert output == _run(1, {"page_size": 10})[0]
    assert cache.hits == 0
    assert any(pages.count(1) > 1 for pages in asked.values())  # windows were confirmed


def test_pages_read_ahead_through_a_cache_that_ignores_no_cache_go_one_at_a_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A gateway answering the page-1 check with the copy it holds would hide arrivals: the
    check does not count, and the listing is read one page at a time from there."""
    one_output, _ = _run(1, {"page_size": 10})
    cache = ResponseCache(60, honours_no_cache=False)
    with caplog.at_level(logging.INFO):
        cached_output, _ = _run(WINDOW_PAGES, {"page_size": 10, "cache": cache})

    assert cache.hits > 0
    assert cached_output == one_output
    fallbacks = logged(caplog, containing="an answer came from a cache")
    assert fallbacks
    assert all("reading one page at a time" in line for line in fallbacks)


def test_windows_are_announced_once_and_an_empty_page_before_records_is_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The person watching learns when windows start; an empty page inside a window whose
    later pages held records ends the listing (as one at a time) and says so."""
    empty = Fault("data", page=4, times=None, bot_id=WEBSITE_BOT, type="lead")
    empty.transform = lambda records: []
    with caplog.at_level(logging.INFO):
        output, _ = _run(WINDOW_PAGES, {"page_size": 10}, change=lambda s: s.inject(empty))

    leads = f"leads (bot {WEBSITE_BOT})"
    announced = logged(caplog, containing=f"{leads}: the API answers slowly")
    assert len(announced) == 1
    warnings = logged(caplog, level=logging.WARNING, containing=f"{leads}: page 4 came back empty")
    assert len(warnings) == 1
    assert "page(s) 5 of the same window held records" in warnings[0]
    emitted = [m for m in output if isinstance(m, tuple) and m[0] == "leads"]
    website = [record for _, record in emitted if record["botId"] == WEBSITE_BOT]
    assert len(website) == 30  # pages 1-3: the listing ended at the empty page 4, as alone


def test_pages_read_ahead_keep_to_the_allowance_and_earn_no_429() -> None:
    """Several requests in flight share the token's throttle: never more than the limit in any
    window, at the server; the sandbox enforces the same limit and answers no 429."""
    limit = 12
    bots = [b for b in fresh_bots() if b.bot_id == WEBSITE_BOT]
    with Sandbox(
        bots=bots, page_size=10, rate_limit=limit, rate_window=SHORT_WINDOW, latency=0.3
    ) as sandbox:
        config = base_config(
            sandbox,
            bots=[{"bot_id": WEBSITE_BOT}],
            requests_per_minute=limit,
            pages_in_flight=DEFAULT_PAGES_IN_FLIGHT,
        )
        result = run_in_process(config, tap_class=ShortWindowTap)
        received = sandbox.listing_requests()
    assert result.error is None, result.error
    assert [r.status for r in received if r.status != 200] == []
    assert max_in_any_window([r.at for r in received], SHORT_WINDOW) <= limit
    leads = [r for r in received if r.params["type"] == "lead"]
    assert [r.params["page"] for r in leads[1:]].count("1") > 0, "no page was read ahead"


def test_the_throttle_counts_requests_in_flight_on_every_thread() -> None:
    """Threads sharing a limiter never start more than `limit` requests in any window."""
    limit, window = 5, 0.2
    limiter = RateLimiter(limit, window=window)
    starts: list[float] = []
    lock = threading.Lock()

    def requests() -> None:
        for _ in range(5):
            with limiter.slot(), lock:
                starts.append(time.monotonic())

    threads = [threading.Thread(target=requests) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(starts) == 20
    assert max_in_any_window(sorted(starts), window) <= limit
    assert limiter.answer_time is not None


def test_a_stopped_run_does_not_wait_for_the_pages_in_flight(tmp_path: Path) -> None:
    """SIGTERM while a window's requests hang: the tap exits at once (the window's threads are
    daemons), not after `request_timeout` and the retries of every page in flight."""
    hanging, release = threading.Event(), threading.Event()
    in_flight: list[ReceivedRequest] = []
    lock = threading.Lock()
    settings = {"requests_per_minute": ROOMY, "request_timeout": 100, "max_retries": 1}
    # The hook holds the window's answers for longer than the tap's request_timeout, so a tap
    # that waited for its requests would wait out the timeout; "at once" is well under it.
    hold = settings["request_timeout"] * 1.2
    at_once = settings["request_timeout"] * 0.3

    def hang_the_window(live: Sandbox, request: ReceivedRequest) -> None:
        if request.params.get("type") != "lead" or int(request.params["page"]) < 3:
            return
        with lock:
            in_flight.append(request)
            if len(in_flight) >= 2:  # two pages of one listing at once: a window
                hanging.set()
        release.wait(timeout=hold)

    with Sandbox(bots=fresh_bots(), rate_limit=None, page_size=10, latency=SLOW) as sandbox:
        sandbox.before_answer = hang_the_window
        config = tmp_path / "config.json"
        config.write_text(
            json.dumps(base_config(sandbox, bots=[{"bot_id": WEBSITE_BOT}], **settings))
        )
        command = [sys.executable, "-m", "tap_botpenguin", "--config", str(config)]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            assert hanging.wait(timeout=60), "no window of pages was requested"
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=at_once)
            except subprocess.TimeoutExpired:
                pytest.fail("the tap did not exit while its window's requests were in flight")
            # It exited while every page of the window was still unanswered.
            assert all(request.answered_at is None for request in in_flight)
        finally:
            process.kill()
            release.set()


def test_pages_of_a_window_past_an_order_break_are_asked_for_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The window's check relies on changes entering at the top. When a page of the window
    shows the listing is not newest first, its later pages are dropped and asked for again,
    one at a time; the output is still that of one request at a time."""

    def in_order_until_page_4(sandbox: Sandbox) -> None:
        """Listed in a fixed order: every key newest first, except one record on page 4
        that is newer than all above it by every key."""
        size = len(sandbox.listing(WEBSITE_BOT, "lead"))
        for position in range(size):
            minutes = -1 if position == 34 else position  # page 4's record: the newest of all
            at = NOW - timedelta(minutes=minutes)
            sandbox.update(WEBSITE_BOT, "lead", [position], at=at, fields={"createdAt": _iso(at)})

    options = {"order": "unordered", "page_size": 10}
    bots = [{"bot_id": WEBSITE_BOT}]
    one_output, _ = _run(1, options, change=in_order_until_page_4, bots=bots)
    with caplog.at_level(logging.INFO):
        ahead_output, asked = _run(WINDOW_PAGES, options, change=in_order_until_page_4, bots=bots)
    assert ahead_output == one_output
    said = re.search(
        r"leads \(bot \w+\): the listing is not newest first: reading one page at a time from "
        r"page (\d+)",
        caplog.text,
    )
    assert said, caplog.text
    again = int(said.group(1))
    assert again == 5
    assert asked[WEBSITE_BOT, "lead"].count(again) == 2  # read ahead, dropped, asked again
