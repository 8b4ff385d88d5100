"""The service the upgrade-check, status and contract-gate tests roll.

``App`` has three versions, read by three releases:

- release 2023.1 reads 1.0 (``id``, ``name``, ``note``): no longer supported;
- release N (2024.1) reads 1.1: ``Added("tier")``;
- release N+1 (2024.2) reads 1.2: ``Removed("note")``, ``Added("owner")``.

Release N's code (:data:`N_APP`, a registry of its own in the same
namespace) declares App only up to 1.1. The N+1 service definitions:

- :data:`SERVICE`: N+1 during the upgrade (collection ``oldest`` 1.1, so
  the ``note`` column stays for release N), with one online migration
  (records stored at an older version than the store writes are rewritten)
  and a check of its own;
- :data:`CONTRACT`: the same service once contract may drop what 1.1 used
  (``oldest`` 1.2: the ``note`` column goes);
- :data:`BROKEN`: N+1 whose migration cannot count and whose own check
  raises (errors must be reported, not swallowed).

The CLI tests copy this file next to the ``rollsafe`` subprocess; the
Redis key prefix comes from ``UPGRADE_TEST_PREFIX`` so each test has its
own keys there too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from rollsafe import Added, History, Registry, Removed, Version, VersionedObject
from rollsafe.rpc import ReleaseHistory
from rollsafe.storage import Collection, Store
from rollsafe.upgrade import (
    CheckContext,
    CheckResult,
    OnlineMigrations,
    ServiceDefinition,
    UpgradeCheck,
    upgrade_check,
)

TABLE = "upg_app"
OLD, N, N1 = "2023.1", "2024.1", "2024.2"
#: Large, so live records never go stale while a test runs; stale ones are
#: written hours in the past.
STALE_AFTER = 3600.0
PREFIX = os.environ.get("UPGRADE_TEST_PREFIX", "upg")

# --- release N's code ------------------------------------------------------------

n_registry = Registry("upg")


def _release_n() -> type[VersionedObject]:
    class App(VersionedObject, registry=n_registry):
        """App as release N declares it."""

        VERSIONS = History(Version("1.0", "Initial version"),
                           Version("1.1", "Apps have a tier", Added("tier", default="free")))

        id: str
        name: str
        note: str = ""
        tier: str = "free"

    return App


#: App in release N's code.
N_APP = _release_n()

# --- release N+1's code ----------------------------------------------------------

registry = Registry("upg")


class App(VersionedObject, registry=registry):
    """App as release N+1 declares it."""

    VERSIONS = History(
        Version("1.0", "Initial version"),
        Version("1.1", "Apps have a tier", Added("tier", default="free")),
        Version("1.2", "Notes are gone; apps have an owner",
                Removed("note", str, default=""), Added("owner", default="nobody")),
    )

    id: str
    name: str
    tier: str = "free"
    owner: str = "nobody"


RELEASES = ReleaseHistory([(OLD, {"App": "1.0"}), (N, {"App": "1.1"}), (N1, {"App": "1.2"})])


def collection_n() -> Collection:
    """Release N's storage declaration of App."""
    return Collection(N_APP, key="id", indexes=["name"], name=TABLE)


def collection(oldest: str = "1.1") -> Collection:
    """Release N+1's storage declaration of App."""
    return Collection(App, key="id", indexes=["name", "owner"], name=TABLE, oldest=oldest)


def migrations() -> OnlineMigrations:
    """N+1's online migrations: rewrite Apps stored at an older version."""
    found = OnlineMigrations("upg")
    found.rewrite(App)
    return found


@upgrade_check("apps-have-names")
def apps_have_names(context: CheckContext) -> CheckResult:
    """Every stored App has a name (the service's own check)."""
    unnamed = [a.id for a in context.store.stream(App) if not a.name]
    if unnamed:
        return CheckResult.warning(f"apps without a name: {', '.join(unnamed)}; name them")
    return CheckResult.success("every app has a name")


@upgrade_check("quota-service-reachable")
def quota_unreachable(context: CheckContext) -> CheckResult:
    """A check that fails by raising."""
    raise ConnectionError("quota service at 10.0.0.9:8774 refused the connection")


def _cannot_count(store: Store) -> int:
    raise RuntimeError("the legacy table is missing")


def broken_migrations() -> OnlineMigrations:
    """A migration whose count raises, next to the rewrite."""
    found = migrations()
    found.register("legacy-import", count=_cannot_count)(lambda store, limit: (0, 0))
    return found


def definition(name: str = "inventory", *, oldest: str = "1.1",
               migrations_: OnlineMigrations | None = None,
               checks: Sequence[UpgradeCheck] = (apps_have_names,),
               releases: ReleaseHistory | None = RELEASES) -> ServiceDefinition:
    """An N+1 service definition (see the module documentation)."""
    return ServiceDefinition(name=name, registry=registry, collections=[collection(oldest)],
                             migrations=migrations() if migrations_ is None else migrations_,
                             releases=releases, checks=checks,
                             stale_after=STALE_AFTER, key_prefix=PREFIX)


SERVICE = definition()
CONTRACT = definition(oldest="1.2")
BROKEN = definition(migrations_=broken_migrations(), checks=(apps_have_names, quota_unreachable))
#: A service that declares no release history, migrations nor checks.
BARE = ServiceDefinition(name="bare", registry=registry, collections=[collection()],
                         stale_after=STALE_AFTER, key_prefix=PREFIX)
#: What ``--collections`` names in the CLI tests (contract without the gate).
CONTRACT_COLLECTIONS = [collection("1.2")]
