"""Every plausible listing order pays off: runs cost what changed, and nothing is lost.

A day of changes before every run (`daily_changes`), in each order the sandbox serves: the
runs between the daily full scans read the top of the listing only, and every change is
emitted by the next run when the order brings it to the top, else by the next full scan.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tap_botpenguin.sandbox import SANDBOX_TOKEN, Bot, Sandbox, make_inbox

from .daily_changes import run_days
from .helpers import pages_requested, run_in_process, tap_at

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
BOT = "f" * 24


@pytest.mark.parametrize("order", ["updated", "last_message", "created"])
def test_runs_between_full_scans_read_what_changed_in_every_order(order: str) -> None:
    trial = run_days(order, leads=400, days=2, runs_per_day=4)

    assert [run.full for run in trial.runs] == [True, False, False, False] * 2 + [True]
    assert trial.lost() == []
    steady = trial.steady()
    assert len(steady) == 3
    for run in steady:  # 400 leads, 20 pages: the top page and the one older than the cutoff
        assert run.requests <= min(run.changed_pages + 2, 2), trial.runs
    # The full scans emit what the order could not bring to the top: in these orders,
    # status-only changes (and, listed by creation, new messages) wait for them.
    waiting = {c.kind for c in trial.changes if c.record_id not in trial.runs[c.before_run].emitted}
    expected = {"updated": set(), "last_message": {"status"}, "created": {"status", "message"}}
    assert waiting == expected[order]


def test_a_listing_in_no_known_order_is_read_in_full_every_run() -> None:
    trial = run_days("unordered", leads=200, days=1, runs_per_day=2)

    # Every run reads every page; the daily full scan emits every record, the runs between
    # what changed since the bookmark.
    assert [run.full for run in trial.runs] == [True, False, True]
    assert len(trial.runs[1].emitted) < 200 + 2 <= len(trial.runs[2].emitted)
    for number, run in enumerate(trial.runs):  # every page and the empty one after them
        assert run.requests == -(-(200 + 2 * number) // 20) + 1
    assert trial.lost() == []


def _leads_sandbox(order: str) -> Sandbox:
    bot = Bot(BOT, "a" * 24, SANDBOX_TOKEN, leads=make_inbox("orders", 200, NOW), chats=[])
    return Sandbox(bots=[bot], page_size=20, order=order, rate_limit=None)


def _config(sandbox: Sandbox) -> dict[str, Any]:
    return {
        "bot_token": SANDBOX_TOKEN,
        "customer_id": "a" * 24,
        "bot_id": BOT,
        "api_url": sandbox.url,
    }


def _scan(state: dict[str, Any]) -> dict[str, Any]:
    scan: dict[str, Any] = state["bookmarks"]["leads"]["partitions"][0]["scan"]
    return scan


def test_the_plan_line_names_the_key_and_the_next_full_scan(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with _leads_sandbox("created") as sandbox:
        first = run_in_process(_config(sandbox), tap_class=tap_at(NOW, sandbox))
        new = sandbox.add(BOT, "lead", 3, at=NOW + timedelta(minutes=30))
        before = len(sandbox.listing_requests())
        with caplog.at_level(logging.INFO):
            second = run_in_process(
                _config(sandbox), first.final_state, tap_at(NOW + timedelta(hours=5), sandbox)
            )

        assert pages_requested(sandbox, BOT, "lead", since=before) == [1]
    assert _scan(first.final_state)["order_key"] == "createdAt"
    assert (
        f"leads bot {BOT}: reading until past the bookmark (listed newest createdAt first; "
        "next full scan in 19 h)"
    ) in caplog.messages
    assert set(new) <= {r["_id"] for r in second.records["leads"]}


def test_a_state_written_before_orders_were_told_apart_is_upgraded() -> None:
    """`"newest_first": true` from an earlier version: the listing is newest `updatedAt`
    first, the next run stops early, and the state it writes names the key."""
    with _leads_sandbox("updated") as sandbox:
        first = run_in_process(_config(sandbox), tap_class=tap_at(NOW, sandbox))
        old = first.final_state
        scan = _scan(old)
        assert scan.pop("order_key") == "updatedAt"
        scan["newest_first"] = True
        changed = sandbox.update(BOT, "lead", [150, 160], at=NOW + timedelta(minutes=5))
        before = len(sandbox.listing_requests())

        second = run_in_process(_config(sandbox), old, tap_at(NOW + timedelta(hours=1), sandbox))

        assert pages_requested(sandbox, BOT, "lead", since=before) == [1]
    assert set(changed) <= {r["_id"] for r in second.records["leads"]}
    upgraded = _scan(second.final_state)
    assert upgraded["order_key"] == "updatedAt"
    assert "newest_first" not in upgraded
