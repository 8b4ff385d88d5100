"""The conductor and the indirection that reaches it.

A service without store access sets ``registry.indirection`` to a
:class:`RemoteIndirection`; its ``@remotable`` methods then run on a
:class:`Conductor` (the service that owns the store), and come back:

- an instance call returns the method's result and the object as the
  conductor left it, at the caller's versions; the caller's copy takes its
  field values and its changed fields (as oslo.versionedobjects'
  ``object_action`` does);
- a class call returns its result at the caller's versions (the caller's
  manifest travels with the call);
- a backport request downgrades an object the caller received at a version
  it does not know.

Each call carries a request id; the indirection sends it again, same id, when
an attempt fails in a way a retry may get past (:class:`RetryPolicy`), and a
conductor given a store runs each id at most once (see
:mod:`rollsafe.rpc.requests`).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rollsafe.objects.api import to_primitive, what_changed
from rollsafe.objects.base import VersionedObject
from rollsafe.objects.registry import Registry
from rollsafe.objects.remote import _local
from rollsafe.rpc.requests import MAX_REQUEST_ID, RequestLog, next_request_id, purge_requests
from rollsafe.rpc.serializer import ObjectSerializer
from rollsafe.rpc.transport import (
    RemoteError,
    RetryableRpcError,
    RpcError,
    Server,
    Transport,
)
from rollsafe.storage.store import Store

__all__ = ["Conductor", "RemoteIndirection", "RetryPolicy"]

_OPS = ("object_action", "object_class_action", "object_backport")

_LOG = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Conductor:
    """Runs remote methods of ``registry``'s classes for other services,
    on ``topic`` of ``transport``. :meth:`start` begins serving.

    With a ``store`` (which must also hold :data:`~rollsafe.rpc.RPC_REQUESTS`),
    each call runs in one unit of work of it, exposed to the method by
    :func:`~rollsafe.rpc.current_unit`, that also records the call's request
    id and reply: a request id seen before gets its recorded reply, and the
    method does not run again (exactly once for what it writes through that
    unit). A unit that loses a race runs again, up to ``attempts`` times.
    Records older than ``request_ttl`` seconds are purged every
    ``purge_interval`` seconds by a thread of the conductor (None: call
    :meth:`purge_requests` yourself). ``clock`` returns the aware current
    time. Without a store, a call is run each time it arrives (at least
    once)."""

    def __init__(self, transport: Transport, registry: Registry, *,
                 topic: str = "conductor", store: Store | None = None,
                 request_ttl: float = 3600.0, purge_interval: float | None = 60.0,
                 attempts: int = 5, clock: Callable[[], datetime] = _utcnow) -> None:
        if request_ttl <= 0:
            raise ValueError("request_ttl must be a positive number of seconds")
        if purge_interval is not None and purge_interval <= 0:
            raise ValueError("purge_interval must be a positive number of seconds, or None")
        self.transport = transport
        self.registry = registry
        self.topic = topic
        self.store = store
        self.request_ttl = float(request_ttl)
        self.purge_interval = purge_interval
        self.clock = clock
        self.serializer = ObjectSerializer(registry)
        self._log = None if store is None else RequestLog(store, clock=clock,
                                                          attempts=attempts)
        self._server: Server | None = None
        self._purger: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> Conductor:
        """Serve the topic, and start purging old request records
        (idempotent); returns self."""
        if self._server is None:
            self._server = self.transport.serve(self.topic, self.handle)
        if self._log is not None and self.purge_interval is not None and self._purger is None:
            self._stopping.clear()
            self._purger = threading.Thread(target=self._purge_loop, daemon=True,
                                            name=f"rpc-purge-{self.topic}")
            self._purger.start()
        return self

    def stop(self) -> None:
        """Stop taking calls; calls in flight finish first."""
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._purger is not None:
            self._stopping.set()
            self._purger.join()
            self._purger = None

    def purge_requests(self, *, batch: int = 1000) -> int:
        """Delete the request records older than ``request_ttl``, ``batch``
        per transaction; returns how many. Nothing to do without a store."""
        if self.store is None:
            return 0
        cutoff = self.clock() - timedelta(seconds=self.request_ttl)
        return purge_requests(self.store, before=cutoff, batch=batch)

    def _purge_loop(self) -> None:
        assert self.purge_interval is not None
        while not self._stopping.wait(self.purge_interval):
            try:
                self.purge_requests()
            except Exception:  # a store hiccup: the next round tries again
                _LOG.warning("cannot purge old rpc request records", exc_info=True)

    def handle(self, message: dict[str, Any]) -> Any:
        """One request (as the transport delivers it) -> its reply."""
        op = message.get("op") if isinstance(message, dict) else None
        if op not in _OPS:
            raise RpcError(f"unknown operation {op!r}; expected one of {', '.join(_OPS)}")
        manifest = message.get("manifest")
        if not isinstance(manifest, dict):
            raise RpcError("the request carries no manifest of the caller's versions")
        request_id = message.get("request_id")
        if request_id is not None and (not isinstance(request_id, str)
                                       or not 1 <= len(request_id) <= MAX_REQUEST_ID):
            raise RpcError(f"a request id is a string of 1 to {MAX_REQUEST_ID} characters")
        token = _local.set(True)  # run here: never send a call on again
        try:
            if op == "object_backport":  # changes nothing: no unit, no record
                obj = self.serializer.deserialize(message.get("object"))
                if not isinstance(obj, VersionedObject):
                    raise RpcError("object_backport needs an object envelope")
                return to_primitive(obj, manifest=manifest)
            if self._log is None:
                return self._run(op, message, manifest)
            return self._log.run(request_id, lambda: self._run(op, message, manifest))
        finally:
            _local.reset(token)

    def _run(self, op: str, message: dict[str, Any], manifest: dict[str, str]) -> Any:
        """Run one object_action or object_class_action. Decodes the request
        itself, so each run (a unit run again after a conflict) starts from
        the objects as they were sent."""
        args = self.serializer.deserialize(message.get("args") or [])
        kwargs = self.serializer.deserialize(message.get("kwargs") or {})
        method = message.get("method")
        if not isinstance(method, str):
            raise RpcError("the request names no method")
        if op == "object_action":
            obj = self.serializer.deserialize(message.get("object"))
            if not isinstance(obj, VersionedObject):
                raise RpcError("object_action needs an object envelope")
            self._check_remote(type(obj), method, "instance")
            result = getattr(obj, method)(*args, **kwargs)
            return {"object": to_primitive(obj, manifest=manifest),
                    "result": self.serializer.serialize(result, manifest)}
        name = message.get("class")
        cls = self.registry.get(name) if isinstance(name, str) else None
        if cls is None:
            raise RpcError("object_class_action names no class")
        self._check_remote(cls, method, "class")
        result = getattr(cls, method)(*args, **kwargs)
        return {"result": self.serializer.serialize(result, manifest)}

    @staticmethod
    def _check_remote(cls: type[VersionedObject], method: str, kind: str) -> None:
        # Only methods declared remotable may be run on request: a caller
        # must not be able to invoke any attribute of a class by name.
        marker = cls._rs_info.remotes.get(method)
        if marker is None or marker.kind != kind:
            raise RpcError(f"{cls.__name__}.{method} is not a remotable {kind} method")


@dataclass(frozen=True)
class RetryPolicy:
    """How :class:`RemoteIndirection` retries a call that failed in a way a
    later attempt may get past (no reply in time, nothing serving the topic,
    a conflict or a briefly unreachable store at the conductor). Every
    attempt carries the same request id.

    ``attempts`` in all (1: no retry); before attempt *n* + 1 it waits
    ``backoff * 2 ** (n - 1)`` seconds, at most ``max_backoff``, shortened
    at random by up to half (so callers that failed together do not all come
    back together)."""

    attempts: int = 3
    backoff: float = 0.1
    max_backoff: float = 2.0

    def __post_init__(self) -> None:
        if type(self.attempts) is not int or self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be an int of at least 1")
        if self.backoff < 0 or self.max_backoff < 0:
            raise ValueError("RetryPolicy.backoff and max_backoff cannot be negative")

    def delay(self, failed: int) -> float:
        """Seconds to wait after ``failed`` failed attempts."""
        full = min(self.backoff * 2.0 ** (failed - 1), self.max_backoff)
        return full * random.uniform(0.5, 1.0)


class RemoteIndirection:
    """Sends a service's remote method calls to a conductor (set it as
    ``registry.indirection``). ``timeout`` bounds every attempt; ``retry``
    says how often a retryable failure is tried again (with the same request
    id). When every attempt failed that way, the call raises
    :class:`~rollsafe.rpc.RetryableRpcError`; other failures are raised as
    they come (a :class:`~rollsafe.rpc.RemoteError` the method raised, say)."""

    def __init__(self, transport: Transport, registry: Registry, *,
                 topic: str = "conductor", timeout: float = 30.0,
                 retry: RetryPolicy | None = None) -> None:
        self.transport = transport
        self.registry = registry
        self.topic = topic
        self.timeout = timeout
        self.retry = RetryPolicy() if retry is None else retry
        self.serializer = ObjectSerializer(registry, backporter=self.backport)

    def _send(self, what: str, message: dict[str, Any], request_id: str | None) -> Any:
        """``message``'s reply, sent up to ``retry.attempts`` times."""
        if request_id is not None:
            message["request_id"] = request_id
        attempts = self.retry.attempts
        for attempt in range(1, attempts + 1):
            try:
                return self.transport.call(self.topic, message, timeout=self.timeout)
            except RpcError as exc:
                if not exc.retryable:
                    raise
                if attempt == attempts:
                    raise RetryableRpcError(what, request_id, attempts, exc) from exc
                _LOG.debug("%s: attempt %d failed (%s), retrying", what, attempt, exc)
            time.sleep(self.retry.delay(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def _call(self, what: str, message: dict[str, Any]) -> Any:
        message["manifest"] = self.serializer.manifest
        request_id = next_request_id()
        return self._send(f"remote call {what} (request {request_id})", message, request_id)

    def object_action(self, obj: Any, method: str, args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> Any:
        """Run ``obj.method(*args, **kwargs)`` on the conductor; apply the
        object's new state and changes to ``obj``; return the result."""
        sent = self.serializer.serialize(obj)
        reply = self._call(f"{type(obj).__name__}.{method}", {
            "op": "object_action", "object": sent,
            "method": method, "args": self.serializer.serialize(list(args)),
            "kwargs": self.serializer.serialize(kwargs)})
        if not isinstance(reply, dict) or "object" not in reply:
            raise RpcError("malformed object_action reply")
        updated = self.serializer.deserialize(reply["object"])
        if type(updated) is not type(obj):
            raise RpcError(f"object_action returned a {type(updated).__name__}, "
                           f"not a {type(obj).__name__}")
        # What the conductor saw, read back here: a field equal in it and in
        # the reply was left alone, so ours is kept (an older conductor
        # reads the object without the fields it does not know).
        _take_changes(obj, self.serializer.deserialize(sent), updated)
        return self.serializer.deserialize(reply.get("result"))

    def object_class_action(self, cls: type, method: str, args: tuple[Any, ...],
                            kwargs: dict[str, Any]) -> Any:
        """Run ``cls.method(*args, **kwargs)`` on the conductor."""
        reply = self._call(f"{cls.__name__}.{method}", {
            "op": "object_class_action", "class": cls.__name__, "method": method,
            "args": self.serializer.serialize(list(args)),
            "kwargs": self.serializer.serialize(kwargs)})
        if not isinstance(reply, dict) or "result" not in reply:
            raise RpcError("malformed object_class_action reply")
        return self.serializer.deserialize(reply["result"])

    def backport(self, envelope: dict[str, Any], manifest: dict[str, str]) -> dict[str, Any]:
        """Ask the conductor to downgrade ``envelope`` to ``manifest``."""
        reg = self.registry
        what = (f"backport of {envelope.get(reg.key_name)} {envelope.get(reg.key_version)} "
                f"by {self.topic!r}")
        try:
            reply = self._send(what, {"op": "object_backport", "object": envelope,
                                      "manifest": manifest}, None)
        except RemoteError as exc:
            raise RpcError(f"the conductor cannot backport this object either: "
                           f"{exc.remote_message}") from None
        if not isinstance(reply, dict):
            raise RpcError("malformed backport reply")
        return reply


def _take_changes(target: VersionedObject, sent: VersionedObject,
                  reply: VersionedObject) -> None:
    """Give ``target`` what the conductor changed: each field whose value in
    ``reply`` differs from ``sent`` (the object as the conductor received
    it), merged field by field inside nested objects, and the reply's
    changed fields. Fields the conductor left alone keep ``target``'s
    values, so an older conductor does not reset the fields it cannot see."""
    for name in type(target)._rs_info.fields:
        before, after = getattr(sent, name), getattr(reply, name)
        if before == after:
            continue
        mine = getattr(target, name)
        if (isinstance(after, VersionedObject) and type(mine) is type(after)
                and type(before) is type(after)):
            _take_changes(mine, before, after)
        else:
            object.__setattr__(target, f"_v_{name}", after)
    target._rs_changed = set(what_changed(reply))
    target._rs_baseline = target._rs_snapshot()
