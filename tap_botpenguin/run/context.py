"""The run context: what every listing of a run shares, given to the streams (no locator)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tap_botpenguin.concurrency.deadlines import WATCHDOG
from tap_botpenguin.concurrency.throttle import RateLimiter
from tap_botpenguin.concurrency.windows import WindowThreads
from tap_botpenguin.concurrency.workers import Scheduler, Tally
from tap_botpenguin.config.settings import BotSettings, Settings
from tap_botpenguin.http.client import Endpoint, PageClient
from tap_botpenguin.http.session import Deadlines
from tap_botpenguin.listing.ahead import PagesAhead
from tap_botpenguin.listing.clock import TOLERANCE, ApiClock
from tap_botpenguin.listing.ending import Listing, PageSizes
from tap_botpenguin.listing.history import ScanHistory
from tap_botpenguin.listing.plan import BotRead, may_read_ahead
from tap_botpenguin.listing.reader import ListingReader
from tap_botpenguin.listing.scan import ScanPlan, ScanRun
from tap_botpenguin.records.sanitize import RecordSanitizer, utc_iso
from tap_botpenguin.report.failures import Failures
from tap_botpenguin.report.logs import AnyLogger
from tap_botpenguin.report.progress import Progress, RunTotals


@dataclass
class Run:
    """One run of the tap: settings, when it started, and what its listings share.

    Main thread, except `tally` and the limiters (used by every sending thread).
    """

    settings: Settings
    #: The current time (tests move it to simulate runs hours apart).
    now: Callable[[], datetime]
    #: The window `requests_per_minute` applies to (tests shorten it).
    rate_window: float
    #: The API's page size, seeded with what earlier runs learned (kept in bot state).
    page_sizes: PageSizes
    deadlines: Deadlines = field(default=WATCHDOG)
    started: datetime = field(init=False)
    tally: Tally = field(init=False, default_factory=Tally)
    totals: RunTotals = field(init=False, default_factory=RunTotals)
    failures: Failures = field(init=False)
    scheduler: Scheduler = field(init=False)
    _limiters: dict[str, RateLimiter] = field(init=False, default_factory=dict)
    _skew_said: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.started = self.now()
        bots = self.settings.bots
        self.failures = Failures([bot.token for bot in bots], lambda: self.tally.count)
        tokens = len({bot.token for bot in bots})
        self.scheduler = Scheduler(self.settings.max_parallel_tokens, tokens, self.failures.heard)

    @property
    def started_at(self) -> str:
        """`started` in the records' timestamp format (they compare as strings)."""
        return utc_iso(self.started)

    def api_clock_seen(self, api_time: datetime | None, logger: AnyLogger) -> None:
        """Say once per run when the API's clock and this machine's disagree (main thread).

        Nothing depends on the tap's clock where the API's is known (`listing.clock`); the
        line tells the person reading the log why times in the state differ from theirs.
        """
        if api_time is None or self._skew_said:
            return
        skew = (api_time - self.now()).total_seconds()
        if abs(skew) <= TOLERANCE.total_seconds():
            return
        self._skew_said = True
        logger.warning(
            "The API's clock (its Date header) is %.0f min %s this machine's: bookmarks and "
            "cutoffs follow the API's clock",
            abs(skew) / 60,
            "behind" if skew < 0 else "ahead of",
        )

    def limiter(self, token: str) -> RateLimiter:
        """The token's rate limiter: one allowance per token, shared by its bots."""
        limiter = self._limiters.get(token)
        if limiter is None:
            limiter = RateLimiter(self.settings.requests_per_minute, self.rate_window)
            self._limiters[token] = limiter
        return limiter

    def plan_read(
        self,
        *,
        stream: str,
        inbox_type: str,
        bot: BotSettings,
        history: ScanHistory,
        plan: ScanPlan,
        sanitizer: RecordSanitizer,
        one_at_a_time: bool,
        logger: AnyLogger,
    ) -> BotRead:
        """How this run reads a bot's listing (main thread; the reader may run elsewhere)."""
        settings = self.settings
        limiter = self.limiter(bot.token)
        endpoint = Endpoint(
            api_url=settings.api_url,
            stream=stream,
            bot_id=bot.bot_id,
            customer_id=bot.customer_id,
            inbox_type=inbox_type,
            headers=bot.headers,
            auth_method=settings.auth_method,
            secrets=settings.secrets,
            timeout=settings.request_timeout,
            max_retries=settings.max_retries,
        )

        def new_client() -> PageClient:
            return PageClient(
                endpoint,
                limiter=limiter,
                deadlines=self.deadlines,
                logger=logger,
                on_answer=self.tally.add,
            )

        where = endpoint.where
        listing = Listing(where, logger, self.page_sizes.copy())
        scan = ScanRun(plan, where, logger, ApiClock(self.now))
        ahead = PagesAhead(
            sender=new_client(),
            windows=lambda count: WindowThreads(count, new_client),
            most=1 if one_at_a_time else settings.pages_in_flight,
            allowed=lambda: may_read_ahead(plan, scan, listing),
            in_order=lambda: scan.in_order,
            answer_time=lambda: limiter.answer_time,
            allowance=limiter.limit / limiter.window,
            expected=history.pages,
            where=where,
            logger=logger,
        )
        reader = ListingReader(listing=listing, scan=scan, ahead=ahead, sanitizer=sanitizer)
        progress = Progress(logger, stream, bot.bot_id, lambda: limiter.recent(60.0))
        return BotRead(bot, history, plan, progress, reader)


def known_page_size(state: Mapping[str, Any], key: str) -> int | None:
    """The largest page size earlier runs kept in any bot's state (`key`: the scan entry)."""
    known = [
        partition[key]["page_size"]
        for stream in (state.get("bookmarks") or {}).values()
        if isinstance(stream, dict)
        for partition in stream.get("partitions") or []
        if isinstance(partition, dict)
        and isinstance(partition.get(key), dict)
        and isinstance(partition[key].get("page_size"), int)
    ]
    return max(known, default=None)
