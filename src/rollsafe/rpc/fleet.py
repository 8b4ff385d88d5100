"""The fleet: which services run, what each reads, and the versions to send.

Every service process records itself in a shared store (a
:class:`ServiceRecord`: its name, host, release and the manifest it reads,
name -> newest version) and refreshes the record's heartbeat. A service
whose heartbeat is older than ``stale_after`` seconds counts as gone, with
no restart of anyone needed. From the live records the fleet computes the
**pins**: for each object name, the lowest version any live service knows.
That is what every live service can read, and so what to send and store::

    from rollsafe.rpc import ObjectSerializer
    from rollsafe.rpc.fleet import SERVICES, Fleet
    from rollsafe.storage import Store, open_backend

    backend = open_backend("postgresql://...")
    fleet_store = Store(backend, [SERVICES])
    fleet_store.ensure_schema()
    fleet = Fleet(fleet_store, stale_after=30.0, oldest_supported={"App": "1.1"})
    me = fleet.join("conductor", socket.gethostname(), "2024.2", reg.manifest())

    # RPC: every send goes out at the pinned versions (cheap: pins are cached).
    serializer = ObjectSerializer(reg, target=fleet.target)

    # Storage: write at the pinned versions; refresh it where the heartbeat is
    # sent (every few seconds), so the pin rises once the old release is gone.
    store = Store(backend, collections, storage_versions=fleet.target())
    while running:
        me = fleet.heartbeat(me)
        store.storage_versions = fleet.target()
        time.sleep(fleet.stale_after / 3)
    fleet.leave(me)

(:class:`~rollsafe.rpc.membership.FleetMembership` runs that loop for a
service, with jitter, on-demand refreshes and errors survived.)

A service is **too old** to join when, for some object name, the version it
knows is older than ``oldest_supported[name]``: the oldest version the newest
code still reads (what ``Collection(oldest=...)`` and contract moved past).
Such a service is refused with :class:`ServiceTooOldError`, unless
``allow_too_old=True`` says so explicitly.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

from rollsafe.errors import NotFoundError, RollsafeError
from rollsafe.objects.base import VersionedObject
from rollsafe.objects.history import parse_version
from rollsafe.objects.registry import Registry
from rollsafe.storage.collection import Collection
from rollsafe.storage.store import Store, UnitOfWork

__all__ = ["REGISTRY", "SERVICES", "Clock", "Fleet", "ServiceRecord", "ServiceTooOldError"]

#: The registry of the fleet's own objects.
REGISTRY = Registry("rollsafe")

#: Returns the current time, timezone-aware.
Clock = Callable[[], datetime]

# Concurrent joins of the same record can lose several races in a row.
_ATTEMPTS = 10

_T = TypeVar("_T")


class _Flight(Generic[_T]):
    def __init__(self, key: Hashable) -> None:
        self.key = key
        self.done = threading.Event()
        self.value: _T | None = None
        self.error: BaseException | None = None


class SingleFlight(Generic[_T]):
    """Runs one call at a time; calls made while one runs (with the same
    ``key``) wait for it and share its result or exception, so a burst of
    requests costs one query. A call with another key waits for the
    running one to end, then runs its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: _Flight[_T] | None = None

    def run(self, fn: Callable[[], _T], key: Hashable = None) -> _T:
        while True:
            with self._lock:
                flight = self._current
                if flight is None:
                    flight = self._current = _Flight(key)
                    break
                shared = flight.key == key
            flight.done.wait()
            if shared:
                return self._outcome(flight)
        try:
            flight.value = fn()
        except BaseException as exc:
            flight.error = exc
        finally:
            with self._lock:
                self._current = None
            flight.done.set()
        return self._outcome(flight)

    @staticmethod
    def _outcome(flight: _Flight[_T]) -> _T:
        if flight.error is not None:
            raise flight.error
        return flight.value  # type: ignore[return-value]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ServiceTooOldError(RollsafeError):
    """A service knows an object version older than the oldest the fleet
    still supports. ``name``, ``version`` and ``oldest`` say which."""

    def __init__(self, service: str, name: str, version: str, oldest: str) -> None:
        self.service = service
        self.name = name
        self.version = version
        self.oldest = oldest
        super().__init__(
            f"{service} is too old to join: it reads {name} {version}, older than the oldest "
            f"supported {name} {oldest}; upgrade it, or join with allow_too_old=True")


class ServiceRecord(VersionedObject, registry=REGISTRY):
    """One running service process, as the fleet sees it."""

    #: ``f"{name}@{host}"``.
    id: str
    name: str
    host: str
    release: str
    #: Object name -> newest version the service reads.
    manifest: dict[str, str]
    #: When the service last said it is alive (UTC).
    heartbeat: datetime


#: The collection of service records; add it to the fleet's store.
SERVICES = Collection(ServiceRecord, key="id", indexes=["name"], name="service_records")


class Fleet:
    """The live services recorded in ``store`` and the versions they share.

    ``stale_after``: seconds without a heartbeat after which a service counts
    as gone. ``clock``: returns the current aware time (injectable for tests).
    ``oldest_supported``: name -> oldest version the newest code still reads
    (see :meth:`join`). ``manual_pins``: name -> version that overrides the
    computed pin (an operator's hold)."""

    def __init__(self, store: Store, *, stale_after: float = 30.0, clock: Clock = _utcnow,
                 oldest_supported: Mapping[str, str] | None = None,
                 manual_pins: Mapping[str, str] | None = None) -> None:
        if stale_after <= 0:
            raise ValueError("stale_after must be a positive number of seconds")
        self.store = store
        self.stale_after = float(stale_after)
        self.clock = clock
        self.oldest_supported = dict(oldest_supported or {})
        self.manual_pins = dict(manual_pins or {})
        for label, mapping in (("oldest_supported", self.oldest_supported),
                               ("manual_pins", self.manual_pins)):
            for name, version in mapping.items():
                try:
                    parse_version(version)
                except ValueError as exc:
                    raise ValueError(f"{label}[{name!r}]: {exc}") from None
        self._lock = threading.Lock()
        self._pins: dict[str, str] | None = None
        self._computed_at: datetime | None = None
        # Bumped by refresh_later: a query begun before it is not cached,
        # and no refresh asked for after it shares that query.
        self._generation = 0
        self._refreshes: SingleFlight[dict[str, str]] = SingleFlight()

    def _now(self) -> datetime:
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("the fleet clock must return timezone-aware datetimes")
        return now.astimezone(UTC)

    # -- membership ------------------------------------------------------
    def check(self, service: str, manifest: Mapping[str, str]) -> None:
        """Raise :class:`ServiceTooOldError` if ``manifest`` holds a version
        older than ``oldest_supported`` for that name (ValueError if a
        version is malformed)."""
        for name, version in sorted(manifest.items()):
            key = parse_version(version)
            oldest = self.oldest_supported.get(name)
            if oldest is not None and key < parse_version(oldest):
                raise ServiceTooOldError(service, name, version, oldest)

    def join(self, name: str, host: str, release: str, manifest: Mapping[str, str], *,
             allow_too_old: bool = False) -> ServiceRecord:
        """Record service ``name`` on ``host`` as live (created, or updated if
        it joined before), with heartbeat now. Refused with
        :class:`ServiceTooOldError` when it is too old (see the module doc),
        unless ``allow_too_old``. Concurrent joins all land (retried)."""
        service_id = f"{name}@{host}"
        if allow_too_old:
            for version in manifest.values():
                parse_version(version)
        else:
            self.check(service_id, manifest)
        known = dict(manifest)

        def upsert(uow: UnitOfWork) -> ServiceRecord:
            now = self._now()
            try:
                record = uow.get(ServiceRecord, service_id)
            except NotFoundError:
                return uow.create(ServiceRecord(id=service_id, name=name, host=host,
                                              release=release, manifest=known, heartbeat=now))
            record.release = release
            record.manifest = known
            record.heartbeat = now
            return uow.update(record)

        record = self.store.run(upsert, attempts=_ATTEMPTS)
        self.refresh_later()
        return record

    def heartbeat(self, record: ServiceRecord) -> ServiceRecord:
        """Refresh ``record``'s heartbeat to now; returns the stored record.
        A record no longer stored (left meanwhile) is stored again."""

        def beat(uow: UnitOfWork) -> ServiceRecord:
            now = self._now()
            try:
                stored = uow.get(ServiceRecord, record.id)
            except NotFoundError:
                return uow.create(ServiceRecord(
                    id=record.id, name=record.name, host=record.host, release=record.release,
                    manifest=dict(record.manifest), heartbeat=now))
            stored.heartbeat = now
            return uow.update(stored)

        return self.store.run(beat, attempts=_ATTEMPTS)

    def leave(self, record: ServiceRecord) -> None:
        """Remove ``record`` from the fleet (nothing happens if it is gone)."""

        def remove(uow: UnitOfWork) -> None:
            with contextlib.suppress(NotFoundError):
                uow.delete(uow.get(ServiceRecord, record.id))

        self.store.run(remove, attempts=_ATTEMPTS)
        self.refresh_later()

    def live(self) -> list[ServiceRecord]:
        """The services whose heartbeat is within ``stale_after`` seconds,
        sorted by id (one query of the store)."""
        cutoff = self._now() - timedelta(seconds=self.stale_after)
        return sorted((r for r in self.store.stream(ServiceRecord) if r.heartbeat >= cutoff),
                      key=lambda r: r.id)

    # -- pins --------------------------------------------------------------
    def refresh_later(self) -> None:
        """Forget the cached pins: the next :meth:`pins` queries the store."""
        with self._lock:
            self._pins = None
            self._generation += 1

    def refresh(self) -> dict[str, str]:
        """Recompute the pins from the store now, and return them.
        Concurrent refreshes share one query: a thread that asks while a
        query runs waits for it and gets its result (unless this fleet
        joined or left since that query began)."""
        with self._lock:
            generation = self._generation

        def query() -> dict[str, str]:
            pins = self.pins_of(self.live())
            with self._lock:
                if self._generation == generation:
                    self._pins = pins
                    self._computed_at = self._now()
            return pins

        return dict(self._refreshes.run(query, key=generation))

    def pins_of(self, live: Sequence[ServiceRecord]) -> dict[str, str]:
        """The pins the services ``live`` give (the lowest version each
        object has among them, ``manual_pins`` overriding), for a caller
        that has already read the live records; no query, no caching."""
        pins = _lowest(live)
        pins.update(self.manual_pins)
        return pins

    def pins(self) -> dict[str, str]:
        """Object name -> the lowest version any live service knows (patch
        level ignored), with ``manual_pins`` overriding. Cached: recomputed
        after :meth:`refresh_later` (this fleet's own join and leave) or once
        the cache is ``stale_after / 3`` seconds old, so frequent callers do
        not query the store on every send (and callers that find it expired
        together share one query)."""
        with self._lock:
            pins, at = self._pins, self._computed_at
        if pins is not None and at is not None:
            age = (self._now() - at).total_seconds()
            if 0 <= age < self.stale_after / 3:
                return dict(pins)
        return self.refresh()

    def target(self) -> dict[str, str]:
        """The pins: the manifest to send and store at. Pass the method as
        ``ObjectSerializer(reg, target=fleet.target)``; give its result to
        ``Store(..., storage_versions=fleet.target())`` and assign it to
        ``store.storage_versions`` again where the heartbeat is sent."""
        return self.pins()


def _lowest(records: Sequence[ServiceRecord]) -> dict[str, str]:
    """Name -> the lowest version across ``records``, as ``"major.minor"``
    (malformed versions ignored)."""
    lowest: dict[str, tuple[int, int]] = {}
    for record in records:
        for name, version in record.manifest.items():
            try:
                key = parse_version(version)
            except ValueError:
                continue
            if name not in lowest or key < lowest[name]:
                lowest[name] = key
    return {name: f"{major}.{minor}" for name, (major, minor) in sorted(lowest.items())}
