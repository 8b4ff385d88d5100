"""Release N of solumlite's domain: the release a fleet runs before the upgrade.

Its App keeps the source repository as one URL string, with the revision as
the URL's fragment (``https://git.example/shop.git#v2``) and privacy in a
separate flag; its Workflow calls its step list ``actions``; its Assembly
has no ``verifying`` status. Release N+1 (:mod:`solumlite.releases.n1`)
changes all three. Every class here is at version 1.0.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, Literal, cast

from rollsafe import Registry, VersionedObject, field, remotable_classmethod
from rollsafe.rpc.releases import ReleaseHistory
from rollsafe.upgrade.migrations import OnlineMigrations
from solumlite import flows
from solumlite.domain import (
    SOURCE_STRING_MAX,
    AppShape,
    SourceSpec,
    WorkflowShape,
    join_source,
    split_source,
)
from solumlite.release import Release

if TYPE_CHECKING:
    from solumlite.flows import Fetch, Page

__all__ = ["HISTORY", "REGISTRY", "RELEASE", "SERVICE", "App", "Assembly", "Component",
           "DeploymentUnit", "LanguagePack", "Workflow"]

#: The classes of release N (namespace ``solumlite``, like release N+1's).
REGISTRY = Registry("solumlite")

class LanguagePack(VersionedObject, registry=REGISTRY):
    """A language pack: the base image apps of one language build on."""

    id: uuid.UUID = field(read_only=True)
    project: str = field(read_only=True, max_length=64)
    name: str = field(max_length=63)
    description: str = field(default="", max_length=1000)
    base_image: str = field(max_length=255)
    created_at: datetime

    fetch: ClassVar[Fetch[LanguagePack]] = remotable_classmethod(flows.fetch)
    page: ClassVar[Page[LanguagePack]] = remotable_classmethod(flows.page)
    create_pack = remotable_classmethod(flows.create_pack)
    delete_pack = remotable_classmethod(flows.delete_pack)


class App(VersionedObject, registry=REGISTRY):
    """An application: where its code is, its language pack, its commands
    and ports, and how its last workflow went."""

    id: uuid.UUID = field(read_only=True)
    project: str = field(read_only=True, max_length=64)
    name: str = field(max_length=63)
    description: str = field(default="", max_length=1000)
    language_pack: str = field(max_length=63)
    #: The git URL; a revision, if any, is its fragment (``...repo.git#v2``).
    source: str = field(max_length=SOURCE_STRING_MAX)
    private_repo: bool = False
    test_cmd: str | None = field(default=None, max_length=1000)
    run_cmd: str = field(max_length=1000)
    ports: list[int] = field(default_factory=list)
    status: Literal["registered", "deploying", "deployed", "failed"] = "registered"
    created_at: datetime
    updated_at: datetime

    fetch: ClassVar[Fetch[App]] = remotable_classmethod(flows.fetch)
    page: ClassVar[Page[App]] = remotable_classmethod(flows.page)
    create_app = remotable_classmethod(flows.create_app)
    modify = remotable_classmethod(flows.modify)
    delete_app = remotable_classmethod(flows.delete_app)


class Workflow(VersionedObject, registry=REGISTRY):
    """One build/test/deploy run of an app."""

    id: uuid.UUID = field(read_only=True)
    project: str = field(read_only=True, max_length=64)
    app_id: uuid.UUID = field(read_only=True)
    assembly_id: uuid.UUID = field(read_only=True)
    unit_id: uuid.UUID = field(read_only=True)
    #: The steps the workflow runs, in order.
    actions: list[str]
    #: Index in ``actions`` of the running step (the first, while queued).
    position: int = 0
    status: Literal["queued", "running", "succeeded", "failed"] = "queued"
    created_at: datetime
    updated_at: datetime

    fetch: ClassVar[Fetch[Workflow]] = remotable_classmethod(flows.fetch)
    page: ClassVar[Page[Workflow]] = remotable_classmethod(flows.page)
    start = remotable_classmethod(flows.start)
    advance = remotable_classmethod(flows.advance)


class Assembly(VersionedObject, registry=REGISTRY):
    """The deployed instance a workflow produces (see
    :mod:`solumlite.lifecycle` for its state machine)."""

    id: uuid.UUID = field(read_only=True)
    project: str = field(read_only=True, max_length=64)
    app_id: uuid.UUID = field(read_only=True)
    workflow_id: uuid.UUID = field(read_only=True)
    name: str = field(max_length=80)
    status: Literal["queued", "unit_testing", "building", "deploying", "ready",
                    "unit_testing_failed", "build_failed", "deployment_failed",
                    "error"] = "queued"
    url: str | None = field(default=None, max_length=255)
    created_at: datetime
    updated_at: datetime

    fetch: ClassVar[Fetch[Assembly]] = remotable_classmethod(flows.fetch)
    page: ClassVar[Page[Assembly]] = remotable_classmethod(flows.page)


class Component(VersionedObject, registry=REGISTRY):
    """A build artifact or a stack under an assembly."""

    id: uuid.UUID = field(read_only=True)
    project: str = field(read_only=True, max_length=64)
    app_id: uuid.UUID = field(read_only=True)
    assembly_id: uuid.UUID = field(read_only=True)
    kind: Literal["artifact", "stack"]
    name: str = field(max_length=100)
    ref: str = field(max_length=255)
    created_at: datetime

    fetch: ClassVar[Fetch[Component]] = remotable_classmethod(flows.fetch)
    page: ClassVar[Page[Component]] = remotable_classmethod(flows.page)


class DeploymentUnit(VersionedObject, registry=REGISTRY):
    """The image a workflow builds, then deploys."""

    id: uuid.UUID = field(read_only=True)
    project: str = field(read_only=True, max_length=64)
    app_id: uuid.UUID = field(read_only=True)
    workflow_id: uuid.UUID = field(read_only=True)
    status: Literal["queued", "built", "deployed", "failed"] = "queued"
    image: str | None = field(default=None, max_length=255)
    created_at: datetime
    updated_at: datetime

    fetch: ClassVar[Fetch[DeploymentUnit]] = remotable_classmethod(flows.fetch)
    page: ClassVar[Page[DeploymentUnit]] = remotable_classmethod(flows.page)


#: The versions each release reads (oldest first).
HISTORY = ReleaseHistory([
    ("N", {"App": "1.0", "Assembly": "1.0", "Component": "1.0", "DeploymentUnit": "1.0",
           "LanguagePack": "1.0", "Workflow": "1.0"}),
])


class ReleaseN(Release):
    """Release N: sources as URL strings, steps called ``actions``."""

    def make_app(self, *, id: uuid.UUID, project: str, name: str, description: str,
                 language_pack: str, source: SourceSpec, test_cmd: str | None, run_cmd: str,
                 ports: list[int], created_at: datetime) -> AppShape:
        """A new release-N App."""
        return App(id=id, project=project, name=name, description=description,
                   language_pack=language_pack, source=join_source(source),
                   private_repo=source.private, test_cmd=test_cmd, run_cmd=run_cmd,
                   ports=ports, created_at=created_at, updated_at=created_at)

    def app_source(self, app: AppShape) -> SourceSpec:
        """The URL string and private flag, as a source."""
        mine = cast(App, app)
        return split_source(mine.source, mine.private_repo)

    def set_app_source(self, app: AppShape, source: SourceSpec) -> None:
        """Store ``source`` as the URL string and private flag."""
        mine = cast(App, app)
        mine.source = join_source(source)
        mine.private_repo = source.private

    def make_workflow(self, *, id: uuid.UUID, project: str, app_id: uuid.UUID,
                      assembly_id: uuid.UUID, unit_id: uuid.UUID, steps: list[str],
                      created_at: datetime) -> WorkflowShape:
        """A new release-N Workflow (its steps in ``actions``)."""
        return Workflow(id=id, project=project, app_id=app_id, assembly_id=assembly_id,
                        unit_id=unit_id, actions=steps, created_at=created_at,
                        updated_at=created_at)

    def workflow_steps(self, workflow: WorkflowShape) -> list[str]:
        """``actions``."""
        return list(cast(Workflow, workflow).actions)


#: Release N (``solumlite api --release n``).
RELEASE = ReleaseN(key="n", name="N", registry=REGISTRY, history=HISTORY,
                   migrations=OnlineMigrations("solumlite"), language_pack=LanguagePack,
                   app=App, workflow=Workflow, assembly=Assembly, component=Component,
                   deployment_unit=DeploymentUnit)

#: What the ``rollsafe`` operator commands know about release N
#: (``--service solumlite.releases.n:SERVICE``).
SERVICE = RELEASE.service()
