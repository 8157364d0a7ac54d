"""The SDK's standard tap test suite, run against the sandbox over HTTP."""

from __future__ import annotations

import atexit

from singer_sdk.testing import get_tap_test_class

from tap_botpenguin.sandbox import SANDBOX_CUSTOMER, SANDBOX_TOKEN, Sandbox
from tap_botpenguin.tap import TapBotPenguin

from .helpers import ALL_BOTS, fresh_bots

# The SDK builds the test class, and so needs its config, at collection time: the sandbox
# must already be listening then. It is stopped when the test process exits.
_SANDBOX = Sandbox(bots=fresh_bots()).start()
atexit.register(_SANDBOX.stop)

TestTapBotPenguin = get_tap_test_class(
    tap_class=TapBotPenguin,
    config={
        "bot_token": SANDBOX_TOKEN,
        "customer_id": SANDBOX_CUSTOMER,
        "bots": [{"bot_id": bot_id} for bot_id in ALL_BOTS],
        "api_url": _SANDBOX.url,
    },
)
