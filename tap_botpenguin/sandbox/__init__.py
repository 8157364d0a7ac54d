"""A faithful local BotPenguin API for tests, the demo and benchmarks (never used by the tap)."""

from tap_botpenguin.sandbox.cache import ResponseCache
from tap_botpenguin.sandbox.data import (
    AGENCY_CUSTOMERS,
    QUIET_BOT,
    SANDBOX_CUSTOMER,
    SANDBOX_TOKEN,
    SHAPES,
    WEBSITE_BOT,
    WHATSAPP_BOT,
    Bot,
    agency_bots,
    data_epoch,
    default_bots,
    make_inbox,
)
from tap_botpenguin.sandbox.faults import PAST_END, Fault, ReceivedRequest
from tap_botpenguin.sandbox.inbox import ORDERS, PAGE_BOUND_MESSAGE
from tap_botpenguin.sandbox.server import Sandbox

__all__ = [
    "AGENCY_CUSTOMERS",
    "ORDERS",
    "PAGE_BOUND_MESSAGE",
    "PAST_END",
    "QUIET_BOT",
    "SANDBOX_CUSTOMER",
    "SANDBOX_TOKEN",
    "SHAPES",
    "WEBSITE_BOT",
    "WHATSAPP_BOT",
    "Bot",
    "Fault",
    "ReceivedRequest",
    "ResponseCache",
    "Sandbox",
    "agency_bots",
    "data_epoch",
    "default_bots",
    "make_inbox",
]
