"""The proxy between the tap and the API, as the environment sets it, named in failure lines.

`requests` reads `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` and `NO_PROXY`. A failure that
concerns the proxy, not the API (nothing listens there, it refuses the tunnel), says so
with the proxy's `host:port` (never the credentials its URL may hold) and the `NO_PROXY`
value that bypasses it. A proxy URL no request can go through stops the run before any.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from urllib.parse import urlsplit

import requests

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class ProxyRoute:
    """The proxy requests to `api_url` go through, as failure lines name it.

    `address` is `host:port`, never the credentials a proxy URL may hold; `variable` the
    environment variable that set it; `api_host` what `NO_PROXY` must name to bypass it;
    `unusable` why no request can go through it, if none can.
    """

    address: str
    variable: str
    api_host: str
    unusable: str | None = None

    def __str__(self) -> str:
        return f"the proxy {self.address} ({self.variable})"

    @property
    def check(self) -> str:
        """What to do when nothing answers through it."""
        return f"check {self}, or set NO_PROXY={self.api_host} to reach api_url without it"


def proxy_route(api_url: str, proxies: dict[str, str]) -> ProxyRoute | None:
    """The proxy `proxies` (as `requests` reads them from the environment) uses for `api_url`."""
    proxy = requests.utils.select_proxy(api_url, proxies)
    if not proxy:
        return None
    scheme = urlsplit(api_url).scheme.lower()
    names = (f"{scheme}_proxy", f"{scheme.upper()}_PROXY", "all_proxy", "ALL_PROXY")
    variable = next((n for n in names if os.environ.get(n) == proxy), f"{scheme.upper()}_PROXY")
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    address = parts.netloc.rpartition("@")[2]  # never the credentials
    default_port = _DEFAULT_PORTS.get(parts.scheme.lower())
    if default_port and ":" not in address.rsplit("]", 1)[-1]:
        address += f":{default_port}"
    unusable = None
    if not parts.hostname:
        address, unusable = "(no host)", "its URL names no host"
    elif parts.scheme.lower().startswith("socks") and find_spec("socks") is None:
        unusable = "it is a SOCKS proxy, which needs the PySocks package (requests[socks])"
    return ProxyRoute(address, variable, (urlsplit(api_url).hostname or "").lower(), unusable)


def causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and everything it wraps (`requests` and `urllib3` nest the real reason)."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked += list(current.args)
        pending += [e for e in linked if isinstance(e, BaseException)]


#: What a proxy answers to a tunnel it will not open (`CONNECT`), as `http.client` says it.
_TUNNEL_FAILED = "Tunnel connection failed: "


def proxy_trouble(exc: BaseException) -> tuple[str, bool] | None:
    """What went wrong with the proxy itself, if `exc` says so, and whether to retry.

    A proxy that refuses the tunnel (a 4xx to `CONNECT`: 403, 407) refuses it again; one that
    is down, or cannot reach the API (a 5xx), may not be on the next attempt.
    """
    if not isinstance(exc, requests.exceptions.ProxyError):
        return None
    for cause in causes(exc):
        text = str(cause)
        if text.startswith(_TUNNEL_FAILED):
            answer = text.removeprefix(_TUNNEL_FAILED).strip()
            what = f"it answered the request for a tunnel to api_url (CONNECT) with {answer}"
            if answer.startswith("407"):
                what += " (a proxy's credentials go in its URL: http://user:password@host:port)"
            return what, not answer.startswith("4")
        if isinstance(cause, ConnectionRefusedError):
            return "nothing listens there (connection refused)", True
    return f"the connection to it failed ({type(exc).__name__})", True
