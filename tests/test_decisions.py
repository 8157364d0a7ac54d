"""The tap's pure decisions, one table each; every row is a case a user would notice.

Scan planning (full scan or early stop), when to read ahead, where a listing ends and what
the API's page size is, what happens to an undocumented field, how long to wait before a
retry, and the settings. No network, no sleeps, no sandbox: each decision is called with
the inputs a run would give it.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from tap_botpenguin.config.settings import Settings, setting_problems
from tap_botpenguin.http.responses import Page
from tap_botpenguin.http.retries import is_rate_limited, retry_after_seconds, retry_waits
from tap_botpenguin.listing.ahead import worth_a_window
from tap_botpenguin.listing.clock import ApiClock
from tap_botpenguin.listing.ending import Listing, PageSizes
from tap_botpenguin.listing.history import ScanHistory
from tap_botpenguin.listing.plan import may_read_ahead
from tap_botpenguin.listing.scan import ScanPlan, ScanRun, plan_scan
from tap_botpenguin.records.evolution import JSON_COLUMN, STATE_KEY, common_kind, for_stream
from tap_botpenguin.records.naming import snake_case
from tap_botpenguin.records.sanitize import parse_datetime, utc_iso
from tap_botpenguin.report.errors import BotPenguinError

LOG = logging.getLogger("test")
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)  # a Monday
WHERE = "leads bot b1"


#: The tap's clock, for answers without a `Date` header.
CLOCK = ApiClock(lambda: NOW)


def ago(hours: float = 0, minutes: float = 0) -> str:
    """An instant before `NOW`, in the state's format."""
    return utc_iso(NOW - timedelta(hours=hours, minutes=minutes))


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


# --- 1. Scan planning: full scan or reading until past the bookmark -----------------------

BOOKMARK = ago(2)
#: The last full scan 3 h ago found the listing newest first.
VERIFIED = ScanHistory(last_full_scan_at=ago(3), order_key="updatedAt", pages=10)
#: What the plan line says of it.
BY_UPDATE = "listed newest updatedAt first; next full scan in"

EARLY = "reading until past the bookmark"
TO_THE_END = "reading to the end"


def verified(**changes: Any) -> ScanHistory:
    return replace(VERIFIED, **changes)


@pytest.mark.parametrize(
    ("history", "settings", "full", "floor", "line"),
    [
        pytest.param(
            VERIFIED,
            {},
            False,
            BOOKMARK,
            f"{EARLY} ({BY_UPDATE} 21 h)",
            id="verified 3 h ago: early stop, floor at the bookmark",
        ),
        pytest.param(
            verified(last_full_scan_at=ago(23)),
            {},
            False,
            BOOKMARK,
            f"{EARLY} ({BY_UPDATE} 1 h)",
            id="full_scan_every_hours not elapsed (23 of 24 h): early stop",
        ),
        pytest.param(
            VERIFIED,
            {"start_date": ago(1)},
            False,
            ago(1),
            f"{EARLY} ({BY_UPDATE} 21 h)",
            id="early stop: start_date later than the bookmark raises the floor",
        ),
        pytest.param(
            verified(last_full_scan_at=ago(24)),
            {},
            True,
            None,
            "full scan (last one 24 h ago)",
            id="full_scan_every_hours elapsed exactly: a full scan emits every record",
        ),
        pytest.param(
            verified(last_full_scan_at=ago(minutes=40)),
            {"every_hours": 0.5},
            True,
            None,
            "full scan (last one 40 min ago)",
            id="fractional full_scan_every_hours elapsed: full",
        ),
        pytest.param(
            VERIFIED,
            {"every_hours": 0},
            True,
            None,
            "full scan (full_scan_every_hours=0)",
            id="full_scan_every_hours=0: every run is a full scan",
        ),
        pytest.param(
            VERIFIED,
            {"mode": "full"},
            True,
            BOOKMARK,
            f"{TO_THE_END} (scan_mode=full; next full scan in 21 h)",
            id="scan_mode full: to the end although the order is verified, since the bookmark",
        ),
        pytest.param(
            VERIFIED,
            {"full_table": True, "mode": "full"},
            True,
            None,
            "full scan (full-table replication)",
            id="full-table replication named before scan_mode",
        ),
        pytest.param(
            VERIFIED,
            {"bookmark": None, "start_date": ago(100)},
            True,
            ago(100),
            "full scan (no bookmark yet)",
            id="no bookmark yet: full scan from start_date",
        ),
        pytest.param(
            ScanHistory(),
            {},
            True,
            None,
            "full scan (order not verified yet)",
            id="bookmark but never a full scan (older state): full scan",
        ),
        pytest.param(
            verified(order_key=None, order_note="updatedAt rose at page 3"),
            {},
            True,
            BOOKMARK,
            f"{TO_THE_END} (order not verified: updatedAt rose at page 3; next full scan in 21 h)",
            id="order broken on the last scan: to the end naming where, since the bookmark",
        ),
        pytest.param(
            verified(last_full_scan_at=ago(25)),
            {"bookmark": ago(50)},
            True,
            None,
            "full scan (last one 25 h ago)",
            id="full scan: every record, whatever the bookmark (a move without updatedAt too)",
        ),
        pytest.param(
            verified(last_full_scan_at=ago(25)),
            {"start_date": ago(10)},
            True,
            ago(10),
            "full scan (last one 25 h ago)",
            id="full scan floor never earlier than start_date",
        ),
        pytest.param(
            verified(order_key=None),
            {"start_date": ago(1)},
            True,
            ago(1),
            f"{TO_THE_END} (order not verified: not newest first; next full scan in 21 h)",
            id="to the end, not a full scan: start_date later than the bookmark is the floor",
        ),
    ],
)
def test_plan_scan(
    history: ScanHistory, settings: dict[str, Any], full: bool, floor: str | None, line: str
) -> None:
    arguments = {
        "mode": "auto",
        "every_hours": 24,
        "bookmark": BOOKMARK,
        "start_date": None,
        "full_table": False,
        **settings,
    }
    plan = plan_scan(history, now=NOW, **arguments)
    assert (plan.full, plan.floor, plan.describe()) == (full, floor, line)


SAVED: dict[str, Any] = {
    "last_full_scan_at": ago(3),
    "order_key": "updatedAt",
    "pages": 10,
    "page_size": 25,
}

#: `SAVED` as a version before orders by other keys wrote it, without a verdict.
OLD_SAVED = {k: v for k, v in SAVED.items() if k != "order_key"}


@pytest.mark.parametrize(
    ("partition", "history", "line"),
    [
        pytest.param(
            {"scan": SAVED},
            ScanHistory(**SAVED),
            f"{EARLY} ({BY_UPDATE} 21 h)",
            id="history as saved: early stop",
        ),
        pytest.param(
            {"replication_key_value": BOOKMARK},
            ScanHistory(),
            "full scan (order not verified yet)",
            id="state of a version before scans: full scan",
        ),
        pytest.param(
            {"scan": ["not", "a", "dict"]},
            ScanHistory(),
            "full scan (order not verified yet)",
            id="scan entry not an object: ignored, full scan",
        ),
        pytest.param(
            {"scan": {**SAVED, "order_key": 1, "pages": "10", "page_size": 25.0}},
            ScanHistory(last_full_scan_at=ago(3)),
            f"{TO_THE_END} (order not verified: not newest first; next full scan in 21 h)",
            id="values of the wrong type (1, '10', 25.0) ignored: not verified",
        ),
        pytest.param(
            {"scan": {**SAVED, "pages": True, "order_key": "true"}},
            ScanHistory(last_full_scan_at=ago(3), page_size=25),
            f"{TO_THE_END} (order not verified: not newest first; next full scan in 21 h)",
            id="booleans are not page counts, an unknown key is no order",
        ),
        pytest.param(
            {"scan": {**SAVED, "previous_full_scan_at": ago(27)}},
            ScanHistory(**SAVED),
            f"{EARLY} ({BY_UPDATE} 21 h)",
            id="state of a version that kept the full scan before the last: still read",
        ),
        pytest.param(
            {"scan": {**OLD_SAVED, "newest_first": True}},
            ScanHistory(**OLD_SAVED, order_key="updatedAt"),
            f"{EARLY} ({BY_UPDATE} 21 h)",
            id="state written before orders by other keys: newest_first is updatedAt",
        ),
        pytest.param(
            {"scan": {**OLD_SAVED, "newest_first": False, "order_note": "updatedAt rose"}},
            ScanHistory(**OLD_SAVED, order_note="updatedAt rose"),
            f"{TO_THE_END} (order not verified: updatedAt rose; next full scan in 21 h)",
            id="older state, order broken: to the end",
        ),
        pytest.param(
            {"scan": {**SAVED, "newest_first": False}},
            ScanHistory(**SAVED),
            f"{EARLY} ({BY_UPDATE} 21 h)",
            id="order_key wins over a stale newest_first",
        ),
        pytest.param(
            {"scan": {**SAVED, "order_key": "lastMessage.at", "newest_seen": ago(2)}},
            ScanHistory(**{**SAVED, "order_key": "lastMessage.at", "newest_seen": ago(2)}),
            f"{EARLY} (listed newest lastMessage.at first; next full scan in 21 h)",
            id="listed by last message: early stop by it",
        ),
        pytest.param(
            {"scan": {**SAVED, "order_key": "createdAt"}},
            ScanHistory(**{**SAVED, "order_key": "createdAt"}),
            f"{TO_THE_END} (no newest createdAt recorded yet; next full scan in 21 h)",
            id="listed by creation, no newest value kept (edited state): to the end",
        ),
    ],
)
def test_plan_from_saved_state(partition: dict[str, Any], history: ScanHistory, line: str) -> None:
    loaded = ScanHistory.load(partition)
    assert loaded == history
    plan = plan_scan(
        loaded, mode="auto", every_hours=24, bookmark=BOOKMARK, start_date=None, now=NOW
    )
    assert plan.describe() == line
    saved: dict[str, Any] = {}
    loaded.save(saved)
    assert ScanHistory.load(saved) == loaded


@pytest.mark.parametrize(
    ("last_full_scan_at", "line"),
    [
        pytest.param(ago(3), f"{EARLY} ({BY_UPDATE} 21 h)", id="3 h ago"),
        pytest.param(ago(1500), "full scan (last one 1,500 h ago)", id="1,500 h ago"),
        pytest.param(
            (NOW + timedelta(minutes=10)).isoformat(),
            f"{EARLY} ({BY_UPDATE} 24 h)",
            id="10 min ahead (a clock adjusted): still a verification",
        ),
        pytest.param(
            "yesterday",
            "full scan (the last full scan's time in the state, 'yesterday', is unreadable "
            "or ahead)",
            id="unreadable time in the state",
        ),
        pytest.param(
            "2099-01-01T00:00:00.000Z",
            "full scan (the last full scan's time in the state, '2099-01-01T00:00:00.000Z', "
            "is unreadable or ahead)",
            id="time in the future (clock set back, edited state): a full scan",
        ),
    ],
)
def test_plan_announces_a_real_age(last_full_scan_at: str, line: str) -> None:
    history = verified(last_full_scan_at=last_full_scan_at)
    plan = plan_scan(
        history, mode="auto", every_hours=24, bookmark=BOOKMARK, start_date=None, now=NOW
    )
    assert plan.describe() == line


# --- 1b. Which order a listing follows, and where a run stops -----------------------------


def conv(
    key: str, updated: float, message: float | None = None, created: float = 0
) -> dict[str, Any]:
    """A conversation: `updated`, `message` (None: no last message) and `created` hours ago."""
    record: dict[str, Any] = {"_id": key, "updatedAt": ago(updated), "createdAt": ago(created)}
    if message is not None:
        record["lastMessage"] = {"at": ago(message), "by": "user"}
    return record


def listing_of(*specs: tuple[float, float | None, float]) -> list[dict[str, Any]]:
    """Conversations c0, c1, ... in listing order, each (updated, message, created) hours ago."""
    return [conv(f"c{n}", *spec) for n, spec in enumerate(specs)]


#: Newest first by every key at once.
ALL_AGREE = listing_of(*[(n, n, 100 + n) for n in range(1, 7)])
#: By last message: c2 had a status-only change (updatedAt rose), its last message is old.
BY_MESSAGE = listing_of((1, 1, 50), (2, 2, 90), (0.5, 3, 70), (4, 4, 60), (5, 5, 99), (6, 6, 80))
#: By creation: updates and messages stay where the conversation was created.
BY_CREATION = listing_of((9, 9, 1), (2, 2, 2), (7, 8, 3), (1, 1, 4), (5, 6, 5), (3, 3, 6))
#: By nothing the tap knows.
UNORDERED = listing_of((3, 1, 5), (1, 3, 2), (5, 2, 9), (2, 6, 1), (6, 5, 3), (4, 4, 8))
#: By last message, conversations without one at the end (as MongoDB sorts a missing value).
NO_MESSAGE_LAST = listing_of(
    (1, 1, 9), (2, 2, 8), (0.5, 3, 7), (4, 4, 6), (0.2, None, 1), (8, None, 2)
)
#: By last message, conversations without one sorted by creation among the others.
NO_MESSAGE_AMONG = listing_of(
    (1, 1, 9), (0.1, None, 1.5), (0.5, 3, 7), (4, 4, 6), (9, None, 4.5), (6, 6, 2)
)


def read_to_the_end(
    pages: list[list[dict[str, Any]]], plan: ScanPlan | None = None, history: ScanHistory = VERIFIED
) -> tuple[ScanRun, ScanHistory]:
    """Pages read by a run under `plan` (a full scan by default), and the history it keeps."""
    scan = ScanRun(plan or ScanPlan(True, "why", None, everything=True), WHERE, LOG, CLOCK)
    listing = Listing(WHERE, LOG, PageSizes(None))
    for number, records in enumerate(pages, start=1):
        passed, shifted = listing.accept(Page(number, records))
        scan.page_read(number, passed, shifted, None)
        if not scan.wants_more:
            break
    return scan, scan.finish(history, started_at=ago(0), pages=len(pages), page_size=3)


@pytest.mark.parametrize(
    ("records", "key", "note"),
    [
        pytest.param(ALL_AGREE, "updatedAt", None, id="every key agrees: updatedAt wins"),
        pytest.param(BY_MESSAGE, "lastMessage.at", None, id="status-only change: by last message"),
        pytest.param(BY_CREATION, "createdAt", None, id="changes stay in place: by creation"),
        pytest.param(
            UNORDERED,
            None,
            "updatedAt rose at page 1, lastMessage.at rose at page 1, createdAt rose at page 1 "
            f"in the full scan of {ago(0)}",
            id="unordered: no key, every break named",
        ),
        pytest.param(
            NO_MESSAGE_LAST, "lastMessage.at", None, id="without a last message, at the end"
        ),
        pytest.param(
            NO_MESSAGE_AMONG, "lastMessage.at", None, id="without a last message, among the rest"
        ),
        pytest.param(
            [conv(f"c{n}", 1) | {"createdAt": None} for n in range(6)],
            "updatedAt",
            None,
            id="equal updatedAt everywhere is in order; no createdAt says nothing",
        ),
        pytest.param(
            [
                conv("c0", 5, 9, 1),
                conv("c1", 1, 2, 2) | {"lastMessage": None},
                conv("c2", 3, 8, 3) | {"lastMessage": {"at": None}},
                conv("c3", 2, 7, 4) | {"lastMessage": "yesterday"},
                conv("c4", 7, 1, 5) | {"lastMessage": None},
                conv("c5", 4, 3, 6) | {"lastMessage": None},
            ],
            "createdAt",
            None,
            id="last message on under half of the records: not an order",
        ),
        pytest.param(
            [
                # 07:46:40Z, 06:30Z, 01:00Z: in order as instants, not as strings
                conv("c0", 2, 2) | {"createdAt": "1780300000000"},  # epoch milliseconds
                conv("c1", 1, 1) | {"createdAt": utc_iso(NOW).replace("Z", "+05:30")},
                conv("c2", 3, 3) | {"createdAt": "Mon, 01 Jun 2026 01:00:00 GMT"},
                conv("c3", 4, 4) | {"createdAt": "2026-06-01T00:59:59Z"},
            ],
            "createdAt",
            "updatedAt rose at page 1, lastMessage.at rose at page 1",
            id="timestamps of other formats compared as instants",
        ),
    ],
)
def test_the_order_a_full_scan_finds(
    records: list[dict[str, Any]], key: str | None, note: str | None
) -> None:
    pages = [records[:3], records[3:], []]
    scan, history = read_to_the_end(pages, history=ScanHistory())
    if key is None:
        assert (history.order_key, history.order_note) == (None, note)
    else:  # a key held: the others' breaks are not kept
        assert (history.order_key, history.order_note) == (key, None)
        if note is not None:
            assert scan.evidence.broken() == note
    assert history.last_full_scan_at == ago(0)
    newest = {"lastMessage.at": "lastMessage", "createdAt": "createdAt"}.get(key or "")
    if newest is not None:  # the next run's cutoff: the newest value of the key seen
        values = [r["lastMessage"]["at"] for r in records if isinstance(r.get("lastMessage"), dict)]
        if newest == "createdAt":
            values = [utc_iso(parse_datetime(r["createdAt"]) or NOW) for r in records]
        assert history.newest_seen == max(v for v in values if isinstance(v, str))
    else:
        assert history.newest_seen is None


def test_a_shift_down_at_a_page_boundary_is_no_disorder() -> None:
    """Page 2 starts with page 1's last record again (one arrived at the top between)."""
    first, second = BY_MESSAGE[:3], [BY_MESSAGE[2], *BY_MESSAGE[3:]]
    _, history = read_to_the_end([first, second, []], history=ScanHistory())
    assert history.order_key == "lastMessage.at"


def plan_by(key: str, newest: float) -> tuple[ScanPlan, ScanHistory]:
    """An early-stop plan following `key`, as `plan_scan` makes it, and its history."""
    history = verified(order_key=key, newest_seen=None if key == "updatedAt" else ago(newest))
    plan = plan_scan(
        history, mode="auto", every_hours=24, bookmark=ago(newest), start_date=None, now=NOW
    )
    assert not plan.full
    return plan, history


@pytest.mark.parametrize(
    ("key", "pages", "stopped_at", "order_key"),
    [
        pytest.param(
            "lastMessage.at",
            [listing_of((0.1, 0.1, 9), (0.2, 0.2, 9), (1, 1, 9)), listing_of((2, 2, 9))],
            1,
            "lastMessage.at",
            id="a page with a message older than the cutoff: stop after it",
        ),
        pytest.param(
            "lastMessage.at",
            [listing_of((0.1, 0.1, 9), (0.2, 0.2, 9), (0.3, 0.3, 9)), listing_of((2, 2, 9))],
            2,
            "lastMessage.at",
            id="page 1 all newer than the cutoff: read on",
        ),
        pytest.param(
            "lastMessage.at",
            [listing_of((0.1, 0.1, 9), (0.3, 0.3, 9), (0.4, 0.4, 9)), listing_of((2, 2, 9))],
            2,
            "lastMessage.at",
            id="within the 15 min slack below the newest seen: read on",
        ),
        pytest.param(
            "lastMessage.at",
            [listing_of((0.1, 0.1, 9), (30, None, 9), (0.2, 0.2, 9)), listing_of((2, 2, 9))],
            2,
            "lastMessage.at",
            id="an old record without a last message does not stop the run",
        ),
        pytest.param(
            "lastMessage.at",
            [listing_of((0.1, 0.1, 9), (0.05, 0.2, 9), (0.3, 0.3, 9)), listing_of((2, 2, 9))],
            2,
            "lastMessage.at",
            id="updatedAt rising (a status change) is no break by last message",
        ),
        pytest.param(
            "createdAt",
            [listing_of((0.1, 0.1, 0.1), (30, 30, 0.2), (0.3, 0.3, 1.5)), listing_of((2, 2, 9))],
            1,
            "createdAt",
            id="by creation: a page with an older creation stops it",
        ),
        pytest.param(
            "updatedAt",
            [listing_of((0.1, 0.1, 9), (0.5, 0.5, 9), (0.2, 0.6, 9)), listing_of((4, 4, 9)), []],
            None,
            "lastMessage.at",
            id="updatedAt breaks: read to the end, which finds the order by last message",
        ),
        pytest.param(
            "lastMessage.at",
            [listing_of((0.1, 0.1, 1), (0.3, 0.5, 3), (0.2, 0.2, 2)), listing_of((4, 4, 9)), []],
            None,
            None,
            id="the key itself breaks, no other holds: read to the end, order lost",
        ),
    ],
)
def test_where_an_early_stop_stops(
    key: str, pages: list[list[dict[str, Any]]], stopped_at: int | None, order_key: str | None
) -> None:
    plan, before = plan_by(key, newest=1 / 6)  # 10 minutes ago: the cutoff is 25 min ago
    scan, history = read_to_the_end(pages, plan, before)
    assert (scan.stopped_at, history.order_key) == (stopped_at, order_key)
    assert history.last_full_scan_at == VERIFIED.last_full_scan_at  # no full scan
    if order_key == key and key != "updatedAt":
        assert history.newest_seen == ago(0.1)  # the newest seen now, for the next run


# --- 1c. What the API's clock allows ---------------------------------------------------------

#: A `lastMessage.at` in 2027 (a bot's clock, an import), listed first by last message.
FROM_2027 = conv("odd", 0.1) | {"lastMessage": {"at": "2027-01-01T00:00:00.000Z"}}


@pytest.mark.parametrize(
    ("plan", "history", "api_now", "stopped_at", "newest", "full_scan"),
    [
        pytest.param(
            plan_by("lastMessage.at", 1 / 6)[0],
            verified(order_key="lastMessage.at", newest_seen=ago(1 / 6)),
            NOW,
            2,
            ago(1 / 6),
            False,
            id="a value ahead of the API's clock is neither the newest nor the lowest",
        ),
        pytest.param(
            plan_by("lastMessage.at", 1 / 6)[0],
            verified(order_key="lastMessage.at", newest_seen=ago(1 / 6)),
            datetime(2027, 1, 1, tzinfo=timezone.utc),
            2,
            "2027-01-01T00:00:00.000Z",
            False,
            id="the same value, when the API's own clock says 2027: believed",
        ),
        pytest.param(
            replace(plan_by("lastMessage.at", 1 / 6)[0], stop_below="2026-12-31T23:45:00.000Z"),
            verified(order_key="lastMessage.at", newest_seen="2027-01-01T00:00:00.000Z"),
            NOW,
            None,
            ago(0.2),
            True,
            id="a newest value in the state ahead of the API's clock: a full scan replaces it",
        ),
        pytest.param(
            replace(plan_by("lastMessage.at", 1 / 6)[0], bookmark="2099-01-01T00:00:00.000Z"),
            verified(order_key="lastMessage.at", newest_seen=ago(1 / 6)),
            NOW,
            None,
            ago(0.2),
            True,
            id="a bookmark ahead of the API's clock: a full scan from start_date",
        ),
    ],
)
def test_what_the_api_clock_allows(
    plan: ScanPlan,
    history: ScanHistory,
    api_now: datetime,
    stopped_at: int | None,
    newest: str,
    full_scan: bool,
) -> None:
    scan = ScanRun(plan, WHERE, LOG, ApiClock(lambda: NOW))
    # By last message; updatedAt rises once (a status change), so it is no order here.
    pages = [
        [FROM_2027, *listing_of((0.2, 0.2, 9), (0.05, 0.3, 9))],
        listing_of((0.4, 0.4, 9), (2, 2, 9)),
        listing_of((3, 3, 9)),
        [],
    ]
    for number, records in enumerate(pages, start=1):
        if not records or not scan.wants_more:
            break
        scan.page_read(number, records, set(), api_now)
    kept = scan.finish(history, started_at=ago(0), pages=3, page_size=3)
    assert (scan.stopped_at, kept.newest_seen) == (stopped_at, newest)
    assert (scan.plan.everything, kept.last_full_scan_at == ago(0)) == (full_scan, full_scan)
    assert scan.plan.floor == (None if full_scan else plan.floor)
    assert scan.clock.read_started == utc_iso(api_now.replace(microsecond=0))


def test_a_read_to_the_end_replaces_the_newest_value_an_early_stop_adds_to_it() -> None:
    """The newest record was deleted: the next full scan's newest value is lower."""
    history = verified(order_key="lastMessage.at", newest_seen=ago(0.1))
    plan = plan_scan(
        history, mode="full", every_hours=24, bookmark=ago(1), start_date=None, now=NOW
    )
    by_message = listing_of((0.5, 0.5, 9), (0.2, 1, 9))  # updatedAt rises: no order
    _, after_full = read_to_the_end([by_message, []], plan, history)
    early, _ = plan_by("lastMessage.at", 0.1)
    _, after_stop = read_to_the_end([listing_of((0.5, 0.5, 9), (3, 3, 9))], early, history)
    assert (after_full.newest_seen, after_stop.newest_seen) == (ago(0.5), ago(0.1))


# --- 2. When to read ahead ----------------------------------------------------------------

NEWEST_FIRST = [{"_id": f"r{i}", "updatedAt": ago(i)} for i in range(1, 4)]
ROSE = [NEWEST_FIRST[1], NEWEST_FIRST[0], NEWEST_FIRST[2]]


@pytest.mark.parametrize(
    ("full", "records", "page_size", "allowed"),
    [
        pytest.param(True, NEWEST_FIRST, 3, True, id="full scan, newest first, full page"),
        pytest.param(True, NEWEST_FIRST, 2, True, id="page longer than the known size: full"),
        pytest.param(False, NEWEST_FIRST, 3, False, id="early-stop read: never ahead"),
        pytest.param(True, ROSE, 3, False, id="updatedAt rose on the page: not ahead"),
        pytest.param(True, NEWEST_FIRST, 25, False, id="short page (the last one): not ahead"),
        pytest.param(True, NEWEST_FIRST, None, False, id="no page size known yet: not ahead"),
    ],
)
def test_may_read_ahead(
    full: bool, records: list[dict[str, Any]], page_size: int | None, allowed: bool
) -> None:
    plan = ScanPlan(full, "why", None)
    scan = ScanRun(plan, WHERE, LOG, CLOCK)
    listing = Listing(WHERE, LOG, PageSizes(page_size))
    passed, shifted = listing.accept(Page(1, records))
    scan.page_read(1, passed, shifted, None)
    assert may_read_ahead(plan, scan, listing) is allowed


@pytest.mark.parametrize(
    ("window", "answer", "work", "allowance", "worth"),
    [
        pytest.param(8, 2.0, 0.01, 100 / 60, True, id="slow API, quick tap, allowance to spare"),
        pytest.param(8, 0.1, 0.01, 100 / 60, False, id="fast API: the allowance is the limit"),
        pytest.param(8, 2.0, 0.01, 35 / 60, False, id="35 a minute: windows gain under 10%, no"),
        pytest.param(8, 0.35, 0.1, 100.0, False, id="answer 3.5x the tap's work: no"),
        pytest.param(8, 1.0, 0.25, 100.0, True, id="answer exactly 4x the tap's work: yes"),
        pytest.param(2, 2.0, 0.0, 100.0, False, id="window of 2 costs as much as it saves"),
        pytest.param(3, 2.0, 0.0, 100.0, True, id="window of 3 pays on a slow API"),
    ],
)
def test_worth_a_window(
    window: int, answer: float, work: float, allowance: float, worth: bool
) -> None:
    assert worth_a_window(window, answer, work, allowance) is worth


# --- 3. The end of a listing and the API's page size --------------------------------------

#: What a listing that ended cleanly looks like; rows say how theirs differs.
CLEAN_END = {"ended": True, "unconfirmed": False, "truncated": False, "deferred": None}


class Confirmed(int):
    """A page size this run learned from pages the API served (not the state's hint)."""


def page_sizes(known: int | None) -> PageSizes:
    """The run's page sizes: `known` from the state, or `Confirmed` by this run."""
    return PageSizes(known, confirmed=isinstance(known, Confirmed))


def page_of_ids(number: int, spec: str | int) -> Page:
    """`"abc"`: a page of records a, b, c; `404`: the API's 4xx past the end."""
    if isinstance(spec, int):
        return Page(number, [], past_end=spec)
    return Page(number, [{"_id": key, "updatedAt": ago(1)} for key in spec])


def accept(listing: Listing, number: int, spec: str | int) -> None:
    """Page `number` as the reader takes it: asked for again when it repeats the one before.

    `"def|ghi"`: the API answered `def` and, asked again, `ghi`; otherwise the same again.
    """
    first, _, again = str(spec).partition("|") if isinstance(spec, str) else (spec, "", "")
    listing.accept(page_of_ids(number, first))
    if listing.ask_again is not None:
        listing.accept(page_of_ids(number, again or first))


@pytest.mark.parametrize(
    ("pages", "known", "outcome", "warning"),
    [
        pytest.param([""], None, {"pages": 0, "size": None}, None, id="empty page 1"),
        pytest.param(
            ["abc", ""],
            None,
            {"pages": 1, "size": None},
            None,
            id="empty page 2 ends it; no size learned from a last page",
        ),
        pytest.param(
            ["abc", "de"],
            None,
            {"ended": False, "pages": 2, "size": 3},
            None,
            id="short page does not end it; the page before teaches the size",
        ),
        pytest.param(
            ["abc", "cba"],
            None,
            {"ended": False, "pages": 2, "size": 3},
            None,
            id="same records in another order are not a repeat",
        ),
        pytest.param(
            ["abc", "abc"],
            None,
            {"pages": 1, "size": None, "unconfirmed": True, "truncated": True, "deferred": 3},
            "page 2 repeats page 1 (3 records) and no page size is known yet",
            id="page 2 repeats page 1, no size known: one page, bookmark kept, deferred",
        ),
        pytest.param(
            ["abc", "abc"],
            Confirmed(25),
            {"pages": 1, "size": 25},
            None,
            id="page 2 repeats, twice, a page 1 shorter than this run's size: one page",
        ),
        pytest.param(
            ["abc", "abc"],
            25,
            {"pages": 1, "size": 25, "unconfirmed": True, "truncated": True, "deferred": 3},
            "page 2 repeats page 1 (3 records) and no page size is known yet",
            id="page 1 shorter than the state's size only: unproven, bookmark kept, deferred",
        ),
        pytest.param(
            ["abc", "def", "def|ghi", ""],
            None,
            {"pages": 3, "size": 3},
            None,
            id="a page repeated once (a stale copy, a shift) is asked again and read on",
        ),
        pytest.param(
            ["abc", "abc|def", ""],
            None,
            {"pages": 2, "size": 3},
            None,
            id="page 2 repeating page 1 once is asked again and read on",
        ),
        pytest.param(
            ["abca", "def", "ghi", "ghi"],
            None,
            {"pages": 3, "size": 3, "truncated": True},
            "page 4 repeats page 3, a full page (3 records), twice",
            id="a page holding an id twice teaches no page size",
        ),
        pytest.param(
            ["abc", "def", "def"],
            None,
            {"pages": 2, "size": 3, "truncated": True},
            "page 3 repeats page 2, a full page (3 records), twice",
            id="a later page repeats a full page twice: end, maybe cut short",
        ),
        pytest.param(
            ["abc", "de", "de"],
            None,
            {"pages": 2, "size": 3},
            None,
            id="a later page repeats a short page: clean end",
        ),
        pytest.param(
            ["abc", 404],
            3,
            {"pages": 1, "size": 3, "truncated": True},
            "page 2 answered 404 Not Found after a full page 1 (3 records)",
            id="404 after a full page: end, maybe cut short",
        ),
        pytest.param(
            ["abc", "def", 416],
            None,
            {"pages": 2, "size": 3, "truncated": True},
            "page 3 answered 416 Requested Range Not Satisfiable after a full page 2",
            id="416 after a page learned full: end, maybe cut short",
        ),
        pytest.param(
            ["abc", 400],
            None,
            {"pages": 1, "size": None},
            None,
            id="400 on page 2, no size known: clean end",
        ),
    ],
)
def test_listing_end(
    pages: list[str | int],
    known: int | None,
    outcome: dict[str, Any],
    warning: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="test")
    listing = Listing(WHERE, LOG, page_sizes(known))
    for number, spec in enumerate(pages, start=1):
        accept(listing, number, spec)
    actual = {
        "ended": listing.ended,
        "pages": listing.pages,
        "size": listing.page_sizes.size,
        "unconfirmed": listing.unconfirmed,
        "truncated": listing.maybe_truncated,
        "deferred": listing.deferred,
    }
    assert actual == {**CLEAN_END, **outcome}
    said = warnings_of(caplog)
    if warning is None:
        assert said == []
    else:
        assert len(said) == 1
        assert said[0].startswith(f"{WHERE}: {warning}")


@pytest.mark.parametrize(
    ("page_1", "known"),
    [
        pytest.param("abc", 3, id="page 1 exactly the known size"),
        pytest.param("abcd", 3, id="page 1 longer than the known size"),
    ],
)
def test_page_2_repeating_a_full_page_1_stops_the_run(page_1: str, known: int) -> None:
    listing = Listing(WHERE, LOG, PageSizes(known))
    listing.accept(page_of_ids(1, page_1))
    with pytest.raises(BotPenguinError, match="the API is ignoring `page`") as raised:
        accept(listing, 2, page_1)
    assert f"({len(page_1)} records; the API's pages hold {known})" in str(raised.value)


@pytest.mark.parametrize(
    ("page_2_updated", "shifted", "overlaps"),
    [
        pytest.param(ago(1), {"c"}, 1, id="record again with the same updatedAt: shifted"),
        pytest.param(ago(0), set(), 1, id="record again, updated since: not shifted"),
    ],
)
def test_records_repeated_across_pages(
    page_2_updated: str, shifted: set[str], overlaps: int
) -> None:
    listing = Listing(WHERE, LOG, PageSizes(None))
    listing.accept(page_of_ids(1, "abc"))
    page_2 = [{"_id": "c", "updatedAt": page_2_updated}, {"_id": "d", "updatedAt": ago(2)}]
    records, moved = listing.accept(Page(2, page_2))
    assert (records, moved, listing.overlaps) == (page_2, shifted, overlaps)


@pytest.mark.parametrize(
    ("known", "steps", "size", "error"),
    [
        pytest.param(25, [("learn", 10)], 10, None, id="the state's size gives way to this run's"),
        pytest.param(
            None,
            [("learn", 25), ("learn", 10)],
            25,
            None,
            id="a smaller full page leaves a size this run learned",
        ),
        pytest.param(
            None,
            [("defer", "bot a", 3), ("learn", 5)],
            5,
            None,
            id="deferred page 1 shorter than the size learned: one-page listing",
        ),
        pytest.param(
            None,
            [("defer", "bot a", 3), ("learn", 3)],
            3,
            "bot a: page 2 repeats page 1 exactly, and page 1 is full (3 records; the API's "
            "pages hold 3)",
            id="deferred page 1 as long as the size learned: the API ignores page",
        ),
        pytest.param(
            None,
            [("defer", "bot a", 2), ("defer", "bot b", 4), ("learn", 3)],
            3,
            "bot b: page 2 repeats page 1 exactly, and page 1 is full (4 records",
            id="two listings deferred: the one with a full page 1 fails",
        ),
        pytest.param(
            None,
            [("learn", 3), ("defer", "bot a", 3)],
            3,
            "bot a: page 2 repeats page 1 exactly",
            id="defer after another listing learned the size: fails at once",
        ),
        pytest.param(
            None,
            [("learn", 5), ("defer", "bot a", 3), ("learn", 3)],
            5,
            None,
            id="defer a short page 1 with the size learned: nothing pending",
        ),
        pytest.param(
            5,
            [("defer", "bot a", 3), ("learn", 3)],
            3,
            "bot a: page 2 repeats page 1 exactly, and page 1 is full (3 records; the API's "
            "pages hold 3)",
            id="the state's size is a hint: a page 1 it calls short waits for this run's",
        ),
    ],
)
def test_page_sizes(
    known: int | None, steps: list[tuple[Any, ...]], size: int, error: str | None
) -> None:
    sizes = PageSizes(known)
    raised = None
    try:
        for step in steps:
            if step[0] == "learn":
                sizes.learn(step[1])
            else:
                sizes.defer(step[1], step[2])
    except BotPenguinError as exc:
        raised = str(exc)
    assert sizes.size == size
    if error is None:
        assert raised is None
    else:
        assert raised is not None
        assert raised.startswith(error)


# --- 4. What to do with an undocumented field ---------------------------------------------

CHAT = json.loads(
    importlib.resources.files("tap_botpenguin.records").joinpath("chat.json").read_text()
)
STRING = {"type": ["string", "null"]}


def undocumented(
    config: dict[str, Any] | None = None,
    *,
    state: dict[str, Any] | None = None,
    name: Any = str,
    catalog: dict[str, Any] | None = None,
    json_column: bool = True,
) -> Any:
    return for_stream(
        "leads",
        CHAT,
        config or {},
        {STATE_KEY: state} if state is not None else {},
        selects_json_column=json_column,
        logger=LOG,
        name=name,
        catalog_fields=catalog,
    )


@pytest.mark.parametrize(
    ("values", "schema"),
    [
        pytest.param(["gold"], STRING, id="text: string"),
        pytest.param([4], {"type": ["number", "null"]}, id="integer: number (4.0 arrives as 4)"),
        pytest.param([1, 1.5], {"type": ["number", "null"]}, id="integer and float: number"),
        pytest.param([True, 1], STRING, id="boolean and number: string"),
        pytest.param(
            [{"a": 1}], {"type": ["object", "null"], "additionalProperties": True}, id="object"
        ),
        pytest.param([[1, 2]], {"type": ["array", "null"], "items": {}}, id="array"),
        pytest.param([None, 3], {"type": ["number", "null"]}, id="null and integer: number"),
        pytest.param([None, None], None, id="only nulls: not learned yet"),
    ],
)
def test_learned_type(values: list[Any], schema: dict[str, Any] | None) -> None:
    fields = undocumented()
    fields.inspect_page([{"_id": str(i), "tier": value} for i, value in enumerate(values)])
    assert fields.declared().get("tier") == schema


@pytest.mark.parametrize(
    ("kinds", "kind"),
    [
        pytest.param(set(), None, id="nothing seen"),
        pytest.param({"integer", "number"}, "number", id="integer and number widen"),
        pytest.param({"number", "object"}, "string", id="any other mix: text"),
    ],
)
def test_common_kind(kinds: set[str], kind: str | None) -> None:
    assert common_kind(kinds) == kind


LONG_63 = "x" * 63
LONG_64 = "x" * 64


@pytest.mark.parametrize(
    ("key", "setup", "mode", "record", "news", "misfit"),
    [
        pytest.param(
            "tier",
            {},
            "evolve",
            {"tier": "gold"},
            {"tier": "string"},
            None,
            id="evolve: a column of its own",
        ),
        pytest.param(
            "tier",
            {"config": {"undocumented_fields": "json"}},
            "json",
            {JSON_COLUMN: {"tier": "gold"}},
            {"tier": "string"},
            None,
            id="json: into the undocumentedFields column",
        ),
        pytest.param(
            "tier",
            {"config": {"undocumented_fields": "discard"}},
            "discard",
            {},
            {"tier": "string"},
            None,
            id="discard: dropped, still named",
        ),
        pytest.param(
            "tier",
            {"json_column": False},
            "discard",
            {},
            {"tier": "string"},
            None,
            id="catalog leaves undocumentedFields out (a list of columns): dropped",
        ),
        pytest.param(
            "tier",
            {"json_column": False, "config": {"undocumented_fields": "json"}},
            "discard",
            {},
            {"tier": "string"},
            None,
            id="json mode, catalog leaves undocumentedFields out: dropped",
        ),
        pytest.param(
            LONG_63,
            {},
            "evolve",
            {LONG_63: "gold"},
            {LONG_63: "string"},
            None,
            id="63-byte name: a column",
        ),
        pytest.param(
            LONG_64,
            {},
            "evolve",
            {JSON_COLUMN: {LONG_64: "gold"}},
            {},
            "its column name is longer than 63 bytes",
            id="64-byte name: JSON column",
        ),
        pytest.param(
            "é" * 32,
            {},
            "evolve",
            {JSON_COLUMN: {"é" * 32: "gold"}},
            {},
            "its column name is longer than 63 bytes",
            id="32 two-byte letters are 64 bytes: JSON column",
        ),
        pytest.param(
            "_SDC_batched_at",
            {},
            "evolve",
            {JSON_COLUMN: {"_SDC_batched_at": "gold"}},
            {},
            "`_sdc_` names are the loader's own columns",
            id="_sdc_ prefix, any case: reserved",
        ),
        pytest.param(
            "UpdatedAt",
            {},
            "evolve",
            {JSON_COLUMN: {"UpdatedAt": "gold"}},
            {},
            "its column `UpdatedAt` would be documented `updatedAt`'s (case ignored)",
            id="clashes with a documented column, case ignored",
        ),
        pytest.param(
            "is_online",
            {"name": snake_case},
            "evolve",
            {JSON_COLUMN: {"is_online": "gold"}},
            {},
            "its column `is_online` would be documented `isOnline`'s (case ignored)",
            id="snake_case: is_online clashes with documented isOnline",
        ),
        pytest.param(
            "UNDOCUMENTEDFIELDS",
            {},
            "evolve",
            {JSON_COLUMN: {"UNDOCUMENTEDFIELDS": "gold"}},
            {},
            "would be the tap's own `undocumentedFields`'s",
            id="clashes with the tap's own JSON column",
        ),
        pytest.param(
            "",
            {},
            "evolve",
            {JSON_COLUMN: {"": "gold"}},
            {},
            "its column name would be empty",
            id="empty name",
        ),
        pytest.param(
            "tier",
            {"config": {"max_undocumented_columns": 0}},
            "evolve",
            {JSON_COLUMN: {"tier": "gold"}},
            {},
            "max_undocumented_columns (0) were learned already",
            id="max_undocumented_columns 0: JSON column",
        ),
        pytest.param(
            "tier",
            {"config": {"max_undocumented_columns": 1}, "state": {"plan": STRING}},
            "evolve",
            {JSON_COLUMN: {"tier": "gold"}},
            {},
            "max_undocumented_columns (1) were learned already",
            id="cap reached by a column an earlier run learned",
        ),
        pytest.param(
            "tier",
            {"state": {"tier": STRING}},
            "evolve",
            {"tier": "gold"},
            {},
            None,
            id="learned by an earlier run: a column, not news",
        ),
        pytest.param(
            "tier",
            {"catalog": {"tier": {"type": ["integer", "null"]}}},
            "evolve",
            {"tier": "gold"},
            {},
            None,
            id="declared by the catalog: documented, not news",
        ),
        pytest.param(
            "loyaltyTier",
            {"name": snake_case, "catalog": {"loyalty_tier": STRING}},
            "evolve",
            {"loyaltyTier": "gold"},
            {},
            None,
            id="catalog declares its snake_case name: documented",
        ),
        pytest.param(
            "_sdc_x",
            {"config": {"undocumented_fields": "json"}},
            "json",
            {JSON_COLUMN: {"_sdc_x": "gold"}},
            {"_sdc_x": "string"},
            None,
            id="json mode: a reserved name is no misfit (no column)",
        ),
    ],
)
def test_undocumented_field(
    key: str,
    setup: dict[str, Any],
    mode: str,
    record: dict[str, Any],
    news: dict[str, str],
    misfit: str | None,
) -> None:
    fields = undocumented(**setup)
    page = [{"_id": "1", key: "gold"}]
    fields.inspect_page(page)
    learned, misfits = fields.take_news()
    assert fields.mode == mode
    assert page == [{"_id": "1", **record}]
    assert learned == news
    if misfit is None:
        assert misfits == {}
    else:
        assert list(misfits) == [key]
        assert misfit in misfits[key]


@pytest.mark.parametrize(
    ("state", "declared", "warned"),
    [
        pytest.param(
            {"score": {"type": ["integer", "null"]}},
            {"score": {"type": ["number", "null"]}},
            True,
            id="integer learned earlier: now number, with a warning",
        ),
        pytest.param(
            {"score": {"type": ["number", "null"]}, "tier": STRING},
            {"score": {"type": ["number", "null"]}, "tier": STRING},
            False,
            id="number and string kept as they were",
        ),
        pytest.param(
            {
                "score": {"type": ["string", "integer", "null"]},
                "when": {"type": "date"},
                "_sdc_x": STRING,
            },
            {},
            False,
            id="shapes this tap never writes, and reserved names: relearned",
        ),
    ],
)
def test_fields_learned_by_earlier_runs(
    state: dict[str, Any],
    declared: dict[str, Any],
    warned: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="test")
    fields = undocumented(state=state)
    assert {k: v for k, v in fields.declared().items() if k != JSON_COLUMN} == declared
    said = warnings_of(caplog)
    assert len(said) == int(warned)
    if warned:
        assert said[0].startswith("leads: score learned as integer by an earlier run")


@pytest.mark.parametrize(
    ("key", "mode", "values", "said"),
    [
        pytest.param("tier", "evolve", ["a", "b"], [["tier"], []], id="evolve: named once"),
        pytest.param("tier", "discard", ["a", "b"], [["tier"], []], id="discard: named once"),
        pytest.param(
            "tier",
            "evolve",
            [None, "a"],
            [[], ["tier"]],
            id="evolve: nulls first, named when a value arrives",
        ),
        pytest.param(
            "_sdc_x", "evolve", ["a", "b"], [["_sdc_x"], []], id="evolve: misfit warned once"
        ),
    ],
)
def test_fields_named_once_per_run(
    key: str, mode: str, values: list[Any], said: list[list[str]]
) -> None:
    fields = undocumented({"undocumented_fields": mode})
    named = []
    for value in values:
        fields.inspect_page([{"_id": "1", key: value}])
        news, misfits = fields.take_news()
        named.append([*news, *misfits])
    assert named == said


# --- 5. Retry waits -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        pytest.param("120", 120.0, id="seconds"),
        pytest.param(" 7 ", 7.0, id="seconds with spaces"),
        pytest.param("-5", None, id="negative: unusable, the usual backoff"),
        pytest.param("0", None, id="zero: unusable, the usual backoff"),
        pytest.param("99999", 600.0, id="huge: capped at 600 s"),
        pytest.param(None, None, id="absent"),
        pytest.param("soon", None, id="garbage"),
        pytest.param("2026-06-01T12:00:30Z", None, id="ISO 8601 is not an HTTP-date"),
        pytest.param("Mon, 01 Jun 2026 12:00:30 GMT", 30.0, id="HTTP-date 30 s ahead"),
        pytest.param("Mon, 01 Jun 2026 12:00:30 -0000", 30.0, id="HTTP-date without a zone"),
        pytest.param("Mon, 01 Jun 2026 11:00:00 GMT", None, id="HTTP-date in the past: unusable"),
        pytest.param("Mon, 01 Jun 2026 12:00:00 GMT", None, id="HTTP-date now: unusable"),
        pytest.param("Mon, 32 Jun 2026 12:00:30 GMT", None, id="impossible HTTP-date"),
        pytest.param(
            "nan",
            None,
            id="NaN (unusable: the backoff's own wait applies)",
        ),
    ],
)
def test_retry_after_seconds(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header, NOW) == seconds


def failure(kind: str) -> Exception:
    """What an attempt failed with: `500`, `429`, `429:<Retry-After>`, `envelope 429`, `timeout`."""
    if kind == "timeout":
        return TimeoutError("no answer")
    status, _, retry_after = kind.partition(":")
    headers = {"Retry-After": retry_after} if retry_after else {}
    body = b"{}"
    if status == "envelope 429":
        status, body = "200", b'{"success": false, "code": 429}'
    error = Exception(kind)
    error.response = SimpleNamespace(  # type: ignore[attr-defined]
        status_code=int(status), content=body, headers=headers
    )
    return error


@pytest.mark.parametrize(
    ("failures", "waits"),
    [
        pytest.param(["500"] * 5, [1, 2, 4, 8, 16], id="5xx: 1 s doubling"),
        pytest.param(["500"] * 8, [1, 2, 4, 8, 16, 32, 60, 60], id="5xx: capped at 60 s"),
        pytest.param(["timeout"] * 3, [1, 2, 4], id="no answer: backoff as 5xx"),
        pytest.param(
            ["429"] * 6, [5, 10, 20, 40, 60, 60], id="429 without Retry-After: 5 s doubling"
        ),
        pytest.param(["429:3", "429:3"], [3, 3], id="429 Retry-After seconds: as asked"),
        pytest.param(
            ["429:Sat, 01 Jan 2000 00:00:00 GMT"], [5], id="429 Retry-After date passed: default"
        ),
        pytest.param(
            ["429:0", "429:-1", "429:Sat, 01 Jan 2000 00:00:00 GMT"],
            [5, 10, 20],
            id="429 Retry-After 0, negative, past: the usual backoff, never at once",
        ),
        pytest.param(["429:later", "429:later"], [5, 10], id="429 garbage Retry-After: default"),
        pytest.param(["envelope 429"], [5], id="429 in a 200's envelope: rate limited"),
        pytest.param(
            ["500", "429", "500"], [1, 5, 4], id="mixed: 429s count apart, backoff counts all"
        ),
    ],
)
def test_retry_waits(failures: list[str], waits: list[float]) -> None:
    sequence = retry_waits()
    next(sequence)  # backoff primes the generator
    assert [sequence.send(failure(kind)) for kind in failures] == waits


@pytest.mark.parametrize(
    ("status", "body", "limited"),
    [
        pytest.param(429, b"", True, id="HTTP 429"),
        pytest.param(200, b'{"success": "false", "code": 429}', True, id="envelope code 429"),
        pytest.param(200, b'{"code": "429"}', False, id="code as text: not 429"),
        pytest.param(503, b"<html>busy</html>", False, id="5xx with a non-JSON body"),
    ],
)
def test_is_rate_limited(status: int, body: bytes, limited: bool) -> None:
    response = SimpleNamespace(status_code=status, content=body, headers={})
    assert is_rate_limited(response) is limited  # type: ignore[arg-type]


# --- 6. Settings --------------------------------------------------------------------------

TOKEN = "t0ken-" + "x" * 26
OTHER_TOKEN = "other-" + "y" * 26
BASE = {
    "bot_id": "b1",
    "customer_id": "c1",
    "bot_token": TOKEN,
    "api_url": "https://api.example.com",
}
DEFAULTS = {
    "api_url": "https://api.example.com",
    "auth_method": "x-bot-token",
    "bots": [("b1", "c1", TOKEN)],
    "start_date": None,
    "requests_per_minute": 100,
    "max_parallel_tokens": 16,
    "pages_in_flight": 8,
    "request_timeout": 60.0,
    "max_retries": 8,
    "undocumented_fields": "evolve",
    "max_undocumented_columns": 100,
    "scan_mode": "auto",
    "full_scan_every_hours": 24.0,
    "snake_case_fields": False,
}


def settings_view(settings: Settings) -> dict[str, Any]:
    view = {name: getattr(settings, name) for name in DEFAULTS if name != "bots"}
    view["bots"] = [(b.bot_id, b.customer_id, b.token) for b in settings.bots]
    return view


@pytest.mark.parametrize(
    ("config", "problems", "typed"),
    [
        pytest.param({}, [], {}, id="minimal config: no problems, every default"),
        pytest.param(
            {
                "requests_per_minute": "50",
                "request_timeout": "2.5",
                "max_retries": "3",
                "full_scan_every_hours": "0.5",
            },
            [],
            {
                "requests_per_minute": 50,
                "request_timeout": 2.5,
                "max_retries": 3,
                "full_scan_every_hours": 0.5,
            },
            id="numbers as text",
        ),
        pytest.param(
            {
                "requests_per_minute": "fast",
                "request_timeout": None,
                "max_retries": [],
                "full_scan_every_hours": "daily",
                "scan_mode": None,
                "undocumented_fields": "",
            },
            [],
            {},
            id="unreadable or empty values fall back to defaults",
        ),
        pytest.param(
            {"start_date": "2026-01-01T02:00:00+02:00"},
            [],
            {"start_date": "2026-01-01T00:00:00.000Z"},
            id="start_date normalised to UTC",
        ),
        pytest.param(
            {"start_date": "yesterday"},
            ["`start_date` must be an ISO 8601 date-time, got 'yesterday'."],
            {},
            id="unreadable start_date: a problem, and no start date",
        ),
        pytest.param(
            {"api_url": "https://api.example.com/"}, [], {}, id="api_url trailing slash dropped"
        ),
        pytest.param(
            {"api_url": "http://api.example.com"},
            ["`api_url` must use https://"],
            {"api_url": "http://api.example.com"},
            id="plain http to another host refused",
        ),
        pytest.param(
            {"api_url": "http://127.0.0.1:8080"},
            [],
            {"api_url": "http://127.0.0.1:8080"},
            id="plain http to loopback accepted",
        ),
        pytest.param(
            {"bot_id": None},
            ["Set `bot_id` (one bot) or `bots` (several)"],
            {"bots": []},
            id="neither bot_id nor bots",
        ),
        pytest.param(
            {
                "bot_id": None,
                "bots": [
                    {"bot_id": "b2"},
                    {"bot_id": "b3", "bot_token": OTHER_TOKEN, "customer_id": "c3"},
                ],
            },
            [],
            {"bots": [("b2", "c1", TOKEN), ("b3", "c3", OTHER_TOKEN)]},
            id="bots inherit token and customer; their own win",
        ),
        pytest.param(
            {"bots": [{"bot_id": "b2"}, {"bot_id": "b1"}]},
            ["`bots`/`bot_id` list bot b1 more than once."],
            {"bots": [("b1", "c1", TOKEN), ("b2", "c1", TOKEN), ("b1", "c1", TOKEN)]},
            id="bot_id first, then bots; a bot twice is a problem",
        ),
        pytest.param(
            {
                "bot_token": None,
                "customer_id": None,
                "bots": [{"bot_id": "b2", "bot_token": OTHER_TOKEN, "customer_id": "c2"}],
            },
            ["`bot_token` is required", "`customer_id` is required"],
            {"bots": [("b1", "", ""), ("b2", "c2", OTHER_TOKEN)]},
            id="bot_id without token or customer of its own",
        ),
        pytest.param(
            {
                "bot_id": None,
                "bot_token": None,
                "customer_id": None,
                "bots": [{"bot_id": "b2", "bot_token": OTHER_TOKEN, "customer_id": "c2"}],
            },
            [],
            {"bots": [("b2", "c2", OTHER_TOKEN)]},
            id="every bot with its own token and customer: none needed at the top",
        ),
        pytest.param(
            {"bot_token": "abc", "bots": [{"bot_id": "b2", "bot_token": "a\nbcdefghij"}]},
            [
                "`bot_token` is 3 characters long, too short",
                "`bots[0].bot_token` has a line break or control character",
            ],
            {"bots": [("b1", "c1", "abc"), ("b2", "c1", "a\nbcdefghij")]},
            id="placeholder token, token with a line break",
        ),
    ],
)
def test_settings(config: dict[str, Any], problems: list[str], typed: dict[str, Any]) -> None:
    merged = {**BASE, **config}
    found = setting_problems(merged)
    assert len(found) == len(problems), found
    for problem, expected in zip(found, problems, strict=True):
        assert problem.startswith(expected)
    assert settings_view(Settings.from_config(merged, ())) == {**DEFAULTS, **typed}


@pytest.mark.parametrize(
    ("auth_method", "headers"),
    [
        pytest.param(None, {"x-bot-token": TOKEN}, id="default: x-bot-token header"),
        pytest.param(
            "bearer",
            {"Authorization": f"Bearer {TOKEN}", "authtype": "Key"},
            id="bearer: Authorization and authtype Key",
        ),
    ],
)
def test_bot_headers(auth_method: str | None, headers: dict[str, str]) -> None:
    settings = Settings.from_config({**BASE, "auth_method": auth_method}, ())
    assert dict(settings.bots[0].headers) == headers
