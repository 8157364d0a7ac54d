"""Settings as people paste them: trimmed, and refused when they cannot be right.

Tokens and ids are copied from web pages, secret files (`echo token > file` ends in a newline)
and Kubernetes secrets: surrounding whitespace is never part of them, so it is removed before
anything else reads the config. A token is refused when it is a placeholder (too short) or
holds characters no HTTP header can carry; `api_url` is refused when the token would travel
unencrypted.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, MutableMapping
from typing import Any
from urllib.parse import urlparse

from tap_botpenguin.report.redaction import MIN_TOKEN_LENGTH

#: Settings (top level and in each `bots` entry) whose surrounding whitespace is removed.
TRIMMED = ("bot_token", "customer_id", "bot_id", "api_url")
SHAPE_HINT = (
    "a BotPenguin token is one unbroken string of letters and digits (often with - or _), "
    "dozens of characters long: copy the whole value BotPenguin gave you"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _trim(entry: MutableMapping[str, Any]) -> list[str]:
    """Trim `entry`'s values in place; return the tokens that changed, as they were."""
    pasted = []
    for name in TRIMMED:
        value = entry.get(name)
        if isinstance(value, str) and value != value.strip():
            if name == "bot_token":
                pasted.append(value)
            entry[name] = value.strip()
    return pasted


def trim_pasted_values(config: MutableMapping[str, Any]) -> tuple[str, ...]:
    """Remove surrounding whitespace from tokens, ids and the URL; the tokens as pasted."""
    pasted = _trim(config)
    for entry in config.get("bots") or []:
        if isinstance(entry, dict):
            pasted += _trim(entry)
    return tuple(pasted)


def token_problems(config: Mapping[str, Any]) -> list[str]:
    """Tokens that cannot be real, named by setting; the token itself is never quoted."""
    tokens = [("bot_token", config.get("bot_token"))]
    tokens += [
        (f"bots[{index}].bot_token", entry.get("bot_token"))
        for index, entry in enumerate(config.get("bots") or [])
        if isinstance(entry, dict)
    ]
    problems = []
    for name, token in tokens:
        if not isinstance(token, str) or not token:
            continue  # missing or mistyped: the other checks say so
        if len(token) < MIN_TOKEN_LENGTH:
            problems.append(
                f"`{name}` is {len(token)} characters long, too short to be a real token "
                f"(a placeholder?): {SHAPE_HINT}."
            )
        elif _CONTROL.search(token):
            problems.append(
                f"`{name}` has a line break or control character inside it, which no request "
                f"can carry: {SHAPE_HINT}."
            )
    return problems


def is_loopback(host: str | None) -> bool:
    """127.0.0.0/8, ::1 and localhost: traffic that never leaves the machine."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_url_problems(api_url: Any) -> list[str]:
    """`api_url` must be https, or http to this machine (the sandbox, tests)."""
    url = urlparse(str(api_url or ""))
    if url.scheme not in {"http", "https"} or not url.netloc:
        return [f"`api_url` must be an http(s) URL, got {api_url!r}."]
    if url.scheme == "http" and not is_loopback(url.hostname):
        return [
            f"`api_url` must use https:// (got {api_url!r}): over http:// the token would "
            "travel unencrypted. Plain http:// is accepted only for loopback addresses "
            "(127.0.0.1, ::1, localhost)."
        ]
    return []
