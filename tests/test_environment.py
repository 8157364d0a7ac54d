"""The machine around the tap misbehaving: a full temporary directory, few file descriptors.

Pages read ahead by the workers wait in memory and temporary files (`concurrency.buffer`);
neither may cost a record or fail a run. The limits are the operating system's own
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

from tap_botpenguin.sandbox import SANDBOX_CUSTOMER, Bot, Sandbox, make_inbox

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


def test_hundreds_of_tokens_fit_in_a_small_descriptor_limit(tmp_path: Path) -> None:
    """300 tokens, a 4-page listing each, 96 open files allowed: every listing read ahead
    used to keep a temporary file open (`Too many open files`, a traceback)."""
    bots = [
        Bot(
            f"{n:024x}",
            SANDBOX_CUSTOMER,
            f"many-tokens-{n:04d}-5b1f9c2e",
            leads=make_inbox(f"many:{n}", 36),
        )
        for n in range(300)
    ]
    with Sandbox(bots=bots, rate_limit=None, page_size=10) as sandbox:
        config = base_config(
            sandbox,
            bots=[{"bot_id": bot.bot_id, "bot_token": bot.token} for bot in bots],
            max_parallel_tokens=16,
        )
        code, messages, stderr = _run_limited(config, tmp_path, _few_descriptors)

    assert code == 0, stderr[-3000:]
    assert "Traceback" not in stderr
    assert len(_records(messages)) == 300 * 36
