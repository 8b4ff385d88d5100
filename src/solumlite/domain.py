"""What both releases' domains share, as the shared code sees it.

Each release declares its own object classes (``solumlite.releases.n`` and
``solumlite.releases.n1``): a release's classes are its schema, and two
releases run side by side in one process. The flows and the HTTP API are
written once, against the *shapes* below: the fields the two releases have
in common. Enum fields are ``Any`` here because the releases' enums differ
(release N+1's Assembly status has ``verifying``); what differs beyond that
(App's source, Workflow's step list) goes through the release's own methods
(:class:`solumlite.release.Release`).

Every object is scoped to a project (its ``project`` field, the
collections' project scope): a project never reads another's objects.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypedDict, TypeVar

from rollsafe import ValidationError

__all__ = [
    "MAX_PORTS",
    "MAX_REVISION",
    "MAX_URL",
    "NAME_PATTERN",
    "REVISION_PATTERN",
    "SOURCE_STRING_MAX",
    "URL_PATTERN",
    "AppShape",
    "AssemblyShape",
    "ComponentShape",
    "DeploymentUnitShape",
    "LanguagePackShape",
    "Listing",
    "Run",
    "SourceSpec",
    "Stored",
    "WorkflowShape",
    "check_app",
    "check_name",
    "check_ports",
    "join_source",
    "language_pack_id",
    "split_source",
    "utcnow",
]

T = TypeVar("T")

#: Names of apps and language packs: a DNS label (they end up in image
#: names and URLs).
NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
#: A git URL (``https://``, ``http://``, ``git://``, ``ssh://`` or the scp
#: form ``user@host:path``), with no fragment: the revision is its own field.
URL_PATTERN = r"^((https?|git|ssh)://[^\s#]+|[\w.-]+@[\w.-]+:[^\s#]+)$"
#: A git revision: a branch, tag or commit (no spaces, no ``#``).
REVISION_PATTERN = r"^[^\s#]{1,200}$"
#: Longest source URL and revision.
MAX_URL, MAX_REVISION = 2000, 200
#: Longest source in its string form (see :func:`join_source`).
SOURCE_STRING_MAX = MAX_URL + 1 + MAX_REVISION
MAX_PORTS = 16

_NAME = re.compile(NAME_PATTERN)
_URL = re.compile(URL_PATTERN)
_REVISION = re.compile(REVISION_PATTERN)


def utcnow() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)


class Stored(TypedDict, Generic[T]):
    """An object as a flow returns it: with the revision it is stored at
    (what a later write names, so a stale write is refused)."""

    object: T
    revision: int


class Run(TypedDict):
    """A workflow and its assembly, as starting or advancing one leaves them."""

    workflow: Stored[WorkflowShape]
    assembly: Stored[AssemblyShape]


class Listing(TypedDict, Generic[T]):
    """One page of objects; ``next_cursor`` fetches the next (None: last)."""

    items: list[Stored[T]]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """Where an app's code comes from, as both releases can hold it: a git
    URL, a revision (branch, tag or commit; None: the default branch) and
    whether the repository is private."""

    url: str
    revision: str | None = None
    private: bool = False

    def check(self, path: str = "App.source") -> SourceSpec:
        """``self`` if valid, else :class:`rollsafe.ValidationError`."""
        if not isinstance(self.url, str) or len(self.url) > MAX_URL \
                or not _URL.fullmatch(self.url):
            raise ValidationError(f"{path}.url", f"{_short(self.url)} is not a git URL "
                                  f"(https://, git://, ssh:// or user@host:path, at most "
                                  f"{MAX_URL} characters, no '#')")
        if self.revision is not None and (not isinstance(self.revision, str)
                                          or not _REVISION.fullmatch(self.revision)):
            raise ValidationError(f"{path}.revision", f"{_short(self.revision)} is not a git "
                                  "revision (1 to 200 characters, no spaces or '#')")
        if type(self.private) is not bool:
            raise ValidationError(f"{path}.private", "must be true or false")
        return self

    @classmethod
    def from_plain(cls, value: Any, path: str = "App.source") -> SourceSpec:
        """A spec from plain data ``{"url", "revision", "private"}``, checked."""
        if not isinstance(value, dict) or not set(value) <= {"url", "revision", "private"} \
                or "url" not in value:
            raise ValidationError(path, "must be an object with url, and optionally revision "
                                  "and private")
        return cls(value["url"], value.get("revision"), value.get("private", False)).check(path)

    def to_plain(self) -> dict[str, Any]:
        """The spec as plain data (what crosses the wire)."""
        return {"url": self.url, "revision": self.revision, "private": self.private}


#: Language pack ids are derived from the project and name, so two packs of
#: one name cannot both be stored, on any backend (the second insert
#: conflicts on the key).
_PACK_IDS = uuid.UUID("6f1d3c2a-5b8e-4d7f-9a41-2c0e8b5d7a13")


def language_pack_id(project: str, name: str) -> uuid.UUID:
    """The id of language pack ``name`` in ``project``."""
    return uuid.uuid5(_PACK_IDS, f"{project}/{name}")


def join_source(source: SourceSpec) -> str:
    """A source as one string, the revision as the URL's fragment
    (``https://git.example/shop.git#v2``): how release N stores it."""
    return source.url if source.revision is None else f"{source.url}#{source.revision}"


def split_source(text: str, private: bool = False) -> SourceSpec:
    """The source a string of :func:`join_source`'s form holds."""
    url, mark, revision = text.partition("#")
    # "url#" keeps its empty revision, so that joining gives the same string
    # back (release N may have stored any string: nothing is lost either way).
    return SourceSpec(url, revision if mark else None, private)


def check_name(kind: str, value: object) -> str:
    """``value`` if it is a valid name for a ``kind`` (app, language pack),
    else :class:`rollsafe.ValidationError`."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValidationError(f"{kind}.name", f"{_short(value)} is not a valid name: 1 to 63 "
                              "lowercase letters, digits and '-', starting and ending with a "
                              "letter or digit")
    return value


def check_ports(value: object, path: str = "App.ports") -> list[int]:
    """``value`` if it is a list of distinct TCP ports (1-65535), at most
    :data:`MAX_PORTS`, else :class:`rollsafe.ValidationError`."""
    if not isinstance(value, list) or len(value) > MAX_PORTS:
        raise ValidationError(path, f"must be a list of at most {MAX_PORTS} ports")
    for port in value:
        if type(port) is not int or not 1 <= port <= 65535:
            raise ValidationError(path, f"{_short(port)} is not a TCP port (1-65535)")
    if len(set(value)) != len(value):
        raise ValidationError(path, "lists a port twice")
    return value


def check_app(app: AppShape, source: SourceSpec) -> None:
    """The checks on an app beyond its field types (the flows run them
    whoever the caller is): a valid name and language pack name, a valid
    source and ports."""
    check_name("App", app.name)
    check_name("App.language_pack", app.language_pack)
    source.check()
    check_ports(app.ports)
    if not app.run_cmd.strip():
        raise ValidationError("App.run_cmd", "must not be empty: it is how the app starts")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- the shapes --------------------------------------------------------------
# Each lists the fields both releases declare with the same type; Any stands
# for an enum whose values differ between the releases.


class LanguagePackShape(Protocol):
    """A language pack: the base image apps of one language build on."""

    id: uuid.UUID
    project: str
    name: str
    description: str
    base_image: str
    created_at: datetime

    def __init__(self, *, id: uuid.UUID, project: str, name: str, description: str = ...,
                 base_image: str, created_at: datetime) -> None: ...


class AppShape(Protocol):
    """An application: its code, language pack, commands and ports."""

    id: uuid.UUID
    project: str
    name: str
    description: str
    language_pack: str
    test_cmd: str | None
    run_cmd: str
    ports: list[int]
    status: Any
    created_at: datetime
    updated_at: datetime


class WorkflowShape(Protocol):
    """One build/test/deploy run of an app (its steps: the release's
    ``workflow_steps``)."""

    id: uuid.UUID
    project: str
    app_id: uuid.UUID
    assembly_id: uuid.UUID
    unit_id: uuid.UUID
    position: int
    status: Any
    created_at: datetime
    updated_at: datetime


class AssemblyShape(Protocol):
    """The deployed instance a workflow produces, with its status."""

    id: uuid.UUID
    project: str
    app_id: uuid.UUID
    workflow_id: uuid.UUID
    name: str
    status: Any
    url: str | None
    created_at: datetime
    updated_at: datetime

    def __init__(self, *, id: uuid.UUID, project: str, app_id: uuid.UUID,
                 workflow_id: uuid.UUID, name: str, status: Any = ..., url: str | None = ...,
                 created_at: datetime, updated_at: datetime) -> None: ...


class ComponentShape(Protocol):
    """A build artifact or a stack under an assembly."""

    id: uuid.UUID
    project: str
    app_id: uuid.UUID
    assembly_id: uuid.UUID
    kind: Any
    name: str
    ref: str
    created_at: datetime

    def __init__(self, *, id: uuid.UUID, project: str, app_id: uuid.UUID,
                 assembly_id: uuid.UUID, kind: Any, name: str, ref: str,
                 created_at: datetime) -> None: ...


class DeploymentUnitShape(Protocol):
    """The image a workflow builds and deploys."""

    id: uuid.UUID
    project: str
    app_id: uuid.UUID
    workflow_id: uuid.UUID
    status: Any
    image: str | None
    created_at: datetime
    updated_at: datetime

    def __init__(self, *, id: uuid.UUID, project: str, app_id: uuid.UUID,
                 workflow_id: uuid.UUID, status: Any = ..., image: str | None = ...,
                 created_at: datetime, updated_at: datetime) -> None: ...
