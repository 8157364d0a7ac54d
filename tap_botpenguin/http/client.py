"""Sending one page request: throttled, retried as `retries` says, decoded, failed in one line.

A `PageClient` belongs to one thread (it owns its HTTP session): the thread reading a listing
has one, and so has each thread asking for pages read ahead. What its requests cost (attempts,
answers, waits) is kept in its `Traffic`, which the listing's reading thread takes after each
page, so every attempt is counted once, wherever it was sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlparse

import backoff
import requests

from tap_botpenguin.http.proxy import proxy_trouble
from tap_botpenguin.http.responses import LISTING_PATH, Page, ResponseReader, RetriableError
from tap_botpenguin.http.retries import retry_waits
from tap_botpenguin.http.session import USER_AGENT, ApiSession, Deadlines, api_session
from tap_botpenguin.http.tls import certificate_trouble
from tap_botpenguin.report.errors import BotPenguinError, ListingError
from tap_botpenguin.report.logs import AnyLogger
from tap_botpenguin.report.redaction import redact

if TYPE_CHECKING:
    from backoff.types import Details

#: Failures worth another attempt (the same as the SDK's REST streams retry).
RETRIED = (
    ConnectionResetError,
    RetriableError,
    requests.exceptions.Timeout,
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


@dataclass(frozen=True)
class Endpoint:
    """One listing as the API serves it: where, with which ids and credentials, how patiently."""

    api_url: str
    stream: str
    bot_id: str
    customer_id: str
    inbox_type: str
    headers: Mapping[str, str] = field(repr=False)
    auth_method: str
    secrets: Sequence[str] = field(repr=False)
    timeout: float
    max_retries: int

    @property
    def where(self) -> str:
        """What is being read, for messages: `leads (bot 65f0...)`."""
        return f"{self.stream} (bot {self.bot_id})"

    def params(self, number: int) -> dict[str, Any]:
        """The query of page `number` (`page` counts from 1)."""
        return {
            "botId": self.bot_id,
            "customerId": self.customer_id,
            "page": number,
            "type": self.inbox_type,
        }


class Limiter(Protocol):
    """A token's allowance, shared by every thread sending for it (`concurrency.throttle`)."""

    limit: int

    def slot(self, on_wait: Callable[[float], None] | None = None) -> AbstractContextManager[None]:
        """Wait for a free slot (telling `on_wait` how long), then hold it for one request."""

    def new_wait(self, seconds: float) -> float:
        """Of a wait of `seconds` from now, the part no other thread announced already."""


@dataclass
class Traffic:
    """What a client's requests cost since it was last taken."""

    requests: int = 0
    #: (HTTP status, seconds) of every attempt that got an answer (METRIC lines).
    answers: list[tuple[int, float]] = field(default_factory=list)
    #: (start, end) of every wait, monotonic clock (rate limit and retries).
    waits: list[tuple[float, float]] = field(default_factory=list)

    def add(self, other: Traffic) -> None:
        """Count `other` in too."""
        self.requests += other.requests
        self.answers += other.answers
        self.waits += other.waits


class PageClient:
    """Sends one listing's page requests from one thread (see the module docstring).

    `on_answer` is told about every answer, of any status (the run's tally of what it heard
    from the API, `report.failures`).
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        limiter: Limiter,
        deadlines: Deadlines,
        logger: AnyLogger,
        on_answer: Callable[[], None],
    ) -> None:
        self.endpoint = endpoint
        self._limiter = limiter
        self._logger = logger
        self._on_answer = on_answer
        self._deadlines = deadlines
        #: Opened by the first request: a run plans every listing up front (`concurrency`),
        #: and thousands of idle sessions would cost memory for nothing.
        self._session: ApiSession | None = None
        self._reader = ResponseReader(
            logger, endpoint.where, endpoint.secrets, endpoint.auth_method
        )
        self._url = endpoint.api_url + LISTING_PATH
        self._headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            # Never a stored copy: a cache answering the page-1 check of pages read ahead
            # with the page it holds would hide arrivals (`Pragma` for HTTP/1.0 proxies).
            "Cache-Control": "no-cache",
            "Pragma": "no-cache",
            **endpoint.headers,
        }
        self._traffic = Traffic()
        #: Attempts of the page being sent so far: what its failure line counts.
        self._tries = 0
        self._retrying: Callable[[int], Page] = backoff.on_exception(
            retry_waits,
            RETRIED,
            max_tries=endpoint.max_retries,
            giveup=self._not_retried,
            on_backoff=self._retrying_in,
            jitter=None,  # exact waits: see `retries`
            logger=None,  # the warning of `_retrying_in` says it better
        )(self._attempt)

    def send(self, number: int) -> Page:
        """Page `number`, decoded; raises `ListingError` once retries are spent.

        Failure lines count the attempts made: an error that is not retried says so, with the
        attempt it came at, never "gave up after" the attempts it did not make.
        """
        self._tries = 0
        try:
            return self._retrying(number)
        except ListingError as exc:  # an answer that is not retried (401, 404, ...)
            if self._tries <= 1:
                raise
            message, status = self._not_retried_at(str(exc)), exc.status
            raise ListingError(message, status=status, page=exc.page) from exc
        except BotPenguinError as exc:  # a redirect the tap does not follow
            if self._tries <= 1:
                raise
            raise BotPenguinError(self._not_retried_at(str(exc))) from exc
        except (RetriableError, requests.RequestException, ConnectionError) as exc:
            response = getattr(exc, "response", None)
            proxy = None if self._session is None else self._session.proxy
            unanswered = None if proxy is None else proxy.check
            if self._certificate(exc) is not None:
                unanswered = "the certificate is what to fix, not api_url"
            raise ListingError(
                self._gave_up(exc, number),
                status=None if response is None else response.status_code,
                page=number,
                unanswered=unanswered,
            ) from exc

    def take_traffic(self) -> Traffic:
        """What the requests since the last call cost (on the client's thread, or after it)."""
        traffic, self._traffic = self._traffic, Traffic()
        return traffic

    def close(self) -> None:
        """Close the session's connections."""
        if self._session is not None:
            self._session.close()
            self._session = None

    def _attempt(self, number: int) -> Page:
        prepared = requests.Request(
            "GET", self._url, params=self.endpoint.params(number), headers=self._headers
        ).prepare()
        self._tries += 1
        with self._limiter.slot(on_wait=self._rate_limited):
            self._traffic.requests += 1
            started = time.monotonic()
            if self._session is None:
                endpoint = self.endpoint
                self._session = api_session(endpoint.api_url, endpoint.secrets, self._deadlines)
            response = self._session.send(
                prepared, timeout=self.endpoint.timeout, allow_redirects=True
            )
        self._traffic.answers.append((response.status_code, time.monotonic() - started))
        self._on_answer()
        return self._reader.read(response)

    def _waiting(self, seconds: float) -> float:
        """Count a wait starting now; the part no other request of the token announced."""
        now = time.monotonic()
        self._traffic.waits.append((now, now + seconds))
        return self._limiter.new_wait(seconds)

    def _rate_limited(self, seconds: float) -> None:
        if self._waiting(seconds) >= 1.0:  # short pauses are not worth a line
            self._logger.info(
                "%s: waiting %.1f s for the rate limit (requests_per_minute=%d)",
                f"{self.endpoint.stream} bot {self.endpoint.bot_id}",
                seconds,
                self._limiter.limit,
            )

    def _not_retried(self, exc: Exception) -> bool:
        """A proxy that refused the tunnel, or a certificate not trusted: the same again."""
        trouble = proxy_trouble(exc)
        return (trouble is not None and not trouble[1]) or self._certificate(exc) is not None

    def _certificate(self, exc: BaseException | None) -> str | None:
        """Why the API's certificate was not trusted, if that is how `exc` failed."""
        host = urlparse(self.endpoint.api_url).hostname or self.endpoint.api_url
        return None if exc is None else certificate_trouble(exc, host)

    def _retrying_in(self, details: Details) -> None:
        exc = details.get("exception")
        response = getattr(exc, "response", None)
        if response is not None:
            what = self._reader.describe(response)
        else:
            what = f"{self.endpoint.where}: failed{self._failure(exc)}"
        wait = float(details.get("wait", 0.0))
        self._waiting(wait)  # the warning says why
        self._logger.warning(
            "%s; retrying in %.1f s (attempt %d of %d)",
            redact(what, self.endpoint.secrets),
            wait,
            details.get("tries", 0),
            self.endpoint.max_retries,
        )

    def _failure(self, exc: BaseException | None) -> str:
        """How a request that got no answer failed, to follow "failed".

        `: ReadTimeout (...)`, or ` at the proxy ...: ...` when the proxy is the trouble.
        """
        proxy = None if self._session is None else self._session.proxy
        trouble = None if exc is None else proxy_trouble(exc)
        if proxy is not None and trouble is not None:
            return f" at {proxy}: {trouble[0]}"
        certificate = self._certificate(exc)
        if certificate is not None:
            return f": {certificate}"
        what = f": {type(exc).__name__}"
        if isinstance(exc, requests.Timeout):
            what += f" (no answer within request_timeout={self.endpoint.timeout:g} s)"
        return what if proxy is None else f"{what} (through {proxy})"

    def _not_retried_at(self, message: str) -> str:
        """`message`, saying at which attempt it came (earlier attempts were retried)."""
        return f"{message} Not retried (attempt {self._tries} of {self.endpoint.max_retries})."

    def _gave_up(self, exc: BaseException, number: int) -> str:
        tries, most = self._tries, self.endpoint.max_retries
        if isinstance(exc, RetriableError):
            reason = str(exc)
        else:
            path, where = urlparse(self._url).path, self.endpoint.where
            reason = f"GET {path} page {number} for {where} failed{self._failure(exc)}"
        if isinstance(exc, RETRIED) and not self._not_retried(exc):
            ending = f"gave up after {tries} attempts (max_retries={most})"
        else:
            ending = f"not retried (attempt {tries} of {most})"
        return redact(f"{reason}; {ending}.", self.endpoint.secrets)
