"""Every HTTP failure mode of the contract, against the sandbox: retried, or one clear error."""

from __future__ import annotations

import email.utils
import logging
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from tap_botpenguin.http.retries import retry_after_seconds, retry_waits
from tap_botpenguin.sandbox import WEBSITE_BOT, Fault, Sandbox

from .helpers import base_config, run_cli, run_in_process

ONE_PAGE = {"bot_id": WEBSITE_BOT, "type": "lead", "page": 2}


def _page_requests(sandbox: Sandbox, page: int = 2) -> list:
    return [
        r
        for r in sandbox.listing_requests()
        if (r.params["botId"], r.params["type"], r.params["page"])
        == (WEBSITE_BOT, "lead", str(page))
    ]


def _all_leads_emitted(sandbox: Sandbox, result) -> None:  # type: ignore[no-untyped-def]
    assert result.error is None, result.error
    emitted = {(r["botId"], r["_id"]) for r in result.records["leads"]}
    assert emitted == set(sandbox.all_records("lead"))


TRANSIENT = {
    "500": Fault("status", status=500, **ONE_PAGE),
    "503": Fault("status", status=503, message="upstream down", **ONE_PAGE),
    "connection reset": Fault("reset", **ONE_PAGE),
    "html page with 200": Fault("body", status=200, body=b"<html>Bad gateway</html>", **ONE_PAGE),
    "truncated body": Fault("truncated", **ONE_PAGE),
    "data is null": Fault("data", transform=lambda _: None, **ONE_PAGE),
    "data is an object": Fault("data", transform=lambda rs: {"items": rs}, **ONE_PAGE),
    "success false, code 500": Fault("envelope", code=500, **ONE_PAGE),
    "success false, code 429": Fault("envelope", code=429, message="slow down", **ONE_PAGE),
}


@pytest.mark.parametrize("fault", TRANSIENT.values(), ids=TRANSIENT.keys())
def test_transient_failures_are_retried_and_lose_nothing(sandbox: Sandbox, fault: Fault) -> None:
    sandbox.inject(fault)

    result = run_in_process(base_config(sandbox))

    _all_leads_emitted(sandbox, result)
    assert [r.status for r in _page_requests(sandbox)][-1] == 200
    assert len(_page_requests(sandbox)) == 2


@pytest.mark.parametrize(
    "fault",
    [
        Fault("status", status=502, times=None, **ONE_PAGE),
        Fault("body", status=200, body=b"<html>maintenance</html>", times=None, **ONE_PAGE),
        Fault("reset", times=None, **ONE_PAGE),
    ],
    ids=["502", "html", "reset"],
)
def test_persistent_failures_stop_after_max_retries_naming_path_status_and_page(
    sandbox: Sandbox, fault: Fault
) -> None:
    sandbox.inject(fault)

    result = run_in_process(base_config(sandbox, max_retries=3))

    message = str(result.error)
    assert "GET /inbox/direct/chats page 2" in message
    assert "gave up after 3 attempts (max_retries=3)" in message
    assert f"bot {WEBSITE_BOT}" in message
    if fault.kind == "status":
        assert "502 Bad Gateway" in message
    if fault.kind == "body":
        assert "200 OK" in message
        assert "not JSON" in message
    assert len(_page_requests(sandbox)) == 3
    assert "\n" not in message


def test_a_server_that_never_answers_times_out_and_is_retried(sandbox: Sandbox) -> None:
    sandbox.inject(Fault("hang", delay=5, **ONE_PAGE))

    result = run_in_process(base_config(sandbox, request_timeout=0.5))

    _all_leads_emitted(sandbox, result)
    assert len(_page_requests(sandbox)) == 2


def test_timeouts_exhaust_retries_with_a_clear_message(sandbox: Sandbox) -> None:
    sandbox.inject(Fault("hang", delay=5, times=None, **ONE_PAGE))

    started = time.monotonic()
    result = run_in_process(base_config(sandbox, request_timeout=0.3, max_retries=2))

    assert time.monotonic() - started < 10
    message = str(result.error)
    assert "page 2" in message
    assert "no answer within request_timeout=0.3 s" in message
    assert "gave up after 2 attempts" in message


def _retry_wait_logged(caplog: pytest.LogCaptureFixture) -> float:
    waits = [
        float(match.group(1))
        for record in caplog.records
        if (match := re.search(r"retrying in ([0-9.]+) s", record.getMessage()))
    ]
    assert len(waits) == 1, waits
    return waits[0]


def test_429_waits_retry_after_seconds_then_retries_the_same_page(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox.inject(Fault("status", status=429, retry_after="3", **ONE_PAGE))

    with caplog.at_level(logging.INFO):
        result = run_in_process(base_config(sandbox))

    _all_leads_emitted(sandbox, result)
    first, retry = _page_requests(sandbox)
    assert (first.status, retry.status) == (429, 200)
    # Exactly what the server asked for: not the 5 s default, not less.
    assert _retry_wait_logged(caplog) == 3.0
    assert 3.0 <= retry.at - first.at < 4.0


def test_429_with_an_http_date_retry_after(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=3)
    sandbox.inject(
        Fault(
            "status",
            status=429,
            retry_after=email.utils.format_datetime(when, usegmt=True),
            **ONE_PAGE,
        )
    )

    with caplog.at_level(logging.INFO):
        result = run_in_process(base_config(sandbox))

    _all_leads_emitted(sandbox, result)
    first, retry = _page_requests(sandbox)
    # The date has whole seconds: 2 to 3 s from now, and never the 5 s default.
    assert 1.5 <= _retry_wait_logged(caplog) <= 3.0
    assert 1.5 <= retry.at - first.at < 4.0


def test_429_without_retry_after_waits_a_sane_default(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox.inject(Fault("status", status=429, **ONE_PAGE))

    with caplog.at_level(logging.INFO):
        result = run_in_process(base_config(sandbox))

    _all_leads_emitted(sandbox, result)
    first, retry = _page_requests(sandbox)
    assert _retry_wait_logged(caplog) == 5.0
    assert 5.0 <= retry.at - first.at < 6.0


class _Answer:
    """What `retry_waits` looks at in a failed attempt: the response, if there was one."""

    def __init__(self, status: int, retry_after: str | None = None) -> None:
        self.response = requests.Response()
        self.response.status_code = status
        if retry_after is not None:
            self.response.headers["Retry-After"] = retry_after
        self.response._content = b"{}"


def test_retry_waits_follow_retry_after_then_back_off_exponentially() -> None:
    waits = retry_waits()
    next(waits)
    sequence = [
        waits.send(failure)
        for failure in [
            _Answer(429, "3"),
            _Answer(429),
            _Answer(429),
            _Answer(503),
            None,  # a timeout or reset: no response
            _Answer(500),
        ]
    ]
    assert sequence == [3.0, 10.0, 20.0, 8.0, 16.0, 32.0]


def test_retry_after_parsing() -> None:
    now = datetime(2026, 11, 24, 10, 0, 0, tzinfo=timezone.utc)
    assert retry_after_seconds("7", now) == 7.0
    assert retry_after_seconds("Tue, 24 Nov 2026 10:00:30 GMT", now) == 30.0
    assert retry_after_seconds("Tue, 24 Nov 2026 09:00:00 GMT", now) is None  # the backoff
    assert retry_after_seconds("999999", now) == 600.0
    assert retry_after_seconds("-3", now) is None
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None


@pytest.mark.parametrize(
    "fault",
    [
        Fault("status", status=400, message="Invalid botId"),
        Fault("envelope", code=400, message="Invalid botId"),
    ],
    ids=["http 400", "envelope 400"],
)
def test_400_fails_at_once_with_the_api_message_and_a_hint(sandbox: Sandbox, fault: Fault) -> None:
    sandbox.inject(fault)

    result = run_in_process(base_config(sandbox))

    message = str(result.error)
    assert "400 Bad Request: Invalid botId" in message
    assert "Check bot_id and customer_id" in message
    # Not retried; the listing it concerns (the run's first) is set aside, the rest is read.
    first = sandbox.listing_requests()[0]
    assert message.startswith(f"chats (bot {WEBSITE_BOT}) set aside")
    assert "\n" not in message
    assert len([r for r in sandbox.listing_requests() if r.params == first.params]) == 1
    emitted = {(r["botId"], r["_id"]) for r in result.records["leads"]}
    assert emitted == set(sandbox.all_records("lead"))


def test_a_real_400_from_a_wrong_customer_id(sandbox: Sandbox) -> None:
    result = run_in_process(base_config(sandbox, customer_id="0" * 24))

    lines = str(result.error).splitlines()
    # One line per bot and stream, each refused once, not retried; nothing emitted.
    assert len(lines) == 6
    assert all("400 Bad Request: Invalid botId or customerId" in line for line in lines)
    assert [r.status for r in sandbox.listing_requests()] == [400] * 6
    assert not result.records


@pytest.mark.parametrize("auth_method", ["x-bot-token", "bearer"])
def test_a_wrong_token_fails_at_once_naming_the_auth_method(
    sandbox: Sandbox, auth_method: str
) -> None:
    result = run_in_process(
        base_config(sandbox, bot_token="not-the-token", auth_method=auth_method)
    )

    message = str(result.error)
    assert "401 Unauthorized" in message
    assert "missing, invalid or expired" in message
    assert f"auth_method={auth_method}" in message
    assert len(sandbox.listing_requests()) == 1


@pytest.mark.parametrize(
    "fault",
    [Fault("status", status=403, message="Forbidden"), Fault("envelope", code=401)],
    ids=["403", "envelope 401"],
)
def test_403_and_envelope_401_are_auth_errors(sandbox: Sandbox, fault: Fault) -> None:
    sandbox.inject(fault)

    result = run_in_process(base_config(sandbox))

    assert "missing, invalid or expired" in str(result.error)
    first = sandbox.listing_requests()[0]
    assert len([r for r in sandbox.listing_requests() if r.params == first.params]) == 1
    if fault.kind == "envelope":  # a 401 for the token every bot uses: the run stops at once
        assert len(sandbox.listing_requests()) == 1
    else:  # a 403 refuses this bot only: the others are read
        assert str(result.error).startswith(f"chats (bot {WEBSITE_BOT}) set aside")
        emitted = {(r["botId"], r["_id"]) for r in result.records["leads"]}
        assert emitted == set(sandbox.all_records("lead"))


def test_cli_fails_with_exit_code_1_and_one_readable_line(sandbox: Sandbox, tmp_path: Path) -> None:
    result = run_cli(base_config(sandbox, bot_token="not-the-token"), tmp_path)

    assert result.exit_code == 1
    last = result.stderr.strip().splitlines()[-1]
    assert "ERROR" in last
    assert "401 Unauthorized" in last
    assert "auth_method=x-bot-token" in last
    assert "Traceback" not in result.stderr
