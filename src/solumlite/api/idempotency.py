"""Idempotency keys: a write sent again runs once.

A client that loses the answer to a write (the API instance it talked to
was killed, the connection broke) cannot know whether the write happened.
It sends the same request again with the same ``Idempotency-Key`` header,
and the API answers with what the first request did instead of doing it
twice: the app created once, the workflow started once.

The key becomes the request id of the flow's call (scoped by project,
method and path, so two projects or two routes never share one):

- in front of a conductor, the flow's remote call carries that id
  (:func:`rollsafe.rpc.same_request_id`), and the conductor, which records
  every request id with its reply in the unit of work of the call, returns
  the recorded reply to a repeat, whichever API instance sends it;
- embedded (the release bound to a store here), the API records the
  response itself, in the same unit of work as the flow's writes
  (:class:`rollsafe.rpc.RequestLog`).

A repeat gets the first request's answer even if its body differs: the key
names one request. Records are kept for ``ttl`` seconds (a conductor's own
``request_ttl``, an hour by default, in front of one); a key sent again
later runs again. Without the header a write runs each time it is sent.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, TypeVar

from fastapi import Header
from pydantic import BaseModel

from rollsafe.rpc import RemoteIndirection, same_request_id
from rollsafe.rpc.requests import RequestLog, purge_requests
from solumlite.domain import utcnow
from solumlite.release import Release

__all__ = ["HEADER", "IdempotencyKey", "Idempotent", "request_id"]

#: The request header a client names a write with.
HEADER = "Idempotency-Key"

#: One to 255 visible ASCII characters (a uuid4 is a good choice).
KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"

#: A route parameter: the request's idempotency key, if it sent one.
IdempotencyKey = Annotated[str | None, Header(
    alias=HEADER, pattern=KEY_PATTERN,
    description="Names this write: sent again with the same key (after a lost answer, "
                "say), it is not done twice and the first answer comes back. 1 to 255 "
                "visible ASCII characters; a uuid4 is a good choice.")]

# Fixed: the request ids made from keys must be the same in every process.
_NAMESPACE = uuid.UUID("9d5c1f0e-4c55-4f43-9a7e-2b1f8e0a6c31")

M = TypeVar("M", bound=BaseModel)


def request_id(project: str, method: str, path: str, key: str) -> str:
    """The request id a write named ``key`` runs under: the same for every
    repeat, different for another project, method or path."""
    return uuid.uuid5(_NAMESPACE, "\n".join((project, method.upper(), path, key))).hex


class Idempotent:
    """Runs the writes of ``release``'s API once per idempotency key
    (see the module documentation). ``ttl``: seconds an embedded API keeps
    a key's answer."""

    #: Recorded answers between two purges of the expired ones (embedded).
    PURGE_EVERY = 1000

    def __init__(self, release: Release, *, ttl: float = 3600.0) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be a positive number of seconds")
        self.release = release
        self.ttl = ttl
        self._lock = threading.Lock()
        self._recorded = 0

    def run(self, key: str | None, *, project: str, method: str, path: str,
            write: Callable[[], M], model: type[M]) -> M:
        """``write()``'s answer; with ``key``, run at most once for that key
        (a repeat gets the first answer back)."""
        answer = self._once(key, project, method, path, write,
                            lambda out: out.model_dump(mode="json"))
        return answer if isinstance(answer, model) else model.model_validate(answer)

    def run_plain(self, key: str | None, *, project: str, method: str, path: str,
                  write: Callable[[], object]) -> None:
        """As :meth:`run`, for a write whose answer is empty (a delete)."""
        self._once(key, project, method, path, write, lambda out: None)

    def _once(self, key: str | None, project: str, method: str, path: str,
              write: Callable[[], Any], plain: Callable[[Any], Any]) -> Any:
        if key is None:
            return write()
        rid = request_id(project, method, path, key)
        if isinstance(self.release.registry.indirection, RemoteIndirection):
            with same_request_id(rid):  # the conductor records the reply
                return write()
        answer = RequestLog(self.release.store, clock=utcnow).run(rid, lambda: plain(write()))
        self._count_recorded()
        return answer

    def _count_recorded(self) -> None:
        with self._lock:
            self._recorded += 1
            due = self._recorded % self.PURGE_EVERY == 0
        if due:
            purge_requests(self.release.store,
                           before=utcnow() - timedelta(seconds=self.ttl))

