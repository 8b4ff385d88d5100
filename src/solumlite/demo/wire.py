"""A transport that notes the object versions it carries (for the report)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rollsafe.rpc.transport import Handler, Server, Transport

__all__ = ["WatchedTransport", "envelope_versions"]

_NAME, _VERSION = "versioned_object.name", "versioned_object.version"


def envelope_versions(value: Any, seen: Callable[[str, str], None]) -> None:
    """Call ``seen(name, version)`` for every object envelope in ``value``
    (at any depth, nested objects included)."""
    if isinstance(value, dict):
        name, version = value.get(_NAME), value.get(_VERSION)
        if isinstance(name, str) and isinstance(version, str):
            seen(name, version)
        for item in value.values():
            if isinstance(item, dict | list):
                envelope_versions(item, seen)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list):
                envelope_versions(item, seen)


class WatchedTransport(Transport):
    """``inner``, reporting to ``seen(name, version)`` each object envelope
    in the calls and casts sent through it and in their replies."""

    def __init__(self, inner: Transport, seen: Callable[[str, str], None]) -> None:
        self.inner = inner
        self.seen = seen

    def serve(self, topic: str, handler: Handler) -> Server:
        """Serve ``topic`` on the inner transport."""
        return self.inner.serve(topic, handler)

    def call(self, topic: str, message: dict[str, Any], *, timeout: float) -> Any:
        """Call through the inner transport, noting what goes and comes back."""
        envelope_versions(message, self.seen)
        reply = self.inner.call(topic, message, timeout=timeout)
        envelope_versions(reply, self.seen)
        return reply

    def cast(self, topic: str, message: dict[str, Any]) -> None:
        """Cast through the inner transport, noting what goes."""
        envelope_versions(message, self.seen)
        self.inner.cast(topic, message)

    def close(self) -> None:
        """Close the inner transport."""
        self.inner.close()
