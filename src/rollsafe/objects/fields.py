"""Field declarations: ``field()`` and the resolved :class:`Field`.

A field is a class annotation; its type is the annotation, and ``field()``
adds what the annotation cannot say::

    class App(VersionedObject, registry=reg):
        name: str = field(max_length=80)
        tags: list[str] = field(default_factory=list)
        owner: str | None = None          # nullable, default None
        created_at: datetime = field(read_only=True)
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from rollsafe.errors import DefinitionError, ValidationError
from rollsafe.objects.types import FieldType, NullableType, ObjectType

__all__ = ["MISSING", "Field", "FieldSpec", "field"]


class _Missing:
    """The "no value given" marker (distinct from None, which is a value)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __reduce__(self) -> str:
        return "MISSING"


#: Marks "no value given" (distinct from ``None``, which is a value).
MISSING: Any = _Missing()


class FieldSpec:
    """What ``field()`` returns: options for one field, resolved later."""

    __slots__ = ("default", "default_factory", "max_length", "read_only")

    def __init__(self, default: Any, default_factory: Callable[[], Any] | None,
                 max_length: int | None, read_only: bool) -> None:
        if default is not MISSING and default_factory is not None:
            raise DefinitionError("give default or default_factory, not both")
        self.default = default
        self.default_factory = default_factory
        self.max_length = max_length
        self.read_only = read_only


def field(*, default: Any = MISSING, default_factory: Callable[[], Any] | None = None,
          max_length: int | None = None, read_only: bool = False) -> Any:
    """Declare options of a field.

    ``default`` is used when the field is not given (a mutable default is
    copied for each object); ``default_factory`` is called instead when
    given. ``max_length`` limits a string field. ``read_only`` fields are set
    at construction and refuse assignment afterwards. A field with no default
    must be given, except a nullable one (``T | None``), which defaults to
    None."""
    return FieldSpec(default, default_factory, max_length, read_only)


class Field:
    """A resolved field: name, type, default and flags."""

    __slots__ = ("default", "default_factory", "ftype", "name", "read_only")

    def __init__(self, name: str, ftype: FieldType, default: Any = MISSING,
                 default_factory: Callable[[], Any] | None = None,
                 read_only: bool = False) -> None:
        self.name = name
        self.ftype = ftype
        self.read_only = read_only
        self.default_factory = default_factory
        if default is MISSING and default_factory is None and isinstance(ftype, NullableType):
            default = None
        if default is not MISSING:
            try:
                default = ftype.validate(default, name)
            except ValidationError as exc:
                raise DefinitionError(f"the default is invalid: {exc.problem}") from None
        self.default = default

    @property
    def has_default(self) -> bool:
        """Whether the field can be left out."""
        return self.default is not MISSING or self.default_factory is not None

    def make_default(self, path: str) -> Any:
        """A fresh default value (mutable defaults are copied)."""
        if self.default_factory is not None:
            return self.ftype.validate(self.default_factory(), path)
        if self.ftype.mutable and self.default is not None:
            return copy.deepcopy(self.default)
        return self.default

    def with_type(self, ftype: FieldType, default: Any = MISSING) -> Field:
        """This field with another type (and default), for older schemas."""
        return Field(self.name, ftype, default, None, self.read_only)

    def renamed(self, name: str) -> Field:
        """This field under another name, for older schemas."""
        return Field(name, self.ftype, self.default, self.default_factory, self.read_only)

    def canonical_default(self) -> Any:
        """The default as plain data, for the canonical schema."""
        if not self.has_default:
            return {"required": True}
        value = self.make_default(self.name)
        if value is None:
            return {"value": None}
        if isinstance(self.ftype, ObjectType):
            return {"factory": True}
        try:
            return {"value": self.ftype.to_prim(value, self.name, None)}
        except Exception:  # a default holding objects: its shape is the type's
            return {"factory": True}

    def __repr__(self) -> str:
        return f"Field({self.name!r}, {self.ftype.describe()})"
