"""What a healthy run prints: per bot and stream, what kind of read, progress, a closing line.

At the default log level the SDK's routine lines are DEBUG lines instead:
- its METRIC lines (one per request, plus counters and timers);
- "Beginning sync of ...", "Starting incremental sync of ...", "Pagination stopped after ...",
  which the tap's own lines say better;
- "Skipping parse of env var settings...", on every run Meltano starts (it passes a file);
- "Stream is assumed to be unsorted, progress is not resumable if interrupted", once per bot:
  that is how this tap works by design (a bot's bookmark is committed once its listing has
  been read; an interrupted run resumes from the previous one), nothing to act on;
- `backoff`'s "Backing off ..." and "Giving up ...", which the tap's own "retrying in N s"
  warning and final one-line error say better;
- "An unhandled error occurred while syncing ...", when the error is one the tap explains in
  its own one line (a `BotPenguinError`), or no error at all: `--test` (the SDK's connection
  test) stops each stream after one record by raising its own signal. Other errors keep it,
  with their traceback.
`TAP_BOTPENGUIN_LOGLEVEL=debug` (or `meltano --log-level=debug`) brings all of them back.
Warnings are kept for what a person should act on.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

#: The SDK's stream loggers are `Logger`s up to 0.54 and `LoggerAdapter`s from 0.55.
#: The SDK's logger of METRIC lines.
METRICS_LOGGER = "singer_sdk.metrics"
AnyLogger = logging.Logger | logging.LoggerAdapter[logging.Logger]

_ROUTINE = (
    "Beginning sync of ",
    "Starting incremental sync of ",
    "Pagination stopped after ",
    "Stream is assumed to be unsorted",
    # Said on every run that takes no settings from the environment (Meltano's runs).
    "Skipping parse of env var settings",
    # `backoff`'s own lines, which the tap's "retrying in N s" warning and its final
    # one-line error say better.
    "Backing off ",
    "Giving up ",
)
_SYNC_FAILED = "An unhandled error occurred while syncing "


class RoutineToDebug(logging.Filter):
    """Turns the SDK's routine lines into DEBUG lines (dropped unless DEBUG is on).

    `explained(error)`: whether a sync failure the SDK logs is no news (the error being
    handled when the SDK logs it): one the tap explains in its own line, or --test's stop.
    """

    def __init__(self, explained: Callable[[BaseException | None], bool]) -> None:
        super().__init__()
        self._explained = explained

    def filter(self, record: logging.LogRecord) -> bool:
        """Demote a routine line; keep everything else as it is."""
        message = str(record.msg)
        explained = message.startswith(_SYNC_FAILED) and self._explained(sys.exc_info()[1])
        if record.levelno > logging.DEBUG and (message.startswith(_ROUTINE) or explained):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def quiet_routine_lines(routine: RoutineToDebug, *loggers: AnyLogger) -> None:
    """Demote the SDK's routine lines logged on `loggers` (idempotent)."""
    for logger in loggers:
        target = logger.logger if isinstance(logger, logging.LoggerAdapter) else logger
        if routine not in target.filters:
            target.addFilter(routine)


def configures_metrics(log_config: str | None) -> bool:
    """Whether the SDK's logging configuration file sets the `singer_sdk.metrics` logger.

    `log_config` is `SINGER_SDK_LOG_CONFIG`; Meltano always passes a file of its own, which
    does not name it.
    """
    if not log_config:
        return False
    try:
        config = yaml.safe_load(Path(log_config).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False  # the SDK says so itself
    loggers = config.get("loggers") if isinstance(config, dict) else None
    return isinstance(loggers, dict) and METRICS_LOGGER in loggers


def quiet_metrics(metrics_logger: logging.Logger, *, user_configured: bool) -> None:
    """METRIC lines only when the plugin's log level is DEBUG, unless configured by the user.

    When the user's logging configuration sets the metrics logger (`configures_metrics`), it
    is theirs, and monitoring that reads METRIC lines gets them.
    """
    if not user_configured and metrics_logger.level > logging.DEBUG:
        metrics_logger.setLevel(logging.WARNING)
