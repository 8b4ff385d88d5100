"""Payloads cross between rollsafe and the real oslo.versionedobjects (ovo).

Both sides declare the same objects (same class names, namespace "interop",
same versions). Every test moves a payload across in one direction, either as
the primitive dict itself ("dict") or through JSON bytes ("json"): ovo uses
``json.dumps(obj.obj_to_primitive())`` / ``json.loads`` and
``obj_from_primitive``; rollsafe uses ``to_primitive`` / ``from_primitive``
and :class:`rollsafe.JsonCodec`.

Where ovo loses or changes data (datetimes, sets, UUID spellings, unset
fields, change tracking of lists) the tests assert what ovo was observed to
do, so that they document it; ``docs/ovo-interop.md`` summarises them.

ovo keeps one process-global registry keyed by class name, so every class
here has an ``Interop`` name that nothing else in the test suite uses, and
they are registered once, when this module is imported.
"""

import copy
import json
import math
import uuid
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any, Literal

import pytest
from oslo_utils import versionutils
from oslo_versionedobjects import base as ovo_base
from oslo_versionedobjects import exception as ovo_exception
from oslo_versionedobjects import fields as ovo_fields

import rollsafe
from rollsafe import Added, History, Registry, Version, VersionedObject, field

# ---------------------------------------------------------------------------
# The rollsafe side
# ---------------------------------------------------------------------------

interop = Registry("interop")

Status = Literal["pending", "running", "stopped", "error"]


class InteropSource(VersionedObject, registry=interop):
    kind: Literal["git", "image", "archive"]
    url: str
    revision: str | None = None


class InteropComponent(VersionedObject, registry=interop):
    name: str
    image: str
    replicas: int = 1
    ports: list[int] = field(default_factory=list)
    weight: float = 1.0


class InteropApp(VersionedObject, registry=interop):
    VERSIONS = History(
        Version("1.0", "Initial version"),
        Version("1.1", "Count restarts", Added("restart_count")),
    )

    id: uuid.UUID
    name: str
    owner: str | None
    replicas: int
    restart_count: int = 0
    ratio: float
    enabled: bool
    created_at: datetime
    updated_at: datetime | None
    status: Status
    tags: list[str]
    metadata: dict[str, str]
    quotas: dict[str, int]
    source: InteropSource
    components: list[InteropComponent]


class InteropEvent(VersionedObject, registry=interop):
    at: datetime
    until: datetime | None


class InteropTagged(VersionedObject, registry=interop):
    labels: set[str]
    codes: set[int]


# Same namespace, another envelope key prefix.
prefixed = Registry("interop", prefix="interop_object")


class InteropPrefixed(VersionedObject, registry=prefixed):
    note: str


# ---------------------------------------------------------------------------
# The ovo side: same names, namespace and versions
# ---------------------------------------------------------------------------

register = ovo_base.VersionedObjectRegistry.register


class OvoInteropBase(ovo_base.VersionedObject):
    OBJ_PROJECT_NAMESPACE = "interop"


class Ovo:
    """Namespace for the single-version ovo classes."""

    @register
    class InteropSource(OvoInteropBase):
        VERSION = "1.0"
        fields = {
            "kind": ovo_fields.EnumField(["git", "image", "archive"]),
            "url": ovo_fields.StringField(),
            "revision": ovo_fields.StringField(nullable=True),
        }

    @register
    class InteropComponent(OvoInteropBase):
        VERSION = "1.0"
        fields = {
            "name": ovo_fields.StringField(),
            "image": ovo_fields.StringField(),
            "replicas": ovo_fields.IntegerField(default=1),
            "ports": ovo_fields.ListOfIntegersField(default=[]),
            "weight": ovo_fields.FloatField(default=1.0),
        }

    @register
    class InteropEvent(OvoInteropBase):
        VERSION = "1.0"
        fields = {
            "at": ovo_fields.DateTimeField(),
            "until": ovo_fields.DateTimeField(nullable=True),
        }

    @register
    class InteropTagged(OvoInteropBase):
        VERSION = "1.0"
        fields = {
            "labels": ovo_fields.SetOfStringsField(),
            "codes": ovo_fields.SetOfIntegersField(),
        }

    @register
    class InteropPrefixed(OvoInteropBase):
        OBJ_SERIAL_NAMESPACE = "interop_object"
        VERSION = "1.0"
        fields = {"note": ovo_fields.StringField()}


def _declare_ovo_app(version: str) -> type[ovo_base.VersionedObject]:
    """Declare and register the ovo InteropApp at 1.0 or 1.1."""
    app_fields = {
        "id": ovo_fields.UUIDField(),
        "name": ovo_fields.StringField(),
        "owner": ovo_fields.StringField(nullable=True),
        "replicas": ovo_fields.IntegerField(),
        "ratio": ovo_fields.FloatField(),
        "enabled": ovo_fields.BooleanField(),
        "created_at": ovo_fields.DateTimeField(),
        "updated_at": ovo_fields.DateTimeField(nullable=True),
        "status": ovo_fields.EnumField(["pending", "running", "stopped", "error"]),
        "tags": ovo_fields.ListOfStringsField(),
        "metadata": ovo_fields.DictOfStringsField(),
        "quotas": ovo_fields.DictOfIntegersField(),
        "source": ovo_fields.ObjectField("InteropSource"),
        "components": ovo_fields.ListOfObjectsField("InteropComponent"),
    }
    if version == "1.1":
        app_fields["restart_count"] = ovo_fields.IntegerField(default=0)

    class InteropApp(OvoInteropBase):
        # Version 1.0: Initial version
        # Version 1.1: Added 'restart_count'
        VERSION = version
        fields = app_fields
        obj_relationships = {
            "source": [("1.0", "1.0")],
            "components": [("1.0", "1.0")],
        }

        def obj_make_compatible(self, primitive, target_version):
            super().obj_make_compatible(primitive, target_version)
            if versionutils.convert_version_to_tuple(target_version) < (1, 1):
                primitive.pop("restart_count", None)

    return register(InteropApp)


OvoApp10 = _declare_ovo_app("1.0")
OvoApp = _declare_ovo_app("1.1")

# ---------------------------------------------------------------------------
# Reference values and helpers
# ---------------------------------------------------------------------------

APP_ID = uuid.UUID("6f1c3a3e-1d2b-4c5a-9f00-0123456789ab")
CREATED = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
UPDATED = datetime(2024, 5, 2, 8, 30, 15, tzinfo=UTC)

APP_FIELDS_11 = {
    "id", "name", "owner", "replicas", "restart_count", "ratio", "enabled", "created_at",
    "updated_at", "status", "tags", "metadata", "quotas", "source", "components",
}
APP_FIELDS_10 = APP_FIELDS_11 - {"restart_count"}

# The reference application as both sides should see it, in plain values
# (UUID as its canonical string, nested objects as dicts).
EXPECTED_APP: dict[str, Any] = {
    "id": "6f1c3a3e-1d2b-4c5a-9f00-0123456789ab",
    "name": "my-app",
    "owner": None,
    "replicas": 3,
    "restart_count": 7,
    "ratio": 0.25,
    "enabled": True,
    "created_at": CREATED,
    "updated_at": UPDATED,
    "status": "running",
    "tags": ["web", "prod", "eu-west"],
    "metadata": {"team": "platform", "env": "prod"},
    "quotas": {"cpu": 4, "ram_gb": 16},
    "source": {"kind": "git", "url": "https://example.com/org/repo.git",
               "revision": "a1b2c3d4"},
    "components": [
        {"name": "api", "image": "registry/api:1", "replicas": 2, "ports": [8080, 8443],
         "weight": 0.5},
        {"name": "worker", "image": "registry/worker:1", "replicas": 1, "ports": [],
         "weight": 1.0},
    ],
}
EXPECTED_APP_10 = {k: v for k, v in EXPECTED_APP.items() if k != "restart_count"}

TRANSPORTS = ["dict", "json"]


def _scalars(values: dict[str, Any]) -> dict[str, Any]:
    """Fresh copies of the top-level values (objects may keep the lists given)."""
    return copy.deepcopy({k: v for k, v in values.items() if k not in ("source", "components")})


def make_rs_app(**overrides: Any) -> InteropApp:
    values = {**_scalars(EXPECTED_APP), "id": APP_ID}
    values.update(
        source=InteropSource(**EXPECTED_APP["source"]),
        components=[InteropComponent(**copy.deepcopy(c)) for c in EXPECTED_APP["components"]],
    )
    values.update(overrides)
    return InteropApp(**values)


def make_ovo_app(cls: type = OvoApp, *, omit: tuple[str, ...] = (),
                 omit_in_components: tuple[str, ...] = (), **overrides: Any) -> Any:
    """The reference app as an ovo object; ``omit`` leaves fields unset."""
    values = {**_scalars(EXPECTED_APP), "id": APP_ID}
    if "restart_count" not in cls.fields:
        del values["restart_count"]
    values.update(
        source=Ovo.InteropSource(**EXPECTED_APP["source"]),
        components=[
            Ovo.InteropComponent(**{k: copy.deepcopy(v) for k, v in c.items()
                                    if k not in omit_in_components})
            for c in EXPECTED_APP["components"]
        ],
    )
    values.update(overrides)
    for name in omit:
        del values[name]
    return cls(**values)


def rs_plain(obj: Any) -> Any:
    """A rollsafe object as plain values (UUID -> str, objects -> dicts)."""
    if isinstance(obj, VersionedObject):
        return {name: rs_plain(getattr(obj, name)) for name in rollsafe.fields_of(obj)}
    if isinstance(obj, list):
        return [rs_plain(x) for x in obj]
    if isinstance(obj, uuid.UUID):
        return str(obj)
    return obj


def ovo_plain(obj: Any) -> Any:
    """An ovo object as plain values: only the fields it has set."""
    if isinstance(obj, ovo_base.VersionedObject):
        return {name: ovo_plain(getattr(obj, name)) for name in obj.fields
                if obj.obj_attr_is_set(name)}
    if isinstance(obj, list):
        return [ovo_plain(x) for x in obj]
    if isinstance(obj, dict):
        return dict(obj)
    if isinstance(obj, set):
        return set(obj)
    return obj


def rs_to_ovo(obj: VersionedObject, ovo_cls: Any, transport: str,
              version: str | None = None) -> Any:
    """Send a rollsafe object, receive it with ``ovo_cls.obj_from_primitive``
    (ovo's registry picks the class of the payload's name and version)."""
    if transport == "dict":
        primitive = rollsafe.to_primitive(obj, version)
    else:
        primitive = json.loads(rollsafe.JsonCodec(type(obj)).encode(obj, version))
    return ovo_cls.obj_from_primitive(primitive)


def ovo_to_rs(obj: Any, target: Any, transport: str,
              target_version: str | None = None) -> Any:
    """Send an ovo object, receive it with rollsafe (a class or registry)."""
    primitive = obj.obj_to_primitive(target_version=target_version)
    if transport == "dict":
        return rollsafe.from_primitive(primitive, target)
    return rollsafe.JsonCodec(target).decode(json.dumps(primitive).encode())


def ovo_wire(obj: Any, name: str) -> Any:
    """What ovo puts on the wire for field ``name``."""
    return obj.obj_to_primitive()["versioned_object.data"][name]


# ---------------------------------------------------------------------------
# Every field type, both directions
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rollsafe_app_decodes_in_ovo_with_every_field_equal(transport: str) -> None:
    received = rs_to_ovo(make_rs_app(), OvoApp, transport)

    assert type(received) is OvoApp
    assert received.VERSION == "1.1"
    assert ovo_plain(received) == EXPECTED_APP
    assert type(received.source) is Ovo.InteropSource
    assert [type(c) for c in received.components] == [Ovo.InteropComponent] * 2
    # ovo keeps a UUID field as a string; types survive exactly.
    assert type(received.id) is str
    assert type(received.ratio) is float
    assert type(received.enabled) is bool
    assert type(received.replicas) is int
    assert type(received.components[1].weight) is float


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_ovo_app_decodes_in_rollsafe_with_every_field_equal(transport: str) -> None:
    received = ovo_to_rs(make_ovo_app(), InteropApp, transport)

    assert type(received) is InteropApp
    assert rs_plain(received) == EXPECTED_APP
    assert received.id == APP_ID
    assert type(received.id) is uuid.UUID
    assert type(received.ratio) is float
    assert type(received.enabled) is bool
    assert received.created_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_ovo_app_decodes_through_a_rollsafe_registry(transport: str) -> None:
    received = ovo_to_rs(make_ovo_app(), interop, transport)

    assert type(received) is InteropApp
    assert rs_plain(received) == EXPECTED_APP


def test_ovo_app_survives_ovo_to_rollsafe_to_ovo_unchanged() -> None:
    original = make_ovo_app()
    through_rollsafe = rollsafe.from_primitive(original.obj_to_primitive(), InteropApp)
    back = rs_to_ovo(through_rollsafe, OvoApp, "json")

    assert ovo_plain(back) == ovo_plain(original) == EXPECTED_APP


def test_both_sides_write_the_same_envelope_keys_and_data() -> None:
    rs_prim = rollsafe.to_primitive(make_rs_app())
    ovo_prim = make_ovo_app().obj_to_primitive()

    keys = {"versioned_object.name", "versioned_object.namespace", "versioned_object.version",
            "versioned_object.data", "versioned_object.changes"}
    assert rs_prim.keys() == ovo_prim.keys() == keys
    for prim in (rs_prim, ovo_prim):
        assert prim["versioned_object.name"] == "InteropApp"
        assert prim["versioned_object.namespace"] == "interop"
        assert prim["versioned_object.version"] == "1.1"
    # Field for field the same data, except the datetime spelling:
    # rollsafe writes isoformat() ("+00:00"), ovo writes "Z".
    rs_data = dict(rs_prim["versioned_object.data"])
    ovo_data = dict(ovo_prim["versioned_object.data"])
    assert rs_data.pop("created_at") == "2024-05-01T12:00:00+00:00"
    assert ovo_data.pop("created_at") == "2024-05-01T12:00:00Z"
    assert rs_data.pop("updated_at") == "2024-05-02T08:30:15+00:00"
    assert ovo_data.pop("updated_at") == "2024-05-02T08:30:15Z"
    # Nested envelopes differ only in the order of their changes lists.
    for data in (rs_data, ovo_data):
        for child in (data["source"], *data["components"]):
            child["versioned_object.changes"] = sorted(child["versioned_object.changes"])
    assert rs_data == ovo_data


# ---------------------------------------------------------------------------
# Nullable fields and unset fields
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rollsafe_none_values_arrive_in_ovo_as_set_none(transport: str) -> None:
    app = make_rs_app(updated_at=None)
    app.source.revision = None
    received = rs_to_ovo(app, OvoApp, transport)

    for obj, name in ((received, "owner"), (received, "updated_at"),
                      (received.source, "revision")):
        assert obj.obj_attr_is_set(name)
        assert getattr(obj, name) is None


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rollsafe_payload_sets_every_field_in_ovo(transport: str) -> None:
    received = rs_to_ovo(make_rs_app(), OvoApp, transport)

    assert all(received.obj_attr_is_set(name) for name in received.fields)
    for child in (received.source, *received.components):
        assert all(child.obj_attr_is_set(name) for name in child.fields)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_ovo_unset_fields_are_left_out_and_take_rollsafe_defaults(transport: str) -> None:
    sent = make_ovo_app(omit=("owner", "updated_at", "restart_count"),
                        omit_in_components=("replicas", "ports", "weight"))
    # ovo applies no field defaults on construction: unset fields are not sent.
    data = sent.obj_to_primitive()["versioned_object.data"]
    assert not {"owner", "updated_at", "restart_count"} & data.keys()
    assert set(data["components"][0]["versioned_object.data"]) == {"name", "image"}

    received = ovo_to_rs(sent, InteropApp, transport)

    assert received.owner is None
    assert received.updated_at is None
    assert received.restart_count == 0
    assert [(c.replicas, c.ports, c.weight) for c in received.components] == [(1, [], 1.0)] * 2
    # Defaults filled in by rollsafe are not reported as changes.
    assert rollsafe.what_changed(received) == APP_FIELDS_11 - {
        "owner", "updated_at", "restart_count"}
    assert rollsafe.what_changed(received.components[0]) == {"name", "image"}


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("omit", "omit_in_components", "path"), [
    (("name",), (), "InteropApp.name"),
    (("source",), (), "InteropApp.source"),
    ((), ("image",), "InteropApp.components[0].image"),
])
def test_ovo_payload_without_a_required_field_fails_in_rollsafe_naming_the_field(
        transport: str, omit: tuple[str, ...], omit_in_components: tuple[str, ...],
        path: str) -> None:
    sent = make_ovo_app(omit=omit, omit_in_components=omit_in_components)

    with pytest.raises(rollsafe.DecodeError) as caught:
        ovo_to_rs(sent, InteropApp, transport)

    assert caught.value.path == path
    assert "required field missing" in caught.value.problem


# ---------------------------------------------------------------------------
# Enums, UUIDs, floats, sets
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("status", ["pending", "running", "stopped", "error"])
def test_every_enum_value_crosses_both_ways(transport: str, status: str) -> None:
    assert rs_to_ovo(make_rs_app(status=status), OvoApp, transport).status == status
    assert ovo_to_rs(make_ovo_app(status=status), InteropApp, transport).status == status


def test_ovo_uuid_given_as_uuid_object_is_sent_canonical_and_read_by_rollsafe() -> None:
    sent = make_ovo_app(id=APP_ID)

    assert ovo_wire(sent, "id") == "6f1c3a3e-1d2b-4c5a-9f00-0123456789ab"
    assert ovo_to_rs(sent, InteropApp, "dict").id == APP_ID


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("spelling", [
    "6F1C3A3E-1D2B-4C5A-9F00-0123456789AB",
    "6f1c3a3e1d2b4c5a9f000123456789ab",
    "{6f1c3a3e-1d2b-4c5a-9f00-0123456789ab}",
], ids=["uppercase", "no-hyphens", "braces"])
def test_ovo_sends_non_canonical_uuid_strings_verbatim_and_rollsafe_refuses_them(
        transport: str, spelling: str) -> None:
    sent = make_ovo_app(id=spelling)
    assert ovo_wire(sent, "id") == spelling

    with pytest.raises(rollsafe.DecodeError) as caught:
        ovo_to_rs(sent, InteropApp, transport)

    assert caught.value.path == "InteropApp.id"
    assert "canonical UUID string" in caught.value.problem


def test_ovo_nan_float_is_refused_by_rollsafe() -> None:
    sent = make_ovo_app(ratio=float("nan"))
    assert math.isnan(ovo_wire(sent, "ratio"))

    with pytest.raises(rollsafe.DecodeError) as caught:
        ovo_to_rs(sent, InteropApp, "dict")
    assert caught.value.path == "InteropApp.ratio"

    # json.dumps writes the non-standard token NaN, which the JSON codec refuses.
    payload = json.dumps(sent.obj_to_primitive()).encode()
    assert b"NaN" in payload
    with pytest.raises(rollsafe.DecodeError, match="not valid JSON"):
        rollsafe.JsonCodec(InteropApp).decode(payload)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rollsafe_sets_arrive_in_ovo_as_sets(transport: str) -> None:
    sent = InteropTagged(labels={"b", "c", "a"}, codes={3, 1, 2})
    assert rollsafe.to_primitive(sent)["versioned_object.data"] == {
        "labels": ["a", "b", "c"], "codes": [1, 2, 3]}

    received = rs_to_ovo(sent, Ovo.InteropTagged, transport)

    assert received.labels == {"a", "b", "c"}
    assert received.codes == {1, 2, 3}


def test_ovo_sets_cross_to_rollsafe_through_json() -> None:
    sent = Ovo.InteropTagged(labels={"b", "c", "a"}, codes={3, 1, 2})

    received = ovo_to_rs(sent, InteropTagged, "json")

    assert received.labels == {"a", "b", "c"}
    assert received.codes == {1, 2, 3}


def test_ovo_set_primitive_is_a_tuple_which_rollsafe_refuses_at_the_dict_level() -> None:
    sent = Ovo.InteropTagged(labels={"b", "a"}, codes=set())
    data = sent.obj_to_primitive()["versioned_object.data"]
    # ovo writes a set as a tuple in set iteration order (unsorted);
    # json.dumps turns it into a list, which is why JSON works.
    assert type(data["labels"]) is tuple
    assert sorted(data["labels"]) == ["a", "b"]
    assert data["codes"] == ()

    with pytest.raises(rollsafe.DecodeError) as caught:
        rollsafe.from_primitive(sent.obj_to_primitive(), InteropTagged)

    assert caught.value.path == "InteropTagged.labels"
    assert "tuple" in caught.value.problem


# ---------------------------------------------------------------------------
# Datetimes
# ---------------------------------------------------------------------------

PLUS_2 = timezone(timedelta(hours=2))
MINUS_5_30 = timezone(timedelta(hours=-5, minutes=-30))


@pytest.mark.parametrize("value", [
    datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC),
    datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC),
], ids=["whole-seconds", "microseconds"])
def test_ovo_writes_utc_datetimes_as_Z_without_microseconds(value: datetime) -> None:
    sent = Ovo.InteropEvent(at=value, until=None)

    assert ovo_wire(sent, "at") == "2024-05-01T12:00:00Z"
    assert ovo_wire(sent, "until") is None


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("value", [
    datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC),
    datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC),
], ids=["whole-seconds", "microseconds"])
def test_rollsafe_reads_ovo_utc_datetimes_as_utc_whole_seconds(
        transport: str, value: datetime) -> None:
    received = ovo_to_rs(Ovo.InteropEvent(at=value, until=None), InteropEvent, transport)

    assert received.at == datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert received.at.microsecond == 0
    assert received.at.utcoffset() == timedelta(0)
    assert received.until is None


def test_ovo_treats_a_naive_datetime_as_utc_and_rollsafe_reads_it_as_utc() -> None:
    sent = Ovo.InteropEvent(at=datetime(2024, 5, 1, 12, 0, 0), until=None)

    assert ovo_wire(sent, "at") == "2024-05-01T12:00:00Z"
    received = ovo_to_rs(sent, InteropEvent, "json")
    assert received.at == datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("value", "ovo_writes"), [
    (datetime(2024, 5, 1, 14, 0, 0, tzinfo=PLUS_2), "2024-05-01T14:00:00UTC+02:00"),
    (datetime(2024, 5, 1, 14, 0, 0, 250, tzinfo=MINUS_5_30), "2024-05-01T14:00:00UTC-05:30"),
], ids=["plus-2", "minus-5-30"])
def test_ovo_writes_a_python_offset_timezone_as_UTC_hh_mm_which_neither_side_reads(
        transport: str, value: datetime, ovo_writes: str) -> None:
    # ovo appends tzinfo.tzname(); an unnamed datetime.timezone is named
    # "UTC+02:00", which is not ISO 8601.
    sent = Ovo.InteropEvent(at=value, until=None)
    assert ovo_wire(sent, "at") == ovo_writes

    with pytest.raises(rollsafe.DecodeError) as caught:
        ovo_to_rs(sent, InteropEvent, transport)
    assert caught.value.path == "InteropEvent.at"
    assert "not an ISO 8601 datetime" in caught.value.problem

    # ovo cannot read it back either.
    with pytest.raises(ValueError, match="Unable to parse date string"):
        Ovo.InteropEvent.obj_from_primitive(json.loads(json.dumps(sent.obj_to_primitive())))


class NamelessPlus2(tzinfo):
    """UTC+02:00 with no name for tzname(None), as zoneinfo.ZoneInfo has."""

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(hours=2)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str | None:
        return None


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_ovo_writes_a_zone_without_a_name_as_Z_and_rollsafe_gets_a_shifted_instant(
        transport: str) -> None:
    # ovo writes the wall-clock time, then "Z" because tzname(None) is None:
    # 14:00+02:00 (12:00 UTC) goes out as 14:00 UTC.
    value = datetime(2024, 5, 1, 14, 0, 0, tzinfo=NamelessPlus2())
    sent = Ovo.InteropEvent(at=value, until=None)
    assert ovo_wire(sent, "at") == "2024-05-01T14:00:00Z"

    received = ovo_to_rs(sent, InteropEvent, transport)

    assert received.at == datetime(2024, 5, 1, 14, 0, 0, tzinfo=UTC)
    assert received.at - value == timedelta(hours=2)


def test_rollsafe_refuses_offsets_with_seconds_that_ovo_could_not_parse() -> None:
    # ISO 8601 offsets are whole minutes; ovo cannot parse "+05:30:15" and
    # Python's fromisoformat silently drops sub-second offset parts, so
    # rollsafe refuses such a datetime before it is ever sent.
    odd = timezone(timedelta(hours=5, minutes=30, seconds=15))
    with pytest.raises(rollsafe.ValidationError, match="whole minutes"):
        InteropEvent(at=datetime(2024, 5, 1, 14, 0, 0, tzinfo=odd), until=None)
    with pytest.raises(ValueError, match="Unable to parse date string"):
        Ovo.InteropEvent.obj_from_primitive({
            "versioned_object.name": "InteropEvent",
            "versioned_object.namespace": "interop",
            "versioned_object.version": "1.0",
            "versioned_object.data": {"at": "2024-05-01T14:00:00+05:30:15", "until": None},
        })


ROLLSAFE_DATETIMES = [
    (datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC),
     "2024-05-01T12:00:00+00:00", "2024-05-01T12:00:00+00:00"),
    (datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC),
     "2024-05-01T12:00:00.123456+00:00", "2024-05-01T12:00:00+00:00"),
    (datetime(2024, 5, 1, 14, 0, 0, tzinfo=PLUS_2),
     "2024-05-01T14:00:00+02:00", "2024-05-01T14:00:00+02:00"),
    (datetime(2024, 5, 1, 14, 0, 0, 250, tzinfo=MINUS_5_30),
     "2024-05-01T14:00:00.000250-05:30", "2024-05-01T14:00:00-05:30"),
]
ROLLSAFE_DATETIME_IDS = ["utc", "utc-microseconds", "plus-2", "minus-5-30-microseconds"]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("value", "rollsafe_writes", "ovo_rewrites"), ROLLSAFE_DATETIMES,
                         ids=ROLLSAFE_DATETIME_IDS)
def test_ovo_reads_rollsafe_isoformat_keeping_microseconds_and_offset_in_memory(
        transport: str, value: datetime, rollsafe_writes: str, ovo_rewrites: str) -> None:
    sent = InteropEvent(at=value, until=None)
    assert rollsafe.to_primitive(sent)["versioned_object.data"]["at"] == rollsafe_writes

    received = rs_to_ovo(sent, Ovo.InteropEvent, transport)

    assert received.at == value
    assert received.at.microsecond == value.microsecond
    assert received.at.utcoffset() == value.utcoffset()
    assert received.until is None


@pytest.mark.parametrize(("value", "rollsafe_writes", "ovo_rewrites"), ROLLSAFE_DATETIMES,
                         ids=ROLLSAFE_DATETIME_IDS)
def test_ovo_relays_rollsafe_datetimes_with_offset_kept_and_microseconds_dropped(
        value: datetime, rollsafe_writes: str, ovo_rewrites: str) -> None:
    # rollsafe -> ovo -> rollsafe. ovo names the offset it parsed "+00:00"
    # (not "UTC"), so it writes it back as "+00:00", not "Z".
    in_ovo = rs_to_ovo(InteropEvent(at=value, until=None), Ovo.InteropEvent, "json")
    assert ovo_wire(in_ovo, "at") == ovo_rewrites

    back = ovo_to_rs(in_ovo, InteropEvent, "json")

    assert back.at == value.replace(microsecond=0)
    assert back.at.utcoffset() == value.utcoffset()


# ---------------------------------------------------------------------------
# Nested objects and lists of nested objects
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("transport", TRANSPORTS)
def test_nested_object_and_list_of_objects_cross_as_nested_envelopes(transport: str) -> None:
    rs_prim = rollsafe.to_primitive(make_rs_app())
    source_env = rs_prim["versioned_object.data"]["source"]
    assert source_env["versioned_object.name"] == "InteropSource"
    assert source_env["versioned_object.namespace"] == "interop"
    assert source_env["versioned_object.version"] == "1.0"

    in_ovo = rs_to_ovo(make_rs_app(), OvoApp, transport)
    assert ovo_plain(in_ovo.source) == EXPECTED_APP["source"]
    assert ovo_plain(in_ovo.components) == EXPECTED_APP["components"]

    in_rs = ovo_to_rs(make_ovo_app(), InteropApp, transport)
    assert type(in_rs.source) is InteropSource
    assert rs_plain(in_rs.components) == EXPECTED_APP["components"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_empty_list_of_objects_crosses_both_ways(transport: str) -> None:
    assert rs_to_ovo(make_rs_app(components=[]), OvoApp, transport).components == []
    assert ovo_to_rs(make_ovo_app(components=[]), InteropApp, transport).components == []


# ---------------------------------------------------------------------------
# The changes list
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("transport", TRANSPORTS)
def test_fresh_rollsafe_object_arrives_in_ovo_with_every_field_changed(transport: str) -> None:
    app = make_rs_app()
    assert rollsafe.to_primitive(app)["versioned_object.changes"] == sorted(APP_FIELDS_11)

    received = rs_to_ovo(app, OvoApp, transport)

    assert received.obj_what_changed() == APP_FIELDS_11
    assert received.source.obj_what_changed() == {"kind", "url", "revision"}
    assert received.components[0].obj_what_changed() == {
        "name", "image", "replicas", "ports", "weight"}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rollsafe_object_after_reset_arrives_in_ovo_with_no_changes(transport: str) -> None:
    app = make_rs_app()
    rollsafe.reset_changes(app, recursive=True)
    assert "versioned_object.changes" not in rollsafe.to_primitive(app)

    received = rs_to_ovo(app, OvoApp, transport)

    assert received.obj_what_changed() == set()
    assert received.source.obj_what_changed() == set()
    assert received.components[0].obj_what_changed() == set()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rollsafe_changes_after_reset_and_assignments_arrive_in_ovo_exactly(
        transport: str) -> None:
    app = make_rs_app()
    rollsafe.reset_changes(app, recursive=True)
    app.name = "renamed"
    app.status = "stopped"
    app.tags.append("tier-1")  # in place: rollsafe tracks it
    app.source.revision = "e5f6"
    app.components[1].replicas = 4
    assert rollsafe.what_changed(app) == {"name", "status", "tags", "source", "components"}

    received = rs_to_ovo(app, OvoApp, transport)

    assert received.obj_what_changed() == {"name", "status", "tags", "source", "components"}
    assert received.source.obj_what_changed() == {"revision"}
    assert received.components[0].obj_what_changed() == set()
    assert received.components[1].obj_what_changed() == {"replicas"}
    assert received.tags == ["web", "prod", "eu-west", "tier-1"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_fresh_ovo_object_arrives_in_rollsafe_with_the_fields_it_set_changed(
        transport: str) -> None:
    sent = make_ovo_app()
    assert sent.obj_what_changed() == APP_FIELDS_11

    received = ovo_to_rs(sent, InteropApp, transport)

    assert rollsafe.what_changed(received) == APP_FIELDS_11
    assert rollsafe.what_changed(received.source) == {"kind", "url", "revision"}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_ovo_changes_after_reset_and_assignments_arrive_in_rollsafe_exactly(
        transport: str) -> None:
    sent = make_ovo_app()
    sent.obj_reset_changes(recursive=True)
    sent.name = "renamed"
    sent.replicas = 5
    sent.updated_at = None
    sent.source.kind = "image"
    assert sent.obj_what_changed() == {"name", "replicas", "updated_at", "source"}

    received = ovo_to_rs(sent, InteropApp, transport)

    assert rollsafe.what_changed(received) == {"name", "replicas", "updated_at", "source"}
    assert rollsafe.what_changed(received.source) == {"kind"}
    assert rollsafe.what_changed(received.components[0]) == set()
    assert received.name == "renamed"
    assert received.updated_at is None
    assert received.source.kind == "image"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_ovo_after_reset_arrives_in_rollsafe_with_no_changes(transport: str) -> None:
    sent = make_ovo_app()
    sent.obj_reset_changes(recursive=True)
    assert "versioned_object.changes" not in sent.obj_to_primitive()

    received = ovo_to_rs(sent, InteropApp, transport)

    assert rollsafe.what_changed(received) == set()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_ovo_does_not_record_in_place_list_changes_so_rollsafe_receives_none(
        transport: str) -> None:
    sent = make_ovo_app()
    sent.obj_reset_changes(recursive=True)
    sent.tags.append("tier-1")
    assert sent.obj_what_changed() == set()

    received = ovo_to_rs(sent, InteropApp, transport)

    assert received.tags == ["web", "prod", "eu-west", "tier-1"]
    assert rollsafe.what_changed(received) == set()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_changed_element_of_ovo_list_of_objects_marks_the_list_field_changed_in_rollsafe(
        transport: str) -> None:
    sent = make_ovo_app()
    sent.obj_reset_changes(recursive=True)
    sent.components[0].replicas = 9
    # ovo does not propagate a list element's change to the parent ...
    assert sent.obj_what_changed() == set()
    assert "versioned_object.changes" not in sent.obj_to_primitive()

    received = ovo_to_rs(sent, InteropApp, transport)

    # ... rollsafe does, from the element's own changes list.
    assert rollsafe.what_changed(received.components[0]) == {"replicas"}
    assert rollsafe.what_changed(received) == {"components"}


# ---------------------------------------------------------------------------
# Versions
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("transport", TRANSPORTS)
def test_ovo_1_0_payload_upgrades_in_rollsafe_1_1_with_restart_count_default(
        transport: str) -> None:
    sent = make_ovo_app(OvoApp10)
    primitive = sent.obj_to_primitive()
    assert primitive["versioned_object.version"] == "1.0"
    assert "restart_count" not in primitive["versioned_object.data"]

    received = ovo_to_rs(sent, InteropApp, transport)

    assert rollsafe.version_of(received) == "1.1"
    assert received.restart_count == 0
    assert rs_plain(received) == {**EXPECTED_APP, "restart_count": 0}
    assert rollsafe.what_changed(received) == APP_FIELDS_10
    again = rollsafe.to_primitive(received)
    assert again["versioned_object.version"] == "1.1"
    assert again["versioned_object.data"]["restart_count"] == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_ovo_1_1_backport_to_1_0_upgrades_in_rollsafe_with_the_default_not_the_dropped_value(
        transport: str) -> None:
    sent = make_ovo_app(restart_count=7)

    received = ovo_to_rs(sent, InteropApp, transport, target_version="1.0")

    assert received.restart_count == 0
    assert rs_plain(received) == {**EXPECTED_APP, "restart_count": 0}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rollsafe_downgrade_to_1_0_decodes_in_the_ovo_1_0_class(transport: str) -> None:
    app = make_rs_app()
    primitive = rollsafe.to_primitive(app, "1.0")
    assert primitive["versioned_object.version"] == "1.0"
    assert "restart_count" not in primitive["versioned_object.data"]
    assert primitive["versioned_object.changes"] == sorted(APP_FIELDS_10)

    received = rs_to_ovo(app, OvoApp, transport, version="1.0")

    assert type(received) is OvoApp10
    assert received.VERSION == "1.0"
    assert "restart_count" not in received.fields
    assert ovo_plain(received) == EXPECTED_APP_10
    assert received.obj_what_changed() == APP_FIELDS_10


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rollsafe_downgrade_keeps_only_1_0_changes_for_ovo(transport: str) -> None:
    app = make_rs_app()
    rollsafe.reset_changes(app, recursive=True)
    app.restart_count = 8
    app.owner = "alice"

    received = rs_to_ovo(app, OvoApp, transport, version="1.0")

    assert received.obj_what_changed() == {"owner"}
    assert received.owner == "alice"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_ovo_version_manifest_drives_a_rollsafe_downgrade_for_ovo(transport: str) -> None:
    # Both sides describe a tree as {name: version}, with the same content.
    ovo_manifest = ovo_base.obj_tree_get_versions("InteropApp")
    assert ovo_manifest == rollsafe.version_manifest(InteropApp) == {
        "InteropApp": "1.1", "InteropSource": "1.0", "InteropComponent": "1.0"}

    older_reader = {**ovo_manifest, "InteropApp": "1.0"}
    app = make_rs_app()
    if transport == "dict":
        primitive = rollsafe.to_primitive(app, manifest=older_reader)
    else:
        primitive = json.loads(rollsafe.JsonCodec(InteropApp).encode(app, manifest=older_reader))
    assert primitive["versioned_object.version"] == "1.0"

    received = OvoApp.obj_from_primitive(primitive)

    assert type(received) is OvoApp10
    assert ovo_plain(received) == EXPECTED_APP_10


# ---------------------------------------------------------------------------
# Namespace and envelope key prefix
# ---------------------------------------------------------------------------

def _event_in_namespace(namespace: str) -> type[VersionedObject]:
    """A rollsafe InteropEvent in its own registry of another namespace."""
    registry = Registry(namespace)

    class InteropEvent(VersionedObject, registry=registry):
        at: datetime
        until: datetime | None

    return InteropEvent


def test_namespace_mismatch_is_refused_by_both_sides() -> None:
    elsewhere_event = _event_in_namespace("elsewhere")
    value = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

    rs_prim = rollsafe.to_primitive(elsewhere_event(at=value, until=None))
    assert rs_prim["versioned_object.namespace"] == "elsewhere"
    with pytest.raises(ovo_exception.UnsupportedObjectError):
        Ovo.InteropEvent.obj_from_primitive(rs_prim)

    ovo_prim = Ovo.InteropEvent(at=value, until=None).obj_to_primitive()
    with pytest.raises(rollsafe.DecodeError, match="namespace 'interop' is not 'elsewhere'"):
        rollsafe.from_primitive(ovo_prim, elsewhere_event)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_custom_prefix_crosses_when_both_sides_set_it(transport: str) -> None:
    rs_prim = rollsafe.to_primitive(InteropPrefixed(note="hi"))
    assert set(rs_prim) == {"interop_object.name", "interop_object.namespace",
                            "interop_object.version", "interop_object.data",
                            "interop_object.changes"}

    in_ovo = rs_to_ovo(InteropPrefixed(note="hi"), Ovo.InteropPrefixed, transport)
    assert type(in_ovo) is Ovo.InteropPrefixed
    assert in_ovo.note == "hi"
    assert in_ovo.obj_what_changed() == {"note"}

    in_rs = ovo_to_rs(Ovo.InteropPrefixed(note="ho"), InteropPrefixed, transport)
    assert in_rs.note == "ho"
    assert rollsafe.what_changed(in_rs) == {"note"}


def test_prefix_mismatch_is_refused_by_both_sides() -> None:
    default_prefix = Registry("interop")

    class InteropPrefixed(VersionedObject, registry=default_prefix):
        note: str

    # ovo looks its own keys up and fails with a bare KeyError.
    with pytest.raises(KeyError, match="interop_object"):
        Ovo.InteropPrefixed.obj_from_primitive(
            rollsafe.to_primitive(InteropPrefixed(note="hi")))

    ovo_prim = Ovo.InteropPrefixed(note="hi").obj_to_primitive()
    with pytest.raises(rollsafe.DecodeError):
        rollsafe.from_primitive(ovo_prim, InteropPrefixed)
    with pytest.raises(rollsafe.DecodeError):
        rollsafe.from_primitive(ovo_prim, default_prefix)
