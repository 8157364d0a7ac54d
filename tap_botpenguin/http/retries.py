"""When to retry and how long to wait: `Retry-After` on 429, exponential backoff otherwise.

The waits are exact (no jitter): requests are already spaced by the token's throttle, and
jitter would only blur the `Retry-After` the server asked for.
"""

from __future__ import annotations

import email.utils
import sys
from abc import abstractmethod
from collections.abc import Callable, Generator, Sequence
from datetime import datetime, timezone
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import requests
from singer_sdk import RESTStream
from singer_sdk.exceptions import RetriableAPIError

from tap_botpenguin.http.responses import json_or_none, page_number, page_of
from tap_botpenguin.http.throttle import RateLimiter
from tap_botpenguin.report.errors import BotPenguinError, ListingError
from tap_botpenguin.report.progress import Progress
from tap_botpenguin.report.redaction import redact

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

if TYPE_CHECKING:
    from backoff.types import Details
    from singer_sdk.helpers.types import Context, RequestFunc

#: Upper bound for any single wait between attempts, whatever the server says.
MAX_RETRY_WAIT = 600.0
#: Wait after a 429 that names no `Retry-After`, doubled for each further such 429.
DEFAULT_RETRY_AFTER = 5.0
#: Exponential backoff for 5xx, timeouts and broken bodies: 1 s, 2 s, 4 s ... capped.
BACKOFF_BASE = 1.0
BACKOFF_CAP = 60.0


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Parse `Retry-After` (delta-seconds or HTTP-date); None when absent or unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        return min(max(float(value), 0.0), MAX_RETRY_WAIT)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    delta = (when - (now or datetime.now(timezone.utc))).total_seconds()
    return min(max(delta, 0.0), MAX_RETRY_WAIT)


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


class RetryingStream(RESTStream[int]):
    """A stream that throttles every attempt, retries as `retry_waits` says, fails in one line.

    The stream says which throttle applies, where progress is counted, how to name what it
    reads in messages, and which secrets to keep out of them.
    """

    @property
    @abstractmethod
    def limiter(self) -> RateLimiter:
        """The rate limiter of the token being used."""

    @property
    @abstractmethod
    def progress(self) -> Progress:
        """Where requests and waits are counted."""

    @property
    @abstractmethod
    def secrets(self) -> Sequence[str]:
        """Values never to show in a message."""

    @abstractmethod
    def where(self) -> str:
        """What is being read, for messages: `leads (bot 65f0...)`."""

    @override
    def request_decorator(self, func: RequestFunc) -> RequestFunc:
        """Throttle every attempt, retry as the SDK does, and fail in one readable line."""
        limiter, progress = self.limiter, self.progress

        def throttled(
            prepared: requests.PreparedRequest, context: Context | None
        ) -> requests.Response:
            with limiter.slot(on_wait=self._waiting_for_rate_limit):
                progress.count_request()
                return func(prepared, context)

        retrying: Callable[..., requests.Response] = super().request_decorator(throttled)

        def run(prepared: requests.PreparedRequest, context: Context | None) -> requests.Response:
            try:
                return retrying(prepared, context)
            except BotPenguinError:
                raise
            except (RetriableAPIError, requests.RequestException, ConnectionError) as exc:
                response = getattr(exc, "response", None)
                raise ListingError(
                    self._gave_up(exc, prepared),
                    status=None if response is None else response.status_code,
                    page=page_number(prepared.url),
                ) from exc

        return run

    def _gave_up(self, exc: BaseException, prepared: requests.PreparedRequest) -> str:
        tries = self.backoff_max_tries()
        if isinstance(exc, RetriableAPIError):
            reason = str(exc)
        else:
            reason = (
                f"GET {urlparse(prepared.url or '').path!s} page {page_of(prepared.url)} for "
                f"{self.where()} failed: {type(exc).__name__}"
            )
            if isinstance(exc, requests.Timeout):
                reason += f" (no answer within request_timeout={self.timeout:g} s)"
        return redact(
            f"{reason}; gave up after {tries} attempts (max_retries={tries}).", self.secrets
        )

    def _waiting_for_rate_limit(self, seconds: float) -> None:
        reason = f"the rate limit (requests_per_minute={self.limiter.limit})"
        self.progress.waiting(seconds, reason)

    @override
    def backoff_max_tries(self) -> int:
        return int(self.config["max_retries"])

    @override
    def backoff_wait_generator(self) -> Generator[float, Any, None]:
        return retry_waits()

    @override
    def backoff_jitter(self, value: float) -> float:
        return value  # exact waits: see the module's docstring

    @override
    def backoff_handler(self, details: Details) -> None:
        exc = details.get("exception")
        response = getattr(exc, "response", None)
        if response is not None:
            what = self.response_error_message(response)
        else:
            what = f"{self.where()}: {type(exc).__name__}"
        wait = float(details.get("wait", 0.0))
        self.progress.waiting(wait, None)  # the warning below says why
        self.logger.warning(
            "%s; retrying in %.1f s (attempt %d of %d)",
            redact(what, self.secrets),
            wait,
            details.get("tries", 0),
            self.backoff_max_tries(),
        )
