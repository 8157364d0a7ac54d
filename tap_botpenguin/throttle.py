"""Client-side rate limiting: never more than N requests in any window, per token."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class RateLimiter:
    """Allows at most `limit` requests in any `window` seconds.

    Each request is timestamped when it *finishes*. The server received it before that,
    so waiting until `window` seconds after the finish of the request `limit` places back
    guarantees the server never sees more than `limit` arrivals in any window, whatever
    the network latency: the tap can run at the full allowance without a single 429.
    Retries take a slot like any request.
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

    def delay(self) -> float:
        """Seconds to wait before the next request may start."""
        if len(self._finished) < self.limit:
            return 0.0
        return max(0.0, self._finished[0] + self.window - self._clock())

    def recent(self, seconds: float = 60.0) -> int:
        """How many requests finished in the last `seconds`."""
        since = self._clock() - seconds
        return sum(1 for at in self._finished if at > since)

    @contextmanager
    def slot(self, on_wait: Callable[[float], None] | None = None) -> Iterator[None]:
        """Wait for a free slot, run the request, count it when it finishes."""
        wait = self.delay()
        if wait > 0:
            if on_wait is not None:
                on_wait(wait)
            self._sleep(wait)
        try:
            yield
        finally:
            self._finished.append(self._clock())
