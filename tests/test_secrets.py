"""A canary token through every failure mode: it must never reach stdout, stderr or state."""

from __future__ import annotations

from pathlib import Path

import pytest

from tap_botpenguin.sandbox import WEBSITE_BOT, WHATSAPP_BOT, Fault, Sandbox

from .helpers import base_config, fresh_bots, run_cli

CANARY = "canary-9d1f6c2e7a40-SECRET"
PAGE_2 = {"bot_id": WEBSITE_BOT, "type": "lead", "page": 2}

MODES: dict[str, list[Fault]] = {
    "clean run": [],
    "500 then ok": [Fault("status", status=500, **PAGE_2)],
    "429 with Retry-After": [Fault("status", status=429, retry_after="1", **PAGE_2)],
    "persistent 503 echoing the token": [
        Fault(
            "body",
            status=503,
            body=f"<h1>token {CANARY} rejected</h1>".encode(),
            times=None,
            **PAGE_2,
        )
    ],
    "401 echoing the token": [Fault("status", status=401, message=f"token {CANARY} is invalid")],
    "400 echoing the token": [Fault("status", status=400, message=f"bad query for {CANARY}")],
    "envelope 403 echoing a bearer header": [
        Fault("envelope", code=403, message=f"Bearer {CANARY}")
    ],
    "envelope 500 echoing the token": [
        Fault("envelope", code=500, message=CANARY, times=None, **PAGE_2)
    ],
    "html 200 echoing the token": [
        Fault(
            "body", status=200, body=f"<p>x-bot-token: {CANARY}</p>".encode(), times=None, **PAGE_2
        )
    ],
    "connection resets": [Fault("reset", times=None, **PAGE_2)],
    "truncated bodies": [Fault("truncated", times=None, **PAGE_2)],
    "server never answers": [Fault("hang", delay=3, times=None, **PAGE_2)],
    "api ignores page": [Fault("ignore_page", times=None, bot_id=WEBSITE_BOT, type="lead")],
    "records quoting the token": [
        Fault(
            "data", transform=lambda rs: [{**r, "status": f"pasted {CANARY}"} for r in rs], **PAGE_2
        )
    ],
    "odd records quoting the token": [
        Fault(
            "data",
            transform=lambda rs: [{**r, "websiteVisits": CANARY, "x": "\x00"} for r in rs],
            **PAGE_2,
        )
    ],
    "invalid utf-8 quoting the token": [
        Fault(
            "body",
            status=200,
            body=b'{"success":true,"data":[{"_id":"\xff' + CANARY.encode() + b'"}]}',
            **PAGE_2,
        )
    ],
    "deep nesting": [Fault("body", status=200, body=b"[" * 50_000, times=None, **PAGE_2)],
}


@pytest.fixture
def canary_sandbox() -> Sandbox:
    bots = [b for b in fresh_bots() if b.bot_id in {WEBSITE_BOT, WHATSAPP_BOT}]
    for bot in bots:
        bot.token = CANARY
    with Sandbox(bots=bots) as server:
        yield server


@pytest.mark.parametrize("auth_method", ["x-bot-token", "bearer"])
@pytest.mark.parametrize("mode", MODES)
def test_the_token_never_appears_in_any_output(
    canary_sandbox: Sandbox, tmp_path: Path, mode: str, auth_method: str
) -> None:
    canary_sandbox.inject(*MODES[mode])
    config = base_config(
        canary_sandbox,
        bot_token=CANARY,
        auth_method=auth_method,
        bots=[{"bot_id": WEBSITE_BOT}, {"bot_id": WHATSAPP_BOT}],
        max_retries=2,
        request_timeout=0.5,
    )

    result = run_cli(config, tmp_path, env={"TAP_BOTPENGUIN_LOGLEVEL": "DEBUG"})

    succeeding = {
        "clean run",
        "500 then ok",
        "429 with Retry-After",
        "records quoting the token",
        "odd records quoting the token",
        "invalid utf-8 quoting the token",
    }
    assert result.exit_code == (0 if mode in succeeding else 1), result.stderr[-2000:]
    # The run writes no file of its own: only the config the test gave it is there.
    assert {p.name for p in tmp_path.iterdir()} == {"config.json"}
    assert canary_sandbox.listing_requests(), "the run must have talked to the API"
    assert CANARY not in result.stdout
    assert CANARY not in result.stderr
    assert CANARY[:12] not in result.stderr


def test_a_mistyped_token_is_not_echoed_by_config_validation(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = base_config(sandbox, bot_token=[CANARY])

    result = run_cli(config, tmp_path)

    assert result.exit_code == 1
    assert "config['bot_token']" in result.stderr
    assert CANARY not in result.stderr
