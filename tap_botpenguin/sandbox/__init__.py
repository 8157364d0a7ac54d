"""A faithful local BotPenguin API for tests, the demo and benchmarks (never used by the tap)."""

from tap_botpenguin.sandbox.data import (
    QUIET_BOT,
    SANDBOX_CUSTOMER,
    SANDBOX_TOKEN,
    WEBSITE_BOT,
    WHATSAPP_BOT,
    Bot,
    default_bots,
    make_inbox,
)
from tap_botpenguin.sandbox.server import Fault, ReceivedRequest, Sandbox

__all__ = [
    "QUIET_BOT",
    "SANDBOX_CUSTOMER",
    "SANDBOX_TOKEN",
    "WEBSITE_BOT",
    "WHATSAPP_BOT",
    "Bot",
    "Fault",
    "ReceivedRequest",
    "Sandbox",
    "default_bots",
    "make_inbox",
]
