"""The sandbox's inboxes as the API lists them, and the changes a live inbox goes through.

The contract documents no sort order, so the listing order is a switch (`ORDERS`):
- `updated`: newest `updatedAt` first: every change moves a conversation to the top;
- `last_message`: newest `lastMessage.at` first: a new message moves a conversation to the top,
  a status-only change updates `updatedAt` and leaves it where it is (a conversation without
  a last message sorts by `createdAt`);
- `created`: newest `createdAt` first: new conversations arrive at the top, every change
  leaves a conversation where it is;
- `unordered`: a fixed order unrelated to time (a hash of `_id`): nothing ever moves.

Changes are made by position in the listing as it is served now (0 = top of page 1).
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from tap_botpenguin.sandbox.data import Bot, Record, iso, make_record

ORDERS = ("updated", "last_message", "created", "unordered")
#: How precisely the API stamps times: milliseconds (`iso`), or whole seconds.
PRECISIONS = ("ms", "seconds")
#: Where a record holds times (top-level keys, and `lastMessage.at`).
_TIME_KEYS = ("updatedAt", "createdAt", "lastSeenAt")
#: How far past a listing's last page the sandbox still answers (see `Inboxes.past_bound`).
PAGE_BOUND = 20
#: Starts the message of the answer past the bound; test helpers look for it.
PAGE_BOUND_MESSAGE = "sandbox page bound exceeded"


def _to_seconds(value: Any) -> Any:
    """`2026-06-01T10:00:00.123Z` as `2026-06-01T10:00:00Z` (other values as they are)."""
    if isinstance(value, str) and len(value) == 24 and value[19] == ".":
        return value[:19] + "Z"
    return value


def _newest_update(record: Record) -> tuple[str, str]:
    return (str(record.get("updatedAt") or ""), str(record.get("_id")))


def _newest_message(record: Record) -> tuple[str, str]:
    last = record.get("lastMessage")
    at = last.get("at") if isinstance(last, dict) else None
    return (str(at or record.get("createdAt") or ""), str(record.get("_id")))


def _newest_created(record: Record) -> tuple[str, str]:
    return (str(record.get("createdAt") or ""), str(record.get("_id")))


def _scrambled(record: Record) -> tuple[str, str]:
    digest = hashlib.sha256(str(record.get("_id")).encode()).hexdigest()
    return (digest, "")


_SORT_KEYS: dict[str, Callable[[Record], tuple[str, str]]] = {
    "updated": _newest_update,
    "last_message": _newest_message,
    "created": _newest_created,
    "unordered": _scrambled,
}


class Inboxes:
    """Every bot's leads and chats, listed in `order` (or the bot's own), `page_size` a page."""

    def __init__(self, bots: list[Bot], order: str, page_size: int) -> None:
        for value in {order, *(bot.order for bot in bots if bot.order)}:
            if value not in ORDERS:
                msg = f"order must be one of {ORDERS}, got {value!r}"
                raise ValueError(msg)
        self.bots = bots
        self.order = order
        self.page_size = page_size
        self._by_id = {bot.bot_id: bot for bot in bots}
        self._lock = threading.RLock()
        self._listings: dict[tuple[str, str], list[Record]] = {}
        self._page_cache: dict[tuple[str, str, int], bytes] = {}
        self.page_bound = PAGE_BOUND
        #: Requests refused by `past_bound`.
        self.overran = 0
        #: How far the API's clock runs from this machine's (a skewed server). Its `Date`
        #: headers and the times of the changes made through it follow the API's clock.
        self.clock_offset = timedelta(0)
        #: A moment the API's clock is stopped at (`set_clock`), if any.
        self._stopped_at: datetime | None = None
        #: How precisely times are served (`PRECISIONS`): "seconds" drops the milliseconds.
        self.precision = "ms"

    def now(self) -> datetime:
        """The API's clock."""
        if self._stopped_at is not None:
            return self._stopped_at
        return datetime.now(timezone.utc) + self.clock_offset

    def set_clock(self, moment: datetime) -> None:
        """Stop the API's clock at `moment`, as tests stop the tap's to run it hours apart."""
        self._stopped_at = moment

    def served(self, records: list[Record]) -> list[Record]:
        """Records as the API serves them: times to the `precision` it stamps them with."""
        if self.precision == "ms":
            return records
        served = []
        for record in records:
            copy = dict(record)
            for key in _TIME_KEYS:
                copy[key] = _to_seconds(copy.get(key))
            last = copy.get("lastMessage")
            if isinstance(last, dict):
                copy["lastMessage"] = {**last, "at": _to_seconds(last.get("at"))}
            served.append(copy)
        return served

    def past_bound(self, params: dict[str, str]) -> str | None:
        """Why a page is refused: it is more than `page_bound` pages past its listing's end.

        No tap that sees the end of a listing asks that far: one that does not see it would
        loop until a test times out. The refusal fails the listing at once instead, and every
        request after it is refused too, so the run ends within a request per listing.
        """
        page, last = int(params["page"]), self.pages(params["botId"], params["type"])
        if page <= last + self.page_bound and not self.overran:
            return None
        self.overran += 1
        return (
            f"{PAGE_BOUND_MESSAGE}: page {page} asked of a listing of {last} page(s); the tap "
            "does not see the end of a listing"
        )

    def bot(self, bot_id: str) -> Bot:
        """The sandbox bot with this id."""
        return self._by_id[bot_id]

    def has_bot(self, bot_id: str) -> bool:
        """Whether the sandbox knows this bot."""
        return bot_id in self._by_id

    # --- reading ---------------------------------------------------------------------
    def listing(self, bot_id: str, kind: str) -> list[Record]:
        """The records of one listing in the order the API serves them (do not modify)."""
        with self._lock:
            key = (bot_id, kind)
            if key not in self._listings:
                bot = self.bot(bot_id)
                order = bot.order or self.order
                self._listings[key] = sorted(
                    bot.inbox(kind), key=_SORT_KEYS[order], reverse=order != "unordered"
                )
            return self._listings[key]

    def pages(self, bot_id: str, kind: str) -> int:
        """How many pages the listing fills (0 when empty)."""
        return -(-len(self.listing(bot_id, kind)) // self.page_size)

    def page(self, bot_id: str, kind: str, page: int) -> list[Record]:
        """The records of one page (1-based); empty past the end."""
        start = (page - 1) * self.page_size
        return self.listing(bot_id, kind)[start : start + self.page_size]

    def cached_body(self, key: tuple[str, str, int], render: Callable[[], bytes]) -> bytes:
        """A page's serialized body, rendered once per inbox version."""
        with self._lock:
            body = self._page_cache.get(key)
            if body is None:
                body = self._page_cache[key] = render()
            return body

    def all_records(self, kind: str) -> dict[tuple[str, str], Record]:
        """Every record of one kind, keyed by (botId, _id)."""
        with self._lock:
            return {(b.bot_id, r["_id"]): r for b in self.bots for r in b.inbox(kind)}

    # --- changing --------------------------------------------------------------------
    def _changed(self) -> None:
        self._listings.clear()
        self._page_cache.clear()

    def update(
        self,
        bot_id: str,
        kind: str,
        positions: Iterable[int],
        *,
        message: bool = True,
        status: str | None = None,
        at: datetime | None = None,
        fields: dict[str, Any] | None = None,
    ) -> list[str]:
        """Update the conversations at `positions` now; returns their ids.

        `message=True`: a new message (`lastMessage.at` moves too); `False`: a change of
        status, assignment or profile only (`updatedAt` moves, `lastMessage` does not).
        `fields` are set as they are (undocumented ones included).
        """
        with self._lock:
            listing = self.listing(bot_id, kind)
            picked = [listing[position] for position in sorted(set(positions))]
            now = iso(at or self.now())
            for record in picked:
                record["updatedAt"] = now
                record["websiteVisits"] = (record.get("websiteVisits") or 0) + 1
                if message:
                    last = record.get("lastMessage")
                    text = last.get("text") if isinstance(last, dict) else "Hello again"
                    record["lastMessage"] = {"at": now, "by": "user", "text": text}
                if status:
                    record["status"] = status
                record.update(fields or {})
            self._changed()
            return [record["_id"] for record in picked]

    def touch(self, bot_id: str, kind: str, count: int, *, status: str | None = None) -> list[str]:
        """A new message in the `count` conversations at the bottom of the listing."""
        with self._lock:
            size = len(self.listing(bot_id, kind))
            return self.update(bot_id, kind, range(max(size - count, 0), size), status=status)

    def add(
        self, bot_id: str, kind: str, count: int, seed: str = "new", at: datetime | None = None
    ) -> list[str]:
        """New conversations (in a time-ordered listing, at the top of page 1)."""
        with self._lock:
            inbox = self.bot(bot_id).inbox(kind)
            rng = random.Random(f"{seed}:{bot_id}:{kind}:{len(inbox)}")
            now = at or self.now()
            fresh = [make_record(rng, len(inbox) + n, now) for n in range(count)]
            for record in fresh:  # created now (a creation-ordered listing lists them first)
                record["createdAt"] = record["updatedAt"]
            inbox[:0] = fresh
            self._changed()
            return [r["_id"] for r in fresh]

    def delete(self, bot_id: str, kind: str, positions: Iterable[int]) -> list[str]:
        """Delete the conversations at `positions`: later ones shift up."""
        with self._lock:
            listing = self.listing(bot_id, kind)
            gone = {id(listing[position]) for position in set(positions)}
            inbox = self.bot(bot_id).inbox(kind)
            removed = [record["_id"] for record in inbox if id(record) in gone]
            inbox[:] = [record for record in inbox if id(record) not in gone]
            self._changed()
            return removed

    def move(
        self,
        bot_id: str,
        from_kind: str,
        to_kind: str,
        position: int,
        at: datetime | None = None,
        *,
        updated: bool = True,
    ) -> str:
        """A conversation changes `type` (a chat becomes a lead), updated now; returns its id.

        `updated=False`: its `updatedAt` stays as it was (whether BotPenguin moves records
        that way is unknown).
        """
        with self._lock:
            record = self.listing(bot_id, from_kind)[position]
            self.bot(bot_id).inbox(from_kind).remove(record)
            if updated:
                record["updatedAt"] = iso(at or self.now())
            self.bot(bot_id).inbox(to_kind).insert(0, record)
            self._changed()
            return str(record["_id"])
