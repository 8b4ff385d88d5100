"""Deterministic sample values, objects and payloads, read from declarations.

The compatibility lint needs values to push through a history, and the
golden corpus needs payloads that are the same on every run; neither may
depend on Hypothesis (a test dependency) or on chance. The samples here are
a handful per type, chosen to trip the usual converter mistakes:

========== ===================================================================
str        ``""``, ``"a"``, ``"Abc xyz"``, ``"7"``, ``"é☃"``, and a string
           exactly at ``max_length`` (up to 4096; those over the limit are
           left out), or of 257 characters without a limit
int        ``0``, ``7``, ``-1``, ``2**53 + 1`` (not exact as a float), and
           the ends of the signed 64-bit range
float      ``0.0``, ``1.5``, ``-2.25``, ``7.0``, ``1e300``
bool       ``False``, ``True``
uuid       two fixed UUIDs
datetime   one in UTC with microseconds, one at +05:30
enum       every value, sorted
T | None   the samples of T, then None
list, set  a few items, empty, one item
dict       two keys, empty
object     objects of the nested class (built from its own samples)
========== ===================================================================

Objects are built by taking sample ``i`` of every field for the ``i``-th
object; payloads of a version start from the first object (the *base*),
then vary one field at a time, then add the combined ones, so that a
payload that fails where the base did not points at the field it varied.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

from rollsafe.errors import DefinitionError, DowngradeError, RollsafeError
from rollsafe.objects.api import reset_changes
from rollsafe.objects.base import VersionedObject
from rollsafe.objects.fields import Field
from rollsafe.objects.types import (
    INT_MAX,
    INT_MIN,
    BoolType,
    DateTimeType,
    DictType,
    EncodeTarget,
    EnumType,
    FieldType,
    FloatType,
    IntType,
    ListType,
    NullableType,
    ObjectType,
    SetType,
    StrType,
    UUIDType,
)

__all__ = ["sample_objects", "sample_payloads", "sample_values"]

T = TypeVar("T", bound=VersionedObject)

_STRINGS = ("", "a", "Abc xyz", "7", "é☃")
_INTS = (0, 7, -1, 2**53 + 1, INT_MAX, INT_MIN)
_FLOATS = (0.0, 1.5, -2.25, 7.0, 1e300)
_UUIDS = (uuid.UUID("6f1c3a3e-1d2b-4c5a-9f00-0123456789ab"),
          uuid.UUID("00000000-0000-4000-8000-000000000001"))
_DATETIMES = (datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC),
              datetime(1999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=5, minutes=30))))
#: Longest string sample written out at ``max_length`` (longer limits get
#: the short samples only: they are far from the limit anyway).
_LONGEST = 4096
#: The long sample of a string without a limit: past the usual 255, so that
#: a limit introduced by a converter shows.
_LONG = 257
#: Below this nesting depth objects get every sample; at it, one each.
_FULL_DEPTH = 1
#: A class that needs an object of its own class at every level has no
#: finite instance: give up past this depth.
_MAX_DEPTH = 12


def sample_values(field_type: FieldType) -> list[Any]:
    """The deterministic samples of ``field_type`` (a field's ``ftype``), as
    code would pass them to a constructor; every one is valid for it."""
    return _values(field_type, 0)


def _values(ftype: FieldType, depth: int) -> list[Any]:
    raw: list[Any]
    if isinstance(ftype, NullableType):
        return [*_values(ftype.inner, depth), None]
    if isinstance(ftype, StrType):
        raw = list(_STRINGS)
        limit = ftype.max_length
        if limit is None:
            raw.append("x" * _LONG)
        elif 0 < limit <= _LONGEST:
            raw.append("x" * limit)
    elif isinstance(ftype, BoolType):
        raw = [False, True]
    elif isinstance(ftype, IntType):
        raw = list(_INTS)
    elif isinstance(ftype, FloatType):
        raw = list(_FLOATS)
    elif isinstance(ftype, UUIDType):
        raw = list(_UUIDS)
    elif isinstance(ftype, DateTimeType):
        raw = list(_DATETIMES)
    elif isinstance(ftype, EnumType):
        raw = sorted(ftype.values)
    elif isinstance(ftype, ListType):
        items = _values(ftype.item, depth)
        raw = [items[:3], [], items[-1:]]
    elif isinstance(ftype, SetType):
        items = _values(ftype.item, depth)
        raw = [set(items[:3]), set(), set(items[-1:])]
    elif isinstance(ftype, DictType):
        items = _values(ftype.item, depth)
        raw = [{"k": items[0], "other key": items[-1]} if items else {}, {}]
    elif isinstance(ftype, ObjectType):
        raw = _objects(ftype.cls, depth + 1)
    else:
        raise DefinitionError(f"no samples for field type {ftype.describe()}")
    return [value for value in raw if _valid(ftype, value)]


def _valid(ftype: FieldType, value: Any) -> bool:
    try:
        ftype.validate(value, "sample")
    except RollsafeError:
        return False
    return True


def _objects(cls: type[T], depth: int) -> list[T]:
    info = cls._rs_info
    info.build()
    if depth > _MAX_DEPTH:
        raise DefinitionError(f"{info.name} cannot be sampled: it requires an object of its "
                              "own class at every level (no finite instance exists)")
    choices = {name: _field_values(fld, depth) for name, fld in info.fields.items()}
    count = 1 if depth > _FULL_DEPTH else max((len(v) for v in choices.values()), default=1)
    built = []
    for i in range(count):
        try:
            built.append(cls(**{name: values[i % len(values)]
                                for name, values in choices.items() if values}))
        except RollsafeError:
            continue  # a field with no valid sample and no default: skip the object
    return built


def _field_values(fld: Field, depth: int) -> list[Any]:
    ftype = fld.ftype
    if depth > _FULL_DEPTH and next(iter(ftype.object_classes()), None) is not None:
        # Deep down, keep the tree small: the default when there is one,
        # else empty containers or None, else a single object.
        if fld.has_default:
            return []
        if isinstance(ftype, NullableType):
            return [None]
        if isinstance(ftype, ListType):
            return [[]]
        if isinstance(ftype, SetType):
            return [set()]
        if isinstance(ftype, DictType):
            return [{}]
        return _values(ftype, depth)[:1]
    return _values(ftype, depth)


def _settle(value: Any) -> None:
    """Forget the changes of the objects in ``value``: a writer lists a
    field in its ``.changes`` whenever a nested object in it changed, and
    the payloads built here list no changes."""
    if isinstance(value, VersionedObject):
        reset_changes(value, recursive=True)
    elif isinstance(value, list | set):
        for item in value:
            _settle(item)
    elif isinstance(value, dict):
        for item in value.values():
            _settle(item)


def sample_objects(cls: type[T]) -> list[T]:
    """Current-version objects of ``cls`` built from the samples: object
    ``i`` holds sample ``i`` of every field (cycling through shorter lists)."""
    return _objects(cls, 0)


def sample_payloads(cls: type[VersionedObject], version: str | None = None
                    ) -> list[dict[str, Any]]:
    """Envelopes of ``cls`` at ``version`` (default current) built from that
    version's own schema, as a service running that version could write
    them (not only as today's code downgrades to it): first the base
    payload, then one per other sample of each field, then the combined
    ones. Nested objects are at the versions that version embeds."""
    info = cls._rs_info
    info.build()
    found = info.current if version is None else info.history.resolve(version, info.name)
    schema = info.schemas[found.key]
    target = EncodeTarget(None, info.child_versions[found.key])
    reg = info.registry
    choices: dict[str, list[Any]] = {}
    for name, fld in schema.items():
        prims = []
        for value in _values(fld.ftype, 0):
            _settle(value)
            try:
                prims.append(fld.ftype.to_prim(value, f"{info.name}.{name}", target))
            except DowngradeError:
                continue  # a nested object that version cannot hold
        if not prims:
            raise DefinitionError(f"{info.name} {found.number}: no sample of field {name!r} "
                                  "can be written at that version")
        choices[name] = prims
    rows = [{name: values[0] for name, values in choices.items()}]
    for name, values in choices.items():
        rows.extend({**rows[0], name: value} for value in values[1:])
    count = max((len(values) for values in choices.values()), default=1)
    rows.extend({name: values[i % len(values)] for name, values in choices.items()}
                for i in range(1, count))
    payloads, seen = [], set()
    for data in rows:
        key = json.dumps(data, sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        payloads.append({reg.key_name: info.name, reg.key_namespace: reg.namespace,
                         reg.key_version: found.number, reg.key_data: data})
    return payloads
