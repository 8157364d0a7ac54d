"""One listing's read: pages requested in order, checked, and handed on as `AcceptedPage`s.

A `ListingReader` runs on one thread, its reading thread: the main thread when it reads the
listing itself, a worker of `concurrency.workers` when a worker reads it ahead. Per page:

1. `ahead` gets it: sent and decoded by the sending thread (this one, or a window's threads);
2. its records are repaired against the schema as it stood when the read was planned
   (`records.sanitize`), and their `updatedAt` normalized (bookmarks compare strings);
3. `listing` decides whether the page ends the listing (a page repeating the previous one is
   asked for once more first), `scan` checks the order against the API's clock and decides
   whether to read on;
4. the page is yielded with what its requests cost, for the main thread, which alone writes
   messages, learns undocumented fields and keeps the state.

The loop is the SDK's REST loop: stop after an empty accepted page, else ask whether to go on.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import msgspec

from tap_botpenguin.http.client import Traffic
from tap_botpenguin.listing.ahead import PagesAhead
from tap_botpenguin.listing.ending import Listing
from tap_botpenguin.listing.scan import ScanRun
from tap_botpenguin.records.sanitize import RecordSanitizer, normalize_timestamps


class AcceptedPage(msgspec.Struct, gc=False):
    """A page of records to emit, and what reading it cost (msgpack-able: pages may spill)."""

    number: int
    records: list[dict[str, Any]]
    #: Records the reading thread repaired (`records.sanitize`).
    repaired: int
    #: The API's page size as this listing learned it in this run (None: not yet).
    page_size: int | None
    requests: int
    #: (HTTP status, seconds) of each answered attempt.
    answers: list[tuple[int, float]]
    #: (start, end) of each wait, monotonic clock.
    waits: list[tuple[float, float]]
    #: Emit records with `updatedAt` at or after this (the scan's plan when the page was read).
    floor: str | None = None
    #: When the API read the page, by its own clock (None: its answer had no `Date`).
    api_time: datetime | None = None


class ListingReader:
    """Reads one listing on its reading thread (see the module docstring)."""

    def __init__(
        self,
        *,
        listing: Listing,
        scan: ScanRun,
        ahead: PagesAhead,
        sanitizer: RecordSanitizer,
    ) -> None:
        self.listing = listing
        self.scan = scan
        self.ahead = ahead
        #: The schema's sanitizer when the read was planned (the main thread's may move on).
        self.sanitizer = sanitizer
        self._leftover = Traffic()

    def pages(self) -> Iterator[AcceptedPage]:
        """On the reading thread: the listing's pages to emit, in order."""
        listing, scan = self.listing, self.scan
        number = 1
        try:
            while True:
                page = self.ahead.get(number)
                repaired = self.sanitizer.sanitize_page(
                    page.records, scrub_strings=page.scrub_strings
                )
                normalize_timestamps(page.records, "updatedAt")
                records, shifted = listing.accept(page)
                if listing.ask_again is not None:
                    continue  # the same number again, one request at a time
                if records:
                    scan.page_read(page.number, records, shifted, page.api_time)
                traffic = self.ahead.take_traffic()
                if not records:
                    self._leftover.add(traffic)
                    return
                yield AcceptedPage(
                    number=page.number,
                    records=records,
                    repaired=repaired,
                    page_size=listing.page_sizes.size if listing.page_sizes.confirmed else None,
                    requests=traffic.requests,
                    answers=traffic.answers,
                    waits=traffic.waits,
                    floor=scan.plan.floor,
                    api_time=page.api_time,
                )
                if listing.ended or not scan.wants_more:
                    return
                number += 1
        finally:
            self._leftover.add(self.ahead.take_traffic())
            self.ahead.close()

    def leftover_traffic(self) -> Traffic:
        """Once the read ended: what requests no yielded page carried cost (the last one's)."""
        traffic, self._leftover = self._leftover, Traffic()
        return traffic
