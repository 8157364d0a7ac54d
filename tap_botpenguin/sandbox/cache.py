"""A response cache in front of the sandbox, as a corporate proxy or API gateway puts one.

It keeps each 200 answer by URL for `seconds` and serves the copy to any later request of
the same URL, with `Age` and `X-Cache: HIT`, without the API seeing the request. A compliant
cache (`honours_no_cache`) goes to the API when the request says `Cache-Control: no-cache` or
`Pragma: no-cache`; a careless gateway does not.
"""

from __future__ import annotations

import threading
import time


class ResponseCache:
    """Answers stored by URL (thread-safe: the sandbox serves requests on several threads)."""

    def __init__(self, seconds: float, *, honours_no_cache: bool) -> None:
        self.seconds = seconds
        self.honours_no_cache = honours_no_cache
        self._lock = threading.Lock()
        self._stored: dict[str, tuple[float, bytes]] = {}
        #: Requests answered from the store.
        self.hits = 0

    def lookup(self, url: str, headers: dict[str, str]) -> tuple[bytes, dict[str, str]] | None:
        """The stored answer and the headers a cache adds, or None (ask the API)."""
        asked_fresh = "no-cache" in headers.get("cache-control", "") + headers.get("pragma", "")
        if asked_fresh and self.honours_no_cache:
            return None
        with self._lock:
            stored = self._stored.get(url)
            if stored is None or time.monotonic() - stored[0] > self.seconds:
                return None
            self.hits += 1
            age = int(time.monotonic() - stored[0])
        return stored[1], {"Age": str(age), "X-Cache": "HIT"}

    def store(self, url: str, body: bytes) -> None:
        """Keep a 200 answer of `url`."""
        with self._lock:
            self._stored[url] = (time.monotonic(), body)
