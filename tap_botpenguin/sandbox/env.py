"""`python -m tap_botpenguin.sandbox.env URL`: shell exports pointing the tap at a sandbox."""

from __future__ import annotations

import json
import shlex
import sys

from tap_botpenguin.sandbox.data import (
    QUIET_BOT,
    SANDBOX_CUSTOMER,
    SANDBOX_TOKEN,
    WEBSITE_BOT,
    WHATSAPP_BOT,
)


def sandbox_settings(url: str) -> dict[str, str]:
    """The `TAP_BOTPENGUIN_*` variables that read every bot of the demo account."""
    return {
        "TAP_BOTPENGUIN_API_URL": url,
        "TAP_BOTPENGUIN_BOT_TOKEN": SANDBOX_TOKEN,
        "TAP_BOTPENGUIN_CUSTOMER_ID": SANDBOX_CUSTOMER,
        "TAP_BOTPENGUIN_BOTS": json.dumps(
            [{"bot_id": bot_id} for bot_id in (WEBSITE_BOT, WHATSAPP_BOT, QUIET_BOT)]
        ),
    }


if __name__ == "__main__":
    for name, value in sandbox_settings(sys.argv[1]).items():
        print(f"export {name}={shlex.quote(value)}")
