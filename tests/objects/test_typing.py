"""Type checkers understand object declarations: keyword constructor with
the declared types, defaults optional, no internal state as arguments."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

SNIPPET = '''
import uuid
from rollsafe import Registry, VersionedObject, field

reg = Registry("typed")


class Thing(VersionedObject, registry=reg):
    id: uuid.UUID
    name: str = field(max_length=10)
    count: int = 0


ok = Thing(id=uuid.uuid4(), name="x")
name: str = ok.name
missing = Thing(name="x")
wrong = Thing(id=uuid.uuid4(), name="y", count="3")
'''


def test_mypy_checks_constructor_arguments_against_the_field_declarations(
        tmp_path: Path) -> None:
    mypy = Path(sys.executable).with_name("mypy")
    if not mypy.exists():
        mypy = Path(shutil.which("mypy") or "mypy")
    source = tmp_path / "snippet.py"
    source.write_text(SNIPPET, encoding="utf-8")
    result = subprocess.run([str(mypy), "--strict", "--no-incremental", str(source)],
                            capture_output=True, text=True, timeout=300)
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 2, result.stdout
    assert 'Missing named argument "id" for "Thing"' in errors[0]
    assert 'Argument "count" to "Thing" has incompatible type "str"; expected "int"' \
        in errors[1]

