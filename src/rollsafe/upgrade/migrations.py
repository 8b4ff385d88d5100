"""Online data migrations: named, idempotent, batched, resumable.

A service keeps one :class:`OnlineMigrations` set and registers its data
migrations into it, in the order they should run::

    migrations = OnlineMigrations("inventory")

    # Built in: every record of a class stored at an older version is
    # written again at the storage version (the background rewriter).
    migrations.rewrite(Host)

    # Per record: `needs` says which records the migration is for (it is
    # what `pending` counts, so the gate and the migration select the same
    # records); the function changes one object, the runner writes it.
    @migrations.each(Host, name="hosts-default-zone", needs=lambda h: h.zone is None)
    def default_zone(host: Host) -> None:
        host.zone = "zone-a"

    # Anything else: a function moving at most `limit` records a call, and
    # a read-only count of what is left.
    @migrations.register("purge-orphans", count=count_orphans)
    def purge_orphans(store: Store, limit: int) -> Batch:
        ...
        return Batch(found=len(orphans), migrated=deleted)

Every migration is idempotent (running it again after it finished finds
nothing) and moves at most one batch of records per call, in one unit of
work, so a run killed at any point (even by SIGKILL) loses and duplicates
nothing: the batch in flight is not committed, and running again resumes.

:meth:`OnlineMigrations.pending` says how many records each migration has
left without writing anything (the contract gate and ``upgrade check`` ask
it); :meth:`OnlineMigrations.run` runs them (``rollsafe migrate``).

How a run goes (:meth:`OnlineMigrations.run`):

- Migrations run one after another, in registration order. Each is called
  again and again, one batch per call, until it reports nothing found (or
  no progress), or ``max_count`` records were migrated in the run.
- Throttling: ``batch_size`` records a call and ``pause`` seconds between
  calls. With ``target_seconds``, the runner measures each batch: one that
  took longer halves the batch size and adds the overshoot to the pause;
  batches well under the target grow it back, up to ``batch_size``.
- Failure isolation: a migration that raises is stopped and reported with
  its error (the batch in flight is rolled back); the others still run, and
  the report's exit code is 2. Errors are never swallowed.
- Counts are real: ``found`` is the number of records the migration found
  needing migration, ``done`` those it migrated, ``remaining`` what
  :meth:`~Migration.count` reports after the run (read-only).
"""

from __future__ import annotations

import math
import re
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from rollsafe.errors import ConflictError, DefinitionError, MigrationError, NotFoundError
from rollsafe.objects.api import what_changed
from rollsafe.objects.base import VersionedObject
from rollsafe.objects.history import parse_version
from rollsafe.storage import rewrite
from rollsafe.storage.base import Query, Record
from rollsafe.storage.collection import Collection
from rollsafe.storage.store import Store

__all__ = [
    "Batch",
    "Migration",
    "MigrationFunction",
    "MigrationReport",
    "MigrationResult",
    "OnlineMigrations",
    "Progress",
]

T = TypeVar("T", bound=VersionedObject)

#: ``fn(store, limit) -> Batch``: migrate at most ``limit`` records.
MigrationFunction = Callable[[Store, int], "Batch | tuple[int, int]"]
#: ``count(store) -> int``: records left to migrate, read-only.
CountFunction = Callable[[Store], int]

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}")
_MAX_BATCH = 10_000


@dataclass(frozen=True, slots=True)
class Batch:
    """What one call of a migration did.

    ``found``: records this call found that need the migration (never more
    than the limit it was given); ``migrated``: how many of those it
    migrated (a record found but changed concurrently, for instance, is
    left for a later call or run). ``more``, for a migration that walks the
    records a page at a time: True when the call stopped before the end
    (call again, even though it found nothing), False when it reached the
    end (the run is over for this migration); None (the default) when the
    migration does not say: it is called again until a call finds nothing
    or migrates nothing."""

    found: int
    migrated: int
    more: bool | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    """What the runner reports after each batch (and once when a migration
    starts, with ``batch_seconds`` 0): the running totals of migration
    ``name``. ``total`` is the count before it started (None when the run
    did not count first: no progress callback), ``batch_size`` the size of
    the next batch."""

    name: str
    found: int
    done: int
    total: int | None
    batch_size: int
    batch_seconds: float


ProgressCallback = Callable[[Progress], None]


@dataclass(slots=True)
class MigrationResult:
    """What a run did for one migration.

    ``found``: records found needing the migration (on a dry run: the
    pending count); ``done``: records migrated; ``remaining``: records left
    after the run (read-only count; None if counting failed too);
    ``error``: ``"ExceptionType: message"`` if the migration raised (its
    traceback in ``traceback``); ``batches``: calls made; ``seconds``: time
    spent."""

    name: str
    found: int = 0
    done: int = 0
    remaining: int | None = 0
    error: str | None = None
    traceback: str | None = None
    batches: int = 0
    seconds: float = 0.0

    @property
    def finished(self) -> bool:
        """Whether nothing is left and nothing failed."""
        return self.error is None and self.remaining == 0


@dataclass(slots=True)
class MigrationReport:
    """What a run did, migration by migration (registration order)."""

    results: list[MigrationResult] = field(default_factory=list)
    dry_run: bool = False
    #: Whether the run stopped because ``max_count`` records were migrated.
    limited: bool = False

    @property
    def found(self) -> int:
        """Records found, over every migration."""
        return sum(r.found for r in self.results)

    @property
    def done(self) -> int:
        """Records migrated, over every migration."""
        return sum(r.done for r in self.results)

    @property
    def remaining(self) -> int:
        """Records left, over every migration whose count succeeded."""
        return sum(r.remaining or 0 for r in self.results)

    @property
    def errors(self) -> list[MigrationResult]:
        """The migrations that raised."""
        return [r for r in self.results if r.error is not None]

    @property
    def finished(self) -> bool:
        """Whether every migration is done and none failed."""
        return all(r.finished for r in self.results)

    @property
    def exit_code(self) -> int:
        """0: nothing left; 1: more to do (run again); 2: a migration failed."""
        if self.errors:
            return 2
        return 0 if self.finished else 1

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (what ``rollsafe migrate --json``
        prints)."""
        return {
            "dry_run": self.dry_run,
            "limited": self.limited,
            "exit_code": self.exit_code,
            "found": self.found,
            "done": self.done,
            "remaining": self.remaining,
            "errors": len(self.errors),
            "migrations": [asdict(r) for r in self.results],
        }


class Migration(ABC):
    """One registered online data migration (see the module documentation
    for the three kinds :class:`OnlineMigrations` builds).

    A subclass implements :meth:`count` (read-only) and :meth:`step`; the
    runner gives each run of a migration a fresh ``state`` dict that
    persists between the steps of that run only (for a resume position;
    a new run starts from the beginning, skipping what is done)."""

    def __init__(self, name: str, description: str = "") -> None:
        self.name = name
        self.description = description

    @abstractmethod
    def count(self, store: Store) -> int:
        """How many records still need this migration. Writes nothing."""

    @abstractmethod
    def step(self, store: Store, limit: int, state: dict[str, Any]) -> Batch:
        """Migrate at most ``limit`` records, in one unit of work."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class FunctionMigration(Migration):
    """A migration written as two functions: ``fn(store, limit)`` returning
    a :class:`Batch` (or ``(found, migrated)``) and ``count(store)``."""

    def __init__(self, name: str, fn: MigrationFunction, count: CountFunction,
                 description: str = "") -> None:
        super().__init__(name, description)
        self.fn = fn
        self._count = count

    def count(self, store: Store) -> int:
        """What the registered count function reports."""
        value = self._count(store)
        if type(value) is not int or value < 0:
            raise MigrationError(f"migration {self.name!r}: its count function returned "
                            f"{value!r}; it must return the number of records left (int >= 0)")
        return value

    def step(self, store: Store, limit: int, state: dict[str, Any]) -> Batch:
        """One call of the registered function."""
        result = self.fn(store, limit)
        if isinstance(result, tuple) and len(result) == 2:
            result = Batch(*result)
        if not isinstance(result, Batch):
            raise MigrationError(f"migration {self.name!r} returned {type(result).__name__}; it "
                            "must return Batch(found=..., migrated=...) or (found, migrated)")
        return result


class _PagedMigration(Migration):
    """A migration that walks every record of one class in key order, a
    page of ``limit`` records per step (resuming after the last key of the
    previous step), and migrates those it selects.

    The selected records are changed and written in one unit of work, with
    one statement per set of written columns on SQL
    (:meth:`UnitOfWork.update_many`). If any of them changed since the page
    was read, that unit commits nothing; the selected records are then read
    again and written one by one, in a second unit of work, each at the
    revision just read: a record refused again is left for the next run
    (``remaining`` shows it). A record deleted meanwhile is found but not
    migrated. A concurrent write is never overwritten."""

    def __init__(self, name: str, cls: type[VersionedObject], *, project: Any = None,
                 where: dict[str, Any] | None = None, description: str = "") -> None:
        super().__init__(name, description)
        self.cls = cls
        self.project = project
        self.where = dict(where or {})

    def _query(self, store: Store, coll: Collection, limit: int) -> Query:
        return store._query(coll, self.project, self.where, None, False, limit)

    @abstractmethod
    def _select(self, store: Store, coll: Collection, records: list[Record]
                ) -> list[tuple[Record, VersionedObject]]:
        """The records that need the migration, with their objects (read
        through the upgrade path). Reads only: :meth:`count` uses it too."""

    @abstractmethod
    def _apply(self, store: Store, obj: VersionedObject) -> None:
        """Change ``obj`` (selected by :meth:`_select`) before it is written."""

    def count(self, store: Store) -> int:
        """Records selected, over a read-only walk of the class's records."""
        coll = store.collection(self.cls)
        query = self._query(store, coll, 500)
        return sum(len(self._select(store, coll, page)) for page in _pages(store, coll, query))

    def step(self, store: Store, limit: int, state: dict[str, Any]) -> Batch:
        """Migrate what the next page of ``limit`` records holds that needs it."""
        coll = store.collection(self.cls)
        query = self._query(store, coll, limit)
        query.after = state.get("after")
        page = _read_page(store, coll, query)
        if page:
            state["after"] = (None, page[-1].key)
        chosen = self._select(store, coll, page)
        migrated = self._write_batch(store, chosen)
        if migrated is None:  # something changed meanwhile: again, on what they hold now
            again = _read_again(store, coll, [record for record, _ in chosen])
            migrated = self._write_each(store, self._select(store, coll, again))
        return Batch(found=len(chosen), migrated=migrated, more=len(page) == limit)

    def _write_batch(self, store: Store, chosen: list[tuple[Record, VersionedObject]]
                     ) -> int | None:
        """Change and write ``chosen`` in one unit of work: how many were
        written, or None if one of them changed or was deleted since it was
        read (then nothing was)."""
        if not chosen:
            return 0
        objs = [obj for _, obj in chosen]
        written = 0
        try:
            with store.unit_of_work() as uow:
                for obj in objs:
                    self._apply(store, obj)
                    if what_changed(obj):
                        written += 1
                uow.update_many(objs)
        except (ConflictError, NotFoundError):
            return None
        return written

    def _write_each(self, store: Store, chosen: list[tuple[Record, VersionedObject]]) -> int:
        """Change and write ``chosen`` one by one in one unit of work; how
        many were written (a record refused is left as it is)."""
        if not chosen:
            return 0
        written = 0
        try:
            with store.unit_of_work() as uow:
                for _, obj in chosen:
                    self._apply(store, obj)
                    if not what_changed(obj):
                        continue
                    try:
                        uow.update(obj)
                    except (ConflictError, NotFoundError):
                        pass  # changed again, or deleted: left for the next run
                    else:
                        written += 1
        except ConflictError:  # Redis: a watched record changed before commit: nothing written
            return 0
        return written


class RewriteMigration(_PagedMigration):
    """Built in: records of a class stored at an older version than the
    store writes are written again at the storage version, by the rules of
    the background rewriter (:mod:`rollsafe.storage.rewrite`): loaded
    through the upgrade path, marked changed whole
    (:func:`~rollsafe.storage.rewrite.mark_for_rewrite`), written at the
    revision read. Records stored at a newer version (by a newer release
    while this store is pinned lower) are never downgraded, nor counted."""

    def _select(self, store: Store, coll: Collection, records: list[Record]
                ) -> list[tuple[Record, VersionedObject]]:
        target = parse_version(rewrite.target_version(store, self.cls))
        older = {v for v in {r.version for r in records} if parse_version(v) < target}
        return [(r, store._object(coll, r)) for r in records if r.version in older]

    def _apply(self, store: Store, obj: VersionedObject) -> None:
        rewrite.mark_for_rewrite(store, obj)

    def count(self, store: Store) -> int:
        """Records stored at an older version than the target (version
        strings only: nothing is decoded)."""
        older, _ = rewrite.count_outdated(store, self.cls, project=self.project)
        return older


class EachMigration(_PagedMigration):
    """Per record: ``fn(obj)`` changes each object ``needs(obj)`` selects,
    and it is written back (whole, at the storage version, when it was
    stored at another). Objects are read through the upgrade path, as the
    service reads them."""

    def __init__(self, name: str, cls: type[VersionedObject], fn: Callable[[Any], None],
                 needs: Callable[[Any], bool], *, project: Any = None,
                 where: dict[str, Any] | None = None, description: str = "") -> None:
        super().__init__(name, cls, project=project, where=where, description=description)
        self.fn = fn
        self.needs = needs

    def _select(self, store: Store, coll: Collection, records: list[Record]
                ) -> list[tuple[Record, VersionedObject]]:
        chosen = []
        for record in records:
            obj = store._object(coll, record)
            if self.needs(obj):
                chosen.append((record, obj))
        return chosen

    def _apply(self, store: Store, obj: VersionedObject) -> None:
        self.fn(obj)


class OnlineMigrations:
    """A service's online data migrations, by unique name, in registration
    order. ``name`` labels the set in messages."""

    def __init__(self, name: str = "migrations") -> None:
        self.name = name
        self._migrations: dict[str, Migration] = {}

    # -- registering --------------------------------------------------------
    def add(self, migration: Migration) -> Migration:
        """Register ``migration`` (after those already registered);
        :class:`DefinitionError` if its name is taken or malformed."""
        if not isinstance(migration, Migration):
            raise DefinitionError(f"{self.name}: add() takes a Migration, not "
                                  f"{type(migration).__name__}")
        name = migration.name
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise DefinitionError(f"{self.name}: migration name {name!r} must be 1 to 100 "
                                  "letters, digits and _ . : - (starting with a letter or digit)")
        if name in self._migrations:
            raise DefinitionError(f"{self.name}: a migration named {name!r} is already "
                                  "registered; give each migration a unique name (the name "
                                  "is how operators select and track it)")
        self._migrations[name] = migration
        return migration

    def register(self, name: str, *, count: CountFunction, description: str = ""
                 ) -> Callable[[MigrationFunction], MigrationFunction]:
        """Decorator registering ``fn(store, limit) -> Batch`` as migration
        ``name``. ``count(store) -> int`` says, without writing, how many
        records are left: it must select exactly the records ``fn`` would
        migrate. The function is returned unchanged."""
        if not callable(count):
            raise DefinitionError(f"{self.name}: migration {name!r} needs count=, a function "
                                  "returning how many records are left to migrate")

        def decorate(fn: MigrationFunction) -> MigrationFunction:
            self.add(FunctionMigration(name, fn, count, description or _doc(fn)))
            return fn

        return decorate

    def each(self, cls: type[T], *, name: str, needs: Callable[[T], bool],
             project: Any = None, where: dict[str, Any] | None = None,
             description: str = "") -> Callable[[Callable[[T], None]], Callable[[T], None]]:
        """Decorator registering ``fn(obj)`` as migration ``name``: every
        stored ``cls`` for which ``needs(obj)`` is true is passed to ``fn``,
        which changes it, and is written back. ``where`` (equality on scalar
        fields) and ``project`` narrow the records read. ``needs`` must be
        false once ``fn`` ran, or the records stay pending."""
        if not callable(needs):
            raise DefinitionError(f"{self.name}: migration {name!r} needs needs=, a function "
                                  "saying whether an object still needs the migration")

        def decorate(fn: Callable[[T], None]) -> Callable[[T], None]:
            self.add(EachMigration(name, cls, fn, needs, project=project, where=where,
                                   description=description or _doc(fn)))
            return fn

        return decorate

    def rewrite(self, cls: type[VersionedObject], *, name: str | None = None,
                project: Any = None) -> Migration:
        """Register the built-in migration writing every record of ``cls``
        stored at an older version again at the version the store writes
        (named ``rewrite-<collection object name>`` unless ``name``)."""
        info = cls._rs_info
        info.build()
        return self.add(RewriteMigration(
            name or f"rewrite-{info.name}", cls, project=project,
            description=f"rewrite {info.name} records stored at older versions"))

    # -- looking ------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """The migration names, in registration (and run) order."""
        return list(self._migrations)

    def __getitem__(self, name: str) -> Migration:
        try:
            return self._migrations[name]
        except KeyError:
            raise KeyError(f"{self.name} has no migration {name!r}; it has "
                           f"{', '.join(self._migrations) or 'none'}") from None

    def __iter__(self) -> Iterator[Migration]:
        return iter(list(self._migrations.values()))

    def __len__(self) -> int:
        return len(self._migrations)

    def __contains__(self, name: object) -> bool:
        return name in self._migrations

    def select(self, only: Iterable[str] | None = None) -> list[Migration]:
        """The migrations named in ``only`` (all when None), in
        registration order; :class:`KeyError` naming any unknown one."""
        if only is None:
            return list(self)
        wanted = list(dict.fromkeys(only))
        unknown = [n for n in wanted if n not in self._migrations]
        if unknown:
            raise KeyError(f"{self.name} has no migration {', '.join(map(repr, unknown))}; "
                           f"it has {', '.join(self._migrations) or 'none'}")
        return [m for m in self if m.name in wanted]

    def pending(self, store: Store, *, only: Iterable[str] | None = None) -> dict[str, int]:
        """Records left per migration (name -> count), writing nothing.
        A count that fails raises (the caller decides; a gate must not take
        an error for "nothing left")."""
        return {m.name: m.count(store) for m in self.select(only)}

    # -- running --------------------------------------------------------------
    def run(self, store: Store, *, max_count: int | None = None, batch_size: int = 500,
            pause: float = 0.0, target_seconds: float | None = None, dry_run: bool = False,
            only: Sequence[str] | None = None,
            progress: ProgressCallback | None = None) -> MigrationReport:
        """Run the migrations (see the module documentation).

        ``max_count``: stop once that many records were migrated in this run
        (over all migrations; None: until nothing is left); ``batch_size``:
        records per call and unit of work (1 to 10000); ``pause``: seconds
        between batches; ``target_seconds``: adapt the batch size and pause
        to keep each batch under it; ``dry_run``: only count; ``only``:
        these migrations; ``progress``: called after every batch."""
        _check_run_options(max_count, batch_size, pause, target_seconds)
        selected = self.select(only)
        report = MigrationReport(dry_run=dry_run)
        budget = max_count
        for migration in selected:
            result = MigrationResult(migration.name)
            report.results.append(result)
            started = time.monotonic()
            if dry_run:
                try:
                    result.found = result.remaining = migration.count(store)
                except Exception as exc:
                    _record_error(result, exc, counted=False)
                result.seconds = time.monotonic() - started
                continue
            if budget is not None and budget <= 0:
                report.limited = True
                _count_remaining(migration, store, result)
                continue
            migrated = self._run_one(migration, store, result, budget, batch_size, pause,
                                     target_seconds, progress)
            if budget is not None:
                budget -= migrated
                report.limited = report.limited or budget <= 0
            result.seconds = time.monotonic() - started
        return report

    def _run_one(self, migration: Migration, store: Store, result: MigrationResult,
                 budget: int | None, batch_size: int, pause: float,
                 target_seconds: float | None, progress: ProgressCallback | None) -> int:
        """Call ``migration`` batch after batch; the records it migrated."""
        state: dict[str, Any] = {}
        size = batch_size
        total: int | None = None
        try:
            if progress is not None:
                total = migration.count(store)
                progress(Progress(migration.name, 0, 0, total, size, 0.0))
            while budget is None or result.done < budget:
                limit = size if budget is None else min(size, budget - result.done)
                began = time.monotonic()
                batch = migration.step(store, limit, state)
                took = time.monotonic() - began
                _check_batch(migration, batch, limit)
                result.batches += 1
                result.found += batch.found
                result.done += batch.migrated
                if progress is not None:
                    progress(Progress(migration.name, result.found, result.done, total, size,
                                      took))
                if batch.more is False or (batch.more is None and (
                        batch.found == 0 or batch.migrated == 0)):
                    break  # nothing left, or nothing this migration can move now
                if budget is not None and result.done >= budget:
                    break
                rest = pause
                if target_seconds is not None:
                    if took > target_seconds:
                        size = max(1, size // 2)
                        rest += took - target_seconds
                    elif took < target_seconds / 2 and size < batch_size:
                        size = min(batch_size, size * 2)
                if rest > 0:
                    time.sleep(rest)
        except Exception as exc:
            _record_error(result, exc, counted=True)
        _count_remaining(migration, store, result)
        return result.done


def _check_run_options(max_count: int | None, batch_size: int, pause: float,
                       target_seconds: float | None) -> None:
    if max_count is not None and (type(max_count) is not int or max_count < 1):
        raise ValueError("max_count must be None or an int >= 1")
    if type(batch_size) is not int or not 1 <= batch_size <= _MAX_BATCH:
        raise ValueError(f"batch_size must be an int from 1 to {_MAX_BATCH}")
    if not _seconds(pause) or pause < 0:
        raise ValueError("pause must be a finite number of seconds >= 0")
    if target_seconds is not None and (not _seconds(target_seconds) or target_seconds <= 0):
        raise ValueError("target_seconds must be None or a finite number of seconds > 0")


def _seconds(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value)


def _check_batch(migration: Migration, batch: Batch, limit: int) -> None:
    """Refuse a batch report that cannot be true (a migration's counters
    are what operators and the gate trust)."""
    found, migrated = batch.found, batch.migrated
    if type(found) is not int or type(migrated) is not int or not 0 <= migrated <= found:
        raise MigrationError(f"migration {migration.name!r} reported found={found!r}, "
                           f"migrated={migrated!r}: both must be ints with "
                           "0 <= migrated <= found")
    if migrated > limit:
        raise MigrationError(f"migration {migration.name!r} migrated {migrated} records when "
                           f"asked for at most {limit}; a migration must honour its limit")


def _record_error(result: MigrationResult, exc: BaseException, *, counted: bool) -> None:
    result.error = f"{type(exc).__name__}: {exc}"
    result.traceback = "".join(traceback.format_exception(exc))
    if not counted:
        result.remaining = None


def _count_remaining(migration: Migration, store: Store, result: MigrationResult) -> None:
    """Fill ``result.remaining`` with a read-only count (None, and the error
    recorded, if counting fails)."""
    try:
        result.remaining = migration.count(store)
    except Exception as exc:
        result.remaining = None
        if result.error is None:
            _record_error(result, exc, counted=False)


def _doc(fn: Callable[..., Any]) -> str:
    doc = (fn.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def _pages(store: Store, coll: Collection, query: Query) -> Iterator[list[Record]]:
    """Pages of ``query`` in key order, each in a short readonly transaction."""
    return rewrite._pages(store, coll, query)


_read_page = rewrite._read_page
_read_again = rewrite._read_again
