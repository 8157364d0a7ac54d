"""`tap-botpenguin --test`, the SDK's connection test (also `meltano invoke tap-botpenguin --test`).

It syncs one record per stream. A working connection exits 0 with no ERROR line (the SDK's own
"stop after one record" signal is not an error); a wrong token, wrong ids or an unreachable
`api_url` give the same readable lines as a sync (one, or one per listing set aside), no
traceback, and a non-zero exit.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tap_botpenguin.sandbox import Sandbox

from .helpers import Meltano, base_config, closed_port_url, fresh_bots, run_cli

pytestmark = pytest.mark.e2e


def _records(stdout: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in stdout.splitlines():
        message = json.loads(line)
        if message["type"] == "RECORD":
            counts[message["stream"]] = counts.get(message["stream"], 0) + 1
    return counts


def _assert_clean_success(exit_code: int, stdout: str, stderr: str) -> None:
    assert exit_code == 0, stderr
    assert "ERROR" not in stderr
    assert "Traceback" not in stderr
    assert _records(stdout) == {"chats": 1, "leads": 1}


# Each wrong setting and the line a sync gives for it.
WRONG = {
    "token": ({"bot_token": "not-the-token"}, "returned 401 Unauthorized"),
    "customer_id": ({"customer_id": "000000000000000000000000"}, "returned 400 Bad Request"),
    "bot_id": ({"bots": [{"bot_id": "000000000000000000000000"}]}, "returned 400 Bad Request"),
    "api_url": ({"api_url": None}, "failed: ConnectionError; gave up after 2 attempts"),
}


#: A refused shared token and an unreachable API stop at once; wrong ids set aside every
#: listing they concern: 3 bots x 2 streams with a wrong customer_id, 1 bot x 2 with a wrong id.
ERROR_LINES = {"token": 1, "customer_id": 6, "bot_id": 2, "api_url": 1}


def _wrong(sandbox: Sandbox, name: str) -> dict[str, object]:
    overrides, _ = WRONG[name]
    config = base_config(sandbox, max_retries=2, **overrides)
    if name == "api_url":
        config["api_url"] = closed_port_url()
    return config


def _error_lines(stderr: str) -> list[str]:
    """The messages of the ERROR lines, without time and logger."""
    return [
        line.split(" | ")[-1].split("] meltano ")[-1].strip()
        for line in stderr.splitlines()
        if "| ERROR " in line or "[error " in line  # the tap's format, and Meltano's
    ]


def _assert_one_line_failure(exit_code: int, stderr: str, expected: str) -> None:
    """Non-zero, no traceback, and one ERROR line, naming the cause, per listing it stopped."""
    assert exit_code != 0
    assert "Traceback" not in stderr
    errors = _error_lines(stderr)
    assert errors, stderr
    assert all(expected in line for line in errors), stderr


def test_cli_test_passes_without_an_error_line(sandbox: Sandbox, tmp_path: Path) -> None:
    done = run_cli(base_config(sandbox), tmp_path, args=["--test"])

    _assert_clean_success(done.exit_code, done.stdout, done.stderr)
    assert len(sandbox.listing_requests()) == 2  # one page per stream, nothing more


@pytest.mark.parametrize("name", list(WRONG))
def test_cli_test_fails_in_one_line_like_a_sync(
    sandbox: Sandbox, tmp_path: Path, name: str
) -> None:
    config = _wrong(sandbox, name)
    expected = WRONG[name][1]

    tested = run_cli(config, tmp_path, args=["--test"])
    synced = run_cli(config, tmp_path)

    _assert_one_line_failure(tested.exit_code, tested.stderr, expected)
    _assert_one_line_failure(synced.exit_code, synced.stderr, expected)
    # The very same lines: a shared token refused or no answer stops at once (one line);
    # wrong ids set each listing aside (one line per bot and stream, docs/failures.md).
    assert _error_lines(tested.stderr) == _error_lines(synced.stderr)
    assert len(_error_lines(tested.stderr)) == ERROR_LINES[name]


def test_cli_test_reports_bad_settings_like_a_sync(sandbox: Sandbox, tmp_path: Path) -> None:
    config = base_config(sandbox, bots=[])

    tested = run_cli(config, tmp_path, args=["--test"])
    synced = run_cli(config, tmp_path)

    for done in (tested, synced):
        assert done.exit_code == 1
        assert "Traceback" not in done.stderr
        assert "Set `bot_id` (one bot) or `bots` (several): neither is set." in done.stderr
    assert not sandbox.listing_requests()


def test_meltano_invoke_test(tmp_path: Path) -> None:
    with Sandbox(bots=fresh_bots(), rate_limit=None) as sandbox:
        meltano = Meltano(tmp_path, sandbox)
        done = meltano.run("invoke", "tap-botpenguin", "--test")
        _assert_clean_success(done.returncode, done.stdout, done.stderr)

        meltano.env["TAP_BOTPENGUIN_BOT_TOKEN"] = "not-the-token"
        failed = meltano.run("invoke", "tap-botpenguin", "--test", expect_success=False)
    _assert_one_line_failure(failed.returncode, failed.stderr, "returned 401 Unauthorized")
    assert "Warning" not in failed.stderr  # e.g. no ResourceWarning for the catalog file
