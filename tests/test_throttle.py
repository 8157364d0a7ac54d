"""Client-side throttling: at most `requests_per_minute` per window and token, retries included."""

from __future__ import annotations

import logging

import pytest

from tap_botpenguin.concurrency.throttle import RateLimiter
from tap_botpenguin.sandbox import WEBSITE_BOT, WHATSAPP_BOT, Fault, Sandbox

from .helpers import (
    SHORT_WINDOW,
    ShortWindowTap,
    base_config,
    fresh_bots,
    max_in_any_window,
    run_in_process,
)


def test_limiter_spaces_requests_by_the_window_after_each_finish() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(3, window=60.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        with limiter.slot():
            now[0] += 0.5  # each request takes half a second
    assert slept == []
    with limiter.slot():
        pass
    # The first request finished at 0.5 s: the fourth may start at 60.5 s.
    assert slept == [pytest.approx(59.0)]
    assert limiter.recent(60.0) == 3


def test_limiter_counts_failed_requests_too() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(1, window=10.0, clock=lambda: now[0], sleep=sleep)
    with pytest.raises(RuntimeError), limiter.slot():
        raise RuntimeError
    with limiter.slot():
        pass
    assert slept == [pytest.approx(10.0)]


def test_the_server_never_sees_more_than_the_limit_and_sends_no_429(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limit = 3
    bots = [b for b in fresh_bots() if b.bot_id in {WEBSITE_BOT, WHATSAPP_BOT}]
    with Sandbox(bots=bots, page_size=50, rate_limit=limit, rate_window=SHORT_WINDOW) as server:
        # A retried 500 takes a slot like any request.
        server.inject(Fault("status", status=500, bot_id=WHATSAPP_BOT, type="lead", page=1))
        config = base_config(
            server,
            bots=[{"bot_id": WEBSITE_BOT}, {"bot_id": WHATSAPP_BOT}],
            requests_per_minute=limit,
        )
        with caplog.at_level(logging.INFO):
            result = run_in_process(config, tap_class=ShortWindowTap)

        assert result.error is None
        assert len(result.records["leads"]) == 235
        times = [r.at for r in server.listing_requests()]
        statuses = [r.status for r in server.listing_requests()]
    assert 429 not in statuses
    assert statuses.count(500) == 1
    # Pages of 50 plus one empty page per listing: leads 4+1 and 2+1 (+1 retry), chats 5+1 and 1+1.
    assert len(times) == 17
    assert max_in_any_window(times, SHORT_WINDOW) <= limit
    # 17 requests at 3 per window cannot take less than 5 full windows.
    assert times[-1] - times[0] >= 5 * SHORT_WINDOW
    assert "waiting" in caplog.text
    assert "for the rate limit (requests_per_minute=3)" in caplog.text


def test_the_sandbox_own_rate_window_answers_429_and_the_tap_waits_it_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another client on the token: the server's window (3 per 1.5 s) is tighter than the
    tap's allowance, so the sandbox itself answers 429 with `Retry-After`."""
    bots = [b for b in fresh_bots() if b.bot_id == WHATSAPP_BOT]
    with Sandbox(bots=bots, rate_limit=3, rate_window=SHORT_WINDOW) as server:
        config = base_config(server, bots=[{"bot_id": WHATSAPP_BOT}], max_retries=8)
        with caplog.at_level(logging.INFO):
            result = run_in_process(config, tap_class=ShortWindowTap)

        assert result.error is None, result.error
        assert len(result.records["leads"]) == 55
        received = server.listing_requests()
    limited = [i for i, r in enumerate(received) if r.status == 429]
    assert limited, "the sandbox's window was never reached"
    for i in limited:
        retry = next(r for r in received[i + 1 :] if r.params == received[i].params)
        # The sandbox's Retry-After is whole seconds, at least 1.
        assert retry.at - received[i].at >= 1.0
    assert sum(1 for r in received if r.status == 200) == 4 + 3  # leads 3+1, chats 2+1
    waits = [m for m in caplog.messages if "429 Too Many Requests" in m and "retrying in" in m]
    assert len(waits) == len(limited)
