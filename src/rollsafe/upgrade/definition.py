"""What the operator's commands know about a service.

A service describes itself once, in a module of its own, and every
``rollsafe`` command that works on a running fleet (``migrate``,
``upgrade check``, ``upgrade status``, ``db contract``) is pointed at it with
``--service package.module:NAME``::

    SERVICE = ServiceDefinition(
        name="inventory",
        registry=registry,
        collections=[APPS, HOSTS],
        migrations=migrations,          # OnlineMigrations
        releases=RELEASES,              # ReleaseHistory
        checks=[my_own_check],          # added to the built-in upgrade checks
    )
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rollsafe.objects.registry import Registry

if TYPE_CHECKING:
    from rollsafe.rpc.fleet import Fleet
    from rollsafe.rpc.releases import ReleaseHistory
    from rollsafe.storage.collection import Collection
    from rollsafe.storage.store import Store
    from rollsafe.upgrade.checks import UpgradeCheck
    from rollsafe.upgrade.migrations import OnlineMigrations

__all__ = ["ServiceDefinition"]


@dataclass
class ServiceDefinition:
    """One service's objects, storage, data migrations, releases and checks.

    ``stale_after``: seconds without a heartbeat after which a service
    record counts as gone (the same value the running services use).
    ``key_prefix``: the Redis key prefix the service's store uses (SQL
    stores ignore it: their tables are named by the collections)."""

    name: str
    registry: Registry
    collections: Sequence[Collection]
    migrations: OnlineMigrations | None = None
    releases: ReleaseHistory | None = None
    checks: Sequence[UpgradeCheck] = field(default_factory=tuple)
    stale_after: float = 30.0
    key_prefix: str | None = None

    def open_store(self, url: str, **options: Any) -> Store:
        """A store of this service's collections (and the fleet's service
        records) on the backend at ``url``."""
        from rollsafe.rpc.fleet import SERVICES
        from rollsafe.storage.store import Store, open_backend

        collections = list(self.collections)
        if SERVICES not in collections:
            collections.append(SERVICES)
        if self.key_prefix is not None and url.split(":", 1)[0].lower() in (
                "redis", "rediss", "unix"):
            options.setdefault("key_prefix", self.key_prefix)
        return Store(open_backend(url, **options), collections)

    def fleet(self, store: Store) -> Fleet:
        """The fleet recorded in ``store``, with this service's oldest
        supported versions (from its release history)."""
        from rollsafe.rpc.fleet import Fleet

        oldest = self.releases.oldest_supported() if self.releases is not None else None
        return Fleet(store, stale_after=self.stale_after, oldest_supported=oldest)
