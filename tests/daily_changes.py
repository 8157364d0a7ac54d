"""A day of changes, run after run, in a listing served in a given order (issue 22's trial).

One bot's leads; before every run (several a day, `full_scan_every_hours: 24`): two
conversations get a new message, one a status-only change, two new conversations arrive.
Each run's cost (lead requests; the pages the changes sit on) and what it emitted are kept,
and `lost` checks the tap's promise: what the order brings to the top is emitted by the next
run; every other change by the next full scan. Used by tests/test_orders.py and by
benchmarks/orders.py (which prints the figures at the issue's size).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from tap_botpenguin.sandbox import SANDBOX_TOKEN, Bot, Sandbox, make_inbox
from tap_botpenguin.sandbox.data import STATUSES

from .helpers import pages_requested, run_in_process, tap_at

BOT = "d" * 24
CUSTOMER = "e" * 24
START = datetime(2026, 6, 1, 6, 0, tzinfo=timezone.utc)
#: What each order brings to the top of the listing (`listing.order`).
SURFACED = {
    "updated": {"message", "status", "new"},
    "last_message": {"message", "new"},
    "created": {"new"},
    "unordered": {"message", "status", "new"},  # every run is a full scan there
}


@dataclass
class Change:
    """A change made before run `before_run`: which record, of what kind, to what time."""

    record_id: str
    kind: str
    updated_at: str
    before_run: int


@dataclass
class RunFigures:
    """One run: a full scan or not, its lead requests, the pages its changes were on."""

    full: bool
    requests: int
    changed_pages: int
    emitted: dict[str, str] = field(default_factory=dict)  # _id -> updatedAt


@dataclass
class Trial:
    """Every run of a trial, and the changes made along the way."""

    order: str
    runs: list[RunFigures]
    changes: list[Change]

    def lost(self) -> list[Change]:
        """Changes not emitted by the run the promise names (with that `updatedAt` or later)."""
        missed = []
        for change in self.changes:
            last = change.before_run
            if change.kind not in SURFACED[self.order]:  # by the next full scan
                last = next(
                    (n for n in range(last, len(self.runs)) if self.runs[n].full), len(self.runs)
                )
            emitted = [
                run.emitted.get(change.record_id, "")
                for run in self.runs[change.before_run : last + 1]
            ]
            if not any(value >= change.updated_at for value in emitted):
                missed.append(change)
        return missed

    def steady(self) -> list[RunFigures]:
        """Incremental runs after the first full scan that followed changes."""
        scans = [n for n, run in enumerate(self.runs) if run.full and n > 0]
        return [run for run in self.runs[scans[0] + 1 :] if not run.full] if scans else []


def run_days(
    order: str,
    *,
    leads: int = 2000,
    page_size: int = 20,
    days: int = 2,
    runs_per_day: int = 4,
    seed: int = 0,
) -> Trial:
    """A first full run, then `days` of `runs_per_day` runs with changes before each."""
    rng = random.Random(f"{order}:{seed}")
    bot = Bot(BOT, CUSTOMER, SANDBOX_TOKEN, leads=make_inbox(f"days{seed}", leads, START))
    trial = Trial(order, [], [])
    with Sandbox(bots=[bot], page_size=page_size, order=order, rate_limit=None) as server:
        config = {
            "bot_token": SANDBOX_TOKEN,
            "customer_id": CUSTOMER,
            "bot_id": BOT,
            "api_url": server.url,
            "full_scan_every_hours": 24,
        }
        state = None
        step = timedelta(hours=24 / runs_per_day)
        for number in range(days * runs_per_day + 1):
            now = START + timedelta(minutes=10) + number * step
            changed: set[str] = set()
            if number:
                changed = _change(server, rng, trial, number, now - step / 2)
            listing = [record["_id"] for record in server.listing(BOT, "lead")]
            pages = {listing.index(i) // page_size for i in changed if i in listing}
            before = len(server.listing_requests())
            result = run_in_process(config, state=state, tap_class=tap_at(now, server))
            assert result.error is None, result.error
            state = result.final_state
            scan = state["bookmarks"]["leads"]["partitions"][0]["scan"]
            trial.runs.append(
                RunFigures(
                    full=scan["last_full_scan_at"] == now.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                    requests=len(pages_requested(server, BOT, "lead", since=before)),
                    changed_pages=len(pages),
                    emitted={r["_id"]: r["updatedAt"] for r in result.records.get("leads", [])},
                )
            )
    return trial


def _change(
    server: Sandbox, rng: random.Random, trial: Trial, number: int, at: datetime
) -> set[str]:
    """The day's changes: 2 new messages, 1 status-only change, 2 new conversations."""
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    size = len(server.listing(BOT, "lead"))
    made = [
        ("message", server.update(BOT, "lead", rng.sample(range(size), 2), at=at)),
        (
            "status",
            server.update(
                BOT,
                "lead",
                [rng.randrange(size)],
                message=False,
                status=rng.choice(STATUSES),
                at=at,
            ),
        ),
        ("new", server.add(BOT, "lead", 2, seed=f"day{number}", at=at)),
    ]
    ids = set()
    for kind, record_ids in made:
        for record_id in record_ids:
            trial.changes.append(Change(record_id, kind, stamp, number))
            ids.add(record_id)
    return ids
