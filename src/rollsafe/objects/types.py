"""Field types: what a field may hold, how it is checked, copied and encoded.

A field's type comes from its annotation (``str``, ``int``, ``float``,
``bool``, ``uuid.UUID``, ``datetime``, ``Literal[...]`` for enums,
``list[T]``, ``dict[str, T]``, ``set[T]``, another object class, and
``T | None`` for nullable). :func:`type_from_annotation` turns the annotation
into one of the classes here. Each type knows five things:

- ``validate``: check a value given by code (construction, assignment);
- ``to_prim`` / ``from_prim``: the wire form, strict on the way in;
- ``snapshot`` / ``changed``: the baseline copy used by change tracking;
- ``canonical``: the schema description that fingerprints hash.

The generated code in :mod:`rollsafe.objects.codegen` inlines the common
cases (``fast_check`` and friends) and calls these methods for the rest.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
import types
import typing
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal

from rollsafe.errors import (
    DecodeError,
    DefinitionError,
    LimitExceededError,
    RollsafeError,
    ValidationError,
    short_repr,
)

if TYPE_CHECKING:
    from rollsafe.objects.base import VersionedObject
    from rollsafe.objects.limits import DecodeLimits

__all__ = [
    "BoolType",
    "DateTimeType",
    "DictType",
    "EncodeTarget",
    "EnumType",
    "FieldType",
    "FloatType",
    "IntType",
    "ListType",
    "NullableType",
    "ObjectType",
    "SetType",
    "StrType",
    "UUIDType",
    "type_from_annotation",
]



class EncodeTarget:
    """Which version each nested object is encoded at: the manifest's entry
    for its class when there is one, else the version the parent's history
    embeds it at (for the parent version being encoded)."""

    __slots__ = ("child_versions", "manifest")

    def __init__(self, manifest: dict[str, str] | None,
                 child_versions: dict[type[VersionedObject], str]) -> None:
        self.manifest = manifest
        self.child_versions = child_versions

    def version_for(self, cls: type[VersionedObject]) -> str | None:
        """The version to encode an instance of ``cls`` at."""
        manifest = self.manifest
        if manifest is not None:
            found = manifest.get(cls._rs_info.name)
            if found is not None:
                return found
        return self.child_versions.get(cls)


VersionFor = EncodeTarget


def _kind(value: object) -> str:
    return type(value).__name__


class FieldType:
    """Base of every field type. Subclasses override what differs."""

    #: True when the value can change in place (containers, objects), so
    #: change tracking keeps a baseline of it.
    mutable: bool = False
    #: True when values can be set members.
    hashable: bool = True
    #: Name used in messages and in the canonical schema.
    name: str = "?"

    # -- code-supplied values -------------------------------------------
    def validate(self, value: Any, path: str) -> Any:
        """Return ``value`` if it is allowed (converted where a safe
        promotion applies), else raise :class:`ValidationError`."""
        raise NotImplementedError

    def fast_check(self, var: str) -> str | None:
        """Python source of a cheap expression that is true when ``var``
        needs no conversion and is valid; None when there is none."""
        return None

    # -- wire ------------------------------------------------------------
    def to_prim(self, value: Any, path: str, version_for: VersionFor | None) -> Any:
        """Return the primitive (JSON / msgpack ready) form of ``value``."""
        return value

    def to_prim_src(self, var: str) -> str | None:
        """Source of an expression encoding ``var``; None to call to_prim."""
        return None

    def from_prim(self, prim: Any, path: str, limits: DecodeLimits, depth: int) -> Any:
        """Decode a primitive strictly; raise :class:`DecodeError` naming
        ``path`` on anything unexpected."""
        raise NotImplementedError

    def fast_decode_check(self, var: str) -> str | None:
        """Source of an expression that is true when primitive ``var`` is
        already the in-memory value; None when there is none."""
        return None

    # -- change tracking -------------------------------------------------
    def snapshot(self, value: Any) -> Any:
        """A copy deep enough that in-place changes to ``value`` show."""
        return value

    def snapshot_src(self, var: str) -> str | None:
        """Source of an expression that snapshots ``var``."""
        return None

    def changed(self, value: Any, baseline: Any) -> bool:
        """Whether ``value`` differs from its ``baseline`` snapshot."""
        return bool(value != baseline)

    def changed_src(self, var: str, base: str) -> str | None:
        """Source of an expression, true when ``var`` differs from ``base``."""
        return None

    # -- schema ----------------------------------------------------------
    def canonical(self, version_of: Callable[[type[VersionedObject]], str]) -> dict[str, Any]:
        """The type as plain data, stable across Python versions.

        ``version_of`` gives the version at which a nested object class is
        embedded, so that a nested version bump shows in the schema."""
        return {"type": self.name}

    def without_enum_values(self, values: frozenset[str]) -> FieldType:
        """This type as it was before ``values`` were added to its enum."""
        raise DefinitionError(f"{self.describe()} has no enum values to remove")

    def object_classes(self) -> Iterator[type[VersionedObject]]:
        """Object classes this type holds, at any depth."""
        return iter(())

    def describe(self) -> str:
        """Human-readable type, as in messages (``list[int]``)."""
        return self.name

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    def __hash__(self) -> int:
        return hash((type(self), self.describe()))

    def __repr__(self) -> str:
        return f"<{self.describe()}>"

    # -- shared helpers --------------------------------------------------
    def _bad_value(self, value: Any, path: str, expected: str | None = None) -> ValidationError:
        return ValidationError(
            path, f"expected {expected or self.describe()}, got {_kind(value)} {_short(value)}"
        )

    def _bad_prim(self, prim: Any, path: str, expected: str | None = None) -> DecodeError:
        return DecodeError(
            path, f"expected {expected or self.describe()}, got {_kind(prim)} {_short(prim)}"
        )


_short = short_repr


class StrType(FieldType):
    """A string, with an optional maximum length in characters."""

    name = "str"

    def __init__(self, max_length: int | None = None) -> None:
        if max_length is not None and (type(max_length) is not int or max_length < 0):
            raise DefinitionError(f"max_length must be a non-negative int, got {max_length!r}")
        self.max_length = max_length

    def validate(self, value: Any, path: str) -> Any:
        if not isinstance(value, str):
            raise self._bad_value(value, path)
        if self.max_length is not None and len(value) > self.max_length:
            raise ValidationError(
                path, f"string of {len(value)} characters is over max_length {self.max_length}"
            )
        return str(value)

    def fast_check(self, var: str) -> str:
        if self.max_length is None:
            return f"type({var}) is str"
        return f"(type({var}) is str and len({var}) <= {self.max_length})"

    def from_prim(self, prim: Any, path: str, limits: DecodeLimits, depth: int) -> Any:
        if type(prim) is not str:
            raise self._bad_prim(prim, path)
        if self.max_length is not None and len(prim) > self.max_length:
            raise DecodeError(
                path, f"string of {len(prim)} characters is over max_length {self.max_length}"
            )
        return prim

    def fast_decode_check(self, var: str) -> str:
        return self.fast_check(var)

    def to_prim_src(self, var: str) -> str:
        return var

    def canonical(self, version_of: Callable[[type[VersionedObject]], str]) -> dict[str, Any]:
        return {"type": "str", "max_length": self.max_length}

    def describe(self) -> str:
        return "str" if self.max_length is None else f"str(max_length={self.max_length})"


#: Integers are signed 64-bit: what every codec and store carries.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
_SMALL_MIN, _SMALL_MAX = -(2**30) + 1, 2**30 - 1
_INT_RANGE = "int outside the signed 64-bit range every codec and store carries"


def ints_in_range(values: Any) -> bool:
    """Whether every int in ``values`` (a list, set or dict view) fits."""
    return not values or (min(values) >= INT_MIN and max(values) <= INT_MAX)


class IntType(FieldType):
    """An integer; ``bool`` is refused."""

    name = "int"

    def validate(self, value: Any, path: str) -> Any:
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._bad_value(value, path)
        if not INT_MIN <= value <= INT_MAX:
            raise ValidationError(path, _INT_RANGE)
        return int(value)

    def fast_check(self, var: str) -> str:
        # The first range holds the ints CPython compares fastest (one
        # internal digit, so the comparison specialises); the second, tried
        # only for larger ints, is the real bound.
        return (f"(type({var}) is int and ({_SMALL_MIN} <= {var} <= {_SMALL_MAX} "
                f"or {INT_MIN} <= {var} <= {INT_MAX}))")

    def from_prim(self, prim: Any, path: str, limits: DecodeLimits, depth: int) -> Any:
        if type(prim) is not int:
            raise self._bad_prim(prim, path)
        if not INT_MIN <= prim <= INT_MAX:
            raise DecodeError(path, _INT_RANGE)
        return prim

    def fast_decode_check(self, var: str) -> str:
        return self.fast_check(var)

    def to_prim_src(self, var: str) -> str:
        return var


class FloatType(FieldType):
    """A float; an int is accepted and promoted (the one safe promotion)."""

    name = "float"

    def validate(self, value: Any, path: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._bad_value(value, path)
        try:
            value = float(value)
        except OverflowError:
            raise ValidationError(path, "int too large for a float") from None
        if not math.isfinite(value):
            raise ValidationError(path, f"{value} refused: only finite floats cross every codec")
        return value

    def fast_check(self, var: str) -> str:
        # x - x == 0.0 is false exactly for nan and +-inf.
        return f"(type({var}) is float and {var} - {var} == 0.0)"

    def from_prim(self, prim: Any, path: str, limits: DecodeLimits, depth: int) -> Any:
        if type(prim) is int:
            try:
                prim = float(prim)
            except OverflowError:
                raise DecodeError(path, "int too large for a float") from None
        if type(prim) is not float:
            raise self._bad_prim(prim, path)
        if not math.isfinite(prim):
            raise DecodeError(path, f"{prim} refused: only finite floats are allowed")
        return prim

    def fast_decode_check(self, var: str) -> str:
        return self.fast_check(var)

    def to_prim_src(self, var: str) -> str:
        return var


class BoolType(FieldType):
    """True or False; no truthiness coercion."""

    name = "bool"

    def validate(self, value: Any, path: str) -> Any:
        if type(value) is not bool:
            raise self._bad_value(value, path)
        return value

    def fast_check(self, var: str) -> str:
        return f"type({var}) is bool"

    def from_prim(self, prim: Any, path: str, limits: DecodeLimits, depth: int) -> Any:
        if type(prim) is not bool:
            raise self._bad_prim(prim, path)
        return prim

    def fast_decode_check(self, var: str) -> str:
        return self.fast_check(var)

    def to_prim_src(self, var: str) -> str:
        return var


_MINUTE = _dt.timedelta(minutes=1)


def _utc_representable(value: _dt.datetime, offset: _dt.timedelta) -> bool:
    """Whether ``value`` (with that non-zero offset) converts to UTC."""
    try:
        value.replace(tzinfo=None) - offset
    except OverflowError:
        return False
    return True
_new_uuid = object.__new__
_set_attr = object.__setattr__
_UUID_UNKNOWN = uuid.SafeUUID.unknown
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class UUIDType(FieldType):
    """A :class:`uuid.UUID` in memory; on the wire its canonical form,
    lowercase ``8-4-4-4-12`` hex. Other spellings are refused when decoding."""

    name = "uuid"

    def validate(self, value: Any, path: str) -> Any:
        if not isinstance(value, uuid.UUID):
            raise self._bad_value(value, path, "uuid.UUID")
        return value

    def fast_check(self, var: str) -> str:
        return f"type({var}) is _UUID"

    def from_prim(self, prim: Any, path: str, limits: DecodeLimits, depth: int) -> Any:
        if type(prim) is not str or _UUID_RE.fullmatch(prim) is None:
            raise self._bad_prim(prim, path, "canonical UUID string")
        # uuid.UUID(text) re-parses what the pattern already proved; build it
        # from the integer directly (about twice as fast).
        value = _new_uuid(uuid.UUID)
        _set_attr(value, "int", int(prim.replace("-", ""), 16))
        _set_attr(value, "is_safe", _UUID_UNKNOWN)
        return value

    def to_prim_src(self, var: str) -> str:
        return f"str({var})"

    def to_prim(self, value: Any, path: str, version_for: VersionFor | None) -> Any:
        return str(value)


class DateTimeType(FieldType):
    """A timezone-aware :class:`datetime.datetime`; naive ones are refused.

    On the wire: ISO 8601 with microseconds (when not zero) and the UTC
    offset, so values round-trip exactly. Decoding also accepts the ``Z``
    suffix that oslo.versionedobjects writes."""

    name = "datetime"

    def validate(self, value: Any, path: str) -> Any:
        if not isinstance(value, _dt.datetime):
            raise self._bad_value(value, path, "timezone-aware datetime")
        offset = value.utcoffset() if value.tzinfo is not None else None
        if offset is None:
            raise ValidationError(
                path, "naive datetime refused: attach a timezone (e.g. tzinfo=timezone.utc)"
            )
        if offset % _MINUTE:
            raise ValidationError(
                path, f"UTC offset {offset} refused: ISO 8601 offsets are whole minutes")
        if offset and not _utc_representable(value, offset):
            raise ValidationError(path, "datetime refused: its UTC instant is outside years "
                                        "1-9999, so stores that keep UTC cannot hold it")
        return value

    def fast_check(self, var: str) -> str:
        return f"(type({var}) is _datetime and {var}.tzinfo is _utc)"

    def from_prim(self, prim: Any, path: str, limits: DecodeLimits, depth: int) -> Any:
        if type(prim) is not str or len(prim) > 64:
            raise self._bad_prim(prim, path, "ISO 8601 datetime string")
        try:
            value = _dt.datetime.fromisoformat(prim)
        except ValueError:
            raise DecodeError(path, f"not an ISO 8601 datetime: {_short(prim)}") from None
        offset = value.utcoffset()
        if offset is None:
            raise DecodeError(path, f"datetime without a UTC offset: {_short(prim)}")
        if offset % _MINUTE:
            raise DecodeError(path, f"UTC offset {offset} is not whole minutes: {_short(prim)}")
        if offset and not _utc_representable(value, offset):
            raise DecodeError(path, f"UTC instant outside years 1-9999: {_short(prim)}")
        return value

    def to_prim_src(self, var: str) -> str:
        return f"{var}.isoformat()"

    def to_prim(self, value: Any, path: str, version_for: VersionFor | None) -> Any:
        return value.isoformat()


class EnumType(FieldType):
    """One of a fixed set of strings, declared as ``Literal["a", "b"]``."""

    name = "enum"

    def __init__(self, values: frozenset[str]) -> None:
        if not values or not all(type(v) is str for v in values):
            raise DefinitionError("an enum is a Literal of one or more strings")
        self.values = frozenset(values)

    def validate(self, value: Any, path: str) -> Any:
        if type(value) is not str or value not in self.values:
            raise ValidationError(
                path, f"{_short(value)} is not one of {sorted(self.values)}"
            )
        return value

    def fast_check(self, var: str) -> str | None:
        return None  # generated code calls validate; membership needs the set

    def from_prim(self, prim: Any, path: str, limits: DecodeLimits, depth: int) -> Any:
        if type(prim) is not str or prim not in self.values:
            raise DecodeError(path, f"{_short(prim)} is not one of {sorted(self.values)}")
        return prim

    def to_prim_src(self, var: str) -> str:
        return var

    def canonical(self, version_of: Callable[[type[VersionedObject]], str]) -> dict[str, Any]:
        return {"type": "enum", "values": sorted(self.values)}

    def without_enum_values(self, values: frozenset[str]) -> FieldType:
        missing = values - self.values
        if missing:
            raise DefinitionError(f"enum {self.describe()} has no values {sorted(missing)}")
        return EnumType(self.values - values)

    def describe(self) -> str:
        return "Literal[" + ", ".join(repr(v) for v in sorted(self.values)) + "]"


class NullableType(FieldType):
    """``T | None``."""

    def __init__(self, inner: FieldType) -> None:
        if isinstance(inner, NullableType):
            inner = inner.inner
        self.inner: FieldType = inner
        self.mutable = inner.mutable
        self.hashable = inner.hashable
        self.name = inner.name

    def validate(self, value: Any, path: str) -> Any:
        return None if value is None else self.inner.validate(value, path)

    def fast_check(self, var: str) -> str | None:
        inner = self.inner.fast_check(var)
        return None if inner is None else f"({var} is None or {inner})"

    def to_prim(self, value: Any, path: str, version_for: VersionFor | None) -> Any:
        return None if value is None else self.inner.to_prim(value, path, version_for)

    def to_prim_src(self, var: str) -> str | None:
        inner = self.inner.to_prim_src(var)
        if inner is None:
            return None
        return var if inner == var else f"(None if {var} is None else {inner})"

    def from_prim(self, prim: Any, path: str, limits: DecodeLimits, depth: int) -> Any:
        return None if prim is None else self.inner.from_prim(prim, path, limits, depth)

    def fast_decode_check(self, var: str) -> str | None:
        inner = self.inner.fast_decode_check(var)
        return None if inner is None else f"({var} is None or {inner})"

    def snapshot(self, value: Any) -> Any:
        return None if value is None else self.inner.snapshot(value)

    def changed(self, value: Any, baseline: Any) -> bool:
        if value is None or baseline is None:
            return value is not baseline
        return self.inner.changed(value, baseline)

    def changed_src(self, var: str, base: str) -> str | None:
        inner = self.inner.changed_src(var, base)
        if inner is None:
            return None
        if inner == f"{var} != {base}":
            return inner
        return (f"(({var} is not {base}) if ({var} is None or {base} is None) else ({inner}))")

    def canonical(self, version_of: Callable[[type[VersionedObject]], str]) -> dict[str, Any]:
        return {**self.inner.canonical(version_of), "nullable": True}

    def without_enum_values(self, values: frozenset[str]) -> FieldType:
        return NullableType(self.inner.without_enum_values(values))

    def object_classes(self) -> Iterator[type[VersionedObject]]:
        return self.inner.object_classes()

    def describe(self) -> str:
        return f"{self.inner.describe()} | None"


class _Collection(FieldType):
    mutable = True
    hashable = False

    def __init__(self, item: FieldType) -> None:
        self.item = item
        # Items that need no conversion and only an exact type check: the
        # container is then checked in C with _simple.issuperset(map(type, v)).
        self._simple: frozenset[type] | None = None
        self._ints = False
        if type(item) is StrType and item.max_length is None:
            self._simple = frozenset({str})
        elif type(item) is IntType:
            self._simple = frozenset({int})
        elif type(item) is BoolType:
            self._simple = frozenset({bool})
        self._ints = type(item) is IntType

    def _check_length(self, prim: Any, path: str, limits: DecodeLimits, depth: int) -> None:
        if depth > limits.max_depth:
            raise LimitExceededError(path, f"nesting deeper than max_depth {limits.max_depth}")
        if len(prim) > limits.max_items:
            raise LimitExceededError(
                path, f"{len(prim)} items is over max_items {limits.max_items}"
            )

    def without_enum_values(self, values: frozenset[str]) -> FieldType:
        return type(self)(self.item.without_enum_values(values))

    def object_classes(self) -> Iterator[type[VersionedObject]]:
        return self.item.object_classes()

    def canonical(self, version_of: Callable[[type[VersionedObject]], str]) -> dict[str, Any]:
        return {"type": self.name, "item": self.item.canonical(version_of)}

    def describe(self) -> str:
        return f"{self.name}[{self.item.describe()}]"


class ListType(_Collection):
    """``list[T]``."""

    name = "list"

    def validate(self, value: Any, path: str) -> Any:
        if not isinstance(value, list):
            raise self._bad_value(value, path)
        item = self.item
        check = item.validate
        out = None
        for i, x in enumerate(value):
            y = check(x, f"{path}[{i}]")
            if y is not x and out is None:
                out = list(value[:i])
            if out is not None:
                out.append(y)
        return value if out is None else out

    def fast_check(self, var: str) -> str | None:
        inner = self.item.fast_check("_x")
        if inner is None or isinstance(self.item, _Collection | ObjectType):
            return None
        return f"(type({var}) is list and all({inner} for _x in {var}))"

    def to_prim(self, value: Any, path: str, version_for: VersionFor | None) -> Any:
        item = self.item
        simple = self._simple
        if (simple is not None and type(value) is list and simple.issuperset(map(type, value))
                and (not self._ints or ints_in_range(value))):
            return value[:]
        if not isinstance(value, list):
            raise self._bad_value(value, path)
        if isinstance(item, ObjectType):
            if item.sent_current(version_for):
                try:
                    fast = [x._rs_envelope() for x in value if type(x) is item.cls]
                except RollsafeError:  # the precise loop below names the path
                    fast = None
                if fast is not None and len(fast) == len(value):
                    return fast
            return [item.to_prim(x, f"{path}[{i}]", version_for) for i, x in enumerate(value)]
        check = _SIMPLE_CHECKS.get(type(item))
        if check is not None:
            for i, x in enumerate(value):
                if not check(item, x):
                    item.validate(x, f"{path}[{i}]")
            return list(value)
        return [
            item.to_prim(item.validate(x, f"{path}[{i}]"), f"{path}[{i}]", version_for)
            for i, x in enumerate(value)
        ]

    def from_prim(self, prim: Any, path: str, limits: DecodeLimits, depth: int) -> Any:
        if type(prim) is not list:
            raise self._bad_prim(prim, path)
        self._check_length(prim, path, limits, depth)
        item = self.item
        simple = self._simple
        if simple is not None and simple.issuperset(map(type, prim)) and (
                not self._ints or ints_in_range(prim)):
            return prim[:]
        dec = item.from_prim
        return [dec(x, f"{path}[{i}]", limits, depth + 1) for i, x in enumerate(prim)]

    def snapshot(self, value: Any) -> Any:
        if self.item.mutable and not isinstance(self.item, ObjectType):
            snap = self.item.snapshot
            return [snap(x) for x in value]
        return list(value)

    def snapshot_src(self, var: str) -> str | None:
        if self.item.mutable and not isinstance(self.item, ObjectType):
            return None
        return f"{var}[:]"

    def changed(self, value: Any, baseline: Any) -> bool:
        item = self.item
        if not item.mutable:
            return bool(value != baseline)
        if len(value) != len(baseline):
            return True
        if isinstance(item, ObjectType | NullableType) and isinstance(
            getattr(item, "inner", item), ObjectType
        ):
            return any(
                x is not y or (x is not None and x._rs_has_changes())
                for x, y in zip(value, baseline, strict=True)
            )
        return any(item.changed(x, y) for x, y in zip(value, baseline, strict=True))

    def changed_src(self, var: str, base: str) -> str | None:
        return None if self.item.mutable else f"{var} != {base}"


class SetType(_Collection):
    """``set[T]`` of hashable items; sent as a sorted list."""

    name = "set"

    def __init__(self, item: FieldType) -> None:
        if not item.hashable:
            raise DefinitionError(f"set items must be hashable, {item.describe()} is not")
        super().__init__(item)

    def validate(self, value: Any, path: str) -> Any:
        if not isinstance(value, set):
            raise self._bad_value(value, path)
        check = self.item.validate
        out = set()
        converted = False
        for x in value:
            y = check(x, f"{path}[{_short(x)}]")
            converted = converted or y is not x
            out.add(y)
        return out if converted else value

    def to_prim(self, value: Any, path: str, version_for: VersionFor | None) -> Any:
        if not isinstance(value, set):
            raise self._bad_value(value, path)
        item = self.item
        prims = [item.to_prim(item.validate(x, f"{path}[{_short(x)}]"), path, version_for)
                 for x in value]
        try:
            return sorted(prims)
        except TypeError:  # mixed None and values in a set of T | None
            return sorted(prims, key=lambda p: (p is not None, p))

    def from_prim(self, prim: Any, path: str, limits: DecodeLimits, depth: int) -> Any:
        if type(prim) is not list:
            raise self._bad_prim(prim, path, "list (a set on the wire)")
        self._check_length(prim, path, limits, depth)
        dec = self.item.from_prim
        out = {dec(x, f"{path}[{i}]", limits, depth + 1) for i, x in enumerate(prim)}
        if len(out) != len(prim):
            raise DecodeError(path, "set has duplicate items")
        return out

    def snapshot(self, value: Any) -> Any:
        return set(value)

    def snapshot_src(self, var: str) -> str:
        return f"set({var})"

    def changed_src(self, var: str, base: str) -> str:
        return f"{var} != {base}"


class DictType(_Collection):
    """``dict[str, T]``: string keys only, as on the wire."""

    name = "dict"

    def validate(self, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            raise self._bad_value(value, path)
        check = self.item.validate
        out = None
        for k, x in value.items():
            if type(k) is not str:
                raise ValidationError(f"{path}[{_short(k)}]",
                                      f"dict keys must be str, got {_kind(k)}")
            y = check(x, f"{path}[{_short(k)}]")
            if y is not x:
                out = out or dict(value)
                out[k] = y
        return value if out is None else out

    def fast_check(self, var: str) -> str | None:
        inner = self.item.fast_check("_v")
        if inner is None or isinstance(self.item, _Collection | ObjectType):
            return None
        return (f"(type({var}) is dict and all(type(_k) is str and {inner} "
                f"for _k, _v in {var}.items()))")

    def to_prim(self, value: Any, path: str, version_for: VersionFor | None) -> Any:
        simple = self._simple
        if (simple is not None and type(value) is dict and _STR_ONLY.issuperset(map(type, value))
                and simple.issuperset(map(type, value.values()))
                and (not self._ints or ints_in_range(value.values()))):
            return value.copy()
        if not isinstance(value, dict):
            raise self._bad_value(value, path)
        item = self.item
        out = {}
        for k, x in value.items():
            if type(k) is not str:
                raise ValidationError(f"{path}[{_short(k)}]",
                                      f"dict keys must be str, got {_kind(k)}")
            sub = f"{path}[{_short(k)}]"
            if isinstance(item, ObjectType):
                out[k] = item.to_prim(x, sub, version_for)
            else:
                out[k] = item.to_prim(item.validate(x, sub), sub, version_for)
        return out

    def from_prim(self, prim: Any, path: str, limits: DecodeLimits, depth: int) -> Any:
        if type(prim) is not dict:
            raise self._bad_prim(prim, path)
        self._check_length(prim, path, limits, depth)
        item = self.item
        simple = self._simple
        if (simple is not None and _STR_ONLY.issuperset(map(type, prim))
                and simple.issuperset(map(type, prim.values()))
                and (not self._ints or ints_in_range(prim.values()))):
            return prim.copy()
        dec = item.from_prim
        out = {}
        for k, x in prim.items():
            if type(k) is not str:
                raise DecodeError(f"{path}[{_short(k)}]",
                                  f"dict keys must be str, got {_kind(k)}")
            out[k] = dec(x, f"{path}[{_short(k)}]", limits, depth + 1)
        return out

    def snapshot(self, value: Any) -> Any:
        if self.item.mutable and not isinstance(self.item, ObjectType):
            snap = self.item.snapshot
            return {k: snap(x) for k, x in value.items()}
        return dict(value)

    def snapshot_src(self, var: str) -> str | None:
        if self.item.mutable and not isinstance(self.item, ObjectType):
            return None
        return f"{var}.copy()"

    def changed(self, value: Any, baseline: Any) -> bool:
        item = self.item
        if not item.mutable:
            return bool(value != baseline)
        if value.keys() != baseline.keys():
            return True
        return any(item.changed(value[k], baseline[k]) for k in value)

    def changed_src(self, var: str, base: str) -> str | None:
        return None if self.item.mutable else f"{var} != {base}"


class ObjectType(FieldType):
    """A nested versioned object; on the wire, a nested envelope."""

    mutable = True
    hashable = False
    name = "object"

    def __init__(self, cls: type[VersionedObject]) -> None:
        self.cls = cls

    def validate(self, value: Any, path: str) -> Any:
        if type(value) is not self.cls:
            raise self._bad_value(value, path)
        return value

    def fast_check(self, var: str) -> str | None:
        return None

    def to_prim(self, value: Any, path: str, version_for: VersionFor | None) -> Any:
        if type(value) is not self.cls:
            raise self._bad_value(value, path)
        if version_for is None:
            return self.cls._rs_info.encode(value, None, None, path)
        return self.cls._rs_info.encode(value, version_for.version_for(self.cls),
                                        version_for.manifest, path)

    def sent_current(self, version_for: VersionFor | None) -> bool:
        """Whether objects of this type are encoded at their current version
        with no manifest (so their fast encoder applies)."""
        if version_for is None:
            return True
        if version_for.manifest is not None:
            return False
        return version_for.version_for(self.cls) == self.cls._rs_info.current.number

    def from_prim(self, prim: Any, path: str, limits: DecodeLimits, depth: int) -> Any:
        return self.cls._rs_info.decode(prim, path, limits, depth)

    def snapshot(self, value: Any) -> Any:
        return value

    def changed(self, value: Any, baseline: Any) -> bool:
        return value is not baseline or value._rs_has_changes()

    def canonical(self, version_of: Callable[[type[VersionedObject]], str]) -> dict[str, Any]:
        return {"type": "object", "name": self.cls._rs_info.name,
                "version": version_of(self.cls)}

    def object_classes(self) -> Iterator[type[VersionedObject]]:
        yield self.cls

    def describe(self) -> str:
        return self.cls.__name__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectType) and other.cls is self.cls

    def __hash__(self) -> int:
        return hash(self.cls)


_STR_ONLY = frozenset({str})

_SIMPLE_CHECKS: dict[type[FieldType], Callable[[Any, Any], bool]] = {
    StrType: lambda t, x: type(x) is str and (t.max_length is None or len(x) <= t.max_length),
    IntType: lambda t, x: type(x) is int and INT_MIN <= x <= INT_MAX,
    BoolType: lambda t, x: type(x) is bool,
    EnumType: lambda t, x: type(x) is str and x in t.values,
}

_SCALARS: dict[Any, Callable[[], FieldType]] = {
    str: StrType,
    int: IntType,
    float: FloatType,
    bool: BoolType,
    uuid.UUID: UUIDType,
    _dt.datetime: DateTimeType,
}


def type_from_annotation(annotation: Any, where: str, max_length: int | None = None) -> FieldType:
    """Build the field type an annotation declares.

    ``where`` names the field for error messages; ``max_length`` applies to
    a ``str`` (or ``str | None``) field."""
    from rollsafe.objects.base import VersionedObject

    def build(ann: Any) -> FieldType:
        origin = typing.get_origin(ann)
        args = typing.get_args(ann)
        if origin is typing.Annotated:
            return build(args[0])
        if origin in (typing.Union, types.UnionType):
            rest = [a for a in args if a is not type(None)]
            if len(rest) != 1 or len(rest) == len(args):
                raise DefinitionError(
                    f"{where}: only 'T | None' unions are supported, got {ann!r}"
                )
            return NullableType(build(rest[0]))
        if origin is Literal:
            return EnumType(frozenset(args))
        if origin is list:
            return ListType(build(args[0])) if args else _untyped(ann)
        if origin is set:
            return SetType(build(args[0])) if args else _untyped(ann)
        if origin is dict:
            if not args:
                return _untyped(ann)
            if args[0] is not str:
                raise DefinitionError(f"{where}: dict keys must be str, got {args[0]!r}")
            return DictType(build(args[1]))
        if ann in _SCALARS:
            return _SCALARS[ann]()
        if isinstance(ann, type) and issubclass(ann, VersionedObject):
            return ObjectType(ann)
        raise DefinitionError(
            f"{where}: unsupported field type {ann!r}; use str, int, float, bool, "
            "uuid.UUID, datetime, Literal[...], list/dict/set of those, an object "
            "class, or 'T | None'"
        )

    def _untyped(ann: Any) -> FieldType:
        raise DefinitionError(f"{where}: give the item type, e.g. list[str], not {ann!r}")

    ftype = build(annotation)
    if max_length is not None:
        base = ftype.inner if isinstance(ftype, NullableType) else ftype
        if not isinstance(base, StrType):
            raise DefinitionError(f"{where}: max_length applies only to str fields")
        base.max_length = StrType(max_length).max_length
    return ftype
