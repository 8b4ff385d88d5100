"""How one object class is stored: key, project scope, indexed fields."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from rollsafe.errors import DefinitionError
from rollsafe.objects.base import VersionedObject
from rollsafe.objects.types import (
    EnumType,
    FieldType,
    IntType,
    NullableType,
    StrType,
    UUIDType,
)

__all__ = ["Collection"]

_KEY_TYPES = (StrType, IntType, UUIDType)
_NAME_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class Collection:
    """The storage declaration of one object class.

    ``key`` names the field that identifies an object (str, int or UUID;
    never changes). ``project`` names the field holding the tenant: every
    read and write can be scoped to a project, and an object of another
    project is not found. ``indexes`` names the fields users filter or
    order by. ``name`` is the table / key prefix (default: the class name in
    snake case)."""

    def __init__(self, cls: type[VersionedObject], *, key: str = "id",
                 project: str | None = None, indexes: Sequence[str] = (),
                 name: str | None = None, oldest: str | None = None) -> None:
        info = cls._rs_info
        info.build()
        self.cls = cls
        self.object_name = info.name
        self.name = name or _snake(info.name)
        if not _NAME_RE.fullmatch(self.name):
            raise DefinitionError(f"collection name {self.name!r} must be lowercase letters, "
                                  "digits and underscores")
        fields = info.fields
        self.key = key
        self.project = project
        self.indexes = tuple(dict.fromkeys(indexes))
        for label, fname, allowed in (("key", key, _KEY_TYPES),
                                      ("project", project, (StrType, UUIDType))):
            if fname is None:
                continue
            fld = fields.get(fname)
            if fld is None:
                raise DefinitionError(f"{info.name} has no field {fname!r} to use as {label}")
            if not isinstance(fld.ftype, allowed):
                raise DefinitionError(f"{info.name}.{fname} cannot be the {label}: it must be "
                                      "a non-nullable str, int or uuid.UUID field")
        for fname in self.indexes:
            fld = fields.get(fname)
            if fld is None:
                raise DefinitionError(f"{info.name} has no field {fname!r} to index")
            if not is_scalar(fld.ftype):
                raise DefinitionError(f"{info.name}.{fname} cannot be indexed: only str, int, "
                                      "float, bool, UUID, datetime and enum fields can")
        try:
            first = info.history.resolve(oldest, info.name) if oldest else \
                info.history.versions[0]
        except Exception as exc:
            raise DefinitionError(f"Collection({info.name}, oldest={oldest!r}): {exc}") \
                from None
        #: The oldest version still stored; contract drops what only older
        #: versions used, and rows older than this cannot be read.
        self.oldest = first.number
        self.stored_versions = [v.number for v in info.history.versions
                                if v.key >= first.key]
        self._check_history_keeps(key)
        if project is not None:
            self._check_history_keeps(project)
        #: The current fields besides the key and the project: what a stored
        #: object can change.
        self.value_fields = frozenset(fields.keys() - {key, project})
        #: The fields that can hold objects, by their name in any version.
        self.object_fields = tuple(dict.fromkeys(
            name for schema in info.schemas.values() for name, fld in schema.items()
            if any(True for _ in fld.ftype.object_classes())))

    def _check_history_keeps(self, fname: str) -> None:
        info = self.cls._rs_info
        for version in info.history.versions:
            fld = info.schemas[version.key].get(fname)
            if fld is None or type(fld.ftype) is not type(info.fields[fname].ftype):
                raise DefinitionError(
                    f"{info.name}.{fname} is the key or project field, so every version "
                    f"must have it with the same type; {version.number} does not")

    def key_of(self, data: dict[str, Any]) -> Any:
        """The key of a record's primitive data."""
        return data[self.key]

    def project_of(self, data: dict[str, Any]) -> Any:
        """The project of a record's primitive data (None when unscoped)."""
        return None if self.project is None else data[self.project]

    def __repr__(self) -> str:
        return f"Collection({self.object_name}, name={self.name!r})"


def scalar_kind(ftype: FieldType) -> str | None:
    """What one plain value a field holds: ``"str"``, ``"enum"``, ``"int"``,
    ``"float"``, ``"bool"``, ``"uuid"`` or ``"datetime"`` (nullable or not);
    None for collections and objects. Backends map it to their own types."""
    from rollsafe.objects.types import BoolType, DateTimeType, FloatType

    inner = ftype.inner if isinstance(ftype, NullableType) else ftype
    for cls, kind in ((EnumType, "enum"), (StrType, "str"), (BoolType, "bool"),
                      (IntType, "int"), (FloatType, "float"), (UUIDType, "uuid"),
                      (DateTimeType, "datetime")):
        if isinstance(inner, cls):
            return kind
    return None


def is_scalar(ftype: FieldType) -> bool:
    """Whether a field holds one plain value (not a collection or object)."""
    return scalar_kind(ftype) is not None
