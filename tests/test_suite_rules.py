"""Rules of the test suite itself, so that `-m "not e2e"` means what it says."""

from __future__ import annotations

import ast
import re

from .helpers import ROOT

#: What only an end-to-end test does: run Meltano, or use a plugin Meltano installed.
RUNS_MELTANO = re.compile(r"\bMeltano\(|\.meltano/|TARGET_PYTHON")


def _marked_e2e(source: str, node: ast.FunctionDef) -> bool:
    return any("e2e" in (ast.get_source_segment(source, d) or "") for d in node.decorator_list)


def test_every_test_that_runs_meltano_is_marked_e2e() -> None:
    unmarked = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        source = path.read_text()
        module_marked = re.search(r"^pytestmark = .*\be2e\b", source, re.M) is not None
        for node in ast.parse(source).body:
            if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test_"):
                continue
            body = ast.get_source_segment(source, node) or ""
            if RUNS_MELTANO.search(body) and not (module_marked or _marked_e2e(source, node)):
                unmarked.append(f"{path.name}::{node.name}")
    assert not unmarked, f"run Meltano without @pytest.mark.e2e: {unmarked}"
