"""The contract gate: no contract while the fleet still needs what it drops.

``rollsafe db contract`` drops what only versions older than each
collection's ``oldest`` used. That is safe only when

- no live service still reads such a version of the collection's object
  (its manifest says what it reads: a service at release N reading
  ``App 1.0`` needs the columns 1.0 used), and
- every online migration reports nothing left (a migration with records
  left still needs the old data; one that cannot count is not taken for
  done).

:func:`contract_blockers` lists what is in the way, each with what to do;
:func:`check_contract` raises :class:`~rollsafe.errors.ContractBlockedError`
with them. The schema side (rows still stored at an old version) is
checked by :func:`rollsafe.storage.migrate.contract` itself::

    check_contract(SERVICE, store)          # the fleet and the migrations
    migrate.contract(backend, collections)  # then the rows, then the drops
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from rollsafe.errors import ContractBlockedError
from rollsafe.upgrade.status import MigrationLeft, migrations_left, older

if TYPE_CHECKING:
    from rollsafe.rpc.fleet import Fleet, ServiceRecord
    from rollsafe.storage.collection import Collection
    from rollsafe.storage.store import Store
    from rollsafe.upgrade.definition import ServiceDefinition

__all__ = ["ContractBlocker", "check_contract", "contract_blockers", "migration_blockers",
           "service_blockers"]


@dataclass(frozen=True)
class ContractBlocker:
    """One reason contract must wait: ``kind`` says whether a ``service``
    (``name`` is its id) or an online ``migration`` (its name) is in the
    way; ``message`` says why and what to do."""

    kind: Literal["service", "migration"]
    name: str
    message: str

    def __str__(self) -> str:
        return self.message


def service_blockers(collections: Sequence[Collection], live: Sequence[ServiceRecord],
                     stale_after: float) -> list[ContractBlocker]:
    """The live services that read a version of a collection's object
    older than the collection's ``oldest`` (what contract removes)."""
    blockers = []
    for record in live:
        needs = [f"{c.object_name} {record.manifest[c.object_name]} (contract keeps "
                 f"{c.oldest} and newer)" for c in collections
                 if c.object_name in record.manifest
                 and older(record.manifest[c.object_name], c.oldest)]
        if needs:
            blockers.append(ContractBlocker("service", record.id, (
                f"live service {record.id} (release {record.release}) still reads "
                f"{', '.join(needs)}: upgrade or stop it, then wait until its record is gone "
                f"or stale ({stale_after:g}s without a heartbeat)")))
    return blockers


def migration_blockers(left: Sequence[MigrationLeft]) -> list[ContractBlocker]:
    """The online migrations with records left, or that could not count."""
    blockers = []
    for migration in left:
        if migration.error is not None:
            blockers.append(ContractBlocker("migration", migration.name, (
                f"online migration {migration.name} could not count what it has left "
                f"({migration.error}); contract cannot assume nothing is left: do what the "
                "error says, then run again")))
        elif migration.remaining:
            blockers.append(ContractBlocker("migration", migration.name, (
                f"online migration {migration.name} has {migration.remaining} record(s) "
                "left: run rollsafe migrate until it exits 0")))
    return blockers


def contract_blockers(service: ServiceDefinition, store: Store, *,
                      collections: Sequence[Collection] | None = None,
                      fleet: Fleet | None = None) -> list[ContractBlocker]:
    """Everything that makes contracting ``collections`` (by default the
    service's) unsafe now: live services of ``fleet`` (by default
    ``service.fleet(store)``) that need a version contract removes, then
    online migrations with records left. Empty when contract may run."""
    fleet = fleet if fleet is not None else service.fleet(store)
    colls = list(service.collections if collections is None else collections)
    return (service_blockers(colls, fleet.live(), fleet.stale_after)
            + migration_blockers(migrations_left(service, store, fleet)))


def check_contract(service: ServiceDefinition, store: Store, *,
                   collections: Sequence[Collection] | None = None,
                   fleet: Fleet | None = None) -> None:
    """Raise :class:`ContractBlockedError` (listing every blocker) unless
    :func:`contract_blockers` finds none."""
    blockers = contract_blockers(service, store, collections=collections, fleet=fleet)
    if blockers:
        raise ContractBlockedError([b.message for b in blockers])
