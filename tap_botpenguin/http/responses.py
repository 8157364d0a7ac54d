"""Decoding and classifying the answers of `GET /inbox/direct/chats`.

API quirks absorbed here (docs/contract.md, "Errors" and "End of a listing"):
- Errors arrive as HTTP statuses *or* as `200` with `{"success": false, "code": ...}`
  (`success` may even be the string `"false"`).
- The contract documents no end of the listing: past the last page an API may answer a 4xx
  instead of an empty `data` array. On page 2 or later those statuses end the listing;
  on page 1 they are the errors they say (wrong ids, wrong path).
- Bodies may be broken in every way a proxy or a bug breaks them; each is decoded once.
"""

from __future__ import annotations

import email.utils
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from http import HTTPStatus
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlparse

import msgspec
import requests

from tap_botpenguin.report.errors import ListingError
from tap_botpenguin.report.logs import AnyLogger
from tap_botpenguin.report.redaction import REDACTED, redact, redact_bytes

LISTING_PATH = "/inbox/direct/chats"
_AUTH_CODES = frozenset({HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN})
#: What APIs answer for a page past the last one, when they do not answer `data: []`:
#: 404 (REST), 400 (the contract's "invalid page"), 416 and 422 (paginators' "out of range").
PAST_THE_END_CODES = frozenset(
    {
        HTTPStatus.BAD_REQUEST,
        HTTPStatus.NOT_FOUND,
        HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
        HTTPStatus.UNPROCESSABLE_ENTITY,
    }
)
#: What msgspec raises for bodies it cannot decode (invalid UTF-8 and deep nesting included).
_UNPARSABLE = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


class Page(NamedTuple):
    """A decoded page of one listing.

    `scrub_strings`: the body holds NULs or undecodable bytes, so its strings need cleaning.
    `past_end`: the 4xx status with which the API said there is no such page.
    `cached`: a cache between the tap and the API says it served this copy (`served_from_cache`).
    `api_time`: the API's own clock when it read this page (`api_clock`); None without a `Date`.
    """

    number: int
    records: list[dict[str, Any]]
    scrub_strings: bool = False
    past_end: int | None = None
    cached: bool = False
    api_time: datetime | None = None


#: Headers caches and CDNs add to what they served from their store, and the values saying so.
_CACHE_STATUS_HEADERS = ("X-Cache", "X-Cache-Status", "CF-Cache-Status", "X-Proxy-Cache")
_CACHE_HITS = ("HIT", "STALE", "UPDATING", "REVALIDATED")


def served_from_cache(headers: Mapping[str, str]) -> bool:
    """Whether a cache says it answered from its store (RFC 9111 `Age`, common HIT headers).

    The tap asks for `no-cache`; a cache that ignores it would answer the page-1 check of
    pages read ahead with the copy it holds, and the check would see no arrivals.
    """
    age = headers.get("Age", "").strip()
    if age and age != "0":
        return True
    return any(
        any(hit in headers.get(name, "").upper() for hit in _CACHE_HITS)
        for name in _CACHE_STATUS_HEADERS
    )


def api_clock(response: requests.Response) -> datetime | None:
    """What the API's clock said when it started on this request, from its `Date` header.

    `Date` is stamped when the answer is sent, to the second; the request's round trip is
    taken off, so the page was read no earlier than this. None when absent or unreadable.
    """
    value = response.headers.get("Date")
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when - response.elapsed


#: The characters JSON may also spell as a two-character escape, and that escape's letter.
_SHORT_ESCAPES = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "\b": "b",
    "\f": "f",
    "\n": "n",
    "\r": "r",
    "\t": "t",
}


def escape_pattern(secrets: Sequence[str]) -> re.Pattern[bytes] | None:
    r"""JSON escapes that decode to a character of some secret (`\u0061`, `\/`, ...).

    A secret spelled with escapes shows only once decoded; a body holding none of these
    escapes cannot spell one that way, so only such bodies are looked at again.
    """
    alternatives: set[str] = set()
    for char in {char for secret in secrets for char in secret.strip()}:
        code = ord(char)
        if code > 0xFFFF:  # a surrogate pair: its high half is the escape to look for
            code = 0xD800 + ((code - 0x10000) >> 10)
        digits = "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in f"{code:04x}")
        alternatives.add(r"\\u" + digits)
        if char in _SHORT_ESCAPES:
            alternatives.add(r"\\" + re.escape(_SHORT_ESCAPES[char]))
    return re.compile("|".join(sorted(alternatives)).encode()) if alternatives else None


class RetriableError(Exception):
    """An answer worth another attempt (429, 5xx, a broken body): `response` says which."""

    def __init__(self, message: str, response: requests.Response) -> None:
        super().__init__(message)
        self.response = response


class MalformedPageError(RetriableError):
    """A 2xx response whose body is not the documented envelope (retried, then fatal)."""


def is_retriable(code: int) -> bool:
    """429 and 5xx are worth another attempt; every other error is not."""
    return code == HTTPStatus.TOO_MANY_REQUESTS or code >= HTTPStatus.INTERNAL_SERVER_ERROR


def json_or_none(body: bytes) -> Any:
    """The decoded body, or None: for error messages, which must never fail themselves."""
    try:
        return msgspec.json.decode(body)
    except _UNPARSABLE:
        return None


def status_text(code: int) -> str:
    """`404 Not Found`, or just the number for codes HTTP does not name."""
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return str(code)


def page_of(url: str | None) -> str:
    """The `page` query parameter of a request URL, as sent (`?` if absent)."""
    return parse_qs(urlparse(url or "").query).get("page", ["?"])[0]


def page_number(url: str | None) -> int:
    """The page a request asked for (1 when unreadable: the conservative answer)."""
    text = page_of(url)
    return int(text) if text.isdigit() else 1


class ResponseReader:
    """Turns a response into a `Page`, or raises the error it stands for, in one line.

    `where` names the stream and bot being read (for messages); `secrets` are redacted from
    anything quoted from a body. Runs on the thread that sent the request.
    """

    def __init__(
        self,
        logger: AnyLogger,
        where: str,
        secrets: Sequence[str],
        auth_method: str,
    ) -> None:
        self.logger = logger
        self.where = where
        self.secrets = secrets
        self.auth_method = auth_method
        self._escapes = escape_pattern(secrets)

    def read(self, response: requests.Response) -> Page:
        """Classify by HTTP status, then by the envelope; decode the body exactly once."""
        status = response.status_code
        if is_retriable(status):
            raise RetriableError(self.describe(response), response)
        if status >= HTTPStatus.BAD_REQUEST:
            return self._error(status, response)
        number = page_number(response.request.url)
        body = self._without_secrets(response)
        scrub = b"\\u0000" in body
        try:
            payload = msgspec.json.decode(body)
        except _UNPARSABLE:
            payload = self._decode_lenient(response, body)
            scrub = True
        if self._escapes is not None and self._escapes.search(body):
            payload = self._without_escaped_secrets(response, payload)
        if not isinstance(payload, dict):
            raise MalformedPageError(
                self.describe(response, "the body is not a JSON object"), response
            )
        if payload.get("success") in (False, "false"):
            code = payload.get("code")
            code = code if isinstance(code, int) else HTTPStatus.INTERNAL_SERVER_ERROR
            if is_retriable(code):
                raise RetriableError(self.describe(response, code=code), response)
            return self._error(code, response)
        data = payload.get("data")
        if not isinstance(data, list):
            kind = "null" if data is None else type(data).__name__
            raise MalformedPageError(
                self.describe(response, f"`data` is {kind}, not the documented array"), response
            )
        if not all(isinstance(record, dict) for record in data):
            raise MalformedPageError(
                self.describe(response, "`data` holds non-object items"), response
            )
        return Page(
            number,
            data,
            scrub,
            cached=served_from_cache(response.headers),
            api_time=api_clock(response),
        )

    def _error(self, code: int, response: requests.Response) -> Page:
        """A 4xx (or envelope error): past the end of the listing, or fatal."""
        number = page_number(response.request.url)
        if code in PAST_THE_END_CODES and number > 1:
            return Page(number, [], past_end=code)
        raise self.fatal(code, response)

    def _without_secrets(self, response: requests.Response) -> bytes:
        """The body, with any configured token replaced: a token never reaches a record."""
        body, count = redact_bytes(response.content, self.secrets)
        if count:
            self._token_replaced(response)
        return body

    def _without_escaped_secrets(self, response: requests.Response, payload: Any) -> Any:
        """A token spelled in JSON unicode escapes shows only once decoded: look again."""
        text = json.dumps(payload, ensure_ascii=False).encode("utf-8", errors="surrogatepass")
        clean, count = redact_bytes(text, self.secrets)
        if not count:
            return payload
        self._token_replaced(response)
        return json.loads(clean.decode("utf-8", errors="surrogatepass"))

    def _token_replaced(self, response: requests.Response) -> None:
        self.logger.warning(
            "%s: page %s contained an API token; it was replaced by %s",
            self.where,
            page_of(response.request.url),
            REDACTED,
        )

    def _decode_lenient(self, response: requests.Response, body: bytes) -> Any:
        """What msgspec refuses but is still JSON: invalid UTF-8, lone surrogate escapes."""
        text = body.decode("utf-8", errors="replace")
        if "\ufffd" in text and b"\xef\xbf\xbd" not in response.content:
            self.logger.warning(
                "%s: page %s is not valid UTF-8; undecodable bytes became U+FFFD",
                self.where,
                page_of(response.request.url),
            )
        try:
            return json.loads(text)
        except (ValueError, RecursionError) as exc:
            problem = "nested too deeply" if isinstance(exc, RecursionError) else "not JSON"
            raise MalformedPageError(
                self.describe(response, f"the body is {problem}"), response
            ) from None

    # --- messages --------------------------------------------------------------------
    def _api_message(self, response: requests.Response, limit: int = 300) -> str:
        """The API's own message, or the start of the body, redacted and on one line."""
        payload = json_or_none(response.content)
        if isinstance(payload, dict) and isinstance(payload.get("message"), str):
            text = payload["message"]
        else:
            text = response.content.decode("utf-8", errors="replace")
        # Redacted before it is cut: a token cut in half would no longer be recognised.
        return " ".join(redact(text, self.secrets).split())[:limit]

    def describe(
        self, response: requests.Response, problem: str = "", code: int | None = None
    ) -> str:
        """`GET <path> page <n> for <stream> (bot <id>) returned <status>: <API message>`."""
        status = status_text(response.status_code if code is None else code)
        message = self._api_message(response)
        return (
            f"GET {urlparse(response.url).path} page {page_of(response.request.url)} "
            f"for {self.where} returned {status}"
            + (f": {message}" if message else "")
            + (f" ({problem})" if problem else "")
        )

    def fatal(self, code: int, response: requests.Response) -> ListingError:
        """The error that fails this listing, with what to check."""
        if code in _AUTH_CODES:
            hint = (
                f"The token is missing, invalid or expired (auth_method={self.auth_method}). "
                "Check bot_token, and auth_method: x-bot-token for a token from BotPenguin "
                "support, bearer for a platform access token from the Developers panel."
            )
        elif code == HTTPStatus.BAD_REQUEST:
            hint = "Check bot_id and customer_id (they are in the bot's page URL)."
        elif code == HTTPStatus.NOT_FOUND:
            hint = "Check api_url and bot_id: the API found no listing there."
        else:
            hint = "This is not retried."
        return ListingError(
            f"{self.describe(response, code=code)}. {hint}",
            status=code,
            page=page_number(response.request.url),
        )
