"""A listing's pages between the worker that reads them and the main thread that emits them.

A few pages wait in memory, the rest in a temporary file (msgpack), so memory stays flat
whatever the main thread's pace. The main thread's work per page (`Pace`) tells the workers'
pages ahead (`listing.ahead`) whether reading faster would help at all.
"""

from __future__ import annotations

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
_LENGTH = struct.Struct("<I")


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


class PageBuffer:
    """One listing's finished pages, in order; the oldest `in_memory` in memory."""

    def __init__(self, in_memory: int = PAGES_IN_MEMORY) -> None:
        self._in_memory = in_memory
        self._ready = threading.Condition()
        self._pages: deque[AcceptedPage] = deque()
        self._file: IO[bytes] | None = None
        self._written = self._read = 0  # bytes written to and read from the file
        self._end: Outcome | None = None
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(AcceptedPage)
        #: Where the main thread's work on these pages is counted (`Schedule` sets it).
        self.pace: Pace | None = None

    def put(self, page: AcceptedPage) -> None:
        """On a worker: a page read; to the file once the memory's share is full (in order)."""
        with self._ready:
            if self._written == self._read and len(self._pages) < self._in_memory:
                self._pages.append(page)
            else:
                if self._file is None:
                    self._file = tempfile.TemporaryFile(prefix="tap-botpenguin-")  # noqa: SIM115
                data = self._encoder.encode(page)
                self._file.seek(self._written)
                self._file.write(_LENGTH.pack(len(data)) + data)
                self._written += _LENGTH.size + len(data)
            self._ready.notify_all()

    def end(self, outcome: Outcome) -> None:
        """On a worker: no more pages; the listing ended as `outcome` says."""
        with self._ready:
            self._end = outcome
            self._ready.notify_all()

    def _take(self) -> AcceptedPage | Outcome:
        with self._ready:
            while True:
                if self._pages:
                    return self._pages.popleft()
                if self._read < self._written:
                    assert self._file is not None
                    self._file.seek(self._read)
                    (length,) = _LENGTH.unpack(self._file.read(_LENGTH.size))
                    page = self._decoder.decode(self._file.read(length))
                    self._read += _LENGTH.size + length
                    return page
                if self._end is not None:
                    return self._end
                self._ready.wait()

    @property
    def heard(self) -> tuple[int, bool] | None:
        """What the run had heard from the API when the listing failed (see `Outcome`)."""
        return None if self._end is None else self._end.heard

    @property
    def leftover(self) -> Traffic:
        """Once ended: what the listing's requests no page carried cost (else nothing)."""
        return Traffic() if self._end is None else self._end.leftover

    def pages(self) -> Iterator[AcceptedPage]:
        """On the main thread: the pages in order; then the listing's error, if any."""
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

    def close(self) -> None:
        """Drop what is left (the temporary file too)."""
        with self._ready:
            self._pages.clear()
            if self._file is not None:
                self._file.close()
                self._file = None
