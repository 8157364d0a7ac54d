"""Every private name and undocumented behaviour of singer-sdk the tap relies on, in one place.

Each use says why it is needed and was checked against singer-sdk 0.54.9 and 0.55.0b7. An
upgrade starts here: when one breaks, the rest of the tap does not know about it.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from datetime import datetime, timezone
from functools import cached_property
from types import FrameType
from typing import TYPE_CHECKING, Any

from singer_sdk import Stream, Tap, metrics
from singer_sdk.batch import Batcher
from singer_sdk.exceptions import (
    AbortedSyncExceptionBase,
    ConfigValidationError,
    MaxRecordsLimitException,
)
from singer_sdk.helpers._batch import BatchConfig, SDKBatchMessage
from singer_sdk.helpers._catalog import get_selected_schema
from singer_sdk.singerlib import RecordMessage

from tap_botpenguin.report.errors import BotPenguinError
from tap_botpenguin.report.logs import RoutineToDebug

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

# singer_sdk.helpers._state.PROGRESS_MARKERS (0.54.9, 0.55.0b7): where an unsorted stream's
# new bookmark waits until its partition is finalized. Not exported; its value is stable.
PROGRESS_MARKERS = "progress_markers"


def keep_bookmark(partition: dict[str, Any]) -> None:
    """Let the SDK commit the previous bookmark, not the one this read would advance to.

    An unsorted stream's new bookmark waits in the SDK's progress markers until the
    partition is finalized; without them the partition keeps its previous one.
    """
    markers = partition.get(PROGRESS_MARKERS)
    if isinstance(markers, dict):
        markers.pop("replication_key", None)
        markers.pop("replication_key_value", None)


def _explained(error: BaseException | None) -> bool:
    """Whether a sync failure the SDK logs is no news: --test's stop, or one the tap explains.

    `--test` stops each stream by raising `AbortedSyncExceptionBase` caused by
    `MaxRecordsLimitException` (public exceptions; the chaining is undocumented).
    """
    dry_run_stop = isinstance(error, AbortedSyncExceptionBase) and isinstance(
        error.__cause__, MaxRecordsLimitException
    )
    return dry_run_stop or isinstance(error, BotPenguinError)


#: The SDK's routine lines as DEBUG lines (see `report.logs`).
ROUTINE_TO_DEBUG = RoutineToDebug(_explained)


class _PendingBatches:
    """Records mapped for BATCH files, per stream alias, not yet written (main thread)."""

    def __init__(self, config: BatchConfig, counter: metrics.Counter) -> None:
        self.config = config
        self.counter = counter
        self.rows: dict[str, list[dict[str, Any]]] = {}
        #: Records taken from the stream since the last files were written.
        self.taken = 0

    def add(self, stream: str, record: Mapping[str, Any]) -> None:
        """A mapped record for `stream`'s next file (typed a Mapping from singer-sdk 0.55)."""
        row = record if isinstance(record, dict) else dict(record)
        self.rows.setdefault(stream, []).append(row)

    @property
    def full(self) -> bool:
        return self.taken >= self.config.batch_size


class SdkStream(Stream):
    """The SDK stream hooks the tap's streams need beyond the public API."""

    #: Called once the SDK has synced this stream (`log_sync_costs`, see below).
    on_synced: Callable[[], None] | None = None
    _base_schema: dict[str, Any] | None = None
    #: With `batch_config`, the records of the files not yet written.
    _batches: _PendingBatches | None = None
    #: Least seconds between two STATE messages written as listings end (the first always is).
    state_every_seconds: float = 15.0
    _state_written_at: float | None = None

    #: The greatest replication-key value handed to the SDK in the partition being synced,
    #: and that partition's context (`_increment_stream_state`).
    _greatest: str | None = None
    _greatest_in: object = None

    @override
    def _increment_stream_state(
        self, latest_record: dict[str, Any], *, context: Context | None = None
    ) -> None:
        """The SDK's bookmark bookkeeping, only for a record that can move the bookmark.

        For an unsorted stream the SDK keeps the greatest replication-key value in the
        partition's progress markers (`singer_sdk.helpers._state.increment_state`, 0.54.9 and
        0.55.0b7, called per record by `_sync_records`): a record whose value is not greater
        than one it already took changes nothing, yet its state lookups cost about a fifth of
        the tap's CPU per record. Records without a text value take the SDK's path as before.
        """
        value = latest_record.get(self.replication_key or "")
        if type(value) is str and context is self._greatest_in:
            greatest = self._greatest
            if greatest is not None and value <= greatest:
                return
        super()._increment_stream_state(latest_record, context=context)
        if type(value) is str:
            if context is not self._greatest_in:
                self._greatest, self._greatest_in = None, context
            if self._greatest is None or value > self._greatest:
                self._greatest = value

    @override
    def _process_record(
        self,
        record: dict[str, Any],
        child_context: Context | None = None,
        partition_context: Context | None = None,
    ) -> None:
        """The SDK's method (0.54.9, 0.55.0b7) for a stream without child streams.

        It copies the partition's keys into the record (the tap's `post_process` already
        did) and syncs child streams, of which the tap's streams have none; a few
        microseconds a record of generator and mapper calls for nothing.
        """
        if self.child_streams:
            super()._process_record(record, child_context, partition_context)
            return
        for key, value in (partition_context or {}).items():
            record.setdefault(key, value)

    @cached_property
    def selects_every_property(self) -> bool:
        """Whether every property is selected: the per-record selection walk can be skipped.

        Asked once records flow, after the SDK applied the catalog (not in the constructor).
        """
        return all(self.mask.values())

    @property
    def table_version(self) -> int | None:
        """The ACTIVATE_VERSION version of this run's records (`Stream._stream_version`)."""
        return self._stream_version

    @table_version.setter
    def table_version(self, version: int) -> None:
        # Read by the SDK's RECORD messages (`version`), so it is set on the attribute.
        self._stream_version = version

    def activate_table_version(self) -> None:
        """ACTIVATE_VERSION now: after the last record, where the SDK would send it first."""
        assert self._stream_version is not None
        self._write_activate_version_message(self._stream_version)

    def schema_to_declare(self) -> dict[str, Any]:
        """Properties to add to the catalog's schema in SCHEMA messages (the catalog's win)."""
        return {}

    def write_schema(self) -> None:
        """A SCHEMA message now, with `schema_to_declare` (mid-stream: a field was learned)."""
        self._write_schema_message()

    @override
    def _write_schema_message(self) -> None:
        """The SDK's SCHEMA message, with `schema_to_declare`'s properties added.

        `_write_schema_message` is the SDK's only way to send SCHEMA (at the stream's start,
        and here mid-stream); the stream maps (`_stream_maps`, and the tap's `mapper` reached
        through `Stream._tap`) are rebuilt from the new schema so aliases and flattening
        follow. The base is the catalog's schema minus what it deselects, as the SDK
        registers it (`get_selected_schema`), not the first map's `raw_schema`: a map removing
        a property removes it from that dict too, and a copy of the stream
        (`{"leads_copy": {"__source__": "leads"}}`) then lost the column.
        """
        declared = self.schema_to_declare()
        if declared:
            if self._base_schema is None:
                self._base_schema = get_selected_schema(self.name, self.effective_schema, self.mask)
            base = self._base_schema
            properties = dict(base.get("properties", {}))
            for key, value in declared.items():
                properties.setdefault(key, value)
            self._tap.mapper.register_raw_stream_schema(
                self.name, {**base, "properties": properties}, self.primary_keys
            )
            self._stream_maps = self._tap.mapper.stream_maps[self.name]
        super()._write_schema_message()

    def record_written(self) -> None:
        """A RECORD message of this stream is written (after the stream maps)."""

    @override
    def _generate_record_messages(
        self, record: dict[str, Any]
    ) -> Generator[RecordMessage, None, None]:
        """The SDK's RECORD messages of a record, each told to `record_written`.

        The SDK writes every message this yields (`Stream._write_record_message`), so the
        count is what was written: a `__filter__` map yields none, an alias one more.
        """
        for message in self._record_messages(record):
            self.record_written()
            yield message

    def _record_messages(self, record: dict[str, Any]) -> Iterator[RecordMessage]:
        """The SDK's method minus its per-record selection walk, when nothing is deselected.

        `pop_deselected_record_properties` visits every nested key of every record; with all
        properties selected it removes nothing, yet took 29% of a 51k-record sync (1.82 s ->
        1.30 s). Type conformance is off (TYPE_CONFORMANCE_LEVEL), so the rest is the SDK's
        own code. Any deselection in the catalog takes the SDK's path unchanged.
        """
        if not self.selects_every_property:
            yield from super()._generate_record_messages(record)
            return
        for stream_map in self.stream_maps:
            mapped = stream_map.transform(record)
            if mapped is not None:
                yield RecordMessage(
                    stream=stream_map.stream_alias,
                    record=mapped,
                    version=self._stream_version,
                    time_extracted=datetime.now(timezone.utc),
                )

    @override
    def _finalize_state(self, state: dict[str, Any] | None = None) -> None:
        """The SDK's finalize, then a STATE message once a bot's listing is done (throttled).

        The SDK (0.54.9: `_sync_records` calls `_finalize_state` after each partition) writes
        STATE only at the end of a stream. A target stopped together with the tap (Meltano
        4.4 sends SIGTERM to both) never reads the tap's last STATE; it can only hand Meltano
        one it already holds, so each finished listing's bookmark is sent at once, at most
        every `state_every_seconds` (each STATE holds every bot's state: thousands of bots
        would otherwise write it thousands of times).
        """
        super()._finalize_state(state)
        now = time.monotonic()
        last = self._state_written_at
        if last is None or now - last >= self.state_every_seconds:
            self._state_written_at = now
            self._write_state_message()

    @override
    def _sync_batches(self, batch_config: BatchConfig, context: Context | None = None) -> None:
        """BATCH files holding what RECORD messages would: stream maps and selection applied.

        The SDK's `_sync_batches` (0.54.9, 0.55.0b7) writes the records as `post_process`
        leaves them, before the stream maps and the catalog's selection, and sends every
        alias the same files (meltano/sdk#1117): a map removing a column (PII) or a
        `__filter__` reached the files, and the warehouse. Here each record goes through
        `_generate_record_messages`, as for RECORD messages, into files per alias; a STATE
        message follows each round of files, as in the SDK. Private names used, the same on
        both versions: `_sync_batches` (called by the final `sync` when `get_batch_config`
        gives a config), `_sync_records(write_messages=False)`, `SDKBatchMessage`,
        `_write_state_message` and `state_manager.is_flushed`. 0.55's Arrow path
        (`get_record_batches`) is left out: this tap has no Arrow data.
        """
        with self.get_batch_counter() as counter:
            self._batches = _PendingBatches(batch_config, counter)
            try:
                for record in self._sync_records(context, write_messages=False):
                    self._batches.taken += 1
                    for message in self._generate_record_messages(record):
                        self._batches.add(message.stream, message.record)
                    if self._batches.full:
                        self.write_batches()
                self.write_batches()
            finally:
                self._batches = None

    def write_batches(self) -> None:
        """With `batch_config`: the records taken so far into files, BATCH messages, STATE.

        Also called before a partition's bookmark moves, so a STATE message (the SDK's last
        one, on SIGTERM) never covers records still waiting for their file.
        """
        batches = self._batches
        if batches is None or not batches.taken:
            return
        for alias, rows in batches.rows.items():
            batcher = Batcher(self.tap_name, alias, batches.config)
            for manifest in batcher.get_batches(iter(rows)):
                batches.counter.increment()
                message = SDKBatchMessage(
                    stream=alias, encoding=batches.config.encoding, manifest=manifest
                )
                self._tap.write_message(message)
        batches.rows, batches.taken = {}, 0
        # As the SDK's `_write_batch_message` does: the state has news to write.
        self.state_manager.is_flushed = False
        self._write_state_message()

    @override
    def log_sync_costs(self) -> None:
        """The SDK's last call for each stream at the end of `sync_all` (which is final).

        The tap's end-of-run work (run total, failing for listings set aside) hangs here.
        """
        super().log_sync_costs()
        if self.on_synced is not None:
            self.on_synced()


class SdkTap(Tap):
    """The SDK tap hooks the tap needs beyond the public API."""

    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """The SDK's only config hook: the JSON Schema's errors and the tap's own, redacted.

        `prepare_config` may change the config first (`PluginBase._config`, the dict the SDK
        validates and then serves as `config`).
        """
        self.prepare_config(self._config)
        errors = super()._validate_config(raise_errors=False) + self.config_problems()
        errors = [self.redact(error) for error in errors]
        if errors and raise_errors:
            raise ConfigValidationError("Config validation failed", errors=errors)
        return errors

    @override
    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM or SIGINT: the SDK's last STATE, then exit 128 + the signal, not 0.

        The SDK's handler (0.54.9, 0.55.0b7: `Tap._handle_termination`, a private signal
        handler) writes the state and exits 0, so a scheduler that stopped a run at its time
        limit would record a success.
        """
        with contextlib.suppress(SystemExit):
            super()._handle_termination(signum, frame)
        self.logger.warning(
            "stopped by %s: the last STATE covers every record sent; the next run goes on "
            "from there (exit code %d)",
            signal.Signals(signum).name,
            128 + signum,
        )
        raise SystemExit(128 + signum)

    def prepare_config(self, config: dict[str, Any]) -> None:
        """Change the config before it is validated (pasted whitespace, numbers as text)."""

    def config_problems(self) -> list[str]:
        """What JSON Schema cannot say about the config, one line each."""
        return []

    def redact(self, text: str) -> str:
        """`text` without any secret of the config."""
        return text


def cli_config(ctx_params: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The config the SDK's CLI parsed (`--config` files and/or ENV), and whether from ENV.

    `cb_test` runs as a click callback, before `invoke`; the SDK parses `--config` into a
    private `_ConfigInput` with `.config` and `.parse_env` (0.54.9, 0.55.0b7).
    """
    config = ctx_params.get("config")
    return getattr(config, "config", None) or {}, bool(getattr(config, "parse_env", False))
