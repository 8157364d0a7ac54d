"""The listing tests' request bound: a tap that never sees a listing's end fails at once, by name.

The sandbox refuses any page more than `page_bound` pages past a listing's end (and every
request after that); the test helpers turn that refusal into a failure naming the listing.
"""

from __future__ import annotations

import pytest
import requests

from tap_botpenguin.sandbox import (
    PAGE_BOUND_MESSAGE,
    SANDBOX_CUSTOMER,
    SANDBOX_TOKEN,
    WHATSAPP_BOT,
    Sandbox,
)

from .helpers import base_config, fail_on_endless_listing, run_in_process


def _get(sandbox: Sandbox, page: int) -> requests.Response:
    params = {"botId": WHATSAPP_BOT, "customerId": SANDBOX_CUSTOMER, "type": "lead", "page": page}
    return requests.get(
        f"{sandbox.url}/inbox/direct/chats",
        params=params,
        headers={"x-bot-token": SANDBOX_TOKEN},
        timeout=5,
    )


def test_the_sandbox_refuses_pages_far_past_the_end_and_everything_after(sandbox: Sandbox) -> None:
    last = sandbox.pages(WHATSAPP_BOT, "lead")

    assert _get(sandbox, last + sandbox.page_bound).status_code == 200
    refused = _get(sandbox, last + sandbox.page_bound + 1)
    assert refused.status_code == 418
    assert refused.json()["message"].startswith(PAGE_BOUND_MESSAGE)
    assert _get(sandbox, 1).status_code == 418  # the run ends within a request per listing
    assert sandbox.overran == 2


def test_a_run_that_overran_fails_by_assertion_naming_the_listing(sandbox: Sandbox) -> None:
    sandbox.page_bound = -1  # every listing is "past the end" at once

    with pytest.raises(pytest.fail.Exception, match=r"a listing never ended: .* set aside"):
        run_in_process(base_config(sandbox))
    with pytest.raises(
        pytest.fail.Exception, match=f"a listing never ended: x {PAGE_BOUND_MESSAGE}"
    ):
        fail_on_endless_listing(f"ok\nx {PAGE_BOUND_MESSAGE}: page 9")
    fail_on_endless_listing("nothing of the kind")
