"""The generated hot paths agree with the field types' own methods.

``rollsafe.objects.codegen`` inlines cheap checks into each class's
constructor, setters, fast encoder and fast decoder (containers are checked
item by item in a loop, ints against their range, ...) and falls back to the
field type's ``validate`` / ``to_prim`` / ``from_prim`` for anything else.
These tests feed both routes the same values, valid and spoiled, at every
position of every kind of container, and require the same outcome: the same
value kept (the very same object when the method keeps it), or the same
error with the same path.
"""

from __future__ import annotations

import copy
import math
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollsafe import (
    DEFAULT_LIMITS,
    Registry,
    RollsafeError,
    VersionedObject,
    field,
    fields_of,
    from_primitive,
    reset_changes,
    to_primitive,
    what_changed,
)
from rollsafe.objects.types import DictType, ListType, NullableType, SetType
from rollsafe.testing.strategies import values_for

reg = Registry("codegen")
DATA = reg.key_data
CHANGES = reg.key_changes
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ID = uuid.UUID("6f1c3a3e-1d2b-4c5a-9f00-0123456789ab")
Colour = Literal["red", "green"]


class Child(VersionedObject, registry=reg):
    n: int = 0


class Other(VersionedObject, registry=reg):
    n: int = 0


class Every(VersionedObject, registry=reg):
    """A field of every kind the generated code treats specially."""

    text: str = ""
    short: str = field(default="", max_length=3)
    count: int = 0
    ratio: float = 0.0
    flag: bool = False
    ident: uuid.UUID = ID
    at: datetime = NOW
    colour: Colour = "red"
    maybe_text: str | None = None
    maybe_count: int | None = None
    names: list[str] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    flags: list[bool] = field(default_factory=list)
    idents: list[uuid.UUID] = field(default_factory=list)
    times: list[datetime] = field(default_factory=list)
    colours: list[Colour] = field(default_factory=list)
    maybe_counts: list[int | None] = field(default_factory=list)
    scores: dict[str, int] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    moods: dict[str, Colour] = field(default_factory=dict)
    labels: set[str] = field(default_factory=set)
    numbers: set[int] = field(default_factory=set)
    shades: set[Colour] = field(default_factory=set)
    opt_names: list[str] | None = None
    opt_scores: dict[str, int] | None = None
    child: Child = field(default_factory=Child)
    opt_child: Child | None = None
    children: list[Child] = field(default_factory=list)
    opt_children: list[Child | None] = field(default_factory=list)
    named: dict[str, Child] = field(default_factory=dict)
    grid: list[list[int]] = field(default_factory=list)


FIELDS = {name: fld.ftype for name, fld in fields_of(Every).items()}
CONTAINERS = sorted(name for name, ftype in FIELDS.items() if isinstance(
    ftype.inner if isinstance(ftype, NullableType) else ftype, ListType | SetType | DictType))


class StrSub(str):
    """A str subclass: validation converts it, so no fast path may keep it."""


class IntSub(int):
    """An int subclass: likewise."""


# Values a check may get wrong: each type's edges (the ints around the
# 31-bit and 64-bit bounds, bool as an int, -0.0, nan) and other types.
ATOMS: list[Any] = [
    True, False, 0, 2**30 - 1, 2**30, -(2**30) + 1, -(2**30), 2**63 - 1, 2**63, -(2**63),
    -(2**63) - 1, IntSub(3), 1.5, -0.0, math.nan, math.inf, "red", "x", "", "abcd",
    StrSub("red"), b"x", None, NOW, datetime(2024, 5, 1), ID, ID.hex,
]
OBJECT_ATOMS: list[Any] = [Child(n=1), Other(n=1), [], {}, set()]
# What a payload can hold instead of a field's primitive.
WIRE_ATOMS: list[Any] = [
    True, 0, 2**30, 2**63 - 1, 2**63, -(2**63) - 1, 1.5, 7.0, math.nan, "red", "x", "abcd",
    None, NOW.isoformat(), "2024-05-01T12:00:00Z", "2024-05-01T12:00:00", str(ID), ID.hex,
    str(ID).upper(), [], {}, [1], {"a": 1},
]


VALID: dict[str, Any] = {
    "text": "hello", "short": "abc", "count": 5, "ratio": 0.5, "flag": True, "ident": ID,
    "at": NOW, "colour": "green", "maybe_text": "x", "maybe_count": 1,
    "names": ["a", "b", "c"], "counts": [1, 2**40, -3], "ratios": [0.5, 1.0, -2.5],
    "flags": [True, False, True], "idents": [ID, uuid.UUID(int=1), uuid.UUID(int=2)],
    "times": [NOW, NOW.astimezone(timezone(timedelta(hours=2))), NOW],
    "colours": ["red", "green", "red"], "maybe_counts": [None, 1, 2],
    "scores": {"a": 1, "b": 2, "c": 3}, "weights": {"a": 0.5, "b": 1.5, "c": 2.0},
    "moods": {"a": "red", "b": "green", "c": "red"}, "labels": {"a", "b"}, "numbers": {1, 2},
    "shades": {"red"}, "opt_names": ["a", "b", "c"], "opt_scores": {"a": 1, "b": 2},
    "child": Child(n=1), "opt_child": Child(n=2), "children": [Child(), Child(), Child()],
    "opt_children": [None, Child(), None], "named": {"a": Child(), "b": Child(), "c": Child()},
    "grid": [[1, 2], [3], [4]],
}


def _spoils(value: Any, atoms: list[Any]) -> list[Any]:
    """``value`` and, for every atom, the atom itself and copies of
    ``value`` with the atom at its first, middle and last item and added."""
    out = [value]
    for atom in atoms:
        out.append(atom)
        if isinstance(value, list):
            for index in sorted({0, len(value) // 2, len(value) - 1} if value else set()):
                out.append([atom if i == index else x for i, x in enumerate(value)])
            out.append([*value, atom])
        elif isinstance(value, dict):
            keys = list(value)
            for key in [keys[0], keys[len(keys) // 2], keys[-1]] if keys else ["new"]:
                out.append({**value, key: atom})
            if _hashable(atom) and keys:
                out.append({**value, atom: value[keys[0]]})
        elif isinstance(value, set) and _hashable(atom):
            out.append(value | {atom})
    return out


def _cases(name: str, wire: bool) -> list[Any]:
    value = VALID[name]
    if wire:
        return _spoils(FIELDS[name].to_prim(value, name, None), WIRE_ATOMS)
    return _spoils(value, ATOMS + OBJECT_ATOMS)


def _atoms(wire: bool) -> st.SearchStrategy[Any]:
    if wire:
        return st.sampled_from(WIRE_ATOMS)
    return st.sampled_from(ATOMS) | st.sampled_from(OBJECT_ATOMS)


@st.composite
def _spoiled(draw: st.DrawFn, value: Any, wire: bool) -> Any:
    """Any one of :func:`_spoils` of a value hypothesis drew."""
    atom = draw(_atoms(wire))
    return draw(st.sampled_from(_spoils(value, [atom])))


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _outcome(fn: Any) -> tuple[Any, ...]:
    """("ok", value) or ("error", class, message), for comparison."""
    try:
        return ("ok", fn())
    except RollsafeError as exc:
        return ("error", type(exc), str(exc))


def _typed(value: Any) -> Any:
    """``value`` with every type made visible (1, 1.0 and True differ)."""
    if isinstance(value, list):
        return ["list", [_typed(x) for x in value]]
    if isinstance(value, set):
        return ["set", sorted(repr(_typed(x)) for x in value)]
    if isinstance(value, dict):
        return ["dict", [[_typed(k), _typed(x)] for k, x in value.items()]]
    if isinstance(value, float) and math.isnan(value):
        return ["float", "nan"]
    return [type(value).__name__, repr(value)]


def _same(got: tuple[Any, ...], expected: tuple[Any, ...], given: Any) -> None:
    if expected[0] == "error":
        assert got == expected
        return
    assert got[0] == "ok", got
    assert _typed(got[1]) == _typed(expected[1])
    # The very same object exactly when the type's method keeps it.
    assert (got[1] is given) == (expected[1] is given)


def _value_and_spoiled(wire: bool) -> st.SearchStrategy[tuple[str, Any]]:
    @st.composite
    def draw_one(draw: st.DrawFn) -> tuple[str, Any]:
        name = draw(st.sampled_from(sorted(FIELDS)), label="field")
        ftype = FIELDS[name]
        value = draw(values_for(ftype), label="valid value")
        if wire:
            value = ftype.to_prim(value, name, None)
        return name, draw(_spoiled(value, wire), label="value")
    return draw_one()


def _check_construction(name: str, value: Any) -> None:
    expected = _outcome(lambda: FIELDS[name].validate(value, f"Every.{name}"))
    got = _outcome(lambda: getattr(Every(**{name: value}), name))
    _same(got, expected, value)


def _check_assignment(name: str, value: Any) -> None:
    obj = Every()
    before = getattr(obj, name)
    expected = _outcome(lambda: FIELDS[name].validate(value, f"Every.{name}"))

    def assign() -> Any:
        setattr(obj, name, value)
        return getattr(obj, name)

    got = _outcome(assign)
    _same(got, expected, value)
    if got[0] == "error":
        assert getattr(obj, name) is before


def _check_decoding(name: str, wire: Any) -> None:
    prim = to_primitive(Every())
    prim[DATA][name] = wire
    expected = _outcome(lambda: FIELDS[name].from_prim(wire, f"Every.{name}", DEFAULT_LIMITS, 2))
    got = _outcome(lambda: getattr(from_primitive(prim, Every), name))
    if expected[0] == "ok" and got[0] == "ok":
        # Objects compare by their fields; a decoded container is never the
        # payload's own (the payload may be reused or changed afterwards).
        assert repr(got[1]) == repr(expected[1])
        assert got[1] is not wire or not isinstance(wire, list | dict)
        if not any(True for _ in FIELDS[name].object_classes()):
            assert _typed(got[1]) == _typed(expected[1])
    else:
        assert got == expected


def _check_encoding(name: str, valid: Any, spoiled: Any) -> None:
    obj = Every(**{name: valid})
    current = getattr(obj, name)
    if type(spoiled) is not type(current):
        return
    # The same container changed in place, as code may do behind the setter.
    if isinstance(current, dict | set):
        current.clear()
        current.update(spoiled)
    else:
        current[:] = spoiled
    ftype = FIELDS[name]
    expected = _outcome(lambda: ftype.to_prim(current, f"Every.{name}", None))
    got = _outcome(lambda: to_primitive(obj)[DATA][name])
    if expected[0] == "ok" and got[0] == "ok":
        assert repr(got[1]) == repr(expected[1])
        assert got[1] is not current
    else:
        assert got == expected


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_construction_keeps_or_refuses_exactly_what_validate_does(name: str) -> None:
    for value in _cases(name, wire=False):
        _check_construction(name, value)


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_assignment_keeps_or_refuses_exactly_what_validate_does(name: str) -> None:
    for value in _cases(name, wire=False):
        _check_assignment(name, value)


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_decoding_keeps_or_refuses_exactly_what_from_prim_does(name: str) -> None:
    for wire in _cases(name, wire=True):
        _check_decoding(name, wire)


@pytest.mark.parametrize("name", CONTAINERS)
def test_encoding_after_an_in_place_change_gives_what_to_prim_does(name: str) -> None:
    for spoiled in _cases(name, wire=False):
        _check_encoding(name, copy.deepcopy(VALID[name]), spoiled)


# The same checks from values hypothesis draws (any text, any datetime, ...).

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def _drawn(draw: st.DrawFn, wire: bool) -> tuple[str, Any, Any]:
    name = draw(st.sampled_from(sorted(FIELDS)), label="field")
    ftype = FIELDS[name]
    value = draw(values_for(ftype), label="valid value")
    given_value = ftype.to_prim(value, name, None) if wire else value
    return name, value, draw(_spoiled(given_value, wire), label="value")


@SETTINGS
@given(case=_drawn(wire=False))
def test_drawn_values_construct_and_assign_as_validate_says(case: tuple[str, Any, Any]) -> None:
    name, _valid, value = case
    _check_construction(name, value)
    _check_assignment(name, value)


@SETTINGS
@given(case=_drawn(wire=True))
def test_drawn_primitives_decode_as_from_prim_says(case: tuple[str, Any, Any]) -> None:
    name, _valid, wire = case
    _check_decoding(name, wire)


@SETTINGS
@given(case=_drawn(wire=False))
def test_drawn_containers_changed_in_place_encode_as_to_prim_says(
        case: tuple[str, Any, Any]) -> None:
    name, valid, spoiled = case
    if name in CONTAINERS and valid is not None:
        _check_encoding(name, valid, spoiled)


@pytest.mark.parametrize("value", [2**30 - 1, 2**30, -(2**30) + 1, -(2**30), 2**40,
                                   2**63 - 1, -(2**63)])
def test_ints_on_either_side_of_the_fast_range_are_kept_everywhere(value: int) -> None:
    obj = Every(count=value, counts=[value, 1], scores={"a": value}, numbers={value})
    assert (obj.count, obj.counts, obj.scores, obj.numbers) == (
        value, [value, 1], {"a": value}, {value})
    obj.count = value
    obj.counts = [1, value]
    back = from_primitive(to_primitive(obj), Every)
    assert (back.count, back.counts, back.scores, back.numbers) == (
        value, [1, value], {"a": value}, {value})


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 2**100])
def test_ints_beyond_64_bits_are_refused_as_scalars_and_as_items(value: int) -> None:
    for given_values in ({"count": value}, {"counts": [1, value]}, {"scores": {"a": value}},
                         {"numbers": {value}}, {"maybe_counts": [None, value]}):
        with pytest.raises(RollsafeError, match="64-bit"):
            Every(**given_values)


def test_refused_item_is_named_by_its_position_wherever_it_sits() -> None:
    for index in range(4):
        names: list[Any] = ["a", "b", "c", "d"]
        names[index] = 1
        with pytest.raises(RollsafeError) as info:
            Every(names=names)
        assert info.value.path == f"Every.names[{index}]"  # type: ignore[attr-defined]


# -- the changes an envelope carries -----------------------------------------------------

def _fresh() -> Every:
    obj = Every(names=["a"], scores={"a": 1}, child=Child(n=1), children=[Child(), Child()],
                named={"k": Child()}, opt_child=Child())
    reset_changes(obj, recursive=True)
    return obj


CHANGE_CASES: list[tuple[str, Any]] = [
    ("nothing", lambda obj: None),
    ("assignment", lambda obj: setattr(obj, "count", 3)),
    ("list in place", lambda obj: obj.names.append("b")),
    ("dict in place", lambda obj: obj.scores.update(b=2)),
    ("set in place", lambda obj: obj.labels.add("x")),
    ("nested object", lambda obj: setattr(obj.child, "n", 2)),
    ("nullable nested object", lambda obj: setattr(obj.opt_child, "n", 2)),
    ("item of a list of objects", lambda obj: setattr(obj.children[1], "n", 2)),
    ("object held in a dict", lambda obj: setattr(obj.named["k"], "n", 2)),
    ("list of objects in place", lambda obj: obj.children.append(Child())),
    ("change undone", lambda obj: (obj.names.append("b"), obj.names.pop())),
]


@pytest.mark.parametrize(("case", "change"), CHANGE_CASES, ids=[c[0] for c in CHANGE_CASES])
def test_envelope_lists_exactly_what_changed(case: str, change: Any) -> None:
    obj = _fresh()
    change(obj)
    prim = to_primitive(obj)
    assert prim.get(CHANGES, []) == sorted(what_changed(obj))
    assert (case == "nothing" or case == "change undone") == (CHANGES not in prim)


def test_envelope_of_a_fresh_object_lists_every_field() -> None:
    assert to_primitive(Every())[CHANGES] == sorted(FIELDS)
