"""How collections are laid out in SQL tables, and the statements on them.

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

A :class:`TableMap` also holds the table's frequent statements, compiled
once for the backend's dialect (:mod:`rollsafe.storage.prepared`), and per
version a generated function reading a record from a selected row.
"""

from __future__ import annotations

import datetime as dt
import itertools
import linecache
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect

from rollsafe.errors import DefinitionError, StorageError
from rollsafe.objects.types import FieldType
from rollsafe.storage.base import Query, Record, unreadable_version
from rollsafe.storage.collection import Collection, scalar_kind
from rollsafe.storage.prepared import PreparedStatement, result_processors

__all__ = ["TableMap", "insert_ignoring_duplicates"]

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


#: Time zones by UTC offset in minutes, made once each.
_ZONES: dict[int, dt.tzinfo] = {0: _UTC}


def _zone(minutes: int) -> dt.tzinfo:
    zone = _ZONES.get(minutes)
    if zone is None:
        zone = _ZONES[minutes] = dt.timezone(dt.timedelta(minutes=minutes))
    return zone


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


#: Numbers the generated readers' source, which tracebacks show.
_generated = itertools.count(1)

#: Statements a table map keeps compiled (a bound, however many shapes of
#: query a service makes).
_MAX_PREPARED = 256


class TableMap:
    """A collection's table, per version which column holds each field, and
    the table's statements, compiled once for the backend's dialect."""

    def __init__(self, coll: Collection, metadata: sa.MetaData, dialect: Dialect) -> None:
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
        self._columns_of: dict[str, list[_Column]] = {}
        for fname in coll.indexes:
            for col in {c.name: c for c in self.columns_of(fname)}.values():
                sa.Index(f"ix_{coll.name}_{col.name}", *lead, self.table.c[col.name])
        # Rows are selected whole, in table order: per version, where each
        # field's value is and how it becomes the field's primitive.
        position = {column.name: i for i, column in enumerate(self.table.c)}
        self.version_at = position["rs_version"]
        self.revision_at = position["rs_revision"]
        self.key_at = position[self.key.name]
        #: Per version, the function reading a record from a selected row
        #: (made at the first read: it needs the driver's description).
        self._readers: dict[str, Callable[[tuple[Any, ...]], Record]] | None = None
        self._key_processor: Callable[[Any], Any] | None = None
        #: Per version, field -> column of the fields kept in one column as
        #: they are (all but datetimes), for writing rows.
        self.plain = {version: {fname: col.name for fname, col in m.items()
                                if col.kind != "datetime"}
                      for version, m in self.by_version.items()}
        #: The versions whose fields all are in a column of their own name,
        #: as they are: their data is a row as it is.
        self.as_is = {version for version, m in self.by_version.items()
                      if all(col.kind != "datetime" and col.name == fname
                             for fname, col in m.items())}
        #: Per version, the columns of the other versions, which a record
        #: moving to that version clears.
        self.cleared: dict[str, tuple[str, ...]] = {}
        for number, mapping in self.by_version.items():
            mine = {n for col in mapping.values() for n in (col.name, col.offset_name) if n}
            self.cleared[number] = tuple(
                n for col in stored.values() for n in (col.name, col.offset_name)
                if n and n not in mine)
        self._dialect = dialect
        self._prepared: dict[Any, PreparedStatement] = {}

    def columns_of(self, fname: str) -> list[_Column]:
        """Every column that holds field ``fname`` (current name) in some
        version, following renames back through the history."""
        found = self._columns_of.get(fname)
        if found is not None:
            return found
        info = self.coll.cls._rs_info
        columns: dict[str, _Column] = {}
        name: str | None = fname
        for version in reversed(info.history.versions):
            if name is None:
                break
            mapping = self.by_version.get(version.number)
            col = None if mapping is None else mapping.get(name)
            if col is not None:
                columns[col.name] = col
            for change in reversed(version.changes):
                name = change.old_name(name) if name is not None else None
        found = self._columns_of[fname] = list(columns.values())
        return found

    def records(self, rows: Sequence[tuple[Any, ...]], description: Any) -> list[Record]:
        """The records of rows selected whole, as the driver gave them
        (``description``: the driver's description of their columns)."""
        readers = self._readers
        if readers is None:
            readers = self._readers = self._make_readers(description)
        out = []
        for row in rows:
            read = readers.get(row[self.version_at])
            if read is None:
                read = self._unreadable
            out.append(read(row))
        return out

    def _unreadable(self, row: tuple[Any, ...]) -> Record:
        key = row[self.key_at]
        processor = self._key_processor
        raise unreadable_version(self.coll, key if processor is None else processor(key),
                                 row[self.version_at], self.coll.oldest)

    def _make_readers(self, description: Any) -> dict[str, Callable[[tuple[Any, ...]], Record]]:
        """Per version, a function turning a selected row into its record:
        generated once per table (as the objects' decoders are), since it
        runs for every row read. Values go through SQLAlchemy's result
        processors, then become the fields' primitives."""
        types = [column.type for column in self.table.c]
        processors = result_processors(types, self._dialect, description)
        self._key_processor = processors[self.key_at]
        names: dict[str, Any] = {"_Record": Record, "_zone": _zone, "_UTC": _UTC}
        position = {column.name: i for i, column in enumerate(self.table.c)}

        def value(column: str) -> str:
            at = position[column]
            if processors[at] is None:
                return f"row[{at}]"
            names[f"_p{at}"] = processors[at]
            return f"_p{at}(row[{at}])"

        lines: list[str] = []
        functions: dict[str, str] = {}  # version -> name of its reader
        for number, mapping in self.by_version.items():
            fn = functions[number] = f"_read_{len(functions)}"
            lines.append(f"def {fn}(row):")
            items = []
            for fname, col in mapping.items():
                var = f"v_{position[col.name]}"
                lines.append(f"    {var} = {value(col.name)}")
                if col.kind == "datetime":
                    assert col.offset_name is not None
                    lines += [f"    if {var} is not None:",
                              f"        o = {value(col.offset_name)} or 0",
                              f"        {var} = {var}.astimezone(_zone(o) if o else _UTC)"
                              ".isoformat()"]
                elif col.kind == "uuid":
                    lines += [f"    if {var} is not None and type({var}) is not str:",
                              f"        {var} = str({var})"]
                items.append(f"{fname!r}: {var}")
            project = f"data.get({self.coll.project!r})" if self.coll.project else "None"
            lines += ["    data = {" + ", ".join(items) + "}",
                      f"    return _Record(data[{self.coll.key!r}], {project}, {number!r}, "
                      f"{value('rs_revision')}, data)"]
        text = "\n".join(lines) + "\n"
        filename = f"<rollsafe generated readers of table {self.table.name} #{next(_generated)}>"
        linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
        exec(compile(text, filename, "exec"), names)
        return {number: names[fn] for number, fn in functions.items()}

    # -- statements ---------------------------------------------------------
    def _prepare(self, shape: Any, build: Callable[[], tuple[Any, list[str]]]
                 ) -> PreparedStatement:
        found = self._prepared.get(shape)
        if found is None:
            stmt, names = build()
            found = PreparedStatement(stmt, self._dialect, names)
            if len(self._prepared) < _MAX_PREPARED:
                self._prepared[shape] = found
        return found

    def _param(self, name: str, column: str) -> Any:
        return sa.bindparam(name, type_=self.table.c[column].type)

    def select_by_key(self, scoped: bool) -> PreparedStatement:
        """SELECT a row by key (``rs_k``), and project (``rs_p``) when scoped."""
        def build() -> tuple[Any, list[str]]:
            stmt = sa.select(*self.table.c).where(
                self.table.c[self.key.name] == self._param("rs_k", self.key.name))
            if not scoped:
                return stmt, ["rs_k"]
            assert self.project is not None
            return stmt.where(self.table.c[self.project.name] == self._param(
                "rs_p", self.project.name)), ["rs_k", "rs_p"]

        return self._prepare(("get", scoped), build)

    def insert(self, columns: tuple[str, ...]) -> PreparedStatement:
        """INSERT of ``columns`` (parameters in that order) that skips a row
        whose key exists: a duplicate shows in the row count, with no error
        that would abort the surrounding transaction."""
        def build() -> tuple[Any, list[str]]:
            names = [f"rs_v_{name}" for name in columns]
            stmt = insert_ignoring_duplicates(self.table, self._dialect.name).values(
                {name: self._param(param, name) for name, param in zip(columns, names,
                                                                       strict=True)})
            return stmt, names

        return self._prepare(("insert", columns), build)

    def update(self, columns: tuple[str, ...], scoped: bool) -> PreparedStatement:
        """UPDATE setting ``columns`` and the next revision, where the key
        (``rs_k``) and revision (``rs_e``) match (and the project,
        ``rs_p``, when scoped); parameters: the columns' values, then
        those."""
        def build() -> tuple[Any, list[str]]:
            table = self.table
            names = [f"rs_v_{name}" for name in columns]
            values: dict[str, Any] = {name: self._param(param, name)
                                      for name, param in zip(columns, names, strict=True)}
            values["rs_revision"] = table.c.rs_revision + sa.literal_column("1")
            cond = [table.c[self.key.name] == self._param("rs_k", self.key.name),
                    table.c.rs_revision == self._param("rs_e", "rs_revision")]
            names += ["rs_k", "rs_e"]
            if scoped:
                assert self.project is not None
                cond.append(table.c[self.project.name] == self._param("rs_p",
                                                                      self.project.name))
                names.append("rs_p")
            return table.update().where(*cond).values(values), names

        return self._prepare(("update", columns, scoped), build)

    def page(self, query: Query) -> tuple[PreparedStatement, tuple[Any, ...]]:
        """The SELECT of one page of ``query`` and its parameters. Queries
        of one shape (the same filters, order and kind of position) share
        one statement."""
        shape, values = self._page_shape(query)
        return self._prepare(shape, lambda: self._page_statement(shape)), values

    def _page_shape(self, query: Query) -> tuple[Any, tuple[Any, ...]]:
        """What the page statement of ``query`` depends on, and its
        parameters, in the order :meth:`_page_statement` binds them."""
        values: list[Any] = []
        scoped = query.project is not None and self.project is not None
        if scoped:
            values.append(query.project)
        where = []
        for fname, prim in query.where.items():
            where.append((fname, prim is None))
            if prim is not None:
                values += [col.bind(prim) for col in self.columns_of(fname)]
        after = None
        if query.order_by is not None:
            cols = self.columns_of(query.order_by)
            if len(cols) != 1:
                raise DefinitionError(
                    f"{self.coll.object_name}.{query.order_by} is stored in several columns "
                    "across versions; order by it once contract has removed the old one")
            if query.after is not None:
                value = cols[0].bind(query.after[0])
                after = "null" if value is None else "value"
                if value is not None:
                    values.append(value)
                values.append(self.key.bind(query.after[1]))
        elif query.after is not None:
            after = "key"
            values.append(self.key.bind(query.after[1]))
        values.append(query.limit)
        shape = ("page", scoped, tuple(where), query.order_by, query.descending, after)
        return shape, tuple(values)

    def _page_statement(self, shape: Any) -> tuple[Any, list[str]]:
        _, scoped, where, order_by, desc, after = shape
        table = self.table
        names: list[str] = []

        def param(column: str) -> Any:
            names.append(f"rs_q{len(names)}")
            return self._param(names[-1], column)

        stmt = sa.select(*table.c)
        if scoped:
            assert self.project is not None
            stmt = stmt.where(table.c[self.project.name] == param(self.project.name))
        for fname, is_null in where:
            cols = self.columns_of(fname)
            if is_null:
                stmt = stmt.where(sa.or_(*(table.c[c.name].is_(None) for c in cols)))
            else:
                stmt = stmt.where(sa.or_(*(table.c[c.name] == param(c.name) for c in cols)))
        key_col = table.c[self.key.name]
        order: list[Any] = []
        if order_by is not None:
            order_col = table.c[self.columns_of(order_by)[0].name]
            # NULLs sort first ascending (last descending) on every backend;
            # the keyset condition spells out both sides of the NULL edge.
            if after is not None:
                value = None if after == "null" else param(order_col.name)
                key = param(key_col.name)
                beyond_key = key_col < key if desc else key_col > key
                if value is None:
                    cond = sa.and_(order_col.is_(None), beyond_key)
                    if not desc:
                        cond = sa.or_(cond, order_col.is_not(None))
                else:
                    cond = sa.or_(order_col < value if desc else order_col > value,
                                  sa.and_(order_col == value, beyond_key))
                    if desc:
                        cond = sa.or_(cond, order_col.is_(None))
                stmt = stmt.where(cond)
            nulls_rank = order_col.is_(None)
            order += [nulls_rank if desc else nulls_rank.desc(),
                      order_col.desc() if desc else order_col]
        elif after is not None:
            key = param(key_col.name)
            stmt = stmt.where(key_col < key if desc else key_col > key)
        order.append(key_col.desc() if desc else key_col)
        names.append(f"rs_q{len(names)}")
        limit = sa.bindparam(names[-1], type_=sa.Integer())
        return stmt.order_by(*order).limit(limit), names


def insert_ignoring_duplicates(table: sa.Table, dialect: str) -> Any:
    """INSERT into ``table`` that skips a row whose primary key exists."""
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql as module
    elif dialect == "sqlite":
        from sqlalchemy.dialects import sqlite as module  # type: ignore[no-redef]
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise StorageError(f"unsupported SQL dialect {dialect}")
    return module.insert(table).on_conflict_do_nothing()
