"""The background rewriter: move stored records to the version a store writes.

A store reads records of any stored version and writes the **storage
version** (``Store.storage_versions``, else the current version). Records
nobody touches stay at the version they were written at, so before the
contract half of a change (which drops what only older versions used, on
SQL; on Redis, before the code stops knowing an old version) every old
record has to be written again. :func:`rewrite` does that in the
background, on any backend:

- It walks every record of a class in key order with keyset pagination,
  ``batch`` records a page (each page read in its own short transaction),
  so memory stays bounded by the batch however many records there are.
- Records stored at an *older* version than the target are loaded through
  the store (upgraded as any read is), marked changed whole
  (:func:`mark_for_rewrite`) and written back with
  :meth:`UnitOfWork.update <rollsafe.storage.store.UnitOfWork.update>`,
  one unit of work per batch. The update names the revision the page read,
  so a record changed by someone else since is refused, never overwritten:
  no concurrent write is lost.
- A record refused that way (:class:`ConflictError`, at the call or, on
  Redis, for the whole unit when a watched record changed before ``EXEC``)
  is read again and retried once in the next batch pass, in a unit of work
  of the retries only; if it conflicts again it is counted in
  ``conflicts`` and left for the next run.
- A record stored at a version *newer* than the target (written by a newer
  release while this store is pinned lower) is never downgraded: it is
  skipped and counted in ``skipped_newer``.
- Records already at the target are only counted: a second run rewrites
  nothing, and a run stopped at any point (even by SIGKILL: each batch
  commits whole or not at all) is finished by running it again.

Only the top-level version is compared: nested objects inside a record are
written at the storage version whenever the record is rewritten, but a
record already at the target version is not rewritten for the sake of an
older nested envelope (reads upgrade those anyway).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from rollsafe.errors import ConflictError, DefinitionError, NotFoundError
from rollsafe.objects.base import VersionedObject
from rollsafe.objects.history import parse_version
from rollsafe.storage.base import Query, Record
from rollsafe.storage.collection import Collection
from rollsafe.storage.store import Store

__all__ = ["RewriteResult", "count_outdated", "mark_for_rewrite", "rewrite", "target_version"]

T = TypeVar("T", bound=VersionedObject)


@dataclass(frozen=True, slots=True)
class RewriteResult:
    """What one :func:`rewrite` run did.

    ``found``: records the walk met at a version older than the target;
    ``rewritten``: those this run wrote at the target; ``conflicts``: those
    that changed concurrently twice (first try and retry) and were left as
    they are; ``remaining``: records still older than the target when the
    run ended (counted by a final read-only pass: 0 means done, including
    records an older release wrote behind the walk meanwhile);
    ``skipped_newer``: records stored at a version newer than the target,
    left alone; ``scanned``: records the walk read; ``target``: the version
    written. ``found - rewritten - conflicts`` records were moved, or
    deleted, by someone else during the run."""

    found: int
    rewritten: int
    conflicts: int
    remaining: int
    skipped_newer: int = 0
    scanned: int = 0
    target: str = ""

    @property
    def done(self) -> bool:
        """Whether no record is left at an older version than the target."""
        return self.remaining == 0


def target_version(store: Store, cls: type[VersionedObject]) -> str:
    """The version ``store`` writes ``cls`` at: its ``storage_versions``
    entry (never above the current version), else the current version."""
    store.collection(cls)  # DefinitionError if the store does not hold cls
    info = cls._rs_info
    number: str = info.target(None, store.storage_versions).number
    return number


def mark_for_rewrite(store: Store, obj: T) -> T:
    """Mark every field of ``obj`` changed (except its key and project
    fields, which never change once stored), so that the next
    ``update(obj)`` writes the whole record, at the storage version, even
    if nothing was assigned. Returns ``obj``.

    ``UnitOfWork.update`` writes the whole record whenever the version it
    was read at (``obj._rs_meta[1]``) differs from the storage version;
    marking every field also makes a rewrite at the same version complete.
    The update still names the revision ``obj`` was read at, so it is
    refused if the record changed since."""
    coll = store.collection(type(obj))
    if not coll.value_fields:
        raise DefinitionError(f"{coll.object_name} has no field besides its key and project: "
                              "there is nothing a rewrite could write")
    changed = set(obj._rs_changed)
    changed.update(coll.value_fields)
    obj._rs_changed = changed
    return obj


def count_outdated(store: Store, cls: type[VersionedObject], *, project: Any = None,
                   batch: int = 500) -> tuple[int, int]:
    """``(older, newer)``: how many records of ``cls`` (in ``project`` when
    not None) are stored at a version older, and newer, than the one
    ``store`` writes. Read-only: counted by the database where the backend
    can (SQL), else by reading ``batch`` records at a time."""
    coll = store.collection(cls)
    target = parse_version(target_version(store, cls))
    query = store._query(coll, project, None, None, False, batch)
    with store.backend.transaction(readonly=True) as tx:
        counts = tx.count_versions(coll, query.project)
    if counts is None:  # the backend cannot count them: walk the records
        counts = {}
        for records in _pages(store, coll, query):
            for record in records:
                counts[record.version] = counts.get(record.version, 0) + 1
    older = newer = 0
    for version, count in counts.items():
        key = parse_version(version)
        older += count if key < target else 0
        newer += count if key > target else 0
    return older, newer


def rewrite(store: Store, cls: type[VersionedObject], *, batch: int = 500,
            max_batches: int | None = None, pause: float = 0.0,
            project: Any = None) -> RewriteResult:
    """Rewrite every record of ``cls`` stored at an older version than the
    one ``store`` writes (see the module documentation).

    ``batch``: records per page and per unit of work (1 to 10000);
    ``max_batches``: stop after reading that many pages (None: walk them
    all; a later run starts from the beginning again, skipping what is
    done); ``pause``: seconds to sleep between batches, to leave the
    database to the service; ``project``: only that project's records.

    Storage errors other than conflicts (a lost connection:
    :class:`RetryableStorageError`) propagate; batches committed before
    stay committed, and running again finishes the job."""
    if type(batch) is not int or not 1 <= batch <= 10_000:
        raise ValueError("batch must be an int from 1 to 10000")
    if max_batches is not None and (type(max_batches) is not int or max_batches < 1):
        raise ValueError("max_batches must be None or an int >= 1")
    if not isinstance(pause, int | float) or not math.isfinite(pause) or pause < 0:
        raise ValueError("pause must be a finite number of seconds >= 0")
    coll = store.collection(cls)
    target = target_version(store, cls)
    run = _Run(store, coll, parse_version(target))
    query = store._query(coll, project, None, None, False, batch)
    pages = _pages(store, coll, query)
    read = 0
    more = True  # pages may follow
    pending: list[Record] = []  # conflicted once: retried in the next pass
    while True:
        records: list[Record] = []
        if more and (max_batches is None or read < max_batches):
            records = next(pages, [])
            read += 1
            more = len(records) == batch
        else:
            more = False
        if not records and not pending:
            break
        if pending:  # the second and last try, on what the record holds now
            retries = [r for r in _read_again(store, coll, pending) if run.older(r)]
            run.conflicts += len(run.write(retries))
        pending = run.write(run.classify(records))
        if pause and (pending or (more and (max_batches is None or read < max_batches))):
            time.sleep(pause)
    older, _ = count_outdated(store, cls, project=project, batch=batch)
    return RewriteResult(found=run.found, rewritten=run.rewritten, conflicts=run.conflicts,
                         remaining=older, skipped_newer=run.skipped_newer, scanned=run.scanned,
                         target=target)


class _Run:
    """The counts of one :func:`rewrite` run and its per-batch steps."""

    def __init__(self, store: Store, coll: Collection, target: tuple[int, int]) -> None:
        self.store = store
        self.coll = coll
        self.target = target
        self.found = self.rewritten = self.conflicts = self.skipped_newer = self.scanned = 0

    def older(self, record: Record) -> bool:
        """Whether ``record`` is stored at a version older than the target."""
        return parse_version(record.version) < self.target

    def classify(self, records: list[Record]) -> list[Record]:
        """Count a freshly read page; the records to rewrite."""
        self.scanned += len(records)
        todo = []
        for record in records:
            key = parse_version(record.version)
            if key < self.target:
                todo.append(record)
            elif key > self.target:
                self.skipped_newer += 1
        self.found += len(todo)
        return todo

    def write(self, records: list[Record]) -> list[Record]:
        """Rewrite ``records`` in one unit of work, each at the revision it
        was read at; the records refused because they changed meanwhile
        (all of them when the unit as a whole conflicts)."""
        if not records:
            return []
        store, coll = self.store, self.coll
        refused: list[Record] = []
        written = 0
        try:
            with store.unit_of_work() as uow:
                for record in records:
                    obj = store._object(coll, record)
                    mark_for_rewrite(store, obj)
                    try:
                        uow.update(obj)
                    except ConflictError:
                        refused.append(record)
                    except NotFoundError:
                        pass  # deleted meanwhile: nothing left to move
                    else:
                        written += 1
        except ConflictError:  # a watched record changed before commit: nothing was written
            return records
        self.rewritten += written
        return refused


def _pages(store: Store, coll: Collection, query: Query) -> Iterator[list[Record]]:
    """Pages of records of ``query`` in key order, each read by
    :func:`_read_page` in its own transaction, until one comes back short."""
    while True:
        page = _read_page(store, coll, query)
        if page:
            yield page
        if len(page) < query.limit:
            return
        query.after = (None, page[-1].key)


def _read_page(store: Store, coll: Collection, query: Query) -> list[Record]:
    """One page of records, as stored (no conversion), in a short readonly
    transaction (on SQLite it does not wait for writers)."""
    with store.backend.transaction(readonly=True) as tx:
        return tx.query(coll, query)


def _read_again(store: Store, coll: Collection, records: list[Record]) -> list[Record]:
    """What ``records`` hold now (those deleted meanwhile left out), read
    in one short readonly transaction."""
    with store.backend.transaction(readonly=True) as tx:
        found = (tx.get(coll, record.key, record.project) for record in records)
        return [record for record in found if record is not None]

