"""Listings of different tokens read at the same time; records and STATE written as before.

The SDK syncs one stream after the other, and within a stream one bot after the other. With
`max_parallel_tokens` above 1, the first listing the SDK asks for starts the schedule: every
selected listing is planned there (on the main thread, from the state as it is), and worker
threads (at most `max_parallel_tokens`, one per token at most) read them with each listing's
own `ListingReader` (request -> decode -> end of listing -> scan decisions; pages read ahead
when that pays, `listing.ahead`), never the SDK's request loop. Finished pages go into a
buffer per listing (`buffer`).

Workers take listings in the order the main thread emits them, never two of one token at
once (a token's allowance is one), and wait when what is read ahead passes the run's budget
(`buffer.ReadAheadBudget`), except for the listing the main thread is emitting. That cannot
deadlock. A worker waits only in a listing after the main thread's. Every listing before it
has ended and a token's listings start in order, so while the main thread's listing is not
being read it is the earliest not started, of a token nobody reads: the next worker looking
for a listing takes it. One will look: a listing after it was started only while its token
was busy with an earlier listing, whose worker has finished that one since (it is before the
main thread's) and then took the earliest left. Being read, the main thread's listing never
waits for the others, and each page the main thread takes frees budget.

The main thread still does everything Singer sees, in the SDK's order: it takes a listing's
pages from its buffer when the SDK asks for that listing, emits its records and does the
listing's bookkeeping (state, set-aside, closing line). STATE therefore only covers what was
emitted, and a killed run resumes as before. The main thread's work per page (`Pace`) tells
the workers' `readahead` whether reading faster would help at all.

A listing that fails for good ends its buffer with its `ListingError`, which the main thread
handles when it gets there (`failures`); any other error ends the buffer with it, and the
token's later listings end unread; the run stops when the main thread reaches the error.
When the main thread stops (an error, a kill), the workers stop at their next page.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from tap_botpenguin.concurrency.buffer import Outcome, Pace, PageBuffer, ReadAheadBudget
from tap_botpenguin.listing.plan import BotRead
from tap_botpenguin.report.errors import ListingError


class StoppedError(Exception):
    """The run is stopping: a worker leaves the listing it was reading."""


@dataclass
class Job:
    """One listing to read: which (stream and partition), and as planned on the main thread."""

    key: Hashable
    read: BotRead
    #: Where its pages wait for the main thread (the `Schedule` makes it).
    buffer: PageBuffer = field(init=False)


#: What the run has heard from the API (for `Outcome.heard`).
Heard = Callable[[], tuple[int, bool]]


class Schedule:
    """The run's listings, their workers and their buffers (`jobs` in the main thread's order)."""

    def __init__(self, jobs: list[Job], workers: int, heard: Heard) -> None:
        self._jobs = {job.key: job for job in jobs}
        self._heard = heard
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._unstarted = list(jobs)
        self._reading: set[str] = set()  # tokens with a listing being read
        self._failed: dict[str, BaseException] = {}  # a token's run-stopping error
        tokens = len({job.read.bot.token for job in jobs})
        self._threads = [
            threading.Thread(target=self._work, name=f"listings-{number}", daemon=True)
            for number in range(min(workers, tokens))
        ]
        pace, sharing = Pace(), len(self._threads)

        def consumer_work() -> float | None:  # the main thread's work per page of one token
            return None if pace.per_page is None else pace.per_page * sharing

        budget = ReadAheadBudget()  # what every listing read ahead may hold, in all
        for turn, job in enumerate(jobs):
            job.buffer = PageBuffer(budget, turn=turn)
            job.buffer.pace = pace
            job.read.reader.ahead.consumer_work = consumer_work
        # Only the buffers, to close them: a listing's read (its reader, what it last saw)
        # is dropped once the main thread is done with it.
        self._buffers = [job.buffer for job in jobs]
        for thread in self._threads:
            thread.start()

    def job(self, key: Hashable) -> Job | None:
        """The scheduled read of this listing, once (None when it is not scheduled)."""
        return self._jobs.pop(key, None)

    def stop(self) -> None:
        """Stop every worker at its next page; drop what was read and not emitted."""
        self._stop.set()
        with self._changed:
            self._unstarted.clear()
            self._changed.notify_all()
        for buffer in self._buffers:
            buffer.close()
        self._jobs.clear()

    def _work(self) -> None:
        """On a `listings-N` thread: the earliest listing not started of a free token, again."""
        while (taken := self._next()) is not None:
            job, failed = taken
            error: BaseException | None = None
            try:
                if failed is not None or self._stop.is_set():
                    # A run-stopping error of this token's: the run ends there.
                    job.buffer.end(Outcome(StoppedError(f"not read: {failed}")))
                else:
                    error = self._read(job)
            finally:
                self._done(job, error)

    def _next(self) -> tuple[Job, BaseException | None] | None:
        """On a worker: the next listing to read, and its token's run-stopping error if any.

        The first listing not started whose token no worker is reading (waits for one when
        every token left is being read); None once every listing has been started.
        """
        with self._changed:
            while not self._stop.is_set():
                for index, job in enumerate(self._unstarted):
                    token = job.read.bot.token
                    if token not in self._reading:
                        del self._unstarted[index]
                        self._reading.add(token)
                        return job, self._failed.get(token)
                if not self._unstarted:
                    break
                self._changed.wait()
        return None

    def _done(self, job: Job, error: BaseException | None) -> None:
        """On a worker: the listing's read ended; its token is free for its next listing."""
        token = job.read.bot.token
        with self._changed:
            self._reading.discard(token)
            if error is not None:
                self._failed.setdefault(token, error)
            self._changed.notify_all()

    def _read(self, job: Job) -> BaseException | None:
        """On a worker: read one listing into its buffer; the error that stops the run, if any."""
        reader = job.read.reader
        try:
            for page in reader.pages():
                if self._stop.is_set():
                    raise StoppedError
                job.buffer.put(page)  # may wait for the main thread (the budget)
        except ListingError as error:
            # The token's next listing goes on: waiting for the main thread's verdict could
            # hold every worker while the main thread waits for a listing none has started.
            job.buffer.end(Outcome(error, self._heard(), reader.leftover_traffic()))
        except BaseException as error:  # raised on the main thread, in order
            job.buffer.end(Outcome(error, leftover=reader.leftover_traffic()))
            return error
        else:
            job.buffer.end(Outcome(leftover=reader.leftover_traffic()))
        return None


class Scheduler:
    """Starts the run's schedule when the SDK asks for its first listing (if it is to run).

    `plan_all` plans every selected listing, on the main thread, from the state as stored.
    """

    def __init__(self, workers: int, tokens: int, heard: Heard) -> None:
        self._workers = workers
        self._tokens = tokens
        self._heard = heard
        self._started = False
        self._schedule: Schedule | None = None

    def job(self, key: Hashable, plan_all: Callable[[], list[Job]], *, dry_run: bool) -> Job | None:
        """The listing's scheduled read; None: the main thread reads it (as with 1 worker)."""
        if not self._started:
            self._started = True
            # One token: nothing to read side by side (its listings go one after the other
            # anyway). `--test` reads one record per stream: nothing to schedule either.
            if min(self._workers, self._tokens) > 1 and not dry_run:
                self._schedule = Schedule(plan_all(), self._workers, self._heard)
        return None if self._schedule is None else self._schedule.job(key)

    def stop(self) -> None:
        """The run ends or stops: workers stop, buffers are dropped."""
        if self._schedule is not None:
            self._schedule.stop()


class Tally:
    """A count kept by several threads (the run's answers from the API)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    def add(self) -> None:
        """One more (any thread)."""
        with self._lock:
            self._count += 1

    @property
    def count(self) -> int:
        """The count so far."""
        with self._lock:
            return self._count
