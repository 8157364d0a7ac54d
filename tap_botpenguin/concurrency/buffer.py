"""A listing's pages between the worker that reads them and the main thread that emits them.

A few pages wait in memory, the rest in a temporary file (msgpack). One `ReadAheadBudget` per
run bounds what all listings read ahead keep: pages in memory, open temporary files (a share
of the descriptor limit), bytes on disk. A worker whose page fits nowhere waits for the main
thread to emit pages, unless its listing is the one the main thread is emitting, which never
waits for the others (workers/Schedule says why that cannot deadlock): memory and descriptors
stay flat in the number of tokens. A full or unwritable temporary directory only leaves pages
in memory, within the budget: spilling is an optimisation, never a reason to fail. The main
thread's work per page (`Pace`) tells the workers' pages ahead (`listing.ahead`) whether
reading faster would help at all.
"""

from __future__ import annotations

import logging
import os
import resource
import struct
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

import msgspec

from tap_botpenguin.http.client import Traffic
from tap_botpenguin.listing.reader import AcceptedPage

#: Pages of one listing kept in memory before the next ones go to its temporary file.
PAGES_IN_MEMORY = 2
#: Pages read ahead that all listings of a run may keep in memory (a page of 100 records is
#: about 0.5 MB).
RUN_PAGES_IN_MEMORY = 64
_LENGTH = struct.Struct("<I")
_LOGGER = logging.getLogger("tap-botpenguin")
#: A page spilled to disk: (offset, length) in its listing's temporary file.
_Spilled = tuple[int, int]


@dataclass
class Outcome:
    """How a listing's read ended: normally, or with the error to raise on the main thread.

    `heard` is what the run had heard from the API when a listing failed (`failures`):
    requests answered and whether any page was read. `leftover` is what requests no page
    carried cost (the reader's `leftover_traffic`).
    """

    error: BaseException | None = None
    heard: tuple[int, bool] | None = None
    leftover: Traffic = field(default_factory=Traffic)


class Pace:
    """The main thread's seconds of work per page it emits, averaged (None until known).

    The main thread emits every worker's pages: when the API answers faster than it works
    through them, pages read ahead would only wait in buffers (`readahead` asks).
    """

    def __init__(self) -> None:
        self.per_page: float | None = None

    def worked(self, seconds: float) -> None:
        """The main thread spent `seconds` on one page."""
        last = self.per_page
        self.per_page = seconds if last is None else 0.8 * last + 0.2 * seconds


class ReadAheadBudget:
    """What pages read ahead but not yet emitted may hold, across every listing of a run.

    `pages_in_memory` (each listing at most `PAGES_IN_MEMORY`), `open_files` temporary files
    (default: a quarter of the process's descriptor limit, at most 128: sockets need the
    rest), `bytes_on_disk`. `position` is the main thread's place in the order it emits
    listings (the `turn` of the earliest listing it has not finished). One condition guards
    every buffer of the run (any thread).
    """

    def __init__(
        self,
        pages_in_memory: int = RUN_PAGES_IN_MEMORY,
        open_files: int | None = None,
        bytes_on_disk: int = 2**30,
    ) -> None:
        if open_files is None:
            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            open_files = 128 if soft == resource.RLIM_INFINITY else max(1, min(128, soft // 4))
        self.pages_in_memory = pages_in_memory
        self.open_files = open_files
        self.bytes_on_disk = bytes_on_disk
        self.changed = threading.Condition()
        self.memory = self.files = self.bytes = 0
        self.position = 0
        #: Why temporary files cannot be used (a full or unwritable directory), once known.
        self.disk_failed: str | None = None

    def emitting(self, turn: int) -> None:
        """On the main thread: it takes the pages of the listing at `turn` now."""
        self._move_to(turn)

    def emitted(self, turn: int) -> None:
        """On the main thread: it is done with the listing at `turn`."""
        self._move_to(turn + 1)

    def _move_to(self, position: int) -> None:
        with self.changed:
            if position > self.position:
                self.position = position
                self.changed.notify_all()  # a waiting worker may now be the main thread's

    def disk_fails(self, error: OSError) -> None:
        """(Lock held.) Spilling is an optimisation: from now on pages are kept in memory."""
        if self.disk_failed is None:
            where = tempfile.tempdir or os.environ.get("TMPDIR") or "the system's default"
            self.disk_failed = f"{error.strerror or error} (temporary directory: {where})"
            _LOGGER.warning(
                "the temporary directory cannot take pages read ahead: %s; up to %d are kept "
                "in memory instead, and workers wait for the main thread beyond that "
                "(nothing is lost; set TMPDIR to a roomier place to read further ahead)",
                self.disk_failed,
                self.pages_in_memory,
            )


class PageBuffer:
    """One listing's finished pages, in order: in memory, or spilled to its temporary file.

    `turn` is the listing's place in the order the main thread emits listings.
    """

    def __init__(
        self,
        budget: ReadAheadBudget | None = None,
        in_memory: int = PAGES_IN_MEMORY,
        turn: int = 0,
    ) -> None:
        self._budget = budget or ReadAheadBudget()
        self._in_memory = in_memory
        self.turn = turn
        self._items: deque[AcceptedPage | _Spilled] = deque()
        self._held_in_memory = 0
        self._file: IO[bytes] | None = None
        self._written = 0  # bytes written to the file
        self._end: Outcome | None = None
        self._closed = False
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(AcceptedPage)
        #: Where the main thread's work on these pages is counted (`Schedule` sets it).
        self.pace: Pace | None = None

    def put(self, page: AcceptedPage) -> None:
        """On a worker: a page read, kept in order: in memory, spilled, or it waits.

        Two pages of a listing in memory, the next ones in its file; past the budget's files
        or bytes, or on a failing disk, in memory while the run's pages in memory allow. Past
        that, a listing ahead of the main thread's waits until the main thread emits pages
        (freeing the budget) or gets to it. The listing the main thread is emitting keeps
        two pages in memory whatever the others hold, and past those waits only for the main
        thread to take its own pages, which it is doing. A listing the main thread went past
        (asked for out of order) never waits: nobody would take its pages.
        """
        budget = self._budget
        data: bytes | None = None
        with budget.changed:
            while not self._closed:
                ahead = self.turn - budget.position  # > 0: the main thread is not here yet
                room = budget.memory < budget.pages_in_memory
                if self._held_in_memory < self._in_memory and (room or ahead <= 0):
                    self._keep_in_memory(page)
                    return
                data = data or self._encoder.encode(page)
                if self._spill(data):
                    budget.changed.notify_all()
                    return
                if room or ahead < 0:  # else the main thread will free the budget, or come
                    self._keep_in_memory(page)
                    return
                budget.changed.wait()

    def _keep_in_memory(self, page: AcceptedPage) -> None:
        """(Lock held.) The page waits in memory."""
        budget = self._budget
        self._items.append(page)
        self._held_in_memory += 1
        budget.memory += 1
        budget.changed.notify_all()

    def _spill(self, data: bytes) -> bool:
        """(Lock held.) `data` to the file, if the budget and the disk allow."""
        budget = self._budget
        if budget.disk_failed is not None or budget.bytes + len(data) > budget.bytes_on_disk:
            return False
        try:
            if self._file is None:
                if budget.files >= budget.open_files:
                    return False
                self._file = tempfile.TemporaryFile(prefix="tap-botpenguin-")  # noqa: SIM115
                budget.files += 1
            self._file.seek(self._written)
            self._file.write(_LENGTH.pack(len(data)) + data)
            self._file.flush()
        except OSError as error:  # full, read-only, gone: the page stays in memory instead
            budget.disk_fails(error)
            return False
        self._items.append((self._written, len(data)))
        self._written += _LENGTH.size + len(data)
        budget.bytes += len(data)
        return True

    def end(self, outcome: Outcome) -> None:
        """On a worker: no more pages; the listing ended as `outcome` says."""
        with self._budget.changed:
            self._end = outcome
            self._budget.changed.notify_all()

    def _take(self) -> AcceptedPage | Outcome:
        """On the main thread: the next page, or how the listing ended (waits for either)."""
        budget = self._budget
        with budget.changed:
            while True:
                if self._items:
                    item = self._items.popleft()
                    budget.changed.notify_all()
                    if isinstance(item, AcceptedPage):
                        self._held_in_memory -= 1
                        budget.memory -= 1
                        return item
                    offset, length = item
                    assert self._file is not None
                    self._file.seek(offset + _LENGTH.size)
                    budget.bytes -= length
                    return self._decoder.decode(self._file.read(length))
                if self._end is not None:
                    return self._end
                budget.changed.wait()

    @property
    def leftover(self) -> Traffic:
        """Once ended: what the listing's requests no page carried cost (else nothing)."""
        return Traffic() if self._end is None else self._end.leftover

    @property
    def heard(self) -> tuple[int, bool] | None:
        """What the run had heard from the API when the listing failed (see `Outcome`)."""
        return None if self._end is None else self._end.heard

    def pages(self) -> Iterator[AcceptedPage]:
        """On the main thread: the pages in order; then the listing's error, if any."""
        self._budget.emitting(self.turn)
        try:
            while True:
                taken = self._take()
                if isinstance(taken, Outcome):
                    if taken.error is not None:
                        raise taken.error
                    return
                handed = time.monotonic()
                yield taken
                if self.pace is not None:
                    self.pace.worked(time.monotonic() - handed)
        finally:
            self.close()
            self._budget.emitted(self.turn)

    def close(self) -> None:
        """Drop what is left (the temporary file too); its waiting worker moves on (any thread)."""
        budget = self._budget
        with budget.changed:
            self._closed = True
            for item in self._items:
                if isinstance(item, AcceptedPage):
                    budget.memory -= 1
                else:
                    budget.bytes -= item[1]
            self._items.clear()
            self._held_in_memory = 0
            if self._file is not None:
                self._file.close()
                self._file = None
                budget.files -= 1
            budget.changed.notify_all()
