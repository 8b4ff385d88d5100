"""Round-trip properties of every registered class, for every version pair.

For each class of a test registry with a rich history (declared below) and
of the benchmark model:

- current -> older -> current keeps every field the older version has: the
  older envelope of the object that came back equals the older envelope of
  the original, field by field, and fields the history carries unchanged
  hold equal values in memory;
- encoding and decoding at the current version is the identity, through
  primitives and through the bytes of both codecs, change tracking included.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rollsafe
from rollsafe import (
    Added,
    Custom,
    EnumValuesAdded,
    History,
    NestedVersion,
    Registry,
    Removed,
    Renamed,
    Retyped,
    Version,
    VersionedObject,
    field,
)
from rollsafe.objects.types import DictType, ListType, NullableType, SetType, StrType
from rollsafe.testing.strategies import MAX_ITEMS, instances, primitives, values_for
from support import load_bench_model

bench_model = load_bench_model()

# --------------------------------------------------------------------------
# A registry whose history uses every kind of change.

rt = Registry("roundtrip")


class Port(VersionedObject, registry=rt):
    """A nested object with a history of its own."""

    VERSIONS = History(
        Version("1.0", "Initial version"),
        Version("1.1", "SCTP", EnumValuesAdded("protocol", ["sctp"], fallback={"sctp": "tcp"})),
        Version("1.2", "Ports get a label", Added("label")),
    )

    number: int
    protocol: Literal["tcp", "udp", "sctp"] = "tcp"
    label: str | None = field(default=None, max_length=12)


class Owner(VersionedObject, registry=rt):
    """A nested object with one version and many field types."""

    name: str = field(max_length=20)
    email: str | None = None
    since: datetime
    team_id: uuid.UUID | None = None
    score: float = 0.0
    roles: set[str] = field(default_factory=set)
    active: bool = True


class Tree(VersionedObject, registry=rt):
    """An object that holds objects of its own class."""

    label: str = field(max_length=8)
    children: list[Tree] = field(default_factory=list)
    parent_weight: float | None = None


def _split_endpoint(values: dict[str, Any]) -> None:
    host, sep, port = values["endpoint"].rpartition(":")
    if not sep:
        raise ValueError(f"endpoint {values['endpoint']!r} has no port")
    values["host"] = host
    values["port"] = int(port)


def _join_endpoint(values: dict[str, Any]) -> None:
    values["endpoint"] = f"{values['host']}:{values['port']}"


class Deployment(VersionedObject, registry=rt):
    """The object with the rich history."""

    VERSIONS = History(
        Version("1.0", "Initial version"),
        Version("1.1", "Title is now name", Renamed("title", "name")),
        Version("1.2", "Weights; ports speak SCTP",
                Added("weight"), NestedVersion("ports", "1.1")),
        Version("1.3", "Drop the legacy flag", Removed("legacy", bool, default=False)),
        Version("1.4", "Replicas are a number",
                Retyped("replicas", str, upgrade=int, downgrade=str)),
        Version("1.5", "More states and modes",
                EnumValuesAdded("state", ["paused", "failed"],
                                fallback={"paused": "live", "failed": "new"}),
                EnumValuesAdded("modes", ["fast"], fallback={"fast": "safe"})),
        Version("1.6", "Endpoint split into host and port",
                Added("host"), Added("port"),
                Custom("split host:port", upgrade=_split_endpoint, downgrade=_join_endpoint),
                Removed("endpoint", str, default=":0")),
        Version("1.7", "Ports get labels", NestedVersion("ports", "1.2")),
    )

    id: uuid.UUID = field(read_only=True)
    name: str = field(max_length=40)
    state: Literal["new", "live", "paused", "failed"]
    modes: set[Literal["safe", "slow", "fast"]] = field(default_factory=set)
    replicas: int
    weight: float = 1.0
    host: str = ""
    port: int = 0
    owner: Owner
    ports: list[Port] = field(default_factory=list)
    primary: Port | None = None
    labels: dict[str, str] = field(default_factory=dict)
    zones: set[str] = field(default_factory=set)
    history: list[datetime] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    created_at: datetime
    notes: str | None = None
    trees: list[Tree] = field(default_factory=list)


REGISTRY_OF = {cls: reg for reg in (rt, bench_model.bench) for cls in reg.newest()}
CLASSES = list(REGISTRY_OF)
PAIRS = [(cls, older) for cls in CLASSES for older in cls.VERSIONS.numbers[:-1]]


def _id(value: Any) -> str:
    return value.__name__ if isinstance(value, type) else str(value)


def test_the_rich_history_uses_every_kind_of_change() -> None:
    kinds = {type(change) for version in Deployment.VERSIONS.versions
             for change in version.changes}
    assert kinds == {Added, Removed, Renamed, Retyped, EnumValuesAdded, NestedVersion, Custom}
    assert len(PAIRS) >= 10


# --------------------------------------------------------------------------
# Which current fields the history carries unchanged from an older version.

def _versions_after(cls: type[VersionedObject], older: str) -> list[Version]:
    versions = list(cls.VERSIONS.versions)
    return versions[cls.VERSIONS.numbers.index(older) + 1:]


def _carried_fields(cls: type[VersionedObject], older: str) -> dict[str, str]:
    """Older name -> current name of every field whose value no change
    between ``older`` and now converts: not added, removed, retyped, given
    enum values, or holding objects whose embedded version moved on.
    (The Custom change above only writes fields added in its own version.)"""
    names = {name: name for name in rollsafe.schema_of(cls, older)}
    touched: set[str] = set()
    moved: set[str] = set()
    for version in _versions_after(cls, older):
        for change in version.changes:
            if isinstance(change, Renamed):
                def rename(name: str, change: Renamed = change) -> str:
                    return change.new if name == change.old else name
                names = {old: rename(cur) for old, cur in names.items()}
                touched = {rename(name) for name in touched}
                moved = {rename(name) for name in moved}
            elif isinstance(change, Retyped | EnumValuesAdded | Added | Removed):
                touched.add(change.name)
            elif isinstance(change, NestedVersion):
                moved.add(change.name)
    current = rollsafe.fields_of(cls)
    moved_classes = {child for name in moved
                     for child in current[name].ftype.object_classes()}
    carried = {}
    for old, cur in names.items():
        if cur in touched or cur not in current:
            continue
        if moved_classes & set(current[cur].ftype.object_classes()):
            continue
        carried[old] = cur
    return carried


# --------------------------------------------------------------------------
# The properties.

@pytest.mark.parametrize(("cls", "older"), PAIRS, ids=_id)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_current_to_older_to_current_keeps_older_fields(
        cls: type[VersionedObject], older: str, data: st.DataObject) -> None:
    original = data.draw(instances(cls), label="original")
    sent = rollsafe.to_primitive(original, older)
    reg = REGISTRY_OF[cls]
    assert sent[reg.key_version] == older
    back = rollsafe.from_primitive(sent, cls)
    again = rollsafe.to_primitive(back, older)

    data_key = reg.key_data
    assert set(again[data_key]) == set(rollsafe.schema_of(cls, older))
    for name in rollsafe.schema_of(cls, older):
        assert again[data_key][name] == sent[data_key][name], f"{cls.__name__}.{name} at {older}"
    assert again == sent

    for old, cur in _carried_fields(cls, older).items():
        assert getattr(back, cur) == getattr(original, cur), f"{cls.__name__}.{cur} via {old}"

    for codec in (rollsafe.JsonCodec(reg), rollsafe.MsgpackCodec(cls)):
        assert codec.decode(codec.encode(original, older)) == back


@pytest.mark.parametrize("cls", CLASSES, ids=_id)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_encode_decode_is_identity_at_current_version(
        cls: type[VersionedObject], data: st.DataObject) -> None:
    original = data.draw(instances(cls), label="original")
    reg = REGISTRY_OF[cls]
    prim = rollsafe.to_primitive(original)
    assert prim[reg.key_version] == cls.VERSIONS.current

    for decoded in (rollsafe.from_primitive(prim, cls), rollsafe.from_primitive(prim, reg)):
        assert type(decoded) is cls
        assert decoded == original
        assert rollsafe.what_changed(decoded) == rollsafe.what_changed(original)
        assert rollsafe.to_primitive(decoded) == prim

    for codec_type in (rollsafe.JsonCodec, rollsafe.MsgpackCodec):
        for target in (cls, reg):
            codec = codec_type(target)
            payload = codec.encode(original)
            decoded = codec.decode(payload)
            assert decoded == original
            assert rollsafe.to_primitive(decoded) == prim
            assert codec.encode(decoded) == payload


@pytest.mark.parametrize(("cls", "older"), PAIRS, ids=_id)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_older_envelopes_decode_and_reencode_unchanged(
        cls: type[VersionedObject], older: str, data: st.DataObject) -> None:
    prim = data.draw(primitives(cls, older), label="older envelope")
    decoded = rollsafe.from_primitive(prim, cls)
    assert rollsafe.to_primitive(decoded, older) == prim
    current = rollsafe.to_primitive(decoded)
    assert rollsafe.from_primitive(current, cls) == decoded


@pytest.mark.parametrize(("cls", "older"), PAIRS, ids=_id)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_instances_an_older_peer_sends_survive_that_version(
        cls: type[VersionedObject], older: str, data: st.DataObject) -> None:
    obj = data.draw(instances(cls, older), label="from an older peer")
    assert type(obj) is cls
    assert rollsafe.from_primitive(rollsafe.to_primitive(obj, older), cls) == obj


ALL_FIELDS = [(cls, fld) for cls in CLASSES for fld in rollsafe.fields_of(cls).values()]


def _assert_small(ftype: Any, value: Any) -> None:
    if value is None:
        assert isinstance(ftype, NullableType)
        return
    ftype = ftype.inner if isinstance(ftype, NullableType) else ftype
    if isinstance(ftype, StrType) and ftype.max_length is not None:
        assert len(value) <= ftype.max_length
    if isinstance(ftype, ListType | SetType | DictType):
        assert len(value) <= MAX_ITEMS
        for item in (value.values() if isinstance(value, dict) else value):
            _assert_small(ftype.item, item)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_values_for_gives_values_the_field_accepts(data: st.DataObject) -> None:
    cls, fld = data.draw(st.sampled_from(ALL_FIELDS), label="field")
    value = data.draw(values_for(fld.ftype), label="value")
    assert fld.ftype.validate(value, f"{cls.__name__}.{fld.name}") == value
    _assert_small(fld.ftype, value)
