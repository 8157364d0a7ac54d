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
whose order it has seen newest first (`scan`) so far in this read. Deletions shift records up,
which loses a record crossing a boundary with one request at a time too; `scan`'s floors
cover that case as before. Windows are used only when they read more pages a minute than one
request at a time: the API answers slowly (compared with the tap's own work on a page, and
with the allowance); each window costs one extra request.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, wait
from typing import Any, NamedTuple

import requests

from tap_botpenguin.http.responses import Page

#: Most pages of one listing asked for at once (setting `pages_in_flight`).
DEFAULT_PAGES_IN_FLIGHT = 8
#: Windows must read this much faster than one request at a time to be used.
_WORTH_IT = 1.1
#: ... and the answer must take this many times as long as the tap's work on a page: on a
#: fast API the tap's own work is the limit, and the window's extra request only costs.
_NETWORK_BOUND = 4.0


class Answer(NamedTuple):
    """A page's response and its decoded content."""

    response: requests.Response
    page: Page


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


class _Workers:
    """Daemon threads requesting one listing's window pages (each keeps its HTTP session).

    Daemon threads, unlike `ThreadPoolExecutor`'s, do not hold a stopped run's exit until
    the requests they are in (a rate-limit wait, a timeout, retries) are over.
    """

    def __init__(self, count: int) -> None:
        self._tasks: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None]
        self._tasks = queue.SimpleQueue()
        self._count = count
        for number in range(count):
            threading.Thread(target=self._work, name=f"page-{number}", daemon=True).start()

    def submit(self, task: Callable[[], Answer]) -> Future[Answer]:
        future: Future[Answer] = Future()
        self._tasks.put((future, task))
        return future

    def close(self) -> None:
        for _ in range(self._count):
            self._tasks.put(None)

    def _work(self) -> None:
        while (item := self._tasks.get()) is not None:
            future, task = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(task())
                except BaseException as error:  # raised where the page is used
                    future.set_exception(error)


class PagesAhead:
    """The answers of one listing's pages in page order, read ahead when that pays.

    `allowed()` says whether the listing may be read ahead now (a full scan, the
    order newest first so far, the last page full); `in_order()` whether the order still
    holds (pages of a window are used only while it does); `answer_time()` is the token's measured
    answer time; `allowance` its requests per second; `expected` the listing's pages at its
    last full scan (windows do not reach past it), if known.
    """

    def __init__(
        self,
        *,
        most: int,
        allowed: Callable[[], bool],
        in_order: Callable[[], bool],
        answer_time: Callable[[], float | None],
        allowance: float,
        expected: int | None,
        where: str,
        logger: logging.Logger,
    ) -> None:
        self._most = most
        self._allowed = allowed
        self._in_order = in_order
        self._answer_time = answer_time
        self._allowance = allowance
        self._expected = expected
        self._where = where
        self._logger = logger
        self._head: Head | None = None
        self._ready: dict[int, Answer] = {}
        self._workers: _Workers | None = None
        self._off = most <= 1
        #: The tap's seconds per page between two answers (averaged), and since when.
        self._work: float | None = None
        self._handed_at: float | None = None
        #: For a listing read by a worker of `concurrency`: the main thread's seconds of work
        #: per page of this token (None until known). None: read on the thread that emits.
        self.consumer_work: Callable[[], float | None] | None = None

    def get(self, number: int, send: Callable[[int], Answer]) -> Answer:
        """The answer for page `number`; pages are asked for in order, each once.

        `send(number)` requests a page (throttle, retries, decoding); it runs on a worker
        thread for the pages of a window.
        """
        now = time.monotonic()
        if self._handed_at is not None:
            took = now - self._handed_at
            self._work = took if self._work is None else 0.8 * self._work + 0.2 * took
        ready = self._ready.pop(number, None)
        if ready is not None and not self._in_order():
            ready = None  # the window's check assumed changes enter at the top: not so
            self._stop("the listing is not newest first", number)
        if ready is None:
            self._ready.clear()
            size = self._window(number)
            if size > 1:
                ready = self._read_window(number, size, send)
            else:
                ready = send(number)
                if number == 1:
                    self._head = head_of(ready.page)
        self._handed_at = time.monotonic()
        return ready

    def close(self) -> None:
        """The listing ended: drop pages read beyond it, stop the workers."""
        self._ready.clear()
        if self._workers is not None:
            self._workers.close()
            self._workers = None

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

    def _read_window(self, first: int, size: int, send: Callable[[int], Answer]) -> Answer:
        if self._workers is None:
            self._workers = _Workers(self._most)
        workers = self._workers
        futures = [
            workers.submit(lambda number=number: send(number))  # type: ignore[misc]
            for number in range(first, first + size)
        ]
        wait(futures)
        answer = futures[0].result()  # its error is the listing's, as one at a time
        if not answer.page.records:  # the listing ends here: the rest is past its end
            return answer
        if any(future.exception() is not None for future in futures[1:]):
            self._stop(f"a page read ahead (pages {first}+) failed", first + 1)  # asked again
            return answer
        check = send(1)  # every page of the window was answered: look at the top again
        head = head_of(check.page)
        if head != self._head:
            self._head = head
            arrived = "conversations arrived at the top of the listing while pages"
            self._stop(f"{arrived} {first}+ were read ahead", first + 1)
            return answer
        for offset, future in enumerate(futures[1:], start=1):
            self._ready[first + offset] = future.result()
        return answer

    def _stop(self, why: str, page: int) -> None:
        self._off = True
        self._logger.info("%s: %s: reading one page at a time from page %d", self._where, why, page)
