"""Shards: one Meltano extractor per token, declared once in a shards file (docs/scaling.md).

A shard is a token and the bots it reads. Shards run at the same time, on one machine or many,
so each gets what concurrent runs must not share:

- its own Meltano plugin (`tap-botpenguin--<name>`, inheriting `tap-botpenguin`): its own run
  directory (two runs of one plugin overwrite each other's discovered catalog), config and
  state ID;
- its own namespace (`tap_botpenguin__<name>`) and its own token, bots and customer (`bot_id`
  set empty): the main plugin's (in meltano.yml or `TAP_BOTPENGUIN_*` in `.env`) never reach a
  shard, where they would override its own; its other settings are inherited;
- its own target schema (`<schema_prefix>_<name>`, through Meltano's `load_schema`): concurrent
  targets never race to create one schema, one table or one new column, and a shard that mirrors
  its inbox (ACTIVATE_VERSION) deletes only its own rows. dbt reads the union of the shards'
  schemas (`dbt-<adapter>--shards`, also written here).

`python -m orchestrate.shards write [shards.yml]` checks the file and writes
`shards.meltano.yml` (included by meltano.yml); `check` also checks that every shard's token
variable is set and that no two shards hold the same token; `prepare` checks, writes and
readies Meltano's system database, once before the shards start; `schemas` prints the schemas.
Every refusal is one line naming the shard and the problem. Tokens are looked for where Meltano
looks: the environment, then the project's `.env`. Python, PyYAML and python-dotenv only (Meltano
and Dagster both depend on them): the tap's environment and the orchestrator's both run it.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from dotenv import dotenv_values

#: The project file meltano.yml includes (`include_paths`); written, never edited by hand.
GENERATED = "shards.meltano.yml"
DEFAULT_SHARDS_FILE = "shards.yml"
BASE_PLUGIN = "tap-botpenguin"
#: dbt utilities that read every shard's schema (DuckDB takes one writer at a time: its
#: shards run in turn, docs/scaling.md).
DBT_UTILITIES = ("dbt-postgres", "dbt-duckdb", "dbt-snowflake")

_NAME = re.compile(r"[a-z][a-z0-9-]{0,39}")
#: Upper case, as environment variables are: a token pasted here (lower-case hex) is refused
#: before any line could name it.
_VARIABLE = re.compile(r"[A-Z_][A-Z0-9_]*")
_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,29}")
#: Settings a shard owns: in the shared `config` they would give every shard one token or
#: one set of bots.
_SHARD_OWNED = ("bot_token", "bots", "bot_id")
#: Settings whose `TAP_BOTPENGUIN__<NAME>_*` variable would override what shards.yml says a
#: shard reads, behind the checks (one token in two shards, one bot in two).
_SHARD_IDENTITY = (*_SHARD_OWNED, "customer_id")
_SHARD_KEYS = {"name", "token_env", "bots", "customer_id", "config"}
_FILE_KEYS = {"schema_prefix", "config", "shards"}


class ShardsError(Exception):
    """A shards file or environment the shards cannot run with: the message is one line."""


@dataclass(frozen=True)
class Shard:
    """One token and its bots: one Meltano plugin, one target schema, one state ID."""

    name: str
    token_env: str
    bots: tuple[dict[str, str], ...]
    schema: str
    config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def plugin(self) -> str:
        """The Meltano extractor that runs this shard."""
        return f"{BASE_PLUGIN}--{self.name}"

    @property
    def namespace(self) -> str:
        """Its own env prefix (`TAP_BOTPENGUIN__<NAME>_`), apart from the main plugin's."""
        return "tap_botpenguin__" + self.name.replace("-", "_")

    def plugin_definition(self) -> dict[str, Any]:
        """The extractor's entry in shards.meltano.yml."""
        config = {
            **self.config,
            "bot_token": "${" + self.token_env + "}",
            "bots": [dict(bot) for bot in self.bots],
            # Set, so that the main plugin's bot_id (meltano.yml or TAP_BOTPENGUIN_BOT_ID in
            # .env) is not inherited: the tap reads it besides `bots`. Empty means none.
            "bot_id": "",
        }
        return {
            "name": self.plugin,
            "inherit_from": BASE_PLUGIN,
            "namespace": self.namespace,
            "load_schema": self.schema,
            "config": config,
        }


@dataclass(frozen=True)
class Shards:
    """Every shard of a shards file, checked: names, tokens, bots and schemas all distinct."""

    shards: tuple[Shard, ...]
    source: Path

    def schemas(self) -> list[str]:
        """The target schemas, in the file's order (dbt unions them in this order)."""
        return [shard.schema for shard in self.shards]

    def meltano_file(self) -> str:
        """shards.meltano.yml: one extractor per shard, one dbt utility per adapter."""
        utilities = [
            {
                "name": f"{utility}--shards",
                "inherit_from": utility,
                "config": {"source_schema": ",".join(self.schemas())},
            }
            for utility in DBT_UTILITIES
        ]
        document = {
            "plugins": {
                "extractors": [shard.plugin_definition() for shard in self.shards],
                "utilities": utilities,
            }
        }
        header = (
            f"# Written from {self.source.name} by `python -m orchestrate.shards write"
            f" {self.source.name}`:\n# edit that file, not this one (docs/scaling.md).\n"
        )
        dumped = yaml.safe_dump(
            document, sort_keys=False, default_flow_style=False, allow_unicode=True
        )
        return header + dumped

    def check_environment(self, environ: Mapping[str, str]) -> None:
        """Every token variable set, no token in two shards, nothing overriding a shard's own.

        Two shards with one token would share one allowance of 100 requests a minute and slow
        each other down with 429s. `environ` is what Meltano sees (`project_environment`).
        """
        holders: dict[str, Shard] = {}
        for shard in self.shards:
            for setting in _SHARD_IDENTITY:
                variable = f"{shard.namespace}_{setting}".upper()
                if variable in environ:
                    raise ShardsError(
                        f"shard {shard.name}: {variable} is set and would override what"
                        f" {self.source.name} says the shard reads; unset it (its token goes in"
                        f" {shard.token_env}, its bots and customer in {self.source.name})"
                    )
            token = environ.get(shard.token_env, "").strip()
            if not token:
                raise ShardsError(
                    f"shard {shard.name}: {shard.token_env} is not set (its token goes there)"
                )
            if token in holders:
                raise ShardsError(
                    f"shards {holders[token].name} and {shard.name} hold the same token"
                    f" ({holders[token].token_env} and {shard.token_env}): one token is one"
                    " allowance, so its bots belong in one shard"
                )
            holders[token] = shard


def project_environment(project: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables Meltano sees in `project`: its `.env`, then the environment over it."""
    dotenv = project / ".env"
    from_file = dotenv_values(dotenv) if dotenv.is_file() else {}
    return {**{k: v for k, v in from_file.items() if v is not None}, **environ}


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML where a key given twice is an error.

    PyYAML keeps the last one silently: a second `shards:` would drop every shard of the first.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_shards(path: Path) -> Shards:
    """Read and check a shards file; `ShardsError` (one line) for anything that would break."""
    try:
        text = path.read_text(encoding="utf-8")
        document = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except OSError as error:
        raise ShardsError(f"{path}: cannot be read ({error.strerror or error})") from None
    except yaml.constructor.ConstructorError as error:
        mark = error.problem_mark
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ShardsError(f"{path}: {error.problem}{where}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ShardsError(f"{path}: not valid YAML{where}") from None
    if not isinstance(document, dict):
        raise ShardsError(f"{path}: expected a mapping with a `shards` list")
    _no_unknown_keys(path.name, document, _FILE_KEYS)
    prefix = document.get("schema_prefix", "botpenguin")
    if not isinstance(prefix, str) or not _SCHEMA.fullmatch(prefix):
        raise ShardsError(
            f"{path.name}: schema_prefix must be a lower-case SQL name of 1-30 letters, digits"
            f" or _, not starting with a digit (got {prefix!r})"
        )
    if prefix.startswith("pg_"):
        raise ShardsError(f"{path.name}: schema_prefix may not start with pg_ (PostgreSQL's own)")
    shared = _config(path.name, document.get("config"))
    entries = document.get("shards")
    if not isinstance(entries, list) or not entries:
        raise ShardsError(f"{path.name}: `shards` must be a list of at least one shard")
    shards = tuple(_shard(entry, n, prefix, shared) for n, entry in enumerate(entries, 1))
    _all_distinct(shards)
    return Shards(shards=shards, source=path)


def _shard(entry: object, number: int, prefix: str, shared: Mapping[str, Any]) -> Shard:
    if not isinstance(entry, dict):
        raise ShardsError(f"shard {number}: expected a mapping with name, token_env and bots")
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ShardsError(
            f"shard {number}: name must be 1-40 lower-case letters, digits or -, starting"
            f" with a letter (got {name!r})"
        )
    label = f"shard {name}"
    _no_unknown_keys(label, entry, _SHARD_KEYS)
    token_env = entry.get("token_env")
    if not isinstance(token_env, str) or not _VARIABLE.fullmatch(token_env):
        raise ShardsError(
            f"{label}: token_env must name the environment variable that holds its token"
            " (the token itself never goes in this file)"
        )
    config = {**shared, **_config(label, entry.get("config"))}
    customer = entry.get("customer_id", config.get("customer_id"))
    if customer is not None:
        config["customer_id"] = _identifier(label, "customer_id", customer)
    bots = _bots(label, entry.get("bots"), customer is not None)
    schema = f"{prefix}_{name.replace('-', '_')}"
    if len(schema) > 63:  # PostgreSQL's identifier limit
        raise ShardsError(f"{label}: its schema {schema} is longer than 63 characters")
    return Shard(name=name, token_env=token_env, bots=bots, schema=schema, config=config)


def _bots(label: str, value: object, has_customer: bool) -> tuple[dict[str, str], ...]:
    if not isinstance(value, list) or not value:
        raise ShardsError(f"{label}: bots must be a list of at least one bot id")
    bots = []
    for item in value:
        entry = {"bot_id": item} if isinstance(item, str) else item
        if not isinstance(entry, dict) or set(entry) - {"bot_id", "customer_id"}:
            raise ShardsError(
                f"{label}: each bot is an id or {{bot_id, customer_id}} (its token is the shard's)"
            )
        if entry.get("bot_id") is None:
            raise ShardsError(f"{label}: a bot without a bot_id")
        bot = {key: _identifier(label, key, val) for key, val in entry.items() if val is not None}
        if not has_customer and not bot.get("customer_id"):
            raise ShardsError(
                f"{label}: bot {bot['bot_id']} has no customer_id (give the shard, the shared"
                " config or the bot one)"
            )
        bots.append(bot)
    return tuple(bots)


def _identifier(label: str, key: str, value: object) -> str:
    """A bot or customer id as written, trimmed.

    A string (YAML reads 0777 as 511 and yes as true), without `$` (Meltano would expand it as
    a variable, behind the one-bot-in-one-shard check).
    """
    if not isinstance(value, str) or not value.strip():
        raise ShardsError(
            f"{label}: {key} must be a non-empty string (quote ids YAML could read as numbers)"
        )
    if "$" in value:
        raise ShardsError(f"{label}: {key} {value.strip()!r} holds $, which Meltano would expand")
    return value.strip()


def _config(label: str, value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ShardsError(f"{label}: config must be a mapping of tap settings")
    for key in _SHARD_OWNED:
        if key in value:
            raise ShardsError(
                f"{label}: {key} is the shard's own (token_env and bots), not a config setting"
            )
    return dict(value)


def _no_unknown_keys(label: str, entry: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(set(entry) - known)
    if unknown:
        known_keys = ", ".join(sorted(known))
        raise ShardsError(f"{label}: unknown key {unknown[0]!r} (known: {known_keys})")


def _all_distinct(shards: Sequence[Shard]) -> None:
    """Names, schemas, token variables and bots each belong to one shard."""
    reasons = {
        "name": "two shards with one name",
        "schema": "they would load into one schema",
        "token_env": "one token is one allowance, so its bots belong in one shard",
        "bot": "its records would be loaded twice",
    }
    owners: dict[tuple[str, str], tuple[int, str]] = {}
    for index, shard in enumerate(shards):
        claims = [("name", shard.name), ("schema", shard.schema), ("token_env", shard.token_env)]
        claims += [("bot", bot["bot_id"]) for bot in shard.bots]
        for kind, value in claims:
            owner_index, owner = owners.setdefault((kind, value), (index, shard.name))
            if owner_index == index and kind == "bot" and claims.count((kind, value)) > 1:
                raise ShardsError(f"shard {shard.name}: bot {value} is listed twice")
            if owner_index != index:
                raise ShardsError(
                    f"shards {owner} and {shard.name} share {kind} {value}: {reasons[kind]}"
                )


def check_against_project(shards: Shards, project: Path) -> None:
    """Refuse what clashes with the project, before anything is written.

    No meltano.yml here, one that does not include shards.meltano.yml or has no tap-botpenguin
    (Meltano would never see the shards: "Extractor ... is not known"), a shard's plugin name
    meltano.yml already has (`mirror` would be tap-botpenguin--mirror), or a setting the tap
    does not have (a typo Meltano would pass on silently).
    """
    try:
        text = (project / "meltano.yml").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ShardsError(
            f"no meltano.yml in {project}: run it in the Meltano project, beside meltano.yml"
        ) from None
    try:
        meltano = yaml.safe_load(text)
    except yaml.YAMLError:
        return  # Meltano itself says what is wrong with its project file
    if not isinstance(meltano, dict):
        return
    includes = meltano.get("include_paths") or []
    if not any(
        isinstance(pattern, str) and fnmatch.fnmatch(GENERATED, pattern.removeprefix("./"))
        for pattern in (includes if isinstance(includes, list) else [includes])
    ):
        raise ShardsError(
            f"meltano.yml does not include {GENERATED}, so Meltano would not see the shards:"
            f" add `include_paths: [./{GENERATED}]` to it (docs/scaling.md)"
        )
    plugins = meltano.get("plugins", {})
    extractors = plugins.get("extractors", []) if isinstance(plugins, dict) else []
    names = {entry.get("name") for entry in extractors if isinstance(entry, dict)}
    base = next((e for e in extractors if isinstance(e, dict) and e.get("name") == BASE_PLUGIN), {})
    if not base:
        raise ShardsError(f"meltano.yml has no extractor {BASE_PLUGIN} for the shards to inherit")
    settings = {item.get("name") for item in base.get("settings", []) if isinstance(item, dict)}
    for shard in shards.shards:
        if shard.plugin in names:
            raise ShardsError(
                f"shard {shard.name}: meltano.yml already has a plugin {shard.plugin};"
                " give the shard another name"
            )
        unknown = sorted(set(shard.config) - settings) if settings else []
        if unknown:
            raise ShardsError(
                f"shard {shard.name}: {unknown[0]} is not a setting of {BASE_PLUGIN}"
                " (README: Settings)"
            )


def write_meltano_file(shards: Shards, project: Path) -> Path:
    """Write shards.meltano.yml atomically (shards started at once may all write it)."""
    check_against_project(shards, project)
    target = project / GENERATED
    temporary = target.with_name(f".{GENERATED}.{os.getpid()}")
    temporary.write_text(shards.meltano_file(), encoding="utf-8")
    temporary.replace(target)
    return target


def meltano_executable(project: Path) -> str:
    """The `meltano` of the project's virtual environment, never an orchestrator's own.

    MELTANO_EXECUTABLE, else `<project>/.venv/bin/meltano`, else the repository's, else the one
    beside this Python, else PATH's.
    """
    explicit = os.environ.get("MELTANO_EXECUTABLE")
    if explicit:
        return explicit
    for candidate in (
        project / ".venv" / "bin" / "meltano",
        Path(__file__).resolve().parents[1] / ".venv" / "bin" / "meltano",
        Path(sys.executable).parent / "meltano",
    ):
        if candidate.exists():
            return str(candidate)
    return shutil.which("meltano") or "meltano"


#: Runs one `meltano` command in the project: its exit code and, on failure, its last line.
MeltanoRunner = Callable[[Sequence[str]], tuple[int, str]]


def _run_quietly(project: Path, environ: Mapping[str, str]) -> MeltanoRunner:
    def run(args: Sequence[str]) -> tuple[int, str]:
        try:
            done = subprocess.run(
                [meltano_executable(project), *args],
                cwd=project,
                env=dict(environ),
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        except OSError as error:
            return 127, f"cannot run meltano: {error.strerror or error}"
        return done.returncode, (done.stderr.strip().splitlines() or ["(no output)"])[-1]

    return run


def prepare_project(
    shards: Shards,
    project: Path,
    environ: Mapping[str, str],
    run_meltano: MeltanoRunner | None = None,
) -> Path:
    """Ready what every shard's run needs before they all start.

    The environment checked, shards.meltano.yml written, Meltano's system database created.
    Meltano creates its database on first use: two runs starting at once on a fresh one race
    (`table job already exists`), so the orchestrator prepares it once, before the fan-out.
    `run_meltano` runs the command (an orchestrator's streams its output to its own log).
    """
    shards.check_environment(project_environment(project, environ))
    written = write_meltano_file(shards, project)
    run = run_meltano or _run_quietly(project, environ)
    returncode, last_line = run(["upgrade", "database"])
    if returncode != 0:
        raise ShardsError(f"`meltano upgrade database` failed: {last_line}")
    return written


def main(argv: Sequence[str]) -> int:
    """`write`, `check`, `prepare` or `schemas`, on a shards file (default shards.yml)."""
    usage = "usage: python -m orchestrate.shards {write|check|prepare|schemas} [shards.yml]"
    if not argv or argv[0] not in {"write", "check", "prepare", "schemas"} or len(argv) > 2:
        print(usage, file=sys.stderr)
        return 2
    path = Path(argv[1] if len(argv) > 1 else DEFAULT_SHARDS_FILE)
    try:
        shards = load_shards(path)
        if argv[0] == "schemas":
            print(",".join(shards.schemas()))
            return 0
        if argv[0] == "prepare":
            written = prepare_project(shards, Path.cwd(), os.environ)
        else:
            if argv[0] == "check":
                shards.check_environment(project_environment(Path.cwd(), os.environ))
            written = write_meltano_file(shards, Path.cwd())
    except ShardsError as error:
        print(f"shards: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"shards: cannot write {GENERATED}: {error.strerror or error}", file=sys.stderr)
        return 2
    summary = json.dumps({shard.plugin: shard.schema for shard in shards.shards})
    print(f"shards: wrote {written.name}: {summary}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
