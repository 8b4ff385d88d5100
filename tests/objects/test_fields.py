"""Field behaviour: what each field type accepts and refuses, defaults,
nullability, read-only fields, max_length, equality and repr."""

import math
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, ClassVar, Literal

import pytest

from rollsafe import (
    DefinitionError,
    MissingFieldError,
    ReadOnlyFieldError,
    Registry,
    ValidationError,
    VersionedObject,
    field,
    fields_of,
)

reg = Registry("fields")

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ID = uuid.UUID("6f1c3a3e-1d2b-4c5a-9f00-0123456789ab")


class Child(VersionedObject, registry=reg):
    n: int = 0


class Other(VersionedObject, registry=reg):
    n: int = 0


class Everything(VersionedObject, registry=reg):
    text: str
    count: int
    ratio: float
    flag: bool
    ident: uuid.UUID
    at: datetime
    colour: Literal["red", "green"]
    names: list[str]
    scores: dict[str, int]
    labels: set[str]
    child: Child
    children: list[Child]


def valid(**overrides: Any) -> dict[str, Any]:
    """Constructor arguments that are all valid, with some replaced."""
    values: dict[str, Any] = {
        "text": "hello",
        "count": 3,
        "ratio": 0.5,
        "flag": True,
        "ident": ID,
        "at": NOW,
        "colour": "red",
        "names": ["a", "b"],
        "scores": {"x": 1},
        "labels": {"p", "q"},
        "child": Child(n=1),
        "children": [Child(n=2), Child(n=3)],
    }
    values.update(overrides)
    return values


@pytest.fixture
def local_reg() -> Registry:
    """A registry of its own, for classes declared inside one test."""
    return Registry("local")


# -- accepted values ---------------------------------------------------------

ACCEPTED = [
    ("text", ""),
    ("text", "unicode ☃"),
    ("count", 0),
    ("count", -(2**63)),
    ("count", 2**63 - 1),
    ("ratio", 1e300),
    ("ratio", -0.0),
    ("flag", False),
    ("ident", uuid.uuid4()),
    ("at", datetime(2020, 1, 1, tzinfo=timezone(timedelta(hours=-5)))),
    ("colour", "green"),
    ("names", []),
    ("scores", {}),
    ("scores", {"a": 1, "b": -2}),
    ("labels", set()),
    ("children", []),
]


@pytest.mark.parametrize(("name", "value"), ACCEPTED)
def test_each_field_type_accepts_a_valid_value_at_construction_and_assignment(
        name: str, value: Any) -> None:
    obj = Everything(**valid(**{name: value}))
    assert getattr(obj, name) == value
    other = Everything(**valid())
    setattr(other, name, value)
    assert getattr(other, name) == value


def test_nested_object_and_list_of_objects_accept_instances_of_their_class() -> None:
    child = Child(n=9)
    kids = [Child(n=1)]
    obj = Everything(**valid(child=child, children=kids))
    assert obj.child is child
    assert obj.children == [Child(n=1)]


# -- refused values ------------------------------------------------------------

REFUSED = [
    # no silent coercion
    ("text", 42, "Everything.text", "expected str"),
    ("text", b"bytes", "Everything.text", "expected str"),
    ("text", None, "Everything.text", "expected str"),
    ("count", "42", "Everything.count", "expected int"),
    ("count", True, "Everything.count", "expected int"),
    ("count", 1.0, "Everything.count", "expected int"),
    ("count", 2**63, "Everything.count", "signed 64-bit range"),
    ("count", -(2**63) - 1, "Everything.count", "signed 64-bit range"),
    ("count", None, "Everything.count", "expected int"),
    ("ratio", "1.5", "Everything.ratio", "expected float"),
    ("ratio", True, "Everything.ratio", "expected float"),
    ("ratio", math.nan, "Everything.ratio", "nan"),
    ("ratio", math.inf, "Everything.ratio", "inf"),
    ("ratio", -math.inf, "Everything.ratio", "inf"),
    ("flag", 1, "Everything.flag", "expected bool"),
    ("flag", 0, "Everything.flag", "expected bool"),
    ("flag", "true", "Everything.flag", "expected bool"),
    ("ident", str(ID), "Everything.ident", "uuid.UUID"),
    ("ident", ID.hex, "Everything.ident", "uuid.UUID"),
    ("at", datetime(2024, 5, 1, 12, 0), "Everything.at", "naive datetime"),
    ("at", NOW.isoformat(), "Everything.at", "datetime"),
    ("at", date(2024, 5, 1), "Everything.at", "datetime"),
    ("colour", "blue", "Everything.colour", "not one of"),
    ("colour", "RED", "Everything.colour", "not one of"),
    ("colour", 1, "Everything.colour", "not one of"),
    ("names", "ab", "Everything.names", "expected list"),
    ("names", ("a",), "Everything.names", "expected list"),
    ("names", ["a", 1], "Everything.names[1]", "expected str"),
    ("scores", [("a", 1)], "Everything.scores", "expected dict"),
    ("scores", {1: 1}, "Everything.scores[1]", "keys must be str"),
    ("scores", {"a": "1"}, "Everything.scores['a']", "expected int"),
    ("scores", {"a": True}, "Everything.scores['a']", "expected int"),
    ("labels", ["a"], "Everything.labels", "expected set"),
    ("labels", frozenset({"a"}), "Everything.labels", "expected set"),
    ("labels", {1}, "Everything.labels[1]", "expected str"),
    ("child", Other(), "Everything.child", "expected Child"),
    ("child", Child, "Everything.child", "expected Child"),
    ("child", {"n": 1}, "Everything.child", "expected Child"),
    ("child", None, "Everything.child", "expected Child"),
    ("children", [Child(), Other()], "Everything.children[1]", "expected Child"),
    ("children", Child(), "Everything.children", "expected list"),
]


@pytest.mark.parametrize(("name", "value", "path", "problem"), REFUSED)
def test_each_field_type_refuses_a_wrong_value_at_construction_naming_the_path(
        name: str, value: Any, path: str, problem: str) -> None:
    with pytest.raises(ValidationError) as info:
        Everything(**valid(**{name: value}))
    assert info.value.path == path
    assert str(info.value).startswith(f"{path}: ")
    assert problem in str(info.value)


@pytest.mark.parametrize(("name", "value", "path", "problem"), REFUSED)
def test_assignment_refuses_the_same_values_and_leaves_the_field_unchanged(
        name: str, value: Any, path: str, problem: str) -> None:
    obj = Everything(**valid())
    before = getattr(obj, name)
    with pytest.raises(ValidationError) as info:
        setattr(obj, name, value)
    assert info.value.path == path
    assert problem in str(info.value)
    assert getattr(obj, name) is before


def test_validation_error_is_also_a_value_error() -> None:
    with pytest.raises(ValueError):
        Everything(**valid(count="1"))


def test_nested_container_items_are_validated_with_their_full_path(local_reg: Registry) -> None:
    class Grid(VersionedObject, registry=local_reg):
        rows: list[list[int]] = field(default_factory=list)
        groups: dict[str, list[int]] = field(default_factory=dict)

    with pytest.raises(ValidationError) as info:
        Grid(rows=[[1], [2, "x"]])
    assert info.value.path == "Grid.rows[1][1]"
    with pytest.raises(ValidationError) as info:
        Grid(groups={"a": [1, None]})
    assert info.value.path == "Grid.groups['a'][1]"


def test_bool_items_are_refused_in_a_list_of_int(local_reg: Registry) -> None:
    class Ports(VersionedObject, registry=local_reg):
        ports: list[int]

    with pytest.raises(ValidationError) as info:
        Ports(ports=[80, True])
    assert info.value.path == "Ports.ports[1]"


# -- int -> float promotion ------------------------------------------------------

def test_int_given_to_a_float_field_is_stored_as_float() -> None:
    obj = Everything(**valid(ratio=2))
    assert obj.ratio == 2.0
    assert type(obj.ratio) is float
    obj.ratio = 7
    assert type(obj.ratio) is float


def test_int_items_of_float_lists_and_dicts_are_stored_as_float(local_reg: Registry) -> None:
    class Measures(VersionedObject, registry=local_reg):
        series: list[float]
        named: dict[str, float]

    obj = Measures(series=[1, 2.5], named={"a": 3})
    assert [type(x) for x in obj.series] == [float, float]
    assert type(obj.named["a"]) is float


def test_int_items_of_a_float_set_are_stored_as_float(local_reg: Registry) -> None:
    class Bag(VersionedObject, registry=local_reg):
        values: set[float]

    obj = Bag(values={1, 2})
    assert {type(x) for x in obj.values} == {float}


def test_bool_is_not_promoted_to_float() -> None:
    with pytest.raises(ValidationError):
        Everything(**valid(ratio=False))


# -- datetimes --------------------------------------------------------------------

def test_timezone_aware_datetimes_of_any_offset_are_accepted() -> None:
    paris = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    obj = Everything(**valid(at=paris))
    assert obj.at == NOW
    assert obj.at.utcoffset() == timedelta(hours=2)


def test_naive_datetime_is_refused_with_advice_to_attach_a_timezone() -> None:
    obj = Everything(**valid())
    with pytest.raises(ValidationError) as info:
        obj.at = datetime(2024, 1, 1)
    assert info.value.path == "Everything.at"
    assert "naive datetime refused" in str(info.value)
    assert "timezone" in info.value.problem


# -- missing, unknown and positional arguments ---------------------------------------

def test_missing_required_field_raises_missing_field_error_naming_the_path() -> None:
    values = valid()
    del values["count"]
    with pytest.raises(MissingFieldError) as info:
        Everything(**values)
    assert info.value.path == "Everything.count"
    assert "required field not given" in str(info.value)
    assert isinstance(info.value, ValidationError)


def test_constructor_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        Child(1)  # type: ignore[misc]


def test_constructor_refuses_an_unknown_keyword() -> None:
    with pytest.raises(TypeError, match="nope"):
        Child(nope=1)  # type: ignore[call-arg]


def test_objects_hold_no_attributes_besides_their_fields() -> None:
    obj = Child()
    with pytest.raises(AttributeError):
        obj.other = 1  # type: ignore[attr-defined]


# -- defaults -----------------------------------------------------------------------

def test_plain_default_is_used_when_the_field_is_not_given() -> None:
    assert Child().n == 0


def test_mutable_plain_defaults_are_copied_for_each_object(local_reg: Registry) -> None:
    class Holder(VersionedObject, registry=local_reg):
        items: list[str] = ["a"]
        table: dict[str, int] = field(default={"k": 1})
        seen: set[str] = field(default={"x"})
        grid: list[list[int]] = field(default=[[1]])

    first, second = Holder(), Holder()
    first.items.append("b")
    first.table["k"] = 2
    first.seen.add("y")
    first.grid[0].append(2)
    assert second.items == ["a"]
    assert second.table == {"k": 1}
    assert second.seen == {"x"}
    assert second.grid == [[1]]
    assert Holder().grid == [[1]]


def test_default_factory_is_called_for_each_object(local_reg: Registry) -> None:
    calls = []

    def make() -> list[int]:
        calls.append(1)
        return [len(calls)]

    class Holder(VersionedObject, registry=local_reg):
        items: list[int] = field(default_factory=make)

    first, second = Holder(), Holder()
    assert first.items == [1]
    assert second.items == [2]
    assert first.items is not second.items
    Holder(items=[9])
    assert len(calls) == 2


def test_default_factory_result_is_validated(local_reg: Registry) -> None:
    class Holder(VersionedObject, registry=local_reg):
        count: int = field(default_factory=lambda: "three")

    with pytest.raises(ValidationError) as info:
        Holder()
    assert info.value.path == "Holder.count"


def test_int_default_of_a_float_field_is_promoted(local_reg: Registry) -> None:
    class Holder(VersionedObject, registry=local_reg):
        ratio: float = 1

    assert type(Holder().ratio) is float


def test_invalid_default_is_a_definition_error_at_first_use(local_reg: Registry) -> None:
    class Holder(VersionedObject, registry=local_reg):
        count: int = "zero"  # type: ignore[assignment]

    with pytest.raises(DefinitionError, match=r"Holder\.count: the default is invalid"):
        Holder()


def test_default_and_default_factory_together_are_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match="not both"):
        field(default=[], default_factory=list)


# -- nullable -------------------------------------------------------------------------

def test_nullable_field_defaults_to_none_and_accepts_none_or_its_type(
        local_reg: Registry) -> None:
    class Holder(VersionedObject, registry=local_reg):
        owner: str | None
        ports: list[int] | None
        child: Child | None

    obj = Holder()
    assert (obj.owner, obj.ports, obj.child) == (None, None, None)
    obj.owner = "me"
    obj.ports = [1]
    obj.child = Child()
    assert (obj.owner, obj.ports, obj.child) == ("me", [1], Child())
    obj.owner = None
    assert obj.owner is None


def test_nullable_field_still_refuses_a_wrong_type(local_reg: Registry) -> None:
    class Holder(VersionedObject, registry=local_reg):
        owner: str | None
        ports: list[int] | None

    with pytest.raises(ValidationError) as info:
        Holder(owner=5)
    assert info.value.path == "Holder.owner"
    with pytest.raises(ValidationError) as info:
        Holder(ports=["x"])
    assert info.value.path == "Holder.ports[0]"


def test_nullable_field_may_declare_another_default(local_reg: Registry) -> None:
    class Holder(VersionedObject, registry=local_reg):
        owner: str | None = "nobody"

    assert Holder().owner == "nobody"
    assert Holder(owner=None).owner is None


def test_non_nullable_field_refuses_none() -> None:
    with pytest.raises(ValidationError):
        Child(n=None)


# -- read-only ------------------------------------------------------------------------

def test_read_only_field_is_set_at_construction_and_refuses_assignment(
        local_reg: Registry) -> None:
    class Holder(VersionedObject, registry=local_reg):
        created: datetime = field(read_only=True)
        name: str = ""

    obj = Holder(created=NOW)
    assert obj.created == NOW
    with pytest.raises(ReadOnlyFieldError) as info:
        obj.created = NOW + timedelta(days=1)
    assert info.value.path == "Holder.created"
    assert "read-only" in str(info.value)
    assert obj.created == NOW
    obj.name = "still writable"


def test_read_only_error_is_also_an_attribute_error_and_a_validation_error(
        local_reg: Registry) -> None:
    class Holder(VersionedObject, registry=local_reg):
        key: str = field(default="k", read_only=True)

    obj = Holder()
    with pytest.raises(AttributeError):
        obj.key = "other"
    with pytest.raises(ValidationError):
        obj.key = "other"


def test_read_only_field_still_validates_its_construction_value(local_reg: Registry) -> None:
    class Holder(VersionedObject, registry=local_reg):
        key: str = field(read_only=True)

    with pytest.raises(ValidationError):
        Holder(key=1)


# -- max_length -------------------------------------------------------------------------

def test_max_length_accepts_exactly_n_characters_and_refuses_more(
        local_reg: Registry) -> None:
    class Holder(VersionedObject, registry=local_reg):
        code: str = field(max_length=3)

    assert Holder(code="abc").code == "abc"
    assert Holder(code="ééé").code == "ééé"  # characters, not bytes
    with pytest.raises(ValidationError) as info:
        Holder(code="abcd")
    assert info.value.path == "Holder.code"
    assert "over max_length 3" in str(info.value)
    obj = Holder(code="")
    with pytest.raises(ValidationError):
        obj.code = "wxyz"
    assert obj.code == ""


def test_max_length_applies_to_a_nullable_str(local_reg: Registry) -> None:
    class Holder(VersionedObject, registry=local_reg):
        code: str | None = field(max_length=2)

    assert Holder().code is None
    assert Holder(code="ab").code == "ab"
    with pytest.raises(ValidationError):
        Holder(code="abc")


def test_max_length_on_a_non_str_field_is_a_definition_error(local_reg: Registry) -> None:
    class Holder(VersionedObject, registry=local_reg):
        count: int = field(max_length=3)

    with pytest.raises(DefinitionError, match="max_length applies only to str"):
        Holder(count=1)


# -- declarations ------------------------------------------------------------------------

@pytest.mark.parametrize("annotation", [bytes, int | str, dict[int, str], list, tuple[int]])
def test_unsupported_annotation_is_a_definition_error_at_first_use(
        local_reg: Registry, annotation: Any) -> None:
    cls = type("Odd", (VersionedObject,), {"__annotations__": {"value": annotation}},
               registry=local_reg)
    with pytest.raises(DefinitionError, match=r"Odd\.value"):
        fields_of(cls)


@pytest.mark.parametrize("name", ["_private", "__dunder", "VERSIONS"])
def test_reserved_field_names_are_refused_at_class_definition(
        local_reg: Registry, name: str) -> None:
    with pytest.raises(DefinitionError, match="field names may not start with '_'"):
        type("Bad", (VersionedObject,), {"__annotations__": {name: int}}, registry=local_reg)


def test_classvar_annotations_are_not_fields(local_reg: Registry) -> None:
    class Holder(VersionedObject, registry=local_reg):
        kind: ClassVar[str] = "holder"
        n: int = 0

    assert list(fields_of(Holder)) == ["n"]
    assert Holder.kind == "holder"


def test_fields_of_lists_fields_in_declaration_order() -> None:
    assert list(fields_of(Everything)) == [
        "text", "count", "ratio", "flag", "ident", "at", "colour", "names", "scores",
        "labels", "child", "children"]


def test_class_without_a_registry_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match="say which registry"):
        type("Orphan", (VersionedObject,), {"__annotations__": {"n": int}})


def test_subclassing_a_concrete_object_class_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match="not the object class Child"):
        type("Grandchild", (Child,), {})


def test_abstract_base_passes_its_registry_and_methods_to_object_classes(
        local_reg: Registry) -> None:
    class Base(VersionedObject, registry=local_reg, abstract=True):
        def describe(self) -> str:
            return f"{type(self).__name__} #{self.n}"  # type: ignore[attr-defined]

    class Thing(Base):
        n: int = 0

    assert Thing(n=4).describe() == "Thing #4"
    assert local_reg.get("Thing") is Thing
    assert "Base" not in local_reg


def test_abstract_base_with_fields_is_a_definition_error(local_reg: Registry) -> None:
    with pytest.raises(DefinitionError, match="abstract base declares no fields"):
        type("Base", (VersionedObject,), {"__annotations__": {"n": int}},
             registry=local_reg, abstract=True)


# -- equality and repr ---------------------------------------------------------------------

def test_objects_with_equal_field_values_are_equal() -> None:
    assert Everything(**valid()) == Everything(**valid())
    assert Child(n=1) == Child(n=1)


def test_objects_with_different_field_values_are_not_equal() -> None:
    assert Child(n=1) != Child(n=2)
    assert Everything(**valid()) != Everything(**valid(names=["a"]))
    assert Everything(**valid()) != Everything(**valid(child=Child(n=99)))


def test_objects_of_different_classes_are_never_equal() -> None:
    assert Child(n=0) != Other(n=0)
    assert Child(n=0) != {"n": 0}


def test_objects_are_unhashable() -> None:
    with pytest.raises(TypeError):
        hash(Child())


def test_repr_shows_class_and_fields_in_declaration_order(local_reg: Registry) -> None:
    class Pair(VersionedObject, registry=local_reg):
        name: str
        tags: list[str] = field(default_factory=list)
        child: Child | None = None

    assert repr(Pair(name="a", tags=["x"])) == "Pair(name='a', tags=['x'], child=None)"
    assert repr(Pair(name="b", child=Child(n=2))) == "Pair(name='b', tags=[], child=Child(n=2))"
