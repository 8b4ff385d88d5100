"""Objects in call arguments and results, at the versions receivers read.

On send, every object (at any depth of lists, tuples and dicts) becomes an
envelope downgraded to the receiver's manifest (name -> version), never
"upgraded": an entry newer than this code knows sends the current version.
On receive, envelopes are decoded strictly; one at a version this code does
not know is handed to a ``backporter`` (a newer peer that can downgrade it
to this side's manifest), once: a backport that comes back still too new is
an error, so two peers can never loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rollsafe.errors import PayloadVersionError
from rollsafe.objects.api import from_primitive, to_primitive
from rollsafe.objects.base import VersionedObject
from rollsafe.objects.registry import Registry
from rollsafe.rpc.transport import RpcError

__all__ = ["Backporter", "ObjectSerializer"]

#: Asks a newer peer to downgrade an envelope: (envelope, manifest) -> envelope.
Backporter = Callable[[dict[str, Any], dict[str, str]], dict[str, Any]]

_PLAIN = (str, int, float, bool, type(None))


class ObjectSerializer:
    """Serializes entities for one service (its ``registry``).

    ``target`` gives the manifest to send at (the receiver's pinned
    versions; None sends current versions). ``backporter`` is used when an
    object arrives at a version this registry does not know."""

    def __init__(self, registry: Registry, *,
                 target: Callable[[], dict[str, str] | None] | None = None,
                 backporter: Backporter | None = None) -> None:
        self.registry = registry
        self.target = target or (lambda: None)
        self.backporter = backporter

    @property
    def manifest(self) -> dict[str, str]:
        """What this service reads: its registry's manifest."""
        return self.registry.manifest()

    def serialize(self, value: Any, manifest: dict[str, str] | None = None) -> Any:
        """``value`` as plain data; objects as envelopes at ``manifest``
        (default: the target's)."""
        if manifest is None:
            manifest = self.target()
        return self._out(value, manifest)

    def _out(self, value: Any, manifest: dict[str, str] | None) -> Any:
        if isinstance(value, VersionedObject):
            return to_primitive(value, manifest=manifest)
        if isinstance(value, _PLAIN):
            return value
        if isinstance(value, list | tuple):
            return [self._out(item, manifest) for item in value]
        if isinstance(value, dict):
            if not all(isinstance(key, str) for key in value):
                raise RpcError("only str dict keys can be sent")
            return {key: self._out(item, manifest) for key, item in value.items()}
        raise RpcError(f"cannot send a {type(value).__name__}: send versioned objects or "
                       "plain data")

    def deserialize(self, value: Any) -> Any:
        """Plain data back, envelopes decoded (and backported when needed)."""
        if isinstance(value, list):
            return [self.deserialize(item) for item in value]
        if isinstance(value, dict):
            if isinstance(value.get(self.registry.key_name), str):
                return self._object(value)
            return {key: self.deserialize(item) for key, item in value.items()}
        return value

    def _object(self, envelope: dict[str, Any]) -> VersionedObject:
        try:
            return from_primitive(envelope, self.registry)
        except PayloadVersionError as exc:
            if self.backporter is None:
                raise
            backported = self.backporter(envelope, self.manifest)
            try:
                return from_primitive(backported, self.registry)
            except PayloadVersionError as again:
                raise RpcError(f"{exc.name}: the backport of {exc.version} came back at a "
                               f"version this service still cannot read ({again.version}); "
                               "no peer can serve this version") from None
