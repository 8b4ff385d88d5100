"""Fuzzing the decoder: untrusted input raises DecodeError and nothing else.

Part (a) feeds the decoder random JSON-like values, random bytes, and valid
payloads damaged at random (bytes flipped, inserted, deleted; values
replaced at random paths; keys dropped or added; version strings changed),
through ``from_primitive`` and both codecs. Whatever happens, only
:class:`rollsafe.DecodeError` (or a subclass) may escape, its ``path`` is a
str, the registry is left as it was, and anything that does decode is a
valid object that encodes and decodes again. The current-version fast
decoder and the precise one must also agree on every payload.

Part (b) checks each way a payload can be wrong on its own, with the exact
error class and path.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, Literal

import msgpack
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rollsafe
from rollsafe import (
    Added,
    DecodeError,
    DecodeLimits,
    EnumValuesAdded,
    History,
    LimitExceededError,
    NestedVersion,
    PayloadVersionError,
    Registry,
    Renamed,
    Retyped,
    Version,
    VersionedObject,
    field,
)
from rollsafe.objects.limits import MAX_DEPTH_CEILING
from rollsafe.testing.strategies import primitives
from support import load_bench_model

bench_model = load_bench_model()
bench: Registry = bench_model.bench
Application = bench_model.Application

# --------------------------------------------------------------------------
# A registry of classes that use every field type, older versions that go
# through the upgrade path, recursion, and nested lists.

fz = Registry("fuzz")


class Leaf(VersionedObject, registry=fz):
    """A small object with a history."""

    VERSIONS = History(
        Version("1.0", "Initial version"),
        Version("1.1", "n is now number", Renamed("n", "number")),
        Version("1.2", "Leaves have a kind", Added("kind")),
    )

    number: int
    kind: Literal["a", "b"] = "a"


class Node(VersionedObject, registry=fz):
    """Every field type, objects of its own class, and a history."""

    VERSIONS = History(
        Version("1.0", "Initial version"),
        Version("1.1", "Weights are floats",
                Retyped("weight", str, upgrade=float, downgrade=repr),
                NestedVersion("leaf", "1.1"), NestedVersion("children", "1.1")),
        Version("1.2", "Counts, mode z, leaves have a kind",
                Added("counts"), EnumValuesAdded("mode", ["z"], fallback={"z": "x"}),
                NestedVersion("leaf", "1.2"), NestedVersion("children", "1.2")),
    )

    label: str = field(max_length=16)
    weight: float = 0.0
    ok: bool = False
    when: datetime | None = None
    ident: uuid.UUID | None = None
    mode: Literal["x", "y", "z"] = "x"
    tags: list[str] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    stamps: set[datetime] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=dict)
    attrs: dict[str, str] = field(default_factory=dict)
    leaf: Leaf | None = None
    leaves: list[Leaf] = field(default_factory=list)
    index: dict[str, Leaf] = field(default_factory=dict)
    children: list[Node] = field(default_factory=list)


class Grid(VersionedObject, registry=fz):
    """Collections nested in collections."""

    cells: list[list[list[int]]] = field(default_factory=list)


class Box(VersionedObject, registry=fz):
    """Holds other objects; its version 1.0 makes the decoder take the
    precise (upgrade) path for everything inside."""

    VERSIONS = History(
        Version("1.0", "Initial version"),
        Version("1.1", "Boxes have a note", Added("note"),
                NestedVersion("node", "1.2"), NestedVersion("leaf", "1.2")),
    )

    node: Node | None = None
    leaf: Leaf | None = None
    note: str = ""


REGISTRIES = {"bench": bench, "fuzz": fz}
FUZZ_CLASSES = [Application, *fz.newest()]
REGISTRY_OF = {cls: reg for reg in REGISTRIES.values() for cls in reg.newest()}
FUZZ_SETTINGS = settings(max_examples=60, deadline=None,
                         suppress_health_check=[HealthCheck.too_slow,
                                                HealthCheck.filter_too_much])


def _id(value: Any) -> str:
    return value.__name__ if isinstance(value, type) else str(value)


# --------------------------------------------------------------------------
# Strategies for bad input.

SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12))
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=20,
)
NEAR_MISSES = st.sampled_from([
    # datetimes
    "2024-05-01T12:00:00Z", "2024-05-01T12:00:00", "2024-05-01", "2024-05-01T12:00:00+24:00",
    "2024-13-01T00:00:00+00:00", "0000-01-01T00:00:00+00:00", "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+23:59", "2024-05-01T12:00:00.1234567+00:00", "2024-W18-3T00:00Z",
    "2024-05-01 12:00:00+00:00", "\uff12024-05-01T12:00:00+00:00",
    # uuids
    "6f1c3a3e-1d2b-4c5a-9f00-0123456789ab", "6F1C3A3E-1D2B-4C5A-9F00-0123456789AB",
    "{6f1c3a3e-1d2b-4c5a-9f00-0123456789ab}", "6f1c3a3e1d2b4c5a9f000123456789ab",
    "6f1c3a3e-1d2b-4c5a-9f00-0123456789ab\n",
    # versions, names, enum-ish and odd strings
    "1.0", "1.1", "1.2", "1.0.0", "2.0", "0.9", "01.0", "1", "1.", ".1", "1.0 ", "1.1000000",
    "versioned_object.data", "Application", "Node", "bench", "fuzz", "", "\x00", "\ud800",
    "running", "git", "x", "z",
    # numbers at the edges of the codecs
    2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 1e308, -0.0, float("nan"), float("inf"),
    True, 0, 1.5, [], {}, [None], {"": None},
])
JUNK = JSON_VALUES | NEAR_MISSES
VERSION_STRINGS = st.sampled_from(
    ["1.0", "1.1", "1.2", "1.3", "1.1.7", "2.0", "0.9", "1.99", "01.1", "1", "", "abc",
     "1.0.0.0", "\uff11.\uff10", "9999999.0"]) | SCALARS


def _envelope_like(reg: Registry, data: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    names = sorted({*reg.names(), "Nope", ""})
    field_names = sorted({name for cls in reg.newest() for name in rollsafe.fields_of(cls)})
    return st.fixed_dictionaries(
        {reg.key_name: st.sampled_from(names) | SCALARS,
         reg.key_namespace: st.sampled_from([reg.namespace, "other"]) | SCALARS,
         reg.key_version: VERSION_STRINGS,
         reg.key_data: st.dictionaries(st.sampled_from(field_names) | st.text(max_size=6),
                                       data, max_size=6) | JUNK},
        optional={reg.key_changes: st.lists(st.sampled_from(field_names) | SCALARS,
                                            max_size=3) | SCALARS,
                  "extra": JUNK},
    )


def envelope_like(reg: Registry) -> st.SearchStrategy[Any]:
    """Dicts shaped like envelopes of ``reg``, holding junk, two deep."""
    return _envelope_like(reg, JUNK | _envelope_like(reg, JUNK))


def _slots(value: Any) -> Iterator[tuple[Any, Any]]:
    """(container, key) of every value inside ``value``, at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield value, key
            yield from _slots(item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield value, index
            yield from _slots(item)


def _version_slots(value: Any) -> list[tuple[dict[str, Any], str]]:
    return [(container, key) for container, key in _slots(value)
            if isinstance(container, dict) and isinstance(key, str)
            and key.endswith(".version")]


@st.composite
def mutated(draw: st.DrawFn, prim: dict[str, Any]) -> Any:
    """``prim`` (deep-copied) with one to three random changes."""
    prim = copy.deepcopy(prim)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        op = draw(st.sampled_from(["replace", "drop", "add", "version", "envelope"]))
        if op in ("version", "envelope"):
            slots = _version_slots(prim)
            if slots:
                envelope, key = draw(st.sampled_from(slots))
                if op == "version":
                    envelope[key] = draw(VERSION_STRINGS)
                else:  # any envelope key, present or not: replace or drop it
                    prefix = key.removesuffix("version")
                    key = prefix + draw(st.sampled_from(
                        ["name", "namespace", "version", "data", "changes"]))
                    if draw(st.booleans()):
                        envelope.pop(key, None)
                    else:
                        envelope[key] = copy.deepcopy(draw(JUNK))
            continue
        slots = list(_slots(prim))
        if not slots:
            return copy.deepcopy(draw(JUNK))
        container, key = draw(st.sampled_from(slots))
        # Copies: JUNK holds shared mutable values that later steps may edit.
        if op == "replace":
            container[key] = copy.deepcopy(draw(JUNK))
        elif op == "drop":
            del container[key]
        elif isinstance(container, dict):
            new_key = draw(st.text(max_size=6) | st.sampled_from(list(container)))
            container[new_key] = copy.deepcopy(draw(JUNK))
        else:
            container.insert(key, copy.deepcopy(draw(JUNK)))
    return prim


@st.composite
def damaged_bytes(draw: st.DrawFn, payload: bytes) -> bytes:
    """``payload`` with one to four bytes flipped, inserted or deleted, or
    cut short."""
    data = bytearray(payload)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if not data:
            op = "insert"
        at = draw(st.integers(min_value=0, max_value=max(len(data) - 1, 0)))
        if op == "flip":
            data[at] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=3))
        elif op == "delete":
            del data[at:at + draw(st.integers(min_value=1, max_value=3))]
        else:
            del data[at:]
    return bytes(data)


# --------------------------------------------------------------------------
# The property every decode must have.

def _registry_state(reg: Registry) -> tuple[Any, ...]:
    return reg.names(), [id(cls) for cls in reg.classes()], reg.manifest()


def decode_contained(decode: Callable[[], VersionedObject], reg: Registry,
                     given: Any = None) -> VersionedObject | DecodeError:
    """Run ``decode``: it returns a valid object or raises DecodeError with a
    str path, and leaves ``reg`` (and ``given``, the primitive it decodes)
    as they were. Returns the object or the error."""
    before = _registry_state(reg)
    given_before = repr(given)  # repr: nan != nan, but its repr is stable
    try:
        obj = decode()
    except DecodeError as exc:
        assert type(exc.path) is str, f"path is {exc.path!r}"
        assert str(exc)
        outcome: VersionedObject | DecodeError = exc
    except Exception as exc:
        raise AssertionError(f"{type(exc).__name__} escaped decoding: {exc}") from exc
    else:
        assert isinstance(obj, VersionedObject)
        again = rollsafe.to_primitive(obj)
        assert rollsafe.from_primitive(again, reg) == obj
        outcome = obj
    assert _registry_state(reg) == before, "decoding changed the registry"
    assert repr(given) == given_before, "decoding changed the primitive it was given"
    return outcome


def decode_primitive_contained(prim: Any, reg: Registry) -> None:
    """``decode_contained`` for ``from_primitive(prim, target)`` with the
    registry and each of its classes as target."""
    for target in (reg, *reg.newest()):
        decode_contained(lambda target=target: rollsafe.from_primitive(prim, target), reg,
                         prim)


CODECS = [rollsafe.JsonCodec, rollsafe.MsgpackCodec]


def _dumps(codec: rollsafe.Codec[Any], value: Any) -> bytes | None:
    try:
        return codec.dumps(value)
    except (TypeError, ValueError, OverflowError, orjson.JSONEncodeError):
        return None  # not representable in this format (huge int, lone surrogate)


# --------------------------------------------------------------------------
# (a) fuzzing

@pytest.mark.parametrize("reg", list(REGISTRIES.values()), ids=list(REGISTRIES))
@FUZZ_SETTINGS
@given(data=st.data())
def test_random_values_raise_only_decode_error(reg: Registry, data: st.DataObject) -> None:
    value = data.draw(JSON_VALUES | envelope_like(reg), label="value")
    decode_primitive_contained(value, reg)
    for codec_type in CODECS:
        codec = codec_type(reg)
        payload = _dumps(codec, value)
        if payload is not None:
            decode_contained(lambda codec=codec, payload=payload: codec.decode(payload), reg)


@pytest.mark.parametrize("codec_type", CODECS, ids=_id)
@FUZZ_SETTINGS
@given(payload=st.binary(max_size=300))
def test_random_bytes_raise_only_decode_error(codec_type: type[rollsafe.Codec[Any]],
                                              payload: bytes) -> None:
    for reg in REGISTRIES.values():
        codec = codec_type(reg)
        decode_contained(lambda codec=codec: codec.decode(payload), reg)
    codec = codec_type(Node)
    decode_contained(lambda: codec.decode(payload), fz)


@pytest.mark.parametrize("cls", FUZZ_CLASSES, ids=_id)
@FUZZ_SETTINGS
@given(data=st.data())
def test_damaged_primitives_raise_only_decode_error(cls: type[VersionedObject],
                                                    data: st.DataObject) -> None:
    reg = REGISTRY_OF[cls]
    prim = data.draw(primitives(cls), label="valid")
    bad = data.draw(mutated(prim), label="damaged")
    decode_primitive_contained(bad, reg)
    for codec_type in CODECS:
        codec = codec_type(reg)
        payload = _dumps(codec, bad)
        if payload is not None:
            decode_contained(lambda codec=codec, payload=payload: codec.decode(payload), reg)


@pytest.mark.parametrize("codec_type", CODECS, ids=_id)
@pytest.mark.parametrize("cls", FUZZ_CLASSES, ids=_id)
@FUZZ_SETTINGS
@given(data=st.data())
def test_damaged_bytes_raise_only_decode_error(cls: type[VersionedObject],
                                               codec_type: type[rollsafe.Codec[Any]],
                                               data: st.DataObject) -> None:
    reg = REGISTRY_OF[cls]
    codec = codec_type(reg)
    payload = codec.dumps(data.draw(primitives(cls), label="valid"))
    bad = data.draw(damaged_bytes(payload), label="damaged")
    decode_contained(lambda: codec.decode(bad), reg)
    strict = codec_type(cls)
    decode_contained(lambda: strict.decode(bad), reg)


def _boxed(reg: Registry, prim: Any, name: str) -> dict[str, Any]:
    """A Box 1.0 envelope holding ``prim`` in field ``name``: decoding it
    takes the precise (upgrade) path for ``prim`` too."""
    return {reg.key_name: "Box", reg.key_namespace: reg.namespace, reg.key_version: "1.0",
            reg.key_data: {name: prim}}


@pytest.mark.parametrize(("cls", "slot"), [(Node, "node"), (Leaf, "leaf")], ids=_id)
@FUZZ_SETTINGS
@given(data=st.data())
def test_fast_and_precise_decoders_agree(cls: type[VersionedObject], slot: str,
                                         data: st.DataObject) -> None:
    prim = data.draw(primitives(cls, cls.VERSIONS.current), label="valid")
    if data.draw(st.booleans(), label="damage"):
        prim = data.draw(mutated(prim), label="damaged")
    alone = decode_contained(lambda: rollsafe.from_primitive(prim, cls), fz, prim)
    box = _boxed(fz, prim, slot)
    boxed = decode_contained(lambda: rollsafe.from_primitive(box, Box), fz, box)
    if isinstance(alone, DecodeError) or isinstance(boxed, DecodeError):
        assert type(alone) is type(boxed), (
            f"alone: {alone!r}; inside an older Box: {boxed!r}")
        return
    inner = getattr(boxed, slot)
    assert inner == alone
    assert rollsafe.what_changed(inner) == rollsafe.what_changed(alone)


# --------------------------------------------------------------------------
# (b) targeted

def _app_prim(version: str | None = None) -> dict[str, Any]:
    app = bench_model.make_app()
    rollsafe.reset_changes(app, recursive=True)
    return rollsafe.to_primitive(app, version)


def _data(prim: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = prim[bench.key_data]
    return data


def _by_primitive(prim: Any, reg: Registry, limits: DecodeLimits) -> VersionedObject:
    return rollsafe.from_primitive(prim, reg, limits=limits)


def _by_json(prim: Any, reg: Registry, limits: DecodeLimits) -> VersionedObject:
    return rollsafe.JsonCodec(reg, limits=limits).decode(orjson.dumps(prim))


def _by_msgpack(prim: Any, reg: Registry, limits: DecodeLimits) -> VersionedObject:
    return rollsafe.MsgpackCodec(reg, limits=limits).decode(msgpack.packb(prim))


DECODERS = [_by_primitive, _by_json, _by_msgpack]
decoders = pytest.mark.parametrize("decode", DECODERS, ids=["primitive", "json", "msgpack"])
DEFAULT = rollsafe.DEFAULT_LIMITS


def _raises(exc_type: type[DecodeError], decode: Callable[..., Any], prim: Any,
            reg: Registry = bench, limits: DecodeLimits = DEFAULT) -> DecodeError:
    before = _registry_state(reg)
    with pytest.raises(exc_type) as info:
        decode(prim, reg, limits)
    assert _registry_state(reg) == before
    return info.value


def _nested_lists(depth: int) -> Any:
    value: Any = [1]
    for _ in range(depth - 1):
        value = [value]
    return value


def _grid(cells: Any) -> dict[str, Any]:
    return {fz.key_name: "Grid", fz.key_namespace: "fuzz", fz.key_version: "1.0",
            fz.key_data: {"cells": cells}}


@decoders
def test_nested_lists_within_max_depth_decode(decode: Callable[..., Any]) -> None:
    obj = decode(_grid([[[1, 2]], [[3]]]), fz, DecodeLimits(max_depth=4))
    assert obj == Grid(cells=[[[1, 2]], [[3]]])


@decoders
def test_nested_lists_deeper_than_max_depth(decode: Callable[..., Any]) -> None:
    exc = _raises(LimitExceededError, decode, _grid([[[1, 2]], [[3]]]), fz,
                  DecodeLimits(max_depth=3))
    assert exc.path == "Grid.cells[0][0]"
    assert "max_depth 3" in str(exc)


def _node_chain(depth: int) -> dict[str, Any]:
    """A Node envelope whose children nest ``depth`` Nodes deep in all."""
    envelope: dict[str, Any] = {fz.key_name: "Node", fz.key_namespace: "fuzz",
                                fz.key_version: "1.2", fz.key_data: {"label": "leaf"}}
    for _ in range(depth - 1):
        envelope = {fz.key_name: "Node", fz.key_namespace: "fuzz", fz.key_version: "1.2",
                    fz.key_data: {"label": "n", "children": [envelope]}}
    return envelope


@decoders
def test_objects_nested_deeper_than_max_depth(decode: Callable[..., Any]) -> None:
    decode(_node_chain(5), fz, DecodeLimits(max_depth=16))
    exc = _raises(LimitExceededError, decode, _node_chain(40), fz, DEFAULT)
    assert exc.path.startswith("Node.children[0].children[0]")
    assert "max_depth 32" in str(exc)


def _deep_grid_payload(codec_type: type[rollsafe.Codec[Any]], depth: int) -> bytes:
    """A Grid payload whose cells nest ``depth`` lists deep, written
    directly (the encoders refuse to nest that deep)."""
    codec = codec_type(fz)
    marker = "@cells@"
    payload = codec.dumps(_grid(marker))
    if codec_type is rollsafe.JsonCodec:
        cells = b"[" * depth + b"1" + b"]" * depth
    else:
        cells = b"\x91" * depth + b"\x01"  # fixarray of one item, ..., the int 1
    encoded_marker = codec.dumps(marker)
    assert payload.count(encoded_marker) == 1
    return payload.replace(encoded_marker, cells)


@pytest.mark.parametrize("codec_type", CODECS, ids=_id)
def test_payload_nested_far_deeper_than_max_depth_is_a_limit_error(
        codec_type: type[rollsafe.Codec[Any]]) -> None:
    # Nested deeper than the parsers' own limits: still "over max_depth".
    codec = codec_type(fz)
    assert codec.decode(_deep_grid_payload(codec_type, 3)) == Grid(cells=[[[1]]])
    before = _registry_state(fz)
    with pytest.raises(LimitExceededError, match="max_depth"):
        codec.decode(_deep_grid_payload(codec_type, 3000))
    assert _registry_state(fz) == before


def test_max_depth_beyond_what_the_stack_allows_is_refused_up_front() -> None:
    # Decoding recurses, so DecodeLimits caps max_depth where Python's stack
    # cannot become the limit (RecursionError is not a DecodeError).
    with pytest.raises(ValueError, match=f"at most {MAX_DEPTH_CEILING}"):
        DecodeLimits(max_depth=MAX_DEPTH_CEILING + 1)


def test_deep_payload_at_the_largest_max_depth_raises_only_decode_error() -> None:
    limits = DecodeLimits(max_depth=MAX_DEPTH_CEILING)
    _raises(DecodeError, _by_primitive, _node_chain(1000), fz, limits)
    _raises(DecodeError, _by_primitive, _node_chain(MAX_DEPTH_CEILING + 5), fz, limits)


@decoders
def test_list_longer_than_max_items(decode: Callable[..., Any]) -> None:
    limits = DecodeLimits(max_items=20)
    prim = _app_prim()
    _data(prim)["tags"] = [f"t{i}" for i in range(20)]
    assert decode(prim, bench, limits).tags == _data(prim)["tags"]
    _data(prim)["tags"].append("one too many")
    exc = _raises(LimitExceededError, decode, prim, bench, limits)
    assert exc.path == "Application.tags"
    assert "max_items 20" in str(exc)


@decoders
def test_dict_and_nested_list_longer_than_max_items(decode: Callable[..., Any]) -> None:
    limits = DecodeLimits(max_items=20)
    prim = _app_prim("1.0")
    _data(prim)["metadata"] = {f"k{i}": "v" for i in range(21)}
    assert _raises(LimitExceededError, decode, prim, bench, limits).path == \
        "Application.metadata"
    prim = _app_prim()
    _data(_data(prim)["components"][3])["ports"] = list(range(21))
    assert _raises(LimitExceededError, decode, prim, bench, limits).path == \
        "Application.components[3].ports"


@decoders
def test_object_with_more_fields_than_max_items_decodes(decode: Callable[..., Any]) -> None:
    # max_items bounds collections; Application's 13 fields are not a collection.
    limits = DecodeLimits(max_items=10)
    assert decode(_app_prim(), bench, limits) == bench_model.make_app()


@pytest.mark.parametrize("codec_type", CODECS, ids=_id)
def test_payload_over_max_bytes(codec_type: type[rollsafe.Codec[Any]]) -> None:
    payload = codec_type(bench).encode(bench_model.make_app())
    assert codec_type(bench, limits=DecodeLimits(max_bytes=len(payload))).decode(payload)
    codec = codec_type(bench, limits=DecodeLimits(max_bytes=len(payload) - 1))
    before = _registry_state(bench)
    with pytest.raises(LimitExceededError, match="max_bytes"):
        codec.decode(payload)
    assert _registry_state(bench) == before


@decoders
def test_unknown_object_name(decode: Callable[..., Any]) -> None:
    prim = _app_prim()
    prim[bench.key_name] = "Nope"
    exc = _raises(DecodeError, decode, prim)
    assert type(exc) is DecodeError
    assert "Nope" in str(exc)
    with pytest.raises(DecodeError, match="Nope") as info:
        rollsafe.from_primitive(prim, Application)
    assert info.value.path == "Application"


@decoders
def test_unknown_object_name_nested(decode: Callable[..., Any]) -> None:
    prim = _app_prim()
    _data(prim)["components"][2][bench.key_name] = "Widget"
    exc = _raises(DecodeError, decode, prim)
    assert exc.path == "Application.components[2]"
    assert "Widget" in str(exc)


@decoders
@pytest.mark.parametrize("version", ["1.1", "1.0"])
def test_wrong_namespace(decode: Callable[..., Any], version: str) -> None:
    prim = _app_prim(version)
    prim[bench.key_namespace] = "other"
    assert _raises(DecodeError, decode, prim).path == "Application"
    prim = _app_prim(version)
    _data(prim)["source"][bench.key_namespace] = "other"
    exc = _raises(DecodeError, decode, prim)
    assert exc.path == "Application.source"
    assert "other" in str(exc)


@decoders
@pytest.mark.parametrize("version", ["1.1", "1.0"])
def test_unknown_field(decode: Callable[..., Any], version: str) -> None:
    prim = _app_prim(version)
    _data(prim)["colour"] = "blue"
    exc = _raises(DecodeError, decode, prim)
    assert exc.path == "Application.colour"
    assert "unknown field" in str(exc)
    prim = _app_prim(version)
    _data(_data(prim)["components"][1])["colour"] = "blue"
    assert _raises(DecodeError, decode, prim).path == "Application.components[1].colour"


@decoders
def test_field_added_later_is_unknown_in_an_older_payload(decode: Callable[..., Any]) -> None:
    prim = _app_prim("1.0")
    _data(prim)["restart_count"] = 3
    assert _raises(DecodeError, decode, prim).path == "Application.restart_count"


@decoders
@pytest.mark.parametrize("version", ["1.1", "1.0"])
def test_missing_required_field(decode: Callable[..., Any], version: str) -> None:
    prim = _app_prim(version)
    del _data(prim)["name"]
    exc = _raises(DecodeError, decode, prim)
    assert exc.path == "Application.name"
    assert "missing" in str(exc)
    prim = _app_prim(version)
    del _data(_data(prim)["source"])["url"]
    assert _raises(DecodeError, decode, prim).path == "Application.source.url"


@decoders
def test_missing_field_with_default_decodes(decode: Callable[..., Any]) -> None:
    prim = _app_prim()
    del _data(prim)["restart_count"]
    del _data(_data(prim)["components"][0])["ports"]
    obj = decode(prim, bench, DEFAULT)
    assert obj.restart_count == 0
    assert obj.components[0].ports == []


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(prim: dict[str, Any]) -> None:
        target: Any = _data(prim)
        for step in path[:-1]:
            target = target[step]
            if isinstance(target, dict) and bench.key_data in target:
                target = _data(target)
        target[path[-1]] = value
    return apply


WRONG_TYPES = [
    (("components", 3, "ports", 0), "8080", "Application.components[3].ports[0]"),
    (("components", 3, "ports", 1), True, "Application.components[3].ports[1]"),
    (("components", 4, "replicas"), 1.0, "Application.components[4].replicas"),
    (("components", 0, "name"), None, "Application.components[0].name"),
    (("components", 2), "not an object", "Application.components[2]"),
    (("source", "kind"), "svn", "Application.source.kind"),
    (("source", "revision"), 7, "Application.source.revision"),
    (("tags", 2), 3, "Application.tags[2]"),
    (("metadata", "team"), ["platform"], "Application.metadata['team']"),
    (("id",), "6F1C3A3E-1D2B-4C5A-9F00-0123456789AB", "Application.id"),
    (("created_at",), "2024-05-01T12:00:00", "Application.created_at"),
    (("updated_at",), "yesterday", "Application.updated_at"),
    (("status",), "Running", "Application.status"),
    (("replicas",), "3", "Application.replicas"),
    (("owner",), {}, "Application.owner"),
]


@decoders
@pytest.mark.parametrize("version", ["1.1", "1.0"])
@pytest.mark.parametrize(("where", "value", "path"), WRONG_TYPES,
                         ids=[case[2].removeprefix("Application.") for case in WRONG_TYPES])
def test_wrong_type_deep_inside(decode: Callable[..., Any], version: str,
                                where: tuple[Any, ...], value: Any, path: str) -> None:
    prim = _app_prim(version)
    _set(where, value)(prim)
    exc = _raises(DecodeError, decode, prim)
    assert type(exc) is DecodeError
    assert exc.path == path
    assert str(exc).startswith(f"{path}: ")


@decoders
def test_version_newer_than_known(decode: Callable[..., Any]) -> None:
    prim = _app_prim()
    prim[bench.key_version] = "1.2"
    exc = _raises(PayloadVersionError, decode, prim)
    assert isinstance(exc, PayloadVersionError)
    assert (exc.path, exc.name, exc.version, exc.known) == ("Application", "Application",
                                                            "1.2", "1.1")
    assert all(word in str(exc) for word in ("Application", "1.2", "1.1"))


@decoders
def test_nested_version_newer_than_known(decode: Callable[..., Any]) -> None:
    prim = _app_prim()
    _data(prim)["source"][bench.key_version] = "2.0"
    exc = _raises(PayloadVersionError, decode, prim)
    assert isinstance(exc, PayloadVersionError)
    assert (exc.path, exc.name, exc.version, exc.known) == ("Application.source", "Source",
                                                            "2.0", "1.0")
    assert all(word in str(exc) for word in ("Source", "2.0", "1.0"))


@decoders
@pytest.mark.parametrize("version", ["0.9", "1.05", "one"])
def test_version_not_in_history(decode: Callable[..., Any], version: str) -> None:
    prim = _app_prim()
    prim[bench.key_version] = version
    exc = _raises(PayloadVersionError, decode, prim)
    assert exc.path == "Application"
    assert version in str(exc)


@decoders
def test_patch_level_of_a_known_version_decodes(decode: Callable[..., Any]) -> None:
    prim = _app_prim()
    prim[bench.key_version] = "1.1.4"
    assert decode(prim, bench, DEFAULT) == bench_model.make_app()


@decoders
@pytest.mark.parametrize("changes", [None, "name", {"name": True}, ["nosuchfield"], [1]])
def test_malformed_changes_list(decode: Callable[..., Any], changes: Any) -> None:
    prim = _app_prim()
    prim[bench.key_changes] = changes
    assert _raises(DecodeError, decode, prim).path == "Application"
    prim = _app_prim()
    _data(prim)["source"][bench.key_changes] = changes
    assert _raises(DecodeError, decode, prim).path == "Application.source"


@pytest.mark.parametrize("version", ["1.2", "1.1"])
@pytest.mark.parametrize(("name", "holder"), [
    ("leaf", lambda leaf: leaf),
    ("leaves", lambda leaf: [leaf]),
    ("index", lambda leaf: {"a": leaf}),
], ids=["nullable", "list", "dict"])
def test_live_object_inside_a_primitive_is_refused(
        version: str, name: str, holder: Callable[[Leaf], Any]) -> None:
    # A primitive holds envelopes, never objects: the decoder must not take
    # (and share) an object it finds there, at any version, in any field.
    prim = rollsafe.to_primitive(Node(label="n"), version)
    prim[fz.key_data][name] = holder(Leaf(number=1))
    exc = _raises(DecodeError, _by_primitive, prim, fz)
    assert exc.path.startswith(f"Node.{name}")
    assert "envelope" in str(exc)


def test_huge_int_in_a_float_field_raises_decode_error() -> None:
    prim = rollsafe.to_primitive(Node(label="n"))
    prim[fz.key_data]["weight"] = 10**400
    exc = _raises(DecodeError, _by_primitive, prim, fz)
    assert exc.path == "Node.weight"


def test_huge_int_in_a_str_field_raises_decode_error() -> None:
    prim = rollsafe.to_primitive(Node(label="n"))
    prim[fz.key_data]["label"] = 10**5000
    exc = _raises(DecodeError, _by_primitive, prim, fz)
    assert exc.path == "Node.label"


def test_bad_payloads_leave_the_registry_unchanged() -> None:
    before = {name: _registry_state(reg) for name, reg in REGISTRIES.items()}
    names = {name: reg.names() for name, reg in REGISTRIES.items()}
    bad: list[Any] = [None, [], {}, "Application", _grid("x"), _node_chain(40)]
    for key in (bench.key_name, bench.key_namespace, bench.key_version, bench.key_data):
        prim = _app_prim()
        prim[key] = "Zeppelin"
        bad.append(prim)
    for prim in bad:
        for reg in REGISTRIES.values():
            for decode in DECODERS:
                with pytest.raises(DecodeError):
                    decode(prim, reg, DEFAULT)
    assert {name: reg.names() for name, reg in REGISTRIES.items()} == names
    assert {name: _registry_state(reg) for name, reg in REGISTRIES.items()} == before
    assert "Zeppelin" not in bench and "Zeppelin" not in fz


def test_payload_nested_just_within_the_largest_max_depth_decodes() -> None:
    # Each Node level is an object plus its children list: two depth units.
    limits = DecodeLimits(max_depth=MAX_DEPTH_CEILING)
    levels = MAX_DEPTH_CEILING // 2
    node = _by_primitive(_node_chain(levels), fz, limits)
    depth = 1
    while node.children:
        node = node.children[0]
        depth += 1
    assert depth == levels
