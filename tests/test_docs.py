"""The README and docs/ as a reader follows them: every relative link leads somewhere.

A link to a file must name one in the repository; a link with `#anchor` must name a heading
of the target (GitHub's anchors: lower case, punctuation dropped, spaces as hyphens).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .helpers import ROOT

DOCUMENTS = [
    ROOT / "README.md",
    ROOT / "CHANGELOG.md",
    *sorted((ROOT / "docs").glob("*.md")),
]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)


def anchors(markdown: str) -> set[str]:
    """GitHub's anchor for every heading of a Markdown file."""
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", CODE.sub("", markdown), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def relative_links(document: Path) -> list[str]:
    """Links to something in the repository (not http(s), mail or other schemes)."""
    text = CODE.sub("", document.read_text())
    return [
        target
        for target in LINK.findall(text)
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I)
    ]


def test_the_docs_exist_and_the_readme_links_each() -> None:
    docs = sorted((ROOT / "docs").glob("*.md"))
    assert docs
    linked = set(relative_links(ROOT / "README.md"))
    for doc in docs:
        assert any(link.split("#")[0] == f"docs/{doc.name}" for link in linked), (
            f"README.md does not link {doc.name}"
        )


def test_the_anchor_rule_matches_github() -> None:
    assert anchors("## Analytics-ready tables: the dbt models\n") == {
        "analytics-ready-tables-the-dbt-models"
    }
    assert anchors("## How incremental works, and its guarantee\n") == {
        "how-incremental-works-and-its-guarantee"
    }


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_relative_link_is_broken(document: Path) -> None:
    assert not [link for link in relative_links(document) if _broken(document, link)]


def _broken(document: Path, link: str) -> bool:
    path, _, anchor = link.partition("#")
    target = (document.parent / path).resolve() if path else document
    if not target.exists() or ROOT not in (target, *target.parents):
        return True
    return bool(anchor) and target.suffix == ".md" and anchor not in anchors(target.read_text())


def test_the_architecture_map_names_every_module_of_the_tap() -> None:
    """docs/architecture.md is the map: a module it does not name is a room nobody can find."""
    text = (ROOT / "docs/architecture.md").read_text()
    package = ROOT / "tap_botpenguin"
    missing = [
        str(path.relative_to(package))
        for path in sorted(package.rglob("*.py"))
        if "sandbox" not in path.parts
        and path.name != "__init__.py"
        and not re.search(rf"^\s+{re.escape(path.name)}\s", text, re.M)
    ]
    packages = [p.name for p in package.iterdir() if (p / "__init__.py").exists()]
    missing += [f"{name}/" for name in packages if f"  {name}/" not in text]
    missing += [f"layer {name}" for name in packages if f"| `{name}` |" not in text]
    assert not missing, f"docs/architecture.md does not name {missing}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_code_path_a_document_names_exists(document: Path) -> None:
    """A doc that sends the reader to `tap_botpenguin/listing.py` after a move misleads."""
    named = set(
        re.findall(
            r"\b((?:tap_botpenguin|tests|scripts|benchmarks)/[\w/.-]*\w)", document.read_text()
        )
    )
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert not missing, f"{document.name} names paths that do not exist: {missing}"
