"""What you do with objects: encode, decode, track changes, read versions.

These are functions, not methods, so an object's attribute namespace holds
its fields and nothing else.
"""

from __future__ import annotations

from typing import Any, TypeVar, overload

from rollsafe.errors import (
    DecodeError,
    LimitExceededError,
    UnknownObjectError,
    UnknownVersionError,
    VersionTooNewError,
)
from rollsafe.objects.base import VersionedObject
from rollsafe.objects.fields import Field
from rollsafe.objects.history import parse_version
from rollsafe.objects.limits import DEFAULT_LIMITS, DecodeLimits
from rollsafe.objects.registry import Registry

__all__ = [
    "fields_of",
    "from_primitive",
    "reset_changes",
    "schema_of",
    "to_primitive",
    "version_manifest",
    "version_of",
    "what_changed",
]

T = TypeVar("T", bound=VersionedObject)


def _info(obj_or_cls: VersionedObject | type[VersionedObject]) -> Any:
    cls = obj_or_cls if isinstance(obj_or_cls, type) else type(obj_or_cls)
    info = getattr(cls, "_rs_info", None)
    if info is None:
        raise TypeError(f"{cls.__name__} is not a versioned object class")
    info.build()
    return info


def to_primitive(obj: VersionedObject, version: str | None = None, *,
                 manifest: dict[str, str] | None = None) -> dict[str, Any]:
    """The wire envelope of ``obj`` (plain dicts, lists, strings, numbers).

    With no arguments, at the current version of every object in the tree.
    ``version`` downgrades the top object (nested objects go at the version
    its history embeds them at); ``manifest`` (name -> version, as from
    :func:`version_manifest` of the receiver) sets the version of every
    object class it names, at any depth. A manifest entry newer than this
    code knows sends the current version (the receiver reads older ones);
    an explicit ``version`` newer than current raises
    :class:`VersionTooNewError`."""
    info = type(obj)._rs_info
    if version is not None and version not in info.known_versions:
        try:
            key = parse_version(version)
        except ValueError as exc:
            raise UnknownVersionError(f"{info.name}: {exc}") from None
        if key > info.current.key:
            raise VersionTooNewError(
                f"{info.name} cannot be sent at {version}: the newest version this code knows "
                f"is {info.current.number} (a downgrade never goes upward)")
    return info.encode(obj, version, manifest, info.name)


@overload
def from_primitive(primitive: Any, target: type[T], *,
                   limits: DecodeLimits = DEFAULT_LIMITS) -> T: ...
@overload
def from_primitive(primitive: Any, target: Registry, *,
                   limits: DecodeLimits = DEFAULT_LIMITS) -> VersionedObject: ...
def from_primitive(primitive: Any, target: type[VersionedObject] | Registry, *,
                   limits: DecodeLimits = DEFAULT_LIMITS) -> VersionedObject:
    """Decode an envelope into a current-version object.

    ``target`` is the class expected or a registry (any class it holds).
    Older versions are upgraded through the history; anything malformed
    raises :class:`DecodeError` (a version this side cannot read raises its
    subclass :class:`PayloadVersionError`). Nothing else escapes."""
    cls = _lookup(primitive, target) if isinstance(target, Registry) else target
    info = _info(cls)
    try:
        return info.decode_fast(primitive, limits, 1)  # type: ignore[no-any-return]
    except Exception:
        pass  # the precise decoder below re-checks everything and names the path
    try:
        return info.decode(primitive, info.name, limits, 1)  # type: ignore[no-any-return]
    except RecursionError:
        raise LimitExceededError(info.name, "payload nested deeper than this process can "
                                            "decode; lower DecodeLimits.max_depth") from None


def _lookup(primitive: Any, registry: Registry) -> type[VersionedObject]:
    if type(primitive) is not dict:
        raise DecodeError("", f"expected an object envelope (a dict), got "
                              f"{type(primitive).__name__}")
    name = primitive.get(registry.key_name)
    if type(name) is not str:
        raise DecodeError("", f"envelope has no {registry.key_name} string")
    try:
        return registry.get(name)
    except UnknownObjectError as exc:
        raise DecodeError(name[:60], f"not a registered object: {exc}") from None


def what_changed(obj: VersionedObject) -> set[str]:
    """Names of the fields changed since construction, decoding or the last
    :func:`reset_changes`: assignments, in-place changes of lists, dicts and
    sets, and changes inside nested objects."""
    return obj._rs_what_changed()


def reset_changes(obj: VersionedObject, *, recursive: bool = False,
                  fields: list[str] | set[str] | None = None) -> None:
    """Forget changes: all of them, or those of ``fields`` only.
    ``recursive`` also resets every nested object."""
    if fields is None:
        obj._rs_reset(recursive)
        return
    info = _info(obj)
    unknown = set(fields) - info.fields.keys()
    if unknown:
        raise KeyError(f"{info.name} has no fields {sorted(unknown)}")
    keep = obj._rs_what_changed() - set(fields)
    if recursive:
        from rollsafe.objects.codegen import iter_objects

        for name in fields:
            for child in iter_objects(info.fields[name].ftype, getattr(obj, name)):
                child._rs_reset(True)
    obj._rs_changed = keep
    obj._rs_baseline = obj._rs_snapshot()


def version_of(obj_or_cls: VersionedObject | type[VersionedObject]) -> str:
    """The current version of an object or class."""
    return _info(obj_or_cls).current.number  # type: ignore[no-any-return]


def version_manifest(obj_or_cls: VersionedObject | type[VersionedObject] | Registry
                     ) -> dict[str, str]:
    """Name -> current version of a class and every class it can contain,
    at any depth; or of every class in a registry. Pass it as ``manifest``
    to :func:`to_primitive` to send a tree the holder can read."""
    if isinstance(obj_or_cls, Registry):
        return obj_or_cls.manifest()
    out: dict[str, str] = {}
    pending = [_info(obj_or_cls)]
    while pending:
        info = pending.pop()
        if info.name in out:
            continue
        out[info.name] = info.current.number
        for fld in info.fields.values():
            pending.extend(_info(child) for child in fld.ftype.object_classes())
    return dict(sorted(out.items()))


def fields_of(obj_or_cls: VersionedObject | type[VersionedObject]) -> dict[str, Field]:
    """The current fields, in declaration order."""
    return dict(_info(obj_or_cls).fields)


def schema_of(cls: type[VersionedObject], version: str | None = None) -> dict[str, Field]:
    """The fields of ``cls`` as they were at ``version`` (default current)."""
    info = _info(cls)
    if version is None:
        return dict(info.fields)
    found = info.history.resolve(version, info.name)
    return dict(info.schemas[found.key])
