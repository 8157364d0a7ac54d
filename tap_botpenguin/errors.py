"""The errors the tap stops with, and keeping secrets out of every message."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from singer_sdk.exceptions import FatalAPIError

REDACTED = "<redacted>"
#: An `Authorization: Bearer <credential>` value echoed back by a server or proxy.
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]{8,}")


class BotPenguinError(FatalAPIError):
    """A failure the run cannot recover from; its message is the one line the user sees."""


class ConfigError(BotPenguinError):
    """Settings that are missing or contradict each other."""


class ListingError(BotPenguinError):
    """A request of one bot's listing failed for good: the run sets that listing aside.

    `status` is the HTTP (or envelope) status that failed it, None when no answer came at
    all (connection refused or reset, timeouts); `page` the page it asked for.
    """

    def __init__(self, message: str, *, status: int | None, page: int) -> None:
        super().__init__(message)
        self.status = status
        self.page = page


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret (and any `Bearer <...>` credential) in `text`."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return _BEARER.sub(rf"\1{REDACTED}", text)


class RedactingFilter(logging.Filter):
    """Defence in depth: scrub secrets from every log record that passes a handler."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        """Render the message once, redacted, so arguments cannot reintroduce a secret."""
        message = record.getMessage()
        clean = redact(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info:
            record.exc_text = redact(
                logging.Formatter().formatException(record.exc_info), self.secrets
            )
        return True
