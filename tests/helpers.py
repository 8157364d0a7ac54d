"""What the tests share, one helper per need; tests/conftest.py holds only pytest's fixtures.

Sections, in order: constants; bots and settings; running the tap; what the sandbox was
asked; what was logged; the short rate window; proxies; hostile records (hypothesis);
Meltano and the warehouses.
"""

from __future__ import annotations

import copy
import dataclasses
import fcntl
import gzip
import hashlib
import io
import json
import logging
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlparse

import pytest
import yaml
from hypothesis import strategies as st

from tap_botpenguin.sandbox import (
    PAGE_BOUND_MESSAGE,
    QUIET_BOT,
    SANDBOX_CUSTOMER,
    SANDBOX_TOKEN,
    WEBSITE_BOT,
    WHATSAPP_BOT,
    Bot,
    Sandbox,
    default_bots,
)
from tap_botpenguin.sandbox.env import agency_settings, sandbox_settings
from tap_botpenguin.sandbox.undocumented import UNDOCUMENTED_FIELDS
from tap_botpenguin.tap import TapBotPenguin

# --- constants -------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
MELTANO = Path(sys.executable).parent / "meltano"
#: The end-to-end tests' PostgreSQL (scripts/postgres.sh starts it and exports the port).
PG = {
    "host": os.environ.get("TEST_PG_HOST", "127.0.0.1"),
    "port": int(os.environ.get("TEST_PG_PORT", "5432")),
    "user": "tap_botpenguin",
    "password": "tap_botpenguin",
    "dbname": "tap_botpenguin",
}
ALL_BOTS = [WEBSITE_BOT, WHATSAPP_BOT, QUIET_BOT]
STREAM_TYPES = {"leads": "lead", "chats": "non-lead"}

#: dbt's closing line when every model and test of transform/ passed (README says the same).
DBT_NODES = 58
DBT_PASSED = f"Done. PASS={DBT_NODES} WARN=0 ERROR=0"
#: The tap's log line naming undocumented fields (tests/test_schema_evolution*.py).
ANNOUNCED = "field(s) its documentation does not list"
#: The type the tap learns for each of the sandbox's undocumented fields (numbers: `number`).
LEARNED_KINDS = {
    name: "number" if kind == "integer" else kind for name, kind in UNDOCUMENTED_FIELDS.items()
}

#: `HYPOTHESIS_PROFILE=wide`: property-based tests draw new random examples, ten times as many
#: (tests/conftest.py loads the profile).
WIDE = os.environ.get("HYPOTHESIS_PROFILE") == "wide"


def examples(count: int) -> int:
    """How many examples a property-based test draws under the active profile."""
    return count * 10 if WIDE else count


# --- bots and settings -----------------------------------------------------------------------


@cache
def _default_bots(shape: str) -> list[Bot]:
    return default_bots(shape=shape)


def fresh_bots(shape: str = "documented") -> list[Bot]:
    """The demo account's bots, deep-copied so a test may change its inboxes.

    `shape` (sandbox `SHAPES`): `demo` gives one bot of each shape, the website bot's
    pages mixing documented and real records.
    """
    return copy.deepcopy(_default_bots(shape))


def own_tokens(bots: list[Bot]) -> list[Bot]:
    """The same bots, each with a token of its own (listings of different tokens)."""
    return [
        dataclasses.replace(bot, token=f"own-token-{n}-{bot.bot_id[-6:]}-9c4e")
        for n, bot in enumerate(bots)
    ]


def tap_at(moment: datetime, sandbox: Sandbox) -> type[TapBotPenguin]:
    """The real tap, on a clock that says `moment` (to run it hours or days apart), and the
    sandbox's clock stopped at `moment` too: the API's clock moves with the tap's, as it does
    between real runs (the tap trusts the API's `Date`, not its own clock); changes made
    through the sandbox from then on carry that time unless they name their own."""
    sandbox.set_clock(moment)

    class TapAt(TapBotPenguin):
        def now(self) -> datetime:
            return moment

    return TapAt


def base_config(sandbox: Sandbox, **overrides: Any) -> dict[str, Any]:
    """Config reading every sandbox bot with the shared token."""
    config: dict[str, Any] = {
        "bot_token": SANDBOX_TOKEN,
        "customer_id": SANDBOX_CUSTOMER,
        "bots": [{"bot_id": bot_id} for bot_id in ALL_BOTS],
        "api_url": sandbox.url,
        "max_retries": 3,
        "request_timeout": 5,
    }
    config.update(overrides)
    return config


def own_token_config(sandbox: Sandbox, **overrides: Any) -> dict[str, Any]:
    """`base_config`, but every bot with the token the sandbox gave it."""
    bots = [{"bot_id": bot.bot_id, "bot_token": bot.token} for bot in sandbox.bots]
    return base_config(sandbox, bots=bots, **overrides)


def catalog_selecting(
    config: dict[str, Any], stream: str, keep: Callable[[str], bool]
) -> dict[str, Any]:
    """The discovered catalog as Meltano writes `select` patterns into it: `selected` on every
    breadcrumb, all true except on the top-level properties of `stream` that `keep` refuses
    (`!leads.profile` leaves `selected: true` on what `profile` holds; its parent wins)."""
    catalog = TapBotPenguin(config=config).catalog_dict
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            breadcrumb = item["breadcrumb"]
            chosen = entry["tap_stream_id"] != stream or not breadcrumb or keep(breadcrumb[1])
            item["metadata"]["selected"] = chosen or len(breadcrumb) > 2
    return catalog


def batch_settings(root: Path) -> dict[str, Any]:
    """`batch_config` writing gzipped JSON Lines files under `root` (created here)."""
    root.mkdir(parents=True, exist_ok=True)
    return {
        "encoding": {"format": "jsonl", "compression": "gzip"},
        "storage": {"root": root.as_uri(), "prefix": "bp-"},
    }


def closed_port_url() -> str:
    """An http URL on loopback where nothing listens (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- running the tap -------------------------------------------------------------------------


@dataclass
class SyncResult:
    """What a tap run wrote: Singer messages on stdout (and stderr for CLI runs)."""

    messages: list[dict[str, Any]]
    stderr: str = ""
    exit_code: int = 0
    error: BaseException | None = None
    stdout: str = ""
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for message in self.messages:
            if message["type"] == "RECORD":
                grouped[message["stream"]].append(message["record"])
        self.records = dict(grouped)

    @property
    def states(self) -> list[dict[str, Any]]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def final_state(self) -> dict[str, Any]:
        return self.states[-1]

    def schemas(self) -> dict[str, dict[str, Any]]:
        return {m["stream"]: m["schema"] for m in self.messages if m["type"] == "SCHEMA"}


def _parse(stdout: str) -> list[dict[str, Any]]:
    # Split on "\n" only, as targets do: str.splitlines() would also split on U+0085 or
    # U+2028, which JSON strings may contain unescaped.
    return [json.loads(line) for line in stdout.split("\n") if line.strip()]


def record_golden(messages: list[dict[str, Any]]) -> None:
    """With `GOLDEN_DIR` set, append a run's message stream to a file named by the test, so
    that the streams of every scenario can be compared across a refactor."""
    directory = os.environ.get("GOLDEN_DIR")
    if not directory:
        return
    test = os.environ.get("PYTEST_CURRENT_TEST", "unknown").rsplit(" ", 1)[0]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", test)[:200]
    with open(Path(directory) / f"{name}.jsonl", "a", encoding="utf-8") as out:
        out.write(json.dumps({"run": len(messages)}) + "\n")
        for message in messages:
            out.write(json.dumps(message, sort_keys=True) + "\n")


def fail_on_endless_listing(text: str) -> None:
    """Fail by name when the sandbox refused a page far past a listing's end (`page_bound`):
    the tap did not see the end of a listing, and would otherwise loop until a timeout."""
    for line in text.splitlines():
        if PAGE_BOUND_MESSAGE in line:
            pytest.fail(f"a listing never ended: {line}", pytrace=False)


def run_in_process(
    config: dict[str, Any],
    state: dict[str, Any] | None = None,
    tap_class: type[TapBotPenguin] = TapBotPenguin,
    catalog: dict[str, Any] | None = None,
) -> SyncResult:
    """Sync in this process (fast; logs go to pytest's caplog). Errors are returned."""
    buffer = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    error: BaseException | None = None
    with redirect_stdout(buffer):
        try:
            tap_class(config=config, state=copy.deepcopy(state), catalog=catalog).sync_all()
        except Exception as exc:
            error = exc
        buffer.flush()
    stdout = buffer.buffer.getvalue().decode()  # type: ignore[attr-defined]
    fail_on_endless_listing(str(error or ""))
    messages = _parse(stdout)
    record_golden(messages)
    return SyncResult(messages, error=error, stdout=stdout)


def run_cli(
    config: dict[str, Any] | None,
    tmp_path: Path,
    state: dict[str, Any] | None = None,
    args: list[str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    catalog: dict[str, Any] | None = None,
) -> SyncResult:
    """Run `python -m tap_botpenguin` as a user would; returns exit code, stdout, stderr."""
    command = [sys.executable, "-m", "tap_botpenguin"]
    if config is not None:
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps(config))
        command += ["--config", str(config_path)]
    if state is not None:
        state_path = tmp_path / "state.json"
        state_path.write_text(json.dumps(state))
        command += ["--state", str(state_path)]
    if catalog is not None:
        catalog_path = tmp_path / "catalog.json"
        catalog_path.write_text(json.dumps(catalog))
        command += ["--catalog", str(catalog_path)]
    command += args or []
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_BOTPENGUIN_")}
    run_env.update(env or {})
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=run_env,
        check=False,
        cwd=tmp_path,
    )
    fail_on_endless_listing(done.stderr)
    messages = _parse(done.stdout) if not args else []
    record_golden(messages)
    return SyncResult(messages, stderr=done.stderr, exit_code=done.returncode, stdout=done.stdout)


def batch_rows(result: SyncResult) -> dict[str, list[dict[str, Any]]]:
    """The rows of the batch files a run's BATCH messages name, per stream (JSON Lines, gzip
    or not), in the order sent."""
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for message in result.messages:
        if message["type"] != "BATCH":
            continue
        for url in message["manifest"]:
            data = Path(urlparse(url).path).read_bytes()
            if message["encoding"].get("compression") == "gzip":
                data = gzip.decompress(data)
            rows[message["stream"]] += _parse(data.decode())
    return dict(rows)


# --- what the sandbox was asked ----------------------------------------------------------------

#: A listing: (bot id, `type` as the API names it: "lead" or "non-lead").
Listing = tuple[str, str]


def pages_asked(sandbox: Sandbox, since: int = 0) -> dict[Listing, list[int]]:
    """The pages asked for per listing, in the order received, from listing request `since` on."""
    pages: dict[Listing, list[int]] = {}
    for r in sandbox.listing_requests()[since:]:
        pages.setdefault((r.params["botId"], r.params["type"]), []).append(int(r.params["page"]))
    return pages


def pages_requested(sandbox: Sandbox, bot_id: str | None, kind: str, since: int = 0) -> list[int]:
    """The pages asked for in `kind` listings of `bot_id` (None: of any bot), in the order
    received, from listing request `since` on."""
    return [
        int(r.params["page"])
        for r in sandbox.listing_requests()[since:]
        if r.params["type"] == kind and bot_id in (None, r.params["botId"])
    ]


def requests_per_listing(sandbox: Sandbox, since: int = 0) -> Counter[Listing]:
    """How many requests each listing got, from listing request `since` on."""
    return Counter(
        (r.params["botId"], r.params["type"]) for r in sandbox.listing_requests()[since:]
    )


# --- what was logged ---------------------------------------------------------------------------


def logged(
    caplog: pytest.LogCaptureFixture, *, level: int = logging.NOTSET, containing: str = ""
) -> list[str]:
    """The messages caplog holds at `level` or above that contain `containing`, in order."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= level and containing in r.getMessage()
    ]


# --- the short rate window ---------------------------------------------------------------------

#: ShortWindowTap's rate window in seconds: waits of >= 1 s are announced, so they show up in
#: the log.
SHORT_WINDOW = 1.5


class ShortWindowTap(TapBotPenguin):
    """The real tap with a 1.5 s window instead of 60 s, so the limit is reached quickly."""

    rate_window_seconds: ClassVar[float] = SHORT_WINDOW


def max_in_any_window(times: list[float], window: float) -> int:
    """The most of `times` that fall in any `window` seconds starting at one of them."""
    return max(sum(1 for t in times if start <= t < start + window) for start in times)


# --- proxies -----------------------------------------------------------------------------------

#: The environment variables `requests` reads proxies from, in either case.
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


class RefusingProxy:
    """A real HTTP proxy on loopback that refuses every request with `status`: a tunnel to an
    https `api_url` (`CONNECT`) and a forwarded plain-http request alike. `requests` holds
    what it was asked (`CONNECT 127.0.0.1:443`, `GET http://...`), in order."""

    def __init__(self, status: int = 407) -> None:
        self.status = status
        self.requests: list[str] = []
        proxy = self

        class Refuse(BaseHTTPRequestHandler):
            def refuse(self) -> None:
                proxy.requests.append(f"{self.command} {self.path}")
                self.send_response(proxy.status)
                if proxy.status == 407:
                    self.send_header("Proxy-Authenticate", 'Basic realm="proxy"')
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_CONNECT = do_GET = refuse

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: tests assert on what was asked, not on a log."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)

    @property
    def address(self) -> str:
        """`host:port`, as the tap's lines name a proxy."""
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def __enter__(self) -> RefusingProxy:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


# --- TLS --------------------------------------------------------------------------------------


def serve_tls(sandbox: Sandbox, directory: Path) -> tuple[str, Path]:
    """Serve a started sandbox over TLS with a self-signed certificate for 127.0.0.1 (made by
    `openssl` in `directory`): its https URL and the certificate (PEM), a CA of its own."""
    cert, key = directory / "sandbox-cert.pem", directory / "sandbox-key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = sandbox._server  # the listening socket, wrapped: each connection starts with TLS
    assert server is not None, "sandbox not started"
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return sandbox.url.replace("http://", "https://"), cert


# --- hostile records (hypothesis) --------------------------------------------------------------

#: Documented top-level fields of a conversation, and nested paths (dotted).
RECORD_FIELDS = [
    "uuid",
    "isOnline",
    "status",
    "websiteVisits",
    "_agentAssigned",
    "lastMessage",
    "lastSeenAt",
    "profile",
    "createdAt",
    "updatedAt",
]
NESTED_PATHS = [
    "lastMessage.at",
    "lastMessage.by",
    "profile.userDetails.contact",
    "profile.notes",
    "profile.userDetails.tags",
    "profile.userDetails.attributes",
    "profile.userDetails.name",
]

#: Odd scalars an API may send in any field.
hostile_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(
        [
            "5",
            "3.5",
            "true",
            "false",
            "yes",
            "",
            "\x00",
            "nul\x00in\x00side",
            "ESCALATED",
            "2026-06-01T10:00:00",
            "2026-06-01 10:00:00+05:30",
            "1717236000000",
            "1717236000",
            "Tue, 02 Jun 2026 10:00:00 GMT",
            "yesterday",
            "01/06/2026",
            "😀" * 5,
        ]
    ),
)
#: Those scalars, and lists and objects of them.
hostile_values = st.recursive(
    hostile_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
#: A change to a record: (dotted path, hostile value or "DELETE"), for `set_at`.
mutation = st.tuples(
    st.sampled_from(RECORD_FIELDS + NESTED_PATHS + ["extraField", "_extra", "profile.extra"]),
    st.one_of(hostile_values, st.just("DELETE")),
)


def set_at(record: dict[str, Any], path: str, value: Any) -> None:
    """Set the dotted `path` of `record` to `value` (objects made on the way; "DELETE" removes)."""
    *parents, last = path.split(".")
    target: Any = record
    for part in parents:
        if not isinstance(target.get(part), dict):
            target[part] = {}
        target = target[part]
    if value == "DELETE":
        target.pop(last, None)
    else:
        target[last] = value


def value_at(record: dict[str, Any], path: str) -> Any:
    """The value at the dotted `path` of `record`, or None where the path ends early."""
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def strings_in(value: Any) -> list[str]:
    """Every string in a JSON value, object keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *strings_in(v)]]
    if isinstance(value, list):
        return [s for item in value for s in strings_in(item)]
    return []


# --- Meltano and the warehouses ----------------------------------------------------------------


@contextmanager
def one_meltano_at_a_time(project: Path) -> Iterator[None]:
    """Meltano keeps per-project run files (`.meltano/run/`: the discovered catalog, configs):
    two runs side by side in one project (two pytest-xdist workers) read each other's."""
    digest = hashlib.sha256(str(project.resolve()).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"meltano-{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def run_script(tmp_path: Path, script: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`scripts/<script>` (demo.sh, orchestrate.sh) as a user runs it from the repository: its
    own sandbox, output dir, dbt files and Meltano database."""
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",  # scripts/postgres.sh needs runuser
        "HOME": str(tmp_path),
        "DEMO_OUTPUT_DIR": str(tmp_path / "output"),
        "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}",
        **{
            f"DBT_{adapter}_{kind.upper()}_PATH": str(tmp_path / "dbt" / adapter / kind)
            for adapter in ("DUCKDB", "POSTGRES")
            for kind in ("target", "log")
        },
        **({"TEST_PG_PORT": os.environ["TEST_PG_PORT"]} if "TEST_PG_PORT" in os.environ else {}),
        **env,
    }
    with one_meltano_at_a_time(ROOT):
        return subprocess.run(
            [f"scripts/{script}"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )


class Meltano:
    """Runs `meltano` as users do, in a project (the repository's by default), reading the
    sandbox, with its own system database (so its own state)."""

    def __init__(self, tmp_path: Path, sandbox: Sandbox, cwd: Path = ROOT, **env: str) -> None:
        self.cwd = cwd
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TAP_BOTPENGUIN_", "TARGET_", "MELTANO_", "DBT_"))
        }
        self.env.update(sandbox_settings(sandbox.url))
        self.env["MELTANO_DATABASE_URI"] = f"sqlite:///{tmp_path / 'meltano.db'}"
        self.env["MELTANO_SEND_ANONYMOUS_USAGE_STATS"] = "false"
        # dbt's compiled files and logs per test, so that tests may run side by side.
        for adapter in ("DUCKDB", "POSTGRES"):
            self.env[f"DBT_{adapter}_TARGET_PATH"] = str(tmp_path / "dbt" / adapter / "target")
            self.env[f"DBT_{adapter}_LOG_PATH"] = str(tmp_path / "dbt" / adapter / "logs")
        self.env.update(env)

    def start(self, *args: str) -> subprocess.Popen[str]:
        """`meltano <args>` left running, for runs meant to overlap (shards): no project lock,
        so only in a project of the test's own (`clean_project`)."""
        return subprocess.Popen(
            [str(MELTANO), *args],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, *args: str, expect_success: bool = True) -> subprocess.CompletedProcess[str]:
        with one_meltano_at_a_time(self.cwd):
            done = subprocess.run(
                [str(MELTANO), *args],
                cwd=self.cwd,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
        assert (done.returncode == 0) == expect_success, done.stderr[-4000:]
        return done

    def state_partitions(self, state_id: str) -> dict[tuple[str, str], dict[str, Any]]:
        """The state Meltano keeps under `state_id`, as {(stream, botId): partition}."""
        state = json.loads(self.run("state", "get", state_id).stdout)["singer_state"]
        return {
            (stream, partition["context"]["botId"]): partition
            for stream, bookmarks in state["bookmarks"].items()
            for partition in bookmarks["partitions"]
        }


def clean_project(tmp_path: Path) -> Path:
    """A Meltano project as a user starts one from this repository: its meltano.yml and dbt
    project, nothing run yet (no system database, run directory or shards.meltano.yml). The
    installed plugins are the repository's (linked: installing them again takes minutes)."""
    project = tmp_path / "project"
    (project / ".meltano").mkdir(parents=True)
    (project / "meltano.yml").write_text((ROOT / "meltano.yml").read_text())
    (project / "transform").symlink_to(ROOT / "transform")
    (project / "orchestrate").symlink_to(ROOT / "orchestrate")
    for kind in ("extractors", "loaders", "utilities"):
        (project / ".meltano" / kind).symlink_to(ROOT / ".meltano" / kind)
    return project


#: orchestrate/shards.sandbox.yml: the sandbox's agency account as two shards.
SANDBOX_SHARDS: dict[str, Any] = yaml.safe_load(
    (ROOT / "orchestrate" / "shards.sandbox.yml").read_text()
)
#: shard name -> its bots, as orchestrate/shards.sandbox.yml lists them
SHARD_BOTS = {shard["name"]: set(shard["bots"]) for shard in SANDBOX_SHARDS["shards"]}


def shards_project(tmp_path: Path, prefix: str) -> Path:
    """A clean project whose shards.yml is orchestrate/shards.sandbox.yml with its own prefix."""
    project = clean_project(tmp_path)
    (project / "shards.yml").write_text(yaml.safe_dump({**SANDBOX_SHARDS, "schema_prefix": prefix}))
    return project


def shards_meltano(tmp_path: Path, sandbox: Sandbox, project: Path, prefix: str) -> Meltano:
    """Meltano in a shards project: the sandbox's agency tokens in the project's `.env`, as
    a user keeps them, beside the main plugin's settings (its token, bots and a `bot_id`,
    none of which may reach a shard), PostgreSQL for the shards' targets (each its own
    schema) and for dbt over all of them (`<prefix>_analytics`)."""
    settings = {**agency_settings(sandbox.url), "TAP_BOTPENGUIN_BOT_ID": WEBSITE_BOT}
    (project / ".env").write_text("".join(f"{k}='{v}'\n" for k, v in settings.items()))
    return Meltano(
        tmp_path,
        sandbox,
        cwd=project,
        **postgres_env(None),
        **dbt_postgres_env(prefix, sources=False),
    )


def shard_schema(prefix: str, shard: str) -> str:
    """The target schema of `shard` under `prefix` (orchestrate/shards.py's rule)."""
    return f"{prefix}_{shard.replace('-', '_')}"


def assert_every_shard_loaded_once(pg: Any, prefix: str, sandbox: Sandbox) -> None:
    """Each shard's schema holds every record of its bots once, and no other shard's."""
    for shard, bots in SHARD_BOTS.items():
        schema = shard_schema(prefix, shard)
        for stream, kind in STREAM_TYPES.items():
            rows = pg.execute(f'select "_id", "botId" from "{schema}"."{stream}"').fetchall()
            ids = Counter(record_id for record_id, _ in rows)
            expected = {rid for (bot_id, rid) in sandbox.all_records(kind) if bot_id in bots}
            assert set(ids) == expected, (schema, stream)
            assert max(ids.values()) == 1, (schema, stream, "duplicates")
            assert {bot for _, bot in rows} <= bots, (schema, stream, "another shard's bots")


def postgres_env(schema: str | None) -> dict[str, str]:
    """target-postgres settings for the test database, loading into `schema` (None: the
    extractor's `load_schema`, as shards load)."""
    settings = {
        "TARGET_POSTGRES_HOST": str(PG["host"]),
        "TARGET_POSTGRES_PORT": str(PG["port"]),
        "TARGET_POSTGRES_USER": str(PG["user"]),
        "TARGET_POSTGRES_PASSWORD": str(PG["password"]),
        "TARGET_POSTGRES_DATABASE": str(PG["dbname"]),
    }
    if schema is not None:
        settings["TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA"] = schema
    return settings


def dbt_postgres_env(schema: str, *, sources: bool = True) -> dict[str, str]:
    """dbt-postgres reading the raw tables in `schema`, building in `<schema>_analytics`
    (`sources=False`: the raw tables are the utility's own `source_schema`, as for shards)."""
    settings = {
        "DBT_POSTGRES_HOST": str(PG["host"]),
        "DBT_POSTGRES_PORT": str(PG["port"]),
        "DBT_POSTGRES_USER": str(PG["user"]),
        "DBT_POSTGRES_PASSWORD": str(PG["password"]),
        "DBT_POSTGRES_DBNAME": str(PG["dbname"]),
        "DBT_POSTGRES_SCHEMA": f"{schema}_analytics",
    }
    if sources:
        settings["DBT_POSTGRES_SOURCE_SCHEMA"] = schema
    return settings
