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
"""

from __future__ import annotations

from typing import Any

from rollsafe.objects.api import to_primitive, what_changed
from rollsafe.objects.base import VersionedObject
from rollsafe.objects.registry import Registry
from rollsafe.objects.remote import _local
from rollsafe.rpc.serializer import ObjectSerializer
from rollsafe.rpc.transport import RemoteError, RpcError, Server, Transport

__all__ = ["Conductor", "RemoteIndirection"]

_OPS = ("object_action", "object_class_action", "object_backport")


class Conductor:
    """Runs remote methods of ``registry``'s classes for other services,
    on ``topic`` of ``transport``. :meth:`start` begins serving."""

    def __init__(self, transport: Transport, registry: Registry, *,
                 topic: str = "conductor") -> None:
        self.transport = transport
        self.registry = registry
        self.topic = topic
        self.serializer = ObjectSerializer(registry)
        self._server: Server | None = None

    def start(self) -> Conductor:
        """Serve the topic (idempotent); returns self."""
        if self._server is None:
            self._server = self.transport.serve(self.topic, self.handle)
        return self

    def stop(self) -> None:
        """Stop taking calls; calls in flight finish first."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def handle(self, message: dict[str, Any]) -> Any:
        """One request (as the transport delivers it) -> its reply."""
        op = message.get("op") if isinstance(message, dict) else None
        if op not in _OPS:
            raise RpcError(f"unknown operation {op!r}; expected one of {', '.join(_OPS)}")
        manifest = message.get("manifest")
        if not isinstance(manifest, dict):
            raise RpcError("the request carries no manifest of the caller's versions")
        token = _local.set(True)  # run here: never send a call on again
        try:
            if op == "object_backport":
                obj = self.serializer.deserialize(message.get("object"))
                if not isinstance(obj, VersionedObject):
                    raise RpcError("object_backport needs an object envelope")
                return to_primitive(obj, manifest=manifest)
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
        finally:
            _local.reset(token)

    @staticmethod
    def _check_remote(cls: type[VersionedObject], method: str, kind: str) -> None:
        # Only methods declared remotable may be run on request: a caller
        # must not be able to invoke any attribute of a class by name.
        marker = cls._rs_info.remotes.get(method)
        if marker is None or marker.kind != kind:
            raise RpcError(f"{cls.__name__}.{method} is not a remotable {kind} method")


class RemoteIndirection:
    """Sends a service's remote method calls to a conductor (set it as
    ``registry.indirection``). ``timeout`` bounds every call."""

    def __init__(self, transport: Transport, registry: Registry, *,
                 topic: str = "conductor", timeout: float = 30.0) -> None:
        self.transport = transport
        self.registry = registry
        self.topic = topic
        self.timeout = timeout
        self.serializer = ObjectSerializer(registry, backporter=self.backport)

    def _call(self, message: dict[str, Any]) -> Any:
        message["manifest"] = self.serializer.manifest
        return self.transport.call(self.topic, message, timeout=self.timeout)

    def object_action(self, obj: Any, method: str, args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> Any:
        """Run ``obj.method(*args, **kwargs)`` on the conductor; apply the
        object's new state and changes to ``obj``; return the result."""
        reply = self._call({
            "op": "object_action", "object": self.serializer.serialize(obj),
            "method": method, "args": self.serializer.serialize(list(args)),
            "kwargs": self.serializer.serialize(kwargs)})
        if not isinstance(reply, dict) or "object" not in reply:
            raise RpcError("malformed object_action reply")
        updated = self.serializer.deserialize(reply["object"])
        if type(updated) is not type(obj):
            raise RpcError(f"object_action returned a {type(updated).__name__}, "
                           f"not a {type(obj).__name__}")
        _take_state(obj, updated)
        return self.serializer.deserialize(reply.get("result"))

    def object_class_action(self, cls: type, method: str, args: tuple[Any, ...],
                            kwargs: dict[str, Any]) -> Any:
        """Run ``cls.method(*args, **kwargs)`` on the conductor."""
        reply = self._call({
            "op": "object_class_action", "class": cls.__name__, "method": method,
            "args": self.serializer.serialize(list(args)),
            "kwargs": self.serializer.serialize(kwargs)})
        if not isinstance(reply, dict) or "result" not in reply:
            raise RpcError("malformed object_class_action reply")
        return self.serializer.deserialize(reply["result"])

    def backport(self, envelope: dict[str, Any], manifest: dict[str, str]) -> dict[str, Any]:
        """Ask the conductor to downgrade ``envelope`` to ``manifest``."""
        try:
            reply = self.transport.call(
                self.topic, {"op": "object_backport", "object": envelope,
                             "manifest": manifest}, timeout=self.timeout)
        except RemoteError as exc:
            raise RpcError(f"the conductor cannot backport this object either: "
                           f"{exc.remote_message}") from None
        if not isinstance(reply, dict):
            raise RpcError("malformed backport reply")
        return reply


def _take_state(target: VersionedObject, source: VersionedObject) -> None:
    """Give ``target`` the field values and changed fields of ``source``."""
    changed = what_changed(source)
    for name in type(target)._rs_info.fields:
        object.__setattr__(target, f"_v_{name}", getattr(source, name))
    target._rs_changed = set(changed)
    target._rs_baseline = target._rs_snapshot()
