"""Timestamps and state the tap did not write: nothing lost when they misbehave (issue 34).

Each test is one way a value the tap did not produce (a record's time, the API's clock, a
state file, a repeated page, a `Retry-After`) could make a run stop too early or drop records,
tried through HTTP against the sandbox: a future timestamp, an API clock behind the tap's,
timestamps to the second, a broken or edited state file, a bookmark in 2099, a page served
twice, a duplicate id teaching a wrong page size, odd `Retry-After`s, a conversation moving
to the other stream without a new `updatedAt`.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tap_botpenguin.sandbox import SANDBOX_TOKEN, Bot, Fault, Sandbox, make_inbox

from .helpers import (
    SyncResult,
    logged,
    pages_requested,
    run_cli,
    run_in_process,
    tap_at,
)

BOT = "f" * 24
CUSTOMER = "c" * 24
#: A day the tests' runs happen on (the sandbox's data lies before it).
T0 = datetime.now(timezone.utc).replace(microsecond=400_000)


def _listing(
    records: int, *, order: str = "updated", page_size: int = 10, **options: Any
) -> Sandbox:
    """One bot's leads, every conversation with a last message at its `updatedAt`, but for
    every third, whose status changed 90 minutes later (so `updatedAt` is no order of theirs
    when they are listed by last message)."""
    leads = make_inbox("trust", records, T0 - timedelta(hours=2))
    for number, lead in enumerate(leads):
        lead["lastMessage"] = {"at": lead["updatedAt"], "by": "user", "text": "hi"}
        if number % 3 == 2:
            later = datetime.fromisoformat(lead["updatedAt"]) + timedelta(minutes=90)
            lead["updatedAt"] = later.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    bot = Bot(BOT, CUSTOMER, SANDBOX_TOKEN, leads=leads, chats=[])
    return Sandbox(bots=[bot], order=order, page_size=page_size, rate_limit=None, **options)


def _config(sandbox: Sandbox, **extra: Any) -> dict[str, Any]:
    return {
        "bot_token": SANDBOX_TOKEN,
        "customer_id": CUSTOMER,
        "bot_id": BOT,
        "api_url": sandbox.url,
        "max_retries": 3,
        **extra,
    }


def _run(
    sandbox: Sandbox, at: datetime, state: dict[str, Any] | None = None, **extra: Any
) -> SyncResult:
    result = run_in_process(_config(sandbox, **extra), state=state, tap_class=tap_at(at, sandbox))
    assert result.error is None, result.error
    return result


def _partition(state: dict[str, Any], stream: str = "leads") -> dict[str, Any]:
    [partition] = state["bookmarks"][stream]["partitions"]
    return partition  # type: ignore[no-any-return]


def _ids(result: SyncResult, stream: str = "leads") -> set[str]:
    return {r["_id"] for r in result.records.get(stream, [])}


# --- a record's time ahead of the API's clock ----------------------------------------------


@pytest.mark.parametrize(
    ("order", "key"), [("last_message", "lastMessage.at"), ("created", "createdAt")]
)
def test_a_future_timestamp_never_becomes_the_cutoff(
    order: str, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    """One conversation says 2027 (a bot's clock, a bad import): it sorts first forever. The
    early stop must still reach every conversation the order brought above the cutoff."""
    future = "2027-01-01T00:00:00.000Z"
    with _listing(60, order=order) as sandbox:
        first = _run(sandbox, T0)
        assert _partition(first.final_state)["scan"]["order_key"] == key
        field = {"createdAt": future} if key == "createdAt" else {"lastMessage": {"at": future}}
        [odd] = sandbox.update(BOT, "lead", [30], message=False, fields=field, at=T0)
        with caplog.at_level(logging.INFO):
            after = _run(sandbox, T0 + timedelta(hours=25), first.final_state)  # a full scan
        assert odd in _ids(after)  # emitted as sent
        scan = _partition(after.final_state)["scan"]
        assert scan["order_key"] == key
        assert scan["newest_seen"] < future  # the API's clock said 2026
        warning = next(m for m in logged(caplog, level=logging.WARNING) if odd in m)
        assert f"record {odd} on page 1 has {key} {future}, ahead of the API's clock" in warning

        # 15 new conversations (or new messages), below the one from 2027.
        at = T0 + timedelta(hours=25, minutes=30)
        if key == "createdAt":
            new = sandbox.add(BOT, "lead", 15, at=at)
        else:
            new = sandbox.update(BOT, "lead", range(20, 35), at=at)
        later = _run(sandbox, T0 + timedelta(hours=26), after.final_state)

    assert set(new) <= _ids(later), "an early stop cut off at 2027 misses them"


def test_a_newest_value_in_the_state_ahead_of_the_api_clock_is_corrected_by_a_full_scan(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A state from a version that kept a 2027 value: the run is a full scan, not a stop
    after page 1, and what it measured replaces the value (newest values can fall)."""
    with _listing(60, order="last_message") as sandbox:
        first = _run(sandbox, T0)
        state = json.loads(json.dumps(first.final_state))
        _partition(state)["scan"]["newest_seen"] = "2027-01-01T00:00:00.000Z"
        new = sandbox.update(BOT, "lead", range(20, 35), at=T0 + timedelta(minutes=30))
        before = len(sandbox.listing_requests())
        with caplog.at_level(logging.INFO):
            second = _run(sandbox, T0 + timedelta(hours=1), state)
        assert pages_requested(sandbox, BOT, "lead", since=before) == list(range(1, 8))

    assert set(new) <= _ids(second)
    assert len(_ids(second)) == 60  # a full scan emits every record
    assert _partition(second.final_state)["scan"]["newest_seen"] < "2027"
    assert any(
        "the newest lastMessage.at in the state is ahead of the API's clock" in m
        for m in logged(caplog, level=logging.WARNING)
    )


# --- the API's clock, and times to the second ------------------------------------------------


@pytest.mark.parametrize("clock", ["10 min behind", "times to the second"])
def test_a_message_during_a_full_scan_comes_with_the_next_run(clock: str) -> None:
    """Listed by last message. While the full scan reads page 2, X on page 1 gets a message
    (to the top, already read) and Y on a later page a status change, a second later (read
    with it). X's time is below Y's: a bookmark capped at the tap's clock (10 minutes ahead
    of the API's, or with milliseconds the API does not send) lets Y's time pass and drops X
    from the next run. Capped at when the API read page 1, it keeps X."""
    skewed = clock == "10 min behind"
    precision = "ms" if skewed else "seconds"
    with _listing(60, order="last_message", precision=precision) as sandbox:
        tap = tap_at(T0, sandbox)
        api_now = T0 - timedelta(minutes=10) if skewed else T0
        sandbox.set_clock(api_now)
        moved: list[str] = []

        def during_the_scan(live: Sandbox, request: Any) -> None:
            if request.params.get("page") == "2" and not moved:
                moved.extend(live.update(BOT, "lead", [3], at=api_now))
                live.update(BOT, "lead", [40], message=False, at=api_now + timedelta(seconds=1))

        sandbox.before_answer = during_the_scan
        first = run_in_process(_config(sandbox), tap_class=tap)
        sandbox.before_answer = None
        assert first.error is None
        second = _run(sandbox, T0 + timedelta(hours=1), first.final_state)

    assert moved[0] in _ids(second)


# --- state files the tap did not write ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param(
            '{"bookmarks": {"leads": {"partitions": [{"con', "is not valid JSON", id="cut"
        ),
        pytest.param("", "is empty", id="empty"),
        pytest.param("[]", "holds a JSON array, not an object", id="a list"),
    ],
)
def test_a_state_file_that_cannot_be_read_stops_the_run_in_one_line(
    tmp_path: Path, text: str, problem: str
) -> None:
    with _listing(20) as sandbox:
        state_file = tmp_path / "state.json"
        state_file.write_text(text)
        result = run_cli(_config(sandbox), tmp_path, args=["--state", str(state_file)])
        assert sandbox.listing_requests() == []  # nothing read, nothing lost

    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "| ERROR" in line]
    assert len(errors) == 1, result.stderr
    assert f"The state file {state_file} {problem}" in errors[0]
    assert "remove it to read everything again" in errors[0]


@pytest.mark.parametrize(
    ("state", "warning"),
    [
        pytest.param(
            {"bookmarks": ["leads"]},
            "`bookmarks` is a JSON array, not an object: ignored",
            id="bookmarks a list",
        ),
        pytest.param(
            {"bookmarks": {"leads": {"partitions": "abc"}}},
            "`bookmarks.leads.partitions` is a JSON string, not a list: ignored",
            id="partitions a string",
        ),
        pytest.param(
            {"bookmarks": {"leads": {"partitions": [7]}}},
            "`bookmarks.leads.partitions[0]` is not an object with a `context` object",
            id="a partition a number",
        ),
        pytest.param(
            {
                "bookmarks": {
                    "leads": {
                        "partitions": [
                            {
                                "context": {"botId": BOT},
                                "replication_key": "updatedAt",
                                "replication_key_value": "soon",
                                "scan": {"order_key": "updatedAt", "pages": "ten"},
                            }
                        ]
                    }
                }
            },
            "the bookmark 'soon' is not a date-time: ignored",
            id="a bookmark that is no date",
        ),
    ],
)
def test_a_state_of_the_wrong_shape_is_ignored_with_a_warning_and_read_in_full(
    tmp_path: Path, state: dict[str, Any], warning: str
) -> None:
    with _listing(30) as sandbox:
        result = run_cli(_config(sandbox), tmp_path, state=state)
        assert pages_requested(sandbox, BOT, "lead") == [1, 2, 3, 4]

    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if "| WARNING" in line]
    assert any("state: " in line and warning in line for line in warnings), result.stderr
    assert len(_ids(result)) == 30
    assert _partition(result.final_state)["replication_key_value"] < "2027"


def test_a_bookmark_in_2099_is_corrected_as_a_future_full_scan_time_is(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An edited state (or a clock gone wrong) says 2099: no run may stop emitting."""
    with _listing(30) as sandbox:
        first = _run(sandbox, T0)
        state = json.loads(json.dumps(first.final_state))
        _partition(state)["replication_key_value"] = "2099-01-01T00:00:00.000Z"
        with caplog.at_level(logging.INFO):
            second = _run(sandbox, T0 + timedelta(hours=1), state)
        changed = sandbox.update(BOT, "lead", [5], at=T0 + timedelta(hours=1, minutes=5))
        third = _run(sandbox, T0 + timedelta(hours=2), second.final_state)

    assert len(_ids(second)) == 30  # every record: a full scan
    assert _partition(second.final_state)["replication_key_value"] < "2027"
    assert set(changed) <= _ids(third)
    assert any(
        "the bookmark 2099-01-01T00:00:00.000Z in the state is ahead of the API's clock" in m
        for m in logged(caplog, level=logging.WARNING)
    )


# --- a listing's end, proven --------------------------------------------------------------------


def test_a_page_repeated_once_during_the_first_load_is_asked_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with _listing(100) as sandbox:
        sandbox.inject(Fault("repeat", page=4, times=1))
        with caplog.at_level(logging.INFO):
            first = _run(sandbox, T0)
        assert pages_requested(sandbox, BOT, "lead") == [1, 2, 3, 4, 4, *range(5, 12)]

    assert Counter(r["_id"] for r in first.records["leads"]) == Counter(
        r["_id"] for r in sandbox.listing(BOT, "lead")
    )
    assert logged(caplog, level=logging.WARNING) == []
    assert "page 4 repeats page 3: asking for it once more" in " ".join(caplog.messages)


def test_a_page_holding_an_id_twice_teaches_no_page_size() -> None:
    """Pages of 10; page 1 holds one of its records twice (11 rows). A size of 11 would later
    call a page 1 of 10 records, repeated by an API that ignores `page`, a one-page listing."""
    with _listing(100) as sandbox:
        twice = Fault("data", page=1, type="lead", transform=lambda rows: [*rows, rows[0]])
        sandbox.inject(twice)
        first = _run(sandbox, T0)
        assert _partition(first.final_state)["scan"]["page_size"] == 10
        sandbox.inject(Fault("ignore_page", times=None))
        second = run_in_process(
            _config(sandbox), first.final_state, tap_at(T0 + timedelta(hours=25), sandbox)
        )

    assert "page 1 is full (10 records; the API's pages hold 10)" in str(second.error)
    assert "the API is ignoring `page`" in str(second.error)


def test_a_page_size_from_an_edited_state_never_lets_an_api_ignoring_page_pass(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The state says pages hold 11; they hold 10 and the API ignores `page`: page 2 repeats
    page 1's 10 records. The state's size is a hint, not evidence: the same warning and kept
    bookmark as without it, not a one-page listing taken as read."""
    with _listing(100) as sandbox:
        first = _run(sandbox, T0)
        state = json.loads(json.dumps(first.final_state))
        _partition(state)["scan"]["page_size"] = 11
        sandbox.add(BOT, "lead", 3, at=T0 + timedelta(minutes=10))
        sandbox.inject(Fault("ignore_page", times=None))
        with caplog.at_level(logging.INFO):
            second = _run(sandbox, T0 + timedelta(hours=25), state)  # a full scan

    assert any(
        "page 2 repeats page 1 (10 records) and no page size is known yet" in m
        for m in logged(caplog, level=logging.WARNING)
    )
    kept = _partition(second.final_state)
    assert kept["replication_key_value"] == _partition(state)["replication_key_value"]
    assert kept["scan"] == _partition(state)["scan"]


# --- Retry-After ---------------------------------------------------------------------------------


def test_a_retry_after_of_zero_negative_or_past_waits_the_usual_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Three tokens read side by side, each refused once with an unusable `Retry-After`."""
    odd = ["0", "-1", "Thu, 01 Jan 2015 00:00:00 GMT"]
    bots = [
        Bot(f"{n}" * 24, CUSTOMER, f"token-{n}-for-retry-after", leads=make_inbox(f"r{n}", 5))
        for n in range(3)
    ]
    with Sandbox(bots=bots, rate_limit=None) as sandbox:
        for bot, retry_after in zip(bots, odd, strict=True):
            sandbox.inject(
                Fault("status", status=429, retry_after=retry_after, bot_id=bot.bot_id, type="lead")
            )
        config = {
            "customer_id": CUSTOMER,
            "bots": [{"bot_id": b.bot_id, "bot_token": b.token} for b in bots],
            "api_url": sandbox.url,
            "max_retries": 2,
        }
        with caplog.at_level(logging.INFO):
            result = run_in_process(config)
        assert result.error is None, result.error
        for bot in bots:
            tries = [
                r.at
                for r in sandbox.listing_requests()
                if r.params["botId"] == bot.bot_id and r.params["type"] == "lead"
            ]
            assert tries[1] - tries[0] >= 5.0, bot.bot_id  # never at once

    waits = [m for m in logged(caplog, level=logging.WARNING) if "429 Too Many Requests" in m]
    assert len(waits) == 3
    assert all("retrying in 5.0 s (attempt 1 of 2)" in m for m in waits)


# --- a conversation that changes listing --------------------------------------------------------


def test_a_conversation_moved_to_the_other_listing_without_a_new_update_comes_with_a_full_scan(
    caplog: pytest.LogCaptureFixture,
) -> None:
    leads = make_inbox("trust-leads", 30, T0 - timedelta(hours=2))
    chats = make_inbox("trust-chats", 30, T0 - timedelta(hours=2))
    bot = Bot(BOT, CUSTOMER, SANDBOX_TOKEN, leads=leads, chats=chats)
    with Sandbox(bots=[bot], page_size=10, rate_limit=None) as sandbox:
        first = _run(sandbox, T0)
        second = _run(sandbox, T0 + timedelta(hours=25), first.final_state)  # full scans
        moved = sandbox.move(BOT, "non-lead", "lead", 12, updated=False)
        quiet = _run(sandbox, T0 + timedelta(hours=26), second.final_state)
        with caplog.at_level(logging.INFO):
            full = _run(sandbox, T0 + timedelta(hours=50), quiet.final_state)

    assert moved not in _ids(quiet)  # an early stop cannot see it: nothing changed at the top
    assert moved in _ids(full, "leads")
    assert f"leads bot {BOT}: full scan (last one 25 h ago)" in caplog.messages
