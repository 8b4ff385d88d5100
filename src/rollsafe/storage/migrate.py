"""Expand and contract: the two halves of every SQL schema change.

The schema a store needs is derived from the objects: every column every
*stored* version of every collection uses (see :mod:`rollsafe.storage.sql`).
Alembic compares that with the live database and the differences fall in
two groups:

- **expand** (run before new code starts, with old code still running):
  create tables, add columns, add indexes. Nothing is dropped, renamed,
  retyped or made NOT NULL; an old release keeps working on the expanded
  schema. :func:`check_expand` refuses any operation outside that list.
- **contract** (run once no old code or old record is left): drop the
  columns and indexes that only versions older than a collection's
  ``oldest`` version used. It refuses while any row is still stored at such
  a version (run the online migrations first), unless forced.

Because the operations come from the version histories, an ``Added`` field
becomes an added column in expand, a ``Removed`` or renamed field's old
column is dropped in contract once ``Collection(oldest=...)`` moves past
the version that still had it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from rollsafe.errors import StorageError
from rollsafe.storage.collection import Collection
from rollsafe.storage.sql import SqlBackend

__all__ = ["ContractRefusedError", "SchemaPlan", "UnsafeExpandError", "check_expand", "contract",
           "expand", "plan"]

#: Alembic operations an expand may contain.
_EXPAND_SAFE = frozenset({"add_table", "add_column", "add_index"})
#: Alembic operations a contract may contain.
_CONTRACT = frozenset({"remove_column", "remove_index", "remove_table"})


class UnsafeExpandError(StorageError):
    """An expand would drop, rename, retype or tighten something, which
    would break the release still running. Split the change: add in expand,
    remove in contract."""


class ContractRefusedError(StorageError):
    """Contract would drop columns that stored rows still use."""


@dataclass
class SchemaPlan:
    """The differences between the objects' schema and the database."""

    expand: list[tuple[Any, ...]] = field(default_factory=list)
    contract: list[tuple[Any, ...]] = field(default_factory=list)
    other: list[Any] = field(default_factory=list)

    def describe(self) -> list[str]:
        """One line per operation, expand first."""
        return ([f"expand: {_describe(op)}" for op in self.expand]
                + [f"contract: {_describe(op)}" for op in self.contract]
                + [f"manual: {_describe(op)}" for op in self.other])


def _describe(op: Any) -> str:
    if isinstance(op, tuple) and op:
        kind = op[0]
        if kind in ("add_column", "remove_column"):
            return f"{kind} {op[2]}.{op[3].name} ({op[3].type})"
        if kind in ("add_table", "remove_table"):
            return f"{kind} {op[1].name}"
        if kind in ("add_index", "remove_index"):
            return f"{kind} {op[1].name} on {op[1].table.name}"
        return f"{kind} {op[1:]!r}"
    if isinstance(op, list):  # alembic groups column modifications in lists
        return "; ".join(f"{o[0]} {o[2]}.{o[3]}" for o in op)
    return repr(op)


def _target(backend: SqlBackend, collections: Sequence[Collection]) -> sa.MetaData:
    for coll in collections:
        backend.table_map(coll)
    return backend.metadata


def plan(backend: SqlBackend, collections: Sequence[Collection]) -> SchemaPlan:
    """Compare the database with what ``collections`` need."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    metadata = _target(backend, collections)
    maps = {backend.table_map(c).table.name: backend.table_map(c) for c in collections}
    names = set(maps)
    result = SchemaPlan()
    with backend.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "include_name": lambda name, kind, parent: kind != "table" or name in names,
        })
        for diff in compare_metadata(context, metadata):
            kind = diff[0] if isinstance(diff, tuple) else None
            if kind in _EXPAND_SAFE:
                result.expand.append(diff)
            elif kind in _CONTRACT:
                # Contract drops only what the history retired: columns (and
                # their indexes) that versions older than ``oldest`` used.
                # Anything else the database has is not ours to drop.
                target = result.contract if _retired(diff, maps) else result.other
                target.append(diff)
            else:
                result.other.append(diff)
    return result


def _retired(diff: tuple[Any, ...], maps: dict[str, Any]) -> bool:
    """Whether a removal Alembic proposes is of a column the history retired
    (or of an index on one)."""
    if diff[0] == "remove_column":
        return diff[3].name in maps[diff[2]].retired
    if diff[0] == "remove_index" and diff[1].table.name in maps:
        return bool({c.name for c in diff[1].columns} & maps[diff[1].table.name].retired)
    return False


def check_expand(operations: Sequence[Any]) -> None:
    """Raise :class:`UnsafeExpandError` unless every operation only adds
    (tables, nullable columns or columns with a server default, indexes)."""
    for op in operations:
        kind = op[0] if isinstance(op, tuple) else "modify"
        if kind not in _EXPAND_SAFE:
            raise UnsafeExpandError(f"expand may only add; {_describe(op)} would break the "
                                    "release still running: do it in contract")
        if kind == "add_column":
            column = op[3]
            if not column.nullable and column.server_default is None:
                raise UnsafeExpandError(
                    f"expand adds NOT NULL column {op[2]}.{column.name} without a server "
                    "default: rows written by the running release would fail; add it "
                    "nullable in expand and tighten it in contract")


def expand(backend: SqlBackend, collections: Sequence[Collection], *,
           dry_run: bool = False) -> SchemaPlan:
    """Apply the expand half of the plan (after :func:`check_expand`)."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    schema = plan(backend, collections)
    check_expand(schema.expand)
    if dry_run or not schema.expand:
        return schema
    with backend.engine.begin() as conn:
        ops = Operations(MigrationContext.configure(conn))
        for op in _ordered(schema.expand):
            kind = op[0]
            if kind == "add_table":
                op[1].create(conn)
            elif kind == "add_column":
                column = op[3]._copy()
                ops.add_column(op[2], column)
            elif kind == "add_index":
                op[1].create(conn, checkfirst=True)
    return schema


def _ordered(operations: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Tables first, then columns, then indexes (which need both)."""
    rank = {"add_table": 0, "add_column": 1, "add_index": 2}
    return sorted(operations, key=lambda op: rank[op[0]])


def stale_rows(backend: SqlBackend, collections: Sequence[Collection]) -> dict[str, int]:
    """Per collection, how many rows are stored at a version older than its
    ``oldest``: what contract would strand."""
    out: dict[str, int] = {}
    with backend.engine.connect() as conn:
        inspector = sa.inspect(conn)
        for coll in collections:
            tmap = backend.table_map(coll)
            if not inspector.has_table(tmap.table.name):
                continue
            keep = list(tmap.by_version)
            count = conn.execute(sa.select(sa.func.count()).select_from(tmap.table).where(
                tmap.table.c.rs_version.not_in(keep))).scalar_one()
            if count:
                out[f"{coll.object_name} (table {tmap.table.name})"] = int(count)
    return out


def contract(backend: SqlBackend, collections: Sequence[Collection], *, dry_run: bool = False,
             force: bool = False) -> SchemaPlan:
    """Apply the contract half: drop what no stored version uses any more.
    Refuses (:class:`ContractRefusedError`) while rows are stored at a
    version older than a collection's ``oldest``, unless ``force``."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    schema = plan(backend, collections)
    stale = stale_rows(backend, collections)
    if stale and not force:
        listing = ", ".join(f"{name}: {count}" for name, count in sorted(stale.items()))
        raise ContractRefusedError(
            f"rows are still stored at versions contract would strand ({listing}); run the "
            "online migrations until none are left, or force it")
    if dry_run or not schema.contract:
        return schema
    with backend.engine.begin() as conn:
        ops = Operations(MigrationContext.configure(conn))
        for op in sorted(schema.contract, key=lambda o: 0 if o[0] == "remove_index" else 1):
            if op[0] == "remove_index":
                ops.drop_index(op[1].name, table_name=op[1].table.name)
            elif op[0] == "remove_column":
                with ops.batch_alter_table(op[2]) as batch:
                    batch.drop_column(op[3].name)
    return schema
