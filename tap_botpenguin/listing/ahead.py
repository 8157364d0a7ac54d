"""Pages ahead within one listing, confirmed against page 1 so that a live inbox loses nothing.

One request at a time reaches BotPenguin's 100 requests a minute only while the API answers
within 0.6 s. Page numbers let the next pages be asked for together, but pages asked for
together may be *served* in any order: if page k+1 is served before page k and a conversation
arrives at the top (or moves there) in between, the records crossing the k / k+1 boundary
are on neither page. One request at a time is immune (page k+1 is served after page k, so a
shift down only repeats records), and so is this scheme:

- a *window* of pages k .. k+n-1 is asked for together, only after every earlier page was
  answered; when all of them are answered, page 1 is asked for again;
- if page 1 lists the same conversations, in the same order and with the same `updatedAt`,
  as the previous look at it (the listing's first page, or the previous window's check),
  nothing arrived at the top while the window was served: nothing shifted, whatever the
  order of serving, and the window's pages are used;
- otherwise only page k is used (it was served after page k-1), the rest are dropped, and
  the listing goes on one request at a time.

That holds where changes enter a listing at its top: the tap reads ahead only in a listing
whose order it has seen newest first (`listing.scan`) so far in this read. Deletions shift
records up, which loses a record crossing a boundary with one request at a time too; `scan`'s floors
cover that case as before. Windows are used only when they read more pages a minute than one
request at a time: the API answers slowly (compared with the tap's own work on a page, and
with the allowance); each window costs one extra request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

from tap_botpenguin.http.client import Traffic
from tap_botpenguin.http.responses import Page
from tap_botpenguin.report.logs import AnyLogger

#: Windows must read this much faster than one request at a time to be used.
_WORTH_IT = 1.1
#: ... and the answer must take this many times as long as the tap's work on a page: on a
#: fast API the tap's own work is the limit, and the window's extra request only costs.
_NETWORK_BOUND = 4.0


class PageSender(Protocol):
    """Sends a listing's pages from the reading thread (`http.client.PageClient`)."""

    def send(self, number: int) -> Page:
        """Page `number`, decoded; raises the listing's error once retries are spent."""

    def take_traffic(self) -> Traffic:
        """What the requests since the last call cost."""

    def close(self) -> None:
        """The listing's read ended: close the connections."""


class WindowSender(Protocol):
    """Sends a window's pages at once, each from its own thread (`concurrency.windows`)."""

    def send_all(self, numbers: Sequence[int]) -> list[Page | BaseException]:
        """Each page's answer (or the error that failed it), once every one has ended."""

    def take_traffic(self) -> Traffic:
        """What the requests since the last call cost (the threads are idle then)."""

    def close(self) -> None:
        """No more windows: the threads may end."""


#: What page 1 lists, in order: enough to tell that something arrived at the top.
Head = tuple[tuple[str, str], ...]


def head_of(page: Page) -> Head:
    """Page 1's ids and `updatedAt`s in order (raw values: compared, never emitted)."""
    return tuple((repr(r.get("_id")), repr(r.get("updatedAt"))) for r in page.records)


def worth_a_window(window: int, answer: float, work: float, allowance: float) -> bool:
    """Whether windows of `window` pages read faster than one request at a time.

    `answer`: seconds per answer; `work`: the tap's seconds per page between answers;
    `allowance`: requests per second. A window takes two answer times (its pages, then page
    1), the tap's work on each of its pages, and `window + 1` requests.
    """
    if answer < _NETWORK_BOUND * work:
        return False
    one_at_a_time = min(allowance, 1 / (answer + work))
    windowed = min(allowance * window / (window + 1), window / (2 * answer + window * work))
    return windowed > _WORTH_IT * one_at_a_time


class PagesAhead:
    """The answers of one listing's pages in page order, read ahead when that pays.

    Used by the listing's reading thread only; the pages of a window are sent by `windows`'s
    threads.

    `allowed()` says whether the listing may be read ahead now (a full scan, the order newest
    first so far, the last page full); `in_order()` whether the order still holds (pages of a
    window are used only while it does); `answer_time()` is the token's measured answer time;
    `allowance` its requests per second; `expected` the listing's pages at its last full scan
    (windows do not reach past it), if known.
    """

    def __init__(
        self,
        *,
        sender: PageSender,
        windows: Callable[[int], WindowSender],
        most: int,
        allowed: Callable[[], bool],
        in_order: Callable[[], bool],
        answer_time: Callable[[], float | None],
        allowance: float,
        expected: int | None,
        where: str,
        logger: AnyLogger,
    ) -> None:
        self._sender = sender
        self._new_windows = windows
        self._most = most
        self._allowed = allowed
        self._in_order = in_order
        self._answer_time = answer_time
        self._allowance = allowance
        self._expected = expected
        self._where = where
        self._logger = logger
        self._head: Head | None = None
        self._ready: dict[int, Page] = {}
        #: A page of a window that failed for good (its retries spent on a window's thread):
        #: raised when its turn comes, never asked for again.
        self._failed: dict[int, BaseException] = {}
        #: Whether the INFO line saying windows are in use was logged (once per listing).
        self._announced = False
        self._windows: WindowSender | None = None
        self._off = most <= 1
        #: The page asked for last (a repeated page is asked for again).
        self._last = 0
        #: The tap's seconds per page between two answers (averaged), and since when.
        self._work: float | None = None
        self._handed_at: float | None = None
        #: For a listing read by a worker of `concurrency`: the main thread's seconds of work
        #: per page of this token (None until known). None: read on the thread that emits.
        self.consumer_work: Callable[[], float | None] | None = None

    def get(self, number: int) -> Page:
        """Page `number`; pages are asked for in order, each once but a repeated one."""
        if number == self._last:  # it repeated the page before it: asked again, alone
            self._ready.clear()
            if self._announced and not self._off:
                self._stop(f"page {number} repeated the page before it", number)
            self._off = True
            return self._sender.send(number)
        self._last = number
        now = time.monotonic()
        if self._handed_at is not None:
            took = now - self._handed_at
            self._work = took if self._work is None else 0.8 * self._work + 0.2 * took
        failed = self._failed.pop(number, None)
        if failed is not None:
            raise failed  # as it would have been read one at a time, after the same retries
        ready = self._ready.pop(number, None)
        if ready is not None and not self._in_order():
            ready = None  # the window's check assumed changes enter at the top: not so
            self._stop("the listing is not newest first", number)
        if ready is None:
            self._ready.clear()
            size = self._window(number)
            if size > 1:
                ready = self._read_window(number, size)
            else:
                ready = self._sender.send(number)
                if number == 1:
                    self._head = head_of(ready)
        self._handed_at = time.monotonic()
        return ready

    def take_traffic(self) -> Traffic:
        """What the requests since the last call cost, on every thread of this listing."""
        traffic = self._sender.take_traffic()
        if self._windows is not None:
            traffic.add(self._windows.take_traffic())
        return traffic

    def close(self) -> None:
        """The listing ended: drop pages read beyond it, let the window's threads end."""
        self._ready.clear()
        self._sender.close()
        if self._windows is not None:
            self._windows.close()
            self._windows = None

    def _window(self, number: int) -> int:
        """How many pages to ask for from `number` on (1: this one alone)."""
        if self._off or number == 1 or self._head is None or not self._allowed():
            return 1
        answer_time, work = self._answer_time(), self._work
        if self.consumer_work is not None:  # the pages' real consumer is the main thread
            shared = self.consumer_work()
            work = None if shared is None or work is None else max(work, shared)
        if not answer_time or work is None:
            return 1
        size = self._most
        if self._expected is not None:  # the empty page after the last one included
            size = min(size, self._expected + 2 - number)
        if size <= 1 or not worth_a_window(size, answer_time, work, self._allowance):
            return 1
        return size

    def _read_window(self, first: int, size: int) -> Page:
        if self._windows is None:
            self._windows = self._new_windows(self._most)
        answers = self._windows.send_all(range(first, first + size))
        answer = answers[0]
        if isinstance(answer, BaseException):
            raise answer  # the listing's error, as one at a time
        if not answer.records:  # the listing ends here: the rest is past its end
            return answer
        if not self._announced:
            self._announced = True
            self._logger.info(
                "%s: the API answers slowly next to the tap's work: asking for up to %d pages "
                "at once from page %d, each window confirmed against page 1",
                self._where,
                size,
                first,
            )
        later: list[Page] = []
        for offset, page in enumerate(answers[1:], start=1):
            if isinstance(page, BaseException):
                # Its retries are spent: the listing stops there, as one at a time. The pages
                # after it are never reached.
                self._failed[first + offset] = page
                break
            later.append(page)
        if not later:
            return answer
        check = self._sender.send(1)  # every page of the window was answered: look again
        if check.cached or any(page.cached for page in later):
            why = "an answer came from a cache (its Age or cache-status header says so), so"
            self._stop(f"{why} page 1 cannot confirm pages {first}+", first + 1)
            return answer
        head = head_of(check)
        if head != self._head:
            self._head = head
            arrived = "conversations arrived at the top of the listing while pages"
            self._stop(f"{arrived} {first}+ were read ahead", first + 1)
            return answer
        for offset, page in enumerate(later, start=1):
            self._ready[first + offset] = page
            if not page.records:
                self._warn_if_records_follow(first + offset, later[offset:])
                break
        return answer

    def _warn_if_records_follow(self, empty: int, after: Sequence[Page]) -> None:
        """Pages after an empty one (which ends the listing) that held records: say so."""
        holding = [str(empty + n) for n, page in enumerate(after, 1) if page.records]
        if holding:
            self._logger.warning(
                "%s: page %d came back empty, which ends the listing, but page(s) %s of the "
                "same window held records: the listing may have ended early (the next full "
                "scan reads it again)",
                self._where,
                empty,
                ", ".join(holding),
            )

    def _stop(self, why: str, page: int) -> None:
        self._off = True
        self._logger.info("%s: %s: reading one page at a time from page %d", self._where, why, page)
