"""The sandbox serves records as documented, as BotPenguin really sends them, or both on a page,
and the tap passes the real ones on as they came (docs/contract.md, "Shapes beyond the field
tables"); the marts' side is in tests/test_dbt.py."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import requests

from tap_botpenguin.sandbox import (
    QUIET_BOT,
    SANDBOX_CUSTOMER,
    SANDBOX_TOKEN,
    WEBSITE_BOT,
    WHATSAPP_BOT,
    Sandbox,
)

from .helpers import base_config, fresh_bots, run_in_process


def _is_real(record: dict[str, Any]) -> bool:
    details = record["profile"]["userDetails"] or {}
    return "_agency" in record and "name" not in details


def _page(url: str, bot_id: str, kind: str) -> list[dict[str, Any]]:
    answer = requests.get(
        f"{url}/inbox/direct/chats",
        params={"botId": bot_id, "customerId": SANDBOX_CUSTOMER, "page": "1", "type": kind},
        headers={"x-bot-token": SANDBOX_TOKEN, "Content-Type": "application/json"},
        timeout=10,
    )
    answer.raise_for_status()
    data: list[dict[str, Any]] = answer.json()["data"]
    return data


def test_the_sandbox_command_serves_the_demo_shapes_one_bot_each() -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "tap_botpenguin.sandbox", "--shape", "demo", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip().removeprefix("BotPenguin sandbox on ")
        whatsapp = _page(url, WHATSAPP_BOT, "lead")
        website = _page(url, WEBSITE_BOT, "lead")
        quiet = _page(url, QUIET_BOT, "non-lead")
    finally:
        server.terminate()
        server.wait(timeout=10)

    assert all(_is_real(record) for record in whatsapp)
    assert {tuple(r.get("platform") or []) for r in whatsapp} >= {("WHATSAPP",), ()}
    assert [_is_real(record) for record in website] == [i % 2 == 1 for i in range(len(website))]
    assert not any(_is_real(record) for record in quiet)
    real = [r for r in whatsapp + website if _is_real(r)]
    contacts = [((r["profile"]["userDetails"] or {}).get("contact") or {}) for r in real]
    assert any(contact.get("email") == "" for contact in contacts)
    assert all("text" not in (r["lastMessage"] or {}) for r in real)


def test_an_unknown_shape_is_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tap_botpenguin.sandbox", "--shape", "actual"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert done.returncode == 2
    assert "invalid choice: 'actual'" in done.stderr
    assert "Traceback" not in done.stderr


def test_real_records_on_a_mixed_page_leave_the_tap_as_they_came() -> None:
    """Evolve mode: the real top-level fields become columns of their JSON types; what sits
    in `profile` (userProvidedName, whatsAppNumber, urlsVisited) and every blank is kept."""
    with Sandbox(bots=fresh_bots("mixed"), rate_limit=None) as sandbox:
        result = run_in_process(base_config(sandbox))
        sent = sandbox.all_records("lead")

    assert result.error is None
    properties = result.schemas()["leads"]["properties"]
    assert properties["platform"]["type"] == ["array", "null"]
    assert properties["isPaid"]["type"] == ["boolean", "null"]
    assert properties["hasOrdered"]["type"] == ["object", "null"]
    assert properties["unreadMessages"]["type"] == ["number", "null"]
    emitted = result.records["leads"]
    assert len(emitted) == len(sent)
    assert {_is_real(record) for record in emitted} == {True, False}
    for record in emitted:
        original = sent[(record["botId"], record["_id"])]
        assert {k: v for k, v in record.items() if k not in {"botId", "customerId"}} == {
            **original,
            **{k: None for k in record if k not in original and k not in {"botId", "customerId"}},
        }, record["_id"]
