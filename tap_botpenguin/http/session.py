"""The HTTP transport: requests go only to `api_url`'s origin, and each ends by its deadline.

Redirects. `requests` follows a redirect to any host and resends custom headers there
(`x-bot-token`; it strips only `Authorization`). Here a redirect to another scheme, host or
port ends the request with one line naming where it points: the token is never sent there.
A redirect within the same origin (same scheme, host and port: a moved path, a trailing
slash) is followed, up to `MAX_REDIRECTS` times: that server already has the token.

Deadline. `requests`' timeout bounds each socket operation, so an answer trickling one byte
a second never times out. Each request here gets a deadline of `timeout` seconds for all of
it (redirects, headers and body): a watchdog thread shuts the request's socket down when it
passes, and the request fails as `requests.ReadTimeout`, which the retry policy retries like
any timeout. (Establishing the connection is bounded by the socket timeout as before.)
The watchdog is a thread, so it lives in `concurrency.deadlines` and is passed in.

Proxy. The environment's proxy settings are read once per session (`api_session`); a proxy
URL no request can go through stops the run before any request (`http.proxy`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection

from tap_botpenguin.http.proxy import ProxyRoute, proxy_route
from tap_botpenguin.http.responses import page_of, status_text
from tap_botpenguin.report.errors import BotPenguinError
from tap_botpenguin.report.redaction import redact

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override


def _tap_version() -> str:
    try:
        return version("tap-botpenguin")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


USER_AGENT = f"tap-botpenguin/{_tap_version()}"

#: Same-origin redirects followed for one request before it counts as a loop.
MAX_REDIRECTS = 5
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str | None) -> tuple[str, str, int | None]:
    """Scheme, host and port (default ports made explicit): where a token may go."""
    parts = urlsplit(url or "")
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)


def _base(url: str) -> str:
    """`scheme://host[:port]` of `url`, without credentials."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


class Deadline:
    """One request's deadline and the connections it used (guarded by the watchdog's lock)."""

    def __init__(self, at: float) -> None:
        self.at = at
        self.connections: list[Any] = []
        self.expired = False

    def shut(self) -> None:
        """End every socket of the request: a blocked read returns at once."""
        self.expired = True
        for connection in self.connections:
            sock = getattr(connection, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class Deadlines(Protocol):
    """What shuts requests down at their deadline (`concurrency.deadlines`, a thread)."""

    def start(self, deadline: Deadline) -> None:
        """Watch `deadline` from now on."""

    def finish(self, deadline: Deadline) -> None:
        """The request ended: stop watching it."""

    def watch(self, deadline: Deadline, connection: Any) -> None:
        """Shut `connection` down too when `deadline` passes (at once if it has)."""


def _watched_pools(watch: Callable[[Any], None]) -> dict[str, type[HTTPConnectionPool]]:
    """Pool classes whose connections report to `watch` when used (public urllib3 API)."""

    class WatchedHTTPConnection(HTTPConnection):
        def connect(self) -> None:
            watch(self)
            super().connect()

        def request(self, *args: Any, **kwargs: Any) -> None:
            watch(self)
            super().request(*args, **kwargs)

    class WatchedHTTPSConnection(HTTPSConnection):
        def connect(self) -> None:
            watch(self)
            super().connect()

        def request(self, *args: Any, **kwargs: Any) -> None:
            watch(self)
            super().request(*args, **kwargs)

    class WatchedHTTPPool(HTTPConnectionPool):
        ConnectionCls = WatchedHTTPConnection

    class WatchedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = WatchedHTTPSConnection

    return {"http": WatchedHTTPPool, "https": WatchedHTTPSPool}


class _WatchedAdapter(HTTPAdapter):
    """Connection pools whose connections the deadline can shut down (proxied ones too)."""

    def __init__(self, watch: Callable[[Any], None]) -> None:
        self._pools = _watched_pools(watch)
        super().__init__()

    @override
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pools

    @override
    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        manager: PoolManager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if type(manager).__name__ == "ProxyManager":  # not SOCKS: its pools differ
            manager.pool_classes_by_scheme = self._pools
        return manager


class ApiSession(requests.Session):
    """A session that talks only to one origin, each request within its total timeout.

    Used by one thread only (each thread that sends requests has its own): the request in
    progress, and so its deadline, is the session's.
    """

    def __init__(self, api_url: str, secrets: Sequence[str], deadlines: Deadlines) -> None:
        super().__init__()
        self.origin = origin(api_url)
        self.secrets = secrets
        self.max_redirects = MAX_REDIRECTS
        #: The proxy requests go through (`api_session` reads it from the environment).
        self.proxy: ProxyRoute | None = None
        self._deadlines = deadlines
        self._deadline: Deadline | None = None
        adapter = _WatchedAdapter(self._watch)
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    def _watch(self, connection: Any) -> None:
        """Put a connection under the deadline of the request in progress."""
        if self._deadline is not None:
            self._deadlines.watch(self._deadline, connection)

    @override
    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if origin(request.url) != self.origin:
            msg = f"refusing to send a request to {_base(request.url or '')}: not api_url's host"
            raise BotPenguinError(redact(msg, self.secrets))
        timeout = kwargs.get("timeout")
        if self._deadline is not None or not isinstance(timeout, (int, float)):
            return super().send(request, **kwargs)  # a redirect: the first request's deadline
        deadline = self._deadline = Deadline(time.monotonic() + timeout)
        self._deadlines.start(deadline)
        try:
            response = super().send(request, **kwargs)
        except requests.TooManyRedirects:
            url = request.url or ""
            msg = (
                f"GET {urlsplit(url).path} page {page_of(url)} was redirected more than "
                f"{MAX_REDIRECTS} times within {_base(url)} (a redirect loop): check api_url."
            )
            raise BotPenguinError(redact(msg, self.secrets)) from None
        except Exception as exc:
            if not deadline.expired or isinstance(exc, BotPenguinError):
                raise
            msg = f"no complete answer within {timeout:g} s"
            raise requests.ReadTimeout(msg, request=request) from exc
        finally:
            self._deadlines.finish(deadline)
            self._deadline = None
        if deadline.expired:  # what arrived before the socket was shut is not the answer
            response.close()
            msg = f"no complete answer within {timeout:g} s"
            raise requests.ReadTimeout(msg, request=request)
        return response

    @override
    def get_redirect_target(self, resp: requests.Response) -> str | None:
        target = super().get_redirect_target(resp)
        if target is None:
            return None
        request_url = resp.request.url or ""
        try:
            where = urljoin(resp.url, target)
            if origin(where) == self.origin:
                return target
        except ValueError:  # a port out of range, a broken IPv6 address: not an address
            resp.close()
            msg = (
                f"GET {urlsplit(request_url).path} page {page_of(request_url)} was redirected "
                f"({status_text(resp.status_code)}) to {target[:100]!r}, which is not a URL: "
                "the tap does not follow it (the token was sent nowhere else). The server at "
                "api_url sent a broken redirect: check api_url."
            )
            raise BotPenguinError(redact(msg, self.secrets)) from None
        resp.close()
        parts = urlsplit(where)
        msg = (
            f"GET {urlsplit(request_url).path} page {page_of(request_url)} was redirected "
            f"({status_text(resp.status_code)}) to {_base(where)}{parts.path}, another host "
            "than api_url: the tap does not follow it, so the token was not sent there. If the "
            f"API has moved, set api_url to {_base(where)}."
        )
        raise BotPenguinError(redact(msg, self.secrets))


def api_session(api_url: str, secrets: Sequence[str], deadlines: Deadlines) -> ApiSession:
    """The session for `api_url`: proxy and CA settings read from the environment once.

    With `trust_env`, requests rescans the environment three times per request: 10% of a
    51k-record sync (1.17 s -> 1.05 s). Every request goes to one host, so resolving
    HTTP(S)_PROXY / NO_PROXY and REQUESTS_CA_BUNDLE up front changes nothing else.
    Certificates are always verified (against that bundle, if one is set).
    """
    session = ApiSession(api_url, secrets, deadlines)
    session.trust_env = False
    session.proxies = requests.utils.get_environ_proxies(api_url)
    proxy = session.proxy = proxy_route(api_url, session.proxies)
    if proxy is not None and proxy.unusable:
        msg = (
            f"{proxy.variable} sets a proxy no request can go through: {proxy.unusable}. Fix "
            f"it, or set NO_PROXY={proxy.api_host} to reach api_url without a proxy."
        )
        raise BotPenguinError(msg)
    session.verify = (
        os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    )
    return session
