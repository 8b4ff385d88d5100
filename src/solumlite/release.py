"""A release of solumlite's domain: its classes, storage, history and the
few things it does its own way.

Each release module (``solumlite.releases.n``, ``solumlite.releases.n1``)
declares its object classes in a registry of its own (namespace
``solumlite``, so both releases read each other's payloads) and builds one
:class:`Release` from them. Everything else (the flows, the HTTP API, the
state machine) is shared and works on any release through this class.

Flows need a store where they run: the conductor (or a service running
embedded, with store access) binds one with :meth:`Release.bind`. A service
without store access does not bind one: it sets the registry's indirection
and its calls run on the conductor.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from rollsafe import ValidationError, VersionedObject, schema_of
from rollsafe.objects.registry import Registry
from rollsafe.rpc.releases import ReleaseHistory
from rollsafe.storage.collection import Collection
from solumlite.domain import (
    AppShape,
    AssemblyShape,
    ComponentShape,
    DeploymentUnitShape,
    LanguagePackShape,
    Listing,
    Run,
    SourceSpec,
    Stored,
    WorkflowShape,
)
from solumlite.errors import ReleaseNotBoundError

if TYPE_CHECKING:
    from rollsafe.storage.store import Store
    from rollsafe.upgrade import OnlineMigrations, ServiceDefinition

__all__ = ["TABLES", "Release", "release_of"]

#: Object name -> (table or key prefix, indexed fields). The same in every
#: release: renaming a collection would strand the rows of the other one.
TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "LanguagePack": ("solum_language_pack", ("name", "created_at")),
    "App": ("solum_app", ("name", "language_pack", "created_at")),
    "Workflow": ("solum_workflow", ("app_id", "created_at")),
    "Assembly": ("solum_assembly", ("app_id", "created_at")),
    "Component": ("solum_component", ("app_id", "assembly_id", "created_at")),
    "DeploymentUnit": ("solum_deployment_unit", ("app_id", "created_at")),
}

T = TypeVar("T")

_BY_CLASS: dict[type, Release] = {}


def release_of(cls: type) -> Release:
    """The release whose object class ``cls`` is."""
    try:
        return _BY_CLASS[cls]
    except KeyError:
        raise LookupError(f"{cls.__name__} belongs to no solumlite release") from None


class Release(ABC):
    """One release of the domain. ``key`` names it on the command line
    (``n``, ``n1``), ``name`` in the fleet and the release history (``N``,
    ``N+1``)."""

    def __init__(self, *, key: str, name: str, registry: Registry, history: ReleaseHistory,
                 migrations: OnlineMigrations, language_pack: type[LanguagePackShape],
                 app: type[AppShape], workflow: type[WorkflowShape],
                 assembly: type[AssemblyShape], component: type[ComponentShape],
                 deployment_unit: type[DeploymentUnitShape]) -> None:
        self.key = key
        self.name = name
        self.registry = registry
        self.history = history
        self.migrations = migrations
        self.language_pack = language_pack
        self.app = app
        self.workflow = workflow
        self.assembly = assembly
        self.component = component
        self.deployment_unit = deployment_unit
        #: Object name -> class, for every stored class of the release.
        self.classes: dict[str, type[VersionedObject]] = {}
        for cls in (language_pack, app, workflow, assembly, component, deployment_unit):
            real = cast(type[VersionedObject], cls)
            self.classes[real.__name__] = real
            _BY_CLASS[real] = self
        if set(self.classes) != set(TABLES):
            raise TypeError(f"release {name}: expected classes {sorted(TABLES)}")
        self._store: Store | None = None
        #: Called as ``hook(project, run)`` after each workflow this process
        #: starts: how the service that started it hands it to the workers
        #: (as Solum's API casts a build to its workers). A hook must not raise.
        self.workflow_started: list[Callable[[str, Run], None]] = []

    def __repr__(self) -> str:
        return f"<solumlite release {self.name}>"

    # -- what each release does its own way -----------------------------------
    @abstractmethod
    def make_app(self, *, id: uuid.UUID, project: str, name: str, description: str,
                 language_pack: str, source: SourceSpec, test_cmd: str | None, run_cmd: str,
                 ports: list[int], created_at: datetime) -> AppShape:
        """A new App object of this release."""

    @abstractmethod
    def app_source(self, app: AppShape) -> SourceSpec:
        """Where ``app``'s code comes from."""

    @abstractmethod
    def set_app_source(self, app: AppShape, source: SourceSpec) -> None:
        """Point ``app`` at ``source``."""

    @abstractmethod
    def make_workflow(self, *, id: uuid.UUID, project: str, app_id: uuid.UUID,
                      assembly_id: uuid.UUID, unit_id: uuid.UUID, steps: list[str],
                      created_at: datetime) -> WorkflowShape:
        """A new, queued Workflow object of this release running ``steps``."""

    @abstractmethod
    def workflow_steps(self, workflow: WorkflowShape) -> list[str]:
        """The steps ``workflow`` runs, in order."""

    # -- storage -----------------------------------------------------------------
    @property
    def manifest(self) -> dict[str, str]:
        """Object name -> version this release reads (its registry's manifest)."""
        return self.registry.manifest()

    def collections(self, *, contracted: bool = False) -> list[Collection]:
        """How the release's objects are stored (fresh declarations each
        call). ``contracted``: the collections after contract, whose oldest
        stored version is the current one, so the columns only older
        versions used are gone (use them once ``rollsafe db contract`` ran)."""
        out = []
        for name, (table, indexes) in TABLES.items():
            cls = self.classes[name]
            oldest = cls.VERSIONS.versions[-1].number if contracted else None
            out.append(Collection(cls, key="id", project="project", indexes=indexes,
                                  name=table, oldest=oldest))
        return out

    def open_store(self, url: str, *, contracted: bool = False,
                   storage_versions: dict[str, str] | None = None, **options: Any) -> Store:
        """A store of the release's collections on the backend ``url`` names,
        plus the fleet's service records and the conductor's request records
        (so one store serves a conductor). ``storage_versions``: the versions
        to write (the fleet pins; None: current)."""
        from rollsafe.rpc import RPC_REQUESTS, SERVICES
        from rollsafe.storage import Store, open_backend

        return Store(open_backend(url, **options),
                     [*self.collections(contracted=contracted), SERVICES, RPC_REQUESTS],
                     storage_versions=storage_versions)

    def service(self, *, contracted: bool = False) -> ServiceDefinition:
        """What the ``rollsafe`` operator commands know about this release
        (``--service solumlite.releases.n1:SERVICE``)."""
        from rollsafe.upgrade import ServiceDefinition

        return ServiceDefinition(name="solumlite", registry=self.registry,
                                 collections=self.collections(contracted=contracted),
                                 migrations=self.migrations, releases=self.history)

    # -- where flows run -------------------------------------------------------------
    def bind(self, store: Store) -> None:
        """Run this release's flows against ``store`` in this process (the
        conductor's store, or an embedded service's)."""
        self._store = store

    def unbind(self, store: Store | None = None) -> None:
        """Forget the bound store (flows then refuse to run here); given
        ``store``, only if it is the bound one (a successor may have bound
        its own)."""
        if store is None or self._store is store:
            self._store = None

    @contextmanager
    def bound(self, store: Store) -> Iterator[Store]:
        """Bind ``store`` for the block, then restore what was bound before."""
        before = self._store
        self._store = store
        try:
            yield store
        finally:
            self._store = before

    @property
    def store(self) -> Store:
        """The bound store (:class:`ReleaseNotBoundError` if none)."""
        if self._store is None:
            raise ReleaseNotBoundError(self.name)
        return self._store

    # -- calling the flows -----------------------------------------------------------
    # Each goes through the remotable class method of the release's class, so
    # it runs here or on the conductor, as the registry's indirection says
    # (the methods are assigned in the class bodies, which type checkers do
    # not see on the shapes: this is the one typed way in).

    def fetch(self, cls: type[T], project: str, key: uuid.UUID | str) -> Stored[T]:
        """Object ``key`` of class ``cls`` (one of this release's) in ``project``."""
        found: Stored[T] = _remote(cls).fetch(project, str(key))
        return found

    def page(self, cls: type[T], project: str, *, limit: int = 20, cursor: str | None = None,
             app_id: uuid.UUID | str | None = None) -> Listing[T]:
        """A page of ``project``'s objects of ``cls`` (one app's with ``app_id``)."""
        found: Listing[T] = _remote(cls).page(project, limit, cursor,
                                              None if app_id is None else str(app_id))
        return found

    def create_pack(self, project: str, pack: LanguagePackShape) -> Stored[LanguagePackShape]:
        """Store a new language pack (:func:`solumlite.flows.create_pack`)."""
        found: Stored[LanguagePackShape] = _remote(self.language_pack).create_pack(project,
                                                                                   pack)
        return found

    def delete_pack(self, project: str, key: uuid.UUID | str) -> None:
        """Delete an unused language pack (:func:`solumlite.flows.delete_pack`)."""
        _remote(self.language_pack).delete_pack(project, str(key))

    def create_app(self, project: str, app: AppShape) -> Stored[AppShape]:
        """Store a new app (:func:`solumlite.flows.create_app`)."""
        found: Stored[AppShape] = _remote(self.app).create_app(project, app)
        return found

    def modify_app(self, project: str, key: uuid.UUID | str, revision: int,
                   changes: dict[str, Any]) -> Stored[AppShape]:
        """Change an app at ``revision`` (:func:`solumlite.flows.modify`)."""
        found: Stored[AppShape] = _remote(self.app).modify(project, str(key), revision,
                                                           changes)
        return found

    def delete_app(self, project: str, key: uuid.UUID | str) -> int:
        """Delete an app and all under it (:func:`solumlite.flows.delete_app`)."""
        deleted: int = _remote(self.app).delete_app(project, str(key))
        return deleted

    def start_workflow(self, project: str, app_id: uuid.UUID | str) -> Run:
        """Start a workflow of an app (:func:`solumlite.flows.start`)."""
        run: Run = _remote(self.workflow).start(project, str(app_id))
        for hook in list(self.workflow_started):
            hook(project, run)
        return run

    def advance_workflow(self, project: str, key: uuid.UUID | str, *, succeeded: bool = True,
                         from_status: str | None = None) -> Run:
        """Advance a workflow one step (:func:`solumlite.flows.advance`)."""
        run: Run = _remote(self.workflow).advance(project, str(key), succeeded, from_status)
        return run

    # -- the two-release rule -----------------------------------------------------------
    def can_write(self, cls: type, name: str, value: Any) -> bool:
        """Whether field ``name`` of ``cls`` may hold ``value`` at the
        version the bound store writes ``cls`` (the fleet pin): the
        two-release rule for new enum values. False also when this
        release's class does not know the value at all."""
        from rollsafe.storage.rewrite import target_version

        real = cast(type[VersionedObject], cls)
        fld = schema_of(real, target_version(self.store, real)).get(name)
        if fld is None:
            return False
        try:
            fld.ftype.validate(value, f"{real.__name__}.{name}")
        except ValidationError:
            return False
        return True


def _remote(cls: type) -> Any:
    """A release class, for calling its remotable methods."""
    if cls not in _BY_CLASS:
        raise LookupError(f"{cls.__name__} belongs to no solumlite release")
    return cls
