"""Reading only what changed: the early stop by the listing's own order, and full scans.

BotPenguin has no "updated since" filter and documents no sort order, so the tap finds the
order from what it reads (`listing.order`: newest `updatedAt`, `lastMessage.at` or `createdAt`
first), per bot and stream, and acts only on evidence:

- A read to the end of a listing checks every candidate key; the key it follows goes into the
  bot's state with the newest value of that key seen (what it measured replaces what earlier
  reads measured: a newest value can fall, when its record was deleted).
- While the state names a key and the last full scan is younger than `full_scan_every_hours`,
  a run stops after the first page holding a record older, by that key, than what earlier
  runs covered: for `updatedAt` the bookmark (or `start_date`), for the others the newest value
  earlier runs saw, less `_CUTOFF_SLACK` (a value the API stamps a little late). Both come from
  the API's own timestamps, never the tap's clock, and never from a value ahead of the API's
  own clock (`listing.clock`). Records without the key never stop a run. An inversion of that
  key means: read to the end this time, and follow what that read found.
- Every `full_scan_every_hours` comes a *full scan*: a read to the end that emits every record,
  whatever its timestamps say. What the order brings to the top (every change for
  `updatedAt`, a new message for `lastMessage.at`, a new conversation for `createdAt`) is
  emitted by the next run; everything else by the next full scan: a status-only change listed
  by last message, any update listed by creation, a record that deletions above it shifted
  across a page boundary while a run read the listing, and a conversation that moved to the
  other stream's listing without a new `updatedAt`. Other reads to the end (an order not
  verified, `scan_mode: full`) emit what changed since the bookmark, as early stops do.

All instants are UTC strings in one format (`sanitize.utc_iso`), so they compare as strings.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from tap_botpenguin.listing.clock import TOLERANCE, ApiClock
from tap_botpenguin.listing.history import BOOKMARK_KEY, ScanHistory
from tap_botpenguin.listing.order import OrderEvidence, order_value
from tap_botpenguin.records.sanitize import parse_datetime, utc_iso
from tap_botpenguin.report.logs import AnyLogger

SCAN_MODES = ("auto", "full")


def _later(*values: str | None) -> str | None:
    present = [value for value in values if value is not None]
    return max(present) if present else None


def _age(since: str, now: datetime) -> float | None:
    """Hours from `since` to `now`; None when unreadable or too far ahead of `now`.

    More than `_CLOCK_SLACK` ahead means a clock set back or an edited state: the order then
    counts as unverified, or periodic full scans would stop until that date.
    """
    then = parse_datetime(since)
    if then is None:
        return None
    hours = (now - then).total_seconds() / 3600
    return None if hours < -_CLOCK_SLACK else max(hours, 0.0)


#: Hours a recorded full scan may lie in the future (clock adjustments) and still count.
_CLOCK_SLACK = 0.25
#: How far below the newest `lastMessage.at` / `createdAt` seen a run reads on: a message
#: stored a little after the time it carries still sorts near the top.
_CUTOFF_SLACK = timedelta(minutes=15)


def _cutoff(newest: str) -> str | None:
    moment = parse_datetime(newest)
    return None if moment is None else utc_iso(moment - _CUTOFF_SLACK)


def _pages(count: int) -> str:
    return f"{count:,} page" + ("" if count == 1 else "s")


def _minutes(span: timedelta) -> str:
    return f"{span.total_seconds() / 60:.0f} min"


def _hours(hours: float) -> str:
    return f"{hours * 60:.0f} min" if hours < 1 else f"{hours:,.0f} h"


@dataclass(frozen=True)
class ScanPlan:
    """How to read one listing this run: all of it, or until past what earlier runs covered."""

    #: Read to the end of the listing.
    full: bool
    #: Why, for the person watching: "last one 26 h ago", "listed newest updatedAt first ...".
    why: str
    #: Emit records with `updatedAt` at or after this (None: every record).
    floor: str | None
    #: The key the early stop follows, and its cutoff (None for a read to the end).
    key: str | None = None
    stop_below: str | None = None
    #: A full scan: every record from `start_date` on is emitted; it restarts the schedule.
    everything: bool = False
    #: The bookmark in the state, and `start_date` (a full scan's floor).
    bookmark: str | None = None
    start_date: str | None = None

    def describe(self) -> str:
        """The line announcing the read: "full scan (last one 26 h ago)"."""
        kind = "reading until past the bookmark"
        if self.everything:
            kind = "full scan"
        elif self.full:
            kind = "reading to the end"
        return f"{kind} ({self.why})"

    def full_scan(self, why: str) -> ScanPlan:
        """The listing's full scan instead, for `why`."""
        return ScanPlan(True, why, self.start_date, everything=True, start_date=self.start_date)


def _due(
    history: ScanHistory,
    *,
    every_hours: float,
    bookmark: str | None,
    age: float | None,
    full_table: bool,
) -> str | None:
    """Why this run is a full scan, if it is one (the first reason that holds)."""
    recorded = history.last_full_scan_at
    reasons = (
        (full_table, "full-table replication"),
        (every_hours == 0, "full_scan_every_hours=0"),
        (bookmark is None, "no bookmark yet"),
        (
            age is None and bool(recorded),
            f"the last full scan's time in the state, {recorded!r}, is unreadable or ahead",
        ),
        (age is None, "order not verified yet"),
        (age is not None and age >= every_hours, f"last one {_hours(age or 0.0)} ago"),
    )
    return next((why for due, why in reasons if due), None)


def plan_scan(
    history: ScanHistory,
    *,
    mode: str,
    every_hours: float,
    bookmark: str | None,
    start_date: str | None,
    now: datetime,
    full_table: bool = False,
) -> ScanPlan:
    """Decide the kind of read from the bot's history and the settings."""
    recorded, key = history.last_full_scan_at, history.order_key
    age = _age(recorded, now) if recorded else None
    due = _due(history, every_hours=every_hours, bookmark=bookmark, age=age, full_table=full_table)
    if due is not None:
        return ScanPlan(
            True, due, start_date, everything=True, bookmark=bookmark, start_date=start_date
        )
    assert age is not None  # for the type checker: `_due` says why when there is none
    floor = _later(bookmark, start_date)
    stop_below = floor if key == BOOKMARK_KEY else _cutoff(history.newest_seen or "")
    next_scan = f"next full scan in {_hours(every_hours - age)}"
    to_the_end = None
    if mode == "full":
        to_the_end = "scan_mode=full"
    elif key is None:
        to_the_end = f"order not verified: {history.order_note or 'not newest first'}"
    elif stop_below is None:
        to_the_end = f"no newest {key} recorded yet"
    if to_the_end is not None:
        why = f"{to_the_end}; {next_scan}"
        return ScanPlan(True, why, floor, bookmark=bookmark, start_date=start_date)
    why = f"listed newest {key} first; {next_scan}"
    return ScanPlan(False, why, floor, key, stop_below, bookmark=bookmark, start_date=start_date)


class ScanRun:
    """One read of a listing under a plan: checks the orders and decides when to stop.

    Runs on the listing's reading thread; `clock` is what the API's answers said "now" was.
    """

    def __init__(self, plan: ScanPlan, where: str, logger: AnyLogger, clock: ApiClock) -> None:
        self.plan = plan
        self.where = where
        self.logger = logger
        self.clock = clock
        self.evidence = OrderEvidence()
        #: Page after which the read stopped early, if it did.
        self.stopped_at: int | None = None
        #: The bookmark in the state was ahead of the API's clock: not to be kept.
        self.bookmark_ahead = False
        self._pages = 0
        #: Keys whose values ahead of the API's clock were named already.
        self._named: set[str] = set()

    @property
    def broken_at(self) -> int | None:
        """Page where the plan's key first rose (None: in order, or a read to the end)."""
        key = self.plan.key
        return None if key is None else self.evidence.checks[key].broken_at

    @property
    def wants_more(self) -> bool:
        """Whether the next page should be read."""
        return self.stopped_at is None

    @property
    def in_order(self) -> bool:
        """Whether what was read so far is newest first by a key (pages ahead need that)."""
        if self.plan.key is not None:
            return self.broken_at is None
        return self.evidence.in_some_order()

    def page_read(
        self,
        number: int,
        records: list[dict[str, Any]],
        shifted: set[Any],
        api_time: datetime | None,
    ) -> None:
        """Check the orders of a page; stop after it when it passed the cutoff in order.

        `shifted`: ids the previous page held with the same `updatedAt` (the list moved
        down while it was read); they are neither evidence for nor against the order.
        `api_time`: when the API read the page, by its own clock (None: it did not say).
        """
        self.clock.page_read(api_time)
        self._pages += 1
        if self._pages == 1:
            self._check_the_state()
        was_broken = self.broken_at is not None
        ahead = self.evidence.page(number, records, shifted, self.clock.limit)
        for field, record in ahead.items():
            self._ahead(field, record, number)
        key, cutoff = self.plan.key, self.plan.stop_below
        if key is None or cutoff is None:
            return
        if self.broken_at is not None:
            if not was_broken:
                self.logger.info(
                    "%s: order broken at page %d (%s rose): reading to the end",
                    self.where,
                    number,
                    key,
                )
            return
        lowest = self.evidence.checks[key].page_lowest
        if lowest is not None and lowest < cutoff:
            self.stopped_at = number

    def _check_the_state(self) -> None:
        """The state's bookmark and newest value, against the API's clock: a full scan if ahead.

        Such a value was not written by a clock that agrees with the API's (an edited state, a
        clock gone wrong): an early stop or a floor resting on it would emit nothing again.
        """
        plan, clock = self.plan, self.clock
        ahead = []
        if clock.ahead(plan.bookmark):
            self.bookmark_ahead = True
            ahead.append(f"the bookmark {plan.bookmark}")
        if plan.key not in (None, BOOKMARK_KEY) and clock.ahead(plan.stop_below):
            ahead.append(f"the newest {plan.key}")
        if not ahead:
            return
        what = " and ".join(ahead)
        self.logger.warning(
            "%s: %s in the state %s ahead of the API's clock (%s, with %s of tolerance): not "
            "written by a clock that agrees with the API's, so %s",
            self.where,
            what,
            "are" if len(ahead) > 1 else "is",
            clock.now,
            _minutes(TOLERANCE),
            "this read is a full scan" if not plan.everything else "the full scan replaces it",
        )
        if not plan.everything:
            self.plan = plan.full_scan(f"{what} in the state was ahead of the API's clock")

    def _ahead(self, key: str, record: dict[str, Any], number: int) -> None:
        """A record whose `key` is ahead of the API's clock: said once per key and read."""
        if key in self._named:
            return
        self._named.add(key)
        self.logger.warning(
            "%s: record %s on page %d has %s %s, ahead of the API's clock (%s, with %s of "
            "tolerance): it is emitted as sent, but does not move the early stop's cutoff",
            self.where,
            record.get("_id"),
            number,
            key,
            order_value(record, key),
            self.clock.now,
            _minutes(TOLERANCE),
        )

    def finish(
        self, history: ScanHistory, *, started_at: str, pages: int, page_size: int | None
    ) -> ScanHistory:
        """The history to keep once the listing was read to its end or to the early stop.

        An early stop saw the top of the listing: the newest value it saw joins what earlier
        runs saw. A read to the end saw all of it: what it measured replaces the rest.
        """
        page_size = page_size or history.page_size
        self._say_how_many_were_ahead()
        if self.stopped_at is not None:  # in order up to the stop: the key stands
            key = self.plan.key
            assert key is not None  # only a plan with a key stops early
            earlier = history.newest_seen if history.order_key == key else None
            newest = _later(earlier, self._measured(key))
            return replace(history, newest_seen=newest, page_size=page_size)
        # Read to the end: the whole listing says which order it follows now.
        key = self.evidence.followed()
        note = None
        if key is None:
            kind = "full scan" if self.plan.everything else "run"
            note = f"{self.evidence.broken()} in the {kind} of {started_at}"
        updated = replace(
            history,
            order_key=key,
            newest_seen=None if key is None else self._measured(key),
            order_note=note,
            pages=pages,
            page_size=page_size,
        )
        if self.plan.everything:
            return replace(updated, last_full_scan_at=started_at)
        return updated

    def _measured(self, key: str) -> str | None:
        """The newest value of `key` this read saw (None for the bookmark's key)."""
        return None if key == BOOKMARK_KEY else self.evidence.checks[key].newest

    def _say_how_many_were_ahead(self) -> None:
        for check in self.evidence.checks.values():
            if check.ahead > 1:
                self.logger.warning(
                    "%s: %d records in all had %s ahead of the API's clock",
                    self.where,
                    check.ahead,
                    check.key,
                )

    def outcome(self, history: ScanHistory, pages: int) -> str:
        """What kind of read it turned out to be, for the closing line."""
        if self.plan.full:
            return f"{self.plan.describe()}: {_pages(pages)}"
        if self.stopped_at is not None:
            read = _pages(self.stopped_at)
            if history.pages:
                read = f"{self.stopped_at:,} of about {_pages(history.pages)}"
            return f"stopped after {read} ({self.plan.why})"
        if self.broken_at is not None:
            found = self.evidence.followed()
            now = f"newest {found} first" if found else "in no order the tap knows"
            return (
                f"order broken at page {self.broken_at}: read to the end, {_pages(pages)}; "
                f"the listing is {now}"
            )
        return f"read to the end before passing the bookmark: {_pages(pages)}"
