"""The examples in the README and docs/ run, and so does the quickstart."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_python_blocks_in_doc_run(doc: Path) -> None:
    """Every ```python block of a page runs, in order, in one namespace."""
    blocks = BLOCK.findall(doc.read_text(encoding="utf-8"))
    namespace: dict[str, object] = {"__name__": f"doc_{doc.stem}"}
    for number, block in enumerate(blocks, 1):
        code = compile(block, f"{doc.name} block {number}", "exec", dont_inherit=True)
        exec(code, namespace)


def test_readme_has_an_example_that_runs() -> None:
    """The README keeps at least one runnable example."""
    assert BLOCK.findall((ROOT / "README.md").read_text(encoding="utf-8"))


def test_quickstart_runs_and_shows_both_directions() -> None:
    """The quickstart example exits 0 and reports each exchange."""
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py")],
                            capture_output=True, text=True, timeout=120,
                            env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    for expected in ("N+1 sends to N", "N sends to N+1", "DecodeError at App.source.url"):
        assert expected in result.stdout


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run calls exactly the test command the README gives."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "./scripts/test" in readme
    assert "exec ./scripts/test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
