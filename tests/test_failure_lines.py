"""The line a run ends with says what happened: the proxy in the way and how to bypass it, the
attempt an error came at (never "gave up" on what was not retried), a target that stopped
reading, and, in `run total`, what was written after the stream maps. Through the CLI, and
Meltano where a user meets it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tap_botpenguin.sandbox import SANDBOX_TOKEN, WEBSITE_BOT, Fault, Sandbox

from .helpers import (
    PROXY_VARIABLES,
    ROOT,
    STREAM_TYPES,
    Meltano,
    RefusingProxy,
    base_config,
    closed_port_url,
    fresh_bots,
    one_meltano_at_a_time,
    own_token_config,
    own_tokens,
    pages_requested,
    run_cli,
    serve_tls,
)

PROXY_USER, PROXY_PASSWORD = "proxy-user-7f3a", "proxy-pass-c91e"
ONE_PAGE = {"bot_id": WEBSITE_BOT, "type": "lead", "page": 2}


@pytest.fixture
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's own proxy settings (a CI runner's `NO_PROXY`) are not the test's."""
    for name in list(os.environ):
        if name.lower() in PROXY_VARIABLES:
            monkeypatch.delenv(name)


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "| ERROR" in line]


def _with_credentials(proxy_url: str) -> str:
    return proxy_url.replace("://", f"://{PROXY_USER}:{PROXY_PASSWORD}@", 1)


def _no_credentials_in(*outputs: str) -> None:
    for output in outputs:
        assert PROXY_USER not in output
        assert PROXY_PASSWORD not in output


# --- a proxy in the way ----------------------------------------------------------------------


@pytest.mark.usefixtures("no_proxy_settings")
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_dead_proxy_is_named_with_how_to_bypass_it(
    sandbox: Sandbox, tmp_path: Path, scheme: str
) -> None:
    dead = closed_port_url()
    address, variable = dead.removeprefix("http://"), f"{scheme.upper()}_PROXY"
    api_url = sandbox.url.replace("http://", f"{scheme}://")
    config = base_config(sandbox, api_url=api_url, max_retries=2)

    result = run_cli(config, tmp_path, env={variable: _with_credentials(dead)})

    assert result.exit_code == 1
    [line] = _errors(result.stderr)
    assert f"failed at the proxy {address} ({variable}): nothing listens there" in line
    assert "gave up after 2 attempts (max_retries=2)" in line
    assert line.endswith(
        f"No request of this run got an answer: check the proxy {address} ({variable}), "
        "or set NO_PROXY=127.0.0.1 to reach api_url without it."
    )
    assert "check api_url." not in line
    assert "Traceback" not in result.stderr
    _no_credentials_in(result.stderr, result.stdout)
    assert sandbox.requests == []


@pytest.mark.usefixtures("no_proxy_settings")
def test_no_proxy_as_the_line_says_bypasses_the_dead_proxy(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    env = {"HTTP_PROXY": _with_credentials(closed_port_url()), "NO_PROXY": "127.0.0.1"}

    result = run_cli(base_config(sandbox), tmp_path, env=env)

    assert result.exit_code == 0, result.stderr[-2000:]
    assert len(result.records["leads"]) == len(sandbox.all_records("lead"))


@pytest.mark.usefixtures("no_proxy_settings")
@pytest.mark.parametrize("status", [407, 403])
def test_a_proxy_refusing_the_tunnel_is_named_and_asked_once(
    sandbox: Sandbox, tmp_path: Path, status: int
) -> None:
    api_url = sandbox.url.replace("http://", "https://")
    with RefusingProxy(status) as proxy:
        env = {"HTTPS_PROXY": _with_credentials(f"http://{proxy.address}")}
        result = run_cli(base_config(sandbox, api_url=api_url), tmp_path, env=env)

    assert result.exit_code == 1
    [line] = _errors(result.stderr)
    phrase = {407: "407 Proxy Authentication Required", 403: "403 Forbidden"}[status]
    assert (
        f"failed at the proxy {proxy.address} (HTTPS_PROXY): it answered the request for a "
        f"tunnel to api_url (CONNECT) with {phrase}"
    ) in line
    assert "not retried (attempt 1 of 3)." in line
    assert "or set NO_PROXY=127.0.0.1 to reach api_url without it." in line
    assert "gave up" not in result.stderr
    assert "retrying" not in result.stderr
    assert proxy.requests == [f"CONNECT 127.0.0.1:{urlsplit(sandbox.url).port}"]
    _no_credentials_in(result.stderr, result.stdout)


@pytest.mark.usefixtures("no_proxy_settings")
@pytest.mark.parametrize(
    ("proxy_url", "why"),
    [
        ("http://{credentials}@", "its URL names no host"),
        ("socks5://{credentials}@127.0.0.1:1080", "it is a SOCKS proxy, which needs the PySocks"),
    ],
    ids=["no host", "socks without PySocks"],
)
def test_a_proxy_no_request_can_go_through_is_refused_before_any_request(
    sandbox: Sandbox, tmp_path: Path, proxy_url: str, why: str
) -> None:
    if "socks" in proxy_url and find_spec("socks") is not None:
        pytest.skip("PySocks is installed: SOCKS proxies work")
    proxy = proxy_url.format(credentials=f"{PROXY_USER}:{PROXY_PASSWORD}")

    result = run_cli(base_config(sandbox), tmp_path, env={"HTTP_PROXY": proxy})

    assert result.exit_code == 1
    [line] = _errors(result.stderr)
    assert f"HTTP_PROXY sets a proxy no request can go through: {why}" in line
    assert line.endswith("or set NO_PROXY=127.0.0.1 to reach api_url without a proxy.")
    assert "Traceback" not in result.stderr
    assert "gave up" not in result.stderr
    _no_credentials_in(result.stderr, result.stdout)
    assert sandbox.requests == []


@pytest.mark.e2e
@pytest.mark.usefixtures("no_proxy_settings")
def test_meltano_names_a_dead_proxy(sandbox: Sandbox, tmp_path: Path) -> None:
    dead = closed_port_url()
    meltano = Meltano(tmp_path, sandbox, TAP_BOTPENGUIN_MAX_RETRIES="2")
    meltano.env["HTTP_PROXY"] = _with_credentials(dead)

    failed = meltano.run("invoke", "tap-botpenguin", expect_success=False)

    address = dead.removeprefix("http://")
    assert f"failed at the proxy {address} (HTTP_PROXY): nothing listens there" in failed.stderr
    assert "or set NO_PROXY=127.0.0.1 to reach api_url without it." in failed.stderr
    _no_credentials_in(failed.stderr, failed.stdout)
    assert sandbox.requests == []


# --- a certificate that is not trusted ------------------------------------------------------


@pytest.mark.usefixtures("no_proxy_settings")
def test_an_untrusted_certificate_stops_the_run_at_once_in_one_line(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A self-signed certificate (or a corporate proxy's CA) fails the same way every time:
    never retried, one line naming the cause, the host, and how to trust a CA."""
    api_url, _ = serve_tls(sandbox, tmp_path)
    env = {"REQUESTS_CA_BUNDLE": "", "SSL_CERT_FILE": "", "CURL_CA_BUNDLE": ""}

    result = run_cli(base_config(sandbox, api_url=api_url, max_retries=3), tmp_path, env=env)

    assert result.exit_code == 1
    [line] = _errors(result.stderr)
    assert "certificate verify failed: self-signed certificate" in line
    assert "the certificate of 127.0.0.1 is not trusted" in line
    assert "not retried (attempt 1 of 3)" in line
    assert "REQUESTS_CA_BUNDLE" in line
    assert "check api_url" not in line
    assert "retrying" not in result.stderr
    assert "Traceback" not in result.stderr
    assert SANDBOX_TOKEN not in result.stderr + result.stdout
    assert sandbox.requests == []  # nothing was sent, the token least of all


@pytest.mark.usefixtures("no_proxy_settings")
def test_the_ca_named_by_requests_ca_bundle_is_trusted(sandbox: Sandbox, tmp_path: Path) -> None:
    api_url, cert = serve_tls(sandbox, tmp_path)

    result = run_cli(
        base_config(sandbox, api_url=api_url), tmp_path, env={"REQUESTS_CA_BUNDLE": str(cert)}
    )

    assert result.exit_code == 0, result.stderr[-2000:]
    assert len(result.records["leads"]) == len(sandbox.all_records("lead"))


# --- what was retried, and how often ---------------------------------------------------------

ATTEMPTS: dict[str, tuple[list[Fault], str, int]] = {
    # faults on page 2 of one listing; what its line says; requests for that page
    "persistent 503": (
        [Fault("status", status=503, times=None, **ONE_PAGE)],
        "returned 503 Service Unavailable: Internal Server Error; gave up after 3 attempts "
        "(max_retries=3).",
        3,
    ),
    "503, then 401": (
        [
            Fault("status", status=503, times=1, **ONE_PAGE),
            Fault("status", status=401, message="token revoked", times=None, **ONE_PAGE),
        ],
        "returned 401 Unauthorized: token revoked.",
        2,
    ),
    "a redirect to no URL": (
        [Fault("redirect", status=302, location="http://[::1", times=None, **ONE_PAGE)],
        "was redirected (302 Found) to 'http://[::1/inbox/direct/chats?",
        1,
    ),
}


@pytest.mark.parametrize("case", ATTEMPTS)
def test_a_failure_line_counts_the_attempts_made(tmp_path: Path, case: str) -> None:
    faults, says, attempts = ATTEMPTS[case]
    with Sandbox(bots=fresh_bots(), rate_limit=None) as sandbox:
        sandbox.inject(*faults)
        result = run_cli(base_config(sandbox, max_retries=3), tmp_path)
        asked = pages_requested(sandbox, WEBSITE_BOT, "lead").count(2)

    assert result.exit_code == 1
    [line, *_] = [line for line in _errors(result.stderr) if WEBSITE_BOT in line or "[::1" in line]
    assert says in line
    assert asked == attempts
    if attempts == 3:  # retried to the end: the count is the attempts made
        assert "not retried" not in line.lower()
    else:  # not retried: when it came, never "gave up"
        assert "gave up" not in result.stderr
        if attempts > 1:
            assert line.endswith(f"Not retried (attempt {attempts} of 3).")
        else:
            assert "which is not a URL: the tap does not follow it" in line
    assert "Traceback" not in result.stderr


# --- a target that stops reading -------------------------------------------------------------

#: A target that reads the tap's output up to its first record, then exits.
_STOPS_AFTER_ONE_RECORD = "import sys\nfor line in sys.stdin:\n    if '\"RECORD\"' in line: break\n"


def _into_a_target_that_stops(config: dict[str, Any], tmp_path: Path) -> tuple[int, str]:
    """The tap's exit code and stderr, its stdout piped into a target that exits early."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    tap = subprocess.Popen(
        [sys.executable, "-m", "tap_botpenguin", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert tap.stdout is not None
    assert tap.stderr is not None
    target = subprocess.Popen([sys.executable, "-c", _STOPS_AFTER_ONE_RECORD], stdin=tap.stdout)
    tap.stdout.close()  # the target holds the only reading end
    stderr = tap.stderr.read()
    code = tap.wait(timeout=120)
    assert target.wait(timeout=120) == 0
    return code, stderr


@pytest.mark.parametrize("tokens", ["shared", "own"], ids=["one token", "workers"])
def test_a_target_that_stops_reading_ends_the_run_in_one_line(tmp_path: Path, tokens: str) -> None:
    bots = fresh_bots() if tokens == "shared" else own_tokens(fresh_bots())
    with Sandbox(bots=bots, rate_limit=None) as sandbox:
        config = base_config(sandbox) if tokens == "shared" else own_token_config(sandbox)
        code, stderr = _into_a_target_that_stops(config, tmp_path)

    assert code == 1
    last = stderr.strip().splitlines()[-1]
    assert "| ERROR" in last
    assert "The target stopped reading: standard output is a broken pipe" in last
    assert "Traceback" not in stderr
    assert "unhandled error" not in stderr
    assert "Exception ignored" not in stderr


# --- run total -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stream_maps",
    [{"leads": {"__filter__": "record['isOnline'] == True"}}, {"chats": None}],
    ids=["a __filter__", "a stream mapped away"],
)
def test_run_total_counts_the_records_written_after_stream_maps(
    sandbox: Sandbox, tmp_path: Path, stream_maps: dict[str, Any]
) -> None:
    result = run_cli(base_config(sandbox, stream_maps=stream_maps), tmp_path)

    assert result.exit_code == 0, result.stderr[-2000:]
    written = sum(len(records) for records in result.records.values())
    read = sum(len(sandbox.all_records(kind)) for kind in STREAM_TYPES.values())
    assert 0 < written < read
    [total] = [line for line in result.stderr.splitlines() if "run total:" in line]
    assert f"; emitted {written}, " in total
    done = [line for line in result.stderr.splitlines() if re.search(r"\| done \w+ bot ", line)]
    assert len(done) == 6
    assert sum(int(re.search(r"emitted (\d+),", line)[1]) for line in done) == written  # type: ignore[index]


#: A loader that fails as a full disk would: its own line, exit 3, after 50 records.
_QUITS = """import sys
records = 0
for line in sys.stdin:
    records += '"RECORD"' in line
    if records == 50:
        print("target-quits: cannot write record 50: No space left on device", file=sys.stderr)
        sys.exit(3)
"""


@pytest.mark.e2e
def test_meltano_shows_the_target_failing_and_keeps_no_state(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Under `meltano run` the tap never gets to say the target stopped reading: Meltano
    SIGKILLs it once the target exits (4.4.1, `_stop_all_blocks`). The user sees the target's
    line and Meltano's `Loader failed`; no state moves past what the target confirmed."""
    project = tmp_path / "project"
    project.mkdir()
    target = project / "target_quits.py"
    target.write_text(f"#!{sys.executable}\n{_QUITS}")
    target.chmod(0o755)
    meltano_yml = yaml.safe_load((ROOT / "meltano.yml").read_text())
    meltano_yml["plugins"]["loaders"].append(
        {"name": "target-quits", "namespace": "target_quits", "executable": str(target)}
    )
    (project / "meltano.yml").write_text(yaml.safe_dump(meltano_yml, sort_keys=False))
    (project / ".meltano").symlink_to(ROOT / ".meltano")  # the installed plugins
    meltano = Meltano(tmp_path, sandbox, cwd=project)

    with one_meltano_at_a_time(ROOT):  # `.meltano/run/` is the repository's
        failed = meltano.run("run", "tap-botpenguin", "target-quits", expect_success=False)
        state = meltano.run("state", "get", "dev:tap-botpenguin-to-target-quits").stdout

    assert failed.returncode == 1
    assert "cannot write record 50: No space left on device" in failed.stderr
    assert "Loader failed" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert "unhandled error" not in failed.stderr
    assert "bookmarks" not in state
