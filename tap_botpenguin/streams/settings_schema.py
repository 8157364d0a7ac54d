"""The tap's settings: their JSON Schema, titles and descriptions (`--about` shows them)."""

from __future__ import annotations

from singer_sdk import typing as th
from singer_sdk.helpers.capabilities import EMIT_ACTIVATE_VERSION_CONFIG

from tap_botpenguin.config.settings import AUTH_METHODS, DEFAULT_PAGES_IN_FLIGHT
from tap_botpenguin.listing.scan import SCAN_MODES
from tap_botpenguin.records.evolution import MAX_COLUMNS
from tap_botpenguin.records.evolution import MODES as UNDOCUMENTED_MODES

DEFAULT_API_URL = "https://api.v7.botpenguin.com"

CONFIG_JSONSCHEMA = th.PropertiesList(
    th.Property(
        "bot_token",
        th.StringType,
        secret=True,
        title="Bot token",
        description=(
            "The API token. Required unless every entry of `bots` has its own. Spaces and "
            "line breaks around it (a pasted line, a secret file) are removed."
        ),
    ),
    th.Property(
        "auth_method",
        th.StringType,
        default="x-bot-token",
        allowed_values=list(AUTH_METHODS),
        title="Auth method",
        description=(
            "`x-bot-token`: header `x-bot-token: <token>` (token from BotPenguin support). "
            "`bearer`: `Authorization: Bearer <token>` plus `authtype: Key` (platform "
            "access token from More > Developers > API Tokens)."
        ),
    ),
    th.Property(
        "customer_id",
        th.StringType,
        title="Customer ID",
        description=(
            "`customerId` query parameter (from the bot's page URL "
            "`https://page.botpenguin.com/<botId>/<customerId>`). Required unless every "
            "entry of `bots` has its own. Surrounding spaces and line breaks are removed."
        ),
    ),
    th.Property(
        "bot_id",
        th.StringType,
        title="Bot ID",
        description="One bot to extract. Surrounding spaces and line breaks are removed.",
    ),
    th.Property(
        "bots",
        th.ArrayType(
            th.ObjectType(
                th.Property("bot_id", th.StringType, required=True),
                th.Property("bot_token", th.StringType, secret=True),
                th.Property("customer_id", th.StringType),
                additional_properties=False,
            )
        ),
        # Secret as a whole: its entries may carry tokens, and Meltano redacts only
        # settings marked sensitive (`meltano config list/print`).
        secret=True,
        title="Bots",
        description=(
            "Several bots in one run: `[{bot_id, bot_token?, customer_id?}]`. Entries "
            "without a token or customer use `bot_token` / `customer_id`. At least one of "
            "`bot_id` and `bots` is required. Surrounding spaces and line breaks are removed "
            "from each value."
        ),
    ),
    th.Property(
        "api_url",
        th.StringType,
        default=DEFAULT_API_URL,
        title="API URL",
        description=(
            "Base URL of the API. Must be `https://` (plain `http://` only for loopback: "
            "127.0.0.0/8, ::1, localhost, where the sandbox runs). Redirects to another "
            "host are not followed: the run stops and names where the API points."
        ),
    ),
    th.Property(
        "start_date",
        th.DateTimeType,
        title="Start date",
        description="Emit only records with `updatedAt` at or after this instant.",
    ),
    th.Property(
        "requests_per_minute",
        th.IntegerType(minimum=1),
        default=100,
        title="Requests per minute",
        description=(
            "Client-side ceiling per token, shared by every stream and bot using that "
            "token, retries included. BotPenguin allows 100."
        ),
    ),
    th.Property(
        "max_parallel_tokens",
        th.IntegerType(minimum=1),
        default=16,
        title="Max parallel tokens",
        description=(
            "How many tokens' listings are read at the same time (threads mostly waiting on "
            "the network; what they read ahead is bounded whatever the number of tokens; "
            "records and state are written in the usual order). Bots "
            "sharing a token are read one after the other. `1` reads every listing in turn "
            "(docs/concurrency.md)."
        ),
    ),
    th.Property(
        "pages_in_flight",
        th.IntegerType(minimum=1, maximum=16),
        default=DEFAULT_PAGES_IN_FLIGHT,
        title="Pages in flight",
        description=(
            "Most pages of one listing requested at once, when the API answers too slowly "
            "for one request at a time to use the token's allowance (full scans of listings "
            "seen newest first by some key; each batch is confirmed against page 1, so "
            "conversations arriving meanwhile cost no record). `1`: always one request at a time "
            "(docs/concurrency.md)."
        ),
    ),
    th.Property(
        "request_timeout",
        th.NumberType(exclusive_minimum=0),
        default=60,
        title="Request timeout",
        description=(
            "Seconds one request may take in total (connect, headers and the whole body) "
            "before it is cut off and retried; a slowly trickling answer is cut too."
        ),
    ),
    th.Property(
        "max_retries",
        th.IntegerType(minimum=1),
        default=8,
        title="Max retries",
        description="Attempts per request (first try included) before the run fails.",
    ),
    th.Property(
        "snake_case_fields",
        th.BooleanType,
        default=False,
        title="snake_case field names",
        description=(
            "Emit snake_case names in schemas and records (`isOnline` -> `is_online`, "
            "`_agentAssigned` -> `agent_assigned`; `_id` is kept). The replication key "
            "becomes `updated_at`, so switching this on starts a full re-sync."
        ),
    ),
    th.Property(
        "undocumented_fields",
        th.StringType,
        default="evolve",
        allowed_values=list(UNDOCUMENTED_MODES),
        title="Undocumented fields",
        description=(
            "What happens to top-level fields the API sends but does not document. "
            "`evolve`: each becomes a column (type inferred, declared in a SCHEMA "
            "message, kept in the state for later runs). `json`: all of them go into one "
            "object column, `undocumentedFields`. `discard`: dropped. Each is named once "
            "per run in the log (docs/schema-evolution.md)."
        ),
    ),
    th.Property(
        "max_undocumented_columns",
        th.IntegerType(minimum=0),
        default=MAX_COLUMNS,
        title="Max undocumented columns",
        description=(
            "With `undocumented_fields: evolve`, at most this many learned columns per "
            "stream; later new fields go into the `undocumentedFields` column, with a "
            "warning (PostgreSQL allows 1,600 columns per table)."
        ),
    ),
    th.Property(
        "scan_mode",
        th.StringType,
        default="auto",
        allowed_values=list(SCAN_MODES),
        title="Scan mode",
        description=(
            "`auto`: once a full read of a bot's listing has shown it is ordered newest "
            "first (by `updatedAt`, last message or creation), later runs stop reading it "
            "once past what earlier runs covered; what that order does not bring to the top "
            "comes with the next full read (`full_scan_every_hours`). `full`: read every "
            "listing to the end on every run."
        ),
    ),
    th.Property(
        "full_scan_every_hours",
        th.NumberType(minimum=0),
        default=24,
        title="Full scan every hours",
        description=(
            "The longest time between two full reads of a bot's listing; a full read emits "
            "every change an early-stopped run could not see (the longest a change can wait, "
            "in a listing not ordered by `updatedAt`). `0` makes every run a full read."
        ),
    ),
).to_dict()
# The SDK's own setting; with full-table replication it makes a mirror
# (docs/warehouses.md: Deletions).
CONFIG_JSONSCHEMA["properties"].update(EMIT_ACTIVATE_VERSION_CONFIG["properties"])
#: The tap's own settings, in order (the SDK appends its built-in ones to the class's schema
#: when a tap validates its config, so tests and docs take the names from here).
SETTING_NAMES: tuple[str, ...] = tuple(CONFIG_JSONSCHEMA["properties"])
