"""Listings of different tokens read at the same time; records and STATE written as before.

The SDK syncs one stream after the other, and within a stream one bot after the other. With
`max_parallel_tokens` above 1, the first listing the SDK asks for starts the schedule: every
selected listing is planned there (on the main thread, from the state as it is), and a worker
thread per token (at most `max_parallel_tokens` at once) reads that token's listings in the
SDK's order, one listing at a time, through the stream's own page pipeline (request ->
decode -> end of listing -> scan decisions; pages read ahead when that pays, `readahead`).
Finished pages go into a buffer per listing: a few pages in memory, the rest in a temporary
file, so memory stays flat whatever the main thread's pace.

The main thread still does everything Singer sees, in the SDK's order: it takes a listing's
pages from its buffer when the SDK asks for that listing, emits its records and does the
listing's bookkeeping (state, set-aside, closing line). STATE therefore only covers what was
emitted, and a killed run resumes as before. The main thread's work per page (`Pace`) tells
the workers' `readahead` whether reading faster would help at all.

A listing that fails for good ends its buffer with its `ListingError`, which the main thread
handles when it gets there (`failures`); any other error ends the buffer with it and stops
the token's worker, and the run stops when the main thread reaches it. When the main thread
stops (an error, a kill), the workers stop at their next page.
"""

from __future__ import annotations

import struct
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import msgspec

from tap_botpenguin.report.errors import ListingError

#: Pages of one listing kept in memory before the next ones go to its temporary file.
PAGES_IN_MEMORY = 2
_LENGTH = struct.Struct("<I")


class StoppedError(Exception):
    """The run is stopping: a worker leaves the listing it was reading."""


@dataclass
class Outcome:
    """How a listing's read ended: normally, or with the error to raise on the main thread.

    `heard` is what the run had heard from the API when a listing failed (`failures`):
    requests answered and whether any page was read.
    """

    error: BaseException | None = None
    heard: tuple[int, bool] | None = None


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
        self._pages: deque[list[dict[str, Any]]] = deque()
        self._file: IO[bytes] | None = None
        self._written = self._read = 0  # bytes written to and read from the file
        self._end: Outcome | None = None
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(list[dict[str, Any]])
        #: Where the main thread's work on these pages is counted (`Schedule` sets it).
        self.pace: Pace | None = None

    def put(self, records: list[dict[str, Any]]) -> None:
        """A page read; to the file once the memory's share is full (pages stay in order)."""
        with self._ready:
            if self._written == self._read and len(self._pages) < self._in_memory:
                self._pages.append(records)
            else:
                if self._file is None:
                    self._file = tempfile.TemporaryFile(prefix="tap-botpenguin-")  # noqa: SIM115
                data = self._encoder.encode(records)
                self._file.seek(self._written)
                self._file.write(_LENGTH.pack(len(data)) + data)
                self._written += _LENGTH.size + len(data)
            self._ready.notify_all()

    def end(self, outcome: Outcome) -> None:
        """No more pages: the listing ended as `outcome` says."""
        with self._ready:
            self._end = outcome
            self._ready.notify_all()

    def _take(self) -> list[dict[str, Any]] | Outcome:
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

    def pages(self) -> Iterator[list[dict[str, Any]]]:
        """The pages in order; then the listing's error, if it ended with one."""
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


@dataclass
class Job:
    """One listing to read: the stream, its partition and the token whose worker reads it.

    `read` is whatever the stream needs to read it (its `reading.BotRead`).
    """

    stream: Any
    context: dict[str, Any]
    token: str
    read: Any
    buffer: PageBuffer = field(default_factory=PageBuffer)


#: Reads one job's listing on the calling thread, handing each finished page to `put`.
Reader = Callable[[Job, Callable[[list[dict[str, Any]]], None]], None]
#: What the run has heard from the API (for `Outcome.heard`).
Heard = Callable[[], tuple[int, bool]]


class Schedule:
    """The run's listings, their workers and their buffers."""

    def __init__(self, jobs: list[Job], workers: int, reader: Reader, heard: Heard) -> None:
        self._all = jobs
        self._jobs = {(id(job.stream), _key(job.context)): job for job in jobs}
        self._reader = reader
        self._heard = heard
        self._stop = threading.Event()
        tokens: dict[str, list[Job]] = {}
        for job in jobs:  # in the SDK's order: a token's listings, and tokens by first use
            tokens.setdefault(job.token, []).append(job)
        self._queue: deque[list[Job]] = deque(tokens.values())
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._work, name=f"listings-{number}", daemon=True)
            for number in range(min(workers, len(tokens)))
        ]
        pace, sharing = Pace(), len(self._threads)

        def consumer_work() -> float | None:  # the main thread's work per page of one token
            return None if pace.per_page is None else pace.per_page * sharing

        for job in jobs:
            job.buffer.pace = pace
            job.read.ahead.consumer_work = consumer_work
        for thread in self._threads:
            thread.start()

    def job(self, stream: object, context: Mapping[str, Any]) -> Job | None:
        """The scheduled read of this listing, once (None when it is not scheduled)."""
        return self._jobs.pop((id(stream), _key(context)), None)

    def stop(self) -> None:
        """Stop every worker at its next page; drop what was read and not emitted."""
        self._stop.set()
        with self._lock:
            self._queue.clear()
        for job in self._all:
            job.buffer.close()
        self._jobs.clear()

    def _work(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                if not self._queue:
                    return
                jobs = self._queue.popleft()
            failed: BaseException | None = None
            for job in jobs:
                if failed is not None or self._stop.is_set():
                    # A run-stopping error of this token's worker: the run ends there.
                    job.buffer.end(Outcome(StoppedError(f"not read: {failed}")))
                    continue
                failed = self._read(job)

    def _read(self, job: Job) -> BaseException | None:
        """Read one listing into its buffer; the error that should stop the run, if any."""

        def put(records: list[dict[str, Any]]) -> None:
            if self._stop.is_set():
                raise StoppedError
            job.buffer.put(records)

        try:
            self._reader(job, put)
        except ListingError as error:
            # The token's next listing goes on: waiting for the main thread's verdict could
            # hold every worker while the main thread waits for a token none has started.
            job.buffer.end(Outcome(error, self._heard()))
        except BaseException as error:  # raised on the main thread, in order
            job.buffer.end(Outcome(error))
            return error
        else:
            job.buffer.end(Outcome())
        return None


def _key(context: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(context.items()))


class Scheduler:
    """Starts the run's schedule when the SDK asks for its first listing (if it is to run).

    Every selected listing is planned there (`plan_read`), from its partition's state as
    stored (read, never created: STATE must not change before the SDK gets to it).
    """

    def __init__(self, tap: Any) -> None:
        self.tap = tap
        self.workers = int(tap.config.get("max_parallel_tokens", 1))
        self._started = False
        self._schedule: Schedule | None = None

    def job(self, stream: Any, context: Mapping[str, Any]) -> Job | None:
        """The listing's scheduled read; None: the main thread reads it (as with 1 worker)."""
        if not self._started:
            self._started = True
            # One token: nothing to read side by side (its listings go one after the other
            # anyway). `--test` reads one record per stream: nothing to schedule either.
            tokens = {bot.token for bot in self.tap.bots}
            if min(self.workers, len(tokens)) > 1 and stream.ABORT_AT_RECORD_COUNT is None:
                self._schedule = Schedule(
                    self._jobs(), self.workers, _read_listing, self.tap.failures.heard
                )
        return None if self._schedule is None else self._schedule.job(stream, context)

    def _jobs(self) -> list[Job]:
        jobs = []
        for stream in self.tap.streams.values():
            if not stream.selected:
                continue
            bookmarks = self.tap.state.get("bookmarks")
            new = isinstance(bookmarks, dict) and stream.name not in bookmarks
            for context in stream.partitions:
                read = stream.plan_read(context, _stored(stream, context))
                jobs.append(Job(stream, context, read.bot.token, read))
            if new and bookmarks.get(stream.name) == {}:
                # Planning read the stream's state, which made it empty: STATE stays as the
                # SDK would write it until the stream's turn comes.
                del bookmarks[stream.name]
        return jobs

    def stop(self) -> None:
        """The run ends or stops: workers stop, buffers are dropped."""
        if self._schedule is not None:
            self._schedule.stop()


def _read_listing(job: Job, put: Callable[[list[dict[str, Any]]], None]) -> None:
    job.stream.read_listing(job.read, job.context, put)


def _stored(stream: Any, context: dict[str, Any]) -> dict[str, Any]:
    """The partition's state as stored, without creating it (`{}` when there is none)."""
    bookmarks = stream.tap_state.get("bookmarks") or {}
    for partition in (bookmarks.get(stream.name) or {}).get("partitions") or []:
        if isinstance(partition, dict) and partition.get("context") == context:
            return partition
    return {}
