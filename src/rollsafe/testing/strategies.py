"""Hypothesis strategies derived from object declarations.

Property tests of code built on rollsafe need valid objects and valid wire
envelopes; writing those by hand duplicates every class declaration and goes
stale when the class changes. The strategies here read the declaration
instead (:func:`rollsafe.fields_of`, the field types, the version history)::

    from hypothesis import given
    from rollsafe.testing.strategies import instances, primitives

    @given(instances(Application))
    def test_roundtrip(app):
        assert from_primitive(to_primitive(app), Application) == app

    @given(primitives(Application, "1.0"))
    def test_reads_old_payloads(prim):
        from_primitive(prim, Application)

Values respect every constraint a field declares (``max_length``, enum
members, nullability, finite floats, timezone-aware datetimes, hashable set
items) and stay small so that tests run fast: strings of at most
:data:`MAX_TEXT` characters, collections of at most :data:`MAX_ITEMS`
items, objects nested at most :data:`MAX_OBJECT_DEPTH` deep through
collections and nullable fields. Integers stay within the signed 64-bit
range, the range both codecs carry.

This is the only rollsafe module that imports Hypothesis, which is a test
dependency: import it from tests, never from service code.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from hypothesis import reject
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from rollsafe.errors import DowngradeError
from rollsafe.objects.api import fields_of, from_primitive, reset_changes, to_primitive
from rollsafe.objects.base import VersionedObject
from rollsafe.objects.types import (
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

__all__ = [
    "INT_MAX",
    "INT_MIN",
    "MAX_ITEMS",
    "MAX_OBJECT_DEPTH",
    "MAX_TEXT",
    "aware_datetimes",
    "fixed_offsets",
    "instances",
    "primitives",
    "values_for",
    "version_payloads",
    "versions_of",
]

T = TypeVar("T", bound=VersionedObject)

#: Most items in a generated list, set or dict.
MAX_ITEMS = 4
#: Most characters in a generated string (less when ``max_length`` says so).
MAX_TEXT = 16
#: How deep objects nest inside collections and nullable fields before the
#: strategies stop adding more (empty collections, None).
MAX_OBJECT_DEPTH = 3
#: Smallest generated int: the bottom of the signed 64-bit range.
INT_MIN = -(2**63)
#: Largest generated int: the top of the signed 64-bit range.
INT_MAX = 2**63 - 1

# How far past MAX_OBJECT_DEPTH required object fields may still go before
# the class is declared impossible to build (a required field of its own
# class, directly or through other classes).
_REQUIRED_SLACK = 16


def fixed_offsets() -> st.SearchStrategy[timezone]:
    """Fixed UTC offsets strictly between -24 h and +24 h, in whole minutes
    (what ISO 8601 and rollsafe's datetime fields allow), UTC often."""
    minutes = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1)
    return (st.just(0) | minutes).map(lambda m: timezone(timedelta(minutes=m)))


def aware_datetimes() -> st.SearchStrategy[datetime]:
    """Timezone-aware datetimes over the whole calendar, with microseconds
    and a fixed offset from :func:`fixed_offsets`. The first and last day
    are left out: an offset there can put the UTC instant outside years
    1-9999, which datetime fields refuse."""
    return st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                        timezones=fixed_offsets())


def _text(max_length: int | None) -> st.SearchStrategy[str]:
    if max_length is None or max_length <= MAX_TEXT:
        return st.text(max_size=MAX_TEXT if max_length is None else max_length)
    # Short strings, and now and then one exactly at the limit.
    return st.text(max_size=MAX_TEXT) | st.text(min_size=max_length, max_size=max_length)


def _holds_objects(ftype: FieldType) -> bool:
    return next(iter(ftype.object_classes()), None) is not None


def _values(ftype: FieldType, depth: int) -> st.SearchStrategy[Any]:
    """Valid values of ``ftype`` for a field of an object at ``depth``."""
    if isinstance(ftype, NullableType):
        if depth >= MAX_OBJECT_DEPTH and _holds_objects(ftype.inner):
            return st.none()
        return st.none() | _values(ftype.inner, depth)
    if isinstance(ftype, StrType):
        return _text(ftype.max_length)
    if isinstance(ftype, BoolType):
        return st.booleans()
    if isinstance(ftype, IntType):
        return st.integers(min_value=INT_MIN, max_value=INT_MAX)
    if isinstance(ftype, FloatType):
        # An int is accepted and promoted; keep it exactly representable.
        return st.floats(allow_nan=False, allow_infinity=False) | st.integers(
            min_value=-(2**53), max_value=2**53)
    if isinstance(ftype, UUIDType):
        return st.uuids()
    if isinstance(ftype, DateTimeType):
        return aware_datetimes()
    if isinstance(ftype, EnumType):
        return st.sampled_from(sorted(ftype.values))
    if isinstance(ftype, ListType | SetType | DictType):
        if depth >= MAX_OBJECT_DEPTH and _holds_objects(ftype.item):
            empty = dict if isinstance(ftype, DictType) else set if isinstance(
                ftype, SetType) else list
            return st.builds(empty)  # a fresh one each time: values are mutable
        item = _values(ftype.item, depth)
        if isinstance(ftype, ListType):
            return st.lists(item, max_size=MAX_ITEMS)
        if isinstance(ftype, SetType):
            return st.sets(item, max_size=MAX_ITEMS)
        return st.dictionaries(st.text(max_size=8), item, max_size=MAX_ITEMS)
    if isinstance(ftype, ObjectType):
        if depth > MAX_OBJECT_DEPTH + _REQUIRED_SLACK:
            raise InvalidArgument(
                f"{ftype.cls.__name__} cannot be built: it requires an object of its own "
                "class at every level (no finite instance exists)")
        return _objects(ftype.cls, depth + 1)
    raise InvalidArgument(f"no strategy for field type {ftype.describe()} "
                          f"({type(ftype).__name__})")


def values_for(field_type: FieldType) -> st.SearchStrategy[Any]:
    """Values that ``field_type`` accepts, as code would pass them to a
    constructor (a float field also gets ints, which it promotes).

    ``field_type`` is a field's ``ftype`` (see :func:`rollsafe.fields_of`);
    a field type holding objects yields instances of their classes."""
    if not isinstance(field_type, FieldType):
        raise InvalidArgument(f"values_for() takes a field type (Field.ftype), "
                              f"got {field_type!r}")
    return _values(field_type, 0)


@st.composite
def _with_changes(draw: st.DrawFn, cls: type[T], kwargs: st.SearchStrategy[dict[str, Any]]
                  ) -> T:
    """An instance built from ``kwargs``, in one of the change-tracking
    states a live object can be in: fresh (everything changed), reset
    (nothing), or reset for some fields only."""
    obj = cls(**draw(kwargs))
    state = draw(st.sampled_from(("fresh", "reset", "some")))
    if state == "reset":
        reset_changes(obj, recursive=draw(st.booleans()))
    elif state == "some":
        names = sorted(fields_of(cls))
        forget = draw(st.sets(st.sampled_from(names))) if names else set()
        reset_changes(obj, fields=forget)
    return obj


@functools.lru_cache(maxsize=512)
def _objects(cls: type[T], depth: int) -> st.SearchStrategy[T]:
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for name, fld in fields_of(cls).items():
        (optional if fld.has_default else required)[name] = _values(fld.ftype, depth)
    kwargs = st.fixed_dictionaries(required, optional=optional)
    return _with_changes(cls, kwargs)


def _check_class(cls: Any, caller: str) -> None:
    if not (isinstance(cls, type) and issubclass(cls, VersionedObject)
            and getattr(cls, "_rs_info", None) is not None):
        raise InvalidArgument(f"{caller}() takes a versioned object class, got {cls!r}")


def _check_version(cls: type[VersionedObject], version: str) -> None:
    if version not in cls.VERSIONS.numbers:
        raise InvalidArgument(f"{cls.__name__} has no version {version!r}; "
                              f"known: {', '.join(cls.VERSIONS.numbers)}")


def versions_of(cls: type[VersionedObject]) -> st.SearchStrategy[str]:
    """The version numbers of ``cls``'s history (shrinking towards the
    oldest)."""
    _check_class(cls, "versions_of")
    return st.sampled_from(cls.VERSIONS.numbers)


def instances(cls: type[T], version: str | None = None) -> st.SearchStrategy[T]:
    """Valid instances of ``cls`` at its current version.

    ``version``, when given, is one of ``cls.VERSIONS.numbers``.

    Values cover every field's declared range (omitting fields that have a
    default now and then) and the instance's change tracking is in a random
    state. With ``version``, the instances are those a peer running that
    older version could send: a current instance downgraded to ``version``
    and decoded again (so fields that version lacks hold their defaults, and
    enum values it lacks their fallbacks)."""
    _check_class(cls, "instances")
    if version is None or version == cls.VERSIONS.current:
        return _objects(cls, 0)
    _check_version(cls, version)
    return primitives(cls, version).map(lambda prim: from_primitive(prim, cls))


@st.composite
def _envelopes(draw: st.DrawFn, cls: type[VersionedObject], version: str | None
               ) -> dict[str, Any]:
    obj = draw(_objects(cls, 0))
    number = draw(versions_of(cls)) if version is None else version
    try:
        return to_primitive(obj, number)
    except DowngradeError:
        # The object holds a value the older version cannot express and the
        # history declares no fallback: not a payload that version can hold.
        reject()


def primitives(cls: type[VersionedObject], version: str | None = None
               ) -> st.SearchStrategy[dict[str, Any]]:
    """Valid wire envelopes of ``cls`` at ``version`` (any version of its
    history when None), as :func:`rollsafe.to_primitive` writes them: the
    data follows :func:`rollsafe.schema_of` at that version, and nested
    objects are at the versions that version of ``cls`` embeds them at.

    They are made by downgrading valid current instances, so every one
    decodes. Instances whose downgrade raises
    :class:`rollsafe.DowngradeError` (an enum value without a fallback, a
    converter refusing the value) are skipped: test downgrades of
    :func:`instances` directly to see those."""
    _check_class(cls, "primitives")
    if version is not None:
        _check_version(cls, version)
    return _envelopes(cls, version)


@st.composite
def _written_at(draw: st.DrawFn, cls: type[VersionedObject], version: str) -> dict[str, Any]:
    info = cls._rs_info
    found = info.history.resolve(version, info.name)
    target = EncodeTarget(None, info.child_versions[found.key])
    reg = info.registry
    data = {}
    for name, fld in info.schemas[found.key].items():
        value = draw(_values(fld.ftype, 1), label=f"{info.name} {version}.{name}")
        try:
            data[name] = fld.ftype.to_prim(value, f"{info.name}.{name}", target)
        except DowngradeError:
            reject()  # a nested object that version cannot hold
    envelope = {reg.key_name: info.name, reg.key_namespace: reg.namespace,
                reg.key_version: found.number, reg.key_data: data}
    changes = draw(st.sets(st.sampled_from(sorted(data))) if data else st.just(set()),
                   label="changes")
    # A writer lists a field whenever a nested object in it changed.
    changes |= {name for name, value in data.items() if _lists_changes(value, reg)}
    if changes:
        envelope[reg.key_changes] = sorted(changes)
    return envelope


def _lists_changes(prim: Any, reg: Any) -> bool:
    """Whether a wire value holds an envelope with a ``.changes`` list."""
    if isinstance(prim, dict):
        if reg.key_changes in prim:
            return True
        return any(_lists_changes(v, reg) for v in prim.values())
    if isinstance(prim, list):
        return any(_lists_changes(v, reg) for v in prim)
    return False


def version_payloads(cls: type[VersionedObject], version: str
                     ) -> st.SearchStrategy[dict[str, Any]]:
    """Any valid wire envelope of ``cls`` at ``version``, built field by
    field from that version's own schema, with a random ``.changes`` list:
    every payload a service running that version could send, including
    values today's code never produces when it downgrades (a
    :func:`primitives` payload is always such a downgrade). Nested objects
    are at the versions that version embeds.

    Use it to test that the history reads everything an older release
    wrote (:func:`rollsafe.testing.roundtrips.check_round_trips` does)."""
    _check_class(cls, "version_payloads")
    _check_version(cls, version)
    cls._rs_info.build()
    return _written_at(cls, version)
