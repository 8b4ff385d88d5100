"""The small domain the online-migration tests store on every backend.

``Host`` has three versions, so records written by an older release can be
stored and migrated:

- 1.0: the first version (the name field is called ``hostname``);
- 1.1: ``Renamed("hostname", "name")``;
- 1.2: ``Added("rack", default="r0")``.

``applied`` counts how many times a migration changed a record, so a
migration applied twice to the same record shows as ``applied == 2``.

Subprocesses (test_migrate_kill.py) import this module by putting its
folder on ``sys.path``, so it must not import test-only code.
"""

from __future__ import annotations

import os
import time
from typing import Any

from rollsafe import Added, History, Registry, Renamed, Version, VersionedObject, field
from rollsafe.storage import Collection, Store, open_backend
from rollsafe.upgrade import OnlineMigrations

reg = Registry("migtest")

HOST_OLDEST, HOST_MIDDLE, HOST_CURRENT = "1.0", "1.1", "1.2"


class Host(VersionedObject, registry=reg):
    """A machine apps run on."""

    VERSIONS = History(
        Version(HOST_OLDEST, "Initial version"),
        Version(HOST_MIDDLE, "The hostname is the name", Renamed("hostname", "name")),
        Version(HOST_CURRENT, "Hosts sit in a rack", Added("rack", default="r0")),
    )

    id: int = field(read_only=True)
    name: str = field(max_length=64)
    zone: str | None = None
    applied: int = 0
    rack: str = "r1"
    labels: dict[str, str] = field(default_factory=dict)


#: The table (SQL) / key prefix part (Redis) of these tests, unlike any other test's.
TABLE = "rsmig_host"


def collections() -> list[Collection]:
    """The storage declarations of the domain (fresh objects each call)."""
    return [Collection(Host, key="id", indexes=("zone",), name=TABLE)]


def make_store(url: str, *, storage_versions: dict[str, str] | None = None,
               **backend_options: Any) -> Store:
    """A store of the domain on the backend ``url`` names."""
    return Store(open_backend(url, **backend_options), collections(),
                 storage_versions=storage_versions)


def seed(store: Store, count: int, *, start: int = 1, zone: str | None = None) -> None:
    """``count`` hosts with ids from ``start``, in one unit of work."""
    with store.unit_of_work() as uow:
        for number in range(start, start + count):
            uow.create(Host(id=number, name=f"host-{number}", zone=zone,
                            labels={"row": str(number % 10)}))


def slow_migrations(delay: float) -> OnlineMigrations:
    """One migration giving zone-less hosts a zone, sleeping ``delay``
    seconds per record (so a batch is slow enough to be killed in)."""
    migrations = OnlineMigrations("slow")

    @migrations.each(Host, name="zone-default", needs=lambda h: h.zone is None)
    def zone_default(host: Host) -> None:
        """Give a zone-less host the default zone."""
        time.sleep(delay)
        host.zone = "zone-a"
        host.applied += 1
        marker = os.environ.get("MIGTEST_MARKER")
        if marker:  # tell the test this record is in a batch being written
            with open(marker, "a", encoding="utf-8") as out:
                out.write(f"{host.id}\n")

    return migrations
