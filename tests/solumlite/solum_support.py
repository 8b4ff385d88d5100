"""Helpers of the solumlite tests (imported by them as ``solum_support``;
not a conftest, so that it never shadows tests/conftest.py).

Stores are opened per test: a fresh SQLite file, or the real PostgreSQL and
Redis servers of tests/conftest.py (skipped locally without their URL,
failed under CI). On PostgreSQL the solumlite tables are dropped and
created again; on Redis each test gets a key prefix of its own.
"""

from __future__ import annotations

import contextlib
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rollsafe.storage import Store
from solumlite import Release
from solumlite.domain import AppShape, SourceSpec, language_pack_id, utcnow
from solumlite.releases import n, n1

RELEASES = {"n": n.RELEASE, "n1": n1.RELEASE}
BACKENDS = ("sqlite", "postgresql", "redis")
SQL_BACKENDS = ("sqlite", "postgresql")


def backend_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of backend ``kind`` for one test."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/solum.db"
    if kind == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return str(request.getfixturevalue("redis_url"))


def is_redis(url: str) -> bool:
    """Whether ``url`` names a Redis backend."""
    return url.startswith("redis")


class Stores:
    """Stores of either release on one backend and one set of data; every
    store opened is closed by :meth:`close`. The schema is created with
    release N+1's collections (a superset of N's columns), as after expand."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.options: dict[str, Any] = (
            {"key_prefix": f"solum-test-{uuid.uuid4().hex[:12]}"} if is_redis(url) else {})
        self._opened: list[Store] = []

    def open(self, release: Release, **options: Any) -> Store:
        """A store of ``release`` (``storage_versions=``, ``contracted=``)."""
        store = release.open_store(self.url, **options, **self.options)
        self._opened.append(store)
        return store

    def create_schema(self) -> None:
        """Drop (SQL) and create the solumlite tables."""
        store = self.open(n1.RELEASE)
        if not is_redis(self.url):
            store.backend.drop_all(n1.RELEASE.collections())
        store.ensure_schema()

    def close(self) -> None:
        """Close every store; on Redis, remove the test's keys."""
        if is_redis(self.url) and self._opened:
            with contextlib.suppress(NotImplementedError):
                self._opened[0].backend.drop_all(self._opened[0].collections)
        for store in self._opened:
            store.close()


@contextlib.contextmanager
def open_stores(url: str) -> Iterator[Stores]:
    """:class:`Stores` on ``url`` with the schema created, closed at the end."""
    stores = Stores(url)
    try:
        stores.create_schema()
        yield stores
    finally:
        stores.close()


def add_pack(release: Release, project: str, name: str = "python") -> uuid.UUID:
    """Create language pack ``name`` in ``project``; its id."""
    pack = release.language_pack(id=language_pack_id(project, name), project=project,
                                 name=name, base_image=f"{name}:latest", created_at=utcnow())
    return release.create_pack(project, pack)["object"].id


def new_app(release: Release, project: str, name: str = "shop", *, pack: str = "python",
            test_cmd: str | None = "pytest",
            source: SourceSpec | None = None) -> AppShape:
    """An App object of ``release`` (not stored)."""
    return release.make_app(
        id=uuid.uuid4(), project=project, name=name, description="a test app",
        language_pack=pack,
        source=source or SourceSpec("https://git.example/shop.git", "v1", True),
        test_cmd=test_cmd, run_cmd="python app.py", ports=[8080], created_at=utcnow())


def add_app(release: Release, project: str, name: str = "shop", **options: Any) -> uuid.UUID:
    """Create an app in ``project`` (its language pack must exist); its id."""
    return release.create_app(project, new_app(release, project, name, **options))["object"].id


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
