"""Fixtures of the storage tests: one store of the test domain
(tests/storage/domain.py) per test, on every backend.

``backend_url`` is parametrized over ``sqlite`` (a file in the test's
tmp_path), ``postgresql`` and ``redis`` (the real servers of tests/conftest.py:
skipped locally without their URL, failed under CI). Each test starts from an
empty store: SQL tables are dropped and created again, and a Redis store gets
a key prefix of its own.

A module that runs on fewer backends overrides ``backend_url`` (see
test_sql_faults.py); ``store`` and ``open_store`` follow it.

This folder is a package (``storage``) so that this file is not imported as
a second top-level ``conftest`` module, which would shadow tests/conftest.py
for ``from conftest import ...``. The domain module is imported as
``domain`` (its folder is put on ``sys.path``, as subprocesses do too) and
aliased as ``storage.domain``, so either name gives the same classes.
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rollsafe.storage import Store

STORAGE_TESTS = Path(__file__).resolve().parent
if str(STORAGE_TESTS) not in sys.path:  # `import domain`, here and in subprocesses
    sys.path.insert(0, str(STORAGE_TESTS))

import domain  # noqa: E402
from domain import make_store  # noqa: E402

sys.modules.setdefault(f"{__package__}.domain", domain)

ALL_BACKENDS = ("sqlite", "postgresql", "redis")
SQL_BACKENDS = ("sqlite", "postgresql")


def url_of(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of backend ``name`` for one test (a fresh SQLite file, or
    the real server's URL fixture, which skips or fails without it)."""
    if name == "sqlite":
        return f"sqlite:///{tmp_path}/t.db"
    if name == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    if name == "redis":
        return str(request.getfixturevalue("redis_url"))
    raise ValueError(f"unknown backend {name!r}")


@pytest.fixture(params=ALL_BACKENDS)
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of the backend this test runs on."""
    return url_of(request.param, request, tmp_path)


def backend_kind(url: str) -> str:
    """``sqlite``, ``postgresql`` or ``redis`` for a backend URL."""
    scheme = url.split(":", 1)[0].lower()
    if scheme.startswith("sqlite"):
        return "sqlite"
    if scheme.startswith("postgres"):
        return "postgresql"
    return "redis"


@pytest.fixture
def backend_options(backend_url: str) -> dict[str, Any]:
    """Options every store of this test opens its backend with: a Redis
    key prefix of the test's own, so tests never see each other's keys."""
    if backend_kind(backend_url) == "redis":
        return {"key_prefix": f"rollsafe-test-{uuid.uuid4().hex[:12]}"}
    return {}


@pytest.fixture
def open_store(backend_url: str, backend_options: dict[str, Any]
               ) -> Iterator[Callable[..., Store]]:
    """``open_store(storage_versions=None)``: another store of the domain on
    this test's backend and data (for example one pinned to an older
    version, as an older release runs). Every store is closed at the end."""
    stores: list[Store] = []

    def open_one(storage_versions: dict[str, str] | None = None) -> Store:
        store = make_store(backend_url, storage_versions=storage_versions, **backend_options)
        stores.append(store)
        return store

    yield open_one
    for store in stores:
        store.backend.close()


@pytest.fixture
def store(open_store: Callable[..., Store], backend_url: str) -> Iterator[Store]:
    """An empty store of the domain at the current versions."""
    store = open_store()
    sql = backend_kind(backend_url) != "redis"
    if sql:
        store.backend.drop_all(store.collections)
    store.ensure_schema()
    yield store
    if not sql:  # leave nothing behind on the shared Redis server
        with contextlib.suppress(NotImplementedError):
            store.backend.drop_all(store.collections)
