"""Registries: the object classes one namespace knows, explicitly held.

There is no process-global registry. A service builds its own::

    reg = Registry("solum")
    class App(VersionedObject, registry=reg): ...

Two registries of the same namespace may live in one process (release N and
release N+1 of a service, side by side), and one registry may hold several
classes of the same name at different versions.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from rollsafe.errors import DefinitionError, UnknownObjectError
from rollsafe.objects.history import parse_version

if TYPE_CHECKING:
    from rollsafe.objects.base import VersionedObject
    from rollsafe.objects.remote import Indirection

__all__ = ["Registry"]

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,99}")


class Registry:
    """The object classes of one namespace.

    ``namespace`` is sent as ``<prefix>.namespace`` in every envelope and
    checked on receipt. ``prefix`` is the envelope key prefix; the default,
    ``"versioned_object"``, is the one oslo.versionedobjects uses, so that
    payloads cross between the two."""

    def __init__(self, namespace: str, *, prefix: str = "versioned_object") -> None:
        for label, value in (("namespace", namespace), ("prefix", prefix)):
            if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
                raise DefinitionError(f"registry {label} must be a short identifier, "
                                      f"got {value!r}")
        self.namespace = namespace
        self.prefix = prefix
        #: Where remote method calls go; None runs them in this process.
        self.indirection: Indirection | None = None
        self.key_name = f"{prefix}.name"
        self.key_namespace = f"{prefix}.namespace"
        self.key_version = f"{prefix}.version"
        self.key_data = f"{prefix}.data"
        self.key_changes = f"{prefix}.changes"
        self.envelope_keys = frozenset(
            (self.key_name, self.key_namespace, self.key_version, self.key_data,
             self.key_changes))
        # name -> {(major, minor): class}; newest is max key.
        self._classes: dict[str, dict[tuple[int, int], type[VersionedObject]]] = {}

    def register(self, cls: type[VersionedObject]) -> type[VersionedObject]:
        """Add ``cls``; done for you when a class names this registry."""
        info = cls._rs_info
        key = parse_version(info.history.current)
        versions = self._classes.setdefault(info.name, {})
        if key in versions and versions[key] is not cls:
            raise DefinitionError(
                f"{self.namespace} already has {info.name} {info.history.current} "
                f"({versions[key].__module__}.{versions[key].__qualname__}); "
                "bump the version or use another registry")
        versions[key] = cls
        return cls

    def get(self, name: str, version: str | None = None) -> type[VersionedObject]:
        """The class registered as ``name``: the newest, or the one whose
        current version is ``version`` (patch level ignored). Raises
        :class:`UnknownObjectError`, never returns None."""
        versions = self._classes.get(name)
        if not versions:
            raise UnknownObjectError(f"{self.namespace} has no object named {name!r}; known: "
                                     f"{', '.join(sorted(self._classes)) or 'none'}")
        if version is None:
            return versions[max(versions)]
        try:
            key = parse_version(version)
        except ValueError as exc:
            raise UnknownObjectError(f"{name}: {exc}") from None
        if key not in versions:
            known = ", ".join(f"{a}.{b}" for a, b in sorted(versions))
            raise UnknownObjectError(f"{self.namespace} has no {name} at version {version}; "
                                     f"registered versions: {known}")
        return versions[key]

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def names(self) -> list[str]:
        """Every registered object name, sorted."""
        return sorted(self._classes)

    def classes(self) -> list[type[VersionedObject]]:
        """Every registered class (all versions), by name then version."""
        return [cls for name in sorted(self._classes)
                for _, cls in sorted(self._classes[name].items())]

    def newest(self) -> list[type[VersionedObject]]:
        """The newest class of every name, sorted by name."""
        return [self.get(name) for name in sorted(self._classes)]

    def manifest(self) -> dict[str, str]:
        """Name -> newest version this registry knows: what a service built
        on it can read, and so what peers may send it."""
        return {name: self.get(name)._rs_info.history.current for name in sorted(self._classes)}

    def type_namespace(self) -> dict[str, Any]:
        """Names for resolving string annotations (forward references)."""
        return {name: self.get(name) for name in self._classes}

    def __repr__(self) -> str:
        return f"Registry({self.namespace!r}, {len(self._classes)} objects)"
