"""Version histories: what each version of a class changed.

A class declares its history once, next to its fields; it reads like a
changelog::

    class Application(VersionedObject, registry=reg):
        VERSIONS = History(
            Version("1.0", "Initial version"),
            Version("1.1", "Count restarts", Added("restart_count")),
            Version("1.2", "Owner is now the project", Renamed("owner", "project")),
        )

From that declaration rollsafe derives the schema of every version, the
downgrade of a current object to any older version, and the upgrade of an
older payload to the current version. Changes are mechanical where they can
be (:class:`Added`, :class:`Removed`, :class:`Renamed`,
:class:`EnumValuesAdded`, :class:`NestedVersion`); :class:`Retyped` and
:class:`Custom` take converter functions for the rest.

Converters work on decoded values (a ``str``, a ``datetime``, an object),
never on wire primitives.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Callable, Iterable
from typing import Any

from rollsafe.errors import (
    DefinitionError,
    UnknownVersionError,
    VersionTooNewError,
    short_repr,
)
from rollsafe.objects.fields import MISSING, Field
from rollsafe.objects.types import (
    EnumType,
    FieldType,
    NullableType,
    _Collection,
    type_from_annotation,
)

__all__ = [
    "Added",
    "Change",
    "Custom",
    "EnumValuesAdded",
    "History",
    "NestedVersion",
    "Removed",
    "Renamed",
    "Retyped",
    "Version",
    "parse_version",
]

_VERSION_RE = re.compile(r"(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})(?:\.(0|[1-9]\d{0,5}))?")

Values = dict[str, Any]
Schema = dict[str, Field]


def parse_version(text: object) -> tuple[int, int]:
    """``"1.2"`` or ``"1.2.3"`` -> ``(1, 2)``; the patch level is ignored for
    compatibility, as in oslo.versionedobjects. Raises ValueError."""
    if type(text) is not str:
        raise ValueError(f"a version is a string like '1.2', got {type(text).__name__}")
    match = _VERSION_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"{text[:40]!r} is not a version like '1.2' or '1.2.3'")
    return int(match.group(1)), int(match.group(2))


class Change:
    """One change a version made. Subclasses say how the schema differs
    from the version before, and how values move up and down."""

    def previous_schema(self, schema: Schema, where: str) -> Schema:
        """The schema of the version before, given the schema of this one."""
        return schema

    def upgrade(self, values: Values, path: str) -> None:
        """Move ``values`` from the version before to this one, in place."""

    def downgrade(self, values: Values, path: str) -> None:
        """Move ``values`` from this version to the one before, in place."""

    def old_name(self, name: str) -> str | None:
        """The name a field of this version had in the version before
        (None when it did not exist there)."""
        return name

    def converts(self) -> frozenset[str] | None:
        """Fields whose downgraded values come from user code (so they are
        checked against the older type before sending); None means all."""
        return frozenset()

    def moves_data(self) -> bool:
        """Whether the change may move a value from one field to another, so
        that a change to any field is a change to every field across it."""
        return False

    def canonical(self) -> dict[str, Any]:
        """The change as plain data (for schema snapshots)."""
        return {"change": type(self).__name__}


class Added(Change):
    """A field was added. Older payloads get ``default`` (or the field's own
    default); downgrades drop the field."""

    def __init__(self, name: str, *, default: Any = MISSING) -> None:
        self.name = name
        self.default = default
        self._field: Field | None = None

    def previous_schema(self, schema: Schema, where: str) -> Schema:
        if self.name not in schema:
            raise DefinitionError(
                f"{where}: Added({self.name!r}) but no such field in that version")
        fld = schema[self.name]
        if self.default is MISSING and not fld.has_default:
            raise DefinitionError(
                f"{where}: Added({self.name!r}) has no default, so an older payload cannot be "
                f"upgraded; give the field a default or write Added({self.name!r}, default=...)"
            )
        if self.default is not MISSING:
            try:
                fld = Field(fld.name, fld.ftype, self.default, None, fld.read_only)
            except DefinitionError as exc:
                raise DefinitionError(f"{where}: Added({self.name!r}): {exc}") from None
        self._field = fld
        return {k: v for k, v in schema.items() if k != self.name}

    def upgrade(self, values: Values, path: str) -> None:
        assert self._field is not None
        values[self.name] = self._field.make_default(f"{path}.{self.name}")

    def downgrade(self, values: Values, path: str) -> None:
        values.pop(self.name, None)

    def old_name(self, name: str) -> str | None:
        return None if name == self.name else name

    def canonical(self) -> dict[str, Any]:
        return {"change": "Added", "name": self.name}


class Removed(Change):
    """A field was removed. ``annotation`` is its old type; ``default`` is
    what downgrades send for it (None allowed for a nullable type)."""

    def __init__(self, name: str, annotation: Any, *, default: Any = MISSING,
                 max_length: int | None = None) -> None:
        self.name = name
        self.annotation = annotation
        self.default = default
        self.max_length = max_length
        self._field: Field | None = None

    def previous_schema(self, schema: Schema, where: str) -> Schema:
        if self.name in schema:
            raise DefinitionError(f"{where}: Removed({self.name!r}) but the field still exists")
        ftype = type_from_annotation(self.annotation, f"{where}: Removed({self.name!r})",
                                     self.max_length)
        try:
            fld = Field(self.name, ftype, self.default)
        except DefinitionError as exc:
            raise DefinitionError(f"{where}: Removed({self.name!r}): {exc}") from None
        if not fld.has_default:
            raise DefinitionError(
                f"{where}: Removed({self.name!r}) needs a default so that a downgrade to the "
                f"older version can still send the field: Removed({self.name!r}, ..., default=...)"
            )
        self._field = fld
        return {**schema, self.name: fld}

    def upgrade(self, values: Values, path: str) -> None:
        values.pop(self.name, None)

    def downgrade(self, values: Values, path: str) -> None:
        assert self._field is not None
        values[self.name] = self._field.make_default(f"{path}.{self.name}")

    def canonical(self) -> dict[str, Any]:
        return {"change": "Removed", "name": self.name}


class Renamed(Change):
    """A field was renamed from ``old`` to ``new``; the value is unchanged."""

    def __init__(self, old: str, new: str) -> None:
        self.old = old
        self.new = new

    def previous_schema(self, schema: Schema, where: str) -> Schema:
        if self.new not in schema or self.old in schema:
            raise DefinitionError(
                f"{where}: Renamed({self.old!r}, {self.new!r}) needs field {self.new!r} and "
                f"no field {self.old!r} in that version"
            )
        return {(self.old if k == self.new else k): (v.renamed(self.old) if k == self.new else v)
                for k, v in schema.items()}

    def upgrade(self, values: Values, path: str) -> None:
        if self.old in values:
            values[self.new] = values.pop(self.old)

    def downgrade(self, values: Values, path: str) -> None:
        if self.new in values:
            values[self.old] = values.pop(self.new)

    def old_name(self, name: str) -> str | None:
        return self.old if name == self.new else name

    def canonical(self) -> dict[str, Any]:
        return {"change": "Renamed", "old": self.old, "new": self.new}


class Retyped(Change):
    """A field's type changed from ``annotation``. ``upgrade`` converts an
    old value to the new type, ``downgrade`` the reverse; either may raise
    ValueError for a value that has no equivalent."""

    def __init__(self, name: str, annotation: Any, *, upgrade: Callable[[Any], Any],
                 downgrade: Callable[[Any], Any], default: Any = MISSING,
                 max_length: int | None = None) -> None:
        self.name = name
        self.annotation = annotation
        self.up = upgrade
        self.down = downgrade
        self.default = default
        self.max_length = max_length
        self._old: FieldType | None = None

    def previous_schema(self, schema: Schema, where: str) -> Schema:
        if self.name not in schema:
            raise DefinitionError(f"{where}: Retyped({self.name!r}) but no such field")
        ftype = type_from_annotation(self.annotation, f"{where}: Retyped({self.name!r})",
                                     self.max_length)
        self._old = ftype
        try:
            return {**schema, self.name: schema[self.name].with_type(ftype, self.default)}
        except DefinitionError as exc:
            raise DefinitionError(f"{where}: Retyped({self.name!r}): {exc}") from None

    def upgrade(self, values: Values, path: str) -> None:
        if self.name in values:
            values[self.name] = _convert(self.up, values[self.name], f"{path}.{self.name}")

    def downgrade(self, values: Values, path: str) -> None:
        if self.name in values:
            # A copy: a converter that edits its argument must not edit the object.
            values[self.name] = _convert(self.down, copy.deepcopy(values[self.name]),
                                         f"{path}.{self.name}")

    def converts(self) -> frozenset[str] | None:
        return frozenset({self.name})

    def canonical(self) -> dict[str, Any]:
        return {"change": "Retyped", "name": self.name}


class EnumValuesAdded(Change):
    """Values were added to an enum field (or to the enum inside a list,
    set, dict or nullable field). ``fallback`` maps each new value to the old
    value a downgrade sends instead; without one, downgrading an object that
    holds a new value raises :class:`rollsafe.errors.DowngradeError`."""

    def __init__(self, name: str, values: Iterable[str], *,
                 fallback: dict[str, str] | None = None) -> None:
        self.name = name
        self.values = frozenset(values)
        self.fallback = dict(fallback or {})
        if not self.values:
            raise DefinitionError(f"EnumValuesAdded({name!r}) lists no values")
        unknown = set(self.fallback) - self.values
        if unknown:
            raise DefinitionError(f"EnumValuesAdded({name!r}): fallback for values it did not "
                                  f"add: {sorted(unknown)}")
        self._old: FieldType | None = None

    def previous_schema(self, schema: Schema, where: str) -> Schema:
        if self.name not in schema:
            raise DefinitionError(f"{where}: EnumValuesAdded({self.name!r}) but no such field")
        fld = schema[self.name]
        try:
            old = fld.ftype.without_enum_values(self.values)
        except DefinitionError as exc:
            raise DefinitionError(f"{where}: EnumValuesAdded({self.name!r}): {exc}") from None
        bad = {v for v in self.fallback.values() if v in self.values}
        if bad or not all(_enum_values(old) >= {v} for v in self.fallback.values()):
            raise DefinitionError(f"{where}: EnumValuesAdded({self.name!r}): every fallback "
                                  f"must be a value the older version has")
        self._old = old
        default = fld.default if fld.default not in self.values else MISSING
        return {**schema, self.name: fld.with_type(old, default)}

    def downgrade(self, values: Values, path: str) -> None:
        if self.name in values and self._old is not None:
            values[self.name] = _replace_enum(self._old, values[self.name], self,
                                              f"{path}.{self.name}")

    def canonical(self) -> dict[str, Any]:
        return {"change": "EnumValuesAdded", "name": self.name, "values": sorted(self.values)}


class NestedVersion(Change):
    """From this version on, the object held in field ``name`` is sent at
    ``version`` of its class (bump the parent whenever a child bumps, so an
    older reader of the parent gets children it can read)."""

    def __init__(self, name: str, version: str) -> None:
        try:
            parse_version(version)
        except ValueError as exc:
            raise DefinitionError(f"NestedVersion({name!r}): {exc}") from None
        self.name = name
        self.version = version

    def canonical(self) -> dict[str, Any]:
        return {"change": "NestedVersion", "name": self.name, "version": self.version}


class Custom(Change):
    """Escape hatch for a change that is not mechanical: ``upgrade`` and
    ``downgrade`` receive the values dict (field name -> value) and change it
    in place. Combine with the mechanical changes for schema effects."""

    def __init__(self, description: str, *, upgrade: Callable[[Values], None],
                 downgrade: Callable[[Values], None]) -> None:
        self.description = description
        self.up = upgrade
        self.down = downgrade

    def upgrade(self, values: Values, path: str) -> None:
        _convert_values(self.up, values, path)

    def downgrade(self, values: Values, path: str) -> None:
        # Copies: a converter that edits values in place must not edit the object.
        for name, value in values.items():
            values[name] = copy.deepcopy(value)
        _convert_values(self.down, values, path)

    def converts(self) -> frozenset[str] | None:
        return None

    def moves_data(self) -> bool:
        # Its functions may compute any field from any other (a flag moved
        # into a nested object, a name split in two): writes driven by what
        # changed must then write every field, or a moved value is lost.
        return True

    def canonical(self) -> dict[str, Any]:
        return {"change": "Custom", "description": self.description}


def _convert(fn: Callable[[Any], Any], value: Any, path: str) -> Any:
    from rollsafe.errors import DowngradeError

    try:
        return fn(value)
    except (ValueError, TypeError, KeyError) as exc:
        raise DowngradeError(path, f"converter {getattr(fn, '__name__', fn)!s} refused the "
                                   f"value: {exc}") from None


def _convert_values(fn: Callable[[Values], None], values: Values, path: str) -> None:
    from rollsafe.errors import DowngradeError

    try:
        fn(values)
    except (ValueError, TypeError, KeyError) as exc:
        raise DowngradeError(path, f"converter {getattr(fn, '__name__', fn)!s} failed: {exc}") \
            from None


def _enum_values(ftype: FieldType) -> frozenset[str]:
    while isinstance(ftype, NullableType | _Collection):
        ftype = ftype.inner if isinstance(ftype, NullableType) else ftype.item
    return ftype.values if isinstance(ftype, EnumType) else frozenset()


def _replace_enum(old: FieldType, value: Any, change: EnumValuesAdded, path: str) -> Any:
    from rollsafe.errors import DowngradeError

    if value is None:
        return None
    if isinstance(old, NullableType):
        return _replace_enum(old.inner, value, change, path)
    if isinstance(old, EnumType):
        if value in old.values:
            return value
        if value in change.fallback:
            return change.fallback[value]
        raise DowngradeError(path, f"value {short_repr(value)} does not exist in the older "
                                   "version and the history declares no fallback for it")
    if isinstance(old, _Collection):
        item = old.item
        if isinstance(value, list):
            return [_replace_enum(item, x, change, f"{path}[{i}]") for i, x in enumerate(value)]
        if isinstance(value, set):
            return {_replace_enum(item, x, change, path) for x in value}
        if isinstance(value, dict):
            return {k: _replace_enum(item, x, change, f"{path}[{short_repr(k)}]")
                    for k, x in value.items()}
    return value


class Version:
    """One version in a history: its number, what it is for, and its
    changes relative to the version before."""

    def __init__(self, number: str, description: str = "", *changes: Change) -> None:
        try:
            self.key = parse_version(number)
        except ValueError as exc:
            raise DefinitionError(str(exc)) from None
        if not isinstance(description, str):
            raise DefinitionError(
                f"Version({number!r}, ...): the second argument is the description; "
                "put changes after it"
            )
        bad = [c for c in changes if not isinstance(c, Change)]
        if bad:
            raise DefinitionError(f"Version({number!r}): not a change: {bad[0]!r}")
        self.number = number
        self.description = description
        self.changes = tuple(changes)

    def __repr__(self) -> str:
        return f"Version({self.number!r})"


class History:
    """The ordered versions of one class, oldest first; the last is current."""

    def __init__(self, *versions: Version) -> None:
        if not versions:
            raise DefinitionError("a History needs at least one Version")
        bad = [v for v in versions if not isinstance(v, Version)]
        if bad:
            raise DefinitionError(f"History takes Version(...) entries, got {bad[0]!r}")
        for older, newer in itertools.pairwise(versions):
            if newer.key <= older.key:
                raise DefinitionError(
                    f"versions must increase: {newer.number} comes after {older.number}")
        if any(not isinstance(c, NestedVersion) for c in versions[0].changes):
            raise DefinitionError(f"the first version ({versions[0].number}) describes the "
                                  f"initial fields; its only changes may be NestedVersion "
                                  f"(which nested version it starts with)")
        self.versions = tuple(versions)
        self._by_key = {v.key: v for v in versions}

    @property
    def current(self) -> str:
        """The newest version, as declared."""
        return self.versions[-1].number

    @property
    def numbers(self) -> list[str]:
        """Every version number, oldest first."""
        return [v.number for v in self.versions]

    def resolve(self, version: str, class_name: str) -> Version:
        """The declared version that ``version`` (patch ignored) names."""
        try:
            key = parse_version(version)
        except ValueError as exc:
            raise UnknownVersionError(f"{class_name}: {exc}") from None
        found = self._by_key.get(key)
        if found is not None:
            return found
        if key > self.versions[-1].key:
            raise VersionTooNewError(
                f"{class_name} {version} is newer than this code knows (newest: "
                f"{self.current}); ask the sender for a backport or upgrade this service")
        raise UnknownVersionError(
            f"{class_name} has no version {version}; known: {', '.join(self.numbers)}")

    def index(self, version: Version) -> int:
        """Position of ``version`` (0 is the oldest)."""
        return self.versions.index(version)
