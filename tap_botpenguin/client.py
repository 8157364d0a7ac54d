"""The base stream for `GET /inbox/direct/chats`: URL, auth, pagination, errors, retries, throttle.

API quirks this class absorbs (see shared/api/NOTES.md):
- The listing is page-numbered from 1 and ends with an empty `data` array; page size and sort
  order are undocumented, and there is no "updated since" filter.
- Errors may arrive as HTTP statuses *or* as `200` with `{"success": false, "code": ...}`.
- The limit is 100 requests per minute per token; 429 carries `Retry-After`.
"""

from __future__ import annotations

import email.utils
import json
import os
import sys
from collections.abc import Callable, Generator, Iterable
from datetime import datetime, timezone
from functools import cached_property
from http import HTTPStatus
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple
from urllib.parse import parse_qs, urlparse

import msgspec
import requests
from singer_sdk import RESTStream
from singer_sdk.exceptions import RetriableAPIError
from singer_sdk.helpers._util import utc_now
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.pagination import PageNumberPaginator
from singer_sdk.schema.source import SchemaDirectory, StreamSchema
from singer_sdk.singerlib import RecordMessage

from tap_botpenguin import schemas
from tap_botpenguin.errors import REDACTED, BotPenguinError, redact
from tap_botpenguin.naming import snake_case, snake_case_record, snake_case_schema
from tap_botpenguin.progress import Progress
from tap_botpenguin.sanitize import INVALID_FIELDS, RecordSanitizer, parse_datetime, utc_iso

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

if TYPE_CHECKING:
    from backoff.types import Details
    from singer_sdk.helpers.types import Auth, Context, RequestFunc

    from tap_botpenguin.tap import BotSettings, TapBotPenguin

LISTING_PATH = "/inbox/direct/chats"
#: Upper bound for any single wait between attempts, whatever the server says.
MAX_RETRY_WAIT = 600.0
#: Wait after a 429 that names no `Retry-After`, doubled for each further such 429.
DEFAULT_RETRY_AFTER = 5.0
#: Exponential backoff for 5xx, timeouts and broken bodies: 1 s, 2 s, 4 s ... capped.
BACKOFF_BASE = 1.0
BACKOFF_CAP = 60.0

_RETRIABLE_CODES = frozenset({HTTPStatus.TOO_MANY_REQUESTS})
_AUTH_CODES = frozenset({HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN})


def _tap_version() -> str:
    try:
        return version("tap-botpenguin")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


USER_AGENT = f"tap-botpenguin/{_tap_version()}"


class ChatSchema(StreamSchema[str]):
    """The documented schema; with `snake_case_fields`, the same with snake_case names."""

    def __init__(self) -> None:
        super().__init__(SchemaDirectory(schemas), key="chat")
        self._snake: dict[int, Any] = {}

    def api_schema(self) -> dict[str, Any]:
        """The schema with the API's own field names."""
        return dict(self.schema_source.get_schema(self.key or "chat"))

    @override
    def get_stream_schema(self, stream: Any, stream_class: Any) -> Any:
        schema = super().get_stream_schema(stream, stream_class)
        if not stream.config.get("snake_case_fields"):
            return schema
        if id(schema) not in self._snake:  # the source caches `schema`: convert it once
            self._snake[id(schema)] = snake_case_schema(schema)
        return self._snake[id(schema)]


CHAT_SCHEMA = ChatSchema()


class Page(NamedTuple):
    """A decoded page: its records, and whether their strings need scrubbing (NUL, surrogates)."""

    records: list[dict[str, Any]]
    scrub_strings: bool


class MalformedPageError(RetriableAPIError):
    """A 2xx response whose body is not the documented envelope (retried, then fatal)."""


def _is_retriable(code: int) -> bool:
    return code in _RETRIABLE_CODES or code >= HTTPStatus.INTERNAL_SERVER_ERROR


#: What msgspec raises for bodies it cannot decode (invalid UTF-8 and deep nesting included).
_UNPARSABLE = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


def _json_or_none(body: bytes) -> Any:
    """The decoded body, or None: for error messages, which must never fail themselves."""
    try:
        return msgspec.json.decode(body)
    except _UNPARSABLE:
        return None


def _status_text(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return str(code)


def _page_of(url: str | None) -> str:
    return parse_qs(urlparse(url or "").query).get("page", ["?"])[0]


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


class BotPenguinStream(RESTStream[int]):
    """One `type` of the chats listing, read page by page for each configured bot."""

    path = LISTING_PATH
    primary_keys: ClassVar[list[str]] = ["_id"]
    replication_key = "updatedAt"
    # The API documents no sort order: the SDK then only commits a bookmark when a bot's
    # listing is complete, capped at the sync's start time (the "signpost").
    is_sorted = False
    schema = CHAT_SCHEMA
    # Records are decoded from JSON, so they already hold JSON types; the SDK's recursive
    # conformance pass cost ~45% of a sync's CPU (cProfile, 51k records) for nothing.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    #: The API's `type` query value for this stream.
    inbox_type: ClassVar[str]

    _tap: TapBotPenguin

    def __init__(self, tap: TapBotPenguin) -> None:
        super().__init__(tap)
        self._snake_case = bool(self.config.get("snake_case_fields"))
        # The SDK copies partition keys into records, so they follow the naming too.
        self._bot_key = snake_case("botId") if self._snake_case else "botId"
        if self._snake_case:
            self.replication_key = snake_case(self.replication_key)
        self._requests_session = self._session_for(self.url_base)
        self._bot: BotSettings | None = None
        self._progress: Progress | None = None
        self._decoded: tuple[requests.Response, Page] | None = None
        self._previous_page_ids: list[Any] | None = None
        self._sanitizer = RecordSanitizer(CHAT_SCHEMA.api_schema())

    @staticmethod
    def _session_for(url: str) -> requests.Session:
        """A session that reads proxy and CA settings from the environment once, not per request.

        With `trust_env`, requests rescans the environment three times per request: 10% of a
        51k-record sync (1.17 s -> 1.05 s). Every request goes to one host, so resolving
        HTTP(S)_PROXY / NO_PROXY and REQUESTS_CA_BUNDLE up front changes nothing else.
        """
        session = requests.Session()
        session.trust_env = False
        session.proxies = requests.utils.get_environ_proxies(url)
        session.verify = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )
        return session

    # --- request shape ---------------------------------------------------------------
    @override
    @property
    def url_base(self) -> str:
        return str(self.config["api_url"]).rstrip("/")

    @override
    @property
    def http_headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json"}

    @override
    @cached_property
    def user_agent(self) -> str:
        return USER_AGENT

    @override
    @property
    def timeout(self) -> float:  # type: ignore[override]
        return float(self.config["request_timeout"])

    @property
    def bot(self) -> BotSettings:
        """The bot whose listing is being read (set per partition in `get_records`)."""
        if self._bot is None:
            msg = "no bot selected: records are read per bot partition"
            raise RuntimeError(msg)
        return self._bot

    @override
    @property
    def authenticator(self) -> Auth:
        return self.bot.authenticator

    @override
    @property
    def partitions(self) -> list[dict[str, Any]]:
        # State is kept per bot; tokens and customer ids are looked up, never stored in state.
        return [{self._bot_key: bot.bot_id} for bot in self._tap.bots]

    @override
    def get_new_paginator(self) -> PageNumberPaginator:
        # Pages 1, 2, ...; the SDK stops at the first page with no records.
        return PageNumberPaginator(start_value=1)

    @override
    def get_url_params(
        self, context: Context | None, next_page_token: int | None
    ) -> dict[str, Any]:
        return {
            "botId": self.bot.bot_id,
            "customerId": self.bot.customer_id,
            "page": next_page_token or 1,
            "type": self.inbox_type,
        }

    # --- responses -------------------------------------------------------------------
    @override
    def validate_response(self, response: requests.Response) -> None:
        """Classify by HTTP status, then by the envelope; decode the body exactly once."""
        status = response.status_code
        if _is_retriable(status):
            raise RetriableAPIError(self.response_error_message(response), response)
        if status >= HTTPStatus.BAD_REQUEST:
            raise self._fatal(status, response)
        self._decoded = (response, self._decode_page(response))

    def _decode_page(self, response: requests.Response) -> Page:
        """The envelope's `data`, after the checks of the envelope; raises on anything else."""
        body = self._without_secrets(response)
        scrub = b"\\u0000" in body
        try:
            payload = msgspec.json.decode(body)
        except _UNPARSABLE:
            payload = self._decode_lenient(response)
            scrub = True
        if not isinstance(payload, dict):
            raise MalformedPageError(
                self._describe(response, "the body is not a JSON object"), response
            )
        if payload.get("success") in (False, "false"):
            code = payload.get("code")
            code = code if isinstance(code, int) else HTTPStatus.INTERNAL_SERVER_ERROR
            if _is_retriable(code):
                raise RetriableAPIError(self.response_error_message(response, code), response)
            raise self._fatal(code, response)
        data = payload.get("data")
        if not isinstance(data, list):
            kind = "null" if data is None else type(data).__name__
            raise MalformedPageError(
                self._describe(response, f"`data` is {kind}, not the documented array"), response
            )
        if not all(isinstance(record, dict) for record in data):
            raise MalformedPageError(
                self._describe(response, "`data` holds non-object items"), response
            )
        return Page(data, scrub)

    def _without_secrets(self, response: requests.Response) -> bytes:
        """The body, with any configured token replaced: a token never reaches a record."""
        body = response.content
        for secret in self._tap.secrets:
            if secret.encode() in body:
                body = body.replace(secret.encode(), REDACTED.encode())
                self.logger.warning(
                    "%s: page %s contained an API token; it was replaced by %s",
                    self._where(),
                    _page_of(response.request.url),
                    REDACTED,
                )
        return body

    def _decode_lenient(self, response: requests.Response) -> Any:
        """What msgspec refuses but is still JSON: invalid UTF-8, lone surrogate escapes."""
        text = self._without_secrets(response).decode("utf-8", errors="replace")
        if "\ufffd" in text and b"\xef\xbf\xbd" not in response.content:
            self.logger.warning(
                "%s: page %s is not valid UTF-8; undecodable bytes became U+FFFD",
                self._where(),
                _page_of(response.request.url),
            )
        try:
            return json.loads(text)
        except (ValueError, RecursionError) as exc:
            problem = "nested too deeply" if isinstance(exc, RecursionError) else "not JSON"
            raise MalformedPageError(
                self._describe(response, f"the body is {problem}"), response
            ) from None

    @override
    def parse_response(self, response: requests.Response) -> Iterable[dict[str, Any]]:
        if self._decoded is not None and self._decoded[0] is response:
            page = self._decoded[1]
        else:  # not reached through `_request`; decode here
            page = self._decode_page(response)
        self._decoded = None
        data = page.records
        self._check_page_advanced(response, data)
        repaired = self._sanitizer.sanitize_page(data, scrub_strings=page.scrub_strings)
        if repaired:
            self.logger.warning(
                "%s page %s: %d record(s) did not match the documented types and were "
                "repaired (values that could not be converted are kept in `%s`)",
                self._where(),
                _page_of(response.request.url),
                repaired,
                INVALID_FIELDS,
            )
        if self._progress is not None:
            self._progress.page_read(len(data))
        return data

    def _check_page_advanced(self, response: requests.Response, data: list[dict[str, Any]]) -> None:
        """Stop instead of looping forever when the API ignores `page`; count page overlaps.

        A record on two consecutive pages means the list shifted down while it was read
        (new or updated conversations moving to the top): harmless, the copies are upserted.
        """
        ids = [record.get("_id") for record in data]
        if self._previous_page_ids and self._progress is not None:
            self._progress.overlaps += len(set(ids).intersection(self._previous_page_ids))
        if ids and ids == self._previous_page_ids:
            msg = (
                f"{self._where()}: page {_page_of(response.request.url)} repeats the previous "
                "page exactly, so the API is ignoring `page`; stopping instead of looping. "
                "Check `api_url` points at the BotPenguin API."
            )
            raise BotPenguinError(msg)
        self._previous_page_ids = ids

    # --- errors ----------------------------------------------------------------------
    def _where(self) -> str:
        return f"{self.name} (bot {self.bot.bot_id})"

    def _api_message(self, response: requests.Response, limit: int = 300) -> str:
        """The API's own message, or the start of the body, redacted and on one line."""
        payload = _json_or_none(response.content)
        if isinstance(payload, dict) and isinstance(payload.get("message"), str):
            text = payload["message"]
        else:
            text = response.content[:limit].decode("utf-8", errors="replace")
        text = " ".join(text.split())[:limit]
        return redact(text, self._tap.secrets)

    def _describe(
        self, response: requests.Response, problem: str = "", code: int | None = None
    ) -> str:
        """`GET <path> page <n> for <stream> (bot <id>) returned <status>: <API message>`."""
        status = _status_text(response.status_code if code is None else code)
        message = self._api_message(response)
        return (
            f"GET {urlparse(response.url).path} page {_page_of(response.request.url)} "
            f"for {self._where()} returned {status}"
            + (f": {message}" if message else "")
            + (f" ({problem})" if problem else "")
        )

    @override
    def response_error_message(self, response: requests.Response, code: int | None = None) -> str:
        """One line with path, page, status and the API's message; never headers or tokens."""
        return self._describe(response, code=code)

    def _fatal(self, code: int, response: requests.Response) -> BotPenguinError:
        message = self.response_error_message(response, code)
        if code in _AUTH_CODES:
            method = self.config["auth_method"]
            hint = (
                f"The token is missing, invalid or expired (auth_method={method}). Check "
                "bot_token, and auth_method: x-bot-token for a token from BotPenguin support, "
                "bearer for a platform access token from the Developers panel."
            )
        elif code == HTTPStatus.BAD_REQUEST:
            hint = "Check bot_id and customer_id (they are in the bot's page URL)."
        else:
            hint = "This is not retried."
        return BotPenguinError(f"{message}. {hint}")

    # --- retries and throttling ------------------------------------------------------
    @override
    def request_decorator(self, func: RequestFunc) -> RequestFunc:
        """Throttle every attempt, retry as the SDK does, and fail in one readable line."""

        def throttled(
            prepared: requests.PreparedRequest, context: Context | None
        ) -> requests.Response:
            with self.bot.limiter.slot(on_wait=self._waiting_for_rate_limit):
                return func(prepared, context)

        retrying: Callable[..., requests.Response] = super().request_decorator(throttled)

        def run(prepared: requests.PreparedRequest, context: Context | None) -> requests.Response:
            try:
                return retrying(prepared, context)
            except BotPenguinError:
                raise
            except (RetriableAPIError, requests.RequestException, ConnectionError) as exc:
                raise BotPenguinError(self._gave_up(exc, prepared)) from exc

        return run

    def _gave_up(self, exc: BaseException, prepared: requests.PreparedRequest) -> str:
        tries = self.backoff_max_tries()
        if isinstance(exc, RetriableAPIError):
            reason = str(exc)
        else:
            reason = (
                f"GET {urlparse(prepared.url or '').path!s} page {_page_of(prepared.url)} for "
                f"{self._where()} failed: {type(exc).__name__}"
            )
            if isinstance(exc, requests.Timeout):
                reason += f" (no answer within request_timeout={self.timeout:g} s)"
        return redact(
            f"{reason}; gave up after {tries} attempts (max_retries={tries}).", self._tap.secrets
        )

    def _waiting_for_rate_limit(self, seconds: float) -> None:
        if self._progress is not None:
            limit = self.bot.limiter.limit
            self._progress.waiting(seconds, f"the rate limit (requests_per_minute={limit})")

    @override
    def backoff_max_tries(self) -> int:
        return int(self.config["max_retries"])

    @override
    def backoff_wait_generator(self) -> Generator[float, Any, None]:
        """Honour `Retry-After` on 429; exponential otherwise (the SDK adds jitter)."""
        attempt = 0
        throttled = 0
        exc = yield  # type: ignore[misc]  # backoff primes the generator with None
        while True:
            attempt += 1
            response = getattr(exc, "response", None)
            if response is not None and self._is_rate_limited(response):
                throttled += 1
                wait = retry_after_seconds(response.headers.get("Retry-After"))
                if wait is None:
                    wait = min(DEFAULT_RETRY_AFTER * 2 ** (throttled - 1), BACKOFF_CAP)
            else:
                wait = min(BACKOFF_BASE * 2 ** (attempt - 1), BACKOFF_CAP)
            exc = yield wait

    @staticmethod
    def _is_rate_limited(response: requests.Response) -> bool:
        if response.status_code == HTTPStatus.TOO_MANY_REQUESTS:
            return True
        payload = _json_or_none(response.content)
        return isinstance(payload, dict) and payload.get("code") == HTTPStatus.TOO_MANY_REQUESTS

    @override
    def backoff_handler(self, details: Details) -> None:
        exc = details.get("exception")
        response = getattr(exc, "response", None)
        if response is not None:
            what = self.response_error_message(response)
        else:
            what = f"{self._where()}: {type(exc).__name__}"
        self.logger.warning(
            "%s; retrying in %.1f s (attempt %d of %d)",
            redact(what, self._tap.secrets),
            details.get("wait", 0.0),
            details.get("tries", 0),
            self.backoff_max_tries(),
        )

    # --- records ---------------------------------------------------------------------
    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Read one bot's listing; keep records updated at or after the bookmark/start_date."""
        assert context is not None, "streams are always partitioned by bot"
        self._bot = self._tap.bot_settings(context[self._bot_key])
        self._previous_page_ids = None
        self._progress = Progress(self.logger, self.name, self.bot.bot_id, self.bot.limiter)
        # The SDK writes the signpost for the stream, not per partition: without it an
        # unsorted partition's bookmark could jump past records changed during the run.
        signpost = self.get_replication_key_signpost(context)
        self.state_manager.write_replication_key_signpost(signpost, context=context)
        since = self.get_starting_timestamp(context)
        for record in super().get_records(context):
            if since is not None:
                updated = parse_datetime(record.get("updatedAt"))
                if updated is not None and updated < since:
                    continue
            self._progress.records_emitted += 1
            yield record
        self._progress.finish()

    @cached_property
    def _selects_every_property(self) -> bool:
        return all(self.mask.values())

    @override
    def _generate_record_messages(
        self, record: dict[str, Any]
    ) -> Generator[RecordMessage, None, None]:
        """The SDK's method minus its per-record selection walk, when nothing is deselected.

        `pop_deselected_record_properties` visits every nested key of every record; with all
        properties selected it removes nothing, yet took 29% of a 51k-record sync (1.82 s ->
        1.30 s). Type conformance is off (see TYPE_CONFORMANCE_LEVEL), so the rest is the
        SDK's own code. Any deselection in the catalog takes the SDK's path unchanged.
        """
        if not self._selects_every_property:
            yield from super()._generate_record_messages(record)
            return
        for stream_map in self.stream_maps:
            mapped = stream_map.transform(record)
            if mapped is not None:
                yield RecordMessage(
                    stream=stream_map.stream_alias,
                    record=mapped,
                    version=self._stream_version,
                    time_extracted=utc_now(),
                )

    @override
    def post_process(self, row: dict[str, Any], context: Context | None = None) -> dict[str, Any]:
        record_id = row.get("_id")  # the sanitizer already turned numeric ids into strings
        if not isinstance(record_id, str) or not record_id:
            msg = (
                f"{self._where()}: a record has no usable `_id` ({record_id!r}), so it cannot be "
                "loaded or deduplicated; stopping rather than dropping it."
            )
            raise BotPenguinError(msg)
        row["botId"] = self.bot.bot_id
        row["customerId"] = self.bot.customer_id
        updated_at = row.setdefault("updatedAt", None)  # the SDK's bookmark code indexes it
        if isinstance(updated_at, str) and not updated_at.endswith("Z"):
            # Bookmarks compare as strings: keep the replication key in one UTC format.
            moment = parse_datetime(updated_at)
            row["updatedAt"] = utc_iso(moment) if moment else updated_at
        if self._snake_case:
            return snake_case_record(row)  # type: ignore[no-any-return]
        return row
