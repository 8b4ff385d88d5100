"""The fleet at a glance: who runs what, the pins, and the migrations left.

:func:`fleet_status` reads, once, what an operator looks at during a
rolling upgrade: every recorded service (live or stale, with its release,
the versions it reads and the age of its heartbeat), the current pins next
to what the newest release reads (and which services hold a lower pin
back), and how many records each online migration has left. The result is
plain data (:meth:`FleetStatus.to_dict` for ``--json`` and dashboards) and
renders as Rich tables (:func:`status_tables`)::

    status = fleet_status(SERVICE, store)
    for table in status_tables(status):
        console.print(table)

The upgrade checks (:mod:`rollsafe.upgrade.checks`) and the contract gate
(:mod:`rollsafe.upgrade.gate`) judge the same facts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from rollsafe.objects.history import parse_version

if TYPE_CHECKING:
    from rich.table import Table

    from rollsafe.rpc.fleet import Fleet, ServiceRecord
    from rollsafe.storage.store import Store
    from rollsafe.upgrade.definition import ServiceDefinition

__all__ = ["FleetStatus", "MigrationLeft", "PinState", "ServiceState", "fleet_status",
           "migrations_left", "older", "pin_states", "status_tables"]


def older(version: str, than: str) -> bool:
    """Whether ``version`` is older than ``than`` (patch levels ignored).
    A malformed ``version`` (a record written by something else) counts as
    older: nothing can be promised about what it reads."""
    try:
        return parse_version(version) < parse_version(than)
    except ValueError:
        return True


@dataclass(frozen=True)
class ServiceState:
    """One recorded service process. ``age``: seconds since its last
    heartbeat; ``live``: whether that is within the fleet's
    ``stale_after`` (a stale record is a process that stopped or hangs)."""

    id: str
    name: str
    host: str
    release: str
    manifest: dict[str, str]
    heartbeat: datetime
    age: float
    live: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (the heartbeat as ISO 8601)."""
        return {"id": self.id, "name": self.name, "host": self.host, "release": self.release,
                "manifest": dict(self.manifest), "heartbeat": self.heartbeat.isoformat(),
                "age_seconds": round(self.age, 3), "live": self.live}


@dataclass(frozen=True)
class PinState:
    """The pin of one object name. ``pinned``: the version every live
    service reads (None: no live service reads it); ``expected``: the
    version the newest release reads (None without a release history, or
    when that release does not read it); ``held_back_by``: the live
    services reading less than ``expected``."""

    object: str
    pinned: str | None
    expected: str | None
    held_back_by: list[str] = field(default_factory=list)

    @property
    def behind(self) -> bool:
        """Whether the pin is below what the newest release reads."""
        return self.pinned is not None and self.expected is not None \
            and older(self.pinned, self.expected)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {"object": self.object, "pinned": self.pinned, "expected": self.expected,
                "behind": self.behind, "held_back_by": list(self.held_back_by)}


@dataclass(frozen=True)
class MigrationLeft:
    """What one online migration has left: ``remaining`` records, or
    ``error`` (``"Type: message"``) when it could not count them."""

    name: str
    remaining: int | None
    error: str | None = None

    @property
    def done(self) -> bool:
        """Whether it counted, and nothing is left."""
        return self.error is None and self.remaining == 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {"name": self.name, "remaining": self.remaining, "error": self.error}


def migrations_left(service: ServiceDefinition, store: Store, fleet: Fleet | None = None,
                    *, pins: Mapping[str, str] | None = None) -> list[MigrationLeft]:
    """Per registered online migration (registration order), the records it
    has left, counted without writing. With ``fleet`` (or its ``pins``,
    already computed), counted as the services and ``rollsafe migrate`` see
    it: writing at the fleet's pins (a record already at the pinned version
    is not left to rewrite while an older service still needs that
    version). A count that raises is reported with its error, never taken
    for "nothing left"."""
    if service.migrations is None:
        return []
    if pins is None and fleet is not None:
        pins = fleet.refresh()
    if pins is not None:
        from rollsafe.storage.store import Store

        store = Store(store.backend, store.collections, storage_versions=dict(pins))
    found = []
    for migration in service.migrations:
        try:
            remaining = migration.count(store)
        except Exception as exc:  # reported to the operator, who decides
            found.append(MigrationLeft(migration.name, None, f"{type(exc).__name__}: {exc}"))
        else:
            found.append(MigrationLeft(migration.name, remaining))
    return found


@dataclass(frozen=True)
class FleetStatus:
    """The fleet of one service at time ``at``: see :func:`fleet_status`.
    ``release``: the newest release in its history (None without one);
    ``migrations``: None when the service registers no online migrations."""

    service: str
    at: datetime
    stale_after: float
    release: str | None
    services: list[ServiceState]
    pins: list[PinState]
    migrations: list[MigrationLeft] | None

    @property
    def live(self) -> list[ServiceState]:
        """The live services."""
        return [s for s in self.services if s.live]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (what ``rollsafe upgrade status --json`` prints)."""
        return {
            "service": self.service,
            "at": self.at.isoformat(),
            "stale_after": self.stale_after,
            "release": self.release,
            "services": [s.to_dict() for s in self.services],
            "pins": [p.to_dict() for p in self.pins],
            "migrations": None if self.migrations is None
            else [m.to_dict() for m in self.migrations],
        }


def _states(fleet: Fleet, records: Sequence[ServiceRecord], now: datetime
            ) -> list[ServiceState]:
    states = []
    for record in sorted(records, key=lambda r: r.id):
        age = (now - record.heartbeat).total_seconds()
        states.append(ServiceState(
            id=record.id, name=record.name, host=record.host, release=record.release,
            manifest=dict(record.manifest), heartbeat=record.heartbeat, age=age,
            live=age <= fleet.stale_after))
    return states


class _Reader(Protocol):
    """A live service as pins see it (a ServiceRecord or a ServiceState)."""

    @property
    def id(self) -> str: ...

    @property
    def manifest(self) -> dict[str, str]: ...


def pin_states(pins: Mapping[str, str], expected: Mapping[str, str],
               live: Sequence[_Reader]) -> list[PinState]:
    """One :class:`PinState` per object name pinned or expected (sorted by
    name): ``pins`` from the fleet, ``expected`` what the newest release
    reads, ``live`` the live services (their ``id`` and ``manifest``)."""
    states = []
    for name in sorted(pins.keys() | expected.keys()):
        want = expected.get(name)
        holders = [] if want is None else [
            s.id for s in live if name in s.manifest and older(s.manifest[name], want)]
        states.append(PinState(name, pins.get(name), want, holders))
    return states


def fleet_status(service: ServiceDefinition, store: Store, fleet: Fleet | None = None
                 ) -> FleetStatus:
    """Read the fleet of ``service`` from ``store`` (its service records,
    pins and online migrations). ``fleet``: the :class:`Fleet` to ask (by
    default ``service.fleet(store)``; give one with its own clock to look
    at another moment)."""
    from rollsafe.rpc.fleet import ServiceRecord

    fleet = fleet if fleet is not None else service.fleet(store)
    now = fleet.clock().astimezone(UTC)
    records = list(store.stream(ServiceRecord))  # the one read of the fleet
    services = _states(fleet, records, now)
    live = [s for s in services if s.live]
    live_ids = {s.id for s in live}
    pinned = fleet.pins_of([r for r in records if r.id in live_ids])
    releases = service.releases
    expected = releases.manifest(releases.latest) if releases is not None else {}
    return FleetStatus(
        service=service.name, at=now, stale_after=fleet.stale_after,
        release=releases.latest if releases is not None else None, services=services,
        pins=pin_states(pinned, expected, live),
        migrations=None if service.migrations is None
        else migrations_left(service, store, pins=pinned))


def _age(seconds: float) -> str:
    if seconds < 0:
        return "in the future (clock skew)"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.0f}h"


def status_tables(status: FleetStatus) -> list[Table]:
    """Rich tables of ``status``: services, pins, migrations."""
    from rich.markup import escape
    from rich.table import Table

    services = Table(title=escape(f"services of {status.service} "
                                  f"(stale after {status.stale_after:g}s)"))
    for column in ("service", "host", "release", "versions", "heartbeat", "state"):
        services.add_column(column)
    for s in status.services:
        versions = ", ".join(f"{name} {version}" for name, version in sorted(s.manifest.items()))
        services.add_row(escape(s.name), escape(s.host), escape(s.release), escape(versions),
                         _age(s.age) + " ago" if s.age >= 0 else _age(s.age),
                         "[green]live[/]" if s.live else "[yellow]stale[/]")
    if not status.services:
        services.caption = "no service has recorded itself in this store"

    title = "pins" + ("" if status.release is None else f" (release {status.release})")
    pins = Table(title=escape(title))
    for column in ("object", "pinned", "newest release reads", "held back by"):
        pins.add_column(column)
    for p in status.pins:
        pinned = "-" if p.pinned is None else escape(p.pinned)
        if p.behind:
            pinned = f"[yellow]{pinned}[/]"
        pins.add_row(escape(p.object), pinned, escape(p.expected or "-"),
                     escape(", ".join(p.held_back_by)))
    if not status.live:
        pins.caption = "no live service: nothing is pinned"

    migrations = Table(title="online migrations")
    migrations.add_column("migration")
    migrations.add_column("remaining", justify="right")
    for m in status.migrations or []:
        if m.error is not None:
            left = f"[red]count failed: {escape(m.error)}[/]"
        else:
            left = "[green]0[/]" if m.remaining == 0 else f"[yellow]{m.remaining}[/]"
        migrations.add_row(escape(m.name), left)
    if status.migrations is None:
        migrations.caption = "the service registers no online migrations"
    return [services, pins, migrations]
