"""solumlite imports rollsafe, never the reverse; and solumlite's domain
(releases, flows, state machine) loads no web library, so a conductor or a
worker runs without the API's dependencies."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import rollsafe

ROLLSAFE_SRC = Path(rollsafe.__file__).resolve().parent


def _modules_named(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value.startswith("solumlite"):
            names.add(node.value)  # importlib.import_module("solumlite...")
    return names


def test_no_rollsafe_source_file_imports_solumlite() -> None:
    files = sorted(ROLLSAFE_SRC.rglob("*.py"))
    assert len(files) > 20
    offenders = {str(path.relative_to(ROLLSAFE_SRC)): sorted(found)
                 for path in files
                 if (found := {name for name in _modules_named(ast.parse(path.read_text()))
                               if name.split(".")[0] == "solumlite"})}
    assert offenders == {}


_PROBE = """
import importlib, json, pkgutil, sys
import {package}
for info in pkgutil.walk_packages({package}.__path__, "{package}."):
    if not info.name.endswith("__main__"):
        importlib.import_module(info.name)
print(json.dumps(sorted({{name.partition(".")[0] for name in sys.modules}})))
"""


def _loaded_after_importing_all_of(package: str) -> set[str]:
    done = subprocess.run([sys.executable, "-c", _PROBE.format(package=package)],
                          capture_output=True, text=True, timeout=120, check=True)
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_importing_every_rollsafe_module_loads_no_solumlite() -> None:
    loaded = _loaded_after_importing_all_of("rollsafe")
    assert "rollsafe" in loaded and "solumlite" not in loaded


def test_the_domain_of_solumlite_loads_no_web_library() -> None:
    probe = ("import json, sys\n"
             "import solumlite.releases.n, solumlite.releases.n1, solumlite.flows\n"
             "print(json.dumps(sorted({n.partition('.')[0] for n in sys.modules})))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, check=True)
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "solumlite" in loaded
    assert not loaded & {"fastapi", "starlette", "uvicorn", "httpx", "pydantic"}
