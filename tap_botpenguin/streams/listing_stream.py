"""The base stream: one listing of `GET /inbox/direct/chats`, read for each configured bot.

It reads as request (URL, auth, page numbers), response (decoded by `responses`, paged by
`listing`, its order followed by `scan`) and records (kept from the scan's floor on, repaired
by `sanitize`). Retries and waits follow `retries`; every attempt passes the token's throttle.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

import requests
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.pagination import PageNumberPaginator
from singer_sdk.singerlib.catalog import REPLICATION_FULL_TABLE

from tap_botpenguin.http.responses import LISTING_PATH, Page, ResponseReader, page_number
from tap_botpenguin.http.retries import RetryingStream
from tap_botpenguin.http.session import USER_AGENT, ApiSession, api_session
from tap_botpenguin.http.throttle import RateLimiter
from tap_botpenguin.listing.ahead import DEFAULT_PAGES_IN_FLIGHT, Answer, PagesAhead
from tap_botpenguin.listing.ending import Listing, ListingPaginator
from tap_botpenguin.listing.plan import BotRead
from tap_botpenguin.listing.scan import ScanHistory, ScanRun, keep_bookmark, plan_scan
from tap_botpenguin.records.naming import snake_case, snake_case_record
from tap_botpenguin.records.sanitize import (
    INVALID_FIELDS,
    normalize_timestamps,
    parse_datetime,
    utc_iso,
)
from tap_botpenguin.report.errors import BotPenguinError, ListingError
from tap_botpenguin.report.logs import quiet_routine_lines
from tap_botpenguin.report.progress import Progress
from tap_botpenguin.streams.mirror import MirroringStream
from tap_botpenguin.streams.schema import CHAT_SCHEMA
from tap_botpenguin.streams.sdk import ROUTINE_TO_DEBUG, EvolvingStream

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Auth, Context, RequestFunc

    from tap_botpenguin.tap import TapBotPenguin


class BotPenguinStream(RetryingStream, EvolvingStream, MirroringStream):
    """One `type` of the chats listing, read page by page for each configured bot."""

    path = LISTING_PATH
    primary_keys: ClassVar[list[str]] = ["_id"]
    replication_key = "updatedAt"
    # The API documents no sort order: the SDK then only commits a bookmark when a bot's
    # listing was read (to its end, or to the scan's early stop), capped at the signpost.
    is_sorted = False
    schema = CHAT_SCHEMA
    # Records are decoded from JSON, so they already hold JSON types; the SDK's recursive
    # conformance pass cost ~45% of a sync's CPU (cProfile, 51k records) for nothing.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    #: The API's `type` query value for this stream.
    inbox_type: ClassVar[str]

    _tap: TapBotPenguin

    def __init__(self, tap: TapBotPenguin) -> None:
        super().__init__(tap)
        quiet_routine_lines(ROUTINE_TO_DEBUG, self.logger)
        self._snake_case = bool(self.config.get("snake_case_fields"))
        # The SDK copies partition keys into records, so they follow the naming too.
        self._bot_key = snake_case("botId") if self._snake_case else "botId"
        if self._snake_case:
            self.replication_key = snake_case(self.replication_key)
        self._reader = ResponseReader(
            self.logger, self.where, tap.secrets, str(self.config["auth_method"])
        )
        # The listing being read, its last answer and session are the calling thread's:
        # workers read listings of other tokens at the same time (see `concurrency`).
        self._local = threading.local()

    @property
    def read(self) -> BotRead:
        """The bot listing this thread reads (set per partition in `get_records`)."""
        read: BotRead | None = getattr(self._local, "read", None)
        if read is None:
            msg = "no bot selected: records are read per bot partition"
            raise RuntimeError(msg)
        return read

    @override
    @property
    def requests_session(self) -> requests.Session:
        """Only to api_url's host, each request within request_timeout (see `transport`)."""
        session: ApiSession | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = api_session(self.url_base, self._tap.secrets)
        return session

    @override
    def where(self) -> str:
        return f"{self.name} (bot {self.read.bot.bot_id})"

    # --- request ---------------------------------------------------------------------
    @override
    @property
    def url_base(self) -> str:
        return str(self.config["api_url"]).rstrip("/")

    @override
    @property
    def http_headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json"}

    @override
    @cached_property
    def user_agent(self) -> str:
        return USER_AGENT

    @override
    @property
    def timeout(self) -> float:  # type: ignore[override]
        return float(self.config["request_timeout"])

    @override
    @property
    def authenticator(self) -> Auth:
        return self.read.bot.authenticator

    @override
    @property
    def partitions(self) -> list[dict[str, Any]]:
        # State is kept per bot; tokens and customer ids are looked up, never stored in state.
        return [{self._bot_key: bot.bot_id} for bot in self._tap.bots]

    @override
    def get_new_paginator(self) -> ListingPaginator:
        read = self.read
        return ListingPaginator(lambda: not read.listing.ended and read.scan.wants_more)

    @override
    def get_url_params(
        self, context: Context | None, next_page_token: int | None
    ) -> dict[str, Any]:
        bot = self.read.bot
        return {
            "botId": bot.bot_id,
            "customerId": bot.customer_id,
            "page": next_page_token or 1,
            "type": self.inbox_type,
        }

    @override
    def request_decorator(self, func: RequestFunc) -> RequestFunc:
        """Pages in order, read ahead when that pays (`readahead`)."""
        run, read = super().request_decorator(func), self.read

        def in_page_order(
            prepared: requests.PreparedRequest, context: Context | None
        ) -> requests.Response:
            number = page_number(prepared.url)

            def send(page: int) -> Answer:  # on a worker thread of `readahead` too
                self._local.read = read
                request = prepared if page == number else self._page_request(context, page)
                response = run(request, context)
                return Answer(response, self._local.decoded[1])

            answer = read.ahead.get(number, send)
            self._local.decoded = answer
            return answer.response

        return in_page_order

    def _page_request(self, context: Context | None, page: int) -> requests.PreparedRequest:
        return self._prepare_request(context=context, page=PageNumberPaginator(page))

    # --- response --------------------------------------------------------------------
    @override
    def validate_response(self, response: requests.Response) -> None:
        """Classify and decode the body, once; `parse_response` reuses the result."""
        self._tap.failures.answered()
        self._local.decoded = (response, self._reader.read(response))

    @override
    def response_error_message(self, response: requests.Response) -> str:
        """One line with path, page, status and the API's message; never headers or tokens."""
        return self._reader.describe(response)

    @override
    def parse_response(self, response: requests.Response) -> Iterable[dict[str, Any]]:
        decoded: tuple[requests.Response, Page] | None = getattr(self._local, "decoded", None)
        if decoded is not None and decoded[0] is response:
            page = decoded[1]
        else:  # not reached through `_request`; decode here
            page = self._reader.read(response)
        self._local.decoded = None
        self._tap.failures.read_a_page = True
        self._undocumented.inspect_page(page.records)
        sanitizer = self._undocumented.sanitizer
        repaired = sanitizer.sanitize_page(page.records, scrub_strings=page.scrub_strings)
        if repaired:
            self.logger.warning(
                "%s page %d: %d record(s) did not match the documented types and were "
                "repaired (values that could not be converted are kept in `%s`)",
                self.where(),
                page.number,
                repaired,
                INVALID_FIELDS,
            )
        # One format for the replication key: bookmarks and the order check compare strings.
        normalize_timestamps(page.records, "updatedAt")
        read = self.read
        records, shifted = read.listing.accept(page)
        if records:
            read.scan.page_read(page.number, records, shifted)
            read.progress.page_read(len(records))
            if read.sink is not None:
                read.sink(records)
        return records

    # --- what the retry and wait policy throttles and reports on (see `retries`) -------
    @override
    @property
    def limiter(self) -> RateLimiter:
        return self.read.bot.limiter

    @override
    @property
    def progress(self) -> Progress:
        return self.read.progress

    @override
    @property
    def secrets(self) -> Sequence[str]:
        return self._tap.secrets

    # --- records ---------------------------------------------------------------------
    @override
    def get_replication_key_signpost(self, context: Context | None = None) -> str:
        # The run's start, in the records' own format (bookmarks compare as strings).
        return self._tap.started_at

    def _bookmark(self, partition: dict[str, Any]) -> str | None:
        if partition.get("replication_key") != self.replication_key:
            return None  # a renamed key (snake_case_fields switched) starts over
        moment = parse_datetime(partition.get("replication_key_value"))
        return utc_iso(moment) if moment else None

    @override
    def log_sync_costs(self) -> None:
        super().log_sync_costs()
        self._tap.stream_closed(self)  # the end of the run: fails if listings were set aside

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Read one bot's listing as its scan plan says; keep records from the plan's floor."""
        try:
            yield from self._partition_records(context)
        except BaseException:
            self._tap.scheduler.stop()  # the run stops here: so do the workers
            raise

    def plan_read(self, context: Context, partition: dict[str, Any]) -> BotRead:
        """How this run reads a bot's listing, from its partition's state (main thread)."""
        _ = self._undocumented  # made from the stream's state here, not on a worker
        bot = self._tap.bot_settings(context[self._bot_key])
        history = ScanHistory.load(partition)
        plan = plan_scan(
            history,
            mode=str(self.config["scan_mode"]),
            every_hours=float(self.config["full_scan_every_hours"]),
            bookmark=self._bookmark(partition),
            start_date=self._tap.start_date,
            now=self._tap.now(),
            full_table=self.replication_method == REPLICATION_FULL_TABLE,
        )
        where = f"{self.name} (bot {bot.bot_id})"
        progress = Progress(self.logger, self.name, bot.bot_id, bot.limiter)
        listing = Listing(where, self.logger, self._tap.page_sizes)
        scan = ScanRun(plan, where, self.logger)
        self.logger.info("%s bot %s: %s", self.name, bot.bot_id, plan.describe())
        read = BotRead(bot, listing, scan, progress, history, plan)
        # Not for `--test` (one record per stream), nor for a mirror: a deletion while a window
        # is served can skip a record at several page boundaries, and ACTIVATE_VERSION would
        # then delete it from the table (docs/concurrency.md).
        mirror = self._mirrors and self.replication_method == REPLICATION_FULL_TABLE
        one_at_a_time = self.ABORT_AT_RECORD_COUNT is not None or mirror
        read.ahead = PagesAhead(
            most=1
            if one_at_a_time
            else int(self.config.get("pages_in_flight", DEFAULT_PAGES_IN_FLIGHT)),
            allowed=read.may_read_ahead,
            in_order=read.in_order,
            answer_time=lambda: bot.limiter.answer_time,
            allowance=bot.limiter.limit / bot.limiter.window,
            expected=history.pages,
            where=where,
            logger=self.logger,
        )
        return read

    def read_listing(
        self, read: BotRead, context: Context, sink: Callable[[list[dict[str, Any]]], None]
    ) -> None:
        """Read a listing on this thread (a worker's), handing each page's records to `sink`."""
        read.sink = sink
        self._local.read = read
        try:
            for _ in self.request_records(context):
                pass
        finally:
            read.ahead.close()

    def _partition_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        assert context is not None, "streams are always partitioned by bot"
        partition = self.get_context_state(context)
        # The SDK writes the signpost for the stream, not per partition: without it a
        # partition's bookmark could jump past records changed during the run.
        started_at = self._tap.started_at
        self.state_manager.write_replication_key_signpost(started_at, context=context)
        full_table = self.replication_method == REPLICATION_FULL_TABLE
        if full_table and self._mirrors and self._stream_version is None:
            # The run's start (ms): one version for all bots; each run's rows replace the last's.
            self._stream_version = int(self._tap.started.timestamp() * 1000)
        job = self._tap.scheduler.job(self, context)  # read ahead by a worker, or here
        read: BotRead = job.read if job is not None else self.plan_read(context, partition)
        self._local.read = read
        bot, listing, scan, progress = read.bot, read.listing, read.scan, read.progress
        records = (
            (record for page in job.buffer.pages() for record in page)
            if job is not None
            else super().get_records(context)
        )
        failed, floor = False, read.plan.floor
        try:
            for record in records:
                updated = record.get("updatedAt")
                # Records without a readable `updatedAt` cannot be filtered safely: kept.
                if floor is not None and isinstance(updated, str) and updated < floor:
                    continue
                progress.records_emitted += 1
                yield record
        except ListingError as error:
            heard = None if job is None else job.buffer.heard
            self._tap.failures.set_aside(
                self.name, bot.bot_id, bot.token, error, self.logger, heard
            )
            failed = True
        finally:
            if job is None:  # a worker's listing is closed by the worker (`read_listing`)
                read.ahead.close()
        if failed or listing.unconfirmed:
            keep_bookmark(partition)
        else:
            scan.finish(
                read.history,
                started_at=started_at,
                pages=listing.pages,
                page_size=self._tap.page_sizes.size,
            ).save(partition)
        progress.overlaps = listing.overlaps
        progress.finish("set aside" if failed else scan.outcome(read.history, listing.pages))
        self._tap.totals.add(progress, set_aside=failed)
        self._complete = self._complete and not (failed or listing.maybe_truncated)
        if self._stream_version is not None and context == self.partitions[-1]:
            self._activate_version()

    @override
    def post_process(self, row: dict[str, Any], context: Context | None = None) -> dict[str, Any]:
        if self._undocumented.pending:  # a page brought new fields: SCHEMA before this record
            self._declare_undocumented()
        record_id = row.get("_id")  # the sanitizer already turned numeric ids into strings
        if not isinstance(record_id, str) or not record_id:
            msg = (
                f"{self.where()}: a record has no usable `_id` ({record_id!r}), so it cannot be "
                "loaded or deduplicated; stopping rather than dropping it."
            )
            raise BotPenguinError(msg)
        bot = self.read.bot
        row["botId"] = bot.bot_id
        row["customerId"] = bot.customer_id
        row.setdefault("updatedAt", None)  # the SDK's bookmark code indexes it
        if self._snake_case:
            return snake_case_record(row)  # type: ignore[no-any-return]
        return row
