"""Fields a real API sends beyond its documentation, one of each JSON type (a sandbox switch).

`add_undocumented_fields(bots)` gives every record `channel` (string), `leadScore` (integer),
`rating` (number), `isVip` (boolean), `utm` (object) and `labels` (array), and every third
record `referrer` (string): what BotPenguin may well send without documenting it.
"""

from __future__ import annotations

from typing import Any

from tap_botpenguin.sandbox.data import Bot, Record

#: Each field and the JSON type its values have.
UNDOCUMENTED_FIELDS = {
    "channel": "string",
    "leadScore": "integer",
    "rating": "number",
    "isVip": "boolean",
    "utm": "object",
    "labels": "array",
    "referrer": "string",
}
CHANNELS = ("website", "whatsapp", "instagram", "telegram")


def undocumented_values(index: int) -> dict[str, Any]:
    """The undocumented fields of the `index`-th record of a listing."""
    values: dict[str, Any] = {
        "channel": CHANNELS[index % len(CHANNELS)],
        "leadScore": index % 100,
        "rating": round(1 + (index % 40) / 10 + 0.05, 2),
        "isVip": index % 5 == 0,
        "utm": {"source": "google", "campaign": f"spring-{index % 3}", "clicks": index % 7},
        "labels": [f"label-{index % 4}", index % 2 == 0],
    }
    if index % 3 == 0:
        values["referrer"] = f"https://ref.example.com/{index}"
    return values


def add_undocumented_fields(bots: list[Bot]) -> None:
    """Give every record of every inbox the undocumented fields (in place)."""
    for bot in bots:
        for inbox in (bot.leads, bot.chats):
            for index, record in enumerate(inbox):
                record.update(undocumented_values(index))


def undocumented_of(record: Record) -> dict[str, Any]:
    """The undocumented fields a record carries."""
    return {key: record[key] for key in UNDOCUMENTED_FIELDS if key in record}
