"""Release N+1 of solumlite's domain: what the fleet runs after the upgrade.

Its changes from release N (:mod:`solumlite.releases.n`), each exercising
one mechanism of a live upgrade:

- **App 1.1**: the source repository, a URL string (revision in its
  fragment) plus a ``private_repo`` flag, becomes a :class:`Source` object
  (git URL, revision, private flag). ``Retyped`` converts the value both
  ways, a ``Custom`` step moves the private flag into it, and ``Removed``
  retires ``private_repo``. On SQL the object gets a new column (added by
  expand); the online migration ``app-source-object`` rewrites every App
  stored at 1.0 so that contract can drop the old string column and
  ``private_repo`` (use :meth:`Release.collections(contracted=True)
  <solumlite.release.Release.collections>` from then on).
- **Workflow 1.1**: ``actions`` is renamed ``steps`` (same column: a rename
  costs nothing in storage).
- **Assembly 1.1**: the status ``verifying`` (the new ``verify`` step after
  deploy). Under the two-release rule it has no fallback for older readers:
  release N+1 reads it from the start but writes it only once the store
  writes Assembly 1.1, that is once the fleet pin says every live service
  reads it; until then workflows skip the step.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from rollsafe import (
    Custom,
    EnumValuesAdded,
    History,
    Registry,
    Removed,
    Renamed,
    Retyped,
    Version,
    VersionedObject,
    field,
    remotable_classmethod,
)
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

__all__ = ["CONTRACTED", "HISTORY", "MIGRATIONS", "REGISTRY", "RELEASE", "SERVICE", "App",
           "Assembly", "Component", "DeploymentUnit", "LanguagePack", "Source", "Workflow"]

#: The classes of release N+1 (namespace ``solumlite``, like release N's).
REGISTRY = Registry("solumlite")


class Source(VersionedObject, registry=REGISTRY):
    """Where an app's code comes from."""

    #: A git URL, without credentials or fragment. (As long as any source
    #: string release N may have stored, which N+1 reads through Retyped.)
    url: str = field(max_length=SOURCE_STRING_MAX)
    #: Branch, tag or commit to build; None: the default branch.
    revision: str | None = field(default=None, max_length=SOURCE_STRING_MAX)
    private: bool = False


def _source_from_string(text: str) -> Source:
    spec = split_source(text)
    return Source(url=spec.url, revision=spec.revision)


def _source_to_string(source: Source) -> str:
    return join_source(SourceSpec(source.url, source.revision))


def _private_into_source(values: dict[str, Any]) -> None:
    values["source"].private = values["private_repo"]


def _private_out_of_source(values: dict[str, Any]) -> None:
    values["private_repo"] = values["source"].private


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

    VERSIONS = History(
        Version("1.0", "Initial version"),
        Version("1.1", "The source is a Source object; private_repo moves into it",
                Retyped("source", str, max_length=SOURCE_STRING_MAX,
                        upgrade=_source_from_string, downgrade=_source_to_string),
                Custom("the private flag moves into the source",
                       upgrade=_private_into_source, downgrade=_private_out_of_source),
                Removed("private_repo", bool, default=False)),
    )

    id: uuid.UUID = field(read_only=True)
    project: str = field(read_only=True, max_length=64)
    name: str = field(max_length=63)
    description: str = field(default="", max_length=1000)
    language_pack: str = field(max_length=63)
    source: Source
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

    VERSIONS = History(
        Version("1.0", "Initial version"),
        Version("1.1", "'actions' is now 'steps'", Renamed("actions", "steps")),
    )

    id: uuid.UUID = field(read_only=True)
    project: str = field(read_only=True, max_length=64)
    app_id: uuid.UUID = field(read_only=True)
    assembly_id: uuid.UUID = field(read_only=True)
    unit_id: uuid.UUID = field(read_only=True)
    #: The steps the workflow runs, in order.
    steps: list[str]
    #: Index in ``steps`` of the running step (the first, while queued).
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

    VERSIONS = History(
        Version("1.0", "Initial version"),
        # No fallback: an older reader must never see a verifying assembly
        # as something else. N+1 writes it only once the pin is 1.1.
        Version("1.1", "Deployments are verified", EnumValuesAdded("status", ["verifying"])),
    )

    id: uuid.UUID = field(read_only=True)
    project: str = field(read_only=True, max_length=64)
    app_id: uuid.UUID = field(read_only=True)
    workflow_id: uuid.UUID = field(read_only=True)
    name: str = field(max_length=80)
    status: Literal["queued", "unit_testing", "building", "deploying", "verifying", "ready",
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
    ("N+1", {"App": "1.1", "Assembly": "1.1", "Component": "1.0", "DeploymentUnit": "1.0",
             "LanguagePack": "1.0", "Source": "1.0", "Workflow": "1.1"}),
])

#: The online data migrations of release N+1, run once every service is
#: N+1 (before that the store still writes the old versions, and they find
#: nothing to do). Each rewrites the records of one class stored at the old
#: version, so that contract can drop what only that version used.
MIGRATIONS = OnlineMigrations("solumlite")
MIGRATIONS.rewrite(App, name="app-source-object")
MIGRATIONS.rewrite(Workflow, name="workflow-steps")
MIGRATIONS.rewrite(Assembly, name="assembly-status")


class ReleaseN1(Release):
    """Release N+1: sources as :class:`Source` objects, steps called ``steps``."""

    def make_app(self, *, id: uuid.UUID, project: str, name: str, description: str,
                 language_pack: str, source: SourceSpec, test_cmd: str | None, run_cmd: str,
                 ports: list[int], created_at: datetime) -> AppShape:
        """A new release-N+1 App."""
        return App(id=id, project=project, name=name, description=description,
                   language_pack=language_pack, source=_source_object(source),
                   test_cmd=test_cmd, run_cmd=run_cmd, ports=ports, created_at=created_at,
                   updated_at=created_at)

    def app_source(self, app: AppShape) -> SourceSpec:
        """The app's Source, as a spec."""
        source = cast(App, app).source
        return SourceSpec(source.url, source.revision, source.private)

    def set_app_source(self, app: AppShape, source: SourceSpec) -> None:
        """Give the app a new Source."""
        cast(App, app).source = _source_object(source)

    def make_workflow(self, *, id: uuid.UUID, project: str, app_id: uuid.UUID,
                      assembly_id: uuid.UUID, unit_id: uuid.UUID, steps: list[str],
                      created_at: datetime) -> WorkflowShape:
        """A new release-N+1 Workflow."""
        return Workflow(id=id, project=project, app_id=app_id, assembly_id=assembly_id,
                        unit_id=unit_id, steps=steps, created_at=created_at,
                        updated_at=created_at)

    def workflow_steps(self, workflow: WorkflowShape) -> list[str]:
        """``steps``."""
        return list(cast(Workflow, workflow).steps)


def _source_object(source: SourceSpec) -> Source:
    return Source(url=source.url, revision=source.revision, private=source.private)


#: Release N+1 (``solumlite api --release n1``).
RELEASE = ReleaseN1(key="n1", name="N+1", registry=REGISTRY, history=HISTORY,
                    migrations=MIGRATIONS, language_pack=LanguagePack, app=App,
                    workflow=Workflow, assembly=Assembly, component=Component,
                    deployment_unit=DeploymentUnit)

#: What the ``rollsafe`` operator commands know about release N+1
#: (``--service solumlite.releases.n1:SERVICE``).
SERVICE = RELEASE.service()

#: Release N+1 with its collections as they are after contract
#: (``rollsafe db contract --service solumlite.releases.n1:CONTRACTED``).
CONTRACTED = RELEASE.service(contracted=True)
