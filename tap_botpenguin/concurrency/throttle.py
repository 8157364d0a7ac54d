"""Client-side rate limiting: never more than N requests in any window, per token.

A token's requests are sent from several threads (pages read ahead, the workers), and
its allowance is one: the limiter is shared by them all, so it lives in the concurrency layer.
The HTTP client knows it only as `http.client.Limiter`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class RateLimiter:
    """Allows at most `limit` requests in any `window` seconds, from any number of threads.

    A request counts from its start until `window` seconds after it *finishes*; a new one
    starts only while fewer than `limit` count. The server received each counted request
    somewhere between its start and its finish, so it never sees more than `limit` arrivals
    in any window, whatever the network latency and however many requests are in flight
    (pages read ahead, see `listing.ahead`): the tap can run at the full allowance without a
    single 429. Retries take a slot like any request.
    """

    def __init__(
        self,
        limit: int,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._finished: deque[float] = deque(maxlen=limit)
        self._running = 0
        self._changed = threading.Condition()
        self._answer_time: float | None = None
        self._waits_end = clock()

    @property
    def answer_time(self) -> float | None:
        """Seconds a request takes, averaged over the recent ones (None before the first)."""
        with self._changed:
            return self._answer_time

    def new_wait(self, seconds: float) -> float:
        """A request of this token waits `seconds` from now: the part no earlier wait covers.

        Requests waiting side by side (pages read ahead) announce a wait once.
        """
        with self._changed:
            now = self._clock()
            end = now + seconds
            fresh = max(0.0, end - max(now, self._waits_end))
            self._waits_end = max(self._waits_end, end)
            return fresh

    def _wait_locked(self) -> float | None:
        """0 when a request may start now, else seconds to wait (None: until one finishes)."""
        since = self._clock() - self.window
        counted = [at for at in self._finished if at > since]
        if self._running + len(counted) < self.limit:
            return 0.0
        return counted[0] - since if counted else None

    def recent(self, seconds: float = 60.0) -> int:
        """How many requests finished in the last `seconds`."""
        since = self._clock() - seconds
        with self._changed:
            return sum(1 for at in self._finished if at > since)

    @contextmanager
    def slot(self, on_wait: Callable[[float], None] | None = None) -> Iterator[None]:
        """Wait for a free slot, run the request, count it when it finishes."""
        while True:
            with self._changed:
                wait = self._wait_locked()
                if wait == 0.0:
                    self._running += 1
                    break
                if wait is None:  # every counted request is still running
                    self._changed.wait()
                    continue
            if on_wait is not None:
                on_wait(wait)
            self._sleep(wait)
        started = self._clock()
        try:
            yield
        finally:
            with self._changed:
                self._running -= 1
                finished = self._clock()
                self._finished.append(finished)
                took = finished - started
                recent = self._answer_time
                self._answer_time = took if recent is None else 0.8 * recent + 0.2 * took
                self._changed.notify_all()
