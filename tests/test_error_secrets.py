"""No token in any error the tap raises, checked on the exception itself, before any log filter.

The CLI's output passes the redacting log filter, so a token written into a message would
still not show there; these tests read the exceptions in-process, for both auth methods.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tap_botpenguin.report.errors import BotPenguinError
from tap_botpenguin.sandbox import SANDBOX_TOKEN, Fault, Sandbox

from .helpers import base_config, run_in_process

ECHO = f"token {SANDBOX_TOKEN} (Authorization: Bearer {SANDBOX_TOKEN}) refused"
PAGE_2 = {"page": 2, "type": "lead", "times": None}

FAULTS = {
    "401 on page 1": (Fault("status", status=401, message=ECHO), "401 Unauthorized"),
    "envelope 403": (Fault("envelope", code=403, message=ECHO), "403 Forbidden"),
    "400": (Fault("status", status=400, message=ECHO), "400 Bad Request"),
    "404 on page 1": (Fault("status", status=404, message=ECHO), "404 Not Found"),
    "503 outlasting retries": (Fault("status", status=503, message=ECHO, **PAGE_2), "503"),
    "html with the token": (
        Fault("body", status=200, body=f"<html>{ECHO}</html>".encode(), **PAGE_2),
        "not JSON",
    ),
}


def _texts(error: BaseException | None) -> Iterator[str]:
    """The text of an exception and of every exception it was raised from or during."""
    while error is not None:
        yield str(error)
        yield repr(error)
        error = error.__cause__ or error.__context__


def _assert_no_token(error: BaseException | None, *secrets: str) -> None:
    assert isinstance(error, BotPenguinError), error
    for text in _texts(error):
        for secret in secrets:
            assert secret not in text, text


@pytest.mark.parametrize("auth_method", ["x-bot-token", "bearer"])
@pytest.mark.parametrize("fault", FAULTS.keys())
def test_no_error_holds_the_token_even_when_the_api_echoes_it(
    sandbox: Sandbox, auth_method: str, fault: str
) -> None:
    injected, status = FAULTS[fault]
    sandbox.inject(injected)

    result = run_in_process(base_config(sandbox, auth_method=auth_method, max_retries=2))

    assert status in str(result.error)
    _assert_no_token(result.error, SANDBOX_TOKEN)


@pytest.mark.parametrize("auth_method", ["x-bot-token", "bearer"])
def test_a_refused_token_is_not_in_the_error(sandbox: Sandbox, auth_method: str) -> None:
    wrong = "wrong-token-5f1e2d3c4b5a69788796"

    result = run_in_process(base_config(sandbox, bot_token=wrong, auth_method=auth_method))

    message = str(result.error)
    assert "401 Unauthorized: Unauthorized: invalid or missing token." in message
    assert f"(auth_method={auth_method})" in message
    _assert_no_token(result.error, wrong, wrong[:12])
