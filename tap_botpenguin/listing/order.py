"""Which newest-first order a listing follows, judged from the records it serves.

The contract documents no sort order. Three are plausible for an inbox, and each is checked
on every read, per bot and stream:

- newest `updatedAt` first: every change moves a conversation to the top;
- newest `lastMessage.at` first (what an inbox screen shows): a new message moves it to the
  top, a status-only change leaves it where it is;
- newest `createdAt` first (how BotPenguin's contacts listing is polled elsewhere): new
  conversations arrive at the top, every change leaves it where it is.

Evidence, per key: values never rise from one record to the next (equal values allowed). A
record the previous page held with the same `updatedAt` is the list shifting down under the
reader, neither order nor disorder. A record without the key (no `lastMessage`, say) is
skipped wherever the API sorts it: at the end, as MongoDB sorts a missing value, or by some
other value. A key counts as the listing's order only when at least half of the records
checked carry it (and at least two do), so a key nobody sends never passes for an order.

Where several keys hold, the first of `ORDER_KEYS` wins: `updatedAt` brings every change to the
top, `lastMessage.at` every new message, `createdAt` only new conversations.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tap_botpenguin.records.sanitize import is_utc_iso, parse_datetime, utc_iso

#: The keys a listing may follow, most useful first (see the module docstring).
ORDER_KEYS = ("updatedAt", "lastMessage.at", "createdAt")


def order_value(record: dict[str, Any], key: str) -> str | None:
    """The record's `key` as a `utc_iso` string, comparable as a string; None when absent.

    `updatedAt` is already normalized by the reader; the others are normalized here, without
    changing the record (what is emitted stays as the API sent it).
    """
    if key == "lastMessage.at":
        last = record.get("lastMessage")
        value = last.get("at") if isinstance(last, dict) else None
    else:
        value = record.get(key)
    return _normalized(value)


def _normalized(value: Any) -> str | None:
    if isinstance(value, str) and is_utc_iso(value):
        return value
    if value is None or isinstance(value, bool):
        return None
    moment = parse_datetime(value)
    return utc_iso(moment) if moment is not None else None


def page_values(records: list[dict[str, Any]], key: str) -> list[str | None]:
    """`order_value` of every record, in order: one pass per page and key, run per record."""
    if key == "lastMessage.at":
        raw = [
            last.get("at") if type(last := record.get("lastMessage")) is dict else None
            for record in records
        ]
    else:
        raw = [record.get(key) for record in records]
    # `is_utc_iso` inline: nearly every value has the shape, and this runs for every record.
    return [
        value
        if type(value) is str and len(value) == 24 and value[19] == "." and value[-1] == "Z"
        else _normalized(value)
        for value in raw
    ]


@dataclass
class KeyCheck:
    """What one read saw of one key: where it first rose, the lowest and newest values."""

    key: str
    #: Page where the value first rose from one record to the next, if it did.
    broken_at: int | None = None
    #: Records checked that carry the key.
    keyed: int = 0
    #: The value order is checked against (the lowest so far while in order).
    lowest: str | None = None
    #: The newest value seen, ahead of the API's clock excluded (the next run's cutoff).
    newest: str | None = None
    #: The lowest value on the page just checked (None: no record of it carried the key).
    page_lowest: str | None = None
    #: Records whose value was ahead of the API's clock (`listing.clock`).
    ahead: int = 0

    def page(self, number: int, values: Iterable[str | None], limit: str) -> int | None:
        """Check one page's values, in listing order (None: a record without the key).

        A value later than `limit` is ahead of the API's clock: it is checked for order
        like any other, but is neither the newest nor the lowest value that cutoffs follow.
        Returns the position on the page of the first such value, if any.
        """
        self.page_lowest = None
        first_ahead = None
        for position, value in enumerate(values):
            if value is None:
                continue
            self.keyed += 1
            if value > limit:
                self.ahead += 1
                first_ahead = position if first_ahead is None else first_ahead
            else:
                if self.newest is None or value > self.newest:
                    self.newest = value
                if self.page_lowest is None or value < self.page_lowest:
                    self.page_lowest = value
            if self.lowest is not None and value > self.lowest:
                if self.broken_at is None:
                    self.broken_at = number
            else:
                self.lowest = value
        return first_ahead


class OrderEvidence:
    """Every candidate key's check over one read of a listing (its reading thread)."""

    def __init__(self) -> None:
        self.checks = {key: KeyCheck(key) for key in ORDER_KEYS}
        #: Records checked (shifted ones excluded).
        self.checked = 0

    def page(
        self, number: int, records: list[dict[str, Any]], shifted: set[Any], limit: str
    ) -> dict[str, dict[str, Any]]:
        """Check one page; `shifted`: ids the previous page held with the same `updatedAt`.

        `limit`: the latest value the API's clock allows. Returns, per key, the first record
        of the page whose value was ahead of it.
        """
        compared = [r for r in records if r.get("_id") not in shifted] if shifted else records
        self.checked += len(compared)
        ahead = {}
        for key, check in self.checks.items():
            first = check.page(number, page_values(compared, key), limit)
            if first is not None:
                ahead[key] = compared[first]
        return ahead

    def holds(self, key: str) -> bool:
        """Whether the read so far is newest-`key` first, on enough records to say so."""
        check = self.checks[key]
        return check.broken_at is None and check.keyed >= 2 and 2 * check.keyed >= self.checked

    def followed(self) -> str | None:
        """The key the read so far follows (the first of `ORDER_KEYS` that holds), if any."""
        return next((key for key in ORDER_KEYS if self.holds(key)), None)

    def in_some_order(self) -> bool:
        """Whether some key holds so far: changes then enter the listing at its top only."""
        return self.followed() is not None

    def broken(self) -> str:
        """Where each key broke, for the log and the state: "updatedAt rose at page 7"."""
        notes = [
            f"{check.key} rose at page {check.broken_at}"
            for check in self.checks.values()
            if check.broken_at is not None
        ]
        return ", ".join(notes) or "no timestamp carried by enough records"
