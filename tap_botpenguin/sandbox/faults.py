"""What the sandbox can be told to do wrong (`Fault`), and what it saw (`ReceivedRequest`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tap_botpenguin.sandbox.data import Record

LISTING_PATH = "/inbox/direct/chats"
KINDS = ("lead", "non-lead")
#: What the API may answer past the last page: the contract documents no end signal.
PAST_END = ("empty", "404", "400", "clamp")


@dataclass
class Fault:
    """A scripted misbehaviour for the next `times` matching requests (`None`: every one).

    kinds:
      status       HTTP `status` with an error envelope (and `Retry-After` if given)
      envelope     HTTP 200 with `success: false` and envelope `code`
      body         HTTP `status` with raw `body` bytes (HTML pages, garbage, bad UTF-8)
      truncated    a valid page whose body stops half-way (Content-Length promises more)
      reset        the connection is reset before any response
      hang         wait `delay` seconds before answering normally
      ignore_page  answer page 1 whatever page was asked
      repeat       answer the page before the one asked (a stale cache, a list that shifted)
      data         the envelope's `data` is `transform(records of the page)`
      redirect     HTTP `status` (a 3xx) pointing to `location` + the request's path and query
      trickle      the normal answer (status line and headers too), one byte every `delay` s
    """

    kind: str
    times: int | None = 1
    page: int | None = None
    type: str | None = None
    bot_id: str | None = None
    status: int = 500
    code: int | None = None
    message: str = "Internal Server Error"
    retry_after: str | None = None
    body: bytes = b""
    delay: float = 0.0
    transform: Callable[[list[Record]], Any] | None = None
    location: str = ""

    def matches(self, params: dict[str, str]) -> bool:
        """Whether this fault applies to a request with these query parameters."""
        return (
            (self.page is None or params.get("page") == str(self.page))
            and (self.type is None or params.get("type") == self.type)
            and (self.bot_id is None or params.get("botId") == self.bot_id)
        )


@dataclass
class ReceivedRequest:
    """What the sandbox saw of one request, for tests and benchmarks to assert on."""

    at: float
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    status: int = 0
    #: When the answer was written (None: not yet).
    answered_at: float | None = None
