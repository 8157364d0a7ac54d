"""The run's settings as typed values, built once from the validated config.

Everything below the streams reads settings from here, never from the SDK's config dict:
`Settings.from_config` is the one place that knows the config's shape (defaults filled in by
the SDK's validator, numbers that arrive as text from the environment or Meltano).
"""

from __future__ import annotations

import decimal
import math
import numbers
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tap_botpenguin.config.batch import batch_problems
from tap_botpenguin.config.checks import api_url_problems, token_problems
from tap_botpenguin.records.evolution import MAX_COLUMNS
from tap_botpenguin.records.sanitize import parse_datetime, utc_iso
from tap_botpenguin.report.errors import BotPenguinError

AUTH_METHODS = ("x-bot-token", "bearer")
#: Most pages of one listing asked for at once (setting `pages_in_flight`).
DEFAULT_PAGES_IN_FLIGHT = 8


def auth_headers(auth_method: str, token: str) -> dict[str, str]:
    """`x-bot-token` (the endpoint page's token) or `Bearer` + `authtype: Key` (platform token).

    docs/contract.md, "Tokens": BotPenguin support hands out bot tokens sent as `x-bot-token`;
    a platform access token from the Developers panel goes in `Authorization` with
    `authtype: Key`.
    """
    if auth_method == "bearer":
        return {"Authorization": f"Bearer {token}", "authtype": "Key"}
    return {"x-bot-token": token}


@dataclass(frozen=True)
class BotSettings:
    """One bot to read: its ids and credentials (the token never shows in a repr)."""

    bot_id: str
    customer_id: str
    token: str = field(repr=False)
    headers: Mapping[str, str] = field(repr=False)


def _strings(value: Any) -> Iterator[str]:
    """The strings inside a config value, however it is nested."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif value is not None:
        yield str(value)


def secrets_of(config: Mapping[str, Any], pasted: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Every token in the config (even a mistyped one, and as pasted), for redaction."""
    tokens: list[Any] = [config.get("bot_token"), *pasted]
    tokens += [bot.get("bot_token") for bot in config.get("bots") or [] if isinstance(bot, dict)]
    return tuple(text for token in tokens for text in _strings(token) if text)


def _entries(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    entries = [entry for entry in config.get("bots") or [] if isinstance(entry, dict)]
    if config.get("bot_id"):
        entries.insert(0, {"bot_id": config["bot_id"]})
    return entries


def setting_problems(config: Mapping[str, Any]) -> list[str]:
    """What JSON Schema cannot say clearly about the settings, one line each."""
    problems = []
    listed = [entry for entry in config.get("bots") or [] if isinstance(entry, dict)]
    blank = [str(n) for n, entry in enumerate(listed, 1) if not str(entry.get("bot_id") or "")]
    if blank:
        problems.append(f"`bots` entry {', '.join(blank)} has an empty `bot_id`.")
    entries = _entries(config)
    if not entries:
        problems.append("Set `bot_id` (one bot) or `bots` (several): neither is set.")
    ids = [entry.get("bot_id") for entry in entries]
    duplicates = sorted({i for i in ids if ids.count(i) > 1 and isinstance(i, str)})
    if duplicates:
        problems.append(f"`bots`/`bot_id` list bot {', '.join(duplicates)} more than once.")
    if not config.get("bot_token") and any(not e.get("bot_token") for e in entries):
        problems.append(
            "`bot_token` is required (or give every entry of `bots` its own `bot_token`)."
        )
    if not config.get("customer_id") and any(not e.get("customer_id") for e in entries):
        problems.append(
            "`customer_id` is required (or give every entry of `bots` its own `customer_id`)."
        )
    problems += token_problems(config)
    problems += api_url_problems(config.get("api_url"))
    problems += _number_problems(config)
    problems += batch_problems(config)
    start_date = config.get("start_date")
    if start_date is not None and parse_datetime(start_date) is None:
        problems.append(f"`start_date` must be an ISO 8601 date-time, got {start_date!r}.")
    return problems


#: Number settings and the largest value that makes sense (`inf`, `nan`, 1e12 would overflow
#: the clocks and timers they feed, or switch a safeguard off).
NUMBER_LIMITS = {
    "request_timeout": (3600.0, "seconds"),
    "full_scan_every_hours": (24.0 * 366, "hours"),
}


def _number_problems(config: Mapping[str, Any]) -> list[str]:
    problems = []
    for name, (most, unit) in NUMBER_LIMITS.items():
        value = config.get(name)
        if isinstance(value, bool) or not isinstance(value, numbers.Real | decimal.Decimal):
            continue  # absent, or refused by the JSON Schema already (a config file's
            # numbers may arrive as Decimal)
        number = float(value)
        if not math.isfinite(number) or number > most:
            problems.append(f"`{name}` must be a number of {unit} up to {most:g}, got {number:g}.")
    return problems


@dataclass(frozen=True)
class Settings:
    """The settings of one run (see `settings_schema` for what each one means)."""

    api_url: str
    auth_method: str
    bots: tuple[BotSettings, ...]
    secrets: tuple[str, ...] = field(repr=False)
    start_date: str | None
    requests_per_minute: int
    max_parallel_tokens: int
    pages_in_flight: int
    request_timeout: float
    max_retries: int
    snake_case_fields: bool
    undocumented_fields: str
    max_undocumented_columns: int
    scan_mode: str
    full_scan_every_hours: float
    mirror: bool

    @classmethod
    def from_config(cls, config: Mapping[str, Any], secrets: tuple[str, ...]) -> Settings:
        """The config (defaults filled in by the SDK's validator) as typed values.

        A sync only starts with a valid config; discovery and `--about` also take an invalid
        one, so what cannot be read here falls back to its default.
        """
        auth_method = str(config.get("auth_method") or AUTH_METHODS[0])
        bots = tuple(
            BotSettings(
                bot_id=str(entry.get("bot_id")),
                customer_id=str(entry.get("customer_id") or config.get("customer_id") or ""),
                token=(token := str(entry.get("bot_token") or config.get("bot_token") or "")),
                headers=auth_headers(auth_method, token),
            )
            for entry in _entries(config)
        )

        def number(name: str, kind: type[float] | type[int], default: float) -> Any:
            try:
                return kind(config[name])
            except (KeyError, TypeError, ValueError):
                return kind(default)

        start = parse_datetime(config.get("start_date"))
        return cls(
            api_url=str(config.get("api_url") or "").rstrip("/"),
            auth_method=auth_method,
            bots=bots,
            secrets=secrets,
            start_date=utc_iso(start) if start else None,
            requests_per_minute=number("requests_per_minute", int, 100),
            max_parallel_tokens=number("max_parallel_tokens", int, 16),
            pages_in_flight=number("pages_in_flight", int, DEFAULT_PAGES_IN_FLIGHT),
            request_timeout=number("request_timeout", float, 60),
            max_retries=number("max_retries", int, 8),
            snake_case_fields=bool(config.get("snake_case_fields")),
            undocumented_fields=str(config.get("undocumented_fields") or "evolve"),
            max_undocumented_columns=number("max_undocumented_columns", int, MAX_COLUMNS),
            scan_mode=str(config.get("scan_mode") or "auto"),
            full_scan_every_hours=number("full_scan_every_hours", float, 24),
            mirror=bool(config.get("emit_activate_version_messages")),
        )

    def bot(self, bot_id: str) -> BotSettings:
        """The settings of one configured bot (a partition's bot)."""
        for bot in self.bots:
            if bot.bot_id == bot_id:
                return bot
        msg = f"bot {bot_id} is in the state but not in the settings"
        raise BotPenguinError(msg)
