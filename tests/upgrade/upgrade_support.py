"""Databases and fleets for the upgrade-check, status and gate tests.

:func:`database` gives each test a database of its own: a SQLite file, a
PostgreSQL schema of its own (the search path of every connection, dropped
afterwards: the service records table has a fixed name, and other tests
use it too), or the real Redis with a key prefix of its own.
:class:`Rollout` drives the rolling upgrade of ``upgrade_domain`` on it,
writing service records through a real :class:`Fleet`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import upgrade_domain as dom

from rollsafe.rpc.fleet import SERVICES, Fleet, ServiceRecord
from rollsafe.storage import Store, open_backend
from rollsafe.upgrade import ServiceDefinition

SQL_KINDS = ("sqlite", "postgresql")
ALL_KINDS = (*SQL_KINDS, "redis")


@dataclass
class Database:
    """One test's database: ``url``, and ``options`` every store opened on
    it needs (a Redis key prefix); ``env`` for a ``rollsafe`` subprocess."""

    kind: str
    url: str
    options: dict[str, Any] = field(default_factory=dict)
    stores: list[Store] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        """What a subprocess needs to reach this database as the tests do."""
        env = {"ROLLSAFE_DB_URL": self.url}
        if "key_prefix" in self.options:
            env["UPGRADE_TEST_PREFIX"] = self.options["key_prefix"]
        return env

    def store(self, definition: ServiceDefinition = dom.SERVICE) -> Store:
        """``definition``'s store on this database (closed at teardown)."""
        store = definition.open_store(self.url, **self.options)
        self.stores.append(store)
        return store

    def close(self) -> None:
        for store in self.stores:
            store.close()


@contextmanager
def database(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty database of ``kind`` (see the module documentation)."""
    if kind == "sqlite":
        db = Database(kind, f"sqlite:///{tmp_path / 'upgrade.db'}")
        try:
            yield db
        finally:
            db.close()
        return
    if kind == "redis":
        db = Database(kind, str(request.getfixturevalue("redis_url")),
                      {"key_prefix": f"rs-upgrade-{uuid.uuid4().hex[:12]}"})
        try:
            yield db
        finally:
            cleanup = db.store()
            cleanup.backend.drop_all([*cleanup.collections, dom.collection_n()])
            db.close()
        return
    import sqlalchemy as sa

    base = str(request.getfixturevalue("postgres_url"))
    schema = f"upg_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine("postgresql+psycopg://" + base.split("://", 1)[1])
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    db = Database(kind, base + ("&" if "?" in base else "?")
                  + f"options=-csearch_path%3D{schema}")
    try:
        yield db
    finally:
        db.close()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.dispose()


def ago(hours: float) -> Any:
    """A fleet clock stopped ``hours`` before now."""
    at = datetime.now(UTC) - timedelta(hours=hours)
    return lambda: at


@dataclass
class Rollout:
    """The rolling upgrade of ``upgrade_domain`` from release N to N+1 on
    ``db``. Release N's store holds :data:`APPS`; service processes join
    through a real :class:`Fleet` (a stale one with a clock hours back)."""

    db: Database

    def start_release_n(self) -> Store:
        """Release N's schema (expanded as N would), its Apps, and two N
        processes: ``api@host-1`` live, ``api@host-0`` stale for hours."""
        from rollsafe.storage.migrate import expand

        store_n = Store(open_backend(self.db.url, **self.db.options),
                        [dom.collection_n(), SERVICES])
        self.db.stores.append(store_n)
        if self.db.kind != "redis":
            expand(store_n.backend, store_n.collections)  # type: ignore[arg-type]
        with store_n.unit_of_work() as uow:
            for key in APPS:
                uow.create(dom.N_APP(id=key, name=f"app-{key}", note="legacy", tier="gold"))
        self.join("api", "host-1", dom.N, dom.n_registry.manifest())
        self.join("api", "host-0", dom.N, dom.n_registry.manifest(), hours_ago=2)
        return store_n

    def fleet(self, hours_ago: float = 0) -> Fleet:
        """A fleet on the database, its clock ``hours_ago`` in the past."""
        clock = ago(hours_ago) if hours_ago else lambda: datetime.now(UTC)
        return Fleet(self.db.store(), stale_after=dom.STALE_AFTER, clock=clock)

    def join(self, name: str, host: str, release: str, manifest: dict[str, str], *,
             hours_ago: float = 0, allow_too_old: bool = False) -> ServiceRecord:
        """Record a service process (its heartbeat ``hours_ago`` back)."""
        return self.fleet(hours_ago).join(name, host, release, manifest,
                                          allow_too_old=allow_too_old)

    def start_release_n1(self) -> ServiceRecord:
        """Expand for N+1 (SQL) and start the N+1 process ``api@host-2``."""
        from rollsafe.storage.migrate import expand

        store = self.db.store()
        if self.db.kind != "redis":
            expand(store.backend, store.collections)  # type: ignore[arg-type]
        return self.join("api", "host-2", dom.N1, dom.registry.manifest())

    def stop_release_n(self) -> None:
        """The live N process leaves the fleet."""
        fleet = self.fleet()
        for record in fleet.live():
            if record.release == dom.N:
                fleet.leave(record)

    def versions(self) -> dict[str, str]:
        """App id -> the version its record is stored at."""
        from rollsafe.storage.base import Query

        store = self.db.store()
        coll = store.collection(dom.App)
        with store.backend.transaction(readonly=True) as tx:
            return {r.key: r.version for r in tx.query(coll, Query(limit=1000))}


#: The Apps release N stored.
APPS = ("a1", "a2", "a3")
