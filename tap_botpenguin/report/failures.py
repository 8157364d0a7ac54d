"""One bot's failure stops no other: listings that fail for good are set aside, the run goes on.

A listing fails for good when a request of it does (`errors.ListingError`): 401/403 for its
token, 400/404 for its ids on page 1, a 5xx, broken body or timeout that outlasted
`max_retries`. The run then sets that bot and stream aside: its records already emitted stay
emitted, its bookmark and scan history stay as they were (the SDK commits nothing for it),
and every other listing is read as usual. At the end the run fails with one line per listing
set aside, so a scheduler alerts.

A failure that concerns every bot stops the run at once instead, with its one line:
- no request of this run has had an HTTP answer, and this one got none either (connection
  refused, reset or timed out on every attempt): `api_url` is unreachable;
- a listing got no answer, the previous listing set aside got none either, and no request
  has been answered in between: the API stopped answering (rather than spending the retries
  of every remaining listing on it);
- a 401 on page 1 before any page of the run was read, with a token every configured bot
  uses: the shared token is rejected, and every other bot would be refused the same way
  (a 403 says the token may not read *this* bot, so only that bot is set aside).
Anything else the tap stops on (an API ignoring `page`, a record without `_id`) is not a
`ListingError` and stops the run as before.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from tap_botpenguin.report.errors import BotPenguinError, ListingError
from tap_botpenguin.report.logs import AnyLogger


class ListingsFailedError(BotPenguinError):
    """The run synced every other listing; these were set aside (one line each)."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


class Failures:
    """What this run has heard from the API, and the listings it set aside (main thread).

    `tokens` holds each configured bot's token, to tell a shared token from a bot's own;
    `answers()` how many requests of the run have had an HTTP answer so far (any status, on
    any thread).
    """

    def __init__(self, tokens: list[str], answers: Callable[[], int]) -> None:
        self._tokens = tokens
        self._answers = answers
        #: Some page of this run was taken for emitting (a 2xx with the documented envelope).
        self.read_a_page = False
        self.lines: list[str] = []
        #: `answers` when the last listing set aside without an answer was; None: none was.
        self._silent_at: int | None = None

    @property
    def answers(self) -> int:
        """Requests of this run that got an HTTP answer (any status)."""
        return self._answers()

    def heard(self) -> tuple[int, bool]:
        """What the run has heard so far: `answers` and `read_a_page`."""
        return self.answers, self.read_a_page

    def concerns_every_bot(
        self, error: ListingError, token: str, heard: tuple[int, bool] | None = None
    ) -> bool:
        """Whether `error` (of a bot using `token`) is a misconfiguration of the whole run.

        `heard`: what the run had heard when the listing failed, if it was read ahead.
        """
        answers, read_a_page = heard or self.heard()
        if error.status is None:
            return answers in (0, self._silent_at)  # never answered, or not since
        return (
            error.status == HTTPStatus.UNAUTHORIZED
            and error.page == 1
            and not read_a_page
            and all(other == token for other in self._tokens)
        )

    def set_aside(
        self,
        stream: str,
        bot_id: str,
        token: str,
        error: ListingError,
        logger: AnyLogger,
        heard: tuple[int, bool] | None = None,
    ) -> None:
        """Remember a failed listing for the run's closing lines, or stop the run at once."""
        if self.concerns_every_bot(error, token, heard):
            # The listings set aside before, then why the run stops: one line each.
            raise BotPenguinError("\n".join([*self.lines, self._stop_line(error)])) from error
        if error.status is None:
            self._silent_at = (heard or self.heard())[0]
        self.lines.append(f"{stream} (bot {bot_id}) set aside, its state unchanged: {error}")
        logger.warning(
            "%s (bot %s): set aside, its state unchanged; the other listings go on and the "
            "run will end with an error: %s",
            stream,
            bot_id,
            error,
        )

    def _stop_line(self, error: ListingError) -> str:
        if error.status is not None:
            return str(error)
        if self.answers == 0:
            return f"{error} No request of this run got an answer: {error.unanswered}."
        return (
            f"{error} The API stopped answering: no request got an answer since the previous "
            "listing failed the same way; stopping."
        )

    def error(self) -> ListingsFailedError | None:
        """The error the run ends with, once every other listing was synced."""
        return ListingsFailedError(self.lines) if self.lines else None
