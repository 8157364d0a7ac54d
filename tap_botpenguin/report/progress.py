"""Progress lines for the person watching a long sync (stderr, every few seconds).

Per bot and stream: a periodic `progress` line while it runs, and one closing `done` line with
what kind of read it was, pages, records read and emitted, requests, time spent waiting (rate
limit and `Retry-After`) and duration. At the end of the run, one `run total` line.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from tap_botpenguin.http.throttle import RateLimiter


class Progress:
    """Counts pages, records, requests and waits of one stream and bot; reports them."""

    def __init__(
        self,
        logger: logging.Logger,
        stream: str,
        bot_id: str,
        limiter: RateLimiter,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.label = f"{stream} bot {bot_id}"
        self.limiter = limiter
        self.interval = interval
        self.clock = clock
        self.pages = 0
        self.records_read = 0
        self.records_emitted = 0
        self.requests = 0
        self.waited = 0.0
        self.overlaps = 0
        self._started = self._last_report = clock()
        #: Pages read ahead wait and are counted on several threads (see `readahead`).
        self._lock = threading.Lock()
        self._waits_end = self._started

    def count_request(self) -> None:
        """A request is being sent."""
        with self._lock:
            self.requests += 1

    def page_read(self, records: int) -> None:
        """A page arrived; report if the last report is older than the interval."""
        self.pages += 1
        self.records_read += records
        if self.clock() - self._last_report >= self.interval:
            self.report()

    def report(self) -> None:
        """Log one line: pages, records and the current request rate."""
        self._last_report = self.clock()
        self.logger.info(
            "progress %s: %d pages, %d records read, %d emitted, %d requests in the last 60 s",
            self.label,
            self.pages,
            self.records_read,
            self.records_emitted,
            self.limiter.recent(60.0),
        )

    def finish(self, outcome: str) -> None:
        """The closing line for this stream and bot, and a note if the inbox moved meanwhile."""
        self.logger.info(
            "done %s: %s; read %d, emitted %d, requests %d, waited %.1f s, took %.1f s",
            self.label,
            outcome,
            self.records_read,
            self.records_emitted,
            self.requests,
            self.waited,
            self.clock() - self._started,
        )
        if self.overlaps:
            self.logger.info(
                "%s: %d record(s) appeared on two consecutive pages: the inbox changed while "
                "it was read; the copies are emitted twice and deduplicated on `_id`",
                self.label,
                self.overlaps,
            )

    def waiting(self, seconds: float, reason: str | None) -> None:
        """Count a pause, and say why nothing is happening (skipped for short pauses).

        `reason` None: counted only (the caller says why in its own line).

        Requests waiting side by side count once: `waited` is the time during which at
        least one request of this listing waited, and only a wait that outlasts the ones
        already announced is announced.
        """
        with self._lock:
            now = self.clock()
            end = now + seconds
            new = max(0.0, end - max(now, self._waits_end))
            self._waits_end = max(self._waits_end, end)
            self.waited += new
        if reason is not None and new >= 1.0:
            self.logger.info("%s: waiting %.1f s for %s", self.label, seconds, reason)


class RunTotals:
    """Every listing's closing counts added up, for the run's last line."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.listings = self.set_aside = self.records_emitted = self.requests = 0
        self.waited = 0.0
        self._started = clock()

    def add(self, progress: Progress, *, set_aside: bool) -> None:
        """A listing is done (read, or set aside after a failure)."""
        self.listings += 1
        self.set_aside += set_aside
        self.records_emitted += progress.records_emitted
        self.requests += progress.requests
        self.waited += progress.waited

    def report(self, logger: logging.Logger) -> None:
        """`run total: 6 listings (1 set aside); emitted ..., requests ..., took ...`."""
        logger.info(
            "run total: %d listings (%d set aside); emitted %d, requests %d, waited %.1f s, "
            "took %.1f s",
            self.listings,
            self.set_aside,
            self.records_emitted,
            self.requests,
            self.waited,
            self.clock() - self._started,
        )
