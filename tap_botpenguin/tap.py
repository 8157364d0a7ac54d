"""tap-botpenguin: settings, bots and the stream list."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk import Stream, Tap
from singer_sdk.authenticators import (
    APIAuthenticatorBase,
    APIKeyAuthenticator,
    BearerTokenAuthenticator,
)
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.tap_base import CliTestOptionValue

from tap_botpenguin import streams
from tap_botpenguin.concurrency.workers import Scheduler
from tap_botpenguin.config.checks import api_url_problems, token_problems, trim_pasted_values
from tap_botpenguin.http.throttle import RateLimiter
from tap_botpenguin.listing.ending import PageSizes
from tap_botpenguin.listing.scan import SCAN_STATE_KEY
from tap_botpenguin.records.sanitize import parse_datetime, utc_iso
from tap_botpenguin.report.errors import BotPenguinError
from tap_botpenguin.report.failures import Failures
from tap_botpenguin.report.logs import quiet_metrics, quiet_routine_lines
from tap_botpenguin.report.progress import RunTotals
from tap_botpenguin.report.redaction import RedactingFilter, redact
from tap_botpenguin.streams.sdk import ROUTINE_TO_DEBUG
from tap_botpenguin.streams.settings_schema import CONFIG_JSONSCHEMA

if TYPE_CHECKING:
    import click

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override


@dataclass(frozen=True)
class BotSettings:
    """Everything needed to read one bot: ids, credentials and the token's rate limiter."""

    bot_id: str
    customer_id: str
    token: str = field(repr=False)
    authenticator: APIAuthenticatorBase = field(repr=False)
    limiter: RateLimiter = field(repr=False)


def make_authenticator(auth_method: str, token: str) -> APIAuthenticatorBase:
    """`x-bot-token` (the endpoint page) or `Bearer` + `authtype: Key` (platform token)."""
    if auth_method == "bearer":
        authenticator = BearerTokenAuthenticator(token=token)
        authenticator.auth_headers["authtype"] = "Key"
        return authenticator
    return APIKeyAuthenticator(key="x-bot-token", value=token, location="header")


def _strings(value: Any) -> Iterator[str]:
    """The strings inside a config value, however it is nested."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif value is not None:
        yield str(value)


class TapBotPenguin(Tap):
    """Singer tap for BotPenguin leads and chats."""

    name = "tap-botpenguin"
    # msgspec serializes Singer messages several times faster than the default simplejson.
    message_writer_class = MsgSpecWriter
    #: The window `requests_per_minute` applies to (tests shorten it).
    rate_window_seconds: ClassVar[float] = 60.0
    #: Tokens as configured, before `trim_pasted_values` (redacted like the trimmed ones).
    _pasted_tokens: tuple[str, ...] = ()

    config_jsonschema = CONFIG_JSONSCHEMA

    @override
    def discover_streams(self) -> list[Stream]:
        return [streams.LeadsStream(self), streams.ChatsStream(self)]

    # --- time and what earlier runs learned --------------------------------------------
    def now(self) -> datetime:
        """The current time (tests override it to simulate runs hours apart)."""
        return datetime.now(timezone.utc)

    @cached_property
    def started(self) -> datetime:
        """When this run started: the cap of every bookmark and the start of its scans."""
        return self.now()

    @cached_property
    def started_at(self) -> str:
        """`started` in the records' timestamp format (they compare as strings)."""
        return utc_iso(self.started)

    @cached_property
    def start_date(self) -> str | None:
        """`start_date` in the records' timestamp format (they compare as strings)."""
        moment = parse_datetime(self.config.get("start_date"))
        return utc_iso(moment) if moment else None

    @cached_property
    def page_sizes(self) -> PageSizes:
        """The API's page size, seeded with what earlier runs learned (kept in bot state)."""
        known = [
            partition[SCAN_STATE_KEY]["page_size"]
            for stream in (self.state.get("bookmarks") or {}).values()
            if isinstance(stream, dict)
            for partition in stream.get("partitions") or []
            if isinstance(partition, dict)
            and isinstance(partition.get(SCAN_STATE_KEY), dict)
            and isinstance(partition[SCAN_STATE_KEY].get("page_size"), int)
        ]
        return PageSizes(max(known, default=None))

    # --- settings --------------------------------------------------------------------
    @cached_property
    def secrets(self) -> list[str]:
        """Every token in the config (even a mistyped one), for redaction."""
        tokens: list[Any] = [self.config.get("bot_token"), *self._pasted_tokens]
        tokens += [
            bot.get("bot_token") for bot in self.config.get("bots") or [] if isinstance(bot, dict)
        ]
        return [text for token in tokens for text in _strings(token) if text]

    @cached_property
    def bots(self) -> list[BotSettings]:
        """The bots to read, in config order, with their resolved token and customer."""
        entries = list(self.config.get("bots") or [])
        if self.config.get("bot_id"):
            entries.insert(0, {"bot_id": self.config["bot_id"]})
        limiters: dict[str, RateLimiter] = {}
        resolved = []
        for entry in entries:
            token = entry.get("bot_token") or self.config["bot_token"]
            limiter = limiters.setdefault(
                token, RateLimiter(self.config["requests_per_minute"], self.rate_window_seconds)
            )
            resolved.append(
                BotSettings(
                    bot_id=entry["bot_id"],
                    customer_id=entry.get("customer_id") or self.config["customer_id"],
                    token=token,
                    authenticator=make_authenticator(self.config["auth_method"], token),
                    limiter=limiter,
                )
            )
        return resolved

    @cached_property
    def scheduler(self) -> Scheduler:
        """Which listings worker threads read ahead, token by token (see `concurrency`)."""
        return Scheduler(self)

    @cached_property
    def failures(self) -> Failures:
        """What the run heard from the API, and the listings it set aside (see `failures`)."""
        return Failures([bot.token for bot in self.bots])

    def bot_settings(self, bot_id: str) -> BotSettings:
        """The settings of one configured bot."""
        for bot in self.bots:
            if bot.bot_id == bot_id:
                return bot
        msg = f"bot {bot_id} is in the state but not in the settings"
        raise BotPenguinError(msg)

    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        # The SDK's only config hook: add the rules JSON Schema cannot say clearly, and make
        # sure no message echoes a token (jsonschema quotes offending values).
        self._coerce_env_numbers()
        self._pasted_tokens = trim_pasted_values(self._config)
        errors = super()._validate_config(raise_errors=False) + self._setting_problems()
        errors = [redact(error, self.secrets) for error in errors]
        if errors and raise_errors:
            raise ConfigValidationError("Config validation failed", errors=errors)
        return errors

    def _coerce_env_numbers(self) -> None:
        """Numbers arrive as text from the environment and Meltano (`kind: string`)."""
        for name in ("request_timeout", "full_scan_every_hours"):
            value = self._config.get(name)
            if isinstance(value, str):
                with contextlib.suppress(ValueError):
                    self._config[name] = float(value)

    def _setting_problems(self) -> list[str]:
        config = self.config
        problems = []
        entries = [e for e in config.get("bots") or [] if isinstance(e, dict)]
        if not config.get("bot_id") and not entries:
            problems.append("Set `bot_id` (one bot) or `bots` (several): neither is set.")
        if config.get("bot_id"):
            entries = [{"bot_id": config["bot_id"]}, *entries]
        ids = [e.get("bot_id") for e in entries]
        duplicates = sorted({i for i in ids if ids.count(i) > 1 and isinstance(i, str)})
        if duplicates:
            problems.append(f"`bots`/`bot_id` list bot {', '.join(duplicates)} more than once.")
        if not config.get("bot_token") and any(not e.get("bot_token") for e in entries):
            problems.append(
                "`bot_token` is required (or give every entry of `bots` its own `bot_token`)."
            )
        if not config.get("customer_id") and any(not e.get("customer_id") for e in entries):
            problems.append(
                "`customer_id` is required (or give every entry of `bots` its own `customer_id`)."
            )
        problems += token_problems(config)
        problems += api_url_problems(config.get("api_url"))
        start_date = config.get("start_date")
        if start_date is not None and parse_datetime(start_date) is None:
            problems.append(f"`start_date` must be an ISO 8601 date-time, got {start_date!r}.")
        return problems

    # --- running ---------------------------------------------------------------------
    def __init__(self, **kwargs: Any) -> None:
        # Before the SDK's constructor, which logs one of the routine lines itself.
        quiet_routine_lines(ROUTINE_TO_DEBUG, logging.getLogger("singer_sdk"), self.logger)
        super().__init__(**kwargs)
        #: What every listing of the run did, for its last line.
        self.totals = RunTotals()
        # Defence in depth: whatever a library logs, no handler prints a configured token.
        redacting = RedactingFilter(self.secrets)
        for handler in logging.getLogger().handlers:
            handler.addFilter(redacting)
        quiet_metrics(self.metrics_logger)

    def stream_closed(self, stream: Stream) -> None:
        """Once the last stream closed: the run total, and fail if listings were set aside.

        `sync_all` is final in the SDK; its last act is each stream's `log_sync_costs`.
        """
        if stream is not list(self.streams.values())[-1]:
            return
        self.scheduler.stop()
        self.totals.report(self.logger)
        error = self.failures.error()
        if error is not None:
            raise error

    @override
    @classmethod
    def invoke(cls, *args: Any, **kwargs: Any) -> None:
        """Run the CLI; a failure we understand ends as one readable line and exit code 1."""
        with cls._one_line_errors():
            super().invoke(*args, **kwargs)

    @override
    @classmethod
    def cb_test(cls, ctx: click.Context, param: click.Option, value: str) -> None:
        """`--test` runs before `invoke` (a click callback): the same lines and exit code."""
        if value == CliTestOptionValue.Disabled.value:  # called on every run: not a test
            return
        try:
            with cls._one_line_errors():
                cls._connection_test(ctx, value)
        except ConfigValidationError as exc:  # as the SDK's command reports it for a sync
            for error in exc.errors:
                cls.logger.error("%s", error)
            cls.logger.error("Config validation failed")
            ctx.exit(1)
        finally:
            ctx.close()  # the files click opened for the options (`--catalog`): it stops here

    @classmethod
    def _connection_test(cls, ctx: click.Context, value: str) -> None:
        """The SDK's `cb_test`, and then a failure when listings were set aside.

        A sync says so at its end (`stream_closed`); the SDK's dry run has no such end, and
        its `run_connection_test` is final.
        """
        config = ctx.params.get("config")  # the SDK's parsed `--config` (files and/or ENV)
        tap = cls(
            config=getattr(config, "config", None) or {},
            parse_env_config=bool(getattr(config, "parse_env", False)),
            validate_config=True,
        )
        if value == CliTestOptionValue.Schema.value:
            tap.write_schemas()
        else:
            tap.run_connection_test()
            error = tap.failures.error()
            if error is not None:
                raise error
        ctx.exit()

    @classmethod
    @contextlib.contextmanager
    def _one_line_errors(cls) -> Iterator[None]:
        try:
            yield
        except BotPenguinError as exc:
            for line in str(exc).splitlines():  # one line per listing set aside
                cls.logger.error("%s", line)  # messages are redacted where they are built
            raise SystemExit(1) from None
