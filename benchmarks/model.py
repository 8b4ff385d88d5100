"""The reference benchmark model of the spec, declared in rollsafe.

The same Application (13 fields), Source (3) and Component (4) as
``shared/bench/ovo_anchor.py`` defines for oslo.versionedobjects, with the
same history: Application 1.1 added ``restart_count``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

from rollsafe import Added, History, Registry, Version, VersionedObject, field

bench = Registry("bench")

AppStatus = Literal["pending", "running", "stopped", "error"]


class Source(VersionedObject, registry=bench):
    """Where an application's code comes from."""

    kind: Literal["git", "image", "archive"]
    url: str
    revision: str | None = None


class Component(VersionedObject, registry=bench):
    """One deployable piece of an application."""

    name: str
    image: str
    replicas: int = 1
    ports: list[int] = field(default_factory=list)


class Application(VersionedObject, registry=bench):
    """The reference application object."""

    VERSIONS = History(
        Version("1.0", "Initial version"),
        Version("1.1", "Count restarts", Added("restart_count")),
    )

    id: uuid.UUID
    name: str
    description: str
    owner: str | None
    replicas: int
    restart_count: int = 0
    created_at: datetime
    updated_at: datetime | None
    status: AppStatus
    tags: list[str]
    metadata: dict[str, str]
    source: Source
    components: list[Component]


NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
APP_ID = uuid.UUID("6f1c3a3e-1d2b-4c5a-9f00-0123456789ab")


def make_source() -> Source:
    """The Source of the reference tree."""
    return Source(kind="git", url="https://example.com/org/repo.git", revision="a1b2c3d4")


def make_components() -> list[Component]:
    """The five Components of the reference tree."""
    return [Component(name=f"comp-{i}", image=f"registry/img:{i}", replicas=i + 1,
                      ports=[8000 + i, 9000 + i]) for i in range(5)]


def make_app(source: Source | None = None,
             components: list[Component] | None = None) -> Application:
    """The reference Application, with fresh children unless given."""
    return Application(
        id=APP_ID,
        name="my-app",
        description="A realistic application object for benchmarking",
        owner=None,
        replicas=3,
        restart_count=7,
        created_at=NOW,
        updated_at=NOW,
        status="running",
        tags=["web", "prod", "eu-west", "tier-1"],
        metadata={"team": "platform", "cost-center": "1234", "env": "prod"},
        source=source if source is not None else make_source(),
        components=components if components is not None else make_components(),
    )
