"""The backend port: what a store needs from a database, and nothing more.

Backends move **records**: the primitive data of one object at one version
(exactly the ``.data`` of its envelope), with the key, the project, the
version and a revision counter. Converting between objects and records, and
choosing the version to write, is the store's job; so a backend never sees
an object and never converts between versions.

A backend implements :class:`Backend` (set-up, transactions) and
:class:`Transaction` (five operations). Everything a transaction does is
all-or-nothing: committed when the ``with`` block ends normally, discarded
when it raises.
"""

from __future__ import annotations

import base64
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

from rollsafe.errors import DecodeError, PayloadVersionError, StorageError
from rollsafe.objects.history import parse_version

if TYPE_CHECKING:
    from rollsafe.storage.collection import Collection

__all__ = [
    "Backend",
    "Page",
    "Query",
    "Record",
    "Transaction",
    "Update",
    "decode_cursor",
    "encode_cursor",
    "unreadable_version",
]

T = TypeVar("T")


@dataclass(slots=True)
class Record:
    """One stored object: primitive ``data`` at ``version``."""

    key: Any
    project: Any
    version: str
    revision: int
    data: dict[str, Any]


class Update(NamedTuple):
    """One record update of :meth:`Transaction.update_many` (the arguments
    of :meth:`Transaction.update`)."""

    key: Any
    project: Any
    expected_revision: int
    version: str
    values: dict[str, Any]
    full: bool


@dataclass(slots=True)
class Query:
    """What to list: equality filters on scalar fields (current names, as
    primitives), one field to order by (then the key), a page size and the
    keyset position to start after."""

    project: Any = None
    where: dict[str, Any] = field(default_factory=dict)
    order_by: str | None = None
    descending: bool = False
    limit: int = 100
    after: tuple[Any, Any] | None = None


@dataclass(slots=True)
class Page(Generic[T]):
    """One page of a listing and the cursor of the next (None at the end)."""

    items: list[T]
    next_cursor: str | None


def encode_cursor(position: tuple[Any, Any]) -> str:
    """An opaque, URL-safe cursor for a keyset position."""
    raw = json.dumps(list(position), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[Any, Any]:
    """The keyset position in a cursor; :class:`DecodeError` if malformed."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (ValueError, TypeError):
        raise DecodeError("cursor", "malformed pagination cursor") from None
    if not isinstance(value, list) or len(value) != 2:
        raise DecodeError("cursor", "malformed pagination cursor")
    return value[0], value[1]


class Transaction(ABC):
    """Operations inside one all-or-nothing unit of work."""

    @abstractmethod
    def get(self, collection: Collection, key: Any, project: Any) -> Record | None:
        """The record with ``key`` (in ``project`` when not None), or None."""

    @abstractmethod
    def insert(self, collection: Collection, record: Record) -> None:
        """Store a new record at revision 1; :class:`ConflictError` if the
        key exists (in any project)."""

    @abstractmethod
    def update(self, collection: Collection, key: Any, project: Any, expected_revision: int,
               version: str, values: dict[str, Any], full: bool) -> int:
        """Write ``values`` (primitive data of fields at ``version``; all of
        them when ``full``) if the stored revision is ``expected_revision``;
        return the new revision. :class:`ConflictError` when stale,
        :class:`NotFoundError` when absent. Fields not in ``values`` keep
        their stored values."""

    def update_many(self, collection: Collection, updates: Sequence[Update]) -> None:
        """Apply every update (as :meth:`update` does, each to revision
        ``expected_revision + 1``), in as few round trips as the backend
        can. Raises :class:`ConflictError` (or :class:`NotFoundError`) if any
        of them cannot be applied; the others may have been, so the caller
        must then discard the whole transaction. This default applies them
        one by one."""
        for u in updates:
            self.update(collection, u.key, u.project, u.expected_revision, u.version,
                        u.values, u.full)

    @abstractmethod
    def delete(self, collection: Collection, key: Any, project: Any,
               expected_revision: int | None) -> None:
        """Remove a record; :class:`NotFoundError` if absent,
        :class:`ConflictError` if ``expected_revision`` is stale."""

    @abstractmethod
    def query(self, collection: Collection, query: Query) -> list[Record]:
        """Up to ``query.limit`` records matching, in keyset order."""

    def count_versions(self, collection: Collection, project: Any) -> dict[str, int] | None:
        """How many records (in ``project`` when not None) are stored at each
        version, counted by the database without reading them; raises as
        :meth:`query` does for a record this code cannot read. None (this
        default): the backend cannot count without reading every record, so
        the caller walks them a page at a time."""
        return None


class Backend(ABC):
    """A database a store runs on."""

    #: Short name, as in the URL scheme.
    name = "?"

    @abstractmethod
    def ensure_schema(self, collections: Sequence[Collection]) -> None:
        """Create what the collections need if it is missing (tables,
        indexes). Idempotent."""

    @abstractmethod
    def transaction(self, *, readonly: bool = False) -> AbstractContextManager[Transaction]:
        """A unit of work: committed at the end of the ``with`` block,
        discarded if it raises. Connection failures raise
        :class:`RetryableStorageError`. ``readonly`` promises no writes, so
        a backend may avoid taking write locks."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    def drop_all(self, collections: Sequence[Collection]) -> None:
        """Remove everything stored for the collections (tests, demos)."""
        raise NotImplementedError


def iterate_pages(fetch: Any, query: Query) -> Iterator[Record]:
    """Records of every page of ``query``, fetched a page at a time (keyset
    pagination, so memory stays bounded by the page size)."""
    while True:
        page = fetch(query)
        yield from page
        if len(page) < query.limit:
            return
        last = page[-1]
        after = (None if query.order_by is None else last.data[query.order_by], last.key)
        if after == query.after:  # a backend that does not advance must not loop forever
            raise StorageError("keyset pagination did not advance; the backend returned the "
                               "same page twice")
        query.after = after


def unreadable_version(collection: Collection, key: Any, version: Any,
                       oldest: str | None = None) -> StorageError | PayloadVersionError:
    """The error for a stored record at a version this code cannot read:
    :class:`PayloadVersionError` when a newer release wrote it (the error a
    newer payload gets on the wire), :class:`StorageError` when it is older
    than the collection still reads (``oldest``) or not a version at all."""
    info = collection.cls._rs_info
    try:
        newer = parse_version(version) > info.current.key
    except ValueError:
        newer = False
    name = collection.object_name
    if newer:
        return PayloadVersionError(
            f"{name}[{key!r}]",
            f"stored at version {version}, newer than this code reads (newest "
            f"{info.current.number}); pin the writers to {info.current.number} while this "
            "release runs, or upgrade this service",
            name=name, version=str(version), known=info.current.number)
    if oldest is not None:
        return StorageError(f"{name} record {key!r} is at version {version}, which this store "
                            f"no longer reads (oldest stored: {oldest}); migrate it first")
    return StorageError(f"{name} record {key!r} is at version {version!r}, which this code "
                        "does not know")
