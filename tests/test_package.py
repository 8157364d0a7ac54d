"""The package as published: sdist and wheel built as a release would, the wheel installed in a
fresh virtual environment (not editable, outside the repository), then `--about` and one sync
against the sandbox, both from that install. A file missing from the package fails here.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from tap_botpenguin.sandbox.env import sandbox_settings

from .helpers import ROOT

pytestmark = pytest.mark.e2e

#: pyproject.toml's version, as the development install reports it.
VERSION = version("tap-botpenguin")


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sdist and wheel, the wheel built from the sdist (`python -m build`'s default)."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
    )
    return out


@pytest.fixture(scope="module")
def installed(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel (and its dependencies) installed."""
    venv = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    [wheel] = dist.glob("*.whl")
    subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", "install", "--quiet", str(wheel)],
        check=True,
        capture_output=True,
        text=True,
    )
    return venv


def test_the_wheel_and_sdist_hold_what_a_user_needs(dist: Path) -> None:
    [wheel] = dist.glob(f"tap_botpenguin-{VERSION}-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "tap_botpenguin/records/chat.json" in names
    assert "tap_botpenguin/sandbox/server.py" in names
    assert f"tap_botpenguin-{VERSION}.dist-info/licenses/LICENSE" in names
    [sdist] = dist.glob(f"tap_botpenguin-{VERSION}.tar.gz")
    with tarfile.open(sdist) as archive:
        members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml"} <= members


@pytest.fixture
def sandbox_url(installed: Path, tmp_path: Path) -> Iterator[str]:
    """The sandbox, run from the installed package."""
    url_file, log = tmp_path / "url", tmp_path / "sandbox.log"
    python = str(installed / "bin/python")
    with log.open("w") as stderr:
        server = subprocess.Popen(
            [python, "-m", "tap_botpenguin.sandbox", "--port", "0", "--url-file", str(url_file)],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        for _ in range(300):  # the url file appears once the server listens
            if url_file.exists() and url_file.read_text():
                break
            if server.poll() is not None:
                pytest.fail(f"the installed sandbox exited: {log.read_text()}")
            time.sleep(0.1)
        yield url_file.read_text().strip()
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_about_and_a_sync_from_the_installed_wheel(
    installed: Path, sandbox_url: str, tmp_path: Path
) -> None:
    tap = str(installed / "bin/tap-botpenguin")
    where = subprocess.run(
        [str(installed / "bin/python"), "-c", "import tap_botpenguin as t; print(t.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(installed)), where  # the wheel's copy, not the repository's

    about = subprocess.run(
        [tap, "--about", "--format=json"], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert json.loads(about.stdout)["version"] == VERSION

    env = {"PATH": "/usr/bin:/bin", **sandbox_settings(sandbox_url)}
    synced = subprocess.run(
        [tap, "--config=ENV"], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert synced.returncode == 0, synced.stderr[-3000:]
    messages = [json.loads(line) for line in synced.stdout.splitlines()]
    records = Counter(m["stream"] for m in messages if m["type"] == "RECORD")
    assert records == {"chats": 277, "leads": 235}
    assert any(m["type"] == "SCHEMA" and m["stream"] == "leads" for m in messages)


def test_license_and_changelog_agree_with_the_package() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^license = "Apache-2.0"$', pyproject, re.M)
    license_text = (ROOT / "LICENSE").read_text()
    assert "Apache License\n                           Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text
    changelog = (ROOT / "CHANGELOG.md").read_text()
    released = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", changelog, re.M)
    assert released, "CHANGELOG.md has no released version"
    assert released[0] == VERSION  # the newest entry is the version pyproject.toml declares
    assert f"[{VERSION}]: " in changelog
