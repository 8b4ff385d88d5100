"""Layering of the public package: importing rollsafe stays light, and its
public surface is exactly ``rollsafe.__all__``, every name documented."""

import inspect
import json
import subprocess
import sys
import types

import pytest

import rollsafe

HEAVY = [
    "sqlalchemy",
    "redis",
    "oslo_messaging",
    "oslo_versionedobjects",
    "kombu",
    "eventlet",
    "starlette",
    "fastapi",
    "uvicorn",
    "httpx",
    "psycopg",
    "orjson",
    "msgpack",
]

_PROBE = """
import json, sys
import rollsafe
print(json.dumps({"file": rollsafe.__file__,
                  "top": sorted({name.partition(".")[0] for name in sys.modules})}))
"""


@pytest.fixture(scope="module")
def fresh_import() -> dict[str, object]:
    """What a brand-new interpreter holds after ``import rollsafe``."""
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                          timeout=60, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_fresh_subprocess_imports_this_rollsafe(fresh_import: dict[str, object]) -> None:
    assert fresh_import["file"] == rollsafe.__file__


@pytest.mark.parametrize("module", HEAVY)
def test_importing_rollsafe_does_not_load_heavy_libraries(
        fresh_import: dict[str, object], module: str) -> None:
    assert module not in fresh_import["top"]  # type: ignore[operator]


@pytest.mark.parametrize("name", rollsafe.__all__)
def test_every_name_in_all_exists_and_has_a_docstring(name: str) -> None:
    assert hasattr(rollsafe, name), f"rollsafe.__all__ lists {name!r}, which does not exist"
    doc = inspect.getdoc(getattr(rollsafe, name))
    assert doc and doc.strip(), f"rollsafe.{name} has no docstring"


def test_all_has_no_duplicates() -> None:
    assert len(rollsafe.__all__) == len(set(rollsafe.__all__))


def test_every_public_module_level_name_is_in_all() -> None:
    # rollsafe's own subpackages appear as attributes once imported; they are
    # the private detail behind the names, not exports. Names that are not
    # identifiers come from pytest's assertion rewriting, which rewrites the
    # package because it ships a pytest plugin.
    exported = {
        name for name, value in vars(rollsafe).items()
        if name.isidentifier() and not name.startswith("_")
        and not (isinstance(value, types.ModuleType)
                 and value.__name__.startswith("rollsafe."))
    }
    assert exported == set(rollsafe.__all__)


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from rollsafe import *", namespace)
    namespace.pop("__builtins__")
    assert set(namespace) == set(rollsafe.__all__)
