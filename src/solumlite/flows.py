"""The coarse flows of solumlite, written once for both releases.

Each function here becomes a remotable class method of the release
classes (``create_app = remotable_classmethod(flows.create_app)`` in the class body):
a service with store access runs it in place, a service without one sends
it to the conductor. A flow reads and writes in **one unit of work**, so it
is all-or-nothing on every backend:

- when a conductor with a store runs the call, the flow uses the call's
  unit (:func:`rollsafe.rpc.current_unit`): its writes commit with the
  call's request record, exactly once, and the conductor runs the whole
  call again if it loses a race;
- otherwise it runs in :meth:`Store.run <rollsafe.storage.Store.run>` on the
  release's bound store, which runs it again in a fresh unit when it loses
  a race.

Arguments are plain data (ids as strings) or objects, as the wire carries
them; results are objects with the revision they are stored at
(:class:`~solumlite.domain.Stored`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from rollsafe import NotFoundError, ValidationError, VersionedObject
from rollsafe.rpc import RpcError, current_unit
from rollsafe.storage import UnitOfWork, revision_of
from solumlite.domain import (
    AppShape,
    AssemblyShape,
    DeploymentUnitShape,
    LanguagePackShape,
    Listing,
    Run,
    SourceSpec,
    Stored,
    WorkflowShape,
    check_app,
    check_name,
    language_pack_id,
    utcnow,
)
from solumlite.errors import (
    IllegalTransitionError,
    LanguagePackInUseError,
    NameTakenError,
    StaleRevisionError,
    UnknownLanguagePackError,
)
from solumlite.lifecycle import allowed_from, next_move, plan_steps
from solumlite.release import Release, release_of

__all__ = [
    "APP_CHANGES",
    "advance",
    "create_app",
    "create_pack",
    "delete_app",
    "delete_pack",
    "fetch",
    "modify",
    "page",
    "start",
]

T = TypeVar("T")
R = TypeVar("R")

if TYPE_CHECKING:
    # How a class declares the generic reads, typed for its own objects:
    #     fetch: ClassVar[Fetch[App]] = remotable_classmethod(flows.fetch)
    Fetch = classmethod[T, [str, str], Stored[T]]
    Page = classmethod[T, [str, int, str | None, str | None], Listing[T]]

#: The App fields a change (``modify``) may set.
APP_CHANGES = frozenset({"description", "language_pack", "source", "test_cmd", "run_cmd",
                         "ports"})
#: Objects deleted per query page when an app is deleted.
_DELETE_PAGE = 500


def _run(release: Release, flow: Callable[[UnitOfWork], R], *, readonly: bool = False) -> R:
    """``flow(unit)`` in the remote call's unit, or in one of the bound store."""
    try:
        unit = current_unit()
    except RpcError:
        pass  # not a call a conductor runs with a store: use our own unit
    else:
        return flow(unit)
    store = release.store
    if readonly:
        with store.unit_of_work(readonly=True) as own:
            return flow(own)
    return store.run(flow)


def _stored(obj: T) -> Stored[T]:
    return {"object": obj, "revision": revision_of(_object(obj))}


# The flows see objects through the release shapes (protocols); the store
# takes VersionedObject. These helpers are the one place the two meet.

def _object(obj: Any) -> VersionedObject:
    return cast(VersionedObject, obj)


def _get(uow: UnitOfWork, cls: type[T], key: uuid.UUID, project: str) -> T:
    return cast(T, uow.get(cast(type[VersionedObject], cls), key, project=project))


def _query(uow: UnitOfWork, cls: type[T], project: str, **options: Any
           ) -> tuple[list[T], str | None]:
    found = uow.query(cast(type[VersionedObject], cls), project=project, **options)
    return cast(list[T], found.items), found.next_cursor


def _key(value: object, path: str) -> uuid.UUID:
    """An id given as a string (or UUID), checked."""
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise ValidationError(path, f"{value!r} is not an id (a UUID)")


def _pack_named(uow: UnitOfWork, release: Release, project: str, name: str
                ) -> LanguagePackShape:
    try:
        return _get(uow, release.language_pack, language_pack_id(project, name), project)
    except NotFoundError:
        raise UnknownLanguagePackError(name, project) from None


# -- reading (every class) ---------------------------------------------------------


def fetch(cls: type[T], project: str, key: str) -> Stored[T]:
    """The object ``key`` of ``project`` (:class:`rollsafe.NotFoundError` if
    it does not exist there)."""
    release = release_of(cls)
    oid = _key(key, f"{cls.__name__}.id")
    return _run(release, lambda uow: _stored(_get(uow, cls, oid, project)), readonly=True)


def page(cls: type[T], project: str, limit: int = 20, cursor: str | None = None,
         app_id: str | None = None) -> Listing[T]:
    """One page of ``project``'s objects, oldest first (``app_id``: only
    those of that app); pass ``next_cursor`` back as ``cursor`` for the next."""
    release = release_of(cls)
    where = None if app_id is None else {"app_id": _key(app_id, "app_id")}

    def flow(uow: UnitOfWork) -> Listing[T]:
        items, next_cursor = _query(uow, cls, project, where=where, order_by="created_at",
                                    limit=limit, cursor=cursor)
        return {"items": [_stored(obj) for obj in items], "next_cursor": next_cursor}

    return _run(release, flow, readonly=True)


# -- language packs ----------------------------------------------------------------


def create_pack(cls: type[LanguagePackShape], project: str, pack: LanguagePackShape
                ) -> Stored[LanguagePackShape]:
    """Store a new language pack (:class:`NameTakenError` if the project
    has one of that name). Its id must be :func:`language_pack_id`."""
    release = release_of(cls)
    _owned(pack, project)
    check_name("LanguagePack", pack.name)
    if pack.id != language_pack_id(project, pack.name):
        raise ValidationError("LanguagePack.id", "must be language_pack_id(project, name)")

    def flow(uow: UnitOfWork) -> Stored[LanguagePackShape]:
        try:
            _get(uow, cls, pack.id, project)
        except NotFoundError:
            pass
        else:
            raise NameTakenError("language pack", pack.name)
        pack.created_at = utcnow()
        uow.create(_object(pack))
        return _stored(pack)

    return _run(release, flow)


def delete_pack(cls: type[LanguagePackShape], project: str, key: str) -> None:
    """Delete a language pack no app uses (:class:`LanguagePackInUseError`
    otherwise). An app created at the same moment may still name it; such
    an app's workflows then fail to start with
    :class:`UnknownLanguagePackError` until it names another pack."""
    release = release_of(cls)
    oid = _key(key, "LanguagePack.id")

    def flow(uow: UnitOfWork) -> None:
        pack = _get(uow, cls, oid, project)
        users, _ = _query(uow, release.app, project, where={"language_pack": pack.name},
                          limit=1)
        if users:
            raise LanguagePackInUseError(pack.name, users[0].name)
        uow.delete(_object(pack))

    _run(release, flow)


# -- apps ----------------------------------------------------------------------------


def create_app(cls: type[AppShape], project: str, app: AppShape) -> Stored[AppShape]:
    """Store a new app of ``project`` after checking it, and that its
    language pack exists (:class:`UnknownLanguagePackError`)."""
    release = release_of(cls)
    _owned(app, project)
    check_app(app, release.app_source(app))

    def flow(uow: UnitOfWork) -> Stored[AppShape]:
        _pack_named(uow, release, project, app.language_pack)
        app.status = "registered"
        app.created_at = app.updated_at = utcnow()
        uow.create(_object(app))
        return _stored(app)

    return _run(release, flow)


def modify(cls: type[AppShape], project: str, key: str, revision: int,
           changes: dict[str, Any]) -> Stored[AppShape]:
    """Change the fields :data:`APP_CHANGES` names of app ``key``, if it is
    still at ``revision`` (:class:`StaleRevisionError` otherwise: nothing is
    written). ``source`` is given as ``{"url", "revision", "private"}``."""
    release = release_of(cls)
    oid = _key(key, "App.id")
    unknown = set(changes) - APP_CHANGES
    if unknown:
        raise ValidationError("App", f"cannot change {', '.join(sorted(unknown))}; the fields "
                              f"that can change are {', '.join(sorted(APP_CHANGES))}")
    source = None if "source" not in changes else SourceSpec.from_plain(changes["source"])

    def flow(uow: UnitOfWork) -> Stored[AppShape]:
        app = _get(uow, cls, oid, project)
        stored = revision_of(_object(app))
        if stored != revision:
            raise StaleRevisionError(f"app {app.name}", revision, stored)
        for name, value in changes.items():
            if name != "source":
                setattr(app, name, value)
        if source is not None:
            release.set_app_source(app, source)
        check_app(app, release.app_source(app))
        if "language_pack" in changes:
            _pack_named(uow, release, project, app.language_pack)
        app.updated_at = utcnow()
        uow.update(_object(app))
        return _stored(app)

    return _run(release, flow)


def delete_app(cls: type[AppShape], project: str, key: str) -> int:
    """Delete app ``key`` and everything under it (workflows, assemblies,
    components, deployment units) in one unit of work; returns how many
    objects were deleted, the app included."""
    release = release_of(cls)
    oid = _key(key, "App.id")
    children = (release.component, release.deployment_unit, release.assembly,
                release.workflow)

    def flow(uow: UnitOfWork) -> int:
        app = _get(uow, cls, oid, project)
        deleted = 0
        for child in children:
            cursor: str | None = None
            while True:
                found, cursor = _query(uow, child, project, where={"app_id": oid},
                                       limit=_DELETE_PAGE, cursor=cursor)
                for obj in found:
                    uow.delete(_object(obj))
                deleted += len(found)
                if cursor is None:
                    break
        uow.delete(_object(app))
        return deleted + 1

    return _run(release, flow)


# -- workflows -------------------------------------------------------------------------


def start(cls: type[WorkflowShape], project: str, app_id: str) -> Run:
    """Start a workflow of app ``app_id``: a queued workflow, its assembly
    and its deployment unit are created, and the app marked deploying, in
    one unit of work. The steps are those this release runs and the store
    can record (see :func:`solumlite.lifecycle.plan_steps`)."""
    release = release_of(cls)
    oid = _key(app_id, "Workflow.app_id")

    def flow(uow: UnitOfWork) -> Run:
        app = _get(uow, release.app, oid, project)
        _pack_named(uow, release, project, app.language_pack)
        now = utcnow()
        steps = plan_steps(_enterable(release), has_tests=bool(app.test_cmd))
        wf_id, asm_id, unit_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        workflow = release.make_workflow(id=wf_id, project=project, app_id=oid,
                                         assembly_id=asm_id, unit_id=unit_id, steps=steps,
                                         created_at=now)
        assembly = release.assembly(id=asm_id, project=project, app_id=oid, workflow_id=wf_id,
                                    name=f"{app.name}-{wf_id.hex[:8]}", created_at=now,
                                    updated_at=now)
        unit = release.deployment_unit(id=unit_id, project=project, app_id=oid,
                                       workflow_id=wf_id, created_at=now, updated_at=now)
        for obj in (workflow, assembly, unit):
            uow.create(_object(obj))
        # Writing the app also orders this flow against a concurrent delete
        # of the app: one of the two conflicts and runs again.
        app.status = "deploying"
        app.updated_at = now
        uow.update(_object(app))
        return {"workflow": _stored(workflow), "assembly": _stored(assembly)}

    return _run(release, flow)


def advance(cls: type[WorkflowShape], project: str, key: str, succeeded: bool = True,
            from_status: str | None = None) -> Run:
    """Move workflow ``key`` one step through the assembly state machine
    (:func:`solumlite.lifecycle.next_move`): begin the first step, or end
    the running one (``succeeded`` or not) and begin the next. A completed
    build records the image (deployment unit built, artifact component); a
    completed deploy the stack component and the assembly's URL; the end
    of the workflow the app's status. ``from_status``: the assembly status
    the caller saw; if it moved on meanwhile, nothing changes and
    :class:`IllegalTransitionError` says where it is."""
    release = release_of(cls)
    oid = _key(key, "Workflow.id")
    if type(succeeded) is not bool:
        raise ValidationError("succeeded", "must be true or false")

    def flow(uow: UnitOfWork) -> Run:
        workflow = _get(uow, cls, oid, project)
        assembly = _get(uow, release.assembly, workflow.assembly_id, project)
        what = f"assembly {assembly.name}"
        if from_status is not None and assembly.status != from_status:
            raise IllegalTransitionError(what, assembly.status, f"advance from {from_status}",
                                         allowed_from(assembly.status))
        move = next_move(release.workflow_steps(workflow), workflow.position, assembly.status,
                         succeeded=succeeded, can_enter=_enterable(release), what=what)
        now = utcnow()
        if move.completed in ("build", "deploy") or move.workflow_status == "failed":
            _record_step(uow, release, workflow, assembly, move.completed, now)
        assembly.status = move.status
        assembly.updated_at = now
        workflow.position = move.position
        workflow.status = move.workflow_status
        workflow.updated_at = now
        if move.workflow_status in ("succeeded", "failed"):
            app = _get(uow, release.app, workflow.app_id, project)
            app.status = "deployed" if move.workflow_status == "succeeded" else "failed"
            app.updated_at = now
            uow.update(_object(app))
        uow.update(_object(assembly))
        uow.update(_object(workflow))
        return {"workflow": _stored(workflow), "assembly": _stored(assembly)}

    return _run(release, flow)


def _record_step(uow: UnitOfWork, release: Release, workflow: WorkflowShape,
                 assembly: AssemblyShape, completed: str | None, now: datetime) -> None:
    """What a finished build or deploy, or a failed workflow, leaves behind."""
    project = workflow.project
    unit: DeploymentUnitShape = _get(uow, release.deployment_unit, workflow.unit_id, project)
    if completed == "build":
        unit.status = "built"
        unit.image = f"images.solumlite.local/{project}/{assembly.name}:{workflow.id.hex[:12]}"
        artifact = release.component(id=uuid.uuid4(), project=project,
                                     app_id=workflow.app_id, assembly_id=assembly.id,
                                     kind="artifact", name=f"{assembly.name}-image",
                                     ref=unit.image, created_at=now)
        uow.create(_object(artifact))
    elif completed == "deploy":
        unit.status = "deployed"
        assembly.url = f"http://{assembly.name}.apps.solumlite.local"
        stack = release.component(id=uuid.uuid4(), project=project, app_id=workflow.app_id,
                                  assembly_id=assembly.id, kind="stack",
                                  name=f"{assembly.name}-stack",
                                  ref=f"stack-{assembly.id.hex[:12]}", created_at=now)
        uow.create(_object(stack))
    else:
        unit.status = "failed"
    unit.updated_at = now
    uow.update(_object(unit))


def _enterable(release: Release) -> Callable[[str], bool]:
    """Whether the release may put an assembly in a status now: its class
    knows it and the store writes an Assembly version that has it."""
    return lambda status: release.can_write(release.assembly, "status", status)


def _owned(obj: Any, project: str) -> None:
    if obj.project != project:
        raise ValidationError(f"{type(obj).__name__}.project",
                              f"is {obj.project!r}, not the caller's project {project!r}")
