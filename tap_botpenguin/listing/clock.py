"""The API's clock: what the tap's cutoffs may rest on, since no timestamp it reads is its own.

Records carry what the API stamped (or a bot's clock, or an import), and a state file may have
been edited or written by a clock gone wrong. Each answer's `Date` header says what the API
itself takes for "now" (`http.responses.api_clock`); where an answer has none, the tap's own
clock stands in. From that:

- a value later than the API's now by more than `TOLERANCE` is *ahead*: it is emitted as
  sent, but never becomes the newest value an early stop cuts off by, nor a bookmark; a
  bookmark or newest value in the state that is ahead is corrected with a full scan;
- a listing's bookmark is capped at the second when the API read its first page (`to_second`),
  so a record changed during the read, after its page was read, is at or above the bookmark,
  whatever the tap's clock says and with whatever precision the API stamps its times.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from tap_botpenguin.records.sanitize import utc_iso

#: How far ahead of the API's clock a timestamp may be and still be believed (a bot's clock
#: running a little fast, a `Date` header stamped before the record).
TOLERANCE = timedelta(minutes=5)


def to_second(moment: datetime) -> datetime:
    """`moment` without its fraction of a second: `Date` headers and some APIs say no more."""
    return moment.replace(microsecond=0)


class ApiClock:
    """What the API said "now" was, answer by answer, for one read (its reading thread).

    `fallback` is the tap's clock, for answers without a `Date` header.
    """

    def __init__(self, fallback: Callable[[], datetime]) -> None:
        self._fallback = fallback
        #: When the API read the listing's first page, to the second (the bookmark's cap).
        self.read_started: str | None = None
        #: What the last answer said "now" was, and the latest timestamp believed then.
        self.now = ""
        self.limit = ""

    def page_read(self, api_time: datetime | None) -> None:
        """A page was read at `api_time` by the API's clock (None: the answer had no `Date`)."""
        now = api_time if api_time is not None else self._fallback()
        if self.read_started is None and api_time is not None:
            self.read_started = utc_iso(to_second(api_time))
        self.now = utc_iso(to_second(now))
        self.limit = utc_iso(now + TOLERANCE)

    def ahead(self, value: str | None) -> bool:
        """Whether a `utc_iso` value lies beyond what the API's clock allows (after a page)."""
        return value is not None and value > self.limit
