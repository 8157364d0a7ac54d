"""One bot's failure stops no other: the CLI sets a failed listing aside, syncs the rest, exits 1.

And the two misconfigurations that concern every bot (a shared token refused, an `api_url`
where nothing answers) still stop the run at once with their one line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tap_botpenguin.sandbox import QUIET_BOT, WEBSITE_BOT, WHATSAPP_BOT, Fault, Sandbox

from .helpers import (
    ALL_BOTS,
    STREAM_TYPES,
    SyncResult,
    base_config,
    closed_port_url,
    run_cli,
    run_in_process,
)

REVOKED = "revoked-token-0123456789abcdef"


def _partition(state: dict[str, Any], stream: str, bot_id: str) -> dict[str, Any] | None:
    for partition in state["bookmarks"][stream]["partitions"]:
        if partition["context"]["botId"] == bot_id:
            return partition  # type: ignore[no-any-return]
    return None


def _kept(result: SyncResult, earlier: dict[str, Any] | None, stream: str, bot_id: str) -> bool:
    """The bot's partition in the run's last STATE is as it was (or bare, if it had none)."""
    bare = {"context": {"botId": bot_id}}
    before = _partition(earlier, stream, bot_id) if earlier else None
    return _partition(result.final_state, stream, bot_id) in ([before] if before else [None, bare])


def _errors(result: SyncResult) -> list[str]:
    return [line for line in result.stderr.splitlines() if " ERROR " in f" {line} "]


def _emitted(result: SyncResult, stream: str, bot_id: str) -> set[str]:
    return {r["_id"] for r in result.records.get(stream, []) if r["botId"] == bot_id}


def _listing(sandbox: Sandbox, stream: str, bot_id: str) -> set[str]:
    return {r["_id"] for r in sandbox.listing(bot_id, STREAM_TYPES[stream])}


def _earlier_run_then_changes(sandbox: Sandbox) -> dict[str, Any]:
    """A complete earlier run's state; then the newest changes every bot's bookmark would see."""
    first = run_in_process(base_config(sandbox))
    assert first.error is None, first.error
    for bot_id in (WEBSITE_BOT, WHATSAPP_BOT):
        for kind in STREAM_TYPES.values():
            sandbox.touch(bot_id, kind, 3)
    return first.final_state


def _revoked_token(config: dict[str, Any], bot_id: str) -> None:
    config["bots"] = [
        {"bot_id": b, "bot_token": REVOKED} if b == bot_id else {"bot_id": b} for b in ALL_BOTS
    ]


def _wrong_customer(config: dict[str, Any], bot_id: str) -> None:
    config["bots"] = [
        {"bot_id": b, "customer_id": "0" * 24} if b == bot_id else {"bot_id": b} for b in ALL_BOTS
    ]


def _fault(status: int) -> Callable[[dict[str, Any], str], Fault]:
    return lambda _, bot_id: Fault("status", status=status, times=None, bot_id=bot_id)


BREAKS: dict[str, tuple[Callable[..., Any], str]] = {
    "401 own token revoked": (_revoked_token, "401 Unauthorized"),
    "400 wrong ids": (_wrong_customer, "400 Bad Request"),
    "403 forbidden": (_fault(403), "403 Forbidden"),
    "404 bot deleted": (_fault(404), "404 Not Found"),
}


@pytest.mark.parametrize("failing", [WEBSITE_BOT, WHATSAPP_BOT], ids=["first bot", "second bot"])
@pytest.mark.parametrize("how", BREAKS.keys())
def test_a_bot_refused_is_set_aside_and_every_other_bot_completes(
    tmp_path: Path, how: str, failing: str
) -> None:
    with Sandbox() as sandbox:
        state = _earlier_run_then_changes(sandbox)
        config = base_config(sandbox)
        breaks, status = BREAKS[how]
        fault = breaks(config, failing)
        if isinstance(fault, Fault):
            sandbox.inject(fault)
        sandbox.requests.clear()

        result = run_cli(config, tmp_path, state=state)

        assert result.exit_code == 1
        errors = _errors(result)
        # One line per failed bot and stream, naming both and the status, and nothing else.
        assert len(errors) == 2, result.stderr
        for stream, line in zip(("chats", "leads"), errors, strict=False):
            assert f"{stream} (bot {failing}) set aside, its state unchanged" in line
            assert status in line
        assert "Traceback" not in result.stderr
        assert "| run total: 6 listings (2 set aside); " in result.stderr
        # Refused answers are not retried: one request per listing of the failed bot.
        refused = [r for r in sandbox.listing_requests() if r.params["botId"] == failing]
        assert len(refused) == 2
        # Every other bot: every record of the changes, and its bookmark moved on.
        final = result.final_state
        for stream in STREAM_TYPES:
            for bot_id in {WEBSITE_BOT, WHATSAPP_BOT} - {failing}:
                assert _emitted(result, stream, bot_id) >= {
                    r["_id"] for r in sandbox.listing(bot_id, STREAM_TYPES[stream])[:3]
                }
                before = _partition(state, stream, bot_id)
                after = _partition(final, stream, bot_id)
                assert before is not None
                assert after is not None
                assert after["replication_key_value"] > before["replication_key_value"]
            # The failed bot: nothing emitted, its state exactly as the earlier run left it.
            assert _emitted(result, stream, failing) == set()
            assert _kept(result, state, stream, failing)
        assert _partition(final, "chats", QUIET_BOT) is not None


def test_a_5xx_outlasting_the_retries_sets_that_listing_aside_after_its_earlier_pages(
    tmp_path: Path,
) -> None:
    with Sandbox() as sandbox:
        state = _earlier_run_then_changes(sandbox)
        page_2 = {"bot_id": WHATSAPP_BOT, "type": "lead", "page": 2}
        sandbox.inject(Fault("status", status=503, message="upstream down", times=None, **page_2))

        # A full scan (emits every record) that fails on page 2.
        config = base_config(sandbox, max_retries=2, full_scan_every_hours=0)
        result = run_cli(config, tmp_path, state)

        assert result.exit_code == 1
        errors = _errors(result)
        assert len(errors) == 1, result.stderr
        assert f"leads (bot {WHATSAPP_BOT}) set aside, its state unchanged" in errors[0]
        assert "page 2" in errors[0]
        assert "503 Service Unavailable: upstream down" in errors[0]
        assert "gave up after 2 attempts (max_retries=2)" in errors[0]
        # Page 1 was emitted before page 2 failed; the bookmark stays where it was.
        assert _emitted(result, "leads", WHATSAPP_BOT) == {
            r["_id"] for r in sandbox.page(WHATSAPP_BOT, "lead", 1)
        }
        final = result.final_state
        assert _kept(result, state, "leads", WHATSAPP_BOT)
        # The same bot's other stream and every other bot: complete, state moved on.
        assert _emitted(result, "chats", WHATSAPP_BOT) == _listing(sandbox, "chats", WHATSAPP_BOT)
        for stream in STREAM_TYPES:
            assert _emitted(result, stream, WEBSITE_BOT) == _listing(sandbox, stream, WEBSITE_BOT)
            assert _partition(final, stream, WEBSITE_BOT) != _partition(state, stream, WEBSITE_BOT)


def test_a_bot_whose_requests_time_out_is_set_aside(tmp_path: Path) -> None:
    with Sandbox() as sandbox:
        sandbox.inject(Fault("hang", delay=5, times=None, bot_id=WHATSAPP_BOT))

        result = run_cli(
            base_config(sandbox, max_retries=2, request_timeout=0.3), tmp_path, timeout=60
        )

        assert result.exit_code == 1
        errors = _errors(result)
        assert len(errors) == 2, result.stderr
        assert all("no answer within request_timeout=0.3 s" in line for line in errors)
        assert all(f"(bot {WHATSAPP_BOT}) set aside" in line for line in errors)
        for stream in STREAM_TYPES:
            assert _emitted(result, stream, WEBSITE_BOT) == _listing(sandbox, stream, WEBSITE_BOT)
            assert _kept(result, None, stream, WHATSAPP_BOT)


def test_a_shared_token_refused_stops_the_run_at_once(tmp_path: Path) -> None:
    with Sandbox() as sandbox:
        result = run_cli(base_config(sandbox, bot_token=REVOKED), tmp_path)

        assert result.exit_code == 1
        errors = _errors(result)
        assert len(errors) == 1, result.stderr
        assert "401 Unauthorized" in errors[0]
        assert "set aside" not in errors[0]
        assert len(sandbox.listing_requests()) == 1  # no bot after the first is tried
        assert not result.records


def test_an_unreachable_api_url_stops_the_run_at_once(tmp_path: Path) -> None:
    with Sandbox() as sandbox:
        config = base_config(sandbox, max_retries=2, api_url=closed_port_url())

        result = run_cli(config, tmp_path, timeout=60)

    assert result.exit_code == 1
    errors = _errors(result)
    assert len(errors) == 1, result.stderr
    assert "ConnectionError" in errors[0]
    assert "No request of this run got an answer: check api_url." in errors[0]
    # Only the first listing was tried: one retry notice (2 attempts), not one per listing.
    assert result.stderr.count("retrying in") == 1


def test_an_api_that_stops_answering_mid_run_stops_the_run(tmp_path: Path) -> None:
    """The first bot is read; then nothing answers: the second bot is set aside, and at the
    third, with still no answer since, the run stops instead of retrying every listing."""
    with Sandbox() as sandbox:
        for bot_id in (WHATSAPP_BOT, QUIET_BOT):
            sandbox.inject(Fault("reset", times=None, bot_id=bot_id))

        result = run_cli(base_config(sandbox, max_retries=2), tmp_path, timeout=60)

        assert result.exit_code == 1
        errors = _errors(result)
        assert len(errors) == 2, result.stderr
        assert f"chats (bot {WHATSAPP_BOT}) set aside, its state unchanged" in errors[0]
        assert f"for chats (bot {QUIET_BOT}) failed: ConnectionError" in errors[1]
        assert "The API stopped answering" in errors[1]
        assert _emitted(result, "chats", WEBSITE_BOT) == _listing(sandbox, "chats", WEBSITE_BOT)
        assert {r.params["type"] for r in sandbox.listing_requests()} == {"non-lead"}
