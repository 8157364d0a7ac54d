"""Reading only what changed: the early stop by the listing's own order, and full scans.

BotPenguin has no "updated since" filter and documents no sort order, so the tap finds the
order from what it reads (`listing.order`: newest `updatedAt`, `lastMessage.at` or `createdAt`
first), per bot and stream, and acts only on evidence:

- A read to the end of a listing (a *full scan*, or a run that had to read everything) checks
  every candidate key; the key it follows goes into the bot's state with the newest value of
  that key seen. A full scan's start time goes there too.
- While the state names a key and the last full scan is younger than `full_scan_every_hours`,
  a run stops after the first page holding a record older, by that key, than what earlier
  runs covered: for `updatedAt` the bookmark (or `start_date`), for the others the newest value
  earlier runs saw, less `_CUTOFF_SLACK` (a value the API stamps a little late). Both come from
  the API's own timestamps, never the tap's clock. Records without the key never stop a run.
  An inversion of that key means: read to the end this time, and follow what that read found.
- What the order brings to the top (every change for `updatedAt`, a new message for
  `lastMessage.at`, a new conversation for `createdAt`) is therefore emitted by the next run;
  what it cannot surface (a status-only change listed by last message, any update listed by
  creation) by the next full scan: a full scan emits every record updated since the start of
  the full scan *before* the previous one (never less than since the bookmark). That also
  covers a record that deletions above it shifted across a page boundary while a run read the
  listing; going back two full scans, not one, covers one the previous full scan itself
  skipped that way (it changed after the one before started).

All instants are UTC strings in one format (`sanitize.utc_iso`), so they compare as strings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any

from tap_botpenguin.listing.order import ORDER_KEYS, OrderEvidence
from tap_botpenguin.records.sanitize import parse_datetime, utc_iso
from tap_botpenguin.report.logs import AnyLogger

#: The key of a bot partition's state that holds its `ScanHistory`.
SCAN_STATE_KEY = "scan"
SCAN_MODES = ("auto", "full")
#: The key whose cutoff is the bookmark itself (the SDK's replication key).
BOOKMARK_KEY = "updatedAt"


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


def _hours(hours: float) -> str:
    return f"{hours * 60:.0f} min" if hours < 1 else f"{hours:,.0f} h"


@dataclass(frozen=True)
class ScanHistory:
    """What a bot's state remembers of one listing between runs (ids and times, no token)."""

    #: Start of the latest complete full scan, and of the one before it.
    last_full_scan_at: str | None = None
    previous_full_scan_at: str | None = None
    #: The key the listing was last found newest first by (`listing.order`), if any.
    order_key: str | None = None
    #: The newest value of `order_key` seen (kept for keys other than `BOOKMARK_KEY`).
    newest_seen: str | None = None
    #: Where the order broke, for the person reading the log.
    order_note: str | None = None
    #: Pages of the latest read to the end; the API's page size as far as it is known.
    pages: int | None = None
    page_size: int | None = None

    @classmethod
    def load(cls, partition: dict[str, Any]) -> ScanHistory:
        """The history in a partition's state; values of the wrong type are ignored.

        A state written before orders other than `updatedAt` were known says
        `"newest_first": true`: that is `order_key` `updatedAt`.
        """
        raw = partition.get(SCAN_STATE_KEY)
        if not isinstance(raw, dict):
            return cls()
        values = {
            item.name: raw[item.name]
            for item in fields(cls)
            if type(raw.get(item.name)) is _FIELD_TYPES[item.name]
        }
        if "order_key" not in raw and raw.get("newest_first") is True:
            values["order_key"] = BOOKMARK_KEY
        if values.get("order_key") not in (None, *ORDER_KEYS):
            values.pop("order_key")
        return cls(**values)

    def save(self, partition: dict[str, Any]) -> None:
        """Write this history into a partition's state."""
        partition[SCAN_STATE_KEY] = {k: v for k, v in asdict(self).items() if v is not None}


_FIELD_TYPES = {
    "last_full_scan_at": str,
    "previous_full_scan_at": str,
    "order_key": str,
    "newest_seen": str,
    "order_note": str,
    "pages": int,
    "page_size": int,
}


@dataclass(frozen=True)
class ScanPlan:
    """How to read one listing this run: all of it, or until past what earlier runs covered."""

    full: bool
    #: Why, for the person watching: "last one 26 h ago", "listed newest updatedAt first ...".
    why: str
    #: Emit records with `updatedAt` at or after this (None: every record).
    floor: str | None
    #: The key the early stop follows, and its cutoff (None for a full scan).
    key: str | None = None
    stop_below: str | None = None

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
    recorded, key = history.last_full_scan_at, history.order_key
    age = _age(recorded, now) if recorded else None
    floor = _later(bookmark, start_date)
    stop_below = floor if key == BOOKMARK_KEY else _cutoff(history.newest_seen or "")
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
    elif key is None:
        why = f"order not verified: {history.order_note or 'not newest first'}"
    elif stop_below is None:
        why = f"no newest {key} recorded yet"
    elif age >= every_hours:
        why = f"last one {_hours(age)} ago"
    if why is None:
        assert age is not None  # for the type checker: no full scan means `why` is set
        why = f"listed newest {key} first; next full scan in {_hours(every_hours - age)}"
        return ScanPlan(False, why, floor, key, stop_below)
    floor = start_date
    if bookmark is not None and history.previous_full_scan_at is not None:
        floor = _later(start_date, min(bookmark, history.previous_full_scan_at))
    return ScanPlan(True, why, floor)


class ScanRun:
    """One read of a listing under a plan: checks the orders and decides when to stop."""

    def __init__(self, plan: ScanPlan, where: str, logger: AnyLogger) -> None:
        self.plan = plan
        self.where = where
        self.logger = logger
        self.evidence = OrderEvidence()
        #: Page after which the read stopped early, if it did.
        self.stopped_at: int | None = None

    @property
    def broken_at(self) -> int | None:
        """Page where the plan's key first rose (None: in order, or a full scan)."""
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

    def page_read(self, number: int, records: list[dict[str, Any]], shifted: set[Any]) -> None:
        """Check the orders of a page; stop after it when it passed the cutoff in order.

        `shifted`: ids the previous page held with the same `updatedAt` (the list moved
        down while it was read); they are neither evidence for nor against the order.
        """
        was_broken = self.broken_at is not None
        self.evidence.page(number, records, shifted)
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

    def finish(
        self, history: ScanHistory, *, started_at: str, pages: int, page_size: int | None
    ) -> ScanHistory:
        """The history to keep once the listing was read to its end or to the early stop."""
        page_size = page_size or history.page_size
        if self.stopped_at is not None:  # in order up to the stop: the key stands
            key = self.plan.key
            assert key is not None  # only a plan with a key stops early
            newest = self._newest(key, history)
            return replace(history, newest_seen=newest, page_size=page_size)
        # Read to the end: the whole listing says which order it follows now.
        key = self.evidence.followed()
        note = None
        if key is None:
            kind = "full scan" if self.plan.full else "run"
            note = f"{self.evidence.broken()} in the {kind} of {started_at}"
        updated = replace(
            history,
            order_key=key,
            newest_seen=None if key is None else self._newest(key, history),
            order_note=note,
            pages=pages,
            page_size=page_size,
        )
        if self.plan.full:
            return replace(
                updated,
                last_full_scan_at=started_at,
                previous_full_scan_at=history.last_full_scan_at,
            )
        return updated

    def _newest(self, key: str, history: ScanHistory) -> str | None:
        """The newest value of `key` earlier runs and this one saw (None for the bookmark's)."""
        if key == BOOKMARK_KEY:
            return None
        earlier = history.newest_seen if history.order_key == key else None
        return _later(earlier, self.evidence.checks[key].newest)

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
