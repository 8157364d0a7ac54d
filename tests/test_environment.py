"""The machine around the tap misbehaving: a full temporary directory, few file descriptors,
thousands of tokens, a main thread that cannot keep up.

Pages read ahead by the workers wait in memory and temporary files (`concurrency.buffer`),
within one budget per run: neither may cost a record or fail a run, and what the workers hold
does not grow with the number of tokens. The limits are the operating system's own
(`setrlimit` in the tap's process), not stubs.
"""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tap_botpenguin.concurrency.buffer import RUN_PAGES_IN_MEMORY
from tap_botpenguin.sandbox import SANDBOX_CUSTOMER, Bot, Sandbox, make_inbox
from tap_botpenguin.sandbox.faults import ReceivedRequest

from .helpers import STREAM_TYPES, base_config, fresh_bots, own_token_config, own_tokens


def _run_limited(
    config: dict[str, object], tmp_path: Path, limit: Callable[[], None]
) -> tuple[int, list[dict[str, object]], str]:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    done = subprocess.run(
        [sys.executable, "-m", "tap_botpenguin", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        preexec_fn=limit,  # a fresh process, no threads yet
    )
    messages = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return done.returncode, messages, done.stderr


def _records(messages: list[dict[str, object]]) -> set[tuple[object, object]]:
    return {
        (m["stream"], m["record"]["_id"])  # type: ignore[index]
        for m in messages
        if m["type"] == "RECORD"
    }


def _no_file_can_grow() -> None:
    """A disk with no room: every write to a file fails (EFBIG), as ENOSPC would."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


def test_a_full_temporary_directory_makes_workers_wait_and_loses_nothing(tmp_path: Path) -> None:
    with Sandbox(bots=own_tokens(fresh_bots()), rate_limit=None, page_size=10) as sandbox:
        config = own_token_config(sandbox, max_parallel_tokens=3)
        code, messages, stderr = _run_limited(config, tmp_path, _no_file_can_grow)
        expected = {
            (stream, record_id)
            for stream, kind in STREAM_TYPES.items()
            for (_bot, record_id) in sandbox.all_records(kind)
        }

    assert code == 0, stderr[-3000:]
    assert "Traceback" not in stderr
    assert _records(messages) == expected
    assert "the temporary directory cannot take pages read ahead" in stderr
    assert messages[-1]["type"] == "STATE"


def _few_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (96, 96))


def _bots_with_own_tokens(count: int) -> list[Bot]:
    """`count` bots, a token each, leads and chats of 4 pages of 10 (the last one short; an
    empty page 5 ends each listing)."""
    return [
        Bot(
            f"{n:024x}",
            SANDBOX_CUSTOMER,
            f"many-tokens-{n:04d}-5b1f9c2e",
            leads=make_inbox(f"many:{n}", 36),
            chats=make_inbox(f"many-chats:{n}", 36),
        )
        for n in range(count)
    ]


def _config(sandbox: Sandbox, bots: list[Bot], **settings: object) -> dict[str, object]:
    return base_config(
        sandbox, bots=[{"bot_id": bot.bot_id, "bot_token": bot.token} for bot in bots], **settings
    )


def test_hundreds_of_tokens_fit_in_a_small_descriptor_limit(tmp_path: Path) -> None:
    """300 tokens, two 4-page listings each, 96 open files allowed: every listing read ahead
    used to keep a temporary file open (`Too many open files`, a traceback); then workers
    read ahead without bound. Now they wait for the main thread past the run's budget."""
    bots = _bots_with_own_tokens(300)
    with Sandbox(bots=bots, rate_limit=None, page_size=10) as sandbox:
        config = _config(sandbox, bots, max_parallel_tokens=16)
        code, messages, stderr = _run_limited(config, tmp_path, _few_descriptors)

    assert code == 0, stderr[-3000:]
    assert "Traceback" not in stderr
    assert len(_records(messages)) == 300 * 2 * 36


def test_workers_waiting_for_the_main_thread_never_hold_the_listing_it_needs(
    tmp_path: Path,
) -> None:
    """No file can grow, so the budget is its pages in memory: far fewer than the run's.

    Workers reading a token's listings one after the other (`chats`, then `leads`) and
    waiting on the budget deadlocked here: four workers blocked on `leads` pages the main
    thread emits last, while it waited for the `chats` of a token none of them had started.
    Workers take listings in the order the main thread emits them, and the one it is
    emitting never waits for the others: every record, exit 0.
    """
    bots = _bots_with_own_tokens(40)  # 320 pages, the budget holds 64
    with Sandbox(bots=bots, rate_limit=None, page_size=10) as sandbox:
        config = _config(sandbox, bots, max_parallel_tokens=4)
        code, messages, stderr = _run_limited(config, tmp_path, _no_file_can_grow)

    assert code == 0, stderr[-3000:]
    assert "Traceback" not in stderr
    assert len(_records(messages)) == 40 * 2 * 36
    assert messages[-1]["type"] == "STATE"


def test_a_main_thread_that_cannot_go_on_bounds_what_workers_read_ahead(tmp_path: Path) -> None:
    """The first listing the main thread emits hangs on its page 2 (a slow API there): the
    other tokens' workers read ahead only as far as the budget (no file can grow: its pages
    in memory) and then wait; they used to read every listing of the run meanwhile. Watched
    for 5 s or until the sandbox answered more than the budget allows."""
    workers = 8
    bots = _bots_with_own_tokens(60)  # 480 pages
    first = bots[0]
    # Page 1 of the listing the main thread waits on, the budget's pages, the empty page 5
    # of each listing they complete (4 pages each), one page per worker waiting to put it
    # (one page asked for at a time per listing: pages_in_flight 1).
    allowed = 1 + RUN_PAGES_IN_MEMORY + RUN_PAGES_IN_MEMORY // 4 + workers
    answered_while_held: list[int] = []

    def answered(sandbox: Sandbox) -> int:
        return sum(1 for r in sandbox.listing_requests() if r.answered_at is not None)

    def hold_first_page_two(sandbox: Sandbox, request: ReceivedRequest) -> None:
        params = request.params
        page_two = params.get("page") == "2" and params.get("type") == "non-lead"
        if page_two and params.get("botId") == first.bot_id and not answered_while_held:
            sandbox.wait_for_answer(lambda _: answered(sandbox) > allowed, timeout=5)
            answered_while_held.append(answered(sandbox))

    with Sandbox(
        bots=bots, rate_limit=None, page_size=10, before_answer=hold_first_page_two
    ) as sandbox:
        config = _config(sandbox, bots, max_parallel_tokens=workers, pages_in_flight=1)
        code, messages, stderr = _run_limited(config, tmp_path, _no_file_can_grow)

    assert code == 0, stderr[-3000:]
    assert len(_records(messages)) == 60 * 2 * 36
    assert answered_while_held, "the first listing's page 2 was never asked for"
    assert answered_while_held[0] <= allowed, (
        f"{answered_while_held[0]} pages answered while the main thread waited, "
        f"the budget allows {allowed}"
    )
