r"""Keeping secrets out of every message, whatever the spelling.

A secret reaches a message in many spellings: as configured (maybe with a pasted newline),
trimmed, repr'd or escaped (`b'tok\n'`, `'tok\\n'`), JSON-escaped, URL-encoded, and those
nested once more (the repr of an exception quoting a header dump). `redact` replaces every one
of them in a single regular-expression pass, longest first, so no replacement happens inside
another's `<redacted>` marker.

Secrets shorter than `MIN_TOKEN_LENGTH` (placeholders such as `t`, which config validation
refuses) are replaced only where they stand alone, not inside words: replacing every `t`
would shred every message, while a real token is long and random enough that any occurrence
of it, even glued to other text (`?token=...`), is a leak.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from urllib.parse import quote, quote_plus

REDACTED = "<redacted>"
#: Shorter tokens cannot be real (config validation refuses them); see the module docstring.
MIN_TOKEN_LENGTH = 8
#: An `Authorization: Bearer <credential>` value echoed back by a server or proxy.
_BEARER = r"(?P<bearer>Bearer\s+)[A-Za-z0-9._~+/=-]{8,}"
#: Where a short secret must not touch: letters and digits (it would be part of a word).
_STANDALONE = r"(?<![A-Za-z0-9]){}(?![A-Za-z0-9])"


def _lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), text)


#: The ways a string is spelled inside another: repr, bytes repr, JSON, URL encodings.
_ENCODINGS: tuple[Callable[[str], str], ...] = (
    lambda s: repr(s)[1:-1],
    lambda s: s.encode("unicode_escape").decode("ascii"),
    lambda s: repr(s.encode())[2:-1],
    lambda s: json.dumps(s)[1:-1],
    lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
    lambda s: json.dumps(s)[1:-1].replace("/", "\\/"),
    lambda s: quote(s, safe=""),
    quote,
    quote_plus,
    lambda s: _lower_hex(quote(s, safe="")),
    lambda s: _lower_hex(quote_plus(s)),
)


def secret_forms(secret: str) -> set[str]:
    """Every spelling of `secret` (and of it trimmed), encoded up to twice."""
    forms = {secret, secret.strip()}
    for _ in range(2):
        forms |= {encode(form) for form in forms for encode in _ENCODINGS}
    return {form for form in forms if form}


@lru_cache(maxsize=64)
def _pattern(secrets: frozenset[str], *, bearer: bool = True) -> re.Pattern[str]:
    alternatives: list[tuple[int, str]] = []
    for secret in secrets:
        short = len(secret.strip()) < MIN_TOKEN_LENGTH
        for form in secret_forms(secret):
            escaped = re.escape(form)
            alternatives.append((len(form), _STANDALONE.format(escaped) if short else escaped))
    # Longest first: at any position the whole of the longest spelling is replaced.
    ordered = [regex for _, regex in sorted(alternatives, key=lambda item: -item[0])]
    return re.compile("|".join([*ordered, _BEARER] if bearer else ordered))


def _replace(match: re.Match[str]) -> str:
    return (match.groupdict().get("bearer") or "") + REDACTED


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every spelling of every secret (and any `Bearer <...>` credential) in `text`."""
    return _pattern(frozenset(s for s in secrets if s.strip())).sub(_replace, text)


@lru_cache(maxsize=32)
def _encoded_forms(secrets: frozenset[str]) -> frozenset[bytes]:
    return frozenset(form.encode() for secret in secrets for form in secret_forms(secret))


def redact_bytes(body: bytes, secrets: Iterable[str]) -> tuple[bytes, int]:
    """`body` with every spelling of every secret replaced, and how many were."""
    keys = frozenset(s for s in secrets if s.strip())
    if not any(form in body for form in _encoded_forms(keys)):  # the usual case, and fast
        return body, 0
    text = body.decode("utf-8", errors="surrogateescape")
    # Records keep their own text: only the configured secrets are replaced in a body.
    clean, count = _pattern(keys, bearer=False).subn(_replace, text)
    return clean.encode("utf-8", errors="surrogateescape"), count


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
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secrets)
        return True
