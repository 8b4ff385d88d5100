"""The JSON the HTTP API reads and writes, as pydantic models.

Requests are strict: an unknown field, a value of the wrong type (``"42"``
for a number, ``1`` for a boolean), a string too long or not matching its
pattern is refused with 422 before any flow runs. The flows check the same
rules again (they also serve callers other than this API).

The representation is the same for both releases: release N stores an
app's source as a URL string, release N+1 as an object, and both show it as
``{"url", "revision", "private"}``; a workflow's steps are ``steps`` (release
N calls the field ``actions``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from solumlite.domain import (
    MAX_PORTS,
    MAX_REVISION,
    MAX_URL,
    NAME_PATTERN,
    REVISION_PATTERN,
    URL_PATTERN,
    AppShape,
    AssemblyShape,
    ComponentShape,
    DeploymentUnitShape,
    LanguagePackShape,
    Stored,
    WorkflowShape,
)
from solumlite.release import Release

__all__ = [
    "AdvanceIn",
    "AppIn",
    "AppOut",
    "AppPatch",
    "AssemblyOut",
    "ComponentOut",
    "DeploymentUnitOut",
    "ErrorOut",
    "HealthOut",
    "LanguagePackIn",
    "LanguagePackOut",
    "PageOut",
    "Problem",
    "RunOut",
    "SourceIn",
    "SourceOut",
    "WorkflowOut",
]

T = TypeVar("T")

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=63)]
Command = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
Port = Annotated[int, Field(ge=1, le=65535)]
Description = Annotated[str, StringConstraints(max_length=1000)]


class _Request(BaseModel):
    """A request body: unknown fields refused, no type coercion."""

    model_config = ConfigDict(extra="forbid", strict=True)


class SourceIn(_Request):
    """Where an app's code comes from."""

    url: Annotated[str, StringConstraints(pattern=URL_PATTERN, max_length=MAX_URL)] = Field(
        description="git URL: https://, git://, ssh:// or user@host:path; no '#'")
    revision: Annotated[str, StringConstraints(pattern=REVISION_PATTERN,
                                               max_length=MAX_REVISION)] | None = Field(
        default=None, description="branch, tag or commit (default: the default branch)")
    private: bool = False


class LanguagePackIn(_Request):
    """A new language pack."""

    name: Name
    description: Description = ""
    base_image: Annotated[str, StringConstraints(min_length=1, max_length=255)]


class AppIn(_Request):
    """A new app."""

    name: Name
    description: Description = ""
    language_pack: Name = Field(description="name of a language pack of the project")
    source: SourceIn
    test_cmd: Command | None = None
    run_cmd: Command
    ports: list[Port] = Field(default_factory=list, max_length=MAX_PORTS)


class AppPatch(_Request):
    """A change to an app: the fields to change, and the ``revision`` the
    client read (a stale one is refused with 409, and nothing changes)."""

    revision: int = Field(ge=1)
    description: Description | None = None
    language_pack: Name | None = None
    source: SourceIn | None = None
    test_cmd: Command | None = None
    run_cmd: Command | None = None
    ports: list[Port] | None = Field(default=None, max_length=MAX_PORTS)

    def changes(self) -> dict[str, Any]:
        """The fields the client set, as plain data (``test_cmd: null``
        clears the test command; the flow refuses other nulls)."""
        out: dict[str, Any] = {}
        for name in sorted(self.model_fields_set - {"revision"}):
            value = getattr(self, name)
            out[name] = value.model_dump() if isinstance(value, SourceIn) else value
        return out


class AdvanceIn(_Request):
    """The end of the running step (or the start of the first)."""

    succeeded: bool = True
    from_status: Annotated[str, StringConstraints(max_length=32)] | None = Field(
        default=None, description="the assembly status you saw; if it moved on, 409")


class SourceOut(BaseModel):
    """Where an app's code comes from."""

    url: str
    revision: str | None
    private: bool


class LanguagePackOut(BaseModel):
    """A language pack."""

    id: uuid.UUID
    name: str
    description: str
    base_image: str
    created_at: datetime
    revision: int

    @classmethod
    def of(cls, release: Release, stored: Stored[LanguagePackShape]) -> LanguagePackOut:
        """The representation of a stored language pack."""
        pack = stored["object"]
        return cls(id=pack.id, name=pack.name, description=pack.description,
                   base_image=pack.base_image, created_at=pack.created_at,
                   revision=stored["revision"])


class AppOut(BaseModel):
    """An app."""

    id: uuid.UUID
    name: str
    description: str
    language_pack: str
    source: SourceOut
    test_cmd: str | None
    run_cmd: str
    ports: list[int]
    status: str
    created_at: datetime
    updated_at: datetime
    revision: int

    @classmethod
    def of(cls, release: Release, stored: Stored[AppShape]) -> AppOut:
        """The representation of a stored app."""
        app = stored["object"]
        source = release.app_source(app)
        return cls(id=app.id, name=app.name, description=app.description,
                   language_pack=app.language_pack,
                   source=SourceOut(url=source.url, revision=source.revision,
                                    private=source.private),
                   test_cmd=app.test_cmd, run_cmd=app.run_cmd, ports=list(app.ports),
                   status=app.status, created_at=app.created_at, updated_at=app.updated_at,
                   revision=stored["revision"])


class WorkflowOut(BaseModel):
    """A workflow: its steps, the running one (``position``) and its status."""

    id: uuid.UUID
    app_id: uuid.UUID
    assembly_id: uuid.UUID
    unit_id: uuid.UUID
    steps: list[str]
    position: int
    status: str
    created_at: datetime
    updated_at: datetime
    revision: int

    @classmethod
    def of(cls, release: Release, stored: Stored[WorkflowShape]) -> WorkflowOut:
        """The representation of a stored workflow."""
        wf = stored["object"]
        return cls(id=wf.id, app_id=wf.app_id, assembly_id=wf.assembly_id, unit_id=wf.unit_id,
                   steps=release.workflow_steps(wf), position=wf.position, status=wf.status,
                   created_at=wf.created_at, updated_at=wf.updated_at,
                   revision=stored["revision"])


class AssemblyOut(BaseModel):
    """An assembly: the deployed instance, with its status."""

    id: uuid.UUID
    app_id: uuid.UUID
    workflow_id: uuid.UUID
    name: str
    status: str
    url: str | None
    created_at: datetime
    updated_at: datetime
    revision: int

    @classmethod
    def of(cls, release: Release, stored: Stored[AssemblyShape]) -> AssemblyOut:
        """The representation of a stored assembly."""
        asm = stored["object"]
        return cls(id=asm.id, app_id=asm.app_id, workflow_id=asm.workflow_id, name=asm.name,
                   status=asm.status, url=asm.url, created_at=asm.created_at,
                   updated_at=asm.updated_at, revision=stored["revision"])


class ComponentOut(BaseModel):
    """A build artifact or stack under an assembly."""

    id: uuid.UUID
    app_id: uuid.UUID
    assembly_id: uuid.UUID
    kind: str
    name: str
    ref: str
    created_at: datetime
    revision: int

    @classmethod
    def of(cls, release: Release, stored: Stored[ComponentShape]) -> ComponentOut:
        """The representation of a stored component."""
        comp = stored["object"]
        return cls(id=comp.id, app_id=comp.app_id, assembly_id=comp.assembly_id,
                   kind=comp.kind, name=comp.name, ref=comp.ref, created_at=comp.created_at,
                   revision=stored["revision"])


class DeploymentUnitOut(BaseModel):
    """A deployment unit: the image a workflow builds."""

    id: uuid.UUID
    app_id: uuid.UUID
    workflow_id: uuid.UUID
    status: str
    image: str | None
    created_at: datetime
    updated_at: datetime
    revision: int

    @classmethod
    def of(cls, release: Release, stored: Stored[DeploymentUnitShape]) -> DeploymentUnitOut:
        """The representation of a stored deployment unit."""
        unit = stored["object"]
        return cls(id=unit.id, app_id=unit.app_id, workflow_id=unit.workflow_id,
                   status=unit.status, image=unit.image, created_at=unit.created_at,
                   updated_at=unit.updated_at, revision=stored["revision"])


class RunOut(BaseModel):
    """A workflow and its assembly, after starting or advancing it."""

    workflow: WorkflowOut
    assembly: AssemblyOut


class PageOut(BaseModel, Generic[T]):
    """One page of a listing; pass ``next_cursor`` as ``cursor`` for the
    next (null: this is the last page)."""

    items: list[T]
    next_cursor: str | None


class Problem(BaseModel):
    """One thing wrong with a request: where, and what."""

    field: str
    message: str


class ErrorOut(BaseModel):
    """Every error response: a stable ``error`` code, a message saying what
    to do, and for a refused body the ``problems`` field by field."""

    error: str
    message: str
    problems: list[Problem] = Field(default_factory=list)


class HealthOut(BaseModel):
    """The service is up: its release and the object versions it reads."""

    status: str
    release: str
    versions: dict[str, str]
