"""The store: objects in, objects out, on any backend.

A :class:`Store` converts between objects and records. It writes each
object at the **storage version** (a manifest: object name -> version, the
highest every live reader knows; by default the current versions) and reads
records of any version through the upgrade path, so a record written by an
older release comes back as the current version.

Updates are driven by change tracking: only the fields that changed are
written, so a writer never clobbers a field it did not touch, and each
update names the revision it read: a stale one is refused with
:class:`ConflictError` and changes nothing.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from rollsafe.errors import (
    ConflictError,
    DecodeError,
    DefinitionError,
    NotFoundError,
    RetryableStorageError,
    StorageError,
)
from rollsafe.objects.api import from_primitive, reset_changes, to_primitive, what_changed
from rollsafe.objects.base import VersionedObject
from rollsafe.storage.base import (
    Backend,
    Page,
    Query,
    Record,
    Transaction,
    Update,
    decode_cursor,
    encode_cursor,
    iterate_pages,
)
from rollsafe.storage.collection import Collection

__all__ = ["Store", "UnitOfWork", "open_backend", "revision_of"]

T = TypeVar("T", bound=VersionedObject)
R = TypeVar("R")


def open_backend(url: str, **options: Any) -> Backend:
    """The backend a URL names: ``sqlite:///path`` (or ``sqlite://`` in
    memory), ``postgresql://...``, ``redis://...``, or ``none://`` for a
    service that must not reach the store. Drivers load here."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "none":
        from rollsafe.storage.nostore import NoStoreBackend

        return NoStoreBackend(**options)
    if scheme.startswith(("sqlite", "postgresql", "postgres")):
        from rollsafe.storage.sql import SqlBackend

        return SqlBackend(url, **options)
    if scheme in ("redis", "rediss", "unix"):
        from rollsafe.storage.redis import RedisBackend

        return RedisBackend(url, **options)
    raise ValueError(f"no backend for {url.split('://')[0]!r} URLs; use sqlite:///, "
                     "postgresql:// or redis://")


def revision_of(obj: VersionedObject) -> int:
    """The stored revision an object was read or last written at."""
    meta = getattr(obj, "_rs_meta", None)
    if meta is None:
        raise StorageError(f"this {type(obj).__name__} was not read from or written to a "
                           "store; create() it first")
    return int(meta[0])


class UnitOfWork:
    """Operations that commit together or not at all (``Store.unit_of_work``)."""

    def __init__(self, store: Store, tx: Transaction, readonly: bool = False) -> None:
        self._store = store
        self._tx = tx
        self._readonly = readonly
        # Set when update_many failed part-way: the unit must not commit.
        self._broken = False
        # How to put each touched object back if the unit does not commit.
        self._undo: list[tuple[VersionedObject, Any, set[str]]] = []

    def _remember(self, obj: VersionedObject, changed: set[str] | None = None) -> None:
        if changed is None:
            changed = what_changed(obj)
        self._undo.append((obj, getattr(obj, "_rs_meta", None), set(changed)))

    def _roll_back_objects(self) -> None:
        """The unit did not commit: objects get back their stored revision
        and their changes, so writing them again writes what they hold."""
        for obj, meta, changed in reversed(self._undo):
            obj._rs_meta = meta
            obj._rs_changed = changed | what_changed(obj)
        self._undo.clear()

    def _writable(self) -> None:
        if self._readonly:
            raise StorageError("this unit of work was opened readonly; open it without "
                               "readonly=True to write")

    def create(self, obj: T) -> T:
        """Store a new object (all its fields, at the storage version)."""
        self._writable()
        coll = self._store.collection(type(obj))
        self._remember(obj)
        # A create writes every field; resetting first also keeps change
        # lists out of the nested envelopes, so there is nothing to strip.
        reset_changes(obj, recursive=True)
        record = self._store._record(coll, obj, strip=False)
        self._tx.insert(coll, record)
        obj._rs_meta = (1, record.version)
        return obj

    def get(self, cls: type[T], key: Any, *, project: Any = None) -> T:
        """The stored object with ``key``, as the current version;
        :class:`NotFoundError` if absent (or in another project)."""
        coll = self._store.collection(cls)
        record = self._tx.get(coll, self._store._key(coll, key), _prim(project))
        if record is None:
            raise NotFoundError(f"no {coll.object_name} {key}"
                                + ("" if project is None else f" in project {project}"))
        return self._store._object(coll, record)  # type: ignore[return-value]

    def update(self, obj: T) -> T:
        """Write the fields changed since ``obj`` was read; refuse with
        :class:`ConflictError` if the stored object changed meanwhile."""
        self._writable()
        coll = self._store.collection(type(obj))
        change = self._change(coll, obj)
        if change is None:
            return obj
        new = self._tx.update(coll, *change)
        obj._rs_meta = (new, change.version)
        reset_changes(obj, recursive=True)
        return obj

    def update_many(self, objs: Iterable[T]) -> list[T]:
        """Write what changed in each of ``objs``, as :meth:`update` does,
        in as few round trips as the backend can (on SQL, one statement per
        set of changed columns). If any of them changed or was deleted since
        it was read, :class:`ConflictError` (or :class:`NotFoundError`) is
        raised and the unit of work cannot commit any more: let the error
        leave the ``with`` block (the objects get their changes back), then
        retry, for example one by one with :meth:`update`."""
        self._writable()
        objs = list(objs)
        # Per class: its collection, the objects that changed, their updates.
        groups: dict[type, tuple[Collection, list[VersionedObject], list[Update]]] = {}
        for obj in objs:
            group = groups.get(type(obj))
            if group is None:
                group = groups[type(obj)] = (self._store.collection(type(obj)), [], [])
            change = self._change(group[0], obj)
            if change is not None:
                group[1].append(obj)
                group[2].append(change)
        for coll, changed, updates in groups.values():
            if not updates:
                continue
            try:
                self._tx.update_many(coll, updates)
            except BaseException:
                self._broken = True  # some updates may be applied: never commit this unit
                raise
            for written, change in zip(changed, updates, strict=True):
                written._rs_meta = (change.expected_revision + 1, change.version)
                reset_changes(written, recursive=True)
        return objs

    def _change(self, coll: Collection, obj: VersionedObject) -> Update | None:
        """The update that writes what changed in ``obj`` (None: nothing
        did); remembers ``obj`` so a unit that does not commit restores it."""
        revision = revision_of(obj)
        meta = obj._rs_meta
        stored_version = meta[1]
        changed = what_changed(obj)
        if not changed:
            return None
        primitive = self._store._primitive(coll, obj)
        reg = type(obj)._rs_info.registry
        version, data = primitive[reg.key_version], primitive[reg.key_data]
        if coll.key in changed or (coll.project is not None and coll.project in changed):
            raise StorageError(f"{coll.object_name}.{coll.key} and its project field cannot "
                               "change once stored")
        if version != stored_version and _newer(stored_version, version):
            raise StorageError(
                f"{coll.object_name} {coll.key_of(data)} is stored at {stored_version}, newer "
                f"than the storage version {version}: writing it would lose what "
                f"{version} cannot hold; raise the storage version (the fleet pin) first")
        self._undo.append((obj, meta, changed))  # a fresh set: what_changed made it
        full = version != stored_version
        if full:  # the record moves to another version: write it whole
            values = data
        else:
            names = set(primitive.get(reg.key_changes, ()))
            values = {name: data[name] for name in names}
        return Update(data[coll.key], None if coll.project is None else data[coll.project],
                      revision, version, values, full)

    def delete(self, obj: VersionedObject) -> None:
        """Remove a stored object (refused if it changed since it was read)."""
        self._writable()
        coll = self._store.collection(type(obj))
        data = self._store._primitive(coll, obj)[type(obj)._rs_info.registry.key_data]
        self._tx.delete(coll, coll.key_of(data), coll.project_of(data), revision_of(obj))
        self._remember(obj)
        obj._rs_meta = None

    def query(self, cls: type[T], *, project: Any = None, where: dict[str, Any] | None = None,
              order_by: str | None = None, descending: bool = False, limit: int = 100,
              cursor: str | None = None) -> Page[T]:
        """One page of objects matching ``where`` (equality on fields),
        ordered by ``order_by`` then key; pass ``page.next_cursor`` back as
        ``cursor`` for the next page."""
        coll = self._store.collection(cls)
        query = self._store._query(coll, project, where, order_by, descending, limit)
        if cursor is not None:
            query.after = self._store._position(coll, order_by, decode_cursor(cursor))
        records = self._tx.query(coll, query)
        items = [self._store._object(coll, r) for r in records]
        next_cursor = None
        if len(records) == limit and records:
            last = records[-1]
            value = None if order_by is None else last.data.get(order_by)
            next_cursor = encode_cursor((value, last.key))
        return Page(items, next_cursor)  # type: ignore[arg-type]


class Store:
    """Objects on a backend. Each method is its own unit of work; use
    :meth:`unit_of_work` to make several commit together."""

    def __init__(self, backend: Backend, collections: Iterable[Collection], *,
                 storage_versions: dict[str, str] | None = None) -> None:
        self.backend = backend
        self._collections: dict[type, Collection] = {}
        for coll in collections:
            self._collections[coll.cls] = coll
        #: Object name -> version written; None writes current versions.
        self.storage_versions = storage_versions

    @property
    def collections(self) -> list[Collection]:
        """The collections this store holds."""
        return list(self._collections.values())

    def collection(self, cls: type[VersionedObject]) -> Collection:
        """The collection of ``cls``."""
        try:
            return self._collections[cls]
        except KeyError:
            raise DefinitionError(f"{cls.__name__} has no Collection in this store") from None

    def close(self) -> None:
        """Release the backend's connections."""
        self.backend.close()

    def ensure_schema(self) -> None:
        """Create the tables / indexes the collections need, if missing."""
        self.backend.ensure_schema(self.collections)

    @contextmanager
    def unit_of_work(self, *, readonly: bool = False) -> Iterator[UnitOfWork]:
        """Operations that commit together at the end of the block, or not
        at all if it raises. ``readonly`` units only read (and so never wait
        for writers on SQLite)."""
        uow = None
        try:
            with self.backend.transaction(readonly=readonly) as tx:
                uow = UnitOfWork(self, tx, readonly)
                yield uow
                if uow._broken:
                    raise StorageError("this unit of work cannot commit: an update_many in "
                                       "it failed part-way; let its error leave the block")
        except BaseException:
            if uow is not None:
                uow._roll_back_objects()
            raise

    def run(self, flow: Callable[[UnitOfWork], R], *, attempts: int = 3) -> R:
        """Run ``flow(uow)`` in a unit of work, and again in a fresh one when
        it loses a race (:class:`ConflictError`) or the store was briefly
        unreachable (:class:`RetryableStorageError`), up to ``attempts``
        times. The flow must load what it changes inside the unit (so a
        retry sees the new state); the last error is raised if every attempt
        fails. Each attempt is all-or-nothing."""
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        for attempt in range(1, attempts + 1):
            try:
                with self.unit_of_work() as uow:
                    result: R = flow(uow)
                return result
            except (ConflictError, RetryableStorageError):
                if attempt == attempts:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def create(self, obj: T) -> T:
        """Store a new object; :class:`ConflictError` if the key exists."""
        with self.unit_of_work() as uow:
            return uow.create(obj)

    def get(self, cls: type[T], key: Any, *, project: Any = None) -> T:
        """The stored object with ``key`` (see :meth:`UnitOfWork.get`)."""
        with self.unit_of_work(readonly=True) as uow:
            return uow.get(cls, key, project=project)

    def update(self, obj: T) -> T:
        """Write what changed (see :meth:`UnitOfWork.update`)."""
        with self.unit_of_work() as uow:
            return uow.update(obj)

    def delete(self, obj: VersionedObject) -> None:
        """Remove a stored object (see :meth:`UnitOfWork.delete`)."""
        with self.unit_of_work() as uow:
            uow.delete(obj)

    def query(self, cls: type[T], **options: Any) -> Page[T]:
        """One page of objects (see :meth:`UnitOfWork.query`)."""
        with self.unit_of_work(readonly=True) as uow:
            return uow.query(cls, **options)

    def stream(self, cls: type[T], *, project: Any = None, where: dict[str, Any] | None = None,
               order_by: str | None = None, batch: int = 1000) -> Iterator[T]:
        """Every matching object, fetched ``batch`` at a time with keyset
        pagination (each batch in its own short transaction), so memory
        stays bounded however many there are."""
        coll = self.collection(cls)
        query = self._query(coll, project, where, order_by, False, batch)

        def fetch(q: Query) -> list[Record]:
            with self.backend.transaction(readonly=True) as tx:
                return tx.query(coll, q)

        for record in iterate_pages(fetch, query):
            yield self._object(coll, record)  # type: ignore[misc]

    # -- conversions ----------------------------------------------------
    def _primitive(self, coll: Collection, obj: VersionedObject,
                   strip: bool = True) -> dict[str, Any]:
        primitive = to_primitive(obj, manifest=self.storage_versions)
        if not strip:
            return primitive
        if coll.object_fields:  # only their values can hold nested envelopes
            reg = type(obj)._rs_info.registry
            data = primitive[reg.key_data]
            for name in coll.object_fields:
                value = data.get(name)
                if isinstance(value, dict | list):
                    _drop_changes(value, reg.key_name, reg.key_changes, reg.key_data)
        return primitive

    def _record(self, coll: Collection, obj: VersionedObject, strip: bool = True) -> Record:
        reg = type(obj)._rs_info.registry
        primitive = self._primitive(coll, obj, strip)
        data = primitive[reg.key_data]
        return Record(coll.key_of(data), coll.project_of(data), primitive[reg.key_version], 1,
                      data)

    def _object(self, coll: Collection, record: Record) -> VersionedObject:
        reg = coll.cls._rs_info.registry
        envelope = {reg.key_name: coll.object_name, reg.key_namespace: reg.namespace,
                    reg.key_version: record.version, reg.key_data: record.data}
        obj = from_primitive(envelope, coll.cls)
        # Only nested envelopes written with change lists bring any.
        if coll.object_fields and what_changed(obj):
            reset_changes(obj, recursive=True)
        obj._rs_meta = (record.revision, record.version)
        return obj

    def _key(self, coll: Collection, key: Any) -> Any:
        return _prim(key)

    def _query(self, coll: Collection, project: Any, where: dict[str, Any] | None,
               order_by: str | None, descending: bool, limit: int) -> Query:
        fields = coll.cls._rs_info.fields
        from rollsafe.storage.collection import is_scalar

        for name in [*(where or {}), *([order_by] if order_by else [])]:
            if name not in fields or not is_scalar(fields[name].ftype):
                raise DefinitionError(f"{coll.object_name} cannot be queried by {name!r}: "
                                      "only scalar fields can be filtered or ordered by")
        if order_by is not None and order_by not in coll.indexes:
            raise DefinitionError(f"{coll.object_name} cannot be ordered by {order_by!r}: "
                                  f"add it to Collection(indexes=[...]) so every backend "
                                  "can page through it without scanning")
        if type(limit) is not int or not 1 <= limit <= 10_000:
            raise ValueError("limit must be an int from 1 to 10000")
        prims = {}
        for name, value in (where or {}).items():
            ftype = fields[name].ftype
            # Checked like an assignment: a wrong type is a ValidationError.
            checked = None if value is None else ftype.validate(
                value, f"{coll.object_name}.{name}")
            prims[name] = None if checked is None else ftype.to_prim(checked, name, None)
        return Query(_prim(project), prims, order_by, descending, limit)

    def _position(self, coll: Collection, order_by: str | None,
                  position: tuple[Any, Any]) -> tuple[Any, Any]:
        """A cursor's keyset position, checked against the field types (a
        tampered cursor is a DecodeError, like any malformed input)."""
        from rollsafe.objects.limits import DEFAULT_LIMITS

        fields = coll.cls._rs_info.fields
        value, key = position
        if order_by is None:
            if value is not None:
                raise DecodeError("cursor", "malformed pagination cursor")
        elif value is not None:
            ftype = fields[order_by].ftype
            value = ftype.to_prim(ftype.from_prim(value, "cursor", DEFAULT_LIMITS, 1),
                                  "cursor", None)
        ktype = fields[coll.key].ftype
        key = ktype.to_prim(ktype.from_prim(key, "cursor", DEFAULT_LIMITS, 1), "cursor", None)
        return value, key


@functools.lru_cache(maxsize=256)
def _newer(a: str, b: str) -> bool:
    """Whether version ``a`` is newer than ``b`` (asked for every record
    written; a handful of distinct pairs)."""
    from rollsafe.objects.history import parse_version

    return parse_version(a) > parse_version(b)


def _drop_changes(value: Any, name_key: str, changes_key: str, data_key: str) -> None:
    """Remove change lists from the nested envelopes in a field's value (a
    stored object has none); only envelopes and lists or dicts of them are
    walked, not plain collections."""
    if isinstance(value, dict):
        if name_key in value:  # an envelope
            value.pop(changes_key, None)
            for item in value[data_key].values():
                if isinstance(item, dict | list):
                    _drop_changes(item, name_key, changes_key, data_key)
            return
        items: Any = value.values()
    else:
        items = value
    for item in items:
        if not isinstance(item, dict | list):
            return  # a collection of plain values: no envelopes inside
        _drop_changes(item, name_key, changes_key, data_key)


def _prim(value: Any) -> Any:
    """A key or project value as stored (UUIDs as canonical strings)."""
    return str(value) if isinstance(value, uuid.UUID) else value


