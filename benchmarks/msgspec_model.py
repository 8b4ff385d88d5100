"""The reference model as msgspec Structs, for the moonshot comparison."""

import datetime as dt
import uuid
from typing import Literal

import msgspec


class MSource(msgspec.Struct):
    """Source, as a msgspec Struct."""

    kind: Literal["git", "image", "archive"]
    url: str
    revision: str | None = None


class MComponent(msgspec.Struct):
    """Component, as a msgspec Struct."""

    name: str
    image: str
    replicas: int = 1
    ports: list[int] = []


class MApplication(msgspec.Struct):
    """Application, as a msgspec Struct."""

    id: uuid.UUID
    name: str
    description: str
    owner: str | None
    replicas: int
    restart_count: int
    created_at: dt.datetime
    updated_at: dt.datetime | None
    status: Literal["pending", "running", "stopped", "error"]
    tags: list[str]
    metadata: dict[str, str]
    source: MSource
    components: list[MComponent]
