"""`python -m tap_botpenguin.sandbox.env [--account agency] URL`: shell exports for a sandbox.

The demo account: the `TAP_BOTPENGUIN_*` variables that read all its bots. The agency account:
the variables orchestrate/shards.sandbox.yml reads (the URL, and each customer's token).
"""

from __future__ import annotations

import json
import shlex
import sys

from tap_botpenguin.sandbox.data import (
    AGENCY_CUSTOMERS,
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


def agency_token_variable(customer: str) -> str:
    """The variable holding one agency customer's token: SANDBOX_CUSTOMER_A_TOKEN."""
    return f"SANDBOX_{customer.upper().replace('-', '_')}_TOKEN"


def agency_settings(url: str) -> dict[str, str]:
    """What orchestrate/shards.sandbox.yml reads: the sandbox's URL and each shard's token."""
    settings = {"BOTPENGUIN_SANDBOX_URL": url}
    for name, customer in AGENCY_CUSTOMERS.items():
        settings[agency_token_variable(name)] = customer.token
    return settings


if __name__ == "__main__":
    arguments = sys.argv[1:]
    agency = arguments[:2] == ["--account", "agency"]
    url = arguments[-1]
    for name, value in (agency_settings(url) if agency else sandbox_settings(url)).items():
        print(f"export {name}={shlex.quote(value)}")
