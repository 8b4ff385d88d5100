"""The small domain the storage conformance suite stores on every backend.

``App`` has three versions, so records written by an older release can be
stored and read back:

- 1.0: the first version (the team field is called ``owner``, no ``tier``);
- 1.1: ``Added("tier", default="legacy")``: a record without it reads as
  ``"legacy"`` (the field default for new objects is ``"standard"``);
- 1.2: ``Renamed("owner", "team")``.

It holds every kind of field a store must keep: a UUID key, a project, str,
enum, datetime, int, float and bool scalars, nullable fields, a nested
object, a list of nested objects, a list, a set and a dict. ``Build`` is a
second class with an int key and no project.

Subprocesses (tests/storage/test_sql_faults.py) import this module by
putting its folder on ``sys.path``, so it must not import test-only code.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from rollsafe import Added, History, Registry, Renamed, Version, VersionedObject, field
from rollsafe.storage import Collection, Store, open_backend

reg = Registry("conformance")

UTC = dt.UTC
IST = dt.timezone(dt.timedelta(hours=5, minutes=30))
NST = dt.timezone(-dt.timedelta(hours=3, minutes=30))
#: The versions App had; APP_OLDEST lacks ``tier`` and calls ``team`` ``owner``.
APP_OLDEST, APP_MIDDLE, APP_CURRENT = "1.0", "1.1", "1.2"


class Source(VersionedObject, registry=reg):
    """Where an app's code comes from (a nested object)."""

    url: str = field(max_length=2048)
    revision: str | None = None
    pushed_at: dt.datetime | None = None


class Event(VersionedObject, registry=reg):
    """Something that happened to an app (kept in a list of objects)."""

    at: dt.datetime
    what: str


class App(VersionedObject, registry=reg):
    """A deployed application."""

    VERSIONS = History(
        Version(APP_OLDEST, "Initial version"),
        Version(APP_MIDDLE, "Apps have a tier", Added("tier", default="legacy")),
        Version(APP_CURRENT, "The owner is a team", Renamed("owner", "team")),
    )

    id: uuid.UUID = field(read_only=True)
    project: str = field(read_only=True)
    name: str = field(max_length=64)
    status: Literal["queued", "running", "stopped"] = "queued"
    created_at: dt.datetime
    team: str = "core"
    tier: str = "standard"
    counter: int = 0
    score: float = 0.0
    enabled: bool = True
    note: str | None = None
    priority: int | None = None
    source: Source
    ports: list[int] = field(default_factory=list)
    tags: set[str] = field(default_factory=set)
    labels: dict[str, str] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)


class Build(VersionedObject, registry=reg):
    """A build of an app: int key, no project."""

    number: int = field(read_only=True)
    app_id: uuid.UUID
    log: str = ""
    finished_at: dt.datetime | None = None


#: Fields App listings may filter or order by.
APP_INDEXES = ("name", "status", "created_at", "priority")


def collections() -> list[Collection]:
    """The storage declarations of the domain (fresh objects each call)."""
    return [
        Collection(App, key="id", project="project", indexes=APP_INDEXES),
        Collection(Build, key="number", indexes=("app_id",)),
    ]


def make_store(url: str, *, storage_versions: dict[str, str] | None = None,
               **backend_options: Any) -> Store:
    """A store of the domain on the backend ``url`` names."""
    return Store(open_backend(url, **backend_options), collections(),
                 storage_versions=storage_versions)


BASE_TIME = dt.datetime(2024, 5, 17, 9, 30, 15, 123456, tzinfo=UTC)


def new_app(project: str = "p1", name: str = "web", **values: Any) -> App:
    """An App with every field set to something other than its default
    unless ``values`` says otherwise."""
    defaults: dict[str, Any] = {
        "id": uuid.uuid4(),
        "project": project,
        "name": name,
        "status": "running",
        "created_at": dt.datetime(2024, 5, 17, 14, 45, 1, 654321, tzinfo=IST),
        "team": "payments",
        "tier": "gold",
        "counter": 7,
        "score": 0.1 + 0.2,
        "enabled": False,
        "note": "first deploy",
        "priority": 3,
        "source": Source(url="https://git.example/web.git", revision="abc123",
                         pushed_at=dt.datetime(2024, 5, 16, 23, 59, 59, 1, tzinfo=NST)),
        "ports": [80, 443, -1, 2**63 - 1],
        "tags": {"blue", "édition", "🚀"},
        "labels": {"env": "prod", "zone": "eu-west-1", "ünï": "cödé"},
        "events": [Event(at=dt.datetime(2024, 5, 17, 9, 0, tzinfo=UTC), what="created"),
                   Event(at=dt.datetime(2024, 5, 17, 10, 0, 0, 999999, tzinfo=IST),
                         what="deployed")],
    }
    defaults.update(values)
    return App(**defaults)


def increment_counter(store: Store, key: uuid.UUID, times: int, *, think: float = 0.002,
                      budget_seconds: float = 60.0) -> dict[str, Any]:
    """Read-modify-write ``App.counter`` of ``key`` until ``times`` updates
    succeeded, retrying on ConflictError (bounded: at most 50 attempts per
    increment and ``budget_seconds``). ``think`` seconds pass between the
    read and the write, so concurrent writers do overlap. Returns what
    happened: successes, the revision each success wrote, conflicts, and any
    other error (repr)."""
    import time

    from rollsafe.errors import ConflictError
    from rollsafe.storage.store import revision_of

    done, conflicts, attempts = 0, 0, 0
    revisions: list[int] = []
    others: list[str] = []
    deadline = time.monotonic() + budget_seconds
    while done < times and attempts < 50 * times and time.monotonic() < deadline:
        attempts += 1
        try:
            app = store.get(App, key)
            time.sleep(think)
            app.counter += 1
            store.update(app)
        except ConflictError:
            conflicts += 1
            continue
        except Exception as exc:  # every failed attempt must be a ConflictError
            others.append(repr(exc))
            continue
        done += 1
        revisions.append(revision_of(app))
    return {"done": done, "conflicts": conflicts, "attempts": attempts,
            "revisions": revisions, "others": others}
