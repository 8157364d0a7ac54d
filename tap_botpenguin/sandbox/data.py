"""Deterministic, realistic BotPenguin inbox data for the sandbox.

Records follow the field tables of BotPenguin's endpoint page and the shapes in
docs/contract.md ("Shapes beyond the field tables"). The generator deliberately includes what
real inboxes contain and naive taps trip over: unicode names, nulls inside nested objects,
empty arrays, attribute values of every JSON scalar type, and varied timestamps.

`shape` says which records a bot serves (`SHAPES`): as the field tables document them, or as
BotPenguin's real records come (`real_shaped`: the name in `userProvidedName`, unknown values
as empty strings, the channels in `platform`, flags and counts beyond the tables), or both.
"""

from __future__ import annotations

import copy
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


#: Which records the sandbox serves: `documented` (every record as the field tables say),
#: `real` (every record as BotPenguin's real ones come), `mixed` (the two alternate on every
#: page), `demo` (one bot of each: the WhatsApp bot real, the website bot mixed, the quiet
#: bot documented; what scripts/demo.sh serves).
SHAPES = ("documented", "real", "mixed", "demo")
#: Channels as real records name them in `platform` (the sample says `WHATSAPP`).
OTHER_PLATFORMS = ["INSTAGRAM", "FACEBOOK", "TELEGRAM"]


def _platforms(index: int, platform: str) -> list[str] | None:
    """The `platform` of the `index`-th real record of a bot on `platform`.

    Mostly the bot's own; now and then another channel, the bot's twice in two cases, an
    empty list, or no field at all.
    """
    if index % 10 == 9:
        return None
    if index % 10 == 7:
        return []
    if index % 10 == 3:
        return [OTHER_PLATFORMS[index // 10 % len(OTHER_PLATFORMS)]]
    if index % 10 == 5:
        return [platform, platform.lower()]
    return [platform]


def real_shaped(record: Record, index: int, platform: str) -> Record:
    """The same conversation as BotPenguin's real records carry it (docs/contract.md).

    No `userDetails.name` (the name is in `userProvidedName`, blank when unknown), unknown
    email, city and country as empty strings, `whatsAppNumber` (dial code and number; the
    only phone of every fourth contact), `lastMessage` without `text`, and the top-level
    fields the sample shows: `_agency`, `_customer`, `platform`, `secondaryPlatform`, flags,
    `hasOrdered`, `segments`, unread counts, `__v`; `profile.marketing.urlsVisited`.
    """
    real = copy.deepcopy(record)
    profile = real["profile"]
    details = profile.get("userDetails")
    if details is not None:
        name = details.pop("name")
        details["userProvidedName"] = name if name is not None else ("" if index % 2 else "  ")
        for key in ("city", "country"):
            if details[key] is None:
                details[key] = ""
        contact = details.get("contact")
        if contact is not None:
            if contact["email"] is None:
                contact["email"] = ""
            phone = contact.get("phone")
            if phone:
                details["whatsAppNumber"] = phone["prefix"] + phone["number"]
                if index % 4 == 1:
                    del contact["phone"]
            elif index % 5 == 0:
                details["whatsAppNumber"] = ""
    if index % 3 != 2:
        profile["marketing"] = {
            "urlsVisited": [
                f"https://shop.example.com/page-{index % 7 + n}" for n in range(1 + index % 3)
            ]
        }
    if real["lastMessage"] is not None:
        del real["lastMessage"]["text"]
    platforms = _platforms(index, platform)
    fields: Record = {
        "_agency": f"{index % 2:024x}",
        "_customer": f"{7:024x}",
        "secondaryPlatform": ["website"] if index % 2 and platform != "website" else [],
        "isSubscriber": index % 2 == 0,
        "userInteracted": index % 4 != 3,
        "isContact": index % 3 == 0,
        "isImported": index % 7 == 0,
        "isMigrated": False,
        "isLiveChatActive": index % 6 == 1,
        "isPaid": index % 8 == 0,
        "hasOrdered": {"status": index % 5 == 0},
        "segments": [f"segment-{index % 3}"] if index % 4 else [],
        "unreadMessages": index % 4,
        "unreadMessage": [],
        "__v": index % 3,
    }
    if platforms is not None:
        fields["platform"] = platforms
    real.update(fields)
    return real


def shaped(records: list[Record], shape: str, platform: str) -> list[Record]:
    """A listing's records in `shape`: `documented`, `real`, or `mixed` (every other one real)."""
    if shape == "documented":
        return records
    return [
        real_shaped(record, index, platform) if shape == "real" or index % 2 else record
        for index, record in enumerate(records)
    ]


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


#: Each demo bot's channel, as real records name it in `platform`.
BOT_PLATFORMS = {WEBSITE_BOT: "website", WHATSAPP_BOT: "WHATSAPP", QUIET_BOT: "TELEGRAM"}
DEMO_SHAPES = {WEBSITE_BOT: "mixed", WHATSAPP_BOT: "real", QUIET_BOT: "documented"}


def default_bots(
    scale: int = 1, epoch: datetime | None = None, shape: str = "documented"
) -> list[Bot]:
    """The demo account: three bots of one customer, of different sizes, one token.

    `scale` multiplies every inbox (benchmarks use it to get large data sets); `shape` is
    one of `SHAPES`.
    """
    epoch = epoch or data_epoch()
    sizes = {WEBSITE_BOT: (180, 240), WHATSAPP_BOT: (55, 30), QUIET_BOT: (0, 7)}
    bots = []
    for bot_id, (leads, chats) in sizes.items():
        bot_shape = DEMO_SHAPES[bot_id] if shape == "demo" else shape
        platform = BOT_PLATFORMS[bot_id]
        bots.append(
            Bot(
                bot_id=bot_id,
                customer_id=SANDBOX_CUSTOMER,
                token=SANDBOX_TOKEN,
                leads=shaped(
                    make_inbox(f"{bot_id}:lead", leads * scale, epoch), bot_shape, platform
                ),
                chats=shaped(
                    make_inbox(f"{bot_id}:non-lead", chats * scale, epoch), bot_shape, platform
                ),
            )
        )
    return bots


@dataclass(frozen=True)
class AgencyCustomer:
    """One customer of the agency account: its own token and bots (one shard, docs/scaling.md)."""

    customer_id: str
    token: str
    #: bot id -> (leads, chats)
    bots: dict[str, tuple[int, int]]


#: The agency account (`--account agency`): two customers, each with its own token and two
#: bots, the way an agency's shards are laid out (orchestrate/shards.sandbox.yml names them).
AGENCY_CUSTOMERS = {
    "customer-a": AgencyCustomer(
        customer_id="6401aa5f3c2b1d0e9f8a7c01",
        token="sandbox-agency-a-token-7d41c2",  # noqa: S106 - a public, fake credential
        bots={"66b1a0c2d3e4f5a6b7c8d901": (60, 40), "66b1a0c2d3e4f5a6b7c8d902": (30, 20)},
    ),
    "customer-b": AgencyCustomer(
        customer_id="6401aa5f3c2b1d0e9f8a7c02",
        token="sandbox-agency-b-token-93be05",  # noqa: S106 - a public, fake credential
        bots={"66b1a0c2d3e4f5a6b7c8d903": (45, 35), "66b1a0c2d3e4f5a6b7c8d904": (10, 15)},
    ),
}
#: Which of the sandbox's accounts it serves: the demo's one customer, or the agency's two.
ACCOUNTS = ("demo", "agency")


def agency_bots(
    scale: int = 1, epoch: datetime | None = None, shape: str = "documented"
) -> list[Bot]:
    """The agency account's four bots: two customers, one token each."""
    epoch = epoch or data_epoch()
    platforms = ("website", "WHATSAPP")
    bots = []
    for customer in AGENCY_CUSTOMERS.values():
        for n, (bot_id, (leads, chats)) in enumerate(customer.bots.items()):
            bot_shape = ("mixed", "real")[n] if shape == "demo" else shape
            bots.append(
                Bot(
                    bot_id=bot_id,
                    customer_id=customer.customer_id,
                    token=customer.token,
                    leads=shaped(
                        make_inbox(f"{bot_id}:lead", leads * scale, epoch), bot_shape, platforms[n]
                    ),
                    chats=shaped(
                        make_inbox(f"{bot_id}:non-lead", chats * scale, epoch),
                        bot_shape,
                        platforms[n],
                    ),
                )
            )
    return bots
