"""The HTTP API: JSON resources for language packs, apps, workflows,
assemblies, components and deployment units, for one release.

Every route but ``/healthz`` and the OpenAPI document needs a bearer token
(:class:`~solumlite.api.auth.TokenMap`); the token's project scopes every
flow the route calls. The operator dashboard (``/dashboard``, see
:mod:`solumlite.api.dashboard`) takes the operator's token instead.
Routes call the release's remotable methods, so the same app runs embedded
(the release bound to a store in this process) or in front of a conductor
(the registry's indirection set, no store here). Routes are plain
functions: FastAPI runs them in its thread pool, as the flows block on the
store or the conductor.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from solumlite.api.auth import TokenMap
from solumlite.api.dashboard import OperatorToken, install_dashboard
from solumlite.api.errors import ApiError, BodyLimit, install_error_handlers
from solumlite.api.idempotency import IdempotencyKey, Idempotent
from solumlite.api.models import (
    AdvanceIn,
    AppIn,
    AppOut,
    AppPatch,
    AssemblyOut,
    ComponentOut,
    DeploymentUnitOut,
    ErrorOut,
    HealthOut,
    LanguagePackIn,
    LanguagePackOut,
    PageOut,
    RunOut,
    WorkflowOut,
)
from solumlite.domain import Listing, Run, SourceSpec, Stored, language_pack_id, utcnow
from solumlite.release import Release
from solumlite.status import ReleaseStatus, StatusSource

#: A response model of one listed object.
Out = TypeVar("Out")

__all__ = ["MAX_BODY", "create_api"]

#: Largest request body accepted, in bytes.
MAX_BODY = 64 * 1024

_ERRORS: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorOut, "description": text} for status, text in (
        (401, "missing or unknown bearer token"),
        (404, "no such object in the token's project"),
        (409, "stale revision, illegal state transition, or name taken"),
        (422, "a field is refused"),
    )}

Limit = Annotated[int, Query(ge=1, le=100, description="items per page")]
Cursor = Annotated[str | None, Query(max_length=512,
                                     description="next_cursor of the previous page")]
AppFilter = Annotated[uuid.UUID | None, Query(description="only this app's")]

_BEARER = HTTPBearer(auto_error=False, description="a token mapped to one project")


def _project(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None,
                                                      Depends(_BEARER)]) -> str:
    """The project of the request's bearer token (401 without a known one)."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise ApiError(401, "unauthorized", "send a bearer token: Authorization: Bearer <token>",
                       challenge)
    tokens: TokenMap = request.app.state.tokens
    project = tokens.project_of(credentials.credentials)
    if project is None:
        raise ApiError(401, "unauthorized", "unknown bearer token", challenge)
    return project


#: A route parameter holding the caller's project.
Project = Annotated[str, Depends(_project)]


def create_api(release: Release, tokens: TokenMap, *, max_body: int = MAX_BODY,
               operator_token: str | None = None,
               status_source: StatusSource | None = None) -> FastAPI:
    """The ASGI app serving ``release``'s API to the holders of ``tokens``.

    With ``operator_token`` it also serves the operator dashboard
    (:mod:`solumlite.api.dashboard`) to that token's holder, showing what
    ``status_source`` returns: by default the fleet read from the store
    bound to ``release``; an API without store access is given the
    conductor's (:class:`solumlite.status.RemoteStatus`)."""
    operator = None if operator_token is None else OperatorToken(operator_token, tokens)
    if operator is None and status_source is not None:
        raise ValueError("a status source serves the dashboard: give an operator token too")
    api = FastAPI(title="solumlite", version=release.name, responses=_ERRORS,
                  description="The reference PaaS of rollsafe: apps, language packs, "
                              f"workflows and assemblies (release {release.name}).")
    install_error_handlers(api)
    api.add_middleware(BodyLimit, limit=max_body)
    api.state.tokens = tokens
    pack_cls, app_cls, wf_cls = release.language_pack, release.app, release.workflow
    once = Idempotent(release)

    def run_out(run: Run) -> RunOut:
        return RunOut(workflow=WorkflowOut.of(release, run["workflow"]),
                      assembly=AssemblyOut.of(release, run["assembly"]))

    def page_out(out: Callable[[Release, Stored[Any]], Out], found: Listing[Any]
                 ) -> PageOut[Out]:
        return PageOut(items=[out(release, stored) for stored in found["items"]],
                       next_cursor=found["next_cursor"])

    @api.get("/healthz", response_model=HealthOut, tags=["service"])
    def healthz() -> HealthOut:
        """The service is up; its release and the object versions it reads."""
        return HealthOut(status="ok", release=release.name, versions=release.manifest)

    # -- language packs ---------------------------------------------------------
    @api.get("/v1/languagepacks", tags=["language packs"])
    def list_packs(project: Project, limit: Limit = 20, cursor: Cursor = None
                   ) -> PageOut[LanguagePackOut]:
        """The project's language packs, oldest first."""
        return page_out(LanguagePackOut.of, release.page(pack_cls, project,
                                                         limit=limit, cursor=cursor))

    @api.post("/v1/languagepacks", status_code=201, tags=["language packs"])
    def create_pack(request: Request, project: Project, body: LanguagePackIn,
                    key: IdempotencyKey = None) -> LanguagePackOut:
        """Add a language pack (409 if the project has one of that name)."""
        pack = pack_cls(id=language_pack_id(project, body.name), project=project,
                        name=body.name, description=body.description,
                        base_image=body.base_image, created_at=utcnow())
        return once.run(key, **_named(request, project), model=LanguagePackOut,
                        write=lambda: LanguagePackOut.of(release,
                                                         release.create_pack(project, pack)))

    @api.get("/v1/languagepacks/{pack_id}", tags=["language packs"])
    def get_pack(project: Project, pack_id: uuid.UUID) -> LanguagePackOut:
        """One language pack."""
        return LanguagePackOut.of(release, release.fetch(pack_cls, project, pack_id))

    @api.delete("/v1/languagepacks/{pack_id}", status_code=204, tags=["language packs"])
    def delete_pack(request: Request, project: Project, pack_id: uuid.UUID,
                    key: IdempotencyKey = None) -> Response:
        """Delete a language pack no app uses (409 otherwise)."""
        once.run_plain(key, **_named(request, project),
                       write=lambda: release.delete_pack(project, pack_id))
        return Response(status_code=204)

    # -- apps -------------------------------------------------------------------------
    @api.get("/v1/apps", tags=["apps"])
    def list_apps(project: Project, limit: Limit = 20, cursor: Cursor = None
                  ) -> PageOut[AppOut]:
        """The project's apps, oldest first."""
        return page_out(AppOut.of, release.page(app_cls, project, limit=limit, cursor=cursor))

    @api.post("/v1/apps", status_code=201, tags=["apps"])
    def create_app(request: Request, project: Project, body: AppIn,
                   key: IdempotencyKey = None) -> AppOut:
        """Register an app (422 if its language pack does not exist)."""
        app = release.make_app(id=uuid.uuid4(), project=project, name=body.name,
                               description=body.description, language_pack=body.language_pack,
                               source=SourceSpec(body.source.url, body.source.revision,
                                                 body.source.private),
                               test_cmd=body.test_cmd, run_cmd=body.run_cmd,
                               ports=list(body.ports), created_at=utcnow())
        return once.run(key, **_named(request, project), model=AppOut,
                        write=lambda: AppOut.of(release, release.create_app(project, app)))

    @api.get("/v1/apps/{app_id}", tags=["apps"])
    def get_app(project: Project, app_id: uuid.UUID) -> AppOut:
        """One app."""
        return AppOut.of(release, release.fetch(app_cls, project, app_id))

    @api.patch("/v1/apps/{app_id}", tags=["apps"])
    def update_app(request: Request, project: Project, app_id: uuid.UUID, body: AppPatch,
                   key: IdempotencyKey = None) -> AppOut:
        """Change an app, if it is still at ``revision`` (409 otherwise)."""
        return once.run(key, **_named(request, project), model=AppOut,
                        write=lambda: AppOut.of(release, release.modify_app(
                            project, app_id, body.revision, body.changes())))

    @api.delete("/v1/apps/{app_id}", status_code=204, tags=["apps"])
    def delete_app(request: Request, project: Project, app_id: uuid.UUID,
                   key: IdempotencyKey = None) -> Response:
        """Delete an app and everything under it."""
        once.run_plain(key, **_named(request, project),
                       write=lambda: release.delete_app(project, app_id))
        return Response(status_code=204)

    @api.post("/v1/apps/{app_id}/workflows", status_code=201, tags=["workflows"])
    def start_workflow(request: Request, project: Project, app_id: uuid.UUID,
                       key: IdempotencyKey = None) -> RunOut:
        """Start a workflow: a queued workflow, assembly and deployment unit."""
        return once.run(key, **_named(request, project), model=RunOut,
                        write=lambda: run_out(release.start_workflow(project, app_id)))

    # -- workflows and what they make ---------------------------------------------------------
    @api.get("/v1/workflows", tags=["workflows"])
    def list_workflows(project: Project, limit: Limit = 20, cursor: Cursor = None,
                       app_id: AppFilter = None) -> PageOut[WorkflowOut]:
        """The project's workflows (or one app's), oldest first."""
        return page_out(WorkflowOut.of, release.page(wf_cls, project,
                                                     limit=limit, cursor=cursor, app_id=app_id))

    @api.get("/v1/workflows/{workflow_id}", tags=["workflows"])
    def get_workflow(project: Project, workflow_id: uuid.UUID) -> WorkflowOut:
        """One workflow."""
        return WorkflowOut.of(release, release.fetch(wf_cls, project, workflow_id))

    @api.post("/v1/workflows/{workflow_id}/advance", tags=["workflows"])
    def advance_workflow(request: Request, project: Project, workflow_id: uuid.UUID,
                         body: AdvanceIn | None = None, key: IdempotencyKey = None) -> RunOut:
        """End the running step (or begin the first) and begin the next;
        409 when the assembly cannot move that way."""
        move = body or AdvanceIn()
        return once.run(key, **_named(request, project), model=RunOut,
                        write=lambda: run_out(release.advance_workflow(
                            project, workflow_id, succeeded=move.succeeded,
                            from_status=move.from_status)))

    @api.get("/v1/assemblies", tags=["assemblies"])
    def list_assemblies(project: Project, limit: Limit = 20, cursor: Cursor = None,
                        app_id: AppFilter = None) -> PageOut[AssemblyOut]:
        """The project's assemblies (or one app's), oldest first."""
        return page_out(AssemblyOut.of, release.page(release.assembly, project,
                                                     limit=limit, cursor=cursor, app_id=app_id))

    @api.get("/v1/assemblies/{assembly_id}", tags=["assemblies"])
    def get_assembly(project: Project, assembly_id: uuid.UUID) -> AssemblyOut:
        """One assembly."""
        return AssemblyOut.of(release, release.fetch(release.assembly, project, assembly_id))

    @api.get("/v1/components", tags=["assemblies"])
    def list_components(project: Project, limit: Limit = 20, cursor: Cursor = None,
                        app_id: AppFilter = None) -> PageOut[ComponentOut]:
        """The project's components (or one app's), oldest first."""
        return page_out(ComponentOut.of, release.page(release.component, project,
                                                      limit=limit, cursor=cursor, app_id=app_id))

    @api.get("/v1/deploymentunits", tags=["assemblies"])
    def list_units(project: Project, limit: Limit = 20, cursor: Cursor = None,
                   app_id: AppFilter = None) -> PageOut[DeploymentUnitOut]:
        """The project's deployment units (or one app's), oldest first."""
        found = release.page(release.deployment_unit, project, limit=limit, cursor=cursor,
                             app_id=app_id)
        return page_out(DeploymentUnitOut.of, found)

    if operator is not None:
        install_dashboard(api, operator=operator,
                          status_source=status_source or ReleaseStatus(release))
    return api


def _named(request: Request, project: str) -> dict[str, str]:
    """What scopes an idempotency key: the project and the route called."""
    return {"project": project, "method": request.method, "path": request.url.path}
