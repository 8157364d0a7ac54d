"""The errors the tap stops with: each message is the one line the user sees."""

from __future__ import annotations


class BotPenguinError(Exception):
    """A failure the run cannot recover from; its message is the one line the user sees.

    Messages are redacted where they are built (`redaction.redact`).
    """


class ListingError(BotPenguinError):
    """A request of one bot's listing failed for good: the run sets that listing aside.

    `status` is the HTTP (or envelope) status that failed it, None when no answer came at
    all (connection refused or reset, timeouts); `page` the page it asked for; `unanswered`
    what to check when no request of the run got an answer (a proxy in the way).
    """

    def __init__(
        self, message: str, *, status: int | None, page: int, unanswered: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.page = page
        self.unanswered = unanswered or "check api_url"


class TargetStoppedError(BotPenguinError):
    """Standard output is a broken pipe: whatever reads the tap's messages has gone."""

    def __init__(self) -> None:
        super().__init__(
            "The target stopped reading: standard output is a broken pipe (the process the "
            "tap's messages go to ended or closed its input), so the run stops here. The "
            "target's own log says why; the next run resumes from the last state it confirmed."
        )
