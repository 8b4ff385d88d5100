"""SQL backend on SQLAlchemy 2 Core: SQLite (embedded) and PostgreSQL.

Each collection is a table with **typed columns derived from the fields of
every version in its history** (text, bigint, double, boolean, uuid,
timestamp with time zone), plus ``rs_version`` (the version the row was
written at) and ``rs_revision`` (the optimistic-concurrency counter). A
field keeps one column while its storage kind stays the same; a field whose
kind changes (``Retyped`` from ``str`` to an object, say) gets a second
column named ``<field>__v<major>_<minor>``, so rows of both versions live
side by side until contract drops the old one. Every field column is
nullable: rows of another version leave it empty, and an expand must never
add a NOT NULL column.

Lists, sets, dicts and nested objects are JSON columns (JSONB on
PostgreSQL) holding their wire form. A nested object is a versioned
envelope: kept inside its parent's row it stays self-describing and is
read, like the row, through the upgrade path, with no join and no second
version column to keep in step. A datetime is two columns: the instant in
UTC (``timestamp with time zone``, so SQL orders and compares it) and
``<column>__utcoffset`` in minutes, so the exact offset comes back.

The key field is the primary key; the project field and every indexed field
get an index (with the project first, for scoped listings).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine

from rollsafe.errors import (
    ConflictError,
    DefinitionError,
    NotFoundError,
    RetryableStorageError,
    StorageError,
)
from rollsafe.objects.types import (
    FieldType,
)
from rollsafe.storage.base import (
    Backend,
    Query,
    Record,
    Transaction,
    Update,
    unreadable_version,
)
from rollsafe.storage.collection import Collection, scalar_kind

__all__ = ["SqlBackend"]

_UTC = dt.UTC


class _UTCDateTime(sa.types.TypeDecorator[dt.datetime]):
    """An aware datetime stored as UTC; SQLite keeps naive UTC text."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> Any:
        if value is None:
            return None
        value = value.astimezone(_UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        aware: dt.datetime = value.replace(tzinfo=_UTC) if value.tzinfo is None \
            else value.astimezone(_UTC)
        return aware


_JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def _kind(ftype: FieldType) -> str:
    """The column kind of a field: its scalar kind, text for strings and
    enums, json for collections and objects."""
    kind = scalar_kind(ftype)
    return "json" if kind is None else "text" if kind in ("str", "enum") else kind


_SQL_TYPES: dict[str, Any] = {
    "text": sa.Text(),
    "int": sa.BigInteger(),
    "float": sa.Float(precision=53),
    "bool": sa.Boolean(),
    "uuid": sa.Uuid(as_uuid=False),
    "datetime": _UTCDateTime(),
    "json": _JSON,
}


class _Column:
    """One field's column (two for a datetime) and its value conversions."""

    def __init__(self, name: str, kind: str) -> None:
        self.name = name
        self.kind = kind
        self.offset_name = f"{name}__utcoffset" if kind == "datetime" else None

    def sql_columns(self, primary: bool = False) -> list[sa.Column[Any]]:
        cols: list[sa.Column[Any]] = [sa.Column(self.name, _SQL_TYPES[self.kind],
                                                primary_key=primary, nullable=primary is False)]
        if self.offset_name:
            cols.append(sa.Column(self.offset_name, sa.SmallInteger(), nullable=True))
        return cols

    def to_row(self, prim: Any, row: dict[str, Any]) -> None:
        """Put a field's primitive value into ``row`` (column -> value)."""
        if self.kind == "datetime":
            if prim is None:
                row[self.name] = row[self.offset_name] = None  # type: ignore[index]
                return
            value = dt.datetime.fromisoformat(prim)
            offset = value.utcoffset()
            row[self.name] = value
            row[self.offset_name] = int(offset.total_seconds() // 60) if offset else 0  # type: ignore
        else:
            row[self.name] = prim

    def bind(self, prim: Any) -> Any:
        """A primitive as the value compared with this column."""
        if self.kind == "datetime" and prim is not None:
            return dt.datetime.fromisoformat(prim)
        return prim

    def from_row(self, row: Any) -> Any:
        """The field's primitive value from a result row."""
        value = row[self.name]
        if value is None:
            return None
        if self.kind == "datetime":
            offset = row[self.offset_name] or 0
            zone = dt.timezone(dt.timedelta(minutes=offset)) if offset else _UTC
            return value.astimezone(zone).isoformat()
        if self.kind == "uuid":
            return str(value)
        return value


class _TableMap:
    """A collection's table and, per version, which column holds each field."""

    def __init__(self, coll: Collection, metadata: sa.MetaData) -> None:
        info = coll.cls._rs_info
        self.coll = coll
        used: set[str] = set()
        every: dict[str, _Column] = {}
        self.by_version: dict[str, dict[str, _Column]] = {}
        # Columns follow a field's lineage through the history: a field keeps
        # its column across renames while its storage kind stays the same; a
        # new field (or a name reused by another field, or a kind change)
        # gets a new column. Names come from the whole history, so they
        # never change when ``oldest`` moves.
        previous: dict[str, _Column] = {}
        for version in info.history.versions:
            mapping = {}
            for fname, fld in info.schemas[version.key].items():
                kind = _kind(fld.ftype)
                old: str | None = fname
                for change in reversed(version.changes):
                    old = change.old_name(old) if old is not None else None
                col = previous.get(old) if old is not None else None
                if col is None or col.kind != kind:
                    cname = fname if fname not in used else \
                        f"{fname}__v{version.key[0]}_{version.key[1]}"
                    if cname.startswith("rs_") or len(cname) > 55 or cname in used:
                        raise DefinitionError(f"{info.name}.{fname}: field names for SQL "
                                              "storage may not start with 'rs_' or be over "
                                              "50 characters")
                    col = _Column(cname, kind)
                    used.add(cname)
                    every[cname] = col
                mapping[fname] = col
            self.by_version[version.number] = mapping
            previous = mapping
        #: Columns of versions older than the collection's oldest and used by
        #: no stored version: what contract may drop.
        self.retired = {c.name for v, m in self.by_version.items()
                        if v not in coll.stored_versions for c in m.values()}
        self.by_version = {v: m for v, m in self.by_version.items()
                           if v in coll.stored_versions}
        current = self.by_version[info.current.number]
        self.key = current[coll.key]
        self.project = current[coll.project] if coll.project else None
        stored = {col.name: col for m in self.by_version.values() for col in m.values()}
        self.retired -= stored.keys()
        self.retired |= {f"{name}__utcoffset" for name in self.retired
                         if every[name].offset_name}
        columns: list[sa.Column[Any]] = []
        for col in every.values():
            if col.name in stored:
                columns += col.sql_columns(primary=col is self.key)
        columns.append(sa.Column("rs_version", sa.String(24), nullable=False))
        columns.append(sa.Column("rs_revision", sa.BigInteger(), nullable=False))
        self.table = sa.Table(coll.name, metadata, *columns)
        lead = [self.table.c[self.project.name]] if self.project else []
        if self.project:
            sa.Index(f"ix_{coll.name}_project", *lead)
        for fname in coll.indexes:
            for col in {c.name: c for c in self.columns_of(fname)}.values():
                sa.Index(f"ix_{coll.name}_{col.name}", *lead, self.table.c[col.name])
        # Statements built once: building and cache-keying a statement per
        # call costs more than running it on SQLite.
        key_col = self.table.c[self.key.name]
        self.select_by_key = sa.select(self.table).where(key_col == sa.bindparam("rs_k"))
        self.select_by_key_in_project = self.select_by_key
        self.insert: Any = None
        #: UPDATE statements of update_many, by (columns set, project scoped).
        self.updates: dict[tuple[tuple[str, ...], bool], Any] = {}
        if self.project is not None:
            self.select_by_key_in_project = self.select_by_key.where(
                self.table.c[self.project.name] == sa.bindparam("rs_p"))

    def columns_of(self, fname: str) -> list[_Column]:
        """Every column that holds field ``fname`` (current name) in some
        version, following renames back through the history."""
        info = self.coll.cls._rs_info
        found: dict[str, _Column] = {}
        name: str | None = fname
        for version in reversed(info.history.versions):
            if name is None:
                break
            mapping = self.by_version.get(version.number)
            col = None if mapping is None else mapping.get(name)
            if col is not None:
                found[col.name] = col
            for change in reversed(version.changes):
                name = change.old_name(name) if name is not None else None
        return list(found.values())


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
        self._maps: dict[type, _TableMap] = {}
        self._declaring = threading.Lock()

    def insert_ignoring_duplicates(self, table: sa.Table) -> Any:
        """INSERT that skips a row whose primary key exists."""
        if self.dialect == "postgresql":
            from sqlalchemy.dialects import postgresql as dialect
        elif self.dialect == "sqlite":
            from sqlalchemy.dialects import sqlite as dialect  # type: ignore[no-redef]
        else:  # pragma: no cover - only SQLite and PostgreSQL are supported
            raise StorageError(f"unsupported SQL dialect {self.dialect}")
        return dialect.insert(table).on_conflict_do_nothing()

    def table_map(self, coll: Collection) -> _TableMap:
        """The table of a collection (declared on first use, once: the
        first calls of a busy service come from several threads at once)."""
        found = self._maps.get(coll.cls)
        if found is None:
            with self._declaring:
                found = self._maps.get(coll.cls)
                if found is None:
                    found = self._maps[coll.cls] = _TableMap(coll, self.metadata)
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
    def __init__(self, backend: SqlBackend, conn: Connection) -> None:
        self.backend = backend
        self.conn = conn

    def _scoped(self, tmap: _TableMap, key: Any, project: Any) -> Any:
        table = tmap.table
        cond = table.c[tmap.key.name] == tmap.key.bind(key)
        if project is not None and tmap.project is not None:
            cond = sa.and_(cond, table.c[tmap.project.name] == project)
        return cond

    def _record(self, tmap: _TableMap, row: Any) -> Record:
        version = row["rs_version"]
        mapping = tmap.by_version.get(version)
        if mapping is None:
            raise unreadable_version(tmap.coll, row[tmap.key.name], version, tmap.coll.oldest)
        data = {fname: col.from_row(row) for fname, col in mapping.items()}
        project = data.get(tmap.coll.project) if tmap.coll.project else None
        return Record(data[tmap.coll.key], project, version, row["rs_revision"], data)

    def get(self, collection: Collection, key: Any, project: Any) -> Record | None:
        tmap = self.backend.table_map(collection)
        if project is not None and tmap.project is not None:
            stmt, params = tmap.select_by_key_in_project, {"rs_k": tmap.key.bind(key),
                                                           "rs_p": project}
        else:
            stmt, params = tmap.select_by_key, {"rs_k": tmap.key.bind(key)}
        row = self.conn.execute(stmt, params).mappings().first()
        return None if row is None else self._record(tmap, row)

    def insert(self, collection: Collection, record: Record) -> None:
        tmap = self.backend.table_map(collection)
        row = self._row(tmap, record.version, record.data)
        row["rs_version"] = record.version
        row["rs_revision"] = 1
        # ON CONFLICT DO NOTHING: a duplicate key is seen in the row count,
        # with no error that would abort the surrounding transaction.
        if tmap.insert is None:
            tmap.insert = self.backend.insert_ignoring_duplicates(tmap.table).returning(
                tmap.table.c[tmap.key.name])
        if self.conn.execute(tmap.insert, row).first() is None:
            raise ConflictError(f"{collection.object_name} {record.key} already exists")

    def _row(self, tmap: _TableMap, version: str, data: dict[str, Any]) -> dict[str, Any]:
        mapping = tmap.by_version[version]
        row: dict[str, Any] = {}
        for fname, value in data.items():
            mapping[fname].to_row(value, row)
        return row

    def update(self, collection: Collection, key: Any, project: Any, expected_revision: int,
               version: str, values: dict[str, Any], full: bool) -> int:
        tmap = self.backend.table_map(collection)
        table = tmap.table
        row = self._update_row(tmap, version, values, full)
        row["rs_revision"] = table.c.rs_revision + 1
        result = self.conn.execute(
            table.update()
            .where(self._scoped(tmap, key, project), table.c.rs_revision == expected_revision)
            .values(row))
        if result.rowcount != 1:
            self._missing_or_stale(tmap, collection, key, project, expected_revision)
        return expected_revision + 1

    def _update_row(self, tmap: _TableMap, version: str, values: dict[str, Any],
                    full: bool) -> dict[str, Any]:
        """The columns an update writes (with ``rs_version``)."""
        row = self._row(tmap, version, values)
        if full:  # the row moves to ``version``: clear the columns other versions used
            used = {n for col in tmap.by_version[version].values()
                    for n in (col.name, col.offset_name) if n}
            for col in {c.name: c for m in tmap.by_version.values() for c in m.values()}.values():
                for name in (col.name, col.offset_name):
                    if name and name not in used:
                        row[name] = None
        row["rs_version"] = version
        return row

    def update_many(self, collection: Collection, updates: Sequence[Update]) -> None:
        """One executemany per set of written columns, each statement built
        once per table; a row count short of the updates means one of them
        was stale or missing: :class:`ConflictError` (the caller discards
        the transaction)."""
        if not self.conn.dialect.supports_sane_multi_rowcount:
            super().update_many(collection, updates)
            return
        tmap = self.backend.table_map(collection)
        groups: dict[tuple[tuple[str, ...], bool], list[dict[str, Any]]] = {}
        for u in updates:
            row = self._update_row(tmap, u.version, u.values, u.full)
            params = {f"rs_v_{name}": value for name, value in row.items()}
            params["rs_k"] = tmap.key.bind(u.key)
            params["rs_e"] = u.expected_revision
            scoped = u.project is not None and tmap.project is not None
            if scoped:
                params["rs_p"] = u.project
            groups.setdefault((tuple(row), scoped), []).append(params)
        for (names, scoped), rows in groups.items():
            stmt = tmap.updates.get((names, scoped))
            if stmt is None:
                table = tmap.table
                cond = [table.c[tmap.key.name] == sa.bindparam("rs_k"),
                        table.c.rs_revision == sa.bindparam("rs_e")]
                if scoped:
                    assert tmap.project is not None
                    cond.append(table.c[tmap.project.name] == sa.bindparam("rs_p"))
                values: dict[str, Any] = {
                    name: sa.bindparam(f"rs_v_{name}", type_=table.c[name].type)
                    for name in names}
                values["rs_revision"] = table.c.rs_revision + 1
                stmt = tmap.updates[(names, scoped)] = table.update().where(*cond).values(
                    values)
            result = self.conn.execute(stmt, rows)
            if result.rowcount != len(rows):
                raise ConflictError(f"{len(rows) - result.rowcount} of {len(rows)} "
                                    f"{collection.object_name} records changed or were "
                                    "deleted since they were read; reload them and retry")

    def _missing_or_stale(self, tmap: _TableMap, collection: Collection, key: Any,
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
        table = tmap.table
        stmt = sa.select(table)
        if query.project is not None and tmap.project is not None:
            stmt = stmt.where(table.c[tmap.project.name] == query.project)
        for fname, prim in query.where.items():
            cols = tmap.columns_of(fname)
            if prim is None:
                stmt = stmt.where(sa.or_(*(table.c[c.name].is_(None) for c in cols)))
            else:
                stmt = stmt.where(sa.or_(*(table.c[c.name] == c.bind(prim) for c in cols)))
        key_col = table.c[tmap.key.name]
        order: list[Any] = []
        if query.order_by is not None:
            cols = tmap.columns_of(query.order_by)
            if len(cols) != 1:
                raise DefinitionError(
                    f"{collection.object_name}.{query.order_by} is stored in several columns "
                    "across versions; order by it once contract has removed the old one")
            order_col = table.c[cols[0].name]
            # NULLs sort first ascending (last descending) on every backend;
            # the keyset condition spells out both sides of the NULL edge.
            desc = query.descending
            if query.after is not None:
                value = cols[0].bind(query.after[0])
                key = sa.literal(tmap.key.bind(query.after[1]), key_col.type)
                beyond_key = key_col < key if desc else key_col > key
                if value is None:
                    cond = sa.and_(order_col.is_(None), beyond_key)
                    if not desc:
                        cond = sa.or_(cond, order_col.is_not(None))
                else:
                    lit = sa.literal(value, order_col.type)
                    cond = sa.or_(order_col < lit if desc else order_col > lit,
                                  sa.and_(order_col == lit, beyond_key))
                    if desc:
                        cond = sa.or_(cond, order_col.is_(None))
                stmt = stmt.where(cond)
            nulls_rank = order_col.is_(None)
            order += [nulls_rank if desc else nulls_rank.desc(),
                      order_col.desc() if desc else order_col]
        elif query.after is not None:
            key = sa.literal(tmap.key.bind(query.after[1]), key_col.type)
            stmt = stmt.where(key_col < key if query.descending else key_col > key)
        order.append(key_col.desc() if query.descending else key_col)
        rows = self.conn.execute(stmt.order_by(*order).limit(query.limit)).mappings()
        return [self._record(tmap, row) for row in rows]


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
