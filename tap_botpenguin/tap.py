"""tap-botpenguin: the Singer tap, its streams, and the run they share.

The top of the house: it turns the SDK's config into `Settings` (`config.settings`), builds
the run (`run.context.Run`) and gives both to the streams' constructors. Nothing below asks
the tap for anything.
"""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import os
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.singerlib import RecordMessage
from singer_sdk.tap_base import CliTestOptionValue

from tap_botpenguin.concurrency.workers import Job
from tap_botpenguin.config.checks import trim_pasted_values
from tap_botpenguin.config.settings import Settings, secrets_of, setting_problems
from tap_botpenguin.config.state import checked_state, read_state
from tap_botpenguin.listing.ending import PageSizes
from tap_botpenguin.listing.history import SCAN_STATE_KEY
from tap_botpenguin.report.errors import BotPenguinError, TargetStoppedError
from tap_botpenguin.report.logs import configures_metrics, quiet_metrics, quiet_routine_lines
from tap_botpenguin.report.redaction import RedactingFilter, redact
from tap_botpenguin.run.context import Run, known_page_size
from tap_botpenguin.streams import ChatsStream, LeadsStream
from tap_botpenguin.streams.listing_stream import BotPenguinStream
from tap_botpenguin.streams.sdk import ROUTINE_TO_DEBUG, SdkTap, cli_config
from tap_botpenguin.streams.settings_schema import CONFIG_JSONSCHEMA

if TYPE_CHECKING:
    import click
    from singer_sdk import Stream
    from singer_sdk.singerlib import Message

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

#: Settings that arrive as text from the environment and Meltano (`kind: string`).
_NUMBERS_AS_TEXT = ("request_timeout", "full_scan_every_hours")


class TargetWriter(MsgSpecWriter):
    """Singer messages on stdout; a target that stopped reading ends the run in one line.

    msgspec serializes them several times faster than the SDK's default simplejson. RECORD
    messages go out as the output buffer fills rather than one system call each (the SDK's
    writer flushes every message: a fifth of the tap's CPU time); every other message (STATE
    above all) flushes what came before it, so no STATE reaches the target ahead of its
    records.
    """

    def write_message(self, message: Message) -> None:
        """Write one message; a broken pipe is the target gone, not a failure of the tap."""
        try:
            sys.stdout.buffer.write(self.format_message(message))
            if not isinstance(message, RecordMessage):
                sys.stdout.flush()
        except BrokenPipeError:
            # Later writes (the SDK's, Python's flush at exit) go nowhere, without a word.
            with contextlib.suppress(OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                os.close(devnull)
            raise TargetStoppedError from None


class TapBotPenguin(SdkTap):
    """Singer tap for BotPenguin leads and chats."""

    name = "tap-botpenguin"
    message_writer_class = TargetWriter
    #: The window `requests_per_minute` applies to (tests shorten it).
    rate_window_seconds: ClassVar[float] = 60.0
    #: Tokens as configured, before `trim_pasted_values` (redacted like the trimmed ones).
    _pasted_tokens: tuple[str, ...] = ()

    config_jsonschema = CONFIG_JSONSCHEMA

    def __init__(self, **kwargs: Any) -> None:
        # Before the SDK's constructor, which logs one of the routine lines itself.
        quiet_routine_lines(ROUTINE_TO_DEBUG, logging.getLogger("singer_sdk"), self.logger)
        super().__init__(**kwargs)
        # Defence in depth: whatever a library logs, no handler prints a configured token.
        redacting = RedactingFilter(list(self.settings.secrets))
        for handler in logging.getLogger().handlers:
            handler.addFilter(redacting)
        # The SDK's documented logging configuration (a dictConfig file) is the user's say.
        configured = configures_metrics(os.environ.get("SINGER_SDK_LOG_CONFIG"))
        quiet_metrics(self.metrics_logger, user_configured=configured)

    def now(self) -> datetime:
        """The current time (tests override it to simulate runs hours apart)."""
        return datetime.now(timezone.utc)

    # --- settings ---------------------------------------------------------------------
    @override
    def prepare_config(self, config: dict[str, Any]) -> None:
        # An empty value in meltano.yml or the environment arrives as null: the default.
        defaults = self.config_jsonschema["properties"]
        for name in [key for key, value in config.items() if value is None]:
            if "default" in defaults.get(name, {}):
                del config[name]
        for name in _NUMBERS_AS_TEXT:
            value = config.get(name)
            if isinstance(value, str):
                with contextlib.suppress(ValueError):
                    config[name] = float(value)
        self._pasted_tokens = trim_pasted_values(config)

    @override
    def config_problems(self) -> list[str]:
        return setting_problems(self.config)

    @override
    def redact(self, text: str) -> str:
        return redact(text, list(secrets_of(self.config, self._pasted_tokens)))

    @cached_property
    def settings(self) -> Settings:
        """The run's settings as typed values (from the config as validated)."""
        return Settings.from_config(self.config, secrets_of(self.config, self._pasted_tokens))

    @cached_property
    def run(self) -> Run:
        """What this run's listings share: its start, limiters, workers, failures, totals."""
        return Run(
            settings=self.settings,
            now=self.now,
            rate_window=self.rate_window_seconds,
            page_sizes=PageSizes(),
        )

    @override
    def load_state(self, state: dict[str, Any]) -> None:
        """The SDK loads the state after discovery: checked here, the run's page size seeded.

        Parts of the wrong shape are dropped with a warning each (`config.state`).
        """
        state = checked_state(state, lambda problem: self.logger.warning("state: %s", problem))
        super().load_state(state)
        known = known_page_size(self.state, SCAN_STATE_KEY)
        if known is not None:
            self.run.page_sizes.seed(known)

    # --- streams ----------------------------------------------------------------------
    @override
    def discover_streams(self) -> list[Stream]:
        return [
            stream_class(self, self.run, plan_all=self._plan_every_listing, on_synced=self._synced)
            for stream_class in (LeadsStream, ChatsStream)
        ]

    def _listing_streams(self) -> list[BotPenguinStream]:
        return [s for s in self.streams.values() if isinstance(s, BotPenguinStream)]

    def _plan_every_listing(self) -> list[Job]:
        """Every selected listing of the run, planned from the state as stored (workers)."""
        return [
            job
            for stream in self._listing_streams()
            if stream.selected
            for job in stream.plan_jobs()
        ]

    def _synced(self, stream: BotPenguinStream) -> None:
        """Once the last stream is synced: the run total; fail if listings were set aside.

        `sync_all` is final in the SDK; its last act is each stream's `log_sync_costs`.
        """
        if stream is not self._listing_streams()[-1]:
            return
        run = self.run
        run.scheduler.stop()
        run.totals.report(self.logger)
        error = run.failures.error()
        if error is not None:
            raise error

    # --- the command line -------------------------------------------------------------
    @override
    @classmethod
    def invoke(cls, *args: Any, **kwargs: Any) -> None:
        """Run the CLI; a failure we understand ends as one readable line and exit code 1.

        `--state` is read here first: a file that is no JSON object stops the run in one line
        (`config.state`), before the SDK would fail on it with a traceback.
        """
        # What the imports made lives as long as the process: the collector need not walk
        # it again and again while records come and go (~5% of a sync's CPU).
        gc.freeze()
        with cls._one_line_errors():
            state = kwargs.get("state")
            if state is not None:
                text = state.read()
                read_state(text, getattr(state, "name", "--state"))
                kwargs["state"] = io.StringIO(text)
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

        A sync says so at its end (`_synced`); the SDK's dry run has no such end, and its
        `run_connection_test` is final.
        """
        config, parse_env = cli_config(ctx.params)
        tap = cls(config=config, parse_env_config=parse_env, validate_config=True)
        if value == CliTestOptionValue.Schema.value:
            tap.write_schemas()
        else:
            tap.run_connection_test()
            error = tap.run.failures.error()
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
