"""The domain of the conductor fault tests: a ledger that each remote call
adds one entry to and counts, both through the call's unit of work.

Imported by tests/rpc/test_conductor_faults.py and by the conductor process
(tests/rpc/ledger_conductor.py), which puts this folder on ``sys.path``.
A call applied twice shows as two entries with one label and a count above
the number of labels; a lost acknowledged call as a label missing.
"""

from __future__ import annotations

import time
import uuid

from rollsafe import Registry, VersionedObject, remotable_classmethod
from rollsafe.rpc import RpcRequest, current_unit
from rollsafe.storage import Collection, Store, open_backend

#: The ledger's objects. One registry serves the conductor and its callers:
#: a conductor runs calls here (never sends them on), whatever the indirection.
LEDGER = Registry("ledger")

#: Seconds each call sleeps inside its unit of work, so that a kill lands
#: inside a unit more often than between two.
PAUSE_IN_UNIT = 0.002

#: The key of the one Tally every call counts on.
TOTAL = "total"


class Entry(VersionedObject, registry=LEDGER):
    """One applied call."""

    id: uuid.UUID
    label: str


class Tally(VersionedObject, registry=LEDGER):
    """How many calls were applied."""

    id: str
    count: int = 0

    @remotable_classmethod
    def record(cls, label: str) -> int:
        """Add an Entry for ``label`` and count it; returns the new count."""
        unit = current_unit()
        # a random key: a second application makes a second entry, never a
        # conflict that would hide it
        unit.create(Entry(id=uuid.uuid4(), label=label))
        tally = unit.get(Tally, TOTAL)
        tally.count += 1
        unit.update(tally)
        time.sleep(PAUSE_IN_UNIT)
        return tally.count

    @remotable_classmethod
    def refuse(cls, label: str) -> int:
        """Write an entry, then fail: nothing of it may stay."""
        current_unit().create(Entry(id=uuid.uuid4(), label=label))
        raise ValueError(f"{label} is refused")


# Table names of their own: tests on PostgreSQL share one database.
ENTRIES = Collection(Entry, key="id", indexes=["label"], name="rpcfault_entries")
TALLIES = Collection(Tally, key="id", name="rpcfault_tallies")
REQUESTS = Collection(RpcRequest, key="id", indexes=["created_at"], name="rpcfault_requests")
COLLECTIONS = (ENTRIES, TALLIES, REQUESTS)


def open_ledger(url: str) -> Store:
    """A store of the ledger (and the conductor's request records) at ``url``."""
    return Store(open_backend(url), COLLECTIONS)


def reset_ledger(store: Store) -> None:
    """Empty tables, and the Tally at 0."""
    store.backend.drop_all(store.collections)
    store.ensure_schema()
    store.create(Tally(id=TOTAL))
