"""Reading only what changed: the order check, the early stop and full-scan bookkeeping.

BotPenguin has no "updated since" filter and documents no sort order. Chat inboxes are
usually listed newest first, so the tap finds out, per bot and stream, from what it reads,
and acts only on evidence:

- A *full scan* reads a listing to its end and checks that `updatedAt` never rises from one
  record to the next (equal values allowed; a record the previous page held with the same
  `updatedAt` is the list shifting down under the reader, not an inversion). The verdict and
  the scan's start time go into the bot's state.
- While the last full scan found that order and is younger than `full_scan_every_hours`, a
  run stops after the first page holding a record older than the bookmark: in that order,
  every later record is older still. It checks the order of what it reads; an inversion
  means: read to the end this time, and full scans until one confirms the order again.
- A full scan emits every record updated since the start of the full scan *before* the
  previous one (never less than since the bookmark). A change that a run could not see is
  therefore emitted by the next full scan at the latest: one an early-stopped run never
  reached (an API ordered by the last message, where a status-only change stays deep in the
  list), or one that deletions above it shifted across a page boundary while a run was
  reading. Going back two full scans, not one, covers a record the previous full scan itself
  skipped that way: it changed after the one before started.

All instants are UTC strings in one format (`sanitize.utc_iso`), so they compare as strings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime
from typing import Any

from tap_botpenguin.records.sanitize import parse_datetime
from tap_botpenguin.report.logs import AnyLogger

#: The key of a bot partition's state that holds its `ScanHistory`.
SCAN_STATE_KEY = "scan"
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


def _pages(count: int) -> str:
    return f"{count:,} page" + ("" if count == 1 else "s")


def _hours(hours: float) -> str:
    return f"{hours * 60:.0f} min" if hours < 1 else f"{hours:,.0f} h"


@dataclass(frozen=True)
class ScanHistory:
    """What a bot's state remembers of one listing between runs (ids and times, no token)."""

    #: Start of the latest complete full scan, and of the one before it.
    last_full_scan_at: str | None = None
    previous_full_scan_at: str | None = None
    #: The latest full scan found the listing newest first, and no run since contradicted it.
    newest_first: bool = False
    #: Where the order broke, for the person reading the log.
    order_note: str | None = None
    #: Pages of the latest full scan; the API's page size as far as it is known.
    pages: int | None = None
    page_size: int | None = None

    @classmethod
    def load(cls, partition: dict[str, Any]) -> ScanHistory:
        """The history in a partition's state; values of the wrong type are ignored."""
        raw = partition.get(SCAN_STATE_KEY)
        if not isinstance(raw, dict):
            return cls()
        values = {
            item.name: raw[item.name]
            for item in fields(cls)
            if type(raw.get(item.name)) is _FIELD_TYPES[item.name]
        }
        return cls(**values)

    def save(self, partition: dict[str, Any]) -> None:
        """Write this history into a partition's state."""
        partition[SCAN_STATE_KEY] = {k: v for k, v in asdict(self).items() if v is not None}


_FIELD_TYPES = {
    "last_full_scan_at": str,
    "previous_full_scan_at": str,
    "newest_first": bool,
    "order_note": str,
    "pages": int,
    "page_size": int,
}


@dataclass(frozen=True)
class ScanPlan:
    """How to read one listing this run: all of it, or until past the bookmark."""

    full: bool
    #: Why, for the person watching: "last one 26 h ago", "order verified 3 h ago".
    why: str
    #: Emit records with `updatedAt` at or after this (None: every record).
    floor: str | None

    def describe(self) -> str:
        """The line announcing the read: "full scan (last one 26 h ago)"."""
        kind = "full scan" if self.full else "reading until past the bookmark"
        return f"{kind} ({self.why})"


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
    recorded = history.last_full_scan_at
    age = _age(recorded, now) if recorded else None
    why = None
    if full_table:
        why = "full-table replication"
    elif mode == "full":
        why = "scan_mode=full"
    elif every_hours == 0:
        why = "full_scan_every_hours=0"
    elif bookmark is None:
        why = "no bookmark yet"
    elif age is None and recorded:
        why = f"the last full scan's time in the state, {recorded!r}, is unreadable or ahead"
    elif age is None:
        why = "order not verified yet"
    elif not history.newest_first:
        why = f"order not verified: {history.order_note or 'not newest first'}"
    elif age >= every_hours:
        why = f"last one {_hours(age)} ago"
    if why is None:
        assert age is not None  # for the type checker: no full scan means `why` is set
        return ScanPlan(False, f"order verified {_hours(age)} ago", _later(bookmark, start_date))
    floor = start_date
    if bookmark is not None and history.previous_full_scan_at is not None:
        floor = _later(start_date, min(bookmark, history.previous_full_scan_at))
    return ScanPlan(True, why, floor)


class ScanRun:
    """One read of a listing under a plan: follows the order and decides when to stop."""

    def __init__(self, plan: ScanPlan, where: str, logger: AnyLogger) -> None:
        self.plan = plan
        self.where = where
        self.logger = logger
        #: Page where `updatedAt` first rose, if it did.
        self.broken_at: int | None = None
        #: Page after which the read stopped early, if it did.
        self.stopped_at: int | None = None
        self._lowest: str | None = None

    @property
    def wants_more(self) -> bool:
        """Whether the next page should be read."""
        return self.stopped_at is None

    def page_read(self, number: int, records: list[dict[str, Any]], shifted: set[Any]) -> None:
        """Check the order of a page; stop after it when it passed the bookmark in order.

        `shifted`: ids the previous page held with the same `updatedAt` (the list moved
        down while it was read); they are neither evidence for nor against the order.
        """
        floor = self.plan.floor
        passed = False
        for record in records:
            updated = record.get("updatedAt")
            if not isinstance(updated, str) or record.get("_id") in shifted:
                continue  # records without a timestamp say nothing about the order
            if self._lowest is not None and updated > self._lowest:
                if self.broken_at is None:
                    self.broken_at = number
                    if not self.plan.full:
                        self.logger.info(
                            "%s: order broken at page %d: reading to the end", self.where, number
                        )
            else:
                self._lowest = updated
            passed = passed or (floor is not None and updated < floor)
        if passed and not self.plan.full and self.broken_at is None:
            self.stopped_at = number

    def finish(
        self, history: ScanHistory, *, started_at: str, pages: int, page_size: int | None
    ) -> ScanHistory:
        """The history to keep once the listing was read to its end or to the early stop."""
        page_size = page_size or history.page_size
        if self.plan.full:
            return ScanHistory(
                last_full_scan_at=started_at,
                previous_full_scan_at=history.last_full_scan_at,
                newest_first=self.broken_at is None,
                order_note=(
                    None
                    if self.broken_at is None
                    else f"updatedAt rose at page {self.broken_at} in the full scan of {started_at}"
                ),
                pages=pages,
                page_size=page_size,
            )
        if self.broken_at is not None:
            note = f"updatedAt rose at page {self.broken_at} in the run of {started_at}"
            return replace(history, newest_first=False, order_note=note, page_size=page_size)
        return replace(history, page_size=page_size)

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
            return f"order broken at page {self.broken_at}: read to the end, {_pages(pages)}"
        return f"read to the end before passing the bookmark: {_pages(pages)}"
