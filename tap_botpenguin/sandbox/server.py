"""A local BotPenguin API: real HTTP on loopback, the documented contract, scripted faults.

It implements `GET /inbox/direct/chats` as the endpoint page describes it: the auth header
check (both kinds of token, see docs/contract.md), query validation (400), the
`{success, message, code, data}` envelope, a per-token rate limit answered with 429 and
`Retry-After`, and a page-numbered listing. Where the contract is silent it offers each
plausible answer as a switch: the sort order (`inbox.ORDERS`) and what comes past the last
page (`PAST_END`: an empty `data` array by default, 404, 400, or the last page again).

Tests, the demo and the benchmarks drive it in-process (`Sandbox`), or from the command line
(`python -m tap_botpenguin.sandbox`). Nothing in the tap imports this module.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from http import HTTPStatus
from http.server import ThreadingHTTPServer

from tap_botpenguin.sandbox.cache import ResponseCache
from tap_botpenguin.sandbox.data import Bot, default_bots
from tap_botpenguin.sandbox.faults import KINDS, LISTING_PATH, PAST_END, Fault, ReceivedRequest
from tap_botpenguin.sandbox.handler import Handler, Server, envelope
from tap_botpenguin.sandbox.inbox import PAGE_BOUND, PRECISIONS, Inboxes


class Sandbox(Inboxes):
    """The server and its data. Use as a context manager, or `start()` / `stop()`.

    `order` is how listings are sorted (see `inbox.ORDERS`); `past_end` is what the API
    answers past the last page (see `PAST_END`); `rate_limit` requests per `rate_window`
    seconds and token are allowed before a 429 (None: no limit); `latency` seconds pass before
    each listing request is answered. `before_request` is called
    (with the sandbox) before each listing request is answered: it lets a test change the
    inbox while a sync is running, as a live inbox does. A request for a page more than
    `page_bound` pages past a listing's last page is what a tap that never ends a listing
    sends: it is answered `418` with a message starting `PAGE_BOUND_MESSAGE`, which fails that
    listing at once instead of letting it loop until a timeout (`overran` counts them).
    `before_answer` is like `before_request`, with the request (to act on one page's serving);
    `wait_for_answer` waits until a request is answered (to serve pages in a chosen order).
    `cache` puts a response cache in front of the API (`cache.ResponseCache`). `precision`
    is how precisely it stamps times (`inbox.PRECISIONS`); `set_clock` sets its clock apart
    from this machine's (its `Date` headers and the changes made through it follow).
    """

    def __init__(
        self,
        bots: list[Bot] | None = None,
        *,
        page_size: int = 25,
        order: str = "updated",
        past_end: str = "empty",
        rate_limit: int | None = 100,
        rate_window: float = 60.0,
        host: str = "127.0.0.1",
        port: int = 0,
        before_request: Callable[[Sandbox], None] | None = None,
        before_answer: Callable[[Sandbox, ReceivedRequest], None] | None = None,
        page_bound: int = PAGE_BOUND,
        latency: float = 0.0,
        cache: ResponseCache | None = None,
        precision: str = "ms",
    ) -> None:
        super().__init__(default_bots() if bots is None else bots, order, page_size)
        if precision not in PRECISIONS:
            msg = f"precision must be one of {PRECISIONS}, got {precision!r}"
            raise ValueError(msg)
        self.precision = precision
        if past_end not in PAST_END:
            msg = f"past_end must be one of {PAST_END}, got {past_end!r}"
            raise ValueError(msg)
        self.past_end = past_end
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.host = host
        self.port = port
        self.before_request = before_request
        self.before_answer = before_answer
        self.page_bound = page_bound
        #: Seconds every listing request waits before it is answered (a slow API).
        self.latency = latency
        #: A response cache between the tap and the API (`cache.ResponseCache`), if any.
        self.cache = cache
        self.faults: list[Fault] = []
        self.requests: list[ReceivedRequest] = []
        self._served_at: dict[str, deque[float]] = defaultdict(deque)
        self._server: ThreadingHTTPServer | None = None
        self._stopping = threading.Event()
        self._answered = threading.Condition()

    # --- lifecycle -------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Base URL to give the tap as `api_url`."""
        assert self._server is not None, "sandbox not started"
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> Sandbox:
        """Listen on loopback and serve from a daemon thread."""
        handler = type("Handler", (Handler,), {"sandbox": self})
        self._server = Server((self.host, self.port), handler)
        # A short poll interval: `stop()` waits for the serving loop to notice.
        serving = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        serving.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port; requests left hanging are answered."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- control ---------------------------------------------------------------------
    def inject(self, *faults: Fault) -> None:
        """Queue faults; each is used up after `times` matching requests."""
        with self._lock:
            self.faults.extend(faults)

    def listing_requests(self) -> list[ReceivedRequest]:
        """The listing requests received so far (other paths excluded)."""
        with self._lock:
            return [r for r in self.requests if r.path == LISTING_PATH]

    def wait_for_answer(self, answered: Callable[[ReceivedRequest], bool], timeout: float) -> bool:
        """Wait until a request for which `answered(request)` holds has been answered."""
        with self._answered:
            return self._answered.wait_for(
                lambda: any(r.answered_at is not None and answered(r) for r in self.requests),
                timeout,
            )

    # --- request handling (called from server threads) --------------------------------
    def _authenticate(self, headers: dict[str, str]) -> str | None:
        """The presented token, if it is one the sandbox knows (either auth style)."""
        token = headers.get("x-bot-token")
        bearer = headers.get("authorization", "")
        if token is None and bearer.startswith("Bearer ") and headers.get("authtype") == "Key":
            token = bearer.removeprefix("Bearer ")
        known = {bot.token for bot in self.bots}
        return token if token in known else None

    def _retry_after(self, token: str) -> int | None:
        """Count this request against the token's window; seconds to wait if over it."""
        if self.rate_limit is None:
            return None
        now = time.monotonic()
        served = self._served_at[token]
        while served and served[0] <= now - self.rate_window:
            served.popleft()
        if len(served) >= self.rate_limit:
            return max(1, math.ceil(served[0] + self.rate_window - now))
        served.append(now)
        return None

    def _take_fault(self, params: dict[str, str]) -> Fault | None:
        for fault in self.faults:
            if fault.matches(params):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                return fault
        return None

    def _validate(self, token: str, params: dict[str, str]) -> str | None:
        """The 400 message for invalid query parameters, as the endpoint page lists them."""
        missing = [p for p in ("botId", "customerId", "page", "type") if not params.get(p)]
        if missing:
            return f"Missing required query parameter(s): {', '.join(missing)}"
        if params["type"] not in KINDS:
            return "Invalid type: expected 'lead' or 'non-lead'"
        if not params["page"].isdigit() or int(params["page"]) < 1:
            return "Invalid page: expected a number starting at 1"
        if not self.has_bot(params["botId"]):
            return "Invalid botId or customerId"
        bot = self.bot(params["botId"])
        if bot.customer_id != params["customerId"] or bot.token != token:
            return "Invalid botId or customerId"
        return None

    def answer(self, bot_id: str, kind: str, page: int) -> tuple[int, bytes]:
        """Status and body for one page, past the end as `past_end` says.

        Page 1 always exists (an empty listing is `data: []`, as Django's and most
        paginators answer); past the last page the API answers as configured.
        """
        last = max(self.pages(bot_id, kind), 1)
        if page > last and self.past_end in {"404", "400"}:
            status = int(self.past_end)
            message = "Not Found" if status == HTTPStatus.NOT_FOUND else "Invalid page"
            return status, envelope(None, success=False, message=message, code=status)
        if page > last and self.past_end == "clamp":
            page = last
        body = self.cached_body(
            (bot_id, kind, page), lambda: envelope(self.served(self.page(bot_id, kind, page)))
        )
        return HTTPStatus.OK, body


def serve(sandbox: Sandbox, announce: Iterable[Callable[[str], None]] = (print,)) -> None:
    """Start `sandbox`, announce its URL and block until interrupted."""
    sandbox.start()
    for callback in announce:
        callback(sandbox.url)
    try:
        threading.Event().wait()
    finally:
        sandbox.stop()
