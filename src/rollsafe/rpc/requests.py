"""Request ids, and what a conductor remembers of them: exactly-once calls.

Every remote call carries a **request id**, made once per call by
:class:`~rollsafe.rpc.RemoteIndirection` and kept by every retry of it. A
conductor given a store runs each call inside one unit of work
(:meth:`Store.run <rollsafe.storage.Store.run>`), and in that same unit
records the request id with the reply (an :class:`RpcRequest`). A request id
it has recorded gets the recorded reply back, without running the method
again. So a call whose reply was lost (the conductor killed after the
commit, a timeout, a broker hiccup) can be sent again safely.

The guarantee covers what the method writes **through the call's unit**:
:func:`current_unit` inside a remote method, or :func:`joined_unit` (which
also works when the method runs locally). Those writes and the request
record commit together or not at all, so they are applied exactly once.
Anything else a method does (writes through another unit, messages sent,
files written) may happen again on a retry: it is at-least-once.

Request records are kept for ``request_ttl`` seconds (see
:class:`~rollsafe.rpc.Conductor`), then purged in batches: a retry must come
within that time to be recognised.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NamedTuple

from rollsafe.errors import DefinitionError, NotFoundError
from rollsafe.objects.base import VersionedObject
from rollsafe.objects.registry import Registry
from rollsafe.rpc.transport import RpcError
from rollsafe.storage.collection import Collection
from rollsafe.storage.store import Store, UnitOfWork

__all__ = ["REGISTRY", "RPC_REQUESTS", "RequestLog", "RpcRequest", "current_unit",
           "joined_unit", "next_request_id", "purge_requests", "same_request_id"]

#: The registry of the request records.
REGISTRY = Registry("rollsafe_rpc")

#: Longest request id a conductor accepts (a uuid4 hex is 32 characters).
MAX_REQUEST_ID = 64


class RpcRequest(VersionedObject, registry=REGISTRY):
    """A remote call a conductor ran and committed, with its reply."""

    #: The request id every attempt of the call carried.
    id: str
    #: The reply sent back, as JSON text (sent again to a repeated request).
    reply: str
    #: When the call committed (UTC): records expire by age.
    created_at: datetime


#: The collection of request records; add it to a conductor's store.
RPC_REQUESTS = Collection(RpcRequest, key="id", indexes=["created_at"], name="rpc_requests")


# -- the caller's side: request ids -------------------------------------------

# A one-element list: the id the next remote call sends (taken by that call).
_next_id: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "rollsafe_next_request_id", default=None)


@contextmanager
def same_request_id(request_id: str) -> Iterator[None]:
    """Send the next remote call made in this block with ``request_id``
    (typically ``RetryableRpcError.request_id``), instead of a new one: a
    conductor that already ran that request returns its recorded reply.
    Only the next call takes it; later calls in the block get new ids."""
    if not isinstance(request_id, str) or not 1 <= len(request_id) <= MAX_REQUEST_ID:
        raise ValueError(f"a request id is a string of 1 to {MAX_REQUEST_ID} characters")
    token = _next_id.set([request_id])
    try:
        yield
    finally:
        _next_id.reset(token)


def next_request_id() -> str:
    """The id of a new remote call: the one :func:`same_request_id` holds,
    if any (and it is used up), else a new random uuid4 hex."""
    held = _next_id.get()
    if held:
        return held.pop()
    import uuid

    return uuid.uuid4().hex


# -- the conductor's side: the call's unit of work -----------------------------


#: What :func:`_recorded` returns for a request id with no record (a reply
#: may be any plain value, None included).
_NOT_RECORDED = object()


class _CallUnit(NamedTuple):
    store: Store
    unit: UnitOfWork


_call_unit: contextvars.ContextVar[_CallUnit | None] = contextvars.ContextVar(
    "rollsafe_call_unit", default=None)


def current_unit() -> UnitOfWork:
    """The unit of work of the remote call this conductor thread runs.
    Writes through it commit with the call's request record: exactly once.
    :class:`RpcError` outside such a call."""
    found = _call_unit.get()
    if found is None:
        raise RpcError("no remote call is running here with a store: current_unit() works in "
                       "remotable methods a Conductor(store=...) runs; use joined_unit(store) "
                       "in methods that may also run locally")
    return found.unit


@contextmanager
def joined_unit(store: Store) -> Iterator[UnitOfWork]:
    """A unit of work on ``store``: the running remote call's, when a
    conductor runs the call with this same store (it commits with the call,
    exactly once), else a unit of its own that commits when the block ends.
    Lets one method body be right whether it runs locally or remotely."""
    found = _call_unit.get()
    if found is not None and found.store is store:
        yield found.unit
        return
    with store.unit_of_work() as unit:
        yield unit


class RequestLog:
    """Runs calls exactly once against ``store`` (which must hold
    :data:`RPC_REQUESTS`, or another collection of :class:`RpcRequest`).

    ``clock`` gives the records' timestamps (aware UTC); ``attempts`` is how
    many times :meth:`run` runs a call whose unit lost a race or met a
    briefly unreachable store before letting the error through."""

    def __init__(self, store: Store, *, clock: Callable[[], datetime],
                 attempts: int = 5) -> None:
        try:
            store.collection(RpcRequest)
        except DefinitionError:  # now, not at the first call
            raise DefinitionError(
                "a conductor's store records the requests it ran: add "
                "rollsafe.rpc.RPC_REQUESTS to its collections (and create its table with "
                "ensure_schema)") from None
        self.store = store
        self.clock = clock
        self.attempts = attempts

    def run(self, request_id: str | None, call: Callable[[], Any]) -> Any:
        """``call()``'s reply, run in one unit of work (exposed by
        :func:`current_unit`) that also records ``request_id`` with the reply;
        or the reply recorded for ``request_id`` if it was recorded before (no
        run). ``None``: nothing is recorded, the call runs in its unit."""
        import orjson

        def flow(unit: UnitOfWork) -> Any:
            if request_id is not None:
                recorded = _recorded(unit, request_id)
                if recorded is not _NOT_RECORDED:
                    return recorded
            token = _call_unit.set(_CallUnit(self.store, unit))
            try:
                reply = call()
            finally:
                _call_unit.reset(token)
            if request_id is not None:
                try:
                    text = orjson.dumps(reply).decode()
                except TypeError as exc:
                    raise RpcError(f"the reply is not plain data: {exc}") from None
                # A duplicate running alongside commits first? Then this
                # create conflicts, the unit is rolled back with the method's
                # writes, and the retry of the flow replays the first reply.
                unit.create(RpcRequest(id=request_id, reply=text, created_at=self.clock()))
            return reply

        try:
            return self.store.run(flow, attempts=self.attempts)
        except Exception:
            # A duplicate that committed while this run failed in its own
            # way (the method found its work already done, say) wins: reply
            # what it recorded, as if this run had been a replay.
            if request_id is not None:
                with self.store.unit_of_work(readonly=True) as unit:
                    recorded = _recorded(unit, request_id)
                if recorded is not _NOT_RECORDED:
                    return recorded
            raise


def _recorded(unit: UnitOfWork, request_id: str) -> Any:
    """The reply recorded for ``request_id`` in ``unit``'s view, or
    :data:`_NOT_RECORDED`."""
    import orjson

    try:
        record = unit.get(RpcRequest, request_id)
    except NotFoundError:
        return _NOT_RECORDED
    return orjson.loads(record.reply)


def purge_requests(store: Store, *, before: datetime, batch: int = 1000) -> int:
    """Delete the request records created before ``before``, oldest first,
    ``batch`` per unit of work (so no transaction grows with the table);
    returns how many were deleted."""
    if type(batch) is not int or not 1 <= batch <= 10_000:
        raise ValueError("batch must be an int from 1 to 10000")
    deleted = 0
    while True:
        with store.unit_of_work() as unit:
            page = unit.query(RpcRequest, order_by="created_at", limit=batch)
            expired = [record for record in page.items if record.created_at < before]
            for record in expired:
                unit.delete(record)
        deleted += len(expired)
        if len(expired) < batch:
            return deleted
