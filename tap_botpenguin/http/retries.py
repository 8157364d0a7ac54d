"""When to retry and how long to wait: `Retry-After` on 429, exponential backoff otherwise.

The waits are exact (no jitter): requests are already spaced by the token's throttle, and
jitter would only blur the `Retry-After` the server asked for.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Generator
from datetime import datetime, timezone
from http import HTTPStatus
from typing import Any

import requests

from tap_botpenguin.http.responses import json_or_none

#: Upper bound for any single wait between attempts, whatever the server says.
MAX_RETRY_WAIT = 600.0
#: Wait after a 429 that names no `Retry-After`, doubled for each further such 429.
DEFAULT_RETRY_AFTER = 5.0
#: Exponential backoff for 5xx, timeouts and broken bodies: 1 s, 2 s, 4 s ... capped.
BACKOFF_BASE = 1.0
BACKOFF_CAP = 60.0


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Parse `Retry-After` (delta-seconds or HTTP-date); None when absent or unusable.

    Zero, a negative number or a date already past (a server clock behind the tap's) is
    unusable too: honoured, it would spend every attempt at once, so the usual backoff waits.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:  # NaN would pass the clamp and make `time.sleep` raise
        return None if math.isnan(seconds) or seconds <= 0 else min(seconds, MAX_RETRY_WAIT)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    delta = (when - (now or datetime.now(timezone.utc))).total_seconds()
    return None if delta <= 0 else min(delta, MAX_RETRY_WAIT)


def is_rate_limited(response: requests.Response) -> bool:
    """A 429, as an HTTP status or as the envelope's `code`."""
    if response.status_code == HTTPStatus.TOO_MANY_REQUESTS:
        return True
    payload = json_or_none(response.content)
    return isinstance(payload, dict) and payload.get("code") == HTTPStatus.TOO_MANY_REQUESTS


def retry_waits() -> Generator[float, Any, None]:
    """The wait before each retry; `backoff` sends in the exception that failed the attempt.

    A 429 waits what `Retry-After` says (seconds or HTTP-date), else 5 s doubling per 429;
    anything else waits 1 s, 2 s, 4 s ... up to 60 s.
    """
    attempt = 0
    throttled = 0
    exc = yield  # type: ignore[misc]  # backoff primes the generator with None
    while True:
        attempt += 1
        response = getattr(exc, "response", None)
        if response is not None and is_rate_limited(response):
            throttled += 1
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            if wait is None:
                wait = min(DEFAULT_RETRY_AFTER * 2 ** (throttled - 1), BACKOFF_CAP)
        else:
            wait = min(BACKOFF_BASE * 2 ** (attempt - 1), BACKOFF_CAP)
        exc = yield wait
