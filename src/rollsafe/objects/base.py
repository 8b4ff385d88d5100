"""``VersionedObject``: the base class users declare their objects on.

An object class is a set of typed fields plus a version history. The class
body stays declarative; the hot paths (``__init__``, field setters, encoding,
decoding, change tracking) are generated once per class, on first use, by
:mod:`rollsafe.objects.codegen`.

Instances carry only their fields: every operation on them is a function
(:func:`rollsafe.to_primitive`, :func:`rollsafe.what_changed`, ...), so no
method name can clash with a field name.
"""

from __future__ import annotations

import sys
import typing
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, dataclass_transform

from rollsafe.errors import (
    DecodeError,
    DefinitionError,
    DowngradeError,
    IncompatibleVersionError,
    LimitExceededError,
    PayloadVersionError,
    RollsafeError,
    ValidationError,
    field_path,
    short_repr,
)
from rollsafe.objects.fields import MISSING, Field, FieldSpec, field
from rollsafe.objects.history import History, NestedVersion, Version, parse_version
from rollsafe.objects.limits import DecodeLimits
from rollsafe.objects.registry import Registry
from rollsafe.objects.remote import RemoteMethod, collect_remote_methods
from rollsafe.objects.types import EncodeTarget

__all__ = ["ClassInfo", "VersionedObject"]

_RESERVED = frozenset({"VERSIONS"})


class ClassInfo:
    """Everything rollsafe knows about one object class (``cls._rs_info``)."""

    def __init__(self, cls: type[VersionedObject], registry: Registry, history: History,
                 specs: dict[str, Any], remotes: dict[str, RemoteMethod]) -> None:
        self.cls = cls
        self.name = cls.__name__
        self.registry = registry
        self.history = history
        self.current = history.versions[-1]
        #: The version strings as declared: a fast "is this known" test.
        self.known_versions = frozenset(history.numbers)
        self.specs = specs
        self.remotes = remotes
        self.built = False
        self._building = False
        #: Where string annotations are resolved: the defining module's
        #: globals and, for a class defined in a function, its locals.
        self.namespaces: tuple[dict[str, Any] | None, dict[str, Any]] = (None, {})
        self.fields: dict[str, Field] = {}
        self.schemas: dict[tuple[int, int], dict[str, Field]] = {}
        self.child_versions: dict[tuple[int, int], dict[type[VersionedObject], str]] = {}
        self._targets: dict[str, Version] = {}
        self.encoders: dict[tuple[int, int], Callable[..., dict[str, Any]]] = {}
        self.all_fields: frozenset[str] = frozenset()
        # This class and every class nested in it at any depth (lazily).
        self._tree: tuple[ClassInfo, ...] | None = None
        # Set by codegen: the precise data decoder and the fast envelope decoder.
        self.decode_data: Callable[..., VersionedObject]
        self.decode_fast: Callable[..., VersionedObject]

    # -- building ---------------------------------------------------------
    def build(self) -> None:
        """Resolve the annotations, derive every version's schema, check the
        history against the fields, and generate the hot paths."""
        if self.built or self._building:
            return
        self._building = True
        try:
            self._resolve_fields()
            for fld in self.fields.values():
                for child in fld.ftype.object_classes():
                    child._rs_info.build()
            self._derive_schemas()
            from rollsafe.objects import codegen

            codegen.install(self)
            self.built = True
        finally:
            self._building = False

    def _resolve_fields(self) -> None:
        from rollsafe.objects.types import type_from_annotation

        cls = self.cls
        globalns, frame_locals = self.namespaces
        localns = {**self.registry.type_namespace(), **frame_locals, cls.__name__: cls}
        # The class's own annotations only (not the bases'); inspect would
        # cost ~9 ms at import for this one call.
        own = cls.__dict__.get("__annotations__", {})  # noqa: RUF063
        holder = _Annotations({name: own[name] for name in self.specs})
        try:
            hints = typing.get_type_hints(holder, globalns=globalns, localns=localns,
                                          include_extras=True)
        except NameError as exc:
            raise DefinitionError(f"{self.name}: cannot resolve a field annotation ({exc}); "
                                  "define the class it names first, in this registry or "
                                  "module") from None
        fields = {}
        for name, spec in self.specs.items():
            where = f"{self.name}.{name}"
            ftype = type_from_annotation(hints[name], where, spec.max_length)
            try:
                fields[name] = Field(name, ftype, spec.default, spec.default_factory,
                                     spec.read_only)
            except DefinitionError as exc:
                raise DefinitionError(f"{self.name}.{name}: {exc}") from None
        self.fields = fields

    def _derive_schemas(self) -> None:
        schema = self.fields
        versions = self.history.versions
        for version in reversed(versions):
            self.schemas[version.key] = schema
            where = f"{self.name} {version.number}"
            for change in reversed(version.changes):
                schema = change.previous_schema(schema, where)
        # Which version of each nested class every version of ours embeds.
        embedded: dict[type[VersionedObject], str] = {}
        for version in versions:
            for fld in self.schemas[version.key].values():
                for child in fld.ftype.object_classes():
                    embedded.setdefault(child, child._rs_info.history.versions[0].number)
            for change in version.changes:
                if isinstance(change, NestedVersion):
                    self._apply_nested(change, version, embedded)
            self.child_versions[version.key] = dict(embedded)
        for child, number in self.child_versions[self.current.key].items():
            child_current = child._rs_info.history.current
            if parse_version(number) != parse_version(child_current):
                raise DefinitionError(
                    f"{self.name} {self.current.number} embeds {child.__name__} {number}, but "
                    f"{child.__name__} is now {child_current}: add a version to {self.name} "
                    f"with NestedVersion(<field>, {child_current!r}) so older readers of "
                    f"{self.name} keep getting a {child.__name__} they can read")

    def _apply_nested(self, change: NestedVersion, version: Version,
                      embedded: dict[type[VersionedObject], str]) -> None:
        fld = self.schemas[version.key].get(change.name)
        children = list(fld.ftype.object_classes()) if fld else []
        if not children:
            raise DefinitionError(f"{self.name} {version.number}: NestedVersion("
                                  f"{change.name!r}) names no field holding objects")
        for child in children:
            try:
                child._rs_info.history.resolve(change.version, child.__name__)
            except IncompatibleVersionError as exc:
                raise DefinitionError(f"{self.name} {version.number}: {exc}") from None
            embedded[child] = change.version

    # -- versions -----------------------------------------------------------
    def target(self, version: str | None, manifest: dict[str, str] | None) -> Version:
        """The version to encode at: ``version``, else the manifest's entry,
        else current; never newer than current (a newer manifest entry means
        the receiver reads ours)."""
        if version is None and manifest is not None:
            version = manifest.get(self.name)
        if version is None:
            return self.current
        found = self._targets.get(version)
        if found is None:
            key = _version_key(version)
            if key is not None and key >= self.current.key:
                found = self.current
            else:
                found = self.history.resolve(version, self.name)
            if len(self._targets) < 64:  # bounded: versions come from peers
                self._targets[version] = found
        return found

    # -- encoding -----------------------------------------------------------
    def encode(self, obj: VersionedObject, version: str | None,
               manifest: dict[str, str] | None, path: str) -> dict[str, Any]:
        """The envelope of ``obj`` at ``version`` / per ``manifest``."""
        reg = self.registry
        target = self.target(version, manifest)
        if manifest is not None and target is self.current and self._all_current(manifest):
            manifest = None  # nothing in the tree goes older: take the fast path
        if target is self.current and manifest is None:
            try:
                return obj._rs_envelope()
            except RollsafeError:  # re-run the precise encoder for the error's path
                pass
            data = obj._rs_encode(path, None)
            changes = obj._rs_what_changed()
        else:
            nested = EncodeTarget(manifest, self.child_versions[target.key])
            if target is self.current:
                data = obj._rs_encode(path, nested)
                changes = obj._rs_what_changed()
            else:
                data, changes = self._downgrade(obj, target, nested, path)
        envelope = {
            reg.key_name: self.name,
            reg.key_namespace: reg.namespace,
            reg.key_version: target.number,
            reg.key_data: data,
        }
        if changes:
            envelope[reg.key_changes] = sorted(changes)
        return envelope

    def _all_current(self, manifest: dict[str, str]) -> bool:
        """Whether ``manifest`` asks every class of this tree for its
        current version (or does not name it)."""
        tree = self._tree
        if tree is None:
            tree = self._tree = _reachable(self)
        for info in tree:
            version = manifest.get(info.name)
            if version is not None and info.target(version, None) is not info.current:
                return False
        return True

    def _downgrade(self, obj: VersionedObject, target: Version, nested: EncodeTarget,
                   path: str) -> tuple[dict[str, Any], set[str]]:
        values = obj._rs_values()
        changes: set[str] = obj._rs_what_changed()
        versions = self.history.versions
        converted: set[str] | None = set()
        for version in reversed(versions[self.history.index(target) + 1:]):
            for change in reversed(version.changes):
                change.downgrade(values, path)
                if changes and change.moves_data():
                    changes = set(values)
                else:
                    changes = {old for name in changes
                               if (old := change.old_name(name)) is not None}
                made = change.converts()
                if made is None or converted is None:
                    converted = None
                else:
                    converted = {old for name in converted | made
                                 if (old := change.old_name(name)) is not None}
        schema = self.schemas[target.key]
        for name in schema if converted is None else converted:
            # Values from converters are checked against the older type, so a
            # converter bug fails here, at the sender, not at the receiver.
            try:
                values[name] = schema[name].ftype.validate(values[name], f"{path}.{name}")
            except ValidationError as exc:
                raise DowngradeError(exc.path, f"converter to {self.name} {target.number} "
                                               f"produced a bad value: {exc.problem}") from None
        data = self.encoders[target.key](values, path, nested)
        return data, changes & data.keys()

    # -- decoding -----------------------------------------------------------
    def decode(self, prim: Any, path: str, limits: DecodeLimits, depth: int) -> VersionedObject:
        """Decode an envelope strictly into a current-version object."""
        reg = self.registry
        if type(prim) is not dict:
            raise DecodeError(path, f"expected a {self.name} envelope (a dict), got "
                                    f"{type(prim).__name__}")
        if depth > limits.max_depth:
            raise LimitExceededError(path, f"nesting deeper than max_depth {limits.max_depth}")
        name = prim.get(reg.key_name)
        if name != self.name:
            raise DecodeError(path, f"expected object {self.name!r}, got {_short(name)}")
        if prim.get(reg.key_namespace) != reg.namespace:
            raise DecodeError(path, f"namespace {_short(prim.get(reg.key_namespace))} is not "
                                    f"{reg.namespace!r}")
        if len(prim) > 4 and not prim.keys() <= reg.envelope_keys:
            extra = sorted(str(k) for k in prim.keys() - reg.envelope_keys)
            raise DecodeError(path, f"unknown envelope keys {extra[:5]}")
        data = prim.get(reg.key_data)
        if type(data) is not dict:
            raise DecodeError(path, f"{reg.key_data} must be a dict, got {type(data).__name__}")
        number = prim.get(reg.key_version)
        if number == self.current.number:
            obj = self.decode_data(data, path, limits, depth)
            version = self.current
        else:
            version = self._payload_version(number, path)
            if version is self.current:
                obj = self.decode_data(data, path, limits, depth)
            else:
                obj = self._upgrade(data, version, path, limits, depth)
        obj._rs_changed = self._decode_changes(prim.get(reg.key_changes, ()), version, path)
        obj._rs_baseline = obj._rs_snapshot()
        return obj

    def _payload_version(self, number: Any, path: str) -> Version:
        if type(number) is not str:
            raise DecodeError(path, f"version must be a string, got {_short(number)}")
        try:
            return self.history.resolve(number, self.name)
        except IncompatibleVersionError as exc:
            raise PayloadVersionError(path, str(exc), name=self.name, version=number,
                                      known=self.current.number) from None

    def _upgrade(self, data: dict[str, Any], version: Version, path: str,
                 limits: DecodeLimits, depth: int) -> VersionedObject:
        schema = self.schemas[version.key]
        values = decode_values(schema, data, path, limits, depth + 1,
                               f"{self.name} {version.number}")
        try:
            for newer in self.history.versions[self.history.index(version) + 1:]:
                for change in newer.changes:
                    change.upgrade(values, path)
            return self.cls(**values)
        except ValidationError as exc:
            raise DecodeError(exc.path, f"after upgrade from {version.number}: "
                                        f"{exc.problem}") from None
        except IncompatibleVersionError as exc:
            raise DecodeError(path, f"upgrade from {version.number} failed: {exc}") from None

    def _decode_changes(self, changes: Any, version: Version, path: str) -> set[str]:
        if type(changes) is not list and changes != ():
            raise DecodeError(path, f"changes must be a list, got {type(changes).__name__}")
        if not changes:  # what stores send: nothing to check or carry forward
            return set()
        schema = self.schemas[version.key]
        names = set()
        for item in changes:
            if type(item) is not str or item not in schema:
                raise DecodeError(path, f"changes lists {_short(item)}, not a field of "
                                        f"{self.name} {version.number}")
            names.add(item)
        if version is not self.current:
            later = self.history.versions[self.history.index(version) + 1:]
            if names and any(c.moves_data() for v in later for c in v.changes):
                return set(self.fields)
            renames = self._renames_since(version)
            names = {renames.get(n, n) for n in names} & self.fields.keys()
        return names

    def _renames_since(self, version: Version) -> dict[str, str]:
        from rollsafe.objects.history import Renamed

        renames: dict[str, str] = {}
        for newer in self.history.versions[self.history.index(version) + 1:]:
            for change in newer.changes:
                if isinstance(change, Renamed):
                    for old, new in list(renames.items()):
                        if new == change.old:
                            renames[old] = change.new
                    renames.setdefault(change.old, change.new)
        return renames


def decode_values(schema: dict[str, Field], data: dict[str, Any], path: str,
                  limits: DecodeLimits, depth: int, what: str) -> dict[str, Any]:
    """Decode ``data`` field by field against ``schema`` (the slow, generic
    path used for older versions)."""
    for key in data:
        if key not in schema:
            raise DecodeError(field_path(path, key) if type(key) is str else path,
                              f"unknown field {_short(key)} for {what}")
    values = {}
    for name, fld in schema.items():
        sub = f"{path}.{name}"
        if name in data:
            values[name] = fld.ftype.from_prim(data[name], sub, limits, depth)
        elif fld.has_default:
            values[name] = fld.make_default(sub)
        else:
            raise DecodeError(sub, f"required field missing from {what}")
    return values


def _copy_object(obj: VersionedObject, memo: dict[int, Any] | None) -> VersionedObject:
    """A copy with the same field values (deep when ``memo`` is given) and
    the same change-tracking state."""
    import copy

    cls = type(obj)
    new = object.__new__(cls)
    if memo is not None:
        memo[id(obj)] = new
    for name, value in obj._rs_values().items():
        setattr_slot = f"_v_{name}"
        object.__setattr__(new, setattr_slot,
                           value if memo is None else copy.deepcopy(value, memo))
    changed = obj._rs_changed
    new._rs_changed = changed if changed is cls._rs_info.all_fields else set(changed)
    new._rs_baseline = new._rs_snapshot() if obj._rs_baseline is not None else None
    if obj._rs_baseline is not None:
        # Keep what was changed in place before the copy visible after it.
        new._rs_changed = obj._rs_what_changed() if changed is not \
            cls._rs_info.all_fields else changed
    return new


def _reachable(info: ClassInfo) -> tuple[ClassInfo, ...]:
    """``info`` and the info of every class its fields nest, at any depth."""
    seen: dict[str, ClassInfo] = {}
    todo = [info]
    while todo:
        current = todo.pop()
        if current.name in seen:
            continue
        seen[current.name] = current
        for fld in current.fields.values():
            todo.extend(child._rs_info for child in fld.ftype.object_classes())
    return tuple(seen.values())


def _version_key(version: str) -> tuple[int, int] | None:
    try:
        return parse_version(version)
    except ValueError:
        return None


_short = short_repr


@dataclass_transform(kw_only_default=True, field_specifiers=(field,))
class _ObjectMeta(type):
    """Turns a class body of annotations into slots, fields and a history."""

    def __new__(mcs, name: str, bases: tuple[type, ...], ns: dict[str, Any], *,
                registry: Registry | None = None, abstract: bool = False,
                **kwargs: Any) -> _ObjectMeta:
        if not any(isinstance(b, _ObjectMeta) for b in bases):  # VersionedObject itself
            return super().__new__(mcs, name, bases, ns, **kwargs)
        for base in bases:
            info = getattr(base, "_rs_info", None)
            if info is not None:
                raise DefinitionError(
                    f"{name}: subclass VersionedObject or an abstract base, not the object "
                    f"class {base.__name__}; declare a new version of {base.__name__} instead")
        inherited = next((getattr(b, "_rs_registry", None) for b in bases
                          if getattr(b, "_rs_registry", None) is not None), None)
        registry = registry or inherited
        annotations = ns.get("__annotations__", {})
        specs: dict[str, FieldSpec] = {}
        for fname, ann in annotations.items():
            if _is_classvar(ann):
                continue
            if fname.startswith("_") or fname in _RESERVED:
                raise DefinitionError(f"{name}.{fname}: field names may not start with '_' "
                                      f"or be one of {sorted(_RESERVED)}")
            value = ns.pop(fname, MISSING)
            specs[fname] = value if isinstance(value, FieldSpec) else FieldSpec(
                value, None, None, False)
        if abstract:
            if specs:
                raise DefinitionError(f"{name}: an abstract base declares no fields")
            ns["__slots__"] = ()
            cls = super().__new__(mcs, name, bases, ns, **kwargs)
            cls._rs_registry = registry  # type: ignore[attr-defined]
            return cls
        if registry is None:
            raise DefinitionError(f"{name}: say which registry holds it: "
                                  f"class {name}(VersionedObject, registry=...)")
        history = ns.pop("VERSIONS", None) or History(Version("1.0", "Initial version"))
        if not isinstance(history, History):
            raise DefinitionError(f"{name}.VERSIONS must be a History(...)")
        ns["__slots__"] = tuple(f"_v_{f}" for f in specs)
        remotes = collect_remote_methods(ns)
        cls = super().__new__(mcs, name, bases, ns, **kwargs)
        cls._rs_registry = registry  # type: ignore[attr-defined]
        info = ClassInfo(cls, registry, history, specs, remotes)  # type: ignore[arg-type]
        info.namespaces = _defining_namespaces()
        cls._rs_info = info  # type: ignore[attr-defined]
        cls.VERSIONS = history  # type: ignore[attr-defined]
        registry.register(cls)  # type: ignore[arg-type]
        return cls


class _Annotations:
    """Holds one class's own field annotations for typing.get_type_hints
    (which, given the class itself, would also evaluate the base classes')."""

    def __init__(self, annotations: dict[str, Any]) -> None:
        self.__annotations__ = annotations


def _defining_namespaces() -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Globals and locals of the code running the ``class`` statement, so
    string annotations resolve as they would have there (the class may be
    defined in a function, or in code run by exec)."""
    frame = sys._getframe(2)  # 0: here, 1: _ObjectMeta.__new__, 2: the class statement
    try:
        local = frame.f_locals
        return frame.f_globals, ({} if local is frame.f_globals else dict(local))
    finally:
        del frame


def _is_classvar(ann: Any) -> bool:
    if isinstance(ann, str):
        return ann.startswith(("ClassVar", "typing.ClassVar"))
    return typing.get_origin(ann) is ClassVar


class _ObjectState:
    """The per-instance state every object carries besides its fields. It
    lives in a plain base class so that type checkers, which read the
    annotations of ``VersionedObject`` as constructor fields (it is a
    ``dataclass_transform`` class), never see these as fields."""

    # _rs_meta belongs to the layers above (storage keeps the revision and
    # stored version there); the core never reads it.
    __slots__ = ("__weakref__", "_rs_baseline", "_rs_changed", "_rs_meta")

    _rs_changed: set[str]
    _rs_baseline: tuple[Any, ...] | None
    _rs_meta: Any


class VersionedObject(_ObjectState, metaclass=_ObjectMeta):
    """Base class of versioned objects.

    Subclass it with the registry the class belongs to, declare fields as
    annotations and the history as ``VERSIONS``::

        class Source(VersionedObject, registry=reg):
            VERSIONS = History(Version("1.0", "Initial version"))
            url: str = field(max_length=2048)
            revision: str | None = None

    Construction takes keyword arguments only, validates every value, and
    applies defaults. Assignment validates too. All fields are always set.
    """

    __slots__ = ()

    VERSIONS: ClassVar[History]
    _rs_info: ClassVar[ClassInfo]
    _rs_registry: ClassVar[Registry | None] = None

    def __init__(self, **values: Any) -> None:
        # Replaced by the generated __init__ on first use (see codegen).
        info = type(self)._rs_info
        info.build()
        type(self).__init__(self, **values)

    # Generated per class (see codegen); declared here for type checkers.
    def _rs_encode(self, path: str, nested: EncodeTarget | None) -> dict[str, Any]:
        raise NotImplementedError

    def _rs_envelope(self) -> dict[str, Any]:
        raise NotImplementedError

    def _rs_values(self) -> dict[str, Any]:
        raise NotImplementedError

    def _rs_what_changed(self) -> set[str]:
        raise NotImplementedError

    def _rs_has_changes(self) -> bool:
        raise NotImplementedError

    def _rs_snapshot(self) -> tuple[Any, ...] | None:
        raise NotImplementedError

    def _rs_reset(self, recursive: bool) -> None:
        raise NotImplementedError

    def __copy__(self) -> VersionedObject:
        return _copy_object(self, None)

    def __deepcopy__(self, memo: dict[int, Any]) -> VersionedObject:
        return _copy_object(self, memo)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._rs_values() == other._rs_values()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self._rs_values().items())
        return f"{type(self).__name__}({fields})"

    def __rich_repr__(self) -> Iterator[tuple[str, Any]]:
        yield from self._rs_values().items()
