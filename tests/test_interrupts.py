"""Kill the tap (SIGTERM or SIGKILL) at random points of a multi-page, multi-bot sync and
resume from the last STATE it emitted; the union of emitted records must hold every record.

`python -m tests.test_interrupts --trials 200` runs more trials and prints the report the
docs/reliability.md quotes.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tap_botpenguin.sandbox import Sandbox

from .helpers import (
    ALL_BOTS,
    STREAM_TYPES,
    base_config,
    fresh_bots,
    own_token_config,
    own_tokens,
    run_cli,
    run_in_process,
)

TRIALS = 12
#: The newest-first orders the tap follows (`listing.order`); trials go through them in turn.
ORDERED = ("updated", "last_message", "created")


def _seeds(count: int, offset: int = 0) -> list[tuple[int, str]]:
    """`count` seeds, each with the listing order its trial runs in."""
    return [(offset + n, ORDERED[n % len(ORDERED)]) for n in range(count)]


@dataclass
class Trial:
    """One seeded trial: how many runs it took, how often it was killed, what was lost."""

    runs: int
    kills: int
    lost: int


def _bookmarks(state: dict[str, Any] | None) -> dict[tuple[str, str], str]:
    return {
        (stream, partition["context"]["botId"]): partition["replication_key_value"]
        for stream, bookmarks in ((state or {}).get("bookmarks") or {}).items()
        for partition in bookmarks.get("partitions", [])
        if "replication_key_value" in partition
    }


def _run_once(
    config: Path, state: dict[str, Any] | None, tmp: Path, kill_after: int | None, sig: int
) -> tuple[set[tuple[str, str, str]], dict[str, Any] | None, bool, bool]:
    """One tap run: records it emitted, its last STATE, whether it was killed, finished.

    A resumed run must start from the bookmarks it was given: its first STATE carries them.
    """
    command = [sys.executable, "-m", "tap_botpenguin", "--config", str(config)]
    if state is not None:
        state_file = tmp / "state.json"
        state_file.write_text(json.dumps(state))
        command += ["--state", str(state_file)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    emitted: set[tuple[str, str, str]] = set()
    last_state = state
    first_state: dict[str, Any] | None = None
    killed = False
    for count, line in enumerate(process.stdout, start=1):
        if not line.endswith(b"\n"):
            break  # the kill cut this line short: it was never emitted
        message = json.loads(line)
        if message["type"] == "RECORD":
            record = message["record"]
            emitted.add((message["stream"], record["botId"], record["_id"]))
        elif message["type"] == "STATE":
            last_state = message["value"]
            if first_state is None and state is not None:
                first_state = last_state
                assert _bookmarks(first_state) == _bookmarks(state), "--state was not read"
        if kill_after is not None and count >= kill_after and not killed:
            process.send_signal(sig)
            killed = True
    code = process.wait(timeout=120)
    return emitted, last_state, killed, code == 0 and not killed


def run_trial(
    seed: int,
    sandbox: Sandbox,
    tmp: Path,
    state: dict[str, Any] | None = None,
    expected: set[tuple[str, str, str]] | None = None,
    *,
    own: bool = False,
    settings: dict[str, Any] | None = None,
) -> Trial:
    """Runs until one completes, killing up to three; `expected` defaults to every record."""
    rng = random.Random(seed)
    config = tmp / "config.json"
    # Bots with tokens of their own are read side by side (`max_parallel_tokens`).
    make_config = own_token_config if own else base_config
    options = {"requests_per_minute": 100_000, **(settings or {})}
    config.write_text(json.dumps(make_config(sandbox, **options)))
    if expected is None:
        expected = {
            (stream, bot, record_id)
            for stream, kind in STREAM_TYPES.items()
            for (bot, record_id) in sandbox.all_records(kind)
        }
    emitted: set[tuple[str, str, str]] = set()
    runs = kills = 0
    while True:
        runs += 1
        # Up to three interruptions per trial, each after a random number of output lines.
        kill_after = rng.randint(1, 600) if kills < 3 else None
        sig = rng.choice([signal.SIGTERM, signal.SIGKILL])
        got, state, killed, finished = _run_once(config, state, tmp, kill_after, sig)
        emitted |= got
        kills += killed
        if finished:
            break
        assert runs < 10, "the sync never completed"
    return Trial(runs=runs, kills=kills, lost=len(expected - emitted))


@pytest.mark.parametrize(("seed", "order"), _seeds(TRIALS))
def test_no_record_is_lost_across_kills_and_resumes(seed: int, order: str, tmp_path: Path) -> None:
    with Sandbox(bots=fresh_bots(), rate_limit=None, order=order) as sandbox:
        trial = run_trial(seed, sandbox, tmp_path)

    assert trial.lost == 0
    assert trial.runs >= 1


@pytest.mark.parametrize(("seed", "order"), _seeds(TRIALS // 2, 100))
def test_no_record_is_lost_across_kills_of_tokens_read_side_by_side(
    seed: int, order: str, tmp_path: Path
) -> None:
    """Each bot with its own token: its listings are read ahead by a worker while the
    main thread emits another's; a kill loses what was read and not emitted, never more."""
    bots = own_tokens(fresh_bots())
    with Sandbox(bots=bots, rate_limit=None, latency=0.002, order=order) as sandbox:
        trial = run_trial(seed, sandbox, tmp_path, own=True)

    assert trial.lost == 0
    assert trial.runs >= 1


@pytest.mark.parametrize(("seed", "order"), _seeds(TRIALS // 2, 200))
def test_no_record_is_lost_across_kills_of_runs_reading_pages_ahead(
    seed: int, order: str, tmp_path: Path
) -> None:
    """Windows of pages in flight (an allowance no answer time uses one at a time): a kill
    loses the pages read ahead and not emitted, never a record."""
    options = {"page_size": 10, "latency": 0.02, "order": order}
    with Sandbox(bots=fresh_bots(), rate_limit=None, **options) as sandbox:
        settings = {"requests_per_minute": 10**9, "pages_in_flight": 4}
        trial = run_trial(seed, sandbox, tmp_path, settings=settings)
        checks = _page_1_asked_again(sandbox, trial.runs)

    assert trial.lost == 0
    assert checks > 0, "no page was read ahead"


def _page_1_asked_again(sandbox: Sandbox, runs: int) -> int:
    """Requests for page 1 beyond one per listing and run: the windows' checks."""
    asked: dict[tuple[str, str], int] = {}
    for request in sandbox.listing_requests():
        if request.params["page"] == "1":
            key = (request.params["botId"], request.params["type"])
            asked[key] = asked.get(key, 0) + 1
    return sum(max(0, count - runs) for count in asked.values())


@pytest.mark.parametrize(("seed", "order"), _seeds(TRIALS // 2))
def test_no_change_is_lost_across_kills_of_runs_that_stop_early(
    seed: int, order: str, tmp_path: Path
) -> None:
    """The listings are verified newest first, so every run stops after the changed pages:
    new conversations, and new messages where the order brings them to the top. Odd seeds:
    every bot with its own token (read side by side)."""
    rng = random.Random(seed)
    own = seed % 2 == 1
    bots = own_tokens(fresh_bots()) if own else fresh_bots()
    with Sandbox(bots=bots, rate_limit=None, order=order) as sandbox:
        complete = run_in_process((own_token_config if own else base_config)(sandbox))
        changed = set()
        for stream, kind in STREAM_TYPES.items():
            for bot_id in ALL_BOTS:
                new = sandbox.add(bot_id, kind, rng.randint(1, 10), seed=f"trial{seed}")
                if order != "created":  # listed by creation, a message leaves it in place
                    new += sandbox.touch(bot_id, kind, rng.randint(1, 10))
                changed |= {(stream, bot_id, record_id) for record_id in new}
        before = len(sandbox.listing_requests())
        trial = run_trial(
            seed, sandbox, tmp_path, state=complete.final_state, expected=changed, own=own
        )
        reread = len(sandbox.listing_requests()) - before

    assert trial.lost == 0
    # However often it was killed, each run read only the top of each listing.
    listings = len(ALL_BOTS) * len(STREAM_TYPES)
    assert reread <= trial.runs * (listings + 4)


def main() -> None:
    parser = argparse.ArgumentParser(description="Interrupted-run trials (see module docstring).")
    parser.add_argument("--trials", type=int, default=100)
    args = parser.parse_args()
    totals = Trial(0, 0, 0)
    with (
        Sandbox(bots=fresh_bots(), rate_limit=None) as sandbox,
        tempfile.TemporaryDirectory() as tmp,
    ):
        records = sum(len(sandbox.all_records(kind)) for kind in STREAM_TYPES.values())
        for seed in range(args.trials):
            trial = run_trial(seed, sandbox, Path(tmp))
            totals = Trial(
                totals.runs + trial.runs, totals.kills + trial.kills, totals.lost + trial.lost
            )
    print(
        f"{args.trials} trials over {records} records of {len(ALL_BOTS)} bots: "
        f"{totals.kills} kills (SIGTERM/SIGKILL), {totals.runs} tap runs, "
        f"{totals.lost} records lost"
    )


if __name__ == "__main__":
    main()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_stopped_run_writes_its_state_and_does_not_report_success(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """A scheduler that stops a run at its time limit must not record a success."""
    with Sandbox(bots=fresh_bots(), rate_limit=None, latency=0.05) as sandbox:
        config = tmp_path / "config.json"
        config.write_text(json.dumps(base_config(sandbox)))
        command = [sys.executable, "-m", "tap_botpenguin", "--config", str(config)]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert process.stdout is not None
        lines = []
        for line in process.stdout:  # stop it once records flow
            lines.append(line)
            if '"type":"RECORD"' in line.replace(" ", ""):
                break
        process.send_signal(sig)
        out, err = process.communicate(timeout=60)
    lines += out.splitlines(keepends=True)
    messages = [json.loads(line) for line in lines if line.startswith("{")]

    assert process.returncode == 128 + sig
    assert messages[-1]["type"] == "STATE"
    assert f"stopped by {sig.name}: the last STATE covers every record sent" in err
    assert "Traceback" not in err


def test_each_finished_listing_is_in_a_state_before_the_next_listing_is_emitted(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A target stopped together with the tap (Meltano sends SIGTERM to both) never reads the
    tap's last STATE; the bookmark of a listing read to its end must already be out."""
    result = run_cli(base_config(sandbox, requests_per_minute=100_000), tmp_path)

    assert result.exit_code == 0, result.stderr[-2000:]
    first_bot = ALL_BOTS[0]
    seen: set[tuple[str, str]] = set()  # listings whose records came, in order
    for message in result.messages:
        if message["type"] == "RECORD":
            listing = (message["stream"], message["record"]["botId"])
            if listing not in seen and seen:
                break  # the second listing's first record
            seen.add(listing)
        elif message["type"] == "STATE" and seen:
            [(stream, bot_id)] = seen
            assert bot_id == first_bot
            assert _bookmarks(message["value"]).get((stream, bot_id))
            return
    pytest.fail("no STATE between the first listing's records and the next listing's")
