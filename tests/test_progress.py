"""Progress lines for long runs: every few seconds, not per page or record."""

from __future__ import annotations

import logging

import pytest

from tap_botpenguin.concurrency.throttle import RateLimiter
from tap_botpenguin.report.progress import Progress


def test_progress_reports_every_interval_with_pages_records_and_rate(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    limiter = RateLimiter(100, clock=lambda: now[0])
    progress = Progress(
        logging.getLogger("test"),
        "leads",
        "bot1",
        lambda: limiter.recent(60.0),
        interval=5.0,
        clock=lambda: now[0],
    )

    with caplog.at_level(logging.INFO):
        for _ in range(12):  # a page every second
            now[0] += 1.0
            with limiter.slot():
                pass
            progress.page_read(25)
            progress.records_emitted += 25

    lines = [r.getMessage() for r in caplog.records]
    periodic = [line for line in lines if line.startswith("progress")]
    assert len(periodic) == 2  # at 5 s and 10 s, not for each of the 12 pages
    assert periodic[-1] == (
        "progress leads bot bot1: 10 pages, 250 records read, 225 emitted, "
        "10 requests in the last 60 s"
    )
