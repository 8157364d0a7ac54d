"""The base stream: one listing of `GET /inbox/direct/chats`, read for each configured bot.

A Singer SDK `Stream`, not a `RESTStream`: every request is the tap's own `ListingReader`'s
(session, throttle, retries, decoding, pages ahead), on the main thread and on the workers
alike, so one page pipeline serves both. The stream plans each bot's read, takes its pages
(from the reader, or from the buffer a worker filled), learns undocumented fields, emits the
records from the plan's floor on, and keeps the state. All on the main thread.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk import metrics
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.singerlib.catalog import REPLICATION_FULL_TABLE

from tap_botpenguin.concurrency.workers import Job
from tap_botpenguin.http.responses import LISTING_PATH
from tap_botpenguin.listing.clock import to_second
from tap_botpenguin.listing.history import ScanHistory
from tap_botpenguin.listing.plan import BotRead
from tap_botpenguin.listing.reader import AcceptedPage
from tap_botpenguin.listing.scan import plan_scan
from tap_botpenguin.records.naming import snake_case_record
from tap_botpenguin.records.sanitize import INVALID_FIELDS, parse_datetime, utc_iso
from tap_botpenguin.report.errors import BotPenguinError, ListingError
from tap_botpenguin.report.logs import quiet_routine_lines
from tap_botpenguin.run.context import Run
from tap_botpenguin.streams.mirror import MirroringStream
from tap_botpenguin.streams.schema import CHAT_SCHEMA
from tap_botpenguin.streams.sdk import ROUTINE_TO_DEBUG, keep_bookmark

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

if TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context


class BotPenguinStream(MirroringStream):
    """One `type` of the chats listing, read page by page for each configured bot."""

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

    def __init__(
        self,
        tap: Tap,
        run: Run,
        *,
        plan_all: Callable[[], list[Job]],
        on_synced: Callable[[BotPenguinStream], None],
    ) -> None:
        """`plan_all` plans every selected listing of the run (the workers' schedule)."""
        self.run = run
        self.settings = run.settings
        self._plan_all = plan_all
        super().__init__(tap)
        self.on_synced = lambda: on_synced(self)
        quiet_routine_lines(ROUTINE_TO_DEBUG, self.logger)
        # The SDK copies partition keys into records, so they follow the naming too.
        self._bot_key = self.field_name("botId")
        self.replication_key = self.field_name("updatedAt")
        #: The bot listing being emitted (main thread).
        self._read: BotRead | None = None

    @override
    @property
    def partitions(self) -> list[dict[str, Any]]:
        # State is kept per bot; tokens and customer ids are looked up, never stored in state.
        return [{self._bot_key: bot.bot_id} for bot in self.settings.bots]

    @override
    def get_replication_key_signpost(self, context: Context | None = None) -> str:
        # The run's start, in the records' own format (bookmarks compare as strings).
        return self.run.started_at

    def _bookmark(self, partition: dict[str, Any]) -> str | None:
        """The partition's bookmark, to the second: records stamped to the second compare."""
        if partition.get("replication_key") != self.replication_key:
            return None  # a renamed key (snake_case_fields switched) starts over
        moment = parse_datetime(partition.get("replication_key_value"))
        return utc_iso(to_second(moment)) if moment else None

    def plan_read(self, context: Context, partition: dict[str, Any]) -> BotRead:
        """How this run reads a bot's listing, from its partition's state (main thread)."""
        bot = self.settings.bot(context[self._bot_key])
        history = ScanHistory.load(partition)
        full_table = self.replication_method == REPLICATION_FULL_TABLE
        plan = plan_scan(
            history,
            mode=self.settings.scan_mode,
            every_hours=self.settings.full_scan_every_hours,
            bookmark=self._bookmark(partition),
            start_date=self.settings.start_date,
            now=self.run.now(),
            full_table=full_table,
        )
        self.logger.info("%s bot %s: %s", self.name, bot.bot_id, plan.describe())
        # Not for `--test` (one record per stream), nor for a mirror: a deletion while a window
        # is served can skip a record at several page boundaries, and ACTIVATE_VERSION would
        # then delete it from the table (docs/concurrency.md).
        one_at_a_time = self.ABORT_AT_RECORD_COUNT is not None or (self.mirrors and full_table)
        return self.run.plan_read(
            stream=self.name,
            inbox_type=self.inbox_type,
            bot=bot,
            history=history,
            plan=plan,
            sanitizer=self.undocumented.sanitizer,
            one_at_a_time=one_at_a_time,
            logger=self.logger,
        )

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Read one bot's listing as its scan plan says; keep records from the plan's floor."""
        assert context is not None, "streams are always partitioned by bot"
        try:
            partition = self.get_context_state(context)
            job, read = self._open(context, partition)
            failed = False
            try:
                yield from self._emit(read, job)
            except ListingError as error:
                heard = None if job is None else job.buffer.heard
                bot = read.bot
                self.run.failures.set_aside(
                    self.name, bot.bot_id, bot.token, error, self.logger, heard
                )
                failed = True
            self._close(context, partition, read, failed=failed)
        except BaseException:
            self.run.scheduler.stop()  # the run stops here: so do the workers
            raise

    def _open(self, context: Context, partition: dict[str, Any]) -> tuple[Job | None, BotRead]:
        """The listing's read: scheduled on a worker, or planned now to be read here."""
        full_table = self.replication_method == REPLICATION_FULL_TABLE
        if full_table and self.mirrors and self.table_version is None:
            # The run's start (ms): one version for all bots; each run's rows replace the last's.
            self.table_version = int(self.run.started.timestamp() * 1000)
        job = self.run.scheduler.job(
            self._job_key(context),
            self._plan_all,
            dry_run=self.ABORT_AT_RECORD_COUNT is not None,
        )
        read = job.read if job is not None else self.plan_read(context, partition)
        self._read = read
        return job, read

    def _job_key(self, context: Context) -> tuple[str, str]:
        return (self.name, context[self._bot_key])

    def plan_jobs(self) -> list[Job]:
        """The listings of this stream for the workers, planned from the state as stored.

        The state is read, never created: STATE must not change before the SDK gets to it.
        """
        bookmarks = self.tap_state.get("bookmarks")
        new = isinstance(bookmarks, dict) and self.name not in bookmarks
        jobs = []
        for context in self.partitions:
            read = self.plan_read(context, self._stored(context))
            jobs.append(Job(self._job_key(context), read))
        if new and isinstance(bookmarks, dict) and bookmarks.get(self.name) == {}:
            # Planning read the stream's state (`undocumented`), which made it empty: STATE
            # stays as the SDK would write it until the stream's turn comes.
            del bookmarks[self.name]
        return jobs

    def _stored(self, context: Context) -> dict[str, Any]:
        """The partition's state as stored, without creating it (`{}` when there is none)."""
        bookmarks = self.tap_state.get("bookmarks") or {}
        for partition in (bookmarks.get(self.name) or {}).get("partitions") or []:
            if isinstance(partition, dict) and partition.get("context") == context:
                return partition
        return {}

    def _pages(self, read: BotRead, job: Job | None) -> Iterator[AcceptedPage]:
        return job.buffer.pages() if job is not None else read.reader.pages()

    def _emit(self, read: BotRead, job: Job | None) -> Iterator[dict[str, Any]]:
        """The listing's records from the plan's floor on, page by page (main thread)."""
        progress = read.progress
        # RECORD messages are counted as written (`record_written`); batch files hold records
        # as they leave here.
        batching = self.get_batch_config(self.config) is not None
        counter = metrics.http_request_counter(self.name, endpoint=LISTING_PATH)
        with counter:
            counter.with_context({self._bot_key: read.bot.bot_id})
            try:
                for page in self._pages(read, job):
                    self._took(read, page)
                    counter.increment()
                    floor = page.floor
                    for record in page.records:
                        updated = record.get("updatedAt")
                        # Records without a readable `updatedAt` cannot be filtered: kept.
                        if floor is not None and isinstance(updated, str) and updated < floor:
                            continue
                        if batching:
                            progress.records_emitted += 1
                        yield record
            finally:
                # What the requests no page carried cost (the one past the end, say).
                leftover = read.reader.leftover_traffic() if job is None else job.buffer.leftover
                progress.traffic(leftover.requests, leftover.waits)
                self._log_durations(read, leftover.answers)

    def _took(self, read: BotRead, page: AcceptedPage) -> None:
        """Main-thread bookkeeping of a page before its records are emitted."""
        run = self.run
        run.failures.read_a_page = True
        run.api_clock_seen(page.api_time, self.logger)
        if page.page_size is not None:
            run.page_sizes.learn(page.page_size)
        read.progress.traffic(page.requests, page.waits)
        self._log_durations(read, page.answers)
        repaired = self.learn_from_page(page.records, page.repaired, read.reader.sanitizer)
        if repaired:
            self.logger.warning(
                "%s page %d: %d record(s) did not match the documented types and were "
                "repaired (values that could not be converted are kept in `%s`)",
                f"{self.name} (bot {read.bot.bot_id})",
                page.number,
                repaired,
                INVALID_FIELDS,
            )
        read.progress.page_read(len(page.records))

    def _log_durations(self, read: BotRead, answers: list[tuple[int, float]]) -> None:
        """One METRIC line per answered attempt, as the SDK's REST streams log them."""
        for status, seconds in answers:
            metrics.log(
                self.metrics_logger,
                metrics.Point(
                    "timer",
                    metric=metrics.Metric.HTTP_REQUEST_DURATION,
                    value=seconds,
                    tags={
                        metrics.Tag.STREAM: self.name,
                        metrics.Tag.ENDPOINT: LISTING_PATH,
                        metrics.Tag.HTTP_STATUS_CODE: status,
                        metrics.Tag.STATUS: (
                            metrics.Status.SUCCEEDED if status < 400 else metrics.Status.FAILED
                        ),
                        metrics.Tag.CONTEXT: {self._bot_key: read.bot.bot_id},
                    },
                ),
            )

    def _close(
        self, context: Context, partition: dict[str, Any], read: BotRead, *, failed: bool
    ) -> None:
        """The listing's state, closing line and totals, once its records were emitted."""
        self.write_batches()  # with `batch_config`: the bot's records are sent before its state
        listing, scan, progress = read.listing, read.scan, read.progress
        if listing.deferred is not None:
            self.run.page_sizes.defer(listing.where, listing.deferred)
        if failed or listing.unconfirmed:
            keep_bookmark(partition)
        else:
            # The SDK caps the new bookmark at the signpost: when the API read the listing's
            # first page, by the API's clock (`listing.clock`), else the run's start.
            signpost = read.scan.clock.read_started or self.run.started_at
            self.state_manager.write_replication_key_signpost(signpost, context=context)
            if scan.bookmark_ahead:  # the next one comes from this full scan's records
                partition.pop("replication_key_value", None)
            scan.finish(
                read.history,
                started_at=self.run.started_at,
                pages=listing.pages,
                page_size=self.run.page_sizes.size,
            ).save(partition)
        progress.overlaps = listing.overlaps
        progress.finish("set aside" if failed else scan.outcome(read.history, listing.pages))
        self.run.totals.add(progress, set_aside=failed)
        self._complete = self._complete and not (failed or listing.maybe_truncated)
        self._read = None
        if self.table_version is not None and context == self.partitions[-1]:
            self.activate_version()

    @override
    def record_written(self) -> None:
        # What the lines call emitted: after the stream maps (a `__filter__`, an alias).
        if self._read is not None:
            self._read.progress.records_emitted += 1

    @override
    def post_process(self, row: dict[str, Any], context: Context | None = None) -> dict[str, Any]:
        if self.undocumented.pending:  # a page brought new fields: SCHEMA before this record
            self.declare_undocumented()
        read = self._read
        assert read is not None, "records are emitted per bot partition"
        record_id = row.get("_id")  # the sanitizer already turned numeric ids into strings
        if not isinstance(record_id, str) or not record_id:
            msg = (
                f"{self.name} (bot {read.bot.bot_id}): a record has no usable `_id` "
                f"({record_id!r}), so it cannot be loaded or deduplicated; stopping rather "
                "than dropping it."
            )
            raise BotPenguinError(msg)
        row["botId"] = read.bot.bot_id
        row["customerId"] = read.bot.customer_id
        row.setdefault("updatedAt", None)  # the SDK's bookmark code indexes it
        if self.settings.snake_case_fields:
            return snake_case_record(row)  # type: ignore[no-any-return]
        return row
