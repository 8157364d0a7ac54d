"""Deterministic, realistic BotPenguin inbox data for the sandbox.

Records follow the field tables of BotPenguin's endpoint page and the shapes in
docs/contract.md ("Shapes beyond the field tables"). The generator deliberately includes what
real inboxes contain and naive taps trip over: unicode names, nulls inside nested objects,
empty arrays, attribute values of every JSON scalar type, and varied timestamps.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

Record = dict[str, Any]


def data_epoch() -> datetime:
    """The instant data timestamps are spread backwards from: the start of today (UTC).

    Relative to the clock, not fixed, so the data is always in the past whatever the date;
    the same all day, so two demo runs on one day see the same inbox.
    """
    now = datetime.now(timezone.utc)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


STATUSES = ["OPEN", "INPROGRESS", "REVIEW", "ONHOLD", "DEPENDANCY", "CLOSED"]
SENDERS = ["bot", "user", "agent"]
NAMES = [
    "Aarav Sharma",
    "José Álvarez",
    "Zoë Müller",
    "李雷",
    "Сергей Иванов",
    "أحمد علي",
    "Ngozi Okafor",
    "Siobhán O'Neill",
    "Ana-María Pérez",
    "Kenji 田中",
    "Emma 🐧 Stone",
    "Priya Nair",
    "Łukasz Wróbel",
    "Fatma Yılmaz",
    'O\'Brien "Bud" Smith',
]
CITIES = ["Mumbai", "São Paulo", "München", "北京", "Lagos", "Dublin", "Kraków", None]
COUNTRIES = ["India", "Brazil", "Germany", "China", "Nigeria", "Ireland", "Poland", None]
TAGS = ["vip", "pricing", "support", "newsletter", "whatsapp", "demo-request", "ünïcode"]
MESSAGES = [
    "Hi! How can I help you today?",
    "I'd like a demo, please.",
    "Quel est le prix ?",
    "¿Tienen soporte en español?",
    "Thanks 🙏",
    "Line one\nline two\ttabbed",
    '<b>not html</b> & "quotes"',
    "",
]


def iso(moment: datetime) -> str:
    """Format like the API (MongoDB style): millisecond precision, `Z` suffix."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


def object_id(rng: random.Random) -> str:
    """A 24-hex-digit identifier shaped like the API's MongoDB ObjectIds."""
    return f"{rng.getrandbits(96):024x}"


def _attribute_value(rng: random.Random) -> Any:
    """Attribute values come from free user input: any JSON scalar (docs/contract.md)."""
    return rng.choice(
        ["Gold plan", 42, 3.5, True, False, None, "", "2026-05-01", "12345678901234567890"],
    )


def _user_details(rng: random.Random, index: int) -> dict[str, Any] | None:
    if index % 17 == 5:
        return None
    name = rng.choice(NAMES)
    slug = f"user{index}"
    contact: dict[str, Any] | None = {
        "email": f"{slug}@example.com" if index % 4 else None,
        "phone": (
            {"number": f"{rng.randrange(10**9, 10**10)}", "prefix": rng.choice(["91", "55", "49"])}
            if index % 3
            else None
        ),
    }
    if index % 11 == 0:
        contact = None
    return {
        "name": name if index % 13 else None,
        "picture": f"https://cdn.example.com/avatars/{slug}.png" if index % 2 else None,
        "contact": contact,
        "city": rng.choice(CITIES),
        "country": rng.choice(COUNTRIES),
        "gender": rng.choice(["MALE", "FEMALE", None]),
        "tags": rng.sample(TAGS, k=rng.randrange(0, 3)),
        "attributes": [
            {"key": f"field_{n}", "value": _attribute_value(rng)}
            for n in range(rng.randrange(0, 4))
        ],
    }


def make_record(rng: random.Random, index: int, updated_at: datetime) -> Record:
    """One chat/lead object as documented, with realistic gaps."""
    created_at = updated_at - timedelta(minutes=rng.randrange(0, 60 * 24 * 30))
    notes = [
        {"_id": object_id(rng), "title": f"Call back #{n}", "description": rng.choice(MESSAGES)}
        for n in range(rng.choice([0, 0, 0, 1, 2]))
    ]
    return {
        "_id": object_id(rng),
        "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "isOnline": rng.random() < 0.1,
        "status": rng.choice(STATUSES),
        "websiteVisits": rng.randrange(0, 40),
        "_agentAssigned": object_id(rng) if index % 3 == 0 else None,
        "lastMessage": (
            {"at": iso(updated_at), "by": rng.choice(SENDERS), "text": rng.choice(MESSAGES)}
            if index % 9
            else None
        ),
        "lastSeenAt": iso(updated_at - timedelta(seconds=rng.randrange(0, 3600))),
        "profile": {"userDetails": _user_details(rng, index), "notes": notes},
        "createdAt": iso(created_at),
        "updatedAt": iso(updated_at),
    }


def make_inbox(seed: str, count: int, epoch: datetime | None = None) -> list[Record]:
    """`count` records, newest `updatedAt` first, identical for the same seed and epoch."""
    rng = random.Random(seed)
    moment = epoch or data_epoch()
    records = []
    for index in range(count):
        moment -= timedelta(seconds=rng.randrange(1, 4 * 3600))
        records.append(make_record(rng, index, moment))
    return records


@dataclass
class Bot:
    """One bot of the sandbox: its customer account, token and inboxes.

    `order` overrides the sandbox's listing order for this bot (see `inbox.ORDERS`).
    """

    bot_id: str
    customer_id: str
    token: str
    leads: list[Record] = field(default_factory=list)
    chats: list[Record] = field(default_factory=list)
    order: str | None = None

    def inbox(self, kind: str) -> list[Record]:
        """The list behind `type=lead` or `type=non-lead`."""
        return self.leads if kind == "lead" else self.chats


SANDBOX_TOKEN = "sandbox-token-0123456789abcdef"  # noqa: S105 - a public, fake credential
SANDBOX_CUSTOMER = "6401aa5f3c2b1d0e9f8a7b6c"
WEBSITE_BOT = "65f0c1d2e3a4b5c6d7e8f901"
WHATSAPP_BOT = "65f0c1d2e3a4b5c6d7e8f902"
QUIET_BOT = "65f0c1d2e3a4b5c6d7e8f903"


def default_bots(scale: int = 1, epoch: datetime | None = None) -> list[Bot]:
    """The demo account: three bots of one customer, of different sizes, one token.

    `scale` multiplies every inbox (benchmarks use it to get large data sets).
    """
    epoch = epoch or data_epoch()
    sizes = {WEBSITE_BOT: (180, 240), WHATSAPP_BOT: (55, 30), QUIET_BOT: (0, 7)}
    return [
        Bot(
            bot_id=bot_id,
            customer_id=SANDBOX_CUSTOMER,
            token=SANDBOX_TOKEN,
            leads=make_inbox(f"{bot_id}:lead", leads * scale, epoch),
            chats=make_inbox(f"{bot_id}:non-lead", chats * scale, epoch),
        )
        for bot_id, (leads, chats) in sizes.items()
    ]
