"""SQL backend on SQLAlchemy 2 Core: SQLite (embedded) and PostgreSQL.

How collections are laid out in tables (typed columns per field, across
every version; ``rs_version`` and ``rs_revision``) is
:mod:`rollsafe.storage.sqltable`. The frequent operations (get by key,
insert, ``update_many``'s executemany, keyset pages) run statements
compiled once on the driver's cursor (:mod:`rollsafe.storage.prepared`);
the rare ones build Core statements.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from rollsafe.errors import (
    ConflictError,
    NotFoundError,
    RetryableStorageError,
    StorageError,
)
from rollsafe.storage.base import (
    Backend,
    Query,
    Record,
    Transaction,
    Update,
    unreadable_version,
)
from rollsafe.storage.collection import Collection
from rollsafe.storage.prepared import PreparedStatement, is_observed
from rollsafe.storage.sqltable import TableMap, insert_ignoring_duplicates

__all__ = ["SqlBackend"]

class SqlBackend(Backend):
    """Records in SQL tables, through SQLAlchemy Core.

    ``url``: ``sqlite:///path/to/file.db`` (WAL journal, foreign keys on,
    a busy timeout, transactions that take the write lock at BEGIN so two
    writers never deadlock), ``sqlite://`` for in-memory, or
    ``postgresql://user@host:port/db`` (psycopg 3). Pooled connections are
    checked before use, so a query after a server restart succeeds (or fails
    with :class:`RetryableStorageError`)."""

    name = "sql"

    def __init__(self, url: str | Engine, *, echo: bool = False) -> None:
        if isinstance(url, Engine):
            self.engine = url
        else:
            self.engine = _make_engine(url, echo)
        self.dialect = self.engine.dialect.name
        self.metadata = sa.MetaData()
        self._maps: dict[type, TableMap] = {}
        self._declaring = threading.Lock()

    def insert_ignoring_duplicates(self, table: sa.Table) -> Any:
        """INSERT that skips a row whose primary key exists."""
        return insert_ignoring_duplicates(table, self.dialect)

    def table_map(self, coll: Collection) -> TableMap:
        """The table of a collection (declared on first use, once: the
        first calls of a busy service come from several threads at once)."""
        found = self._maps.get(coll.cls)
        if found is None:
            with self._declaring:
                found = self._maps.get(coll.cls)
                if found is None:
                    found = TableMap(coll, self.metadata, self.engine.dialect)
                    self._maps[coll.cls] = found
        return found

    def ensure_schema(self, collections: Sequence[Collection]) -> None:
        tables = [self.table_map(c).table for c in collections]
        with self._guard():
            self.metadata.create_all(self.engine, tables=tables)

    def drop_all(self, collections: Sequence[Collection]) -> None:
        tables = [self.table_map(c).table for c in collections]
        with self._guard():
            self.metadata.drop_all(self.engine, tables=tables)

    @contextmanager
    def transaction(self, *, readonly: bool = False) -> Iterator[Transaction]:
        with self._guard(), self.engine.connect() as conn:
            if readonly:
                conn = conn.execution_options(rollsafe_readonly=True)
            with conn.begin():
                yield _SqlTransaction(self, conn)

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except sa.exc.DBAPIError as exc:
            text = _first_line(exc)
            if exc.connection_invalidated or isinstance(exc, sa.exc.InterfaceError) or (
                    isinstance(exc, sa.exc.OperationalError) and _transient(self.dialect, text)):
                raise RetryableStorageError(f"{self.dialect}: {text}") from exc
            if isinstance(exc, sa.exc.DataError):
                raise StorageError(f"{self.dialect} cannot store a value: {text}") from exc
            raise StorageError(f"{self.dialect}: {text}") from exc
        except sa.exc.StatementError as exc:  # a value failed to convert before sending
            raise StorageError(f"{self.dialect} cannot store a value: "
                               f"{type(exc.orig).__name__}: {exc.orig}") from exc

    def close(self) -> None:
        self.engine.dispose()


class _SqlTransaction(Transaction):
    """The five operations on one connection. The frequent ones run the
    table map's compiled statements on the driver's cursor (see
    :mod:`rollsafe.storage.prepared`); the rare ones build Core statements."""

    def __init__(self, backend: SqlBackend, conn: Connection) -> None:
        self.backend = backend
        self.conn = conn
        #: Whether statements may skip SQLAlchemy's execution (nothing
        #: logs or instruments them).
        self.direct = not is_observed(conn)

    def _scoped(self, tmap: TableMap, key: Any, project: Any) -> Any:
        table = tmap.table
        cond = table.c[tmap.key.name] == tmap.key.bind(key)
        if project is not None and tmap.project is not None:
            cond = sa.and_(cond, table.c[tmap.project.name] == project)
        return cond

    def get(self, collection: Collection, key: Any, project: Any) -> Record | None:
        tmap = self.backend.table_map(collection)
        key = tmap.key.bind(key)
        if project is not None and tmap.project is not None:
            rows, description = tmap.select_by_key(True).fetch(self.conn, (key, project),
                                                               direct=self.direct)
        else:
            rows, description = tmap.select_by_key(False).fetch(self.conn, (key,),
                                                                direct=self.direct)
        return tmap.records(rows, description)[0] if rows else None

    def insert(self, collection: Collection, record: Record) -> None:
        tmap = self.backend.table_map(collection)
        row = self._row(tmap, record.version, record.data)
        row["rs_version"] = record.version
        row["rs_revision"] = 1
        if tmap.insert(tuple(row)).execute(self.conn, tuple(row.values()),
                                           direct=self.direct) != 1:
            raise ConflictError(f"{collection.object_name} {record.key} already exists")

    def _row(self, tmap: TableMap, version: str, data: dict[str, Any]) -> dict[str, Any]:
        if version in tmap.as_is and data.keys() <= tmap.plain[version].keys():
            return data.copy()
        plain = tmap.plain[version]
        row: dict[str, Any] = {}
        for fname, value in data.items():
            column = plain.get(fname)
            if column is None:
                tmap.by_version[version][fname].to_row(value, row)
            else:
                row[column] = value
        return row

    def update(self, collection: Collection, key: Any, project: Any, expected_revision: int,
               version: str, values: dict[str, Any], full: bool) -> int:
        tmap = self.backend.table_map(collection)
        key = tmap.key.bind(key)
        scoped = project is not None and tmap.project is not None
        row = self._update_row(tmap, version, values, full, key, project if scoped else None)
        params = (*row.values(), key, expected_revision, *((project,) if scoped else ()))
        if tmap.update(tuple(row), scoped).execute(self.conn, params, direct=self.direct) != 1:
            self._missing_or_stale(tmap, collection, key, project, expected_revision)
        return expected_revision + 1

    def _update_row(self, tmap: TableMap, version: str, values: dict[str, Any], full: bool,
                    key: Any, project: Any) -> dict[str, Any]:
        """The columns an update of the row with ``key`` (and ``project``
        when not None) writes, with ``rs_version``. The key and project
        columns are left out when ``values`` holds what the row has: setting
        an indexed column, even to its value, makes the database rewrite
        the index entry."""
        row = self._row(tmap, version, values)
        if row.get(tmap.key.name, row) == key:
            del row[tmap.key.name]
        scope = tmap.project
        if project is not None and scope is not None and row.get(scope.name, row) == project:
            del row[scope.name]
        if full:  # the row moves to ``version``: clear the columns other versions used
            for name in tmap.cleared[version]:
                row[name] = None
        row["rs_version"] = version
        return row

    def update_many(self, collection: Collection, updates: Sequence[Update]) -> None:
        """One executemany per set of written columns, each statement
        compiled once per table; a row count short of the updates means one
        of them was stale or missing: :class:`ConflictError` (the caller
        discards the transaction)."""
        if not self.conn.dialect.supports_sane_multi_rowcount:
            super().update_many(collection, updates)
            return
        tmap = self.backend.table_map(collection)
        bind_key = tmap.key.bind
        # Per (columns written, project scoped): the statement, and the
        # driver's parameters of each update it applies.
        groups: dict[tuple[tuple[str, ...], bool], tuple[PreparedStatement, list[Any]]] = {}
        scopes = tmap.project is not None
        for u in updates:
            key = bind_key(u.key)
            scoped = scopes and u.project is not None
            row = self._update_row(tmap, u.version, u.values, u.full, key,
                                   u.project if scoped else None)
            shape = (tuple(row), scoped)
            group = groups.get(shape)
            if group is None:
                group = groups[shape] = (tmap.update(*shape), [])
            stmt, rows = group
            rows.append(stmt.parameters((*row.values(), key, u.expected_revision, u.project)
                                        if scoped else
                                        (*row.values(), key, u.expected_revision)))
        for stmt, rows in groups.values():
            count = stmt.executemany(self.conn, rows, direct=self.direct)
            if count != len(rows):
                raise ConflictError(f"{len(rows) - count} of {len(rows)} "
                                    f"{collection.object_name} records changed or were "
                                    "deleted since they were read; reload them and retry")

    def _missing_or_stale(self, tmap: TableMap, collection: Collection, key: Any,
                          project: Any, expected: int) -> None:
        found = self.conn.execute(sa.select(tmap.table.c.rs_revision).where(
            self._scoped(tmap, key, project))).first()
        if found is None:
            raise NotFoundError(f"no {collection.object_name} {key}")
        raise ConflictError(f"{collection.object_name} {key} changed since it was read "
                            f"(revision {expected}, now {found[0]}); reload it and retry")

    def delete(self, collection: Collection, key: Any, project: Any,
               expected_revision: int | None) -> None:
        tmap = self.backend.table_map(collection)
        cond = self._scoped(tmap, key, project)
        if expected_revision is not None:
            cond = sa.and_(cond, tmap.table.c.rs_revision == expected_revision)
        result = self.conn.execute(tmap.table.delete().where(cond))
        if result.rowcount != 1:
            self._missing_or_stale(tmap, collection, key, project, expected_revision or 0)

    def query(self, collection: Collection, query: Query) -> list[Record]:
        tmap = self.backend.table_map(collection)
        stmt, params = tmap.page(query)
        return tmap.records(*stmt.fetch(self.conn, params, direct=self.direct))

    def count_versions(self, collection: Collection, project: Any) -> dict[str, int]:
        """One GROUP BY over the version column; a version this code cannot
        read raises the error of its first record in key order, as a walk
        through the pages would."""
        tmap = self.backend.table_map(collection)
        table = tmap.table
        scope = []
        if project is not None and tmap.project is not None:
            scope.append(table.c[tmap.project.name] == project)
        counts = {version: int(count) for version, count in self.conn.execute(
            sa.select(table.c.rs_version, sa.func.count()).where(*scope)
            .group_by(table.c.rs_version))}
        if counts.keys() - tmap.by_version.keys():
            key_col = table.c[tmap.key.name]
            key, version = self.conn.execute(
                sa.select(key_col, table.c.rs_version)
                .where(*scope, table.c.rs_version.not_in(list(tmap.by_version)))
                .order_by(key_col).limit(1)).one()
            raise unreadable_version(collection, key, version, collection.oldest)
        return counts


def _make_engine(url: str, echo: bool) -> Engine:
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return sa.create_engine(url, echo=echo, pool_pre_ping=True, pool_size=5,
                                max_overflow=10)
    if url.startswith("sqlite"):
        memory = url in ("sqlite://", "sqlite:///:memory:")
        options: dict[str, Any] = {"connect_args": {"check_same_thread": False,
                                                    "timeout": 30}}
        if memory:
            options["poolclass"] = sa.pool.StaticPool
        engine = sa.create_engine(url, echo=echo, **options)

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_conn.cursor()
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            # Take the write lock up front: two deferred transactions that
            # both read then write would otherwise fail with "locked". Reads
            # (readonly units) begin deferred and never wait for writers.
            readonly = conn.get_execution_options().get("rollsafe_readonly")
            conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

        return engine
    return sa.create_engine(url, echo=echo, pool_pre_ping=True)


_SQLITE_TRANSIENT = ("locked", "busy", "disk i/o", "unable to open")


def _transient(dialect: str, text: str) -> bool:
    """Whether an OperationalError may pass on a retry: for SQLite, a lock
    or I/O problem (a missing column never passes); for PostgreSQL, the
    driver's operational errors are connection-level."""
    if dialect == "sqlite":
        lowered = text.lower()
        return any(word in lowered for word in _SQLITE_TRANSIENT)
    return True


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
