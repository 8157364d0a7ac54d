"""Progress lines for the person watching a long sync (stderr, every few seconds).

Per bot and stream: a periodic `progress` line while it runs, and one closing `done` line with
what kind of read it was, pages, records read and emitted, requests, time spent waiting (rate
limit and `Retry-After`) and duration. At the end of the run, one `run total` line.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from tap_botpenguin.report.logs import AnyLogger


class Progress:
    """Counts pages, records, requests and waits of one stream and bot; reports them.

    Main thread only: what other threads did reaches it with each page they read.
    `records_emitted` counts what was written: RECORD messages after the stream maps (a
    `__filter__` drops records), or records as they go into batch files.
    """

    def __init__(
        self,
        logger: AnyLogger,
        stream: str,
        bot_id: str,
        recent_requests: Callable[[], int],
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.label = f"{stream} bot {bot_id}"
        self.recent_requests = recent_requests
        self.interval = interval
        self.clock = clock
        self.pages = 0
        self.records_read = 0
        self.records_emitted = 0
        self.requests = 0
        self.overlaps = 0
        self._started = self._last_report = clock()
        #: (start, end) of every wait, on any thread: `waited` is their union.
        self._waits: list[tuple[float, float]] = []

    @property
    def waited(self) -> float:
        """Seconds during which at least one request of this listing waited.

        Requests waiting side by side (pages read ahead) count once.
        """
        total, covered = 0.0, float("-inf")
        for start, end in sorted(self._waits):
            total += max(0.0, end - max(start, covered))
            covered = max(covered, end)
        return total

    def traffic(self, requests: int, waits: Iterable[tuple[float, float]]) -> None:
        """Requests sent and waits spent for pages of this listing (any thread's)."""
        self.requests += requests
        self._waits.extend(waits)

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
            self.recent_requests(),
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

    def report(self, logger: AnyLogger) -> None:
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
