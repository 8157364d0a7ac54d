"""Paging through one listing and recognising its end, whatever form the API gives it.

The contract documents neither an end signal nor the page size (docs/contract.md). A
listing ends at the first of:
- a page with an empty `data` array (our default assumption);
- a 400/404/416/422 for page 2 or later (see `responses.PAST_THE_END_CODES`);
- a page identical to the previous one, twice: an API that "clamps" `page` to the last page.
  The first repeat is asked for again: a cache's stale copy, or the list shifting by exactly
  a page while it was read, repeats a page once, and ending there would drop the rest.

Telling a clamped listing from an API that ignores `page` needs the page size: a page is
*full* when the page after it held other records (a page holding an id twice says nothing
about the size). A repeat of page 1 at page 2 is therefore judged by the page size
(`PageSizes`):
- page 1 at least as long as any size known (this run's, or the state's): the API ignores
  `page`: the run stops with one line (nothing silently lost);
- page 1 shorter than a size this run confirmed: the listing fits one page; the API repeats it;
- otherwise (no size, or only the state's, which may be stale or edited): taken as a one-page
  listing, with a warning, and its bookmark is not advanced; if a page size turns up later
  in the run and page 1 was full, the run stops.
A repeat of a later page, and a 4xx after a page 2 or later, end the listing; when the last
page read was full, a warning names bot, stream and page: the listing may be longer than
what the API agreed to page through.
"""

from __future__ import annotations

from typing import Any

from tap_botpenguin.http.responses import Page, status_text
from tap_botpenguin.report.errors import BotPenguinError
from tap_botpenguin.report.logs import AnyLogger


def _ignores_page(where: str, records: int, size: int) -> BotPenguinError:
    return BotPenguinError(
        f"{where}: page 2 repeats page 1 exactly, and page 1 is full ({records} records; "
        f"the API's pages hold {size}): the API is ignoring `page`, so this listing cannot be "
        "read past page 1; stopping rather than load part of it. Check `api_url` points at "
        "the BotPenguin API."
    )


class PageSizes:
    """The API's page size as far as it is known.

    The run keeps one, on the main thread: seeded from the state of earlier runs; learned
    whenever a page is followed by a page with other records (so it was full). A size from
    the state is a hint, not evidence (the state may be stale or edited): it never lets a
    repeated page 1 pass for a one-page listing; only a size this run `confirmed` does.
    Listings whose page 1 came back as page 2 before a size was confirmed wait there for the
    verdict. Each listing reads with its own copy, seeded with what the run knew when it
    started, and what it learns reaches the run's with its pages.
    """

    def __init__(self, known: int | None = None, *, confirmed: bool = False) -> None:
        self.size = known
        #: `size` was learned in this run, from pages the API served.
        self.confirmed = confirmed
        self._pending: list[tuple[str, int]] = []

    def seed(self, hint: int) -> None:
        """A size earlier runs kept in the state: used until this run learns one."""
        if not self.confirmed:
            self.size = hint

    def copy(self) -> PageSizes:
        """What a listing starts from: the run's size, confirmed or not."""
        return PageSizes(self.size, confirmed=self.confirmed)

    def is_full(self, records: int) -> bool:
        """Whether a page of `records` is known to be a full page."""
        return self.size is not None and records >= self.size

    def learn(self, full_page: int) -> None:
        """A page of `full_page` records was followed by another: the API's size is that.

        The first size this run learns replaces the state's; later ones only raise it.
        """
        if self.confirmed and self.size is not None and full_page <= self.size:
            return
        self.size, self.confirmed = full_page, True
        for where, records in self._pending:
            if records >= full_page:
                raise _ignores_page(where, records, full_page)

    def defer(self, where: str, records: int) -> None:
        """Judge `where`'s repeated page 1 of `records` once a page size is confirmed."""
        size = self.size
        if not self.confirmed or size is None:
            self._pending.append((where, records))
            return
        if records >= size:  # learned by a listing read at the same time
            raise _ignores_page(where, records, size)


class Listing:
    """One read of one listing: which page records to pass on, and whether it has ended."""

    def __init__(self, where: str, logger: AnyLogger, page_sizes: PageSizes) -> None:
        self.where = where
        self.logger = logger
        self.page_sizes = page_sizes
        self.pages = 0
        self.ended = False
        #: A page repeated the one before it: it is asked for once more before it can end
        #: the listing (a cache's stale copy, or the list shifting, repeats a page once).
        self.ask_again: int | None = None
        #: The listing was taken as one page without proof: keep its bookmark.
        self.unconfirmed = False
        #: The listing ended where it may have been cut short (a warning said so).
        self.maybe_truncated = False
        #: Records seen on two consecutive pages: the list shifted down while it was read.
        self.overlaps = 0
        #: Page 1's size when page 2 repeated it before a page size was confirmed: the run's
        #: `PageSizes` judges it (`defer`) once one is.
        self.deferred: int | None = None
        self._previous_ids: list[Any] = []
        self._previous_updates: dict[Any, Any] = {}
        #: The previous page held each of its ids once (else its length says no page size).
        self._previous_distinct = True
        self._asked_again: set[int] = set()

    @property
    def last_page_full(self) -> bool:
        """Whether the last page read is known to be full (a short one is the last page)."""
        return self.page_sizes.is_full(len(self._previous_ids))

    def accept(self, page: Page) -> tuple[list[dict[str, Any]], set[Any]]:
        """The records of `page` to pass on (none when it ends the listing), and the ids.

        The ids are those of records the previous page held with the same `updatedAt`: the
        list shifted down while it was read. A page repeating the previous one is passed on
        as nothing with `ask_again` set, the first time: the reader asks for it once more.
        """
        self.ask_again = None
        if page.past_end is not None:
            self._past_the_end(page.number, page.past_end)
            return [], set()
        ids = [record.get("_id") for record in page.records]
        if not ids:
            self.ended = True
            return [], set()
        if ids == self._previous_ids:
            if page.number not in self._asked_again:
                self._asked_again.add(page.number)
                self.ask_again = page.number
                self.logger.info(
                    "%s: page %d repeats page %d: asking for it once more before taking it "
                    "for the end of the listing",
                    self.where,
                    page.number,
                    page.number - 1,
                )
                return [], set()
            self._repeated(page.number)
            return [], set()
        updates = {record.get("_id"): record.get("updatedAt") for record in page.records}
        shifted = {
            key
            for key, updated in updates.items()
            if key in self._previous_updates and self._previous_updates[key] == updated
        }
        self.overlaps += len(set(ids).intersection(self._previous_updates))
        if self._previous_ids and self._previous_distinct:
            self.page_sizes.learn(len(self._previous_ids))
        self._previous_ids, self._previous_updates = ids, updates
        self._previous_distinct = len(updates) == len(ids)
        self.pages += 1
        return page.records, shifted

    def _repeated(self, number: int) -> None:
        self.ended = True
        records = len(self._previous_ids)
        if number > 2:  # page 2 differed from page 1, so the API honours `page`
            if self.page_sizes.is_full(records):
                self.maybe_truncated = True
                self.logger.warning(
                    "%s: page %d repeats page %d, a full page (%d records), twice: taken as "
                    "the end of the listing (the API repeats its last page); if it holds more "
                    "than %d conversations, the API stops paging there",
                    self.where,
                    number,
                    number - 1,
                    records,
                    records * (number - 1),
                )
            return
        size = self.page_sizes.size
        if size is not None and records >= size:
            raise _ignores_page(self.where, records, size)
        if size is not None and self.page_sizes.confirmed:
            return  # shorter than a page this run saw followed by another: one page
        self.unconfirmed = self.maybe_truncated = True
        self.deferred = records
        self.logger.warning(
            "%s: page 2 repeats page 1 (%d records) and no page size is known yet: taken "
            "as a one-page listing, its bookmark kept until that is confirmed; if it holds "
            "more than %d conversations, the API is ignoring `page` (check api_url)",
            self.where,
            records,
            records,
        )

    def _past_the_end(self, number: int, status: int) -> None:
        self.ended = True
        records = len(self._previous_ids)
        if self.page_sizes.is_full(records):
            self.maybe_truncated = True
            self.logger.warning(
                "%s: page %d answered %s after a full page %d (%d records): taken as the end "
                "of the listing; if it holds more than %d conversations, the API refuses to "
                "page past %d",
                self.where,
                number,
                status_text(status),
                number - 1,
                records,
                records * (number - 1),
                number - 1,
            )
